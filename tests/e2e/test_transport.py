"""NETCONF over SSH under accidents and odd clients (issue 10, "Sessions and transport").

Each test reproduces a defect seen with the `netconf` package's server and
keeps it fixed: dropped sessions that stayed, a silent client that blocked
logins, hellos that were refused, channels that depended on each other,
connections that were never forgotten, unbounded and quadratic reads.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import paramiko
import pytest
from lxml import etree
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.transport.errors import SSHError

from agentproc import AgentProcess
from rawnetconf import (
    END_OF_CHUNKS,
    EOM,
    NC,
    assert_idle,
    drop,
    flood,
    frame,
    get_config_works,
    hello,
    ignore_window,
    nested_count,
    netconf_session,
    open_subsystem,
    read_to_eof,
    read_until,
    rpc,
    rss_kib,
    ssh_client,
    status_value,
    threads,
    wait_busy,
    wait_until,
)

NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
SYS = "urn:ca-agent:yang:system"
CRYPTO = "urn:ca-agent:yang:crypto"
SESSIONS_FILTER = ("subtree", f'<netconf-state xmlns="{NCM}"><sessions/></netconf-state>')
STATS_FILTER = ("subtree", f'<netconf-state xmlns="{NCM}"><statistics/></netconf-state>')


def session_ids(m: manager.Manager) -> set[int]:
    data = m.get(filter=SESSIONS_FILTER).data_ele
    return {int(e.text) for e in data.iterfind(f".//{{{NCM}}}session/{{{NCM}}}session-id")}


def statistic(m: manager.Manager, name: str) -> int:
    return int(m.get(filter=STATS_FILTER).data_ele.findtext(f".//{{{NCM}}}{name}"))


def hostname(m: manager.Manager) -> str | None:
    return m.get_config("running").data_ele.findtext(f"{{{SYS}}}hostname")


# -- dropped sessions ---------------------------------------------------------------------------
@pytest.mark.parametrize("base11", [True, False])
def test_a_dropped_session_releases_its_locks_and_rolls_back_its_confirmed_commit(
    agent: AgentProcess, base11: bool
) -> None:
    with agent.connect() as observer:
        original = hostname(observer)
        client, channel = netconf_session(agent.port, base11)
        for body in (
            "<lock><target><candidate/></target></lock>",
            "<lock><target><running/></target></lock>",
            f'<edit-config><target><candidate/></target><config><hostname xmlns="{SYS}">dropped</hostname></config>'
            "</edit-config>",
            "<commit><confirmed/><confirm-timeout>600</confirm-timeout></commit>",
        ):
            assert b"<ok/>" in rpc(channel, body, base11=base11), body
        assert hostname(observer) == "dropped"
        dropped_id = max(session_ids(observer))
        drop(client)
        wait_until(lambda: dropped_id not in session_ids(observer), 10, "the dropped session to go")
        assert hostname(observer) == original  # RFC 6241 8.4: rolled back
        observer.lock("running")
        observer.lock("candidate")
        observer.unlock("candidate")
        observer.unlock("running")
    assert_idle(agent.proc.pid)  # type: ignore[union-attr]


def test_a_client_that_vanishes_without_closing_is_dropped_and_its_locks_released(agent_factory) -> None:
    # Power loss or a network cut sends no FIN: before TCP keepalive the session, and its locks, stayed for ever
    # (the agent sends nothing to a client that sends nothing).
    if os.environ.get("CA_AGENT_NETNS") != "1":
        pytest.skip("adds and removes an address: only inside tests/netns_run.sh's private network namespace")
    agent = agent_factory(args=["--tcp-keepalive", "2"]).start()
    address = "10.9.9.9"
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    vanishing = None
    try:
        vanishing = agent.connect(bind_addr=address)
        vanishing.lock("candidate")
        vanished_id = int(vanishing.session_id)
        with agent.connect() as observer:
            with pytest.raises(RPCError, match="lock"):
                observer.lock("candidate")
            # The client's address goes: nothing it sent is acknowledged any more, and it sends nothing.
            subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=True)
            began = time.monotonic()
            wait_until(lambda: vanished_id not in session_ids(observer), 20, "the vanished client's session to go")
            assert time.monotonic() - began < 12  # ~2 x 2 s, with room for a loaded machine
            observer.lock("candidate")
            observer.unlock("candidate")
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=False, capture_output=True)
        if vanishing is not None:
            vanishing._session.close()  # its transport only: a <close-session> would wait for a reply
    agent.log_until(f"session {vanished_id} closed (dropped)")


@pytest.mark.parametrize(
    "stage",
    ["before-hello", "half-hello", "half-message-1.1", "half-message-1.0", "half-chunk-header"],
)
def test_a_connection_dropped_at_any_point_leaves_nothing_and_sigterm_still_works(
    agent_factory, stage: str
) -> None:
    agent = agent_factory().start()
    pid = agent.proc.pid
    with agent.connect() as observer:
        before = session_ids(observer)
    clients = []
    for _ in range(3):
        client = ssh_client(agent.port)
        channel = open_subsystem(client)
        read_until(channel, EOM)
        if stage == "half-hello":
            channel.sendall(hello()[:40])
        elif stage.startswith("half-message"):
            base11 = stage.endswith("1.1")
            channel.sendall(hello(base11) + EOM)
            body = f'<rpc message-id="1" xmlns="{NC}"><get-config><source><running/>'
            channel.sendall(frame(body)[:30] if base11 else body.encode())
        elif stage == "half-chunk-header":
            channel.sendall(hello(True) + EOM + b"\n#12")
        clients.append(client)
    for client in clients:
        drop(client)
    with agent.connect() as observer:
        wait_until(lambda: session_ids(observer) <= before | {max(session_ids(observer))}, 10,
                   "dropped sessions to leave /netconf-state")
    assert_idle(pid)
    started = time.monotonic()
    assert agent.stop(timeout=10) == 0
    assert time.monotonic() - started < 10


def test_sigterm_exits_promptly_with_live_and_half_open_sessions(agent: AgentProcess) -> None:
    live = agent.connect()
    half_client = ssh_client(agent.port)
    open_subsystem(half_client)  # never sends its hello
    silent = socket.create_connection(("127.0.0.1", agent.port))  # never speaks SSH
    try:
        assert agent.stop(timeout=10) == 0
    finally:
        silent.close()
        half_client.close()
        try:
            live.close_session()
        except Exception:
            pass


# -- handshakes, hellos, limits -------------------------------------------------------------------
def test_a_silent_tcp_client_does_not_hold_back_logins_and_is_dropped_at_the_deadline(agent_factory) -> None:
    agent = agent_factory(args=["--handshake-timeout", "2"]).start()
    silent = [socket.create_connection(("127.0.0.1", agent.port)) for _ in range(5)]
    try:
        with agent.connect(timeout=10) as m:  # would wait for the silent ones with one accept thread
            assert m.session_id
        for sock in silent:
            sock.settimeout(20)
            data = b""
            while chunk := sock.recv(4096):  # the server's SSH banner, then EOF at the deadline
                data += chunk
            assert data.startswith(b"SSH-2.0-")
    finally:
        for sock in silent:
            sock.close()
    agent.log_until("no NETCONF session within 2 s")


def test_a_missing_hello_ends_the_session_at_the_hello_deadline(agent_factory) -> None:
    agent = agent_factory(args=["--hello-timeout", "1"]).start()
    client = ssh_client(agent.port)
    try:
        channel = open_subsystem(client)
        data = read_to_eof(channel)
        assert data.endswith(EOM) and b"<session-id>" in data  # our hello, then the close
    finally:
        client.close()
    agent.log_until("no <hello> within 1 s")


def test_an_idle_session_is_closed_when_an_idle_timeout_is_set(agent_factory) -> None:
    agent = agent_factory(args=["--idle-timeout", "1"]).start()
    client, channel = netconf_session(agent.port)
    try:
        assert b"<data" in rpc(channel, "<get-config><source><running/></source></get-config>")
        assert read_to_eof(channel) == b""
    finally:
        client.close()
    agent.log_until("idle for 1 s")


def test_connections_beyond_max_sessions_are_refused_and_logged(agent_factory) -> None:
    agent = agent_factory(args=["--max-sessions", "2"]).start()
    with agent.connect() as first, agent.connect() as second:
        assert first.session_id != second.session_id
        with pytest.raises((SSHError, OSError, EOFError, paramiko.SSHException)):
            agent.connect(timeout=10)
    agent.log_until("refusing SSH connection")

    def connects() -> bool:
        try:
            with agent.connect(timeout=10) as again:
                return bool(again.session_id)
        except (SSHError, OSError, EOFError, paramiko.SSHException):
            return False

    # The slots free up once the server has seen both connections end.
    wait_until(connects, 15, "a connection once the first two have closed")


def test_silent_connections_filling_every_slot_make_room_for_a_login(agent_factory) -> None:
    # One host holding every slot with connections that never speak: each held its slot for the
    # handshake timeout (30 s here), and reopening them kept every login refused.
    agent = agent_factory(args=["--max-sessions", "4", "--handshake-timeout", "30"]).start()
    with agent.connect() as working:
        silent = [socket.create_connection(("127.0.0.1", agent.port)) for _ in range(3)]
        try:
            for sock in silent:  # each one accepted (the server's banner) before the login below
                sock.settimeout(10)
                assert sock.recv(4096).startswith(b"SSH-2.0-")
            began = time.monotonic()
            with agent.connect(timeout=10) as newcomer:
                assert newcomer.session_id not in (None, working.session_id)
                assert hostname(newcomer) == hostname(working)
            assert time.monotonic() - began < 10
            # The oldest silent connection made room (EOF); the session that works was left alone.
            assert silent[0].recv(4096) == b""
            assert working.get_config("running").ok
        finally:
            for sock in silent:
                sock.close()
    agent.log_until("to make room for one from 127.0.0.1")


def test_unfinished_requests_of_all_sessions_share_one_cap_and_the_largest_goes(agent_factory) -> None:
    # Each session may hold a message of up to --max-message-size while it arrives: 256 sessions could make the
    # agent hold 4 GiB (twelve sessions sending 15 MiB each and never finishing took it from 68 to 269 MiB).
    mib = 1024 * 1024
    agent = agent_factory(args=["--max-message-size", str(4 * mib), "--max-buffered-input", str(8 * mib)]).start()
    head = f'<rpc message-id="7" xmlns="{NC}"><get-config><source><running/></source><filter><x xmlns="urn:x">'
    tail = "</x></filter></get-config></rpc>"
    sessions = [netconf_session(agent.port, base11=False) for _ in range(3)]
    try:
        largest, second, third = (channel for _, channel in sessions)
        for channel, size in ((largest, 3.5 * mib), (second, 2.5 * mib)):
            channel.sendall(head.encode() + b"a" * int(size))
        time.sleep(1.0)  # both held: 6 MiB of 8
        third.sendall(head.encode() + b"a" * int(2.5 * mib))  # 8.5 MiB: over
        assert read_to_eof(largest) == b""  # the session holding the most was closed
        for channel in (second, third):  # the others finish their requests and are answered
            channel.sendall(tail.encode() + EOM)
            assert b'message-id="7"' in read_until(channel, EOM)
        with agent.connect() as m:
            assert m.get_config("running").ok
    finally:
        for client, _ in sessions:
            client.close()
    agent.log_until("unfinished requests went over 8388608 bytes, and this session's was the largest")


def _trustpoints_and_reply_size(agent: AgentProcess, count: int = 400) -> int:
    """Commit ``count`` trustpoints; the size of a get-config of running then."""
    with agent.connect() as m:
        entries = "".join(f"<trustpoint><name>tp{i}</name><subject-name>CN=tp{i},O=Example</subject-name>"
                          "</trustpoint>" for i in range(count))
        m.edit_config(target="candidate", config=f'<config xmlns="{NC}"><crypto xmlns="{CRYPTO}"><ca>{entries}'
                      "</ca></crypto></config>")
        m.commit()
        return len(m.get_config(source="running").xml)


def _rss_growth_of_ended_sessions(agent: AgentProcess, sessions: int, load: Callable[[Any], None]) -> int:
    """KiB of RSS the agent grows by over ``sessions`` base:1.0 sessions, one after the other, each given
    ``load`` (its channel) and then dropped; counted from the third on, as the allocator keeps what the
    first ones freed for the next ones to reuse."""
    pid = agent.proc.pid  # type: ignore[union-attr]
    before = 0
    for count in range(sessions):
        if count == 2:
            before = rss_kib(pid)
        client, channel = netconf_session(agent.port, base11=False)
        load(channel)
        ended = len(agent.log_text().split(" closed (dropped)"))
        client.close()
        wait_until(lambda ended=ended: len(agent.log_text().split(" closed (dropped)")) > ended, 10,
                   "the session to end")
    return rss_kib(pid) - before


def test_unsent_replies_of_all_sessions_share_one_cap(agent_factory) -> None:
    # Each session may hold 64 MiB of replies its client does not read: six such sessions took the agent from 86
    # to 436 MiB, and what an ended one had queued stayed in memory.
    mib = 1024 * 1024
    agent = agent_factory(args=["--max-buffered-output", str(8 * mib)]).start()
    reply = _trustpoints_and_reply_size(agent)
    request = f'<rpc message-id="9" xmlns="{NC}"><get-config><source><running/></source></get-config></rpc>'.encode()
    hoarder_client, hoarder = netconf_session(agent.port, base11=False)
    reader_client, reader = netconf_session(agent.port, base11=False)
    try:
        reader.sendall((request + EOM) * 20)  # read below, after the hoarder
        hoarder.sendall((request + EOM) * (24 * mib // reply))  # 24 MB of replies it never reads
        agent.log_until("unsent replies went over 8388608 bytes, and this session had the most")
        received = b""
        while received.count(EOM) < 20:  # the other session's replies all come
            received += read_until(reader, EOM)
        assert received.count(b'message-id="9"') == 20
    finally:
        hoarder_client.close()
        reader_client.close()


def test_what_an_ended_session_had_not_sent_is_freed_at_once(agent_factory) -> None:
    agent = agent_factory().start()
    reply = _trustpoints_and_reply_size(agent)
    request = f'<rpc message-id="9" xmlns="{NC}"><get-config><source><running/></source></get-config></rpc>'.encode()

    def hoard(channel: Any) -> None:
        channel.sendall((request + EOM) * (30 * 1024 * 1024 // reply))  # 30 MB of replies, never read
        time.sleep(1.0)

    growth = _rss_growth_of_ended_sessions(agent, 6, hoard)
    assert growth < 40 * 1024  # four more sessions: each kept its queue until a collection


def test_what_an_ended_session_held_of_an_unfinished_request_is_freed_at_once(agent_factory) -> None:
    # An ended session object lived on in reference cycles until a garbage collection, with up to
    # --max-message-size of unfinished request: each of 15 MiB stayed in memory.
    agent = agent_factory().start()
    head = f'<rpc message-id="1" xmlns="{NC}"><get-config><source><running/></source><filter>'.encode()
    growth = _rss_growth_of_ended_sessions(agent, 8, lambda channel: channel.sendall(head + b"x" * (15 * 1024 * 1024)))
    assert growth < 40 * 1024  # six more sessions: 90 MiB more before


def test_hello_with_whitespace_before_the_xml_declaration_is_accepted(agent: AgentProcess) -> None:
    client = ssh_client(agent.port)
    try:
        channel = open_subsystem(client)
        read_until(channel, EOM)
        channel.sendall(b"\n  " + hello(True) + EOM)  # what scrapli-netconf sends
        assert b"<data" in rpc(channel, "<get-config><source><running/></source></get-config>")
    finally:
        client.close()


def test_a_chunk_framed_hello_is_tolerated(agent: AgentProcess) -> None:
    """ncclient issue 524: its hello may come chunk-framed."""
    client = ssh_client(agent.port)
    try:
        channel = open_subsystem(client)
        read_until(channel, EOM)
        channel.sendall(frame(hello(True)))
        assert b"<data" in rpc(channel, "<get-config><source><running/></source></get-config>")
    finally:
        client.close()


@pytest.mark.parametrize(
    ("bad_hello", "logged"),
    [
        (hello(True, extra="<session-id>7</session-id>") + EOM, "sent a <session-id>"),
        (f'<hello xmlns="{NC}"><capabilities><capability>urn:x</capability></capabilities></hello>'.encode() + EOM,
         "neither base:1.0 nor base:1.1"),
        (b"<not-xml" + EOM, "not well-formed"),
        (b'<?xml version="1.0"?><!DOCTYPE hello [<!ENTITY x "y">]>' + hello(True)[21:] + EOM, "document type"),
        (f'<rpc xmlns="{NC}" message-id="1"><get/></rpc>'.encode() + EOM, "expected <hello>"),
    ],
)
def test_an_unacceptable_hello_closes_the_session_logged_and_counted(
    agent: AgentProcess, bad_hello: bytes, logged: str
) -> None:
    with agent.connect() as observer:
        bad_before = statistic(observer, "in-bad-hellos")
        client = ssh_client(agent.port)
        try:
            channel = open_subsystem(client)
            read_until(channel, EOM)
            channel.sendall(bad_hello)
            assert read_to_eof(channel) == b""
        finally:
            client.close()
        assert statistic(observer, "in-bad-hellos") == bad_before + 1
    agent.log_until(logged)


# -- channels -------------------------------------------------------------------------------------
def test_a_pty_request_is_granted_and_netconf_still_runs(agent: AgentProcess) -> None:
    client = ssh_client(agent.port)
    try:
        assert get_config_works(client, pty=True)
    finally:
        client.close()


def test_netconf_is_served_only_on_the_netconf_subsystem(agent: AgentProcess) -> None:
    client = ssh_client(agent.port)
    try:
        transport = client.get_transport()
        bare = transport.open_session()
        bare.sendall(hello(True) + EOM)
        # No hello comes back on a channel that never asked for netconf: what it sent is dropped and it is closed.
        assert read_to_eof(bare, 10) == b""
        agent.log_until("data on a channel that runs no NETCONF session")
        for request in ("invoke_shell", "exec_command"):
            other = transport.open_session()
            with pytest.raises(paramiko.SSHException):
                getattr(other, request)(*(["ls"] if request == "exec_command" else []))
        wrong = transport.open_session()
        with pytest.raises(paramiko.SSHException):
            wrong.invoke_subsystem("sftp")
    finally:
        client.close()


def test_a_second_subsystem_request_on_a_channel_is_refused(agent: AgentProcess) -> None:
    """RFC 4254 6.5: one subsystem per channel. A second request started a second session on the same channel,
    which sent the client a second <hello>."""
    client = ssh_client(agent.port)
    try:
        channel = open_subsystem(client)
        read_until(channel, EOM)  # the session's hello
        with pytest.raises(paramiko.SSHException):  # refused (and paramiko closes the channel then)
            channel.invoke_subsystem("netconf")
        agent.log_until("refusing a second netconf subsystem request")
    finally:
        client.close()
    agent.log_until("session 1 from 127.0.0.1 ended before its hello")
    assert "session 2 " not in agent.log_text()


def test_a_channel_without_netconf_holds_nothing_a_client_sends_on_it(agent: AgentProcess) -> None:
    """paramiko kept whatever was sent on a channel nobody reads: a client ignoring the window made the agent
    hold 300 MiB in 2 s on one channel that never asked for a subsystem."""
    pid = agent.proc.pid  # type: ignore[union-attr]
    client = ssh_client(agent.port)
    try:
        transport = client.get_transport()
        assert transport is not None
        bare = transport.open_session()
        ignore_window(bare)
        before = rss_kib(pid)
        flood(bare, 64 * 1024 * 1024)
        wait_until(lambda: bare.closed, 10, "the agent to close the channel")
        assert rss_kib(pid) - before < 16 * 1024
        agent.log_until("closing SSH channel")
        assert get_config_works(client)  # the connection goes on
    finally:
        client.close()


def test_a_client_sending_past_its_ssh_window_is_disconnected(agent: AgentProcess) -> None:
    """While a session answers a request it does not read its channel; a client ignoring the window could
    fill the agent's memory meanwhile (300 MiB in 3 s behind a long filter)."""
    pid = agent.proc.pid  # type: ignore[union-attr]
    client, channel = netconf_session(agent.port)
    try:
        # A filter that runs until its budget is spent keeps the session's thread busy for seconds.
        select = nested_count(5).replace(">", "&gt;")
        channel.sendall(frame(f'<rpc message-id="1" xmlns="{NC}"><get><filter type="xpath" select="{select}"/>'
                              "</get></rpc>"))
        # Requests are read in order: the session is busy with it before it would read what follows.
        ignore_window(channel)
        before = rss_kib(pid)
        flood(channel, 64 * 1024 * 1024)
        transport = client.get_transport()
        assert transport is not None
        wait_until(lambda: not transport.is_active(), 10, "the agent to close the connection")
        assert rss_kib(pid) - before < 16 * 1024
        agent.log_until("data beyond the SSH window the agent granted")
        agent.log_until("closed (dropped)")
    finally:
        client.close()
    with agent.connect() as m:  # others log in and work as before
        assert m.get_config("running").data_ele is not None


