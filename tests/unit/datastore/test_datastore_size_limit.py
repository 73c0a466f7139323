"""The configuration's size limit (Datastores ``max_size``): nothing grows past it, nothing is lost to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from agent.datastore.store import RUNNING_FILE, Datastores, Principal, Target
from agent.errors import DatastoreError
from agent.netconf.yang import YangSupport
from agent.schema.model import SchemaModel

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
CRYPTO = "urn:ca-agent:yang:crypto"
NS = {"c": CRYPTO}
ADMIN = Principal(1, "admin")
LIMIT = 8192


@pytest.fixture(scope="module")
def yang() -> YangSupport:
    return YangSupport(SchemaModel.load())


def trustpoints(names: list[str], op: str | None = None) -> etree._Element:
    attr = f' nc:operation="{op}"' if op else ""
    entries = "".join(
        f"<trustpoint{attr}><name>{name}</name><enrollment><url>http://ca.example.com/{name}</url></enrollment>"
        "</trustpoint>" for name in names)
    return etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}"><crypto xmlns="{CRYPTO}"><ca>{entries}</ca>'
                            "</crypto></config>")


def names(store: Datastores, target: Target) -> list[str]:
    return [str(n) for n in store.get(target).xpath("c:crypto/c:ca/c:trustpoint/c:name/text()", namespaces=NS)]


def store_of(path: Path, yang: YangSupport, limit: int | None = LIMIT) -> Datastores:
    return Datastores(path, yang, yang, yang.validate, max_size=limit)


def refused(error: pytest.ExceptionInfo[DatastoreError]) -> bool:
    return error.value.error_tag == "resource-denied" and error.value.error_app_tag == "datastore-size-limit"


def fill_running(store: Datastores, prefix: str) -> list[str]:
    """Trustpoints added to running one edit at a time until the next is refused; their names."""
    added: list[str] = []
    for i in range(1000):
        name = f"{prefix}{i:03d}"
        try:
            store.edit(Target.RUNNING, trustpoints([name]), ADMIN)
        except DatastoreError as error:
            assert error.error_tag == "resource-denied" and error.error_app_tag == "datastore-size-limit"
            assert f"over this agent's limit of {LIMIT} bytes" in error.message
            return added
        added.append(name)
    raise AssertionError("the limit never applied")


def test_an_edit_of_running_past_the_limit_is_refused_and_changes_nothing(tmp_path: Path, yang: YangSupport) -> None:
    store = store_of(tmp_path, yang)
    added = fill_running(store, "tp")
    assert 10 < len(added) < 100
    saved = (tmp_path / RUNNING_FILE).read_bytes()
    assert len(saved) <= LIMIT
    history = [r.commit_id for r in store.history()]
    with pytest.raises(DatastoreError) as error:
        store.edit(Target.RUNNING, trustpoints(["one-more"]), ADMIN)
    assert refused(error)
    assert names(store, Target.RUNNING) == added
    assert (tmp_path / RUNNING_FILE).read_bytes() == saved
    assert [r.commit_id for r in store.history()] == history
    # A change that does not grow it still goes through (one trustpoint's URL made shorter).
    store.edit(Target.RUNNING, trustpoints([added[0]]), ADMIN)
    assert names(Datastores(tmp_path, yang, yang, yang.validate), Target.RUNNING) == added  # and it was durable


def test_small_candidate_edits_add_up_to_the_limit_and_the_commit_fits(tmp_path: Path, yang: YangSupport) -> None:
    """Many small edits, each far below the limit, cannot grow the candidate past it."""
    store = store_of(tmp_path, yang)
    added: list[str] = []
    with pytest.raises(DatastoreError) as error:
        for i in range(1000):
            store.edit(Target.CANDIDATE, trustpoints([f"tp{i:03d}"]), ADMIN)
            added.append(f"tp{i:03d}")
    assert refused(error)
    assert "candidate configuration would be" in error.value.message
    assert names(store, Target.CANDIDATE) == added  # the refused edit left the candidate as it was
    store.commit(ADMIN)
    assert names(store, Target.RUNNING) == added
    assert len((tmp_path / RUNNING_FILE).read_bytes()) <= LIMIT


def test_an_edit_far_over_the_limit_is_refused_without_measuring_the_candidate_again(
    tmp_path: Path, yang: YangSupport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only an edit that may shrink the candidate needs the old candidate serialised: one larger than its
    bound is refused after serialising the edited tree alone (a far-over-limit edit cost two before)."""
    import agent.datastore.store as store_module

    store = store_of(tmp_path, yang)
    store.edit(Target.CANDIDATE, trustpoints(["tp000"]), ADMIN)
    serialised: list[int] = []
    real = store_module._serialize

    def counting(root: etree._Element) -> bytes:
        data = real(root)
        serialised.append(len(data))
        return data

    monkeypatch.setattr(store_module, "_serialize", counting)
    with pytest.raises(DatastoreError) as error:
        store.edit(Target.CANDIDATE, trustpoints([f"tp{i:03d}" for i in range(1, 200)]), ADMIN)
    assert refused(error)
    assert len(serialised) == 1 and serialised[0] > LIMIT
    assert names(store, Target.CANDIDATE) == ["tp000"]


