"""The commit record's diff: what it says when a container is emptied, and its quick "any change?" form."""

from __future__ import annotations

import pytest
from lxml import etree

from agent.datastore.diff import ChangeKind, diff_trees, trees_differ
from agent.datastore.edit import apply_edit, new_root
from agent.netconf.yang import YangSupport
from agent.schema.model import SchemaModel

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
CRYPTO = "urn:ca-agent:yang:crypto"
TP = "/crypto:crypto/crypto:ca/crypto:trustpoint"


@pytest.fixture(scope="module")
def yang() -> YangSupport:
    return YangSupport(SchemaModel.load())


def edit(names: list[str], operation: str = "merge") -> etree._Element:
    entries = "".join(f'<trustpoint nc:operation="{operation}"><name>{name}</name>'
                      "<enrollment><url>http://ca.example/scep</url></enrollment></trustpoint>" for name in names)
    return etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}"><crypto xmlns="{CRYPTO}"><ca>{entries}</ca>'
                            "</crypto></config>")


@pytest.mark.parametrize("count", [1, 3, 20])
def test_an_emptied_container_lists_what_it_lost(yang: YangSupport, count: int) -> None:
    """Deleting every trustpoint was recorded as one "replace /crypto/ca" without values."""
    names = [f"tp{i}" for i in range(count)]
    before = apply_edit(new_root(), edit(names), yang, yang).root
    result = apply_edit(before, edit(names, "delete"), yang, yang)
    for touched in (result.touched, None):
        changes = diff_trees(before, result.root, yang, yang, touched)
        assert [(c.kind, c.path) for c in changes if c.path.endswith("']")] == [
            (ChangeKind.DELETE, f"{TP}[crypto:name='{name}']") for name in names]
        assert len(changes) == count  # each once: what it held is in the configuration before


def test_trees_differ_stops_at_the_first_change_and_agrees_with_the_diff(yang: YangSupport) -> None:
    before = apply_edit(new_root(), edit(["a", "b"]), yang, yang).root
    same = apply_edit(before, edit(["a", "b"]), yang, yang)
    grown = apply_edit(before, edit(["c"]), yang, yang)
    assert not trees_differ(before, same.root, yang, yang, same.touched) and not diff_trees(before, same.root, yang, yang)
    assert trees_differ(before, grown.root, yang, yang, grown.touched) and trees_differ(before, grown.root, yang, yang)


def test_trees_differ_on_many_entries_scans_then_indexes_and_still_agrees(yang: YangSupport) -> None:
    """A large edit: the first lookups are scans, then the list is indexed; a change anywhere is found."""
    names = [f"tp{i}" for i in range(60)]
    before = apply_edit(new_root(), edit(names), yang, yang).root
    same = apply_edit(before, edit(names), yang, yang)
    assert not trees_differ(before, same.root, yang, yang, same.touched)
    last_changed = edit(names)
    last_changed.find(f".//{{{CRYPTO}}}trustpoint[last()]//{{{CRYPTO}}}url").text = "http://other.example/scep"
    for config in (last_changed, edit(names[:30], "delete"), edit([*names, "tp-new"])):
        result = apply_edit(before, config, yang, yang)
        assert trees_differ(before, result.root, yang, yang, result.touched)
        assert diff_trees(before, result.root, yang, yang, result.touched) == diff_trees(before, result.root, yang, yang)
