"""Fetching CRLs and CA bundles: the network edge of revocation and the trustpool.

Two transports, chosen by the URL scheme:

- LDAP (``ldap://host[:port]/DN[?attribute]``, ldap3): one anonymous BASE
  search of the DN for ``certificateRevocationList;binary`` (the attribute the
  seed's CDP points at); a URL without a DN (the seed's ``query url
  ldap://my-ldap.domain.com``) searches the CA's own DN, as the router does.
  An ldaps server's certificate is checked as an https server's is.
- HTTP(S) (:mod:`agent.pki.deadline_http`): a GET of the URL; the body may be
  DER or PEM. Redirects are followed (a CDP may move behind a CDN), to http
  and https URLs only, at most :data:`MAX_REDIRECTS` times.

No lock is ever held here: callers pass values in and get bytes back. Every
call has one deadline, ``timeout`` seconds from its start, for everything it
does (connecting, redirects, every read): a server that trickles its answer
a byte at a time costs the caller at most that. Every call has a size limit
too (over LDAP, :mod:`agent.pki.ldap_watch` also bounds the answer's messages
and their elements, before ldap3 decodes them), and every failure is a
:class:`FetchError` naming the URL.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ipaddress
import math
import re
import ssl
import urllib.parse

import ldap3
from ldap3.core.exceptions import LDAPCertificateError, LDAPException
from ldap3.utils.uri import parse_uri

from agent.clock import SYSTEM_CLOCK
from agent.errors import PkiError
from agent.pki.deadline_http import (
    DEFAULT_PORTS,
    REDIRECTS,
    BodyTooLargeError,
    Deadline,
    origin,
    printable,
    request,
)
from agent.pki.ldap_watch import LdapWatch

__all__ = [
    "FetchError", "MAX_CRL_BYTES", "MAX_BUNDLE_BYTES", "MAX_REDIRECTS", "ServerFailedError", "fetch_crl", "fetch_url",
    "is_supported_crl_url", "server_of",
]

MAX_CRL_BYTES = 16 * 1024 * 1024
MAX_BUNDLE_BYTES = 4 * 1024 * 1024
MAX_REDIRECTS = 5
_LDAP_FRAMING = 64 * 1024  # an LDAP answer's bytes beyond the CRL itself: the bind's answer, the entry's names
CRL_ATTRIBUTE = "certificateRevocationList;binary"
_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----(.*?)-----END X509 CRL-----", re.DOTALL)


class FetchError(PkiError):
    """A URL that gave nothing usable (unreachable, refused, not found, too large)."""

    error_tag = "operation-failed"
    error_app_tag = "fetch-failed"


class ServerFailedError(FetchError):
    """The server itself failed, whatever the path: unreachable, refused the connection, no complete answer in
    time, or a connection broken off. (An HTTP status, an LDAP entry not found: the server answered.)"""


def server_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http, https, ldap or ldaps URL, None for anything else. Raises nothing."""
    return origin(url.strip(), _SERVER_PORTS)


_SERVER_PORTS = {**DEFAULT_PORTS, "ldap": 389, "ldaps": 636}


def is_supported_crl_url(url: str) -> bool:
    """Whether ``url`` is an http, https or ldap URL (the CRL sources the agent can use). Raises nothing."""
    return urllib.parse.urlsplit(url.strip()).scheme.lower() in ("http", "https", "ldap", "ldaps")


def fetch_crl(url: str, default_dn: str, timeout: float) -> bytes:
    """The DER of the CRL published at ``url``.

    ``default_dn`` is searched when an LDAP URL names no DN (the issuing CA's
    subject, RFC 4514 form). PEM bodies are unwrapped; the result is not
    checked beyond that (:mod:`agent.pki.revocation` verifies it).
    Raises FetchError naming the URL and what went wrong.
    """
    scheme = urllib.parse.urlsplit(url.strip()).scheme.lower()
    if scheme in ("ldap", "ldaps"):
        return _ldap_crl(url.strip(), default_dn, timeout)
    if scheme in ("http", "https"):
        return _unpem_crl(fetch_url(url.strip(), timeout, MAX_CRL_BYTES), url)
    raise FetchError(f"{url}: only http, https and ldap CRL locations are supported")


def fetch_url(url: str, timeout: float, limit: int) -> bytes:
    """The body of an HTTP(S) GET of ``url`` (at most ``limit`` bytes), all within ``timeout`` seconds.

    Raises FetchError (unreachable, HTTP error status, a redirect elsewhere
    than http or https or too many of them, too large, empty, not http, the
    deadline passed).
    """
    if origin(url) is None:
        raise FetchError(f"{url}: not an http or https URL")
    deadline = Deadline.after(SYSTEM_CLOCK, timeout)
    target = url
    try:
        for _hop in range(MAX_REDIRECTS + 1):
            reply = request("GET", target, deadline=deadline, limit=limit, headers={"User-Agent": "ca-agent"})
            if reply.status in REDIRECTS:
                location = (reply.headers.get("Location") or "").strip()
                if not location:
                    raise FetchError(f"{url}: HTTP {reply.status} without a Location")
                target = urllib.parse.urljoin(target, location)
                if origin(target) is None:
                    raise FetchError(f"{url}: redirected to {printable(target)}, which is not an http or https URL")
                continue
            if not 200 <= reply.status < 300:
                raise FetchError(f"{url}: HTTP {reply.status} {reply.reason}".rstrip())
            if not reply.body:
                raise FetchError(f"{url}: the answer is empty")
            return reply.body
        raise FetchError(f"{url}: redirected more than {MAX_REDIRECTS} times")
    except TimeoutError:
        raise ServerFailedError(f"{url}: no complete answer within {timeout:g} s") from None
    except BodyTooLargeError:
        raise FetchError(f"{url}: the answer is larger than {limit} bytes") from None
    except http.client.InvalidURL as exc:  # a ValueError: a redirect to a URL with control characters
        raise FetchError(f"{url}: redirected to an unusable URL ({exc})") from None
    except http.client.HTTPException as exc:
        raise FetchError(f"{url}: malformed HTTP answer ({type(exc).__name__} {exc})".rstrip()) from None
    except OSError as exc:  # refused, unreachable, a name that does not resolve, TLS
        raise ServerFailedError(f"{url}: {exc.strerror or exc}") from None


