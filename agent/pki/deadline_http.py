"""HTTP requests bounded by one deadline: what the PKI backend's HTTP peers are allowed to cost.

A SCEP CA, a CRL distribution point and a CA-bundle server are all peers the
agent does not control. With a timeout per socket operation (urllib's), a
server that sends one byte every few seconds holds the caller for as long as
it likes. Here connecting, the TLS handshake, sending and *every* read of the
answer get only the time left until one deadline, so such a server costs the
caller at most that.

One request per connection (``Connection: close``); environment proxies are
not consulted (the peer is addressed directly, as a router does). Redirect
policy is the caller's: :func:`request` returns a 3xx as it is.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from agent.clock import Clock

__all__ = ["REDIRECTS", "BodyTooLargeError", "Deadline", "Reply", "origin", "printable", "request"]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK = 64 * 1024


class BodyTooLargeError(Exception):
    """The answer's body is larger than the caller's limit (nothing more is read)."""


class Deadline:
    """Seconds left until a monotonic deadline; TimeoutError once it has passed."""

    def __init__(self, clock: Clock, at: float) -> None:
        self._clock = clock
        self._at = at

    @classmethod
    def after(cls, clock: Clock, seconds: float) -> Deadline:
        return cls(clock, clock.monotonic() + seconds)

    def remaining(self) -> float:
        left = self._at - self._clock.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        return left


@dataclass(frozen=True)
class Reply:
    """An HTTP answer; the body is read for a 2xx status only (empty otherwise)."""

    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes


def origin(url: str, ports: Mapping[str, int] = DEFAULT_PORTS) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute URL of a scheme in ``ports`` (default port by scheme; http and https
    unless told), None for anything else."""
    try:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port or ports.get(scheme)
    except ValueError:
        return None
    if scheme not in ports or not host or port is None:
        return None
    return scheme, host, port


def printable(url: str) -> str:
    """``url`` shortened and stripped of control characters, for a message."""
    text = "".join(c if c.isprintable() else "?" for c in url)
    return text if len(text) <= 200 else text[:197] + "..."


def request(
    method: str, url: str, *, deadline: Deadline, limit: int, body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request to the absolute http(s) ``url`` on a fresh connection, answered before ``deadline``.

    Raises TimeoutError (the deadline passed, at any step), OSError (cannot
    connect, TLS failure, connection reset), http.client.HTTPException
    (malformed HTTP; InvalidURL, a ValueError, for a URL it cannot send),
    BodyTooLargeError (a 2xx body over ``limit`` bytes).
    """
    parts = urllib.parse.urlsplit(url)
    cls = _TlsConnection if parts.scheme.lower() == "https" else _Connection
    connection = cls(parts.hostname or "", parts.port, deadline)
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    response: http.client.HTTPResponse | None = None
    try:
        connection.request(method, target, body=body, headers={**(headers or {}), "Connection": "close"})
        response = connection.getresponse()
        status = int(response.status)
        if not 200 <= status < 300:
            return Reply(status, response.reason or "", response.headers, b"")  # the body is of no use
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError(f"more than {limit} bytes")
            chunks.append(chunk)
        deadline.remaining()  # an answer completed after the deadline is late too
        return Reply(status, response.reason or "", response.headers, b"".join(chunks))
    finally:
        if response is not None:
            response.close()
        connection.close()


class _DeadlineReader(io.RawIOBase):
    """Reads a socket, each read bounded by the time left until the deadline."""

    def __init__(self, owner: _DeadlineSocket) -> None:
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        sock = self._owner.sock
        sock.settimeout(self._owner.deadline.remaining())
        return sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._owner.release()
        super().close()


class _DeadlineSocket:
    """The part of a socket http.client uses, with every blocking call bounded by the deadline.

    Like a real socket, it stays open until both it and every file made by
    :meth:`makefile` are closed (http.client closes the connection before the
    response has been read when the server says ``Connection: close``).
    """

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self.sock = sock
        self.deadline = deadline
        self._files = 0
        self._closed = False

    def sendall(self, data: bytes) -> None:
        self.sock.settimeout(self.deadline.remaining())  # sendall's timeout covers the whole call
        self.sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: object, **kwargs: object) -> io.BufferedReader:
        if "r" not in mode or "w" in mode:
            raise ValueError(f"unsupported makefile mode {mode!r}")
        self._files += 1
        return io.BufferedReader(_DeadlineReader(self))

    def release(self) -> None:
        self._files -= 1
        if self._closed and self._files == 0:
            self.sock.close()

    def close(self) -> None:
        self._closed = True
        if self._files == 0:
            self.sock.close()


class _Connection(http.client.HTTPConnection):
    """An HTTP connection whose connect, send and reads share one deadline."""

    def __init__(self, host: str, port: int | None, deadline: Deadline) -> None:
        super().__init__(host, port)
        self._deadline = deadline

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self._deadline.remaining())
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def connect(self) -> None:
        self.sock = _DeadlineSocket(self._open(), self._deadline)


class _TlsConnection(_Connection):
    """HTTPS: the TLS handshake too is bounded by the deadline."""

    default_port = http.client.HTTPS_PORT

    def __init__(self, host: str, port: int | None, deadline: Deadline) -> None:
        super().__init__(host, port, deadline)
        self._context = ssl.create_default_context()

    def connect(self) -> None:
        raw = self._open()
        try:
            tls = self._context.wrap_socket(raw, server_hostname=self.host, do_handshake_on_connect=False)
            tls.settimeout(self._deadline.remaining())  # do_handshake's timeout covers the whole handshake
            tls.do_handshake()
        except BaseException:
            raw.close()
            raise
        self.sock = _DeadlineSocket(tls, self._deadline)
