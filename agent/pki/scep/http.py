"""The HTTP layer of SCEP (RFC 8894 section 4.1), separate from the protocol flow.

``GET URL?operation=OP[&message=M]`` and ``POST URL?operation=PKIOperation``
with the DER pkiMessage as body. A GET PKIOperation carries the message as
standard base64, URL-encoded (``+`` would otherwise be read as a space).

Every exchange has one deadline (:mod:`agent.pki.deadline_http`): a CA that
trickles one byte at a time cannot hold the caller beyond it. Redirects are
followed only to the same scheme, host and port (at most
:data:`MAX_REDIRECTS`, within the same deadline); anything else is refused.
Environment proxies are ignored (the CA is addressed directly, as a router
does).
"""

from __future__ import annotations

import base64
import http.client
import socket
import urllib.parse
from dataclasses import dataclass

from agent.clock import SYSTEM_CLOCK, Clock
from agent.pki.deadline_http import REDIRECTS, BodyTooLargeError, Deadline, origin, printable, request
from agent.pki.scep.errors import ScepHttpError, ScepRedirectError, ScepTransportError, ScepUrlError

__all__ = ["MAX_REDIRECTS", "HttpReply", "ScepTransport", "normalize_url"]

DEFAULT_CGI_PATH = "/cgi-bin/pkiclient.exe"
MAX_BODY = 4 * 1024 * 1024
MAX_REDIRECTS = 5
_USER_AGENT = "ca-agent-scep/1"


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


@dataclass(frozen=True)
class HttpReply:
    """A successful (2xx) HTTP response."""

    status: int
    content_type: str
    body: bytes


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
        bound = Deadline(self._clock, self._clock.monotonic() + self.timeout if deadline is None else deadline)
        where = f"SCEP server {self.url}"
        origin_ = origin(self.url)
        url = f"{self.url}?{query}"
        try:
            for _hop in range(MAX_REDIRECTS + 1):
                status, reason, headers, data = self._once(method, url, body, bound, operation)
                if status in REDIRECTS:
                    location = headers.get("Location")
                    if not location:
                        raise ScepHttpError(
                            f"{where} answered {operation} with HTTP {status} but no Location", url=self.url, status=status
                        )
                    target = urllib.parse.urljoin(url, location.strip())
                    if origin(target) != origin_:
                        raise ScepRedirectError(
                            f"{where} redirected {operation} to {printable(target)}: refused, the SCEP exchange "
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
        self, method: str, url: str, body: bytes | None, deadline: Deadline, operation: str
    ) -> tuple[int, str, http.client.HTTPMessage, bytes]:
        """One request/response on a fresh connection. Raises TimeoutError, OSError, HTTPException, ScepError."""
        headers = {"User-Agent": _USER_AGENT}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        try:
            reply = request(method, url, deadline=deadline, limit=MAX_BODY, body=body, headers=headers)
        except BodyTooLargeError:
            raise ScepTransportError(
                f"SCEP server {self.url} sent more than {MAX_BODY} bytes for {operation}", url=self.url
            ) from None
        return reply.status, reply.reason, reply.headers, reply.body