def _bytes_taken_while_busy(agent: AgentProcess) -> tuple[int, int]:
    """The SSH window a new session is granted, and how much its client could send (honouring the window) while
    the session was busy answering a request: (granted, sent)."""
    client = ssh_client(agent.port)
    try:
        channel = open_subsystem(client)
        granted = channel.out_window_size  # before the client sends anything
        read_until(channel, EOM)
        channel.sendall(hello(True) + EOM)
        select = nested_count(5).replace(">", "&gt;")  # runs until its CPU budget is spent: seconds
        channel.sendall(frame(f'<rpc message-id="1" xmlns="{NC}"><get><filter type="xpath" select="{select}"/>'
                              "</get></rpc>"))
        wait_busy(agent.proc.pid, 0.3)  # type: ignore[union-attr]  # the session took the request and is busy
        sent = granted - channel.out_window_size
        channel.settimeout(1.0)  # a send waits for window the busy session does not give back
        try:
            while True:
                sent += channel.send(b"<a>" + b"x" * 16000)
        except TimeoutError:
            pass
        return granted, sent
    finally:
        client.close()


def test_what_a_client_can_send_a_busy_session_is_its_share_of_the_input_budget(agent_factory) -> None:
    """While a session answers a request, paramiko keeps what its client sends, up to the SSH window the agent
    granted, outside --max-buffered-input: paramiko's 2 MiB for each of 256 sessions was 512 MiB beside the
    budget's 128. Each session's window is now its share of the budget, between 64 KiB and 2 MiB."""
    kib = 1024
    cases = (([], 128 * kib * kib // 256), (["--max-sessions", "16"], 2048 * kib),
             (["--max-buffered-input", str(16 * kib * kib)], 64 * kib))
    for number, (args, window) in enumerate(cases):
        agent = agent_factory(f"data{number}", args=args).start()
        granted, sent = _bytes_taken_while_busy(agent)
        assert granted == window, args
        # The hello and the request took some of the window; the rest, and no more, went while it was busy.
        assert window - 20 * kib <= sent <= window, (args, sent)
        with agent.connect() as m:  # a message larger than the window still goes through, window by window
            unmatched = "<hostname>" + "y" * (3 * window) + "</hostname>"
            reply = m.get_config("running", filter=("subtree", f'<system xmlns="{SYS}">{unmatched}</system>'))
            assert reply.ok and len(reply.data_ele) == 0
        agent.stop()


def test_channels_of_one_connection_are_independent(agent: AgentProcess) -> None:
    client, first = netconf_session(agent.port)
    try:
        closed_early = open_subsystem(client)
        closed_early.close()  # before its hello
        silent = open_subsystem(client)  # never sends its hello
        read_until(silent, EOM)
        assert b"<data" in rpc(first, "<get-config><source><running/></source></get-config>", "2")
        another = open_subsystem(client)  # a new channel is not blocked by the silent one
        read_until(another, EOM)
        another.sendall(hello(True) + EOM)
        assert b"<data" in rpc(another, "<get-config><source><running/></source></get-config>", "3")
        assert b"<data" in rpc(first, "<get-config><source><running/></source></get-config>", "4")
    finally:
        client.close()


def test_closed_connections_leave_no_threads_and_little_memory(agent: AgentProcess) -> None:
    pid = agent.proc.pid  # type: ignore[union-attr]
    with agent.connect():
        pass
    wait_until(lambda: threads(pid) <= threads(pid), 1, "settle")
    baseline_threads = threads(pid)
    baseline_rss = rss_kib(pid)
    for _ in range(100):
        client, channel = netconf_session(agent.port)
        rpc(channel, "<get-config><source><running/></source></get-config>")
        client.close()
    wait_until(lambda: threads(pid) <= baseline_threads, 15, "connection threads to end")
    assert rss_kib(pid) - baseline_rss < 20 * 1024


def test_connections_closed_at_once_leave_nothing_behind_and_logins_go_on(agent_factory) -> None:
    """Port probes (a TCP connect and close, as a load balancer's health check) hold no connection.

    paramiko wakes a thread waiting for the transport's channels once, when
    the transport ends; the agent's thread for them, not yet waiting then,
    waited for ever, and its connection counted against --max-sessions: with
    4, a few hundred probes left 4 behind and every later login was refused.
    """
    agent = agent_factory(args=["--max-sessions", "4"]).start()
    pid = agent.proc.pid  # type: ignore[union-attr]
    baseline_threads = threads(pid)
    for _ in range(300):
        probe = socket.create_connection(("127.0.0.1", agent.port))
        probe.close()

    def logs_in() -> bool:
        try:
            client, channel = netconf_session(agent.port)
        except (OSError, EOFError, paramiko.SSHException):
            return False  # refused: the last probes may still hold the 4 places for a moment
        try:
            return b"<data" in rpc(channel, "<get-config><source><running/></source></get-config>")
        finally:
            client.close()

    wait_until(logs_in, 15, "a login after the probes")
    wait_until(lambda: threads(pid) <= baseline_threads, 10, "the probes' threads to end")
    for _ in range(5):  # more logins than --max-sessions, one after the other: none is refused now
        assert logs_in()


# -- message sizes ----------------------------------------------------------------------------------
def test_a_message_over_the_cap_is_refused_with_malformed_message_and_memory_comes_back(agent_factory) -> None:
    agent = agent_factory(args=["--max-message-size", "1000000"]).start()
    pid = agent.proc.pid
    client, channel = netconf_session(agent.port)
    try:
        before = rss_kib(pid)
        body = b'<rpc message-id="1" xmlns="' + NC.encode() + b'"><get-config><source><running/></source>'
        payload = body + b" " * 3_000_000 + b"</get-config></rpc>"
        channel.sendall(b"\n#%d\n" % len(payload))
        try:
            for start in range(0, len(payload), 65536):
                channel.sendall(payload[start : start + 65536])
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the agent may have closed the channel already
        reply = read_to_eof(channel)
        assert b"malformed-message" in reply and b"larger than 1000000" in reply
    finally:
        client.close()
    assert rss_kib(pid) - before < 30 * 1024


def test_a_chunk_header_announcing_4_gb_is_refused_at_once(agent: AgentProcess) -> None:
    client, channel = netconf_session(agent.port)
    try:
        channel.sendall(b"\n#4294967295\n<rpc")
        reply = read_to_eof(channel, timeout=10)  # no waiting for 4 GB that never come
        assert b"malformed-message" in reply
    finally:
        client.close()


def test_a_message_of_one_byte_chunks_is_refused_past_65536_chunks(agent: AgentProcess) -> None:
    # Legal in RFC 6242, and 2 MiB sent this way took the agent 2.4 s of CPU and 120 MiB (a 16 MiB one: ~1 GB).
    client, channel = netconf_session(agent.port)
    try:
        head = f'<rpc message-id="1" xmlns="{NC}"><get-config><source><running/></source><filter>'.encode()
        flood = b"".join(b"\n#1\n" + bytes([byte]) for byte in head) + b"\n#1\n " * 70000
        try:
            channel.sendall(flood)
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the agent may have closed the channel already
        reply = read_to_eof(channel, timeout=10)
        assert b"malformed-message" in reply and b"more than 65536 chunks" in reply
    finally:
        client.close()


def test_a_flood_of_empty_elements_is_refused_before_it_is_parsed(agent: AgentProcess) -> None:
    # 13 MiB of <a/> in a <filter>: 3.5 million elements took the agent to 1.7 GB and 20 s, four at once killed it.
    pid = agent.proc.pid  # type: ignore[union-attr]
    before = status_value(pid, "VmHWM")
    client, channel = netconf_session(agent.port)
    try:
        flood = "<a/>" * 3_500_000
        reply = rpc(channel, f"<get-config><source><running/></source><filter>{flood}</filter></get-config>")
        assert b"too-big" in reply and b"more than 1000000 tags" in reply
        assert b"<data" in rpc(channel, "<get-config><source><running/></source></get-config>")  # the session goes on
    finally:
        client.close()
    assert status_value(pid, "VmHWM") - before < 150 * 1024


def test_a_large_message_within_the_cap_is_read(agent: AgentProcess) -> None:
    client, channel = netconf_session(agent.port)
    try:
        # 12 MB in 1,000 pieces: lxml refuses any single text or comment node over 10 MB.
        selects = f'<hostname xmlns="{SYS}"/>{" " * 12_000}' * 1000
        reply = rpc(channel, f'<get-config><source><running/></source><filter type="subtree">{selects}</filter>'
                             "</get-config>")
        assert b"<data" in reply and b"rpc-error" not in reply
    finally:
        client.close()


# -- RFC 6241 details on the wire -------------------------------------------------------------------
def test_extra_rpc_attributes_come_back_unmodified(agent: AgentProcess) -> None:
    client, channel = netconf_session(agent.port)
    try:
        message = (f'<rpc message-id="101" xmlns="{NC}" xmlns:ex="http://example.net/content/1.0" '
                   'ex:user-id="fred"><get-config><source><running/></source></get-config></rpc>')
        channel.sendall(frame(message))
        reply = read_until(channel, END_OF_CHUNKS).split(b"\n", 2)[2].rsplit(b"\n##", 1)[0]
        root = etree.fromstring(reply)
        assert root.get("{http://example.net/content/1.0}user-id") == "fred"
        assert b'ex:user-id="fred"' in reply and b'xmlns:ex="http://example.net/content/1.0"' in reply
        assert root.get("message-id") == "101"
    finally:
        client.close()


def test_text_mixed_into_rpc_is_malformed(agent: AgentProcess) -> None:
    client, channel = netconf_session(agent.port)
    try:
        reply = rpc(channel, "stray text<get-config><source><running/></source></get-config>")
        assert b"malformed-message" in reply
    finally:
        client.close()


def test_close_session_ends_with_ok_then_eof(agent: AgentProcess) -> None:
    client, channel = netconf_session(agent.port)
    try:
        assert b"<ok/>" in rpc(channel, "<close-session/>")
        assert read_to_eof(channel) == b""
    finally:
        client.close()


def test_kill_session_ends_the_other_session_and_frees_its_lock(agent: AgentProcess) -> None:
    victim = agent.connect()
    with agent.connect() as killer:
        victim.lock("running")
        with pytest.raises(RPCError) as denied:
            killer.lock("running")
        assert denied.value.tag == "lock-denied"
        killer.kill_session(victim.session_id)
        killer.lock("running")
        assert int(victim.session_id) not in session_ids(killer)
        killer.unlock("running")
    wait_until(lambda: not victim.connected, 10, "the killed session's transport to close")


def test_sigterm_with_a_stalled_reader_signal_handler(agent: AgentProcess) -> None:
    """The agent's main thread must react to SIGTERM even with sessions mid-message."""
    client, channel = netconf_session(agent.port)
    channel.sendall(b"\n#100\n<rpc")  # the rest never comes
    try:
        agent.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        assert agent.proc.wait(10) == 0  # type: ignore[union-attr]
    finally:
        client.close()
