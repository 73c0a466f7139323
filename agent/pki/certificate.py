"""X.509 certificates as the router shows them (``show crypto ca certificates``).

Loading (PEM, DER, base64, PKCS#7), the display form of names, serial numbers,
dates and fingerprints, and the "is this issued by that CA" check.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import functools
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from agent.errors import PkiError

MAX_CERTIFICATE_INPUT = 1024 * 1024
"""Refuse inputs larger than this (bytes or characters)."""


class InvalidCertificateError(PkiError):
    """Data that is not a (readable) X.509 certificate."""

    error_tag = "invalid-value"
    error_app_tag = "invalid-certificate"


class InvalidFingerprintError(PkiError):
    """A fingerprint that is not 16, 20 or 32 bytes of hex."""

    error_tag = "invalid-value"
    error_app_tag = "invalid-fingerprint"


class X509KeyUsage(enum.Enum):
    """Bits of the X.509 KeyUsage extension; values are the RFC 5280 names."""

    DIGITAL_SIGNATURE = "digitalSignature"
    NON_REPUDIATION = "nonRepudiation"
    KEY_ENCIPHERMENT = "keyEncipherment"
    DATA_ENCIPHERMENT = "dataEncipherment"
    KEY_AGREEMENT = "keyAgreement"
    KEY_CERT_SIGN = "keyCertSign"
    CRL_SIGN = "cRLSign"
    ENCIPHER_ONLY = "encipherOnly"
    DECIPHER_ONLY = "decipherOnly"


# Attribute type names used for display (and accepted, case-insensitively, by
# parse_subject_name): the seed prints lowercase short names and
# "unstructuredName".
ATTRIBUTE_NAMES: dict[x509.ObjectIdentifier, str] = {
    NameOID.COMMON_NAME: "cn",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "ou",
    NameOID.ORGANIZATION_NAME: "o",
    NameOID.LOCALITY_NAME: "l",
    NameOID.STATE_OR_PROVINCE_NAME: "st",
    NameOID.COUNTRY_NAME: "c",
    NameOID.STREET_ADDRESS: "street",
    NameOID.DOMAIN_COMPONENT: "dc",
    NameOID.USER_ID: "uid",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.UNSTRUCTURED_NAME: "unstructuredName",
    x509.ObjectIdentifier("1.2.840.113549.1.9.8"): "unstructuredAddress",
    NameOID.TITLE: "title",
    NameOID.GIVEN_NAME: "givenName",
    NameOID.SURNAME: "sn",
    NameOID.INITIALS: "initials",
    NameOID.PSEUDONYM: "pseudonym",
    NameOID.GENERATION_QUALIFIER: "generationQualifier",
    NameOID.DN_QUALIFIER: "dnQualifier",
    NameOID.POSTAL_CODE: "postalCode",
}

_KEY_USAGE_ATTRS: tuple[tuple[str, X509KeyUsage], ...] = (
    ("digital_signature", X509KeyUsage.DIGITAL_SIGNATURE),
    ("content_commitment", X509KeyUsage.NON_REPUDIATION),
    ("key_encipherment", X509KeyUsage.KEY_ENCIPHERMENT),
    ("data_encipherment", X509KeyUsage.DATA_ENCIPHERMENT),
    ("key_agreement", X509KeyUsage.KEY_AGREEMENT),
    ("key_cert_sign", X509KeyUsage.KEY_CERT_SIGN),
    ("crl_sign", X509KeyUsage.CRL_SIGN),
)

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 #]+)-----(.*?)-----END \1-----", re.DOTALL)
_PRINTABLE = re.compile(r"[\x20-\x7e\t\r\n]*")
_CERT_LABELS = ("CERTIFICATE", "X509 CERTIFICATE")
_PKCS7_LABELS = ("PKCS7", "PKCS #7 SIGNED DATA", "CMS")
_FINGERPRINT_ALGORITHMS: dict[int, type[hashes.HashAlgorithm]] = {
    16: hashes.MD5,
    20: hashes.SHA1,
    32: hashes.SHA256,
}


# --------------------------------------------------------------------------- info


@dataclass(frozen=True)
class CertificateInfo:
    """Every field ``show crypto ca certificates`` prints about one certificate."""

    serial_number: str  # uppercase hex, even number of digits: "01", "6E", "02EC"
    subject: str  # "cn=...,ou=...,o=...,l=...,st=...,c=US", most specific first
    issuer: str
    valid_from: dt.datetime  # aware, UTC
    valid_to: dt.datetime  # aware, UTC
    crl_distribution_points: tuple[str, ...]  # URIs
    key_usage: tuple[X509KeyUsage, ...]
    public_key_der: bytes  # SubjectPublicKeyInfo
    fingerprint_sha256: str  # uppercase hex, no separators
    fingerprint_sha1: str
    fingerprint_md5: str  # the 16-byte fingerprint the router prints
    is_ca: bool
    is_self_signed: bool
    pem: str

    @classmethod
    def from_x509(cls, cert: x509.Certificate) -> CertificateInfo:
        """Describe ``cert`` (the description of a recently described certificate is reused).

        Raises InvalidCertificateError if its extensions cannot be parsed.
        """
        return _describe(cert)

    @classmethod
    def _from_x509(cls, cert: x509.Certificate) -> CertificateInfo:
        try:
            extensions = cert.extensions
            return cls(
                serial_number=format_serial(cert.serial_number),
                subject=format_name(cert.subject),
                issuer=format_name(cert.issuer),
                valid_from=cert.not_valid_before_utc,
                valid_to=cert.not_valid_after_utc,
                crl_distribution_points=_crl_uris(extensions),
                key_usage=_key_usage(extensions),
                public_key_der=cert.public_key().public_bytes(
                    serialization.Encoding.DER,
                    serialization.PublicFormat.SubjectPublicKeyInfo,
                ),
                fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
                fingerprint_sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),
                fingerprint_md5=cert.fingerprint(hashes.MD5()).hex().upper(),
                is_ca=_is_ca(cert, extensions),
                is_self_signed=is_self_signed(cert),
                pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            )
        except (
            ValueError,
            UnsupportedAlgorithm,
            x509.DuplicateExtension,
            x509.UnsupportedGeneralNameType,
        ) as exc:
            raise InvalidCertificateError(f"The certificate cannot be read: {exc}") from None


@functools.lru_cache(maxsize=512)
def _describe(cert: x509.Certificate) -> CertificateInfo:
    """The description of ``cert``, kept for the most recently described ones.

    The same certificates are described again and again (a CA at authentication, then while
    installing it; the expiry watch and every read of the trustpoint state): four fingerprints,
    the PEM and a signature check each time, 0.13 ms. A description is immutable and a
    certificate is compared by its DER, so a kept one is the same answer. Exceptions are not kept.
    """
    return CertificateInfo._from_x509(cert)


def _crl_uris(extensions: x509.Extensions) -> tuple[str, ...]:
    try:
        points = extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(
        name.value
        for point in points
        for name in point.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
    )


def _key_usage(extensions: x509.Extensions) -> tuple[X509KeyUsage, ...]:
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    result = [member for attr, member in _KEY_USAGE_ATTRS if getattr(usage, attr)]
    if usage.key_agreement:
        if usage.encipher_only:
            result.append(X509KeyUsage.ENCIPHER_ONLY)
        if usage.decipher_only:
            result.append(X509KeyUsage.DECIPHER_ONLY)
    return tuple(result)


def _is_ca(cert: x509.Certificate, extensions: x509.Extensions) -> bool:
    try:
        return extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        # An X.509 v1 root (no extensions at all) is a CA by convention.
        return cert.version is x509.Version.v1 and is_self_signed(cert)


# --------------------------------------------------------------------------- display forms


def format_serial(serial: int) -> str:
    """A serial number as the router prints it: uppercase hex, even digits ("01", "6E"). Raises nothing."""
    sign = "-" if serial < 0 else ""
    digits = f"{abs(serial):X}"
    if len(digits) % 2:
        digits = "0" + digits
    return sign + digits


def _escape(value: str) -> str:
    out = []
    for i, char in enumerate(value):
        edge_space = char == " " and i in (0, len(value) - 1)
        if char in ',+"\\<>;' or (char == "#" and i == 0) or edge_space:
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        else:
            out.append(char)
    return "".join(out)


def format_name(name: x509.Name, *, upper: bool = False) -> str:
    """A distinguished name as the router prints it.

    Most specific first (``cn=...,ou=...,o=...,c=US``), lowercase short
    attribute names, ``unstructuredName=...``; unknown attributes as dotted
    OIDs; values escaped as in RFC 4514 only where needed (so
    :func:`agent.pki.csr.parse_subject_name` reads it back). With ``upper``
    the short names are upper case (``CN=cacert,OU=SPBU,C=IN``), as the
    router's syslog lines print them. Raises nothing.
    """
    rdns = []
    for rdn in reversed(list(name.rdns)):
        parts = []
        for attr in rdn:
            key = ATTRIBUTE_NAMES.get(attr.oid, attr.oid.dotted_string)
            if upper and key.islower():
                key = key.upper()
            if isinstance(attr.value, str):
                value = _escape(attr.value)
            else:  # BIT STRING attributes: RFC 4514 '#' + hex
                value = "#" + bytes(attr.value).hex()
            parts.append(f"{key}={value}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


def format_router_date(when: dt.datetime) -> str:
    """A time as the router prints it: ``07:00:00 UTC Tue Aug 19 2003``.

    Converted to UTC first; English names whatever the locale; the day of the
    month is not padded. Raises ValueError for a naive datetime.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("format_router_date needs an aware datetime")
    utc = when.astimezone(dt.UTC)
    return (
        f"{utc:%H:%M:%S} UTC {_DAYS[utc.weekday()]} {_MONTHS[utc.month - 1]} "
        f"{utc.day} {utc.year:04d}"
    )


