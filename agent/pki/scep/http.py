"""The HTTP layer of SCEP (RFC 8894 section 4.1), separate from the protocol flow.

``GET URL?operation=OP[&message=M]`` and ``POST URL?operation=PKIOperation``
with the DER pkiMessage as body. A GET PKIOperation carries the message as
standard base64, URL-encoded (``+`` would otherwise be read as a space).

Every exchange has one deadline: connecting, sending and *every* read of the
answer get only the time left until it, so a CA that trickles one byte at a
time cannot hold the caller beyond it. Redirects are followed only to the
same scheme, host and port (at most :data:`MAX_REDIRECTS`, within the same
deadline); anything else is refused. Environment proxies are ignored (the CA
is addressed directly, as a router does).
"""

from __future__ import annotations

import base64
import http.client
import io
import socket
import ssl
import urllib.parse
from dataclasses import dataclass

from agent.clock import SYSTEM_CLOCK, Clock
from agent.pki.scep.errors import ScepHttpError, ScepRedirectError, ScepTransportError, ScepUrlError

__all__ = ["MAX_REDIRECTS", "HttpReply", "ScepTransport", "normalize_url"]

DEFAULT_CGI_PATH = "/cgi-bin/pkiclient.exe"
MAX_BODY = 4 * 1024 * 1024
MAX_REDIRECTS = 5
_CHUNK = 64 * 1024
_USER_AGENT = "ca-agent-scep/1"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_url(url: str) -> str:
    """The SCEP URL to use for ``url``.

    As on IOS, a URL without a path gets the conventional ``/cgi-bin/pkiclient.exe``;
    any query or fragment is dropped. Raises ScepUrlError (a ValueError) for a
    non-HTTP URL.
    """
    try:
        parts = urllib.parse.urlsplit(url.strip())
        hostname = parts.hostname
        _ = parts.port  # raises ValueError for a non-numeric port
    except ValueError as exc:
        raise ScepUrlError(f"invalid SCEP URL {url!r}: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https") or not hostname:
        raise ScepUrlError(f"the SCEP URL must be an http:// or https:// URL with a host, not {url!r}")
    path = parts.path if parts.path not in ("", "/") else DEFAULT_CGI_PATH
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute http(s) URL, None for anything else."""
    try:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host or port is None:
        return None
    return scheme, host, port


@dataclass(frozen=True)
class HttpReply:
    """A successful (2xx) HTTP response."""

    status: int
    content_type: str
    body: bytes


class _Deadline:
    """Seconds left until a monotonic deadline; TimeoutError once it has passed."""

    def __init__(self, clock: Clock, at: float) -> None:
        self._clock = clock
        self._at = at

    def remaining(self) -> float:
        left = self._at - self._clock.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        return left


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

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
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

    def __init__(self, host: str, port: int | None, deadline: _Deadline) -> None:
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

    def __init__(self, host: str, port: int | None, deadline: _Deadline) -> None:
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


class ScepTransport:
    """Blocking HTTP exchanges with one SCEP server, each bounded by one deadline."""

    def __init__(self, url: str, *, timeout: float = 30.0, clock: Clock = SYSTEM_CLOCK) -> None:
        """``timeout`` is the default deadline of an exchange, in seconds from its start.

        Raises ScepUrlError for a non-HTTP URL, ValueError for a non-positive timeout.
        """
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.url = normalize_url(url)
        self.timeout = timeout
        self._clock = clock

    def get(self, operation: str, message: str | bytes | None = None, *, deadline: float | None = None) -> HttpReply:
        """``GET url?operation=...&message=...``; bytes messages are sent base64-encoded.

        ``deadline`` (the clock's monotonic time) ends the exchange; by
        default ``timeout`` seconds from now. Raises ScepHttpError for a
        non-2xx answer, ScepRedirectError for a refused redirect,
        ScepTransportError when the server cannot be reached, answers
        malformed HTTP or the deadline passes.
        """
        query: dict[str, str] = {"operation": operation}
        if message is not None:
            query["message"] = base64.b64encode(message).decode("ascii") if isinstance(message, bytes) else message
        return self._exchange("GET", operation, urllib.parse.urlencode(query), None, deadline)

    def post(self, operation: str, body: bytes, *, deadline: float | None = None) -> HttpReply:
        """``POST url?operation=...`` with ``body`` (application/octet-stream).

        Raises as :meth:`get`.
        """
        return self._exchange("POST", operation, urllib.parse.urlencode({"operation": operation}), body, deadline)

    # ------------------------------------------------------------------ internals

    def _exchange(
        self, method: str, operation: str, query: str, body: bytes | None, deadline: float | None
    ) -> HttpReply:
        bound = _Deadline(self._clock, self._clock.monotonic() + self.timeout if deadline is None else deadline)
        where = f"SCEP server {self.url}"
        origin = _origin(self.url)
        url = f"{self.url}?{query}"
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                status, reason, headers, data = self._once(method, url, body, bound, operation)
                if status in _REDIRECTS:
                    location = headers.get("Location")
                    if not location:
                        raise ScepHttpError(
                            f"{where} answered {operation} with HTTP {status} but no Location", url=self.url, status=status
                        )
                    target = urllib.parse.urljoin(url, location.strip())
                    if _origin(target) != origin:
                        raise ScepRedirectError(
                            f"{where} redirected {operation} to {_printable(target)}: refused, the SCEP exchange "
                            "stays on the configured scheme, host and port",
                            url=self.url,
                        )
                    if method == "POST" and status == 303:
                        raise ScepRedirectError(
                            f"{where} answered the {operation} POST with HTTP 303 (see other): refused, "
                            "the request cannot be re-sent without its message",
                            url=self.url,
                        )
                    url = target
                    continue
                if not 200 <= status < 300:
                    raise ScepHttpError(
                        f"{where} answered {operation} with HTTP {status} {reason}".rstrip(), url=self.url, status=status
                    )
                return HttpReply(status=status, content_type=headers.get("Content-Type", "") or "", body=data)
            raise ScepRedirectError(f"{where} redirected {operation} more than {MAX_REDIRECTS} times", url=self.url)
        except TimeoutError as exc:
            raise ScepTransportError(
                f"{where} did not answer {operation} within {self.timeout:g} s", url=self.url
            ) from exc
        except ConnectionRefusedError as exc:
            raise ScepTransportError(f"cannot reach {where}: {exc.strerror or exc}", url=self.url) from exc
        except socket.gaierror as exc:
            raise ScepTransportError(f"cannot reach {where}: {exc.strerror or exc}", url=self.url) from exc
        except http.client.InvalidURL as exc:  # a ValueError: e.g. a redirect to a path with control characters
            raise ScepRedirectError(f"{where} sent {operation} to an unusable URL: {exc}", url=self.url) from exc
        except http.client.HTTPException as exc:
            raise ScepTransportError(
                f"{where} answered {operation} with malformed HTTP: {type(exc).__name__} {exc}".rstrip(), url=self.url
            ) from exc
        except OSError as exc:
            raise ScepTransportError(f"connection to {where} failed: {exc}", url=self.url) from exc

    def _once(
        self, method: str, url: str, body: bytes | None, deadline: _Deadline, operation: str
    ) -> tuple[int, str, http.client.HTTPMessage, bytes]:
        """One request/response on a fresh connection. Raises TimeoutError, OSError, HTTPException, ScepError."""
        parts = urllib.parse.urlsplit(url)
        cls = _TlsConnection if parts.scheme == "https" else _Connection
        connection = cls(parts.hostname or "", parts.port, deadline)
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        headers = {"User-Agent": _USER_AGENT, "Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        response: http.client.HTTPResponse | None = None
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            status = int(response.status)
            if status in _REDIRECTS or not 200 <= status < 300:
                return status, response.reason or "", response.headers, b""  # the body is of no use
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_BODY:
                    raise ScepTransportError(
                        f"SCEP server {self.url} sent more than {MAX_BODY} bytes for {operation}", url=self.url
                    )
                chunks.append(chunk)
            deadline.remaining()  # an answer completed after the deadline is late too
            return status, response.reason or "", response.headers, b"".join(chunks)
        finally:
            if response is not None:
                response.close()
            connection.close()


def _printable(url: str) -> str:
    """``url`` shortened and stripped of control characters, for a message."""
    text = "".join(c if c.isprintable() else "?" for c in url)
    return text if len(text) <= 200 else text[:197] + "..."
