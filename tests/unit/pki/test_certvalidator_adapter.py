"""agent.pki.certvalidator_adapter: the pyhanko-certvalidator behaviour the agent relies on beyond its API."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import sys
from pathlib import Path

import pytest
from asn1crypto import crl as acrl
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from pyhanko_certvalidator import CertificateValidator, ValidationContext, __version_info__
from pyhanko_certvalidator.errors import PathValidationError, RevokedError
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy, RevocationCheckingRule
from pyhanko_certvalidator.revinfo import validate_crl

sys.path.insert(0, str(Path(__file__).parent))

from trust_helpers import NOW, MiniCa, der, name  # noqa: E402

from agent.pki import certvalidator_adapter  # noqa: E402
from agent.pki.certvalidator_adapter import (  # noqa: E402
    SUPPORTED_VERSIONS,
    _listed,
    find_cert_in_list,
    is_bad_signature,
    library_find_cert_in_list,
)


def _validate(ca: MiniCa, cert) -> Exception:
    context = ValidationContext(trust_roots=[ax509.Certificate.load(der(ca.cert))], moment=NOW)
    with pytest.raises(PathValidationError) as caught:
        asyncio.run(CertificateValidator(ax509.Certificate.load(der(cert)), validation_context=context).async_validate_path())
    return caught.value


def test_version_in_tested_range() -> None:
    assert SUPPORTED_VERSIONS[0] <= tuple(__version_info__[:2]) < SUPPORTED_VERSIONS[1]


def test_a_forged_signature_is_recognised() -> None:
    ca = MiniCa.root("Adapter CA")
    forged, _ = ca.issue("forged", sign_with=MiniCa.root("impostor").key)
    assert is_bad_signature(_validate(ca, forged))


def test_other_failures_are_not_signature_failures() -> None:
    ca = MiniCa.root("Adapter CA 2")
    expired, _ = ca.issue("old", not_before=NOW - dt.timedelta(days=9), not_after=NOW - dt.timedelta(days=1))
    assert not is_bad_signature(_validate(ca, expired))
    assert not is_bad_signature(ValueError("signature"))


# ---------------------------------------------------------------------- find_cert_in_list


def _crl_entries(ca: MiniCa, entries: list[tuple[int, x509.ReasonFlags | None, str | None]]) -> acrl.CertificateList:
    """A CRL of ``ca`` listing (serial, reason, certificate issuer CN or None) in order."""
    builder = (
        x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
        .last_update(NOW - dt.timedelta(minutes=1)).next_update(NOW + dt.timedelta(days=1))
    )
    for serial, reason, other_issuer in entries:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - dt.timedelta(minutes=5))
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        if other_issuer is not None:  # an indirect CRL: this and the following entries are another CA's
            entry = entry.add_extension(
                x509.CertificateIssuer([x509.DirectoryName(name(other_issuer))]), critical=True
            )
        builder = builder.add_revoked_certificate(entry.build())
    crl_der = builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return acrl.CertificateList.load(crl_der)


def _both(cert: x509.Certificate, crl: acrl.CertificateList) -> tuple[object, object]:
    subject = ax509.Certificate.load(der(cert))
    args = (subject, subject.issuer, crl, crl["tbs_cert_list"]["issuer"])
    ours, library = find_cert_in_list(*args), library_find_cert_in_list(*args)
    return (ours[0], ours[1] and ours[1].native), (library[0], library[1] and library[1].native)


def test_the_lookup_agrees_with_the_library_on_random_crls() -> None:
    """Property: whatever the CRL (direct or indirect, reasons or none) and serial, both answer the same."""
    ca = MiniCa.root("Lookup CA")
    shared = ca.issue("key holder")[1].public_key()
    rng = random.Random(4141)
    pool = [1, 2, 127, 128, 255, 256, 2**63, 2**159 - 1, *(rng.randrange(1, 2**64) for _ in range(6))]
    certs = {serial: ca.issue(f"s{serial}", serial=serial, public_key=shared)[0] for serial in pool}
    reasons = [None, x509.ReasonFlags.key_compromise, x509.ReasonFlags.superseded]
    listed_seen = indirect_seen = 0
    for _ in range(40):
        chosen = rng.sample(pool, rng.randrange(0, len(pool)))
        entries = [(s, rng.choice(reasons), "Other CA" if rng.random() < 0.1 else None) for s in chosen]
        crl = _crl_entries(ca, entries)
        indirect_seen += any(other for _, _, other in entries)
        for serial, cert in certs.items():
            ours, library = _both(cert, crl)
            assert ours == library, (serial, entries)
            listed_seen += ours[0] is not None
    assert listed_seen > 20 and indirect_seen > 2  # the property was tried on revoked serials and indirect CRLs


def test_a_serial_not_listed_is_answered_without_the_library_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the library walked all entries in Python for every verification (~9 µs each: 0.9 s at 100,000)."""
    walks: list[int] = []

    def counted(*args: object) -> object:
        walks.append(1)
        return library_find_cert_in_list(*args)

    monkeypatch.setattr(certvalidator_adapter, "library_find_cert_in_list", counted)
    assert validate_crl.find_cert_in_list is find_cert_in_list  # the name the library calls it by
    ca = MiniCa.root("Walk CA")
    good, _ = ca.issue("good")
    bad, _ = ca.issue("bad")
    for serial in range(1000, 3000):
        ca.revoke(serial, None)
    ca.revoke(bad.serial_number)

    def check(cert: x509.Certificate) -> None:
        policy = CertRevTrustPolicy(
            RevocationCheckingPolicy(RevocationCheckingRule.CRL_REQUIRED, RevocationCheckingRule.NO_CHECK)
        )
        context = ValidationContext(
            trust_roots=[ax509.Certificate.load(der(ca.cert))], crls=[ca.crl()], revinfo_policy=policy, moment=NOW
        )
        asyncio.run(CertificateValidator(ax509.Certificate.load(der(cert)), validation_context=context).async_validate_path())

    check(good)
    assert walks == []
    with pytest.raises(RevokedError):
        check(bad)
    assert walks == [1]  # a listed serial: the library's own walk gives the verdict
    assert _listed(b"not a CRL", 5)  # what cryptography cannot read is left to the library
