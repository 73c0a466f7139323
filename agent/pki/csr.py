"""PKCS#10 certificate requests, as ``crypto ca enroll`` builds them.

The subject is the trustpoint's ``subject-name`` when configured, else
``unstructuredName=<hostname>.<domain>`` (the seed's router certificate shows
``unstructuredName=myrouter.mydomain.com``). The challenge password is put in
the request and never kept anywhere.
"""

from __future__ import annotations

import re
import unicodedata

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import AttributeOID, NameOID

from agent.errors import PkiError
from agent.pki.certificate import ATTRIBUTE_NAMES, key_usage
from agent.pki.keystore import KeyUsage

MAX_CHALLENGE_PASSWORD = 255  # ub-challengePassword, RFC 2985


class InvalidSubjectNameError(PkiError):
    """A subject name (or FQDN) that cannot become a certificate subject."""

    error_tag = "invalid-value"
    error_app_tag = "invalid-subject-name"


class InvalidChallengePasswordError(PkiError):
    """A challenge password that cannot go into a request."""

    error_tag = "invalid-value"
    error_app_tag = "invalid-challenge-password"


# Attribute types accepted in a subject name, case-insensitively: the display
# names of agent.pki.certificate (so a displayed subject reads back) and the
# usual aliases.
_TYPES: dict[str, x509.ObjectIdentifier] = {name.lower(): oid for oid, name in ATTRIBUTE_NAMES.items()}
_TYPES.update(
    {
        "commonname": NameOID.COMMON_NAME,
        "s": NameOID.STATE_OR_PROVINCE_NAME,
        "e": NameOID.EMAIL_ADDRESS,
        "ea": NameOID.EMAIL_ADDRESS,
        "email": NameOID.EMAIL_ADDRESS,
        "serial": NameOID.SERIAL_NUMBER,
        "t": NameOID.TITLE,
        "g": NameOID.GIVEN_NAME,
        "gn": NameOID.GIVEN_NAME,
        "surname": NameOID.SURNAME,
    }
)
_OID = re.compile(r"(?:oid\.)?([0-2](?:\.(?:0|[1-9][0-9]*))+)", re.IGNORECASE)
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_FQDN = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
_HEX_PAIR = re.compile(r"[0-9A-Fa-f]{2}")


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is not escaped by a backslash."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            current.append(char)
            current.append(next(chars, ""))
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _strip_unescaped(raw: str) -> str:
    raw = raw.lstrip(" ")
    while raw.endswith(" "):
        backslashes = len(raw[:-1]) - len(raw[:-1].rstrip("\\"))
        if backslashes % 2:
            break  # "\ " : an escaped, significant space
        raw = raw[:-1]
    return raw


def _unescape(raw: str, whole: str) -> str:
    out = bytearray()
    i = 0
    while i < len(raw):
        char = raw[i]
        if char != "\\":
            out += char.encode("utf-8")
            i += 1
            continue
        pair = raw[i + 1 : i + 3]
        if _HEX_PAIR.fullmatch(pair):
            out.append(int(pair, 16))
            i += 3
        elif i + 1 < len(raw):
            out += raw[i + 1].encode("utf-8")
            i += 2
        else:
            raise InvalidSubjectNameError(f"Invalid subject name {whole!r}: a value ends with a lone '\\'")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSubjectNameError(
            f"Invalid subject name {whole!r}: a '\\' hex escape is not valid UTF-8"
        ) from None


def _has_control(text: str) -> bool:
    """Control characters (C0, DEL, C1) or Unicode line/paragraph separators: never in a subject."""
    return any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in text)


def _attribute(raw: str, whole: str) -> x509.NameAttribute:
    pieces = _split_unescaped(raw, "=")
    if len(pieces) < 2:
        raise InvalidSubjectNameError(
            f"Invalid subject name {whole!r}: {raw.strip()!r} is not TYPE=value (e.g. 'CN=r1,O=Example')"
        )
    type_text = pieces[0].strip()
    value_raw = _strip_unescaped("=".join(pieces[1:]))
    oid = _TYPES.get(type_text.lower())
    if oid is None:
        dotted = _OID.fullmatch(type_text)
        if dotted is None:
            raise InvalidSubjectNameError(
                f"Invalid subject name {whole!r}: unknown attribute type {type_text!r}"
            )
        oid = x509.ObjectIdentifier(dotted.group(1))
    if not value_raw:
        raise InvalidSubjectNameError(f"Invalid subject name {whole!r}: {type_text} has an empty value")
    if value_raw.startswith("#"):
        raise InvalidSubjectNameError(
            f"Invalid subject name {whole!r}: '#' hex-encoded values are not supported"
        )
    value = _unescape(value_raw, whole)
    if _has_control(value):  # e.g. a '\\0A' escape
        raise InvalidSubjectNameError(
            f"Invalid subject name {whole!r}: {type_text} holds a control character"
        )
    try:
        return x509.NameAttribute(oid, value)
    except ValueError as exc:
        raise InvalidSubjectNameError(f"Invalid subject name {whole!r}: {exc}") from None


