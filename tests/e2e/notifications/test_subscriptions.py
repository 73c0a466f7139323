"""RFC 5277 over a real agent with ncclient: create-subscription, interleave, filters, replay, stopTime, NACM.

Absence is proven by order, never by waiting: the agent delivers a
session's notifications in publication order, so when a later notification
arrives, an earlier one that was not delivered never will be.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from lxml import etree
from nacm_e2e_helpers import add_users, error_of
from notif_helpers import (
    NC,
    NCM,
    NCN,
    NETMOD,
    NOTIF,
    NS,
    SYS,
    YUMA_DERIVED,
    YUMA_NCX,
    Receiver,
    bad_element,
    commit_hostname,
    event_of,
    is_session_start_of,
    name_of,
    text,
    utc,
)

from agentproc import AgentProcess
from rawnetconf import END_OF_CHUNKS, frame, nested_count, netconf_session, read_until, wait_until

NOTIFICATION_CAP = "urn:ietf:params:netconf:capability:notification:1.0"
INTERLEAVE_CAP = "urn:ietf:params:netconf:capability:interleave:1.0"


def edits(event: etree._Element) -> list[tuple[str | None, str | None]]:
    return [(text(e, "ncn:target"), text(e, "ncn:operation")) for e in event.findall("ncn:edit", NS)]


def test_config_change_of_another_session_and_rpcs_while_subscribed(agent: AgentProcess) -> None:
    with agent.connect() as m, agent.connect() as other:
        assert {NOTIFICATION_CAP, INTERLEAVE_CAP} <= set(m.server_capabilities)
        receiver = Receiver(m)
        assert m.create_subscription().ok
        commit_hostname(other, "r1")
        change, _ = receiver.until("netconf-config-change")
        event = event_of(change)
        assert text(event, "ncn:changed-by/ncn:username") == "admin"
        assert text(event, "ncn:changed-by/ncn:session-id") == str(other.session_id)
        assert text(event, "ncn:changed-by/ncn:source-host") == "127.0.0.1"
        assert text(event, "ncn:datastore") == "running"
        assert edits(event) == [("/sys:hostname", "create")]
        assert event.find("ncn:edit/ncn:target", NS).nsmap["sys"] == SYS  # the path's prefix is declared

        # :interleave -- the subscribed session still runs RPCs, and its own commit is notified too
        assert m.get_config(source="running").data_ele.findtext("s:hostname", namespaces=NS) == "r1"
        commit_hostname(m, "r2")
        change, _ = receiver.until("netconf-config-change")
        assert edits(event_of(change)) == [("/sys:hostname", "replace")]
        assert text(event_of(change), "ncn:changed-by/ncn:session-id") == str(m.session_id)

        # RFC 6022 counts what was sent, per session and in total
        state = m.get(filter=("subtree", f'<netconf-state xmlns="{NCM}"><statistics/><sessions/></netconf-state>'))
        data = state.data_ele
        mine = next(s for s in data.iterfind("ncm:netconf-state/ncm:sessions/ncm:session", NS)
                    if text(s, "ncm:session-id") == str(m.session_id))
        assert int(text(mine, "ncm:out-notifications")) == len(receiver.seen)
        assert int(text(data, "ncm:netconf-state/ncm:statistics/ncm:out-notifications")) >= len(receiver.seen)


def test_netconf_streams_with_get_and_filters(agent: AgentProcess, tmp_path: Path) -> None:
    with agent.connect() as m:
        whole = m.get().data_ele.find("nm:netconf", NS)
        assert whole is not None
        stream = whole.find("nm:streams/nm:stream", NS)
        assert text(stream, "nm:name") == "NETCONF" and text(stream, "nm:replaySupport") == "true"
        assert text(stream, "nm:replayLogCreationTime").endswith("Z") and text(stream, "nm:description")

        subtree = m.get(filter=("subtree", f'<netconf xmlns="{NETMOD}"><streams><stream><name/>'
                                           "<replaySupport/></stream></streams></netconf>")).data_ele
        entry = subtree.find("nm:netconf/nm:streams/nm:stream", NS)
        assert [etree.QName(c).localname for c in entry] == ["name", "replaySupport"]

        select = "/nm:netconf/nm:streams/nm:stream[nm:name='NETCONF']/nm:replayLogCreationTime"
        xpath = m.get(filter=("xpath", ({"nm": NETMOD}, select))).data_ele
        entry = xpath.find("nm:netconf/nm:streams/nm:stream", NS)
        # the list key comes along with the selected leaf (RFC 6241 6.2.5)
        assert [etree.QName(c).localname for c in entry] == ["name", "replayLogCreationTime"]
        nothing = m.get(filter=("xpath", ({"nm": NETMOD}, "/nm:netconf/nm:streams/nm:stream[nm:name='x']")))
        assert nothing.data_ele.find("nm:netconf", NS) is None

    # What <get> returned is valid against RFC 5277's nc-notifications (as netconfd ships it)
    if shutil.which("yanglint") is None or not (YUMA_DERIVED / "nc-notifications.yang").exists():
        pytest.skip("yanglint or nc-notifications.yang (Debian netconfd) is not installed")
    path = tmp_path / "streams.xml"
    path.write_bytes(etree.tostring(whole))
    done = subprocess.run(
        ["yanglint", "-p", str(YUMA_DERIVED), "-p", str(YUMA_NCX), "-t", "data",
         str(YUMA_DERIVED / "nc-notifications.yang"), str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_create_subscription_refusals(agent: AgentProcess) -> None:
    with agent.connect() as m:
        error = error_of(lambda: m.create_subscription(stream_name="SYSLOG"))
        assert (error.tag, error.type, bad_element(error)) == ("invalid-value", "protocol", "stream")
        error = error_of(lambda: m.create_subscription(start_time=utc(3600)))
        assert (error.tag, bad_element(error)) == ("bad-element", "startTime")
        error = error_of(lambda: m.create_subscription(start_time=utc(-60), stop_time=utc(-120)))
        assert (error.tag, bad_element(error)) == ("bad-element", "stopTime")
        error = error_of(lambda: m.create_subscription(start_time="yesterday"))
        assert (error.tag, bad_element(error)) == ("invalid-value", "startTime")
        # ncclient refuses stopTime without startTime itself: send it by hand
        request = f'<create-subscription xmlns="{NOTIF}"><stopTime>{utc(60)}</stopTime></create-subscription>'
        error = error_of(lambda: m.dispatch(etree.fromstring(request)))
        assert (error.tag, error.type, bad_element(error)) == ("missing-element", "protocol", "startTime")
        request = f'<create-subscription xmlns="{NOTIF}"><color>red</color></create-subscription>'
        error = error_of(lambda: m.dispatch(etree.fromstring(request)))
        assert (error.tag, bad_element(error)) == ("unknown-element", "color")
        error = error_of(lambda: m.create_subscription(filter=("xpath", "/ncn:netconf-config-change[")))
        assert error.tag == "invalid-value"
        error = error_of(lambda: m.create_subscription(filter=("xpath", ({"x": "urn:x"}, "/undeclared:thing"))))
        assert error.tag == "invalid-value"

        # None of these made a subscription: the first good one is accepted, the second refused.
        assert m.create_subscription().ok
        error = error_of(lambda: m.create_subscription())
        assert (error.tag, error.type) == ("in-use", "protocol")


def test_subtree_and_xpath_filters_on_subscriptions(agent: AgentProcess) -> None:
    with agent.connect() as only_changes, agent.connect() as only_bob, agent.connect() as admin:
        add_users(agent, {"bob": ("bob-pw", "root-system")})
        changes = Receiver(only_changes)
        only_changes.create_subscription(filter=("subtree", f'<netconf-config-change xmlns="{NCN}"/>'))
        bobs = Receiver(only_bob)
        select = "/ncn:netconf-config-change[ncn:changed-by/ncn:username='bob']"
        only_bob.create_subscription(filter=("xpath", select))  # the module prefix needs no declaration
        with agent.connect(username="bob", password="bob-pw") as bob:  # a session-start: filtered out
            commit_hostname(admin, "by-admin")
            commit_hostname(bob, "by-bob")
        first = changes.next()
        assert name_of(first) == "netconf-config-change"  # not the session-start that came before
        assert text(event_of(first), "ncn:changed-by/ncn:username") == "admin"
        assert text(event_of(changes.next()), "ncn:changed-by/ncn:username") == "bob"
        bob_change = bobs.next()  # the admin's change came first and was filtered out
        assert text(event_of(bob_change), "ncn:changed-by/ncn:username") == "bob"
        assert edits(event_of(bob_change)) == [("/sys:hostname", "replace")]

        # A filter selecting some leaves sends only those (the same semantics as <get>).
        with agent.connect() as leaves:
            receiver = Receiver(leaves)
            leaves.create_subscription(filter=(
                "subtree", f'<netconf-config-change xmlns="{NCN}"><changed-by><username/></changed-by>'
                           "</netconf-config-change>"))
            commit_hostname(admin, "third")
            event = event_of(receiver.next())
            assert [(etree.QName(e).localname, (e.text or "").strip()) for e in event.iter()] == [
                ("netconf-config-change", ""), ("changed-by", ""), ("username", "admin")
            ]


def test_replay_stop_time_and_notification_complete(agent: AgentProcess) -> None:
    with agent.connect() as admin:
        start = utc(-1)
        commit_hostname(admin, "one")
        commit_hostname(admin, "two")
        middle = utc()
        commit_hostname(admin, "three")

    # startTime and stopTime both past: the window's notifications, replayComplete, notificationComplete
    with agent.connect() as m:
        receiver = Receiver(m)
        m.create_subscription(start_time=start, stop_time=middle)
        replayed, _ = receiver.until("replayComplete")
        changes = [text(event_of(n), "ncn:edit/ncn:operation") for n in receiver.seen
                   if name_of(n) == "netconf-config-change"]
        assert changes == ["create", "replace"]  # "one", "two"; not "three" (after stopTime)
        assert name_of(receiver.next()) == "notificationComplete"
        # the subscription is over, the session is not: RPCs work and a new subscription is accepted
        assert m.get_config(source="running").data_ele.findtext("s:hostname", namespaces=NS) == "three"
        assert m.create_subscription().ok

    # stopTime ahead: replay, replayComplete, then live notifications until stopTime
    with agent.connect() as m, agent.connect() as admin:
        receiver = Receiver(m)
        m.create_subscription(start_time=middle, stop_time=utc(8))
        _, replayed = receiver.until("replayComplete")
        assert [text(event_of(n), "ncn:edit/ncn:operation") for n in replayed
                if name_of(n) == "netconf-config-change"] == ["replace"]  # "three"
        commit_hostname(admin, "four")
        live, _ = receiver.until("netconf-config-change")
        complete, _ = receiver.until("notificationComplete", timeout=40)
        assert text(live, "notif:eventTime") < text(complete, "notif:eventTime")


def test_replay_survives_restart_and_kill_9_and_is_bounded(agent_factory) -> None:
    agent = agent_factory(args=["--replay-log-size", "6"]).start()
    since = utc(-1)
    with agent.connect() as admin:
        commit_hostname(admin, "before-restart")
    agent.stop()
    agent.start()
    with agent.connect() as m:
        receiver = Receiver(m)
        m.create_subscription(start_time=since)
        _, replayed = receiver.until("replayComplete")
        assert [text(event_of(n), "ncn:edit/ncn:operation") for n in replayed
                if name_of(n) == "netconf-config-change"] == ["create"]  # the commit before the restart
        for n in range(8):
            commit_hostname(m, f"h{n}")
            receiver.until("netconf-config-change")  # logged before the next one (and before the kill)
    agent.kill9()
    agent.start()
    with agent.connect() as m:
        receiver = Receiver(m)
        m.create_subscription(start_time=since)
        _, replayed = receiver.until("replayComplete")
        names = [name_of(n) for n in replayed]
        # --replay-log-size 6: between 3 and 6 are kept (two segments of 3), the newest ones
        assert 3 <= len(replayed) <= 6, names
        assert "netconf-config-change" in names  # the last commits, written before kill -9, survived
        assert [text(event_of(n), "ncn:edit/ncn:operation") for n in replayed
                if name_of(n) == "netconf-config-change"][0] == "replace"  # the first commit aged out
        times = [text(n, "notif:eventTime") for n in replayed]
        assert times == sorted(times)


def test_nacm_keeps_denied_notifications_and_streams_from_a_user(agent: AgentProcess) -> None:
    rules = (
        "<rule-list><name>monitor-rules</name><group>monitor</group>"
        "<rule><name>no-config-change</name><module-name>ietf-netconf-notifications</module-name>"
        "<notification-name>netconf-config-change</notification-name>"
        "<access-operations>read</access-operations><action>deny</action></rule>"
        "<rule><name>no-streams</name><module-name>nc-notifications</module-name>"
        "<access-operations>read</access-operations><action>deny</action></rule>"
        "</rule-list>"
    )
    add_users(agent, {"watcher": ("watcher-pw", "monitor")}, rules)
    since = utc(-1)
    with agent.connect() as admin:
        commit_hostname(admin, "before")  # in the replay log: denied on replay too
    with agent.connect(username="watcher", password="watcher-pw") as w, agent.connect() as admin:
        receiver = Receiver(w)
        w.create_subscription(start_time=since)
        _, replayed = receiver.until("replayComplete")  # replayComplete is always delivered
        assert "netconf-config-change" not in [name_of(n) for n in replayed]
        assert "netconf-session-start" in [name_of(n) for n in replayed]
        commit_hostname(admin, "after")
        admin.get_config(source="running")  # runs once the commit's listeners have published "after"
        with agent.connect() as third:
            # third's session-start comes after the config-change of "after", which was withheld. Before it
            # may come admin's own session-start (see is_session_start_of): admin may have been opened only
            # after watcher's subscription started.
            _, before = receiver.until("netconf-session-start", is_session_start_of(third.session_id))
            assert "netconf-config-change" not in [name_of(n) for n in before]
        assert w.get().data_ele.find("nm:netconf", NS) is None  # module rule on RFC 5277's /netconf
        assert admin.get().data_ele.find("nm:netconf", NS) is not None
        counters = admin.get(filter=("subtree", '<nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm">'
                                                "<denied-notifications/></nacm>")).data_ele
        assert int(text(counters, "nacm:nacm/nacm:denied-notifications")) >= 2  # one replayed, one live


def test_create_subscription_is_an_operation_nacm_can_deny(agent: AgentProcess) -> None:
    rules = (
        "<rule-list><name>quiet-rules</name><group>quiet</group>"
        "<rule><name>no-subscriptions</name><module-name>notifications</module-name>"
        "<rpc-name>create-subscription</rpc-name><access-operations>exec</access-operations>"
        "<action>deny</action></rule></rule-list>"
    )
    add_users(agent, {"quiet": ("quiet-pw", "quiet")}, rules)
    with agent.connect(username="quiet", password="quiet-pw") as q:
        error = error_of(lambda: q.create_subscription())
        assert (error.tag, error.type) == ("access-denied", "protocol")
        assert q.get_config(source="running").data_ele is not None  # other operations still run


def test_message_order_reply_before_notifications(agent: AgentProcess) -> None:
    """The <ok/> of create-subscription precedes every notification of the subscription (raw bytes)."""
    with agent.connect() as admin:
        commit_hostname(admin, "x")
    client, channel = netconf_session(agent.port)
    try:
        request = (f'<rpc message-id="9" xmlns="{NC}"><create-subscription xmlns="{NOTIF}">'
                   f"<startTime>{utc(-600)}</startTime></create-subscription></rpc>")
        channel.sendall(frame(request))
        data = b""
        while b"replayComplete" not in data:
            data += read_until(channel, END_OF_CHUNKS)
        assert data.index(b"<ok/>") < data.index(b"<notification")
    finally:
        client.close()


def _costly_filter() -> tuple[str, str]:
    """An XPath filter that runs out of its budget on every notification (nested counts over every node)."""
    return ("xpath", nested_count(10))


def _edit_running(m, name: str) -> None:
    m.edit_config(target="running", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">{name}</hostname></config>')


def test_a_costly_filter_delays_only_its_own_subscription(agent: AgentProcess) -> None:
    """One thread delivered to every subscriber: four subscriptions whose filter runs out of its budget on every
    notification (replaying the log too) held everyone's notifications of ten commits for 48 s."""
    with agent.connect() as admin:
        for n in range(5):
            commit_hostname(admin, f"before{n}")
    costly = [agent.connect() for _ in range(4)]
    try:
        for m in costly:
            m.create_subscription(filter=_costly_filter(), start_time=utc(-60))
        with agent.connect() as m, agent.connect() as admin:
            receiver = Receiver(m)
            m.create_subscription()
            started = time.monotonic()
            for n in range(10):
                commit_hostname(admin, f"h{n}")
            for _ in range(10):
                receiver.until("netconf-config-change", timeout=30)
            assert time.monotonic() - started < 8.0
    finally:
        for m in costly:
            m.close_session()