def test_copy_config_to_the_candidate_and_the_commit_are_measured_exactly(tmp_path: Path, yang: YangSupport) -> None:
    store = store_of(tmp_path, yang)
    big = trustpoints([f"tp{i:03d}" for i in range(200)])
    root = store.get(Target.RUNNING)
    content = etree.fromstring(etree.tostring(root))
    content.append(big[0])
    with pytest.raises(DatastoreError) as error:
        store.replace(Target.CANDIDATE, content, ADMIN)
    assert refused(error)
    assert not store.candidate_modified
    with pytest.raises(DatastoreError) as error:
        store.replace(Target.RUNNING, content, ADMIN)
    assert refused(error)
    assert names(store, Target.RUNNING) == []


def test_over_the_limit_after_a_restart_only_what_shrinks_it_is_accepted(tmp_path: Path, yang: YangSupport) -> None:
    """A lower limit at restart: the agent starts, deletions go through, additions do not."""
    unlimited = store_of(tmp_path, yang, limit=None)
    unlimited.edit(Target.RUNNING, trustpoints([f"tp{i:03d}" for i in range(120)]), ADMIN)
    unlimited.close()
    assert len((tmp_path / RUNNING_FILE).read_bytes()) > 2 * LIMIT
    store = store_of(tmp_path, yang)
    assert len(names(store, Target.RUNNING)) == 120
    with pytest.raises(DatastoreError) as error:
        store.edit(Target.RUNNING, trustpoints(["new"]), ADMIN)
    assert refused(error)
    with pytest.raises(DatastoreError) as error:
        store.edit(Target.CANDIDATE, trustpoints(["new"]), ADMIN)
    assert refused(error)
    store.edit(Target.CANDIDATE, trustpoints(["tp000", "tp001"], op="delete"), ADMIN)  # still over, but smaller
    store.commit(ADMIN)
    assert len(names(store, Target.RUNNING)) == 118
    store.edit(Target.RUNNING, trustpoints(["tp002"], op="delete"), ADMIN)
    assert len(names(store, Target.RUNNING)) == 117


