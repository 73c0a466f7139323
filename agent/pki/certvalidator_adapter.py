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
replacement looks the serial number up with cryptography (Rust, ~11 ms for
100,000 entries) and answers as the library's walk does for a direct CRL:
not listed; or listed, with the revocation date and reason, refused
(``NotImplementedError``) for an unknown critical entry extension. Left to the
library's own walk: attribute certificates, whatever cryptography cannot read,
and any CRL in which the certificateIssuer OID appears (an indirect CRL,
whose entries the library reads one by one for the issuer they name). The
library calls the function through its module's global name, which is what
is replaced; the tests check that, and that both agree on random CRLs.

The version is checked at import: a release outside the tested range fails
loudly here instead of silently changing a verdict.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from pyhanko_certvalidator import __version_info__ as _VERSION
from pyhanko_certvalidator.errors import PathValidationError
from pyhanko_certvalidator.revinfo import validate_crl as _validate_crl
from pyhanko_certvalidator.revinfo.constants import KNOWN_CRL_ENTRY_EXTENSIONS

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
    """The library's ``find_cert_in_list``: same arguments, same result (``(None, None)`` or (date, reason)).

    In a direct CRL every entry is the CRL authority's, so the library's walk
    returns the first entry whose serial number's DER equals the
    certificate's, if the certificate's issuer is that authority. Equal DER
    encodings are equal numbers, and cryptography reads only minimal (DER)
    integers, so its lookup by number finds the same entry.
    Raises NotImplementedError, as the library does, for an entry with an
    unknown critical extension.
    """
    if isinstance(cert, asn1_x509.Certificate):
        der = certificate_list.dump()
        if _CERTIFICATE_ISSUER_OID not in der:
            try:
                entry = x509.load_der_x509_crl(der).get_revoked_certificate_by_serial_number(int(cert.serial_number))
                if entry is None or crl_authority_name != cert_issuer_name:
                    return None, None
                return _as_the_library_answers(entry)
            except ValueError:  # cryptography cannot read it: the library decides, as it did before
                pass
    return library_find_cert_in_list(cert, cert_issuer_name, certificate_list, crl_authority_name)


def _as_the_library_answers(entry: x509.RevokedCertificate) -> tuple[dt.datetime, asn1_crl.CRLReason]:
    """The revocation date and reason of a listed entry, as the library returns them. Raises ValueError (the
    entry's extensions cannot be read), NotImplementedError (an unknown critical extension)."""
    reason = asn1_crl.CRLReason("unspecified")
    critical = set()
    for extension in entry.extensions:
        if isinstance(extension.value, x509.CRLReason):
            reason = asn1_crl.CRLReason(_REASON_CODES[extension.value.reason])
        if extension.critical:
            critical.add(asn1_crl.CRLEntryExtensionId.map(extension.oid.dotted_string))
    if critical - KNOWN_CRL_ENTRY_EXTENSIONS:
        raise NotImplementedError()
    return entry.revocation_date_utc, reason


_REASON_CODES = {  # RFC 5280 5.3.1 CRLReason
    x509.ReasonFlags.unspecified: 0,
    x509.ReasonFlags.key_compromise: 1,
    x509.ReasonFlags.ca_compromise: 2,
    x509.ReasonFlags.affiliation_changed: 3,
    x509.ReasonFlags.superseded: 4,
    x509.ReasonFlags.cessation_of_operation: 5,
    x509.ReasonFlags.certificate_hold: 6,
    x509.ReasonFlags.remove_from_crl: 8,
    x509.ReasonFlags.privilege_withdrawn: 9,
    x509.ReasonFlags.aa_compromise: 10,
}


_validate_crl.find_cert_in_list = find_cert_in_list