def test_a_subscription_too_far_behind_ends_its_session(agent: AgentProcess) -> None:
    """A subscriber whose filter cannot keep up would have its notifications queue in the agent without end."""
    costly = agent.connect()  # not a context manager: its session is gone when the test ends
    with agent.connect() as m, agent.connect() as admin:
        costly.create_subscription(filter=_costly_filter())
        receiver = Receiver(m)
        m.create_subscription()
        # MAX_PENDING (1000) and more: its filter takes 0.5 s for each, so it gets through a few dozen meanwhile.
        # Edits go on until it is that far behind, as how many it gets through depends on the machine's speed.
        behind = "its subscription fell more than 1000 notifications behind"
        edits = 0
        while behind not in agent.log_text():
            assert edits < 4000, "the costly subscriber never fell 1,000 notifications behind"
            for _ in range(100):
                _edit_running(admin, f"h{edits}")
                edits += 1
        assert edits >= 1000  # not before MAX_PENDING were queued
        for _ in range(edits):  # the others get every one
            receiver.until("netconf-config-change", timeout=30)
        wait_until(lambda: _session_gone(admin, costly.session_id), 10, "the costly session to end")
        wait_until(lambda: not costly.connected, 10, "the costly client to see its session end")


def _session_gone(m, session_id: str) -> bool:
    sessions = m.get(filter=("subtree", f'<netconf-state xmlns="{NCM}"><sessions/></netconf-state>')).data_ele
    return session_id not in [e.text for e in sessions.iterfind(f".//{{{NCM}}}session-id")]
