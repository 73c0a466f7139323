"""The edit-config engine and the datastores, on the real YANG schema, without SSH."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from agent.datastore.edit import ErrorOption, Operation, apply_edit, new_root
from agent.datastore.store import ROLLBACK_FILE, RUNNING_FILE, Datastores, Principal, Target, TestOption
from agent.errors import AgentError, DatastoreError, SchemaError
from agent.netconf.yang import YangSupport
from agent.schema.model import SchemaModel

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:ca-agent:yang:system"
CRYPTO = "urn:ca-agent:yang:crypto"
NS = {"s": SYS, "c": CRYPTO}


@pytest.fixture(scope="module")
def yang() -> YangSupport:
    return YangSupport(SchemaModel.load())


def config(body: str) -> etree._Element:
    return etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}">{body}</config>')


def tp(name: str, inner: str = "", op: str | None = None) -> str:
    attr = f' nc:operation="{op}"' if op else ""
    return f'<crypto xmlns="{CRYPTO}"><ca><trustpoint{attr}><name>{name}</name>{inner}</trustpoint></ca></crypto>'


def edit(yang: YangSupport, root: etree._Element, body: str, **kwargs: object) -> etree._Element:
    return apply_edit(root, config(body), yang, yang, **kwargs).root  # type: ignore[arg-type]


def test_merge_creates_and_input_is_not_mutated(yang: YangSupport) -> None:
    root = new_root()
    before = etree.tostring(root)
    new = edit(yang, root, tp("a", "<rsakeypair>k</rsakeypair>"))
    assert etree.tostring(root) == before
    assert new.findtext("c:crypto/c:ca/c:trustpoint/c:rsakeypair", namespaces=NS) == "k"


def test_list_entries_matched_by_key_and_keys_first(yang: YangSupport) -> None:
    root = edit(yang, new_root(), tp("a", "<rsakeypair>k1</rsakeypair>") + tp("b"))
    root = edit(yang, root, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><rsakeypair>k2</rsakeypair><name>a</name></trustpoint></ca></crypto>')
    entries = root.findall("c:crypto/c:ca/c:trustpoint", NS)
    assert [e.findtext("c:name", namespaces=NS) for e in entries] == ["a", "b"]
    assert entries[0].findtext("c:rsakeypair", namespaces=NS) == "k2"
    assert etree.QName(entries[0][0]).localname == "name"


def test_choice_case_replaces_other_case(yang: YangSupport) -> None:
    root = edit(yang, new_root(), tp("a", "<enrollment><url>http://x</url></enrollment>"))
    root = edit(yang, root, tp("a", "<enrollment><terminal/></enrollment>"))
    enrollment = root.find("c:crypto/c:ca/c:trustpoint/c:enrollment", NS)
    assert [etree.QName(c).localname for c in enrollment] == ["terminal"]


def test_create_delete_remove_errors(yang: YangSupport) -> None:
    root = edit(yang, new_root(), tp("a", op="create"))
    with pytest.raises(DatastoreError) as exists:
        edit(yang, root, tp("a", op="create"))
    assert exists.value.error_tag == "data-exists"
    assert exists.value.path == "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='a']"
    root = edit(yang, root, tp("a", op="delete"))
    with pytest.raises(DatastoreError) as missing:
        edit(yang, root, tp("a", op="delete"))
    assert missing.value.error_tag == "data-missing"
    assert missing.value.path == "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='a']"
    # remove: no error when the entry is missing (RFC 6241 7.2), and nothing changes
    unchanged = edit(yang, root, tp("a", op="remove"))
    assert etree.tostring(unchanged) == etree.tostring(root)
    # ...and it deletes the entry when it exists, leaving its siblings alone
    both = edit(yang, root, tp("a", "<rsakeypair>k</rsakeypair>") + tp("b"))
    removed = edit(yang, both, tp("a", op="remove"))
    assert [e.findtext("c:name", namespaces=NS) for e in removed.findall("c:crypto/c:ca/c:trustpoint", NS)] == ["b"]


def test_default_operation_none_and_replace(yang: YangSupport) -> None:
    root = edit(yang, new_root(), f'<hostname xmlns="{SYS}">h</hostname>' + tp("a", "<rsakeypair>k</rsakeypair>"))
    # none: unmentioned-operation nodes do not change anything
    same = edit(yang, root, f'<hostname xmlns="{SYS}">other</hostname>', default_operation=Operation.NONE)
    assert same.findtext("s:hostname", namespaces=NS) == "h"
    # none with an explicit operation deeper down
    changed = edit(
        yang, root, tp("a", '<rsakeypair nc:operation="replace">k2</rsakeypair>'), default_operation=Operation.NONE
    )
    assert changed.findtext("c:crypto/c:ca/c:trustpoint/c:rsakeypair", namespaces=NS) == "k2"
    # replace at the top replaces the whole datastore
    replaced = edit(yang, root, f'<hostname xmlns="{SYS}">r</hostname>', default_operation=Operation.REPLACE)
    assert replaced.find("c:crypto", NS) is None and replaced.findtext("s:hostname", namespaces=NS) == "r"


def test_bad_operation_and_unknown_element(yang: YangSupport) -> None:
    with pytest.raises(AgentError) as bad:
        edit(yang, new_root(), tp("a", op="frobnicate"))
    assert bad.value.error_tag == "bad-attribute"
    with pytest.raises(DatastoreError) as unknown:
        edit(yang, new_root(), f'<crypto xmlns="{CRYPTO}"><nosuch/></crypto>')
    assert unknown.value.error_tag == "unknown-element"
    with pytest.raises(DatastoreError) as nokey:
        edit(yang, new_root(), f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><rsakeypair>k</rsakeypair></trustpoint></ca></crypto>')
    assert nokey.value.error_tag == "missing-element"


def test_a_new_subtree_is_stored_keys_first_and_its_errors_name_the_node(yang: YangSupport) -> None:
    """A merge into nothing copies the request's subtree at once (the bulk path): keys first
    (RFC 7950 7.8.5), leaf values trimmed, and an error deep inside it names its node."""
    body = (
        f'<crypto xmlns="{CRYPTO}"><ca>'
        "<trustpoint><rsakeypair> k1 </rsakeypair><name>b</name></trustpoint>"
        "<trustpoint><name>a</name><enrollment><url>http://x</url></enrollment></trustpoint>"
        "</ca></crypto>"
    )
    root = edit(yang, new_root(), body)
    entries = root.findall("c:crypto/c:ca/c:trustpoint", NS)
    assert [[etree.QName(c).localname for c in e] for e in entries] == [["name", "rsakeypair"], ["name", "enrollment"]]
    assert entries[0].findtext("c:rsakeypair", namespaces=NS) == "k1"
    # One namespace declaration, at the top of the new subtree: a URL's colon declares nothing.
    assert etree.tostring(root.find("c:crypto", NS)).count(b"xmlns") == 1
    with pytest.raises(DatastoreError) as unknown:
        edit(yang, new_root(), body.replace("<url>http://x</url>", "<url>http://x</url><nosuch/>"))
    assert unknown.value.error_tag == "unknown-element"
    assert unknown.value.path == "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='a']/crypto:enrollment/crypto:nosuch"


def test_changed_says_whether_anything_changed(yang: YangSupport) -> None:
    first = apply_edit(new_root(), config(tp("a", "<rsakeypair>k</rsakeypair>")), yang, yang)
    assert first.changed
    assert not apply_edit(first.root, config(tp("a", "<rsakeypair>k</rsakeypair>")), yang, yang).changed
    assert not apply_edit(first.root, config(tp("zz", op="remove")), yang, yang).changed
    assert apply_edit(first.root, config(tp("a", "<rsakeypair>k2</rsakeypair>")), yang, yang).changed
    assert apply_edit(first.root, config(tp("a", op="delete")), yang, yang).changed
    assert apply_edit(first.root, config(tp("b", op="create")), yang, yang).changed


def test_replace_of_a_list_entry_drops_what_it_does_not_name(yang: YangSupport) -> None:
    root = edit(yang, new_root(), tp("a", "<rsakeypair>k</rsakeypair><subject-name>CN=a</subject-name>") + tp("b"))
    replaced = edit(yang, root, tp("a", "<subject-name>CN=new</subject-name>", op="replace"))
    a, b = replaced.findall("c:crypto/c:ca/c:trustpoint", NS)
    assert a.findtext("c:rsakeypair", namespaces=NS) is None and a.findtext("c:subject-name", namespaces=NS) == "CN=new"
    assert b.findtext("c:name", namespaces=NS) == "b"
    created = edit(yang, root, tp("c", "<rsakeypair>k3</rsakeypair>", op="replace"))  # replace of a missing entry creates it
    assert created.findtext("c:crypto/c:ca/c:trustpoint[c:name='c']/c:rsakeypair", namespaces=NS) == "k3"


def test_default_operation_none_creates_only_below_an_explicit_create(yang: YangSupport) -> None:
    created = edit(yang, new_root(), tp("a", "<rsakeypair>k</rsakeypair>", op="create"), default_operation=Operation.NONE)
    assert created.findtext("c:crypto/c:ca/c:trustpoint/c:rsakeypair", namespaces=NS) == "k"
    with pytest.raises(DatastoreError) as missing:  # none: nothing created implicitly (RFC 6241 7.2)
        apply_edit(new_root(), config(tp("a", "<rsakeypair>k</rsakeypair>")), yang, yang,
                   default_operation=Operation.NONE)
    assert missing.value.error_tag == "data-missing"


@pytest.mark.parametrize("op", ["delete", "remove"])
def test_a_list_key_cannot_be_deleted_on_its_own(yang: YangSupport, op: str) -> None:
    root = edit(yang, new_root(), tp("a"))
    body = f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name nc:operation="{op}">a</name></trustpoint></ca></crypto>'
    with pytest.raises(DatastoreError) as bad:
        edit(yang, root, body)
    assert bad.value.error_tag == "bad-attribute"
    assert bad.value.path == "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='a']"
    assert bad.value.info == {"bad-attribute": "operation", "bad-element": "name"}


def test_error_paths_name_the_offending_node(yang: YangSupport) -> None:
    with pytest.raises(DatastoreError) as unknown:
        edit(yang, new_root(), tp("a", "<colour>red</colour>"))
    assert unknown.value.path == "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='a']/crypto:colour"
    assert unknown.value.info == {"bad-element": "colour"}


def test_continue_on_error_applies_the_rest(yang: YangSupport) -> None:
    result = apply_edit(
        new_root(),
        config(tp("gone", op="delete") + f'<hostname xmlns="{SYS}">h</hostname>'),
        yang,
        yang,
        error_option=ErrorOption.CONTINUE_ON_ERROR,
    )
    assert [e.error_tag for e in result.errors] == ["data-missing"]
    assert result.root.findtext("s:hostname", namespaces=NS) == "h"


S1, S2, S3 = (Principal(n, f"user{n}") for n in (1, 2, 3))


def make_store(path: Path, yang: YangSupport) -> Datastores:
    return Datastores(path, yang, yang, yang.validate)


def test_store_persists_and_validates(tmp_path: Path, yang: YangSupport) -> None:
    store = make_store(tmp_path, yang)
    store.edit(Target.CANDIDATE, config(f'<hostname xmlns="{SYS}">h1</hostname>'), S1)
    assert store.candidate_modified
    assert b"h1" not in (tmp_path / RUNNING_FILE).read_bytes()
    store.commit(S1)
    assert b"h1" in (tmp_path / RUNNING_FILE).read_bytes()
    with pytest.raises(SchemaError) as bad:
        store.edit(Target.RUNNING, config(tp("a", "<enrollment><retry><period>61</period></retry></enrollment>")), S1)
    assert bad.value.error_tag == "invalid-value"
    # test-only validates and changes nothing
    store.edit(Target.CANDIDATE, config(f'<hostname xmlns="{SYS}">h2</hostname>'), S1, test_option=TestOption.TEST_ONLY)
    assert not store.candidate_modified
    again = make_store(tmp_path, yang)
    assert again.get(Target.RUNNING).findtext("s:hostname", namespaces=NS) == "h1"


def test_pending_confirmed_commit_is_rolled_back_on_restart(tmp_path: Path, yang: YangSupport) -> None:
    store = make_store(tmp_path, yang)
    store.edit(Target.CANDIDATE, config(f'<hostname xmlns="{SYS}">before</hostname>'), S1)
    store.commit(S1)
    store.edit(Target.CANDIDATE, config(f'<hostname xmlns="{SYS}">after</hostname>'), S1)
    store.commit(S1, confirmed=True, confirm_timeout=3600, persist="p")
    assert (tmp_path / ROLLBACK_FILE).exists()
    restarted = make_store(tmp_path, yang)  # as after a crash: the confirm never came
    assert restarted.get(Target.RUNNING).findtext("s:hostname", namespaces=NS) == "before"
    assert not (tmp_path / ROLLBACK_FILE).exists()


def test_locks(tmp_path: Path, yang: YangSupport) -> None:
    store = make_store(tmp_path, yang)
    store.lock(Target.CANDIDATE, S1)
    with pytest.raises(DatastoreError) as denied:
        store.lock(Target.CANDIDATE, S2)
    assert denied.value.error_tag == "lock-denied" and denied.value.info == {"session-id": "1"}
    with pytest.raises(DatastoreError) as in_use:
        store.edit(Target.CANDIDATE, config(f'<hostname xmlns="{SYS}">x</hostname>'), S2)
    assert in_use.value.error_tag == "in-use"
    store.edit(Target.CANDIDATE, config(f'<hostname xmlns="{SYS}">x</hostname>'), S1)
    store.session_closed(1)  # releasing the candidate lock discards its changes
    assert not store.candidate_modified
    store.edit(Target.CANDIDATE, config(f'<hostname xmlns="{SYS}">y</hostname>'), S2)
    with pytest.raises(DatastoreError) as dirty:
        store.lock(Target.CANDIDATE, S3)
    assert dirty.value.info == {"session-id": "0"}


def test_default_operation_none_on_a_missing_level_is_data_missing(yang: YangSupport) -> None:
    """RFC 6241 7.2: with default-operation none, data for a level that does not exist is data-missing."""
    root = new_root()
    edit = config(tp("a", "<enrollment><url>http://x/scep</url></enrollment>"))
    with pytest.raises(DatastoreError) as missing:
        apply_edit(root, edit, yang, yang, Operation.NONE)
    assert missing.value.error_tag == "data-missing" and missing.value.path == "/crypto:crypto"
    # removing inside a missing level is a no-op, deleting is data-missing
    remove = config(f'<crypto xmlns="{CRYPTO}"><ca><trustpoint xmlns:nc="{NC}" nc:operation="remove">'
                    "<name>a</name></trustpoint></ca></crypto>")
    assert not apply_edit(root, remove, yang, yang, Operation.NONE).changed
    delete = config(f'<crypto xmlns="{CRYPTO}"><ca><trustpoint xmlns:nc="{NC}" nc:operation="delete">'
                    "<name>a</name></trustpoint></ca></crypto>")
    with pytest.raises(DatastoreError) as gone:
        apply_edit(root, delete, yang, yang, Operation.NONE)
    assert gone.value.error_tag == "data-missing"


def test_stored_tree_declares_each_namespace_once_and_keeps_only_prefixes_a_value_uses(yang: YangSupport) -> None:
    """What an edit builds serialises like a hand-written document: a namespace is declared where it starts.

    A leaf whose value uses a prefix (a NACM rule's instance-identifier path)
    keeps that prefix; the other prefixes of the request are not stored.
    """
    nacm = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
    root = edit(
        yang,
        new_root(),
        tp("a", "<enrollment><url>http://ca/</url><retry><period>5</period></retry></enrollment>"
                "<rsakeypair>k</rsakeypair>")
        + f'<nacm xmlns="{nacm}" xmlns:c="{CRYPTO}" xmlns:unused="urn:x"><rule-list><name>r</name>'
          f"<rule><name>x</name><path>/c:crypto/c:ca</path><action>permit</action></rule>"
          "</rule-list></nacm>",
    )
    text = etree.tostring(root, encoding="unicode")
    assert text.count("xmlns=") == 3  # <data>, <crypto>, <nacm>
    assert text.count(f'xmlns="{CRYPTO}"') == 1
    assert text.count(f'xmlns="{nacm}"') == 1
    assert f'<path xmlns:c="{CRYPTO}">/c:crypto/c:ca</path>' in text
    assert "urn:x" not in text
    # and the tree reads back the same
    again = etree.fromstring(text)
    assert etree.tostring(again, method="c14n") == etree.tostring(root, method="c14n")


# -- listeners after the commit's answer ---------------------------------------------------------


def hostname(value: str) -> etree._Element:
    return config(f'<hostname xmlns="{SYS}">{value}</hostname>')


def test_held_listeners_run_after_release_and_before_later_requests(tmp_path: Path, yang: YangSupport) -> None:
    """A commit returns once durable; its listeners wait for the caller's release (its reply sent).

    The releasing caller runs them. A request made while the commit is still being answered is
    concurrent with it and does not wait; one made after the release waits until they have run.
    """
    import threading

    store = make_store(tmp_path, yang)
    seen: list[tuple[str, str]] = []
    listener_started = threading.Event()
    listener_may_finish = threading.Event()

    def listener(old: etree._Element, new: etree._Element) -> None:
        listener_started.set()
        listener_may_finish.wait(5)
        seen.append((new.findtext("s:hostname", namespaces=NS) or "", threading.current_thread().name))

    store.add_commit_listener(listener)
    release = store.defer_listeners()
    store.edit(Target.RUNNING, hostname("first"), S1)
    assert b"first" in (tmp_path / RUNNING_FILE).read_bytes()  # durable before the caller is answered

    def request_on_another_session(done: threading.Event) -> None:
        store.wait_delivered()
        done.set()

    meanwhile = threading.Event()  # the commit is not answered yet: concurrent with it, no wait
    threading.Thread(target=request_on_another_session, args=(meanwhile,), daemon=True).start()
    assert meanwhile.wait(5)
    assert seen == [] and not listener_started.is_set()
    releasing = threading.Thread(target=release, name="the session, its reply sent", daemon=True)
    releasing.start()
    assert listener_started.wait(5)
    waiter_done = threading.Event()
    threading.Thread(target=request_on_another_session, args=(waiter_done,), daemon=True).start()
    assert not waiter_done.wait(0.2)  # the listener is still running
    listener_may_finish.set()
    assert waiter_done.wait(5)
    releasing.join(5)
    assert seen == [("first", "the session, its reply sent")]
    store.close()


def test_second_change_in_one_request_is_not_stuck_behind_held_listeners(tmp_path: Path, yang: YangSupport) -> None:
    import time

    store = make_store(tmp_path, yang)
    seen: list[str] = []
    store.add_commit_listener(lambda old, new: seen.append(new.findtext("s:hostname", namespaces=NS) or ""))
    release = store.defer_listeners()
    start = time.monotonic()
    store.edit(Target.RUNNING, hostname("one"), S1)
    store.edit(Target.RUNNING, hostname("two"), S1)  # queued behind the first commit's listeners: released
    store.wait_delivered()
    assert time.monotonic() - start < 0.9  # not the hold limit (1 s); two fsynced edits take far less
    assert seen == ["one", "two"]
    release()
    store.close()


def test_unreleased_listeners_run_after_the_hold_limit(tmp_path: Path, yang: YangSupport) -> None:
    import threading

    from agent.datastore import store as store_module

    store = make_store(tmp_path, yang)
    ran = threading.Event()
    store.add_commit_listener(lambda old, new: ran.set())
    store.defer_listeners()  # never released (a caller that died before its reply)
    store.edit(Target.RUNNING, hostname("x"), S1)
    assert not ran.wait(store_module.LISTENER_HOLD_LIMIT / 2)
    assert ran.wait(store_module.LISTENER_HOLD_LIMIT + 5)
    store.close()


def test_without_a_hold_listeners_run_at_once(tmp_path: Path, yang: YangSupport) -> None:
    store = make_store(tmp_path, yang)
    seen: list[str] = []
    store.add_commit_listener(lambda old, new: seen.append("called"))
    store.edit(Target.RUNNING, hostname("y"), S1)
    store.wait_delivered()
    assert seen == ["called"]
    store.close()
