"""Fetching CRLs and CA bundles: the network edge of revocation and the trustpool.

Two transports, chosen by the URL scheme:

- LDAP (``ldap://host[:port]/DN[?attribute]``, ldap3): one anonymous BASE
  search of the DN for ``certificateRevocationList;binary`` (the attribute the
  seed's CDP points at); a URL without a DN (the seed's ``query url
  ldap://my-ldap.domain.com``) searches the CA's own DN, as the router does.
- HTTP(S) (urllib): a GET of the URL; the body may be DER or PEM.

No lock is ever held here: callers pass values in and get bytes back. Every
call has a deadline (``timeout`` seconds per connection / read) and a size
limit, and every failure is a :class:`FetchError` naming the URL.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import urllib.error
import urllib.parse
import urllib.request

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.uri import parse_uri

from agent.errors import PkiError

__all__ = ["FetchError", "MAX_CRL_BYTES", "MAX_BUNDLE_BYTES", "fetch_crl", "fetch_url", "is_supported_crl_url"]

MAX_CRL_BYTES = 16 * 1024 * 1024
MAX_BUNDLE_BYTES = 4 * 1024 * 1024
CRL_ATTRIBUTE = "certificateRevocationList;binary"
_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----(.*?)-----END X509 CRL-----", re.DOTALL)


class FetchError(PkiError):
    """A URL that gave nothing usable (unreachable, refused, not found, too large)."""

    error_tag = "operation-failed"
    error_app_tag = "fetch-failed"


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
    """The body of an HTTP(S) GET of ``url`` (at most ``limit`` bytes).

    Raises FetchError (unreachable, HTTP error status, too large, not http).
    """
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise FetchError(f"{url}: not an http or https URL")
    request = urllib.request.Request(url, headers={"User-Agent": "ca-agent"})
    try:
        # Plain urlopen: no proxy is consulted for 127.0.0.1 in tests, and a
        # deployment's proxy settings are honoured as for any HTTP client.
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            body = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise FetchError(f"{url}: {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise FetchError(f"{url}: {exc}") from None
    if len(body) > limit:
        raise FetchError(f"{url}: the answer is larger than {limit} bytes")
    if not body:
        raise FetchError(f"{url}: the answer is empty")
    return body


def _unpem_crl(body: bytes, url: str) -> bytes:
    match = _PEM_CRL.search(body)
    if match is None:
        return body
    try:
        return base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise FetchError(f"{url}: the PEM CRL is not valid base64") from None


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
    server = ldap3.Server(
        parts["host"], port=parts.get("port"), use_ssl=bool(parts.get("ssl")), connect_timeout=timeout, get_info=ldap3.NONE
    )
    try:
        # ldap3 packs receive_timeout into a struct: it must be an int.
        connection = ldap3.Connection(server, auto_bind=True, receive_timeout=max(1, math.ceil(timeout)), read_only=True)
    except (LDAPException, OSError) as exc:
        raise FetchError(f"{url}: cannot reach the LDAP server ({_ldap_reason(exc)})") from None
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
        raise FetchError(f"{url}: LDAP search failed ({_ldap_reason(exc)})") from None
    finally:
        try:
            connection.unbind()
        except LDAPException:
            pass  # the connection is gone either way
    if len(data) > MAX_CRL_BYTES:
        raise FetchError(f"{url}: the CRL is larger than {MAX_CRL_BYTES} bytes")
    return data


def _ldap_reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