def normalize_fingerprint(fingerprint: str) -> str:
    """Uppercase hex without separators; case, whitespace, ':' and '-' are ignored.

    Accepts the router's ``58 71 FB 94 ...`` and ``17D8B38D ED2BDF2E ...``
    forms and OpenSSL's ``58:71:FB:...``.
    Raises InvalidFingerprintError for non-hex data or a length other than
    16 (MD5), 20 (SHA-1) or 32 (SHA-256) bytes.
    """
    compact = re.sub(r"[\s:\-]", "", fingerprint).upper()
    if not re.fullmatch(r"(?:[0-9A-F]{2})+", compact) or len(compact) // 2 not in _FINGERPRINT_ALGORITHMS:
        raise InvalidFingerprintError(
            f"Invalid fingerprint {fingerprint!r}: expected the hex of an MD5 (16 bytes), "
            "SHA-1 (20 bytes) or SHA-256 (32 bytes) fingerprint"
        )
    return compact


def format_fingerprint(fingerprint: str, group: int = 2) -> str:
    """Group a fingerprint's hex for display (``58 71 FB ...`` with group=2).

    Raises InvalidFingerprintError like :func:`normalize_fingerprint`.
    """
    compact = normalize_fingerprint(fingerprint)
    return " ".join(compact[i : i + group] for i in range(0, len(compact), group))


