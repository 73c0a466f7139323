"""The commit database over NETCONF: ids, who, when, label/comment, changes, rollback (issue 12)."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

from agentproc import AgentProcess

SYS = "urn:ca-agent:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
HISTORY_FILTER = ("subtree", f'<commit-history xmlns="{SYS}"/>')


def history(m: manager.Manager) -> list[etree._Element]:
    return list(m.get(filter=HISTORY_FILTER).data_ele.iterfind(f"{{{SYS}}}commit-history/{{{SYS}}}commit"))


def text(entry: etree._Element, name: str) -> str | None:
    return entry.findtext(f"{{{SYS}}}{name}")


def set_hostname(m: manager.Manager, name: str, target: str = "candidate") -> None:
    m.edit_config(target=target, config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">{name}</hostname></config>')


def hostname(m: manager.Manager) -> str | None:
    return m.get_config("running").data_ele.findtext(f"{{{SYS}}}hostname")


def commit_with(m: manager.Manager, label: str | None = None, comment: str | None = None) -> None:
    extra = ""
    if label is not None:
        extra += f'<label xmlns="{SYS}">{label}</label>'
    if comment is not None:
        extra += f'<comment xmlns="{SYS}">{comment}</comment>'
    m.dispatch(to_ele(f'<commit xmlns="{NC}">{extra}</commit>'))


def rollback(m: manager.Manager, body: str) -> str | None:
    reply = m.dispatch(to_ele(f'<rollback-configuration xmlns="{SYS}">{body}</rollback-configuration>'))
    return etree.fromstring(reply.xml.encode()).findtext(f".//{{{SYS}}}commit-id")


def test_every_change_of_running_is_recorded_with_who_when_and_what(agent: AgentProcess) -> None:
    with agent.connect() as m:
        initial = history(m)
        assert [text(e, "kind") for e in initial] == ["initial-configuration"]
        assert text(initial[0], "id") == "1000000001"
        # the first configuration holds admin's hash: it is never shown
        assert all(c.findtext(f"{{{SYS}}}new-value") is None or "$scrypt$" not in c.findtext(f"{{{SYS}}}new-value")
                   for c in initial[0].iterfind(f"{{{SYS}}}change"))
        set_hostname(m, "first")
        before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        commit_with(m, label="lab1", comment="a first commit")
        set_hostname(m, "second", target="running")
        entries = history(m)
    assert [text(e, "id") for e in entries] == ["1000000001", "1000000002", "1000000003"]
    commit, edit = entries[1], entries[2]
    assert (text(commit, "kind"), text(commit, "user"), text(commit, "label"), text(commit, "comment")) == (
        "commit", "admin", "lab1", "a first commit")
    assert dt.datetime.fromisoformat(text(commit, "timestamp").replace("Z", "+00:00")) >= before
    (change,) = commit.iterfind(f"{{{SYS}}}change")
    assert (text(change, "target"), text(change, "operation"), text(change, "new-value")) == (
        "/sys:hostname", "create", "first")
    assert text(edit, "kind") == "edit-config"
    (change,) = edit.iterfind(f"{{{SYS}}}change")
    assert (text(change, "operation"), text(change, "old-value"), text(change, "new-value")) == (
        "replace", "first", "second")


def test_a_bad_label_is_refused_and_nothing_is_committed(agent: AgentProcess) -> None:
    with agent.connect() as m:
        set_hostname(m, "x")
        with pytest.raises(RPCError) as bad:
            commit_with(m, label="9 starts with a digit")
        assert bad.value.tag == "invalid-value"
        assert hostname(m) is None


def test_rollback_last_and_to_an_id_are_commits_themselves(agent: AgentProcess) -> None:
    with agent.connect() as m:
        for name in ("one", "two", "three"):
            set_hostname(m, name)
            m.commit()
        ids = [text(e, "id") for e in history(m)]
        assert hostname(m) == "three"
        new_id = rollback(m, "<last>1</last>")
        assert hostname(m) == "two" and new_id == str(int(ids[-1]) + 1)
        rollback(m, f"<to>{ids[1]}</to><label>back-to-one</label>")
        assert hostname(m) == "one"
        entries = history(m)
        assert [text(e, "kind") for e in entries[-2:]] == ["rollback", "rollback"]
        assert text(entries[-1], "label") == "back-to-one"
        assert rollback(m, f"<to>{ids[1]}</to>") is None  # already that configuration: nothing to commit
        for body in ("<to>1999999999</to>", "<last>99</last>"):
            with pytest.raises(RPCError) as bad:
                rollback(m, body)
            assert bad.value.tag == "invalid-value", body


def test_no_rollback_while_a_confirmed_commit_is_pending(agent: AgentProcess) -> None:
    with agent.connect() as m:
        set_hostname(m, "a")
        m.commit()
        set_hostname(m, "b")
        m.commit(confirmed=True, timeout="600")
        with pytest.raises(RPCError) as busy:
            rollback(m, "<last>1</last>")
        assert busy.value.tag == "in-use"
        m.commit()  # confirm


def test_the_history_survives_a_restart_and_keeps_the_last_100(agent_factory) -> None:
    agent = agent_factory().start()
    with agent.connect() as m:
        for n in range(105):
            set_hostname(m, f"h{n}", target="running")
        ids = [text(e, "id") for e in history(m)]
    assert len(ids) == 100 and ids[-1] == str(1000000001 + 105)
    agent.stop()
    agent.start()
    with agent.connect() as m:
        assert [text(e, "id") for e in history(m)] == ids
        rollback(m, "<last>3</last>")
        assert hostname(m) == "h101"
    assert len(list((agent.data_dir / "commits").glob("journal-*.log"))) <= 2  # older segments deleted


def test_a_large_commit_is_listed_with_every_change_at_once_and_after_a_crash(agent_factory) -> None:
    """A large commit's changes are computed after its reply; no request made after the reply sees it without
    them, and a kill -9 right after the reply loses none (they are computed again at start)."""
    crypto = "urn:ca-agent:yang:crypto"
    entries = "".join(f"<trustpoint><name>big{n}</name><enrollment><url>http://ca.example/{n}</url></enrollment>"
                      f"</trustpoint>" for n in range(300))
    config = f'<config xmlns="{NC}"><crypto xmlns="{crypto}"><ca>{entries}</ca></crypto></config>'
    agent = agent_factory().start()

    def changes_of_last(m: manager.Manager) -> list[tuple[str | None, str | None]]:
        last = history(m)[-1]
        return [(text(c, "operation"), text(c, "target")) for c in last.iterfind(f"{{{SYS}}}change")]

    with agent.connect() as m, agent.connect() as other:
        m.edit_config(target="running", config=config)
        listed = changes_of_last(other)  # the other session asks right after the reply
        assert len(listed) == 2 + 3 * 300 and all(operation == "create" for operation, _ in listed)
        assert listed[2] == ("create", "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='big0']")
        m.edit_config(target="running", config=config.replace("<trustpoint>", '<trustpoint xmlns:nc="'
                                                                f'{NC}" nc:operation="delete">'))
    agent.kill9()  # at once: the deletion's changes may not be on disk yet
    agent.start()
    with agent.connect() as m:
        deleted = changes_of_last(m)
        assert all(operation == "delete" for operation, _ in deleted)  # each trustpoint once
        assert [t for _, t in deleted] == [t for _, t in listed if t and t.endswith("']")]
