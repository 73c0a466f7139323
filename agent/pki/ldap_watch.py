"""The one adapter to ldap3 internals: an LDAP connection held to a deadline and to the size of its answer.

ldap3 bounds each connect and each read, not an exchange, and it keeps and
decodes whatever a server sends: a server that trickles its answer holds the
caller for as long as it likes, and one that floods it makes the agent decode
it all. Measured before this module, within a 10 s deadline: a server sending
search entries without end took the fetching process to 701–717 MiB (one
``ca-crl-request`` grew the agent's peak RSS by 987 MiB); one entry of 9 MB
holding three million one-byte values, to 370 MiB (ldap3 makes Python objects
of every value). A CRL distribution point in a peer's certificate or a
trustpoint's ``query url`` may name such a server.

:class:`LdapWatch` guards one :class:`ldap3.Connection` (sync strategy):

- a timer shuts the connection's socket down at the deadline, which ends
  ldap3's read in progress (ldap3 then reports the connection closed);
- once open, the connection's socket is replaced by :class:`_GuardedSocket`,
  which follows the LDAP messages it receives (their BER headers) and refuses
  the answer, by an ``OSError`` from ``recv`` that ldap3 reports as a receive
  error, once it exceeds a byte limit, a number of messages or, within one
  message, a number of BER elements. The last check runs on a message's final
  bytes, before ldap3 sees them whole, so ldap3 never decodes a refused one.

Internals relied on (ldap3 2.9): ``Connection.socket`` is a plain attribute
that the sync strategy reads for every ``recv``, ``sendall``, ``shutdown``
and ``close``, and sets to ``None`` when it closes; a receive error raises an
``LDAPException`` from the operation. tests/e2e/trust/test_crl_fetch_hostile.py
checks this against the installed ldap3, over real connections to hostile
servers (tests/unit/pki/test_ldap_watch.py, how messages are followed
wherever reads split them); the version is checked at import.
"""

from __future__ import annotations

import errno
import socket
import threading
from typing import Any

import ldap3
from ldap3.utils.config import set_config_parameter

__all__ = ["LdapWatch", "MAX_ELEMENTS", "MAX_MESSAGES"]

_SUPPORTED = (2, 9)
if tuple(int(part) for part in ldap3.__version__.split(".")[:2]) != _SUPPORTED:  # pragma: no cover - setup.cfg pins it
    raise ImportError(
        "agent.pki.ldap_watch relies on ldap3 2.9 internals (Connection.socket read by the sync strategy "
        f"for every recv); found {ldap3.__version__}"
    )

# ldap3 appends each read to a bytes object (a copy of all so far per read): with its default of 4 KiB
# per read a 16 MB CRL took 1.72 s; with 1 MiB, 0.13 s. A public configuration parameter of ldap3's,
# global to the process: the CRL fetch is ldap3's only user here.
set_config_parameter("SOCKET_SIZE", 1 << 20)

MAX_MESSAGES = 16
"""Messages one connection may receive: a bind's answer, then a BASE search's entry, references and end."""

MAX_ELEMENTS = 1000
"""BER elements one message may hold (a CRL's entry holds about ten: the CRL itself is one string)."""


class LdapWatch:
    """Holds ``connection`` to ``timeout`` seconds from now and its answers to ``max_bytes`` in all."""

    def __init__(self, connection: ldap3.Connection, timeout: float, max_bytes: int) -> None:
        self._connection = connection
        self._timeout = timeout
        self._answer = _AnswerLimits(max_bytes)
        self._fired = False
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True
        self._timer.name = "pki-ldap-deadline"
        self._timer.start()

    def guard_answers(self) -> None:
        """Follow what the (open) connection receives from now on. Raises nothing."""
        sock = self._connection.socket
        if sock is not None and not isinstance(sock, _GuardedSocket):
            self._connection.socket = _GuardedSocket(sock, self._answer)

    def _fire(self) -> None:
        self._fired = True
        sock = self._connection.socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected yet, or closed meanwhile

    def cancel(self) -> None:
        self._timer.cancel()

    def why(self, exc: Exception, what: str) -> str:
        """What a failure is called: the deadline's or the limit's when one of them ended it."""
        if self._answer.refused is not None:
            return f"the LDAP server's answer {self._answer.refused}"
        if self._fired:
            return f"no complete answer within {self._timeout:g} s"
        text = str(exc).strip() or type(exc).__name__
        return f"{what} ({text})"


