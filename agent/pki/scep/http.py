"""The HTTP layer of SCEP (RFC 8894 section 4.1), separate from the protocol flow.

``GET URL?operation=OP[&message=M]`` and ``POST URL?operation=PKIOperation``
with the DER pkiMessage as body. A GET PKIOperation carries the message as
standard base64, URL-encoded (``+`` would otherwise be read as a space).

Every exchange has one deadline (``timeout`` seconds) covering connect, send
and read; environment proxies are ignored (the CA is addressed directly, as a
router does).
"""

from __future__ import annotations

import base64
import http.client
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from agent.clock import SYSTEM_CLOCK, Clock
from agent.pki.scep.errors import ScepHttpError, ScepTransportError, ScepUrlError

__all__ = ["HttpReply", "ScepTransport", "normalize_url"]

DEFAULT_CGI_PATH = "/cgi-bin/pkiclient.exe"
MAX_BODY = 4 * 1024 * 1024
_CHUNK = 64 * 1024
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
    """Blocking HTTP exchanges with one SCEP server, each bounded by ``timeout`` seconds."""

    def __init__(self, url: str, *, timeout: float = 30.0, clock: Clock = SYSTEM_CLOCK) -> None:
        """Raises ScepUrlError for a non-HTTP URL, ValueError for a non-positive timeout."""
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.url = normalize_url(url)
        self.timeout = timeout
        self._clock = clock
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, operation: str, message: str | bytes | None = None) -> HttpReply:
        """``GET url?operation=...&message=...``; bytes messages are sent base64-encoded.

        Raises ScepHttpError for a non-2xx answer, ScepTransportError when the
        server cannot be reached or the deadline passes.
        """
        query: dict[str, str] = {"operation": operation}
        if message is not None:
            query["message"] = base64.b64encode(message).decode("ascii") if isinstance(message, bytes) else message
        url = f"{self.url}?{urllib.parse.urlencode(query)}"
        return self._exchange(urllib.request.Request(url, method="GET"), operation)

    def post(self, operation: str, body: bytes) -> HttpReply:
        """``POST url?operation=...`` with ``body`` (application/octet-stream).

        Raises ScepHttpError for a non-2xx answer, ScepTransportError when the
        server cannot be reached or the deadline passes.
        """
        url = f"{self.url}?{urllib.parse.urlencode({'operation': operation})}"
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/octet-stream"}
        )
        return self._exchange(request, operation)

    def _exchange(self, request: urllib.request.Request, operation: str) -> HttpReply:
        request.add_header("User-Agent", _USER_AGENT)
        deadline = self._clock.monotonic() + self.timeout
        where = f"SCEP server {self.url}"
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = int(response.status)
                content_type = response.headers.get("Content-Type", "") or ""
                chunks: list[bytes] = []
                size = 0
                while True:
                    if self._clock.monotonic() > deadline:
                        raise ScepTransportError(
                            f"{where} did not answer {operation} within {self.timeout:g} s", url=self.url
                        )
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise ScepTransportError(
                            f"{where} sent more than {MAX_BODY} bytes for {operation}", url=self.url
                        )
                    chunks.append(chunk)
        except urllib.error.HTTPError as exc:
            phrase = exc.reason if isinstance(exc.reason, str) else ""
            raise ScepHttpError(
                f"{where} answered {operation} with HTTP {exc.code} {phrase}".rstrip(),
                url=self.url,
                status=exc.code,
            ) from exc
        except urllib.error.URLError as exc:
            reason: str | BaseException = exc.reason
            text: str
            if isinstance(reason, TimeoutError):
                text = f"timed out after {self.timeout:g} s"
            elif isinstance(reason, OSError) and reason.strerror:
                text = reason.strerror
            else:
                text = str(reason)
            raise ScepTransportError(f"cannot reach {where}: {text}", url=self.url) from exc
        except TimeoutError as exc:
            raise ScepTransportError(
                f"{where} did not answer {operation} within {self.timeout:g} s", url=self.url
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ScepTransportError(f"connection to {where} failed: {exc}", url=self.url) from exc
        return HttpReply(status=status, content_type=content_type, body=b"".join(chunks))
