"""agent.pki.verify: peer verification verdicts (pyhanko-certvalidator underneath), CRLs from a real HTTP server."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

sys.path.insert(0, str(Path(__file__).parent))

from trust_helpers import EKU_CLIENT, EKU_SERVER, NOW, MiniCa, Served, http_server, key, name, pem  # noqa: E402

from agent.pki.certificate import InvalidCertificateError  # noqa: E402
from agent.pki.revocation import CrlManager  # noqa: E402
from agent.pki.verify import (  # noqa: E402
    MAX_CHAIN,
    MAX_SAME_SUBJECT,
    TRUSTPOOL,
    Anchor,
    Failure,
    NoAnchorError,
    PeerVerifier,
    Purpose,
    RevocationStatus,
)


@pytest.fixture(scope="module")
def ca_a() -> MiniCa:
    return MiniCa.root("Domain A CA")


@pytest.fixture(scope="module")
def ca_b() -> MiniCa:
    return MiniCa.root("Domain B CA")


@pytest.fixture
def served() -> Iterator[Served]:
    with http_server() as served:
        yield served


@pytest.fixture
def verifier(tmp_path: Path) -> Iterator[PeerVerifier]:
    crls = CrlManager(tmp_path / "crls", timeout=2.0)
    yield PeerVerifier(crls)
    crls.close()


def test_peer_of_another_domain_validates_only_with_that_domains_anchor(ca_a: MiniCa, ca_b: MiniCa, verifier: PeerVerifier) -> None:
    peer, _ = ca_b.issue("peer-b")
    refused = verifier.verify(pem(peer), [Anchor("A", ca_a.cert)])
    assert not refused.valid and refused.failure is Failure.UNKNOWN_CA
    assert "unknown CA" in refused.message and "Domain B CA" in refused.message
    accepted = verifier.verify(pem(peer), [Anchor("A", ca_a.cert), Anchor("B", ca_b.cert)])
    assert accepted.valid and accepted.trustpoint == "B"
    assert accepted.revocation is RevocationStatus.NOT_CHECKED  # no query url, no CDP
    assert [c.subject for c in accepted.chain] == ["cn=peer-b,o=Example", "cn=Domain B CA,o=Example"]


def test_intermediate_sent_by_the_peer_and_trustpool_anchor(ca_a: MiniCa, verifier: PeerVerifier) -> None:
    sub = ca_a.intermediate("Sub CA")
    peer, _ = sub.issue("peer")
    without = verifier.verify(pem(peer), [Anchor(TRUSTPOOL, ca_a.cert)])
    assert without.failure is Failure.UNKNOWN_CA
    result = verifier.verify(pem(peer, sub.cert), [Anchor(TRUSTPOOL, ca_a.cert)])
    assert result.valid and result.trustpoint == TRUSTPOOL and len(result.chain) == 3


def test_expired_not_yet_valid_and_bad_signature(ca_a: MiniCa, verifier: PeerVerifier) -> None:
    anchors = [Anchor("A", ca_a.cert)]
    old, _ = ca_a.issue("old", not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1))
    result = verifier.verify(pem(old), anchors)
    assert result.failure is Failure.EXPIRED and "expired" in result.message and "cn=old" in result.message
    future, _ = ca_a.issue("future", not_before=NOW + dt.timedelta(days=2))
    result = verifier.verify(pem(future), anchors)
    assert result.failure is Failure.NOT_YET_VALID and "not yet valid" in result.message
    forged, _ = ca_a.issue("forged", sign_with=MiniCa.root("x").key)
    result = verifier.verify(pem(forged), anchors)
    assert result.failure is Failure.BAD_SIGNATURE and "signature" in result.message


def test_purposes(ca_a: MiniCa, verifier: PeerVerifier) -> None:
    anchors = [Anchor("A", ca_a.cert)]
    client, _ = ca_a.issue("client", eku=EKU_CLIENT)
    server, _ = ca_a.issue("server", eku=EKU_SERVER)
    plain, _ = ca_a.issue("plain")
    assert verifier.verify(pem(client), anchors, Purpose.TLS_CLIENT).valid
    wrong = verifier.verify(pem(client), anchors, Purpose.TLS_SERVER)
    assert wrong.failure is Failure.WRONG_PURPOSE and "tls-server" in wrong.message
    assert verifier.verify(pem(server), anchors, Purpose.TLS_SERVER).valid
    assert verifier.verify(pem(client), anchors, Purpose.IKE).valid  # IKE accepts any EKU
    assert verifier.verify(pem(plain), anchors, Purpose.TLS_SERVER).valid  # no EKU: not restricted


def test_crl_good_revoked_and_cached(ca_b: MiniCa, verifier: PeerVerifier, served: Served) -> None:
    cdp = served.url("/b.crl")
    peer, _ = ca_b.issue("peer", cdp=cdp)
    served.put("/b.crl", ca_b.crl())
    anchors = [Anchor("B", ca_b.cert)]
    good = verifier.verify(pem(peer), anchors)
    assert good.valid and good.revocation is RevocationStatus.GOOD and good.crl_source == cdp
    ca_b.revoke(peer.serial_number, x509.ReasonFlags.key_compromise)
    served.put("/b.crl", ca_b.crl())
    assert verifier.verify(pem(peer), anchors).revocation is RevocationStatus.GOOD  # cached until nextUpdate
    assert served.hits["/b.crl"] == 1


def test_revoked_with_reason_and_date(tmp_path: Path, served: Served) -> None:
    ca = MiniCa.root("Revoking CA")
    peer, _ = ca.issue("peer", cdp=served.url("/r.crl"))
    ca.revoke(peer.serial_number, x509.ReasonFlags.superseded)
    served.put("/r.crl", ca.crl())
    crls = CrlManager(tmp_path / "crls", timeout=2.0)
    try:
        result = PeerVerifier(crls).verify(pem(peer), [Anchor("R", ca.cert)])
    finally:
        crls.close()
    assert not result.valid and result.failure is Failure.REVOKED
    assert result.revocation is RevocationStatus.REVOKED and result.revocation_reason == "superseded"
    assert result.revocation_date == NOW - dt.timedelta(minutes=5)
    assert "revoked" in result.message


def test_query_url_first_then_cdp(ca_b: MiniCa, verifier: PeerVerifier, served: Served) -> None:
    peer, _ = ca_b.issue("peer", cdp=served.url("/cdp.crl"))
    served.put("/cdp.crl", ca_b.crl())
    query = served.url("/missing.crl")  # the query url is tried first and fails: the CDP answers
    result = verifier.verify(pem(peer), [Anchor("B", ca_b.cert, query_url=query)])
    assert result.revocation is RevocationStatus.GOOD and result.crl_source == served.url("/cdp.crl")
    assert served.hits[("/missing.crl")] == 1


def test_unreachable_crl_refused_unless_crl_optional(ca_a: MiniCa, tmp_path: Path) -> None:
    peer, _ = ca_a.issue("peer", cdp="http://127.0.0.1:9/nothing.crl")
    crls = CrlManager(tmp_path / "c", timeout=2.0)
    try:
        verifier = PeerVerifier(crls)
        refused = verifier.verify(pem(peer), [Anchor("A", ca_a.cert)])
        accepted = verifier.verify(pem(peer), [Anchor("A", ca_a.cert, crl_optional=True)])
    finally:
        crls.close()
    assert not refused.valid and refused.failure is Failure.CRL_UNREACHABLE
    assert refused.revocation is RevocationStatus.UNKNOWN and "crl optional" in refused.message
    assert accepted.valid and accepted.revocation is RevocationStatus.UNKNOWN


def test_crl_signed_by_the_wrong_key_is_refused(ca_a: MiniCa, verifier: PeerVerifier, served: Served) -> None:
    peer, _ = ca_a.issue("peer", cdp=served.url("/forged.crl"))
    served.put("/forged.crl", ca_a.crl(sign_with=MiniCa.root("impostor").key))
    result = verifier.verify(pem(peer), [Anchor("A", ca_a.cert)])
    assert not result.valid and result.failure is Failure.CRL_UNREACHABLE
    assert "signature does not verify" in result.message


def test_stale_crl_makes_the_status_unknown(ca_a: MiniCa, tmp_path: Path, served: Served) -> None:
    peer, _ = ca_a.issue("peer", cdp=served.url("/stale.crl"))
    served.put("/stale.crl", ca_a.crl(next_update=dt.timedelta(minutes=-10), age=dt.timedelta(days=1)))
    crls = CrlManager(tmp_path / "s", timeout=2.0)
    try:
        result = PeerVerifier(crls).verify(pem(peer), [Anchor("A", ca_a.cert)])
    finally:
        crls.close()
    assert result.revocation is RevocationStatus.UNKNOWN and not result.valid


def test_bad_input(ca_a: MiniCa, verifier: PeerVerifier) -> None:
    with pytest.raises(InvalidCertificateError):
        verifier.verify("not a certificate", [Anchor("A", ca_a.cert)])
    with pytest.raises(NoAnchorError):
        verifier.verify(pem(ca_a.issue("x")[0]), [])


def _loop_ca(subject: str, issuer: str, public: object, signer: object) -> x509.Certificate:
    """A CA certificate without key identifiers: path building can match it to its issuer by name only."""
    return (
        x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer)).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


def test_many_certificates_of_one_name_are_refused_before_path_building(ca_a: MiniCa, verifier: PeerVerifier) -> None:
    """Nine CA certificates named 'Loop', each issued by 'Loop', after a peer issued by 'Loop': the path
    builder walked every ordering of them (105 s of CPU, measured) before it found no anchor."""
    keys = [key() for _ in range(MAX_CHAIN - 1)]
    loop = [_loop_ca("Loop", "Loop", k.public_key(), keys[(i + 1) % len(keys)]) for i, k in enumerate(keys)]
    peer = _loop_ca("peer", "Loop", key().public_key(), keys[0])
    start = time.monotonic()
    with pytest.raises(InvalidCertificateError, match=f"at most {MAX_SAME_SUBJECT} certificates with one subject name"):
        verifier.verify(pem(peer, *loop), [Anchor("A", ca_a.cert)])
    assert time.monotonic() - start < 2.0
    # Names that differ in case only are one name to the path builder: counted as one.
    cases = ["Loop", "LOOP", "loop", "lOop", "loOp", "looP", "LOop", "lOOp", "loOP"]
    folded = [_loop_ca(cases[i], cases[(i + 1) % len(keys)], k.public_key(), keys[(i + 1) % len(keys)])
              for i, k in enumerate(keys)]
    start = time.monotonic()
    with pytest.raises(InvalidCertificateError, match=f"{len(keys)} name cn=Loop"):
        verifier.verify(pem(peer, *folded), [Anchor("A", ca_a.cert)])
    assert time.monotonic() - start < 2.0
    # Three of one name (a CA and two cross-signed copies) are still verified, and quickly.
    groups = [[key() for _ in range(MAX_SAME_SUBJECT)] for _ in range(3)]
    crossed = [
        _loop_ca(f"G{g}", f"G{(g + 1) % 3}", k.public_key(), groups[(g + 1) % 3][(j + 1) % MAX_SAME_SUBJECT])
        for g, group in enumerate(groups) for j, k in enumerate(group)
    ]
    start = time.monotonic()
    result = verifier.verify(pem(_loop_ca("peer", "G0", key().public_key(), groups[0][0]), *crossed), [Anchor("A", ca_a.cert)])
    assert result.failure is Failure.UNKNOWN_CA and time.monotonic() - start < 2.0


def test_a_large_trustpool_beside_the_anchor_changes_nothing(ca_a: MiniCa, ca_b: MiniCa, verifier: PeerVerifier) -> None:
    """Only anchors named in the chain are given to the library (its cost grew with every anchor)."""
    import certifi

    from agent.pki.certificate import load_certificates

    pool = [Anchor(TRUSTPOOL, c) for c in load_certificates(Path(certifi.where()).read_text())]
    sub = ca_a.intermediate("Pool Sub CA")
    peer, _ = sub.issue("peer")
    result = verifier.verify(pem(peer, sub.cert), [*pool, Anchor("B", ca_b.cert), Anchor("A", ca_a.cert)])
    assert result.valid and result.trustpoint == "A" and len(result.chain) == 3
    # The same CA in a trustpoint and in the trustpool: the first given anchors it, as before.
    assert verifier.verify(pem(peer, sub.cert), [Anchor("A", ca_a.cert), *pool, Anchor(TRUSTPOOL, ca_a.cert)]).trustpoint == "A"
    assert verifier.verify(pem(peer, sub.cert), [*pool]).failure is Failure.UNKNOWN_CA
    # The CA certificate itself, trusted on a trustpoint of its own.
    assert verifier.verify(pem(sub.cert), [*pool, Anchor("S", sub.cert)]).trustpoint == "S"


def test_names_match_as_the_library_compares_them_case_folded(ca_a: MiniCa, verifier: PeerVerifier) -> None:
    """A peer whose issuer name differs from its CA's subject in case only is still anchored (RFC 5280 7.1)."""
    folded = x509.Name([x509.NameAttribute(a.oid, str(a.value).upper()) for a in ca_a.subject])
    peer = (
        x509.CertificateBuilder().subject_name(name("Folded peer")).issuer_name(folded).public_key(key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1)).not_valid_after(NOW + dt.timedelta(days=30))
        .sign(ca_a.key, hashes.SHA256())
    )
    assert folded != ca_a.subject
    result = verifier.verify(pem(peer), [Anchor("A", ca_a.cert)])
    assert result.valid and result.trustpoint == "A", result.message


def test_anchor_names_are_worked_out_once_however_many_anchors(ca_a: MiniCa, verifier: PeerVerifier) -> None:
    """Before: one cache of 4,096 for anchors and peers alike; beyond it every call folded every anchor's name
    again (4,200 anchors: 0.44 s per verification), and each distinct peer kept ~24 KiB in it."""
    from agent.pki import verify

    shared = ca_a.issue("key holder")[1]
    anchors = [Anchor(f"pool{i}", _loop_ca(f"Pool CA {i}", f"Pool CA {i}", shared.public_key(), shared)) for i in range(4200)]
    anchors.append(Anchor("A", ca_a.cert))
    peer, _ = ca_a.issue("peer among many anchors")
    assert verifier.verify(pem(peer), anchors).trustpoint == "A"
    folded = verify._anchor_key.cache_info().misses
    for _ in range(2):
        other, _ = ca_a.issue("another peer")
        assert verifier.verify(pem(other), anchors).trustpoint == "A"
    assert verify._anchor_key.cache_info().misses == folded  # no anchor's name folded again
    assert verify._asn1.cache_info().maxsize <= 256  # what is kept of each peer verified is bounded
