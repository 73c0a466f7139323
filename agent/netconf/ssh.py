"""NETCONF over SSH (RFC 6242) on paramiko: the listener and its connections.

The `netconf` package's server (and the `sshutil` one under it) could not be
made correct, so this module replaces it (README, "Why not the netconf
package's server"): its accept thread ran every SSH handshake, so one silent
client stalled all logins; its reader spun on a closed socket; it kept every
closed connection; it served NETCONF on channels that never asked for the
subsystem; its framing reader was quadratic and unbounded.

Here:
- one accept thread only accepts; each connection's handshake runs on the
  connection's own paramiko thread, bounded by ``handshake_timeout``;
- a session starts only on a ``netconf`` subsystem request, each channel on
  its own threads (agent/netconf/session.py), so channels are independent;
  a pty request is granted (OpenSSH clients run with ``-tt`` ask for one);
- a connection with no session is closed after ``handshake_timeout``;
- data on a channel that runs no session is dropped and the channel closed,
  data past the SSH window the connection closed (channel_watch.guard_input):
  paramiko would keep either, without limit, until read;
- nothing is kept for a closed connection;
- past ``max_sessions`` connections, a new one takes the place of the oldest
  connection that has no NETCONF session, from the address holding the most
  of those: silent connections from one host cannot lock everybody out for
  good (each held its slot for ``handshake_timeout``, and a host reopening
  them kept every login refused). Only when every connection has a session
  is the new one refused (logged).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import paramiko

from agent.netconf.auth import Authenticator, LoginThrottle, SshAuthController
from agent.netconf.channel_watch import InputRefusal, guard_input, on_close
from agent.netconf.deadlines import Deadline, Deadlines
from agent.netconf.dispatch import EndReason, NetconfAgent
from agent.netconf.session import NetconfSession, SessionLimits

log = logging.getLogger(__name__)


# How long a connection's channel drain waits before asking whether the transport still runs (s):
# a normal end wakes it at once, so this only bounds how long a connection that missed the wake-up
# keeps its place. 0.5 s cost 100 idle sessions 0.5 % of a core more; 2 s, nothing measurable.
_ACCEPT_WAIT = 2.0

# The SSH window granted to each channel: at most paramiko's own (2 MiB), at least two of its largest packets.
_MAX_CHANNEL_WINDOW = 2 * 1024 * 1024
_MIN_CHANNEL_WINDOW = 64 * 1024


@dataclass(frozen=True)
class ServerLimits:
    """Limits of the SSH server (``ca-agent`` flags; defaults documented in the README)."""

    handshake_timeout: float = 30.0  # TCP accept -> NETCONF subsystem started
    tcp_keepalive: float | None = 60.0  # silence before TCP keepalive probes (None: none); see keep_alive()
    max_sessions: int = 256
    max_channels_per_connection: int = 16
    session: SessionLimits = field(default_factory=SessionLimits)

    def channel_window(self) -> int:
        """The SSH window granted to each channel (RFC 4254 5.2): what paramiko may hold of it unread.

        A session does not read its channel while it answers a request, and
        paramiko keeps what arrives meanwhile, up to the window, outside the
        input budget. With paramiko's 2 MiB for every one of 256 sessions
        that was 512 MiB beside the budget's 128. So the windows of all
        sessions together are held to the budget (``--max-buffered-input``
        over ``--max-sessions``: 512 KiB each by default), between 64 KiB and
        2 MiB; a client sending a larger message waits for window adjusts,
        which paramiko sends as the session reads.
        """
        share = self.session.input_budget.limit // self.max_sessions
        return max(_MIN_CHANNEL_WINDOW, min(_MAX_CHANNEL_WINDOW, share))


class _Connection:
    """One SSH connection: its transport, its sessions, its deadline."""

    def __init__(self, server: NetconfSshServer, sock: socket.socket, peer: tuple[str, int]) -> None:
        self.server = server
        self.peer = peer
        self.accepted_at = time.monotonic()
        self.sessions: dict[paramiko.Channel, NetconfSession] = {}  # by the channel each runs on
        # paramiko holds channels weakly and closes one when it is garbage
        # collected: the connection keeps every channel it accepted until it closes.
        self.channels: set[paramiko.Channel] = set()
        self._refused_channels: set[paramiko.Channel] = set()  # data dropped and the closing under way
        self._lock = threading.Lock()
        self._deadline: Deadline | None = None
        self._closed = False  # the transport is gone (set once its channel queue ends)
        limits = server.limits
        self.transport = paramiko.Transport(QuickAckSocket(sock), default_window_size=limits.channel_window())
        # paramiko's own stage timeouts, under our overall deadline.
        self.transport.banner_timeout = limits.handshake_timeout
        self.transport.handshake_timeout = limits.handshake_timeout
        self.transport.auth_timeout = limits.handshake_timeout
        self.transport.add_server_key(server.host_key)
        # paramiko would buffer any amount of data on a channel nobody reads, or past the window.
        guard_input(self.transport, self._runs_session, self._input_refused)
        self.controller = _ServerInterface(self)

    def start(self) -> None:
        self._arm_deadline()
        # With an event, start_server returns at once; the handshake runs on
        # the transport's own thread, never on the accept thread.
        self.transport.start_server(event=threading.Event(), server=self.controller)
        threading.Thread(target=self._drain_channels, name=f"ssh-accept {self.peer[0]}", daemon=True).start()

    def _drain_channels(self) -> None:
        # paramiko queues every opened channel until accept()ed; sessions are
        # started by the subsystem request, so here we only take them off the
        # queue. accept() never returns None for a closed transport by itself:
        # the transport wakes a waiting accept() once, when it ends, and a
        # thread not waiting at that instant (not yet started, or between two
        # accepts, when a client connects and leaves at once) would wait for
        # ever, its connection counted against --max-sessions: 256 port probes
        # refused every login. So the wait is bounded and the transport asked.
        while True:
            channel = self.transport.accept(_ACCEPT_WAIT)
            if channel is None:
                if self.transport.is_active():
                    continue
                break
            with self._lock:
                self.channels = {c for c in self.channels if not c.closed}
                self.channels.add(channel)
                self._refused_channels = {c for c in self._refused_channels if not c.closed}
        with self._lock:
            self.channels.clear()
            self._closed = True
            if self._deadline is not None:  # closed by the client: nothing left to time out
                self._deadline.cancel()
                self._deadline = None
        self.server._connection_closed(self)

    def _arm_deadline(self) -> None:
        with self._lock:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            if self._closed:
                return
            self._deadline = self.server.deadlines.after(self.server.limits.handshake_timeout, self._deadline_passed)

    def _deadline_passed(self) -> None:
        with self._lock:
            idle = not self.sessions
        if idle:
            log.info("closing SSH connection from %s: no NETCONF session within %g s",
                     self.peer[0], self.server.limits.handshake_timeout)
            self.close()

    def _runs_session(self, channel: paramiko.Channel) -> bool:
        with self._lock:
            return channel in self.sessions and channel not in self._refused_channels

    def _input_refused(self, channel: paramiko.Channel, why: InputRefusal) -> None:
        # On the transport's thread: log and close once, on a thread of its own (closing sends messages,
        # which wait while a key exchange runs on this very thread).
        with self._lock:
            if channel in self._refused_channels:
                return
            self._refused_channels.add(channel)
        if why is InputRefusal.OVER_WINDOW:
            log.warning("closing SSH connection from %s: %s", self.peer[0], why.value)
            close: Callable[[], None] = self.close
        else:
            log.warning("closing SSH channel %d from %s: %s", channel.get_id(), self.peer[0], why.value)
            close = channel.close
        threading.Thread(target=close, name=f"ssh-refuse {self.peer[0]}", daemon=True).start()

    def without_session(self) -> bool:
        """No NETCONF session runs on it (still in its handshake or login, or every session ended)."""
        with self._lock:
            return not self.sessions and not self._closed

    def may_open_channel(self) -> bool:
        with self._lock:
            open_channels = sum(1 for channel in self.channels if not channel.closed)
        return open_channels < self.server.limits.max_channels_per_connection

    def start_session(self, channel: paramiko.Channel, username: str) -> bool:
        with self._lock:
            # RFC 4254 6.5: one shell, exec or subsystem per channel. paramiko asks again for each request, and a
            # second one started a second session reading the same channel, with a second <hello>.
            again = channel in self.sessions
        if again:
            log.warning("refusing a second netconf subsystem request on SSH channel %d from %s",
                        channel.get_id(), self.peer[0])
            return False
        if not self.server._reserve_session():
            log.warning("refusing a NETCONF session for %s from %s: %d sessions already",
                        username, self.peer[0], self.server.limits.max_sessions)
            return False
        session = NetconfSession(
            channel, self.server.agent, username, self.peer[0], self.server.deadlines,
            self.server.limits.session, self._session_ended,
        )
        with self._lock:
            self.sessions[channel] = session
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
        # A client that leaves while its request is being answered stops that work.
        on_close(channel, session.cancellation.cancel)
        session.start()
        return True

    def _session_ended(self, session: NetconfSession) -> None:
        self.server._release_session()
        with self._lock:
            self.sessions.pop(session.channel, None)
            self._refused_channels.discard(session.channel)
            idle = not self.sessions
        if idle:
            # The client may open another channel; if it does not, the
            # connection goes like any other that holds no session.
            self._arm_deadline()

    def close(self) -> None:
        with self._lock:
            sessions = list(self.sessions.values())
            if self._deadline is not None:
                self._deadline.cancel()
        for session in sessions:
            if self.server.stopping:
                session.abort("the agent is shutting down", EndReason.OTHER)
            else:
                session.abort("connection closed", EndReason.DROPPED)
        self.transport.close()


_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux
_KEEPALIVE_PROBES = 6


def keep_alive(sock: socket.socket, idle: float) -> None:
    """Drop the connection of a client that vanished without closing it, after about ``2 * idle`` seconds.

    A client that loses power or network sends no FIN: without this its
    session, and the locks it holds, stayed for ever (nothing is sent to a
    client that sends nothing). The kernel probes after ``idle`` seconds of
    silence, then :data:`_KEEPALIVE_PROBES` times ``idle / 6`` seconds apart
    (at least 1 s); data we sent that stays unacknowledged for ``2 * idle``
    seconds ends the connection too (TCP_USER_TIMEOUT, for a client that
    vanished while we were sending to it: TCP's own retries take ~15 min).
    Linux also applies that timeout to a receive window that stays closed,
    so a client whose process stopped reading its socket altogether (e.g.
    suspended) while we had data for it goes after ``2 * idle`` seconds too;
    a client that only stops reading one channel does not, as its SSH stack
    keeps reading. The agent's next read then fails, and the session ends as
    a dropped one. Linux options; elsewhere only SO_KEEPALIVE, with the
    system's timings.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = (
        ("TCP_KEEPIDLE", max(1, round(idle))),
        ("TCP_KEEPINTVL", max(1, round(idle / _KEEPALIVE_PROBES))),
        ("TCP_KEEPCNT", _KEEPALIVE_PROBES),
        ("TCP_USER_TIMEOUT", max(1000, round(2000 * idle))),  # milliseconds
    )
    for name, value in options:
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class QuickAckSocket:
    """An accepted socket that acknowledges what it reads at once (Linux TCP_QUICKACK).

    Clients that leave Nagle's algorithm on (paramiko, hence ncclient) hold
    a small message until the previous one is acknowledged. When a reply is
    complete, the client's last small message (an SSH window adjust) waited
    for our delayed ACK, 40 ms, and with it the next request: get-config of
    1,000 trustpoints took 44 ms instead of 3 ms. TCP_QUICKACK is not
    permanent, hence re-armed after each read.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        if _TCP_QUICKACK is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            except OSError:  # closed meanwhile: the next recv says so
                pass
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


class _ServerInterface(SshAuthController):
    """Channel policy of one connection on top of the authentication checks."""

    def __init__(self, connection: _Connection) -> None:
        super().__init__(connection.server.authenticator, connection.server.throttle, connection.peer[0])
        self.connection = connection

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind != "session":
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        if not self.connection.may_open_channel():
            return paramiko.OPEN_FAILED_RESOURCE_SHORTAGE
        return paramiko.OPEN_SUCCEEDED

    def check_channel_pty_request(
        self, channel: paramiko.Channel, term: bytes, width: int, height: int,
        pixelwidth: int, pixelheight: int, modes: bytes,
    ) -> bool:
        # Granted but unused: the netconf subsystem still runs on this channel.
        return True

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        if name != "netconf" or self.username is None:
            return False
        return self.connection.start_session(channel, self.username)


class NetconfSshServer:
    """The listener: one address, one port; connections and sessions under limits."""

    def __init__(
        self,
        agent: NetconfAgent,
        authenticator: Authenticator,
        host_key: paramiko.PKey,
        host: str = "127.0.0.1",
        port: int = 8830,
        limits: ServerLimits | None = None,
    ) -> None:
        self.agent = agent
        self.authenticator = authenticator
        self.host_key = host_key
        self.limits = limits or ServerLimits()
        self.throttle = LoginThrottle()
        self.deadlines = Deadlines()
        self.stopping = False
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._sessions = 0
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=128)
        self.port = int(self._listener.getsockname()[1])
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._accept_loop, name=f"netconf-listen {host}:{self.port}",
                                        daemon=True)
        self._thread.start()
        log.info("NETCONF over SSH listening on %s port %d", host, self.port)

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self._connections)

    def _accept_loop(self) -> None:
        while True:
            readable, _, _ = select.select([self._listener, self._wake_r], [], [])
            if self._wake_r in readable:
                return
            try:
                sock, addr = self._listener.accept()
            except OSError:
                continue
            self._accepted(sock, (str(addr[0]), int(addr[1])))

    def _accepted(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        with self._lock:
            full = len(self._connections) >= self.limits.max_sessions
        if full and not self._make_room(peer[0]):
            log.warning("refusing SSH connection from %s: %d connections already (--max-sessions)",
                        peer[0], self.limits.max_sessions)
            sock.close()
            return
        # Small NETCONF messages must not wait for Nagle (a 40 ms stall at set-up).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.limits.tcp_keepalive is not None:
            keep_alive(sock, self.limits.tcp_keepalive)
        try:
            connection = _Connection(self, sock, peer)
        except Exception as error:  # paramiko refuses a socket it cannot use
            log.warning("cannot serve SSH connection from %s: %s", peer[0], error)
            sock.close()
            return
        with self._lock:
            self._connections.add(connection)
        try:
            connection.start()
        except Exception as error:
            log.warning("SSH connection from %s failed to start: %s", peer[0], error)
            connection.close()

    def _make_room(self, newcomer: str) -> bool:
        """Close the oldest connection without a session, from the address that has the most; False if none.

        Runs on the accept thread, so no other connection is added meanwhile.
        """
        with self._lock:
            connections = list(self._connections)
        waiting = [c for c in connections if c.without_session()]  # each takes its own lock: not under ours
        if not waiting:
            return False
        per_address = Counter(c.peer[0] for c in waiting)
        crowded = max(per_address, key=lambda address: per_address[address])
        victim = min((c for c in waiting if c.peer[0] == crowded), key=lambda c: c.accepted_at)
        with self._lock:
            self._connections.discard(victim)  # its slot is free now; its own thread ends it below
        log.warning("closing SSH connection from %s, without a NETCONF session after %.1f s, to make room for "
                    "one from %s (--max-sessions %d reached)", victim.peer[0],
                    time.monotonic() - victim.accepted_at, newcomer, self.limits.max_sessions)
        victim.close()
        return True

    def _connection_closed(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _reserve_session(self) -> bool:
        with self._lock:
            if self._sessions >= self.limits.max_sessions or self.stopping:
                return False
            self._sessions += 1
            return True

    def _release_session(self) -> None:
        with self._lock:
            self._sessions -= 1

    def shutdown(self, timeout: float = 3.0) -> None:
        """Stop accepting, end every session and connection; bounded by ``timeout``."""
        with self._lock:
            self.stopping = True
            connections = list(self._connections)
        self._wake_w.send(b"x")
        self._thread.join(timeout)
        self._listener.close()
        for connection in connections:
            connection.close()
        for connection in connections:
            connection.transport.join(timeout / max(len(connections), 1))
        self.deadlines.stop()