class _AnswerLimits:
    """Follows a stream of LDAP messages (BER, definite lengths as RFC 4511 requires) and checks the limits."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._received = 0
        self._messages = 0
        self._pending = bytearray()  # the bytes of the message being received
        self.refused: str | None = None

    def take(self, data: bytes) -> None:
        """Account for ``data``, the next bytes received. Raises OSError once the answer is refused."""
        if self.refused is None:
            self.refused = self._check(data)
        if self.refused is not None:
            raise OSError(errno.EMSGSIZE, f"answer refused: {self.refused}")

    def _check(self, data: bytes) -> str | None:
        self._received += len(data)
        if self._received > self._max_bytes:
            return f"is larger than {self._max_bytes} bytes"
        self._pending += data
        while self._pending:
            try:
                header = _header(self._pending, 0, len(self._pending))
            except ValueError as exc:
                return f"is malformed ({exc})"
            if header is None:
                return None  # the rest of the header is still to come
            tag, start, end = header
            if tag != 0x30:
                return "is not an LDAP message"
            if end > len(self._pending):
                return None
            self._messages += 1
            if self._messages > MAX_MESSAGES:
                return f"holds more than {MAX_MESSAGES} messages"
            with memoryview(self._pending) as view, view[start:end] as content:
                problem = _count_elements(content)
            if problem is not None:
                return problem
            del self._pending[:end]
        return None


def _header(data: bytearray | memoryview, at: int, limit: int) -> tuple[int, int, int] | None:
    """(tag, content start, content end) of the BER element at ``at``; None if its header ends past ``limit``.

    A tag number above 30 (several bytes) is read whole; its value is not needed. Raises ValueError for an
    indefinite or absurd length.
    """
    pos = at
    if pos >= limit:
        return None
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        while True:
            if pos >= limit:
                return None
            pos += 1
            if not data[pos - 1] & 0x80:
                break
    if pos >= limit:
        return None
    first = data[pos]
    pos += 1
    if first < 0x80:
        return tag, pos, pos + first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise ValueError("indefinite or oversized BER length")
    if pos + count > limit:
        return None
    length = int.from_bytes(bytes(data[pos:pos + count]), "big")
    return tag, pos + count, pos + count + length


def _count_elements(content: memoryview) -> str | None:
    """Walk one message's elements (constructed ones inside, primitive ones skipped) up to :data:`MAX_ELEMENTS`."""
    count = 0
    stack = [(0, len(content))]
    while stack:
        pos, end = stack.pop()
        while pos < end:
            try:
                header = _header(content, pos, end)
            except ValueError as exc:
                return f"is malformed ({exc})"
            if header is None or header[2] > end:
                return "is malformed (an element runs past its container)"
            tag, start, stop = header
            count += 1
            if count > MAX_ELEMENTS:
                return f"holds a message of more than {MAX_ELEMENTS} elements"
            if tag & 0x20:
                stack.append((stop, end))
                pos, end = start, stop
            else:
                pos = stop
    return None


class _GuardedSocket:
    """A socket whose ``recv`` accounts for what it returns; everything else is the socket's own."""

    def __init__(self, sock: Any, limits: _AnswerLimits) -> None:
        self._sock = sock
        self._limits = limits

    def recv(self, size: int, *flags: int) -> bytes:
        data: bytes = self._sock.recv(size, *flags)
        self._limits.take(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
