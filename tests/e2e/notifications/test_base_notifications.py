"""RFC 6470 base notifications from a real agent, each one validated by yanglint (``-t nc-notif``).

Sessions that close, are killed, drop their connection or send a bad hello;
commits that create, replace and delete (leaves and list entries); a
confirmed commit started, extended, completed, cancelled and timed out.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree
from notif_helpers import (
    CRYPTO,
    NC,
    NS,
    SYS,
    Receiver,
    commit_hostname,
    event_of,
    is_session_start_of,
    name_of,
    text,
    yanglint_notification,
)

from agentproc import AgentProcess
from rawnetconf import EOM, drop, hello, netconf_session, open_subsystem, read_to_eof, read_until, ssh_client


def session_ends(receiver: Receiver) -> dict[str, etree._Element]:
    return {text(event_of(n), "ncn:session-id"): event_of(n) for n in receiver.seen
            if name_of(n) == "netconf-session-end"}


def test_every_base_notification_is_valid_yang(agent: AgentProcess, tmp_path: Path) -> None:
    with agent.connect() as m:
        receiver = Receiver(m)
        m.create_subscription()

        # -- sessions: closed, killed (by whom), dropped, bad hello -------------------
        with agent.connect() as closer:
            closed_id = str(closer.session_id)
        victim = agent.connect()
        receiver.until("netconf-session-start", is_session_start_of(victim.session_id))  # open: it can be killed
        with agent.connect() as killer:
            killer.kill_session(victim.session_id)
            killed_id, killer_id = str(victim.session_id), str(killer.session_id)
        client, _ = netconf_session(agent.port)
        drop(client)  # the TCP connection goes away under the session
        raw = ssh_client(agent.port)
        try:
            channel = open_subsystem(raw)
            read_until(channel, EOM)
            channel.sendall(hello(extra="<session-id>7</session-id>") + EOM)  # a client may not send one
            read_to_eof(channel)
        finally:
            raw.close()
        ends = {}
        while len({r for r in (e.findtext("ncn:termination-reason", namespaces=NS) for e in ends.values())}
                  & {"closed", "killed", "dropped", "bad-hello"}) < 4:
            receiver.until("netconf-session-end")
            ends = session_ends(receiver)
        assert text(ends[closed_id], "ncn:termination-reason") == "closed"
        assert text(ends[killed_id], "ncn:termination-reason") == "killed"
        assert text(ends[killed_id], "ncn:killed-by") == killer_id
        starts = {text(event_of(n), "ncn:session-id") for n in receiver.seen if name_of(n) == "netconf-session-start"}
        assert {closed_id, killed_id, killer_id} <= starts
        bad = [e for e in ends.values() if text(e, "ncn:termination-reason") == "bad-hello"]
        assert len(bad) == 1 and text(bad[0], "ncn:session-id") not in starts  # it never started
        try:
            victim.close_session()
        except Exception:  # noqa: BLE001 - its session was killed: ncclient may notice only now
            pass

        # -- configuration changes: create, replace, delete, list entries ------------------
        commit_hostname(m, "r1")
        m.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}"><crypto xmlns="{CRYPTO}"><ca><trustpoint><name>tp1</name>'
            "<enrollment><url>http://127.0.0.1:9/scep</url></enrollment></trustpoint></ca></crypto></config>"))
        m.commit()
        m.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}"><crypto xmlns="{CRYPTO}"><ca><trustpoint><name>tp1</name>'
            "<enrollment><url>http://127.0.0.1:10/scep</url></enrollment></trustpoint></ca></crypto></config>"))
        m.commit()
        m.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}" xmlns:nc="{NC}"><hostname xmlns="{SYS}" nc:operation="delete"/></config>'))
        m.commit()
        changes = []
        while len(changes) < 4:
            change, _ = receiver.until("netconf-config-change")
            changes.append([(text(e, "ncn:target"), text(e, "ncn:operation"))
                            for e in event_of(change).findall("ncn:edit", NS)])
        url = "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='tp1']/crypto:enrollment/crypto:url"
        assert changes[0] == [("/sys:hostname", "create")]
        assert changes[1] == [("/crypto:crypto", "create")]
        assert changes[2] == [(url, "replace")]
        assert changes[3] == [("/sys:hostname", "delete")]

        # -- confirmed commit: start, extend, complete; cancel; timeout ----------------------
        def confirmed_step(kind: str) -> etree._Element:
            step, _ = receiver.until("netconf-confirmed-commit",
                                     where=lambda e: text(e, "ncn:confirm-event") == kind)
            return event_of(step)

        m.edit_config(target="candidate", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">r2</hostname></config>')
        m.commit(confirmed=True, timeout="120")
        start = confirmed_step("start")
        assert (text(start, "ncn:timeout"), text(start, "ncn:session-id")) == ("120", str(m.session_id))
        m.commit(confirmed=True, timeout="240")
        assert text(confirmed_step("extend"), "ncn:timeout") == "240"
        m.commit()
        assert confirmed_step("complete").find("ncn:timeout", NS) is None
        commit_hostname(m, "r3")  # hostname changes back to ... by the cancel and the timeout below
        m.edit_config(target="candidate", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">r4</hostname></config>')
        m.commit(confirmed=True)
        m.cancel_commit()
        assert text(confirmed_step("cancel"), "ncn:username") == "admin"
        m.edit_config(target="candidate", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">r5</hostname></config>')
        m.commit(confirmed=True, timeout="1")
        timeout = confirmed_step("timeout")
        assert timeout.find("ncn:username", NS) is None and timeout.find("ncn:session-id", NS) is None
        rolled_back = [n for n in receiver.seen if name_of(n) == "netconf-config-change"][-1]
        assert event_of(rolled_back).find("ncn:changed-by/ncn:server", NS) is not None  # the agent did it

        final = m.get_config(source="running").data_ele  # holds every node the changes named (targets)

    failures = [yanglint_notification(n, tmp_path, final if name_of(n) == "netconf-config-change" else None)
                for n in receiver.seen]
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)
    assert {name_of(n) for n in receiver.seen} >= {
        "netconf-session-start", "netconf-session-end", "netconf-config-change", "netconf-confirmed-commit",
    }


def test_capability_change_when_the_capabilities_differ_from_the_last_run(agent_factory) -> None:
    agent = agent_factory().start()
    since_start = agent.data_dir / "notifications" / "capabilities.json"
    agent.stop()
    # As if the previous run had had another module revision and a capability since removed.
    previous = since_start.read_text().replace("revision=2012-02-06", "revision=2011-01-01")
    previous = previous.replace("]", ', "urn:example:capability:gone:1.0"]')
    since_start.write_text(previous)
    agent.start()
    with agent.connect() as m:
        receiver = Receiver(m)
        m.create_subscription(start_time="2000-01-01T00:00:00Z")
        change, _ = receiver.until("netconf-capability-change")
        event = event_of(change)
        assert event.find("ncn:changed-by/ncn:server", NS) is not None
        assert [e.text for e in event.findall("ncn:deleted-capability", NS)] == ["urn:example:capability:gone:1.0"]
        modified = [e.text for e in event.findall("ncn:modified-capability", NS)]
        assert modified == ["urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
                            "?module=ietf-netconf-notifications&revision=2012-02-06"]
        receiver.until("replayComplete")
    agent.stop()
    agent.start()  # same capabilities as the last run: no new capability-change
    with agent.connect() as m:
        receiver = Receiver(m)
        m.create_subscription(start_time="2000-01-01T00:00:00Z")
        _, replayed = receiver.until("replayComplete")
        assert [name_of(n) for n in replayed].count("netconf-capability-change") == 1


def test_idle_timeout_ends_other_sessions_not_a_subscribed_one(agent_factory) -> None:
    agent = agent_factory(args=["--idle-timeout", "1"]).start()
    with agent.connect() as m:
        receiver = Receiver(m)
        m.create_subscription()
        idle = agent.connect()
        idle_id = str(idle.session_id)
        end, _ = receiver.until("netconf-session-end", where=lambda e: text(e, "ncn:session-id") == idle_id)
        assert text(event_of(end), "ncn:termination-reason") == "timeout"
        # the subscriber was idle as long, and is still served
        assert m.get_config(source="running").data_ele is not None