def _unpem_crl(body: bytes, url: str) -> bytes:
    match = _PEM_CRL.search(body)
    if match is None:
        return body
    try:
        return base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise FetchError(f"{url}: the PEM CRL is not valid base64") from None


def _server_checked_tls(host: str) -> ldap3.Tls:
    """ldaps that checks the server as https does: a chain to the system's trusted CAs, and the URL's host named.

    ldap3's default (``Tls()``) accepts any certificate, so anyone on the path could answer for the server.
    ldap3 checks the name itself, after the handshake (its SSL context's own check is off).
    """
    try:
        ipaddress.ip_address(host)
        sni = None  # no SNI for an address (RFC 6066 section 3)
    except ValueError:
        sni = host
    return ldap3.Tls(validate=ssl.CERT_REQUIRED, sni=sni)


_VERIFY_FAILED = re.compile(r"certificate verify failed: ([^(']*)")


def _certificate_refused(exc: Exception, host: str) -> str | None:
    """Why the server's certificate was refused, when it was; None for any other failure.

    ldap3 keeps only the text of the TLS error (and, for a name that does not match, the whole certificate).
    """
    text = str(exc)
    if isinstance(exc, LDAPCertificateError) or "doesn't match any name" in text:
        return f"the LDAP server's certificate does not name {host}"
    match = _VERIFY_FAILED.search(text)
    if match:
        return f"the LDAP server's certificate is not trusted ({match.group(1).strip() or 'verify failed'})"
    return None


def _ldap_crl(url: str, default_dn: str, timeout: float) -> bytes:
    try:
        parts = parse_uri(url)
    except (LDAPException, ValueError, TypeError, IndexError) as exc:
        raise FetchError(f"{url}: not a valid LDAP URL ({exc})") from None
    if not parts or not parts.get("host"):
        raise FetchError(f"{url}: not a valid LDAP URL (no host)")
    base = urllib.parse.unquote(parts.get("base") or "") or default_dn
    attributes = parts.get("attributes") or [CRL_ATTRIBUTE]
    attribute = attributes[0]
    if not attribute.lower().endswith(";binary"):
        attribute += ";binary"  # slapd returns certificate attributes only with ';binary'
    use_ssl = bool(parts.get("ssl"))
    server = ldap3.Server(
        parts["host"], port=parts.get("port"), use_ssl=use_ssl, connect_timeout=timeout, get_info=ldap3.NONE,
        tls=_server_checked_tls(parts["host"]) if use_ssl else None,
    )
    # ldap3 packs receive_timeout into a struct: it must be an int.
    connection = ldap3.Connection(server, receive_timeout=max(1, math.ceil(timeout)), read_only=True)
    watch = LdapWatch(connection, timeout, MAX_CRL_BYTES + _LDAP_FRAMING)
    try:
        try:
            connection.open()
            watch.guard_answers()
            bound = connection.bind()
        except (LDAPException, OSError) as exc:
            reason = _certificate_refused(exc, parts["host"]) or watch.why(exc, "cannot reach the LDAP server")
            raise ServerFailedError(f"{url}: {reason}") from None
        if not bound:
            description = (connection.result or {}).get("description") or "refused"
            raise FetchError(f"{url}: the LDAP server refused an anonymous bind ({description})")
        try:
            found = connection.search(base, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[attribute])
            if not found or not connection.response:
                result = connection.result or {}
                description = result.get("description") or "no such entry"
                raise FetchError(f"{url}: LDAP search of {base!r} failed ({description})")
            raw = connection.response[0].get("raw_attributes") or {}
            values = next((v for k, v in raw.items() if k.lower() == attribute.lower()), None)
            if not values:
                raise FetchError(f"{url}: the LDAP entry {base!r} has no {attribute}")
            data = bytes(values[0])
        except (LDAPException, OSError) as exc:
            raise ServerFailedError(f"{url}: {watch.why(exc, 'LDAP search failed')}") from None
    finally:
        watch.cancel()
        try:
            connection.unbind()
        except (LDAPException, OSError):
            pass  # the connection is gone either way
    if len(data) > MAX_CRL_BYTES:
        raise FetchError(f"{url}: the CRL is larger than {MAX_CRL_BYTES} bytes")
    return data
