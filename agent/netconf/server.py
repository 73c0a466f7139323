"""NETCONF over SSH (RFC 6242), built on the `netconf` server package.

The package gives us SSH (paramiko via sshutil), the hello exchange, both
framings and a reader thread per session. We change three things:
- it binds every interface (`::`), with no way to choose: we bind the
  configured address only;
- one paramiko ServerInterface would be shared by all connections, so the
  authenticated user would leak between them: we make one per connection;
- its message handler closes the session on malformed XML and answers only
  the base operations: we hand each message to :class:`NetconfAgent` instead.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import paramiko
import sshutil.server
from netconf.server import NetconfServerSession, NetconfSSHServer

from agent.netconf.auth import Authenticator, SshAuthController
from agent.netconf.dispatch import NetconfAgent, SessionInfo

log = logging.getLogger(__name__)

# RFC 6242 section 4.1: the end-of-message marker of base:1.0 framing.
_EOM = b"]]>]]>"


class _Connection(sshutil.server.SSHServerSocket):
    """One SSH connection, with its own authentication state."""

    def __init__(self, server_ctl: Any, session_class: Any, extra_args: Any, server: Any,
                 newsocket: socket.socket, addr: Any, debug: bool) -> None:
        authenticator: Authenticator = server_ctl
        # Small NETCONF messages must not wait for Nagle (a 40 ms stall at set-up).
        newsocket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().__init__(SshAuthController(authenticator), session_class, extra_args, server, newsocket, addr, debug)


class AgentSession(NetconfServerSession):
    """A NETCONF session whose messages are answered by the NetconfAgent."""

    def __init__(self, channel: paramiko.Channel, server: NetconfServer, extra_args: Any, debug: bool) -> None:
        transport = channel.get_transport()
        peer = transport.getpeername() if transport is not None else ("?", 0)
        self.agent: NetconfAgent = server.agent
        self._info: SessionInfo | None = None
        self._closed = False
        self._username = (transport.get_username() if transport is not None else None) or "?"
        self._peer = str(peer[0])
        self._registered = threading.Event()
        # The parent sends our hello, reads the client's and starts the reader
        # thread; only then is the session id final and the session ours.
        super().__init__(channel, server, extra_args, debug)
        self._register()

    def _register(self) -> None:
        info = SessionInfo(
            session_id=self.session_id,
            username=self._username,
            source_host=self._peer,
            login_time=self.agent.clock.now(),
            close_callback=self.close,
        )
        self._info = info
        self.agent.open_session(info)
        self._registered.set()

    def _receive_message(self) -> Any:
        if self.session_open:
            return super()._receive_message()
        return self._receive_hello()

    def _receive_hello(self) -> str:
        """Read the client's <hello> in either framing.

        ncclient may send its hello chunk-framed once it has seen base:1.1
        (ncclient issue 524); RFC 6242 wants end-of-message framing here, but
        refusing would only break a widely used client.
        """
        stream = self.pkt_stream
        while len(stream.rbuffer) < 2:
            data = stream.stream.recv(stream.max_chunk)
            if not data:
                raise EOFError("client closed the connection before its hello")
            stream.rbuffer += data
        if stream.rbuffer[:2] == b"\n#":
            return str(stream._receive_11())
        return str(stream._receive_10())

    def _reader_handle_message(self, msg: str) -> None:
        self._registered.wait(30)
        if not self.session_open or self._info is None:
            return
        reply = self.agent.handle_message(self._info, msg)
        self.send_message(reply)
        if self._info.closing:
            self.close()

    def _reader_exits(self) -> None:
        self._finish(dropped=not (self._info is not None and self._info.closing))

    def close(self) -> None:
        session_id = self.session_id
        super().close()
        if session_id is not None and self._info is not None:
            self._finish(dropped=not self._info.closing)

    def _finish(self, dropped: bool) -> None:
        if self._closed or self._info is None:
            return
        self._closed = True
        self.agent.close_session(self._info.session_id, dropped=dropped)


class NetconfServer(NetconfSSHServer):
    """The SSH listener: one address, one port, our sessions."""

    def __init__(
        self,
        agent: NetconfAgent,
        authenticator: Authenticator,
        host_key: paramiko.PKey,
        host: str = "127.0.0.1",
        port: int = 8830,
    ) -> None:
        # Deliberately not calling the parents' __init__: it binds every
        # interface. What follows sets the same attributes they set.
        self.agent = agent
        self.server_methods = agent
        self.session_id = 1
        self.session_locks_lock = threading.Lock()
        self.session_locks = {"running": 0, "candidate": 0}
        self.server_ctl = authenticator
        self.server_socket_class = _Connection
        self.server_session_class = AgentSession
        self.extra_args = None
        self.debug = False
        self.host_key = host_key
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=100)
        self.port = listener.getsockname()[1]
        self.ports = {family: self.port}
        self.close_wsocket, self.close_rsocket = socket.socketpair()
        self.lock = threading.Lock()
        self.sockets: list[Any] = []
        self.thread = threading.Thread(
            target=self._accept_socket_thread, args=[listener], name=f"netconf-accept {host}:{self.port}", daemon=True
        )
        self.thread.start()
        log.info("NETCONF over SSH listening on %s port %d", host, self.port)

    def _allocate_session_id(self) -> int:
        return self.agent.allocate_session_id()

    def __del__(self) -> None:  # the parent logs an error on every deletion
        pass

    def shutdown(self) -> None:
        """Stop accepting and close every connection."""
        self.close()
        self.join()