def test_a_confirmed_commits_rollback_is_never_refused(tmp_path: Path, yang: YangSupport) -> None:
    """Going back to a configuration over the limit (it was there before the confirmed commit) is not a growth
    anyone asked for: the rollback must happen, or the unconfirmed change would stay."""
    unlimited = store_of(tmp_path, yang, limit=None)
    unlimited.edit(Target.RUNNING, trustpoints([f"tp{i:03d}" for i in range(120)]), ADMIN)
    unlimited.close()
    store = store_of(tmp_path, yang)
    store.edit(Target.CANDIDATE, trustpoints([f"tp{i:03d}" for i in range(90)], op="delete"), ADMIN)
    store.commit(ADMIN, confirmed=True, confirm_timeout=3600)
    assert len(names(store, Target.RUNNING)) == 30
    store.cancel_commit(ADMIN)
    assert len(names(store, Target.RUNNING)) == 120
    # and at start-up: a restart before the confirm rolls back too
    store.edit(Target.CANDIDATE, trustpoints([f"tp{i:03d}" for i in range(90)], op="delete"), ADMIN)
    store.commit(ADMIN, confirmed=True, confirm_timeout=3600, persist="p")
    store.close()
    assert len(names(store_of(tmp_path, yang), Target.RUNNING)) == 120


def test_without_a_limit_nothing_is_refused(tmp_path: Path, yang: YangSupport) -> None:
    store = store_of(tmp_path, yang, limit=None)
    store.edit(Target.CANDIDATE, trustpoints([f"tp{i:03d}" for i in range(300)]), ADMIN)
    store.commit(ADMIN)
    assert len((tmp_path / RUNNING_FILE).read_bytes()) > 4 * LIMIT


NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
SYS = "urn:ca-agent:yang:system"
EDITS = {
    "trustpoints, default namespace": f'<crypto xmlns="{CRYPTO}"><ca>'
    + "".join(f"<trustpoint><name>t{i}</name><rsakeypair>k</rsakeypair></trustpoint>" for i in range(50))
    + "</ca></crypto>",
    "trustpoints, a long prefix declared once": f'<zzzzzzzzzzzzzzzz:crypto xmlns:zzzzzzzzzzzzzzzz="{CRYPTO}">'
    "<zzzzzzzzzzzzzzzz:ca>"
    + "".join(f"<zzzzzzzzzzzzzzzz:trustpoint><zzzzzzzzzzzzzzzz:name>t{i}</zzzzzzzzzzzzzzzz:name>"
              "</zzzzzzzzzzzzzzzz:trustpoint>" for i in range(50))
    + "</zzzzzzzzzzzzzzzz:ca></zzzzzzzzzzzzzzzz:crypto>",
    "NACM rules whose paths declare their prefix on every leaf": f'<nacm xmlns="{NACM}" xmlns:c="{CRYPTO}" '
    f'xmlns:s="{SYS}"><rule-list><name>r</name>'
    + "".join(f"<rule><name>{i}</name><path>/c:crypto/s:h</path><action>permit</action></rule>" for i in range(50))
    + "</rule-list></nacm>",
    "NACM paths of three prefixes, each declared once with a long namespace": f'<nacm xmlns="{NACM}" '
    f'xmlns:c="{CRYPTO}" xmlns:s="{SYS}" xmlns:n="{NACM}"><rule-list><name>r</name>'
    + "".join(f"<rule><name>{i}</name><path>/c:c/s:s/n:n</path><action>deny</action></rule>" for i in range(50))
    + "</rule-list></nacm>",
    "a hostname": f'<hostname xmlns="{SYS}">a-rather-long-host-name</hostname>',
}


@pytest.mark.parametrize("body", EDITS.values(), ids=EDITS.keys())
def test_the_candidates_bound_is_above_what_an_edit_adds(tmp_path: Path, yang: YangSupport, body: str) -> None:
    """The bound holds however a request spells its content, also where the datastore repeats on every leaf
    (a value's namespace declarations) what the request said once."""
    from agent.datastore.store import _growth_bound

    store = store_of(tmp_path, yang, limit=None)
    before = len(etree.tostring(store.get(Target.RUNNING), xml_declaration=True, encoding="UTF-8",
                                pretty_print=True))
    edit = etree.fromstring(f'<config xmlns="{NC}">{body}</config>')
    store.edit(Target.RUNNING, edit, ADMIN)
    after = len((tmp_path / RUNNING_FILE).read_bytes())
    assert after > before
    assert _growth_bound(edit) >= after - before