def fingerprint_matches(cert: x509.Certificate, given: str) -> bool:
    """Whether ``given`` is ``cert``'s MD5, SHA-1 or SHA-256 fingerprint (chosen by length).

    Raises InvalidFingerprintError if ``given`` is not a fingerprint at all.
    """
    wanted = normalize_fingerprint(given)
    algorithm = _FINGERPRINT_ALGORITHMS[len(wanted) // 2]
    return cert.fingerprint(algorithm()).hex().upper() == wanted


# --------------------------------------------------------------------------- checks


def verify_issued_by(cert: x509.Certificate, issuer_cert: x509.Certificate) -> bool:
    """Whether ``issuer_cert`` issued ``cert``: issuer name matches and signature verifies.

    Supports RSA PKCS#1 v1.5 and PSS, ECDSA, Ed25519 and Ed448 signatures.
    Returns False on any mismatch or unsupported algorithm; raises nothing.
    """
    try:
        cert.verify_directly_issued_by(issuer_cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    """Whether ``cert`` names itself as issuer and its own key verifies its signature. Raises nothing."""
    return cert.issuer == cert.subject and verify_issued_by(cert, cert)


# --------------------------------------------------------------------------- loading


def _as_text(data: str | bytes) -> str | None:
    if len(data) > MAX_CERTIFICATE_INPUT:
        raise InvalidCertificateError("The certificate data is too long")
    if isinstance(data, str):
        return data
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("ascii")
        except UnicodeDecodeError:
            return None  # binary: DER
        return text if _PRINTABLE.fullmatch(text) else None
    raise InvalidCertificateError("The certificate data must be text or bytes")


def _from_der(der: bytes) -> list[x509.Certificate]:
    try:
        return [x509.load_der_x509_certificate(der)]
    except ValueError:
        pass
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidCertificateError(
            "The data is not an X.509 certificate (nor a PKCS#7 bundle of certificates)"
        ) from None
    if not certs:
        raise InvalidCertificateError("The PKCS#7 bundle holds no certificate")
    return certs


def _b64(body: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidCertificateError(f"The {what} is not valid base64") from None


def load_certificates(data: str | bytes) -> list[x509.Certificate]:
    """Every certificate in ``data``, in order.

    Accepts PEM (one or more ``CERTIFICATE`` blocks, ``PKCS7`` blocks; other
    blocks are ignored), DER (a certificate or a PKCS#7 certs-only bundle, as
    SCEP GetCACert returns), or bare base64 of either (a pasted body; a
    ``quit`` line is ignored).

    Raises InvalidCertificateError if no certificate can be read.
    """
    text = _as_text(data)
    if text is None:
        assert isinstance(data, bytes | bytearray)
        return _from_der(bytes(data))
    if "-----BEGIN" in text:
        certs: list[x509.Certificate] = []
        others: list[str] = []
        for match in _PEM_BLOCK.finditer(text):
            label, body = match.group(1), match.group(2)
            if label in _CERT_LABELS:
                try:
                    certs.append(x509.load_der_x509_certificate(_b64(body, f"PEM '{label}' block")))
                except ValueError:
                    raise InvalidCertificateError(
                        f"The PEM '{label}' block is not a valid X.509 certificate"
                    ) from None
            elif label in _PKCS7_LABELS:
                certs.extend(_from_der(_b64(body, f"PEM '{label}' block")))
            else:
                others.append(label)
        if certs:
            return certs
        if others:
            raise InvalidCertificateError(
                f"A PEM '{others[0]}' block is not a certificate (expected 'CERTIFICATE')"
            )
        raise InvalidCertificateError("The PEM data has no matching BEGIN/END lines")
    body = "\n".join(line for line in text.splitlines() if line.strip().lower() != "quit")
    if not body.strip():
        raise InvalidCertificateError("The certificate data is empty")
    if not re.fullmatch(r"[A-Za-z0-9+/=\s]+", body):
        raise InvalidCertificateError("The data is not a certificate: not PEM, DER or base64 DER")
    return _from_der(_b64(body, "certificate data"))


def load_certificate(data: str | bytes) -> x509.Certificate:
    """The one certificate in ``data`` (formats as :func:`load_certificates`).

    Raises InvalidCertificateError if ``data`` holds no certificate or more
    than one.
    """
    certs = load_certificates(data)
    if len(certs) != 1:
        raise InvalidCertificateError(
            f"Expected one certificate but found {len(certs)}; give them one at a time"
        )
    return certs[0]


def certificate_to_pem(cert: x509.Certificate) -> str:
    """``cert`` as a PEM ``CERTIFICATE`` block. Raises nothing."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def key_usage(*, sign: bool = False, encipher: bool = False, ca: bool = False) -> x509.KeyUsage:
    """A KeyUsage extension value: digitalSignature, keyEncipherment, and for a CA keyCertSign + cRLSign.

    Raises nothing.
    """
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=encipher,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
