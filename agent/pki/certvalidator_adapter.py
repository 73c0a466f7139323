"""The one place that relies on pyhanko-certvalidator behaviour outside its documented API.

pyhanko-certvalidator reports a certificate whose signature does not verify
as a plain ``PathValidationError`` (no subclass). It raises that error inside
``except InvalidSignature:``, so Python chains the ``InvalidSignature`` as the
error's ``__context__``; :func:`is_bad_signature` reads that to tell "bad
signature" from other path failures, instead of parsing the message.
tests/unit/pki/test_certvalidator_adapter.py proves it on a forged certificate.

It also replaces one function of the library, ``validate_crl.find_cert_in_list``,
which looks a certificate up in a CRL by walking every entry in Python with
asn1crypto (~9 µs each: a cached CRL of 100,000 entries cost every
``ca-verify-certificate`` 0.9–1.05 s of CPU, a 16 MiB one ~7 s). The
replacement first asks cryptography (Rust, ~11 ms for 100,000 entries)
whether the serial number is listed at all; only if it is, or if the lookup
cannot decide, does the library's own function run, so every verdict is still
the library's. Left to the library entirely: attribute certificates, and any
CRL in which the certificateIssuer OID appears (an indirect CRL, whose
entries the library reads one by one for the issuer they name, with the
errors that reading may raise). The library calls the
function through its module's global name, which is what is replaced; the
tests check that, and that both functions agree.

The version is checked at import: a release outside the tested range fails
loudly here instead of silently changing a verdict.
"""

from __future__ import annotations

from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from pyhanko_certvalidator import __version_info__ as _VERSION
from pyhanko_certvalidator.errors import PathValidationError
from pyhanko_certvalidator.revinfo import validate_crl as _validate_crl

__all__ = ["SUPPORTED_VERSIONS", "find_cert_in_list", "is_bad_signature", "library_find_cert_in_list"]

SUPPORTED_VERSIONS = ((0, 33), (0, 34))
"""[low, high) major.minor range of pyhanko-certvalidator whose behaviour is tested."""

if not SUPPORTED_VERSIONS[0] <= tuple(_VERSION[:2]) < SUPPORTED_VERSIONS[1]:  # pragma: no cover - install-time guard
    raise ImportError(
        f"pyhanko-certvalidator {'.'.join(map(str, _VERSION))} is outside the tested range "
        f"{SUPPORTED_VERSIONS[0]}..{SUPPORTED_VERSIONS[1]}: re-run tests/unit/pki/test_certvalidator_adapter.py "
        "and widen SUPPORTED_VERSIONS in agent/pki/certvalidator_adapter.py"
    )


def is_bad_signature(error: BaseException) -> bool:
    """Whether a path validation error means a certificate's signature did not verify. Raises nothing."""
    return isinstance(error, PathValidationError) and isinstance(error.__context__, InvalidSignature)


library_find_cert_in_list = _validate_crl.find_cert_in_list
"""The library's own CRL walk, which :func:`find_cert_in_list` falls back to."""

_CERTIFICATE_ISSUER_OID = b"\x06\x03\x55\x1d\x1d"  # DER of id-ce-certificateIssuer (2.5.29.29)


def find_cert_in_list(
    cert: Any, cert_issuer_name: asn1_x509.Name, certificate_list: asn1_crl.CertificateList, crl_authority_name: asn1_x509.Name
) -> tuple[Any, Any]:
    """The library's ``find_cert_in_list`` (same arguments and result), with "not listed" answered by cryptography.

    For a serial number that no entry carries, the library's walk answers
    ``(None, None)`` too: it skips every entry whose number's DER differs,
    and equal DER encodings are equal numbers. Everything else is the library's.
    """
    if isinstance(cert, asn1_x509.Certificate):
        der = certificate_list.dump()
        if _CERTIFICATE_ISSUER_OID not in der:
            if not _listed(der, int(cert.serial_number)):
                return None, None
    return library_find_cert_in_list(cert, cert_issuer_name, certificate_list, crl_authority_name)


def _listed(crl_der: bytes, serial: int) -> bool:
    """Whether some entry of the CRL carries ``serial`` (True when cryptography cannot read the CRL)."""
    try:
        return x509.load_der_x509_crl(crl_der).get_revoked_certificate_by_serial_number(serial) is not None
    except ValueError:  # the library decides, as it did before
        return True


_validate_crl.find_cert_in_list = find_cert_in_list
