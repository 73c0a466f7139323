"""The edit engine asks its WriteGuard about exactly what an edit creates, changes and deletes."""

from __future__ import annotations

import pytest
from lxml import etree

from agent.datastore.edit import ErrorOption, Operation, apply_edit, new_root
from agent.errors import DatastoreError
from agent.netconf.yang import YangSupport
from agent.schema.model import NodeInfo, SchemaModel

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:ca-agent:yang:system"
CRYPTO = "urn:ca-agent:yang:crypto"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
NS = {"s": SYS, "c": CRYPTO, "n": NACM}


@pytest.fixture(scope="module")
def yang() -> YangSupport:
    return YangSupport(SchemaModel.load())


def name(element: etree._Element | None) -> str | None:
    return None if element is None else etree.QName(element).localname


class Recorder:
    """Records (parent, old, new) local names; refuses changes of nodes named in ``refuse``."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[str | None, str | None, str | None]] = []
        self.replaced: list[tuple[etree._Element, etree._Element]] = []
        self.refuse = refuse

    def check_change(
        self,
        parent: etree._Element,
        old: etree._Element | None,
        new: etree._Element | None,
        info: NodeInfo,
        path: str,
    ) -> None:
        assert (old if old is not None else new) is not None
        assert old is None or old.getparent() is parent  # old is still in the tree
        assert new is None or new.getparent() is None  # new is not attached yet
        self.calls.append((name(parent), name(old), name(new)))
        if info.name in self.refuse:
            raise DatastoreError(f"no {info.name}", error_tag="access-denied", path=path)
        # A created subtree is checked node by node, as NACM does (each error names its own node).
        for element in (new.iterdescendants() if new is not None and old is None else ()):
            local = etree.QName(element).localname
            if local in self.refuse:
                steps = [e for e in element.iterancestors() if e is not new][::-1] + [element]
                rel = "".join(f"/crypto:{etree.QName(e).localname}" + (
                    f"[crypto:name='{e.findtext(f'{{{CRYPTO}}}name')}']" if e.find(f"{{{CRYPTO}}}name") is not None
                    else "") for e in steps)
                raise DatastoreError(f"no {local}", error_tag="access-denied", path=path + rel)

    def check_replace(self, old_root: etree._Element, new_root: etree._Element) -> None:
        self.replaced.append((old_root, new_root))


def run(yang: YangSupport, root: etree._Element, body: str, guard: Recorder, **kwargs: object) -> etree._Element:
    config = etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}">{body}</config>')
    return apply_edit(root, config, yang, yang, guard=guard, **kwargs).root  # type: ignore[arg-type]


def tp(inner: str, attr: str = "") -> str:
    return f'<crypto xmlns="{CRYPTO}"><ca><trustpoint{attr}><name>a</name>{inner}</trustpoint></ca></crypto>'


def test_merge_reports_a_created_subtree_once_then_only_changes(yang: YangSupport) -> None:
    guard = Recorder()
    root = run(yang, new_root(), tp("<rsakeypair>k</rsakeypair>"), guard)
    # merged into nothing: created whole, asked once with the complete subtree (the guard checks each node in it)
    assert guard.calls == [("data", None, "crypto")]
    guard = Recorder()
    run(yang, root, tp("<subject-name>CN=x</subject-name>", ' nc:operation="merge"'), guard)
    assert guard.calls == [("trustpoint", None, "subject-name")]
    guard = Recorder()
    run(yang, root, tp("<rsakeypair>k</rsakeypair>"), guard)
    assert guard.calls == []  # nothing changes, nothing to ask
    guard = Recorder()
    run(yang, root, tp("<rsakeypair>k2</rsakeypair>"), guard)
    assert guard.calls == [("trustpoint", "rsakeypair", "rsakeypair")]


def test_delete_replace_and_choice_switch(yang: YangSupport) -> None:
    root = run(yang, new_root(), tp("<enrollment><url>http://x</url></enrollment>"), Recorder())
    guard = Recorder()
    run(yang, root, tp("<enrollment><terminal/></enrollment>"), guard)
    assert guard.calls == [("enrollment", "url", None), ("enrollment", None, "terminal")] or guard.calls == [
        ("enrollment", None, "terminal"), ("enrollment", "url", None)]
    guard = Recorder()
    run(yang, root, tp("", ' nc:operation="delete"'), guard)
    assert guard.calls == [("ca", "trustpoint", None)]
    guard = Recorder()
    run(yang, root, tp("<enrollment><url>http://y</url></enrollment>", ' nc:operation="replace"'), guard)
    assert guard.calls == [("ca", "trustpoint", "trustpoint")]


def test_replace_of_the_whole_datastore_is_one_question(yang: YangSupport) -> None:
    root = run(yang, new_root(), tp("<rsakeypair>k</rsakeypair>"), Recorder())
    guard = Recorder()
    new = run(yang, root, f'<hostname xmlns="{SYS}">h</hostname>', guard, default_operation=Operation.REPLACE)
    assert guard.calls == []
    assert guard.replaced == [(root, new)]


def test_a_refusal_is_the_node_s_error(yang: YangSupport) -> None:
    root = new_root()
    with pytest.raises(DatastoreError) as failure:
        run(yang, root, f'<hostname xmlns="{SYS}">h</hostname>' + tp(""), Recorder(refuse=("trustpoint",)))
    assert failure.value.path == "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='a']"
    config = etree.fromstring(f'<config xmlns="{NC}"><hostname xmlns="{SYS}">h</hostname>{tp("")}</config>')
    result = apply_edit(root, config, yang, yang, error_option=ErrorOption.CONTINUE_ON_ERROR,
                        guard=Recorder(refuse=("trustpoint",)))
    assert [e.error_tag for e in result.errors] == ["access-denied"]
    assert result.root.findtext("s:hostname", namespaces=NS) == "h"
    assert result.root.find("c:crypto/c:ca/c:trustpoint", NS) is None  # not even a key-only entry is left


def test_leaf_values_keep_the_prefixes_they_use(yang: YangSupport) -> None:
    body = (
        f'<nacm xmlns="{NACM}"><rule-list><name>l</name><rule><name>r</name>'
        f'<path xmlns:x="{SYS}">/x:aaa</path><action>deny</action></rule></rule-list></nacm>'
    )
    root = apply_edit(new_root(), etree.fromstring(f'<config xmlns="{NC}">{body}</config>'), yang, yang).root
    path = root.find("n:nacm/n:rule-list/n:rule/n:path", NS)
    assert path is not None and path.nsmap.get("x") == SYS
    reparsed = etree.fromstring(etree.tostring(root)).find("n:nacm/n:rule-list/n:rule/n:path", NS)
    assert reparsed is not None and reparsed.nsmap.get("x") == SYS
