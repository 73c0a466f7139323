"""agent.pki.trustpool: bundles (certifi's cacert.pem, PKCS#7), what is skipped and why, persistence, cabundle refresh."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import certifi
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

sys.path.insert(0, str(Path(__file__).parent))

from trust_helpers import NOW, MiniCa, http_server, pem  # noqa: E402

from agent.pki.trustpool import BundleUpdater, InvalidBundleError, SkipReason, TrustPool, parse_bundle  # noqa: E402

CERTIFI = Path(certifi.where()).read_text()


def test_certifi_bundle_with_expired_and_non_ca_entries(tmp_path: Path) -> None:
    roots, unreadable = parse_bundle(CERTIFI)
    assert len(roots) > 100 and not unreadable
    expired = MiniCa.root("Expired Root", not_before=NOW - dt.timedelta(days=20), not_after=NOW - dt.timedelta(days=1))
    leaf, _ = MiniCa.root("Some CA").issue("a leaf")
    pool = TrustPool(tmp_path / "pool")
    result = pool.import_bundle(CERTIFI + pem(expired.cert, leaf))
    assert len(result.added) == len(roots) and result.total == len(roots)
    reasons = {s.reason for s in result.skipped}
    assert reasons == {SkipReason.EXPIRED, SkipReason.NOT_A_CA}
    assert {s.subject for s in result.skipped} == {"cn=Expired Root,o=Example", "cn=a leaf,o=Example"}
    again = pool.import_bundle(CERTIFI)
    assert not again.added and again.counts == {SkipReason.DUPLICATE: len(roots)}
    reopened = TrustPool(tmp_path / "pool")
    assert len(reopened.certificates()) == len(roots)
    assert reopened.clear() == len(roots) and TrustPool(tmp_path / "pool").certificates() == []


def test_pkcs7_bundle_clean_and_garbage(tmp_path: Path) -> None:
    a, b = MiniCa.root("P7 A"), MiniCa.root("P7 B")
    der = pkcs7.serialize_certificates([a.cert, b.cert], Encoding.DER)
    pool = TrustPool(tmp_path / "pool")
    pool.import_bundle(pem(MiniCa.root("Old").cert))
    result = pool.import_bundle(der, clean=True)
    assert result.removed == 1 and len(result.added) == 2 and result.total == 2
    with pytest.raises(InvalidBundleError):
        pool.import_bundle(b"\x00\x01 not a bundle")
    broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert pool.import_bundle(broken).skipped[0].reason is SkipReason.UNREADABLE


def test_cabundle_url_imported_in_the_background(tmp_path: Path) -> None:
    root = MiniCa.root("Bundle Root")
    pool = TrustPool(tmp_path / "pool")
    with http_server() as served:
        url = served.put("/bundle.pem", pem(root.cert).encode())
        updater = BundleUpdater(pool, interval=3600)
        try:
            updater.configure(url)
            deadline = time.monotonic() + 20
            while updater.status().last_refresh is None:
                assert time.monotonic() < deadline, "the bundle was not imported"
                time.sleep(0.02)
            assert [c.subject for c in pool.certificates()] == [root.cert.subject]
            assert updater.status().last_error is None
            updater.configure(served.url("/missing.pem"))
            deadline = time.monotonic() + 20
            while updater.status().last_error is None:
                assert time.monotonic() < deadline, "the failed refresh was not reported"
                time.sleep(0.02)
            assert "404" in (updater.status().last_error or "")
        finally:
            updater.close()
