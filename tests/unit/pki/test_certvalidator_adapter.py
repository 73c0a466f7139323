"""agent.pki.certvalidator_adapter: the pyhanko-certvalidator behaviour the agent relies on beyond its API."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import sys
from collections import Counter
from dataclasses import dataclass
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

UNKNOWN_EXTENSION = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1")


@dataclass(frozen=True)
class Entry:
    serial: int
    reason: x509.ReasonFlags | None = None
    other_issuer: str | None = None  # an indirect CRL: this and the following entries are that CA's
    invalidity_critical: bool | None = None  # an invalidityDate extension, critical or not
    unknown_critical: bool | None = None  # an extension no one knows, critical or not


def _crl_of(ca: MiniCa, entries: list[Entry]) -> acrl.CertificateList:
    builder = (
        x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
        .last_update(NOW - dt.timedelta(minutes=1)).next_update(NOW + dt.timedelta(days=1))
    )
    for e in entries:
        entry = x509.RevokedCertificateBuilder().serial_number(e.serial).revocation_date(NOW - dt.timedelta(minutes=5))
        if e.reason is not None:
            entry = entry.add_extension(x509.CRLReason(e.reason), critical=False)
        if e.other_issuer is not None:
            entry = entry.add_extension(x509.CertificateIssuer([x509.DirectoryName(name(e.other_issuer))]), critical=True)
        if e.invalidity_critical is not None:
            entry = entry.add_extension(x509.InvalidityDate(NOW - dt.timedelta(days=1)), critical=e.invalidity_critical)
        if e.unknown_critical is not None:
            entry = entry.add_extension(x509.UnrecognizedExtension(UNKNOWN_EXTENSION, b"\x05\x00"), critical=e.unknown_critical)
        builder = builder.add_revoked_certificate(entry.build())
    return acrl.CertificateList.load(builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


def _answer(lookup, cert: x509.Certificate, crl: acrl.CertificateList, authority: x509.Certificate) -> object:
    subject = ax509.Certificate.load(der(cert))
    try:
        date, reason = lookup(subject, subject.issuer, crl, ax509.Certificate.load(der(authority)).subject)
    except NotImplementedError:
        return "unknown critical extension"
    return date, reason and reason.native


def test_the_lookup_answers_as_the_library_on_random_crls() -> None:
    """Property: whatever the CRL (direct or indirect; reasons, invalidity dates, unknown extensions critical or
    not), the serial and the CRL's authority, both answer the same, errors included."""
    ca, other = MiniCa.root("Lookup CA"), MiniCa.root("Other CA")
    shared = ca.issue("key holder")[1].public_key()
    rng = random.Random(4141)
    pool = [1, 2, 127, 128, 255, 256, 2**63, 2**159 - 1, *(rng.randrange(1, 2**64) for _ in range(6))]
    certs = {serial: ca.issue(f"s{serial}", serial=serial, public_key=shared)[0] for serial in pool}
    reasons = [None, *x509.ReasonFlags]
    seen: Counter[str] = Counter()
    for _ in range(60):
        entries = [
            Entry(
                serial,
                rng.choice(reasons),
                "Other CA" if rng.random() < 0.08 else None,
                rng.choice([None, None, False, True]),
                rng.choice([None, None, None, None, False, True]),
            )
            for serial in rng.sample(pool, rng.randrange(0, len(pool)))
        ]
        crl = _crl_of(ca, entries)
        seen["indirect"] += any(e.other_issuer for e in entries)
        for cert in certs.values():
            authority = ca.cert if rng.random() < 0.9 else other.cert  # a CRL read as another CA's
            ours = _answer(find_cert_in_list, cert, crl, authority)
            assert ours == _answer(library_find_cert_in_list, cert, crl, authority), entries
            seen["refused" if isinstance(ours, str) else "listed" if ours[0] is not None else "not listed"] += 1
    assert min(seen["listed"], seen["refused"], seen["not listed"]) > 20 and seen["indirect"] > 2, seen


def test_a_direct_crl_is_answered_without_the_library_walk(monkeypatch: pytest.MonkeyPatch) -> None:
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
    ca.revoke(bad.serial_number, x509.ReasonFlags.superseded)

    def check(cert: x509.Certificate, crl: bytes) -> None:
        policy = CertRevTrustPolicy(
            RevocationCheckingPolicy(RevocationCheckingRule.CRL_REQUIRED, RevocationCheckingRule.NO_CHECK)
        )
        context = ValidationContext(
            trust_roots=[ax509.Certificate.load(der(ca.cert))], crls=[crl], revinfo_policy=policy, moment=NOW
        )
        asyncio.run(CertificateValidator(ax509.Certificate.load(der(cert)), validation_context=context).async_validate_path())

    crl = ca.crl()
    check(good, crl)
    with pytest.raises(RevokedError) as revoked:
        check(bad, crl)
    assert revoked.value.reason.native == "superseded"
    assert walks == []
    indirect = _crl_of(ca, [Entry(5, other_issuer="Other CA")]).dump()
    check(good, indirect)
    assert walks == [1]  # an indirect CRL: the library's own walk
