"""Getting and checking a trustpoint's CA certificate (``crypto ca authenticate``).

Helpers of :meth:`agent.pki.enrollment.Pki.authenticate`: fetch the CA (and
RA) certificates over SCEP or read a pasted one, decide whether the CA
certificate may be trusted at all, compare fingerprints, and rebuild the SCEP
view (:class:`CaCertificates`) of what a trustpoint has installed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from cryptography import x509

from agent.clock import Clock
from agent.pki.certificate import (
    CertificateInfo,
    format_fingerprint,
    format_router_date,
    load_certificates,
    normalize_fingerprint,
    verify_issued_by,
)
from agent.pki.certstore import CertificateStore, CertificateStoreCorruptError
from agent.pki.scep import CaCertificates, ScepClient, ScepError
from agent.pki.scep.capabilities import CapabilitiesCache
from agent.pki.trustpoint import (
    CaUnreachableError,
    RaCertificate,
    RaUsage,
    TrustpointConfig,
    UnexpectedCaCertificateError,
    UntrustedCaError,
)
from agent.serial import SpareThreads

__all__ = [
    "check_ca_certificate",
    "fetch_ca_certificates",
    "fingerprint_of_same_kind",
    "installed_ca_certificates",
    "pasted_ca_certificates",
    "ra_certificates",
    "trusted_cas",
]


def fetch_ca_certificates(
    tp: TrustpointConfig,
    *,
    timeout: float,
    clock: Clock,
    caps_cache: CapabilitiesCache | None = None,
    spare: SpareThreads | None = None,
) -> CaCertificates:
    """GetCACaps and GetCACert from ``tp``'s enrollment URL, both within ``timeout`` seconds.

    The GetCACaps answer refreshes ``caps_cache``, for the enrollment that
    usually follows. With ``spare`` threads, GetCACaps is asked on an idle
    one while this thread asks GetCACert (neither depends on the other: the
    CA's round trips overlap); otherwise, or when none is idle, one after
    the other. Either way a GetCACaps failure is the one reported.

    Raises ScepUrlError (not an http(s) URL) and CaUnreachableError naming
    the URL (unreachable, too slow, redirected elsewhere, HTTP error, or an
    answer without a usable CA).
    """
    assert tp.enrollment_url is not None
    client = ScepClient(
        tp.enrollment_url, timeout=timeout, clock=clock, deadline=clock.monotonic() + timeout, caps_cache=caps_cache
    )
    try:
        caps_answer = spare.beside(client.get_ca_caps) if spare is not None else None
        if caps_answer is None:
            client.get_ca_caps()
            return client.get_ca_certificates()
        try:
            ca_certs = client.get_ca_certificates()
        except ScepError:
            caps_answer()  # raises GetCACaps' own failure first, as when the two are asked in turn
            raise
        caps_answer()
        return ca_certs
    except ScepError as exc:
        where = "" if client.url in exc.message else f" from {client.url}"
        raise CaUnreachableError(
            f"cannot get the CA certificate of trustpoint {tp.name}{where}: {exc.message}",
            info={"url": client.url},
        ) from exc


def pasted_ca_certificates(text: str) -> CaCertificates:
    """The CA certificate of a pasted certificate or bundle (RA certificates play no part here).

    Raises InvalidCertificateError (no certificate), UnexpectedCaCertificateError
    (several certificates and none identifiable as the CA).
    """
    certs = load_certificates(text)
    if len(certs) == 1:
        return CaCertificates(ca=certs[0], chain=(certs[0],))
    try:
        found = CaCertificates.from_certificates(certs)
    except ScepError as exc:
        raise UnexpectedCaCertificateError(
            f"the pasted certificates hold no usable CA certificate: {exc.message}"
        ) from None
    return CaCertificates(ca=found.ca, chain=(found.ca,))


def ra_certificates(ca_certs: CaCertificates) -> tuple[RaCertificate, ...]:
    """The RA certificates of a GetCACert answer, each with its roles (signing, encryption). Raises nothing."""
    result: list[RaCertificate] = []
    seen: list[x509.Certificate] = []
    for cert in (ca_certs.ra_signing, ca_certs.ra_encryption):
        if cert is None or cert in seen:
            continue
        seen.append(cert)
        usages = []
        if cert == ca_certs.ra_signing:
            usages.append(RaUsage.SIGNING)
        if cert == ca_certs.ra_encryption:
            usages.append(RaUsage.ENCRYPTION)
        result.append(RaCertificate(CertificateInfo.from_x509(cert), tuple(usages)))
    return tuple(result)


def installed_ca_certificates(certstore: CertificateStore, name: str) -> CaCertificates | None:
    """The SCEP view of trustpoint ``name``'s installed CA and RA certificates (None: not authenticated).

    Raises CertificateStoreCorruptError, ScepProtocolError (stored RA
    certificates that cannot act for the CA).
    """
    ca = certstore.ca(name)
    if ca is None:
        return None
    ras = certstore.ra(name)
    if not ras:
        return CaCertificates(ca=ca, chain=(ca,))
    return CaCertificates.from_certificates([ca, *ras])


def trusted_cas(certstore: CertificateStore, name: str) -> dict[str, x509.Certificate]:
    """The CA certificates trusted by trustpoints other than ``name`` (unreadable ones skipped). Raises OSError."""
    trusted: dict[str, x509.Certificate] = {}
    for other in certstore.trustpoints():
        if other == name:
            continue
        try:
            ca = certstore.ca(other)
        except CertificateStoreCorruptError:
            continue
        if ca is not None:
            trusted[other] = ca
    return trusted


def fingerprint_of_same_kind(info: CertificateInfo, given: str) -> tuple[str, str]:
    """The algorithm of ``given`` (by length) and ``info``'s fingerprint in it, grouped for display.

    Raises InvalidFingerprintError if ``given`` is not a fingerprint.
    """
    compact = normalize_fingerprint(given)
    algorithm, value = {
        16: ("MD5", info.fingerprint_md5),
        20: ("SHA-1", info.fingerprint_sha1),
        32: ("SHA-256", info.fingerprint_sha256),
    }[len(compact) // 2]
    return algorithm, format_fingerprint(value)


def check_ca_certificate(
    trustpoint: str,
    ca: x509.Certificate,
    trusted: Callable[[], Mapping[str, x509.Certificate]],
    now: dt.datetime,
) -> str | None:
    """Whether ``ca`` may become ``trustpoint``'s CA certificate.

    A CA certificate that is self-signed and valid now is acceptable (its
    fingerprint is what the operator checks). One that is not self-signed, or
    not valid now, is acceptable only if it was issued by a CA already trusted
    by another trustpoint (``trusted()``: trustpoint name -> CA certificate;
    only called then, as it reads every trustpoint's CA certificate).
    Returns the name of that trustpoint, or None for a valid self-signed CA.
    Raises UntrustedCaError saying why otherwise (also for a certificate that
    is not a CA certificate at all).
    """
    info = CertificateInfo.from_x509(ca)
    subject = info.subject or "(empty subject)"
    if not info.is_ca:
        raise UntrustedCaError(
            f"trustpoint {trustpoint}: the certificate of {subject} is not a CA certificate "
            "(no basicConstraints CA:TRUE)"
        )
    valid_now = info.valid_from <= now <= info.valid_to
    if info.is_self_signed and valid_now:
        return None
    for name, other in sorted(trusted().items()):
        if name != trustpoint and verify_issued_by(ca, other):
            return name
    if not valid_now:
        dates = f"valid from {format_router_date(info.valid_from)} to {format_router_date(info.valid_to)}"
        raise UntrustedCaError(
            f"trustpoint {trustpoint}: the CA certificate of {subject} is not valid now ({dates}) "
            "and is not issued by a CA another trustpoint trusts"
        )
    raise UntrustedCaError(
        f"trustpoint {trustpoint}: the CA certificate of {subject} is not self-signed (issued by "
        f"{info.issuer}) and its issuer is not trusted by another trustpoint: authenticate the issuing CA first"
    )