def parse_subject_name(text: str) -> x509.Name:
    """Parse an RFC 4514 style subject such as ``CN=r1,O=Example``.

    Most specific RDN first, as written in RFC 4514 and as the router prints
    names; attribute types are case-insensitive (``cn=`` or ``CN=``) and may
    be dotted OIDs; ``+`` joins multi-valued RDNs; spaces around ``,`` and
    ``=`` are ignored.

    Raises InvalidSubjectNameError naming what is wrong, including a control
    character (newline, tab...), written or ``\\``-escaped, anywhere.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidSubjectNameError("The subject name is empty")
    if _has_control(text):
        raise InvalidSubjectNameError(
            f"Invalid subject name {text!r}: control characters (newline, tab...) are not allowed"
        )
    rdns = []
    for rdn_text in _split_unescaped(_strip_unescaped(text), ","):
        if not rdn_text.strip():
            raise InvalidSubjectNameError(f"Invalid subject name {text!r}: an empty component")
        attributes = [_attribute(raw, text) for raw in _split_unescaped(rdn_text, "+")]
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(list(reversed(rdns)))


def default_subject(fqdn: str) -> x509.Name:
    """``unstructuredName=<fqdn>``, the router's default request subject.

    Raises InvalidSubjectNameError if ``fqdn`` is not a host or domain name.
    """
    if not isinstance(fqdn, str) or len(fqdn) > 253 or not _FQDN.fullmatch(fqdn):
        raise InvalidSubjectNameError(
            f"Invalid FQDN {fqdn!r}: configure the hostname and domain name, or a subject-name"
        )
    return x509.Name([x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, fqdn.rstrip("."))])


def _key_usage_extension(usage: KeyUsage) -> x509.KeyUsage:
    return key_usage(
        sign=usage in (KeyUsage.GENERAL, KeyUsage.SIGNATURE),
        encipher=usage in (KeyUsage.GENERAL, KeyUsage.ENCRYPTION),
    )


def build_csr(
    private_key: CertificateIssuerPrivateKeyTypes,
    *,
    fqdn: str,
    subject_name: str | None = None,
    challenge_password: str | None = None,
    key_usage: KeyUsage = KeyUsage.GENERAL,
) -> x509.CertificateSigningRequest:
    """A PKCS#10 request for ``private_key``'s public key, signed with SHA-256.

    Subject: ``subject_name`` parsed (see :func:`parse_subject_name`) when
    given, else ``unstructuredName=<fqdn>``. A ``challengePassword``
    attribute when ``challenge_password`` is given. A critical KeyUsage
    extension request: digitalSignature for SIGNATURE keys,
    keyEncipherment for ENCRYPTION keys, both for GENERAL keys.

    Raises InvalidSubjectNameError (bad subject syntax, or bad FQDN when no
    subject is given), InvalidChallengePasswordError (empty, over 255
    characters, or with control characters).
    """
    subject = request_subject(fqdn, subject_name)
    check_challenge_password(challenge_password)
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    builder = builder.add_extension(_key_usage_extension(key_usage), critical=True)
    if challenge_password is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge_password.encode("utf-8"))
    return builder.sign(private_key, hashes.SHA256())


def request_subject(fqdn: str, subject_name: str | None) -> x509.Name:
    """The subject :func:`build_csr` puts in a request: ``subject_name`` parsed, else ``unstructuredName=<fqdn>``.

    Raises InvalidSubjectNameError.
    """
    return parse_subject_name(subject_name) if subject_name is not None else default_subject(fqdn)


def check_challenge_password(challenge_password: str | None) -> None:
    """Refuse a challenge password :func:`build_csr` would refuse (None: no password, fine).

    Raises InvalidChallengePasswordError (empty, over 255 characters, or with control characters).
    """
    if challenge_password is None:
        return
    if not challenge_password or len(challenge_password) > MAX_CHALLENGE_PASSWORD:
        raise InvalidChallengePasswordError(
            f"The challenge password must have 1 to {MAX_CHALLENGE_PASSWORD} characters"
        )
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in challenge_password):
        raise InvalidChallengePasswordError("The challenge password must not hold control characters")


def csr_to_pem(csr: x509.CertificateSigningRequest) -> str:
    """``csr`` as a PEM ``CERTIFICATE REQUEST`` block. Raises nothing."""
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def csr_to_der(csr: x509.CertificateSigningRequest) -> bytes:
    """``csr`` in DER, as SCEP carries it. Raises nothing."""
    return csr.public_bytes(serialization.Encoding.DER)
