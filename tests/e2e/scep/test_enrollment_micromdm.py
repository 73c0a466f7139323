"""agent.pki.enrollment against the real micromdm scepserver (inside a private network namespace).

The CA fingerprint is taken out of band, from ``openssl x509 -fingerprint`` on
the server's depot, as an operator would read it to the CA administrator.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.pki.certstore import CertificateStore
from agent.pki.enrollment import Pki
from agent.pki.keystore import KeyPairType, KeyStore, KeyUsage
from agent.pki.trustpoint import CertificateStatus, EnrollmentStatus, RequestState, TrustpointConfig

pytestmark = pytest.mark.netns  # scepserver binds every interface: see tests/netns_run.sh


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30, check=True).stdout


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[tuple[Path, KeyStore, Pki]]:
    root = tmp_path / "data"
    keystore = KeyStore(root / "keys")
    pki = Pki(root, keystore, CertificateStore(root / "trustpoints"), retry_unit_seconds=0.05)
    yield root, keystore, pki
    pki.close()


def _authenticated(scepserver, pki: Pki, label: str, subject: str) -> TrustpointConfig:
    tp = TrustpointConfig("micromdm", enrollment_url=scepserver.url, rsakeypair=label, subject_name=subject)
    pki.configure([tp])
    fingerprint = _openssl("x509", "-in", str(scepserver.ca_pem), "-noout", "-fingerprint", "-sha256")
    result = pki.authenticate(tp, fingerprint=fingerprint.strip().split("=", 1)[1])
    assert result.installed and result.ra == ()
    return tp


def _verify(scepserver, pem: str, folder: Path) -> None:
    path = folder / f"issued-{secrets.token_hex(4)}.pem"
    path.write_text(pem)
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(scepserver.ca_pem), str(path)], capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_micromdm_general_then_usage_keys(scepserver, pki, tmp_path: Path) -> None:
    root, keystore, service = pki
    keystore.generate_rsa("mykey", modulus=2048)
    tp = _authenticated(scepserver, service, "mykey", f"CN=agent-{secrets.token_hex(6)},O=ca-agent")
    outcome = service.enroll(tp, scepserver.challenge, fqdn="r1.example.com")
    assert outcome.status is EnrollmentStatus.ISSUED, outcome.message
    entry = service.state("micromdm").certificates[KeyUsage.GENERAL]
    assert entry.status is CertificateStatus.AVAILABLE and entry.info is not None
    assert entry.info.public_key_der == keystore.get_rsa("mykey").public_keys[KeyUsage.GENERAL]
    _verify(scepserver, entry.info.pem, tmp_path)

    # usage keys under the same label, a fresh DN: two certificates, both from scepserver
    keystore.generate_rsa("mykey", KeyPairType.USAGE_KEYS, modulus=2048, replace=True)
    tp = TrustpointConfig(
        "micromdm", enrollment_url=scepserver.url, rsakeypair="mykey", subject_name=f"CN=agent-{secrets.token_hex(6)}"
    )
    outcome = service.enroll(tp, scepserver.challenge, fqdn="r1.example.com")
    assert outcome.status is EnrollmentStatus.ISSUED, outcome.message
    state = service.state("micromdm")
    assert set(state.certificates) == {KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION}
    for usage in (KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION):
        info = state.certificates[usage].info
        assert state.certificates[usage].status is CertificateStatus.AVAILABLE and info is not None
        assert info.public_key_der == keystore.get_rsa("mykey").public_keys[usage]
        _verify(scepserver, info.pem, tmp_path)
    for path in root.rglob("*"):
        if path.is_file():
            assert scepserver.challenge.encode() not in path.read_bytes()


def test_micromdm_wrong_challenge_is_rejected_clearly(scepserver, pki) -> None:
    _, keystore, service = pki
    keystore.generate_rsa("k2", modulus=2048)
    tp = _authenticated(scepserver, service, "k2", f"CN=agent-{secrets.token_hex(6)}")
    outcome = service.enroll(tp, "not-" + scepserver.challenge, fqdn="r1.example.com")
    assert outcome.status is EnrollmentStatus.FAILED
    request = outcome.requests[KeyUsage.GENERAL]
    assert request.state is RequestState.REJECTED
    assert request.message.startswith("General Purpose request rejected: CA rejected the request: badRequest")
    assert service.state("micromdm").certificates == {}
    assert scepserver.ca_pem.read_bytes() == service.state("micromdm").ca.pem.encode()  # type: ignore[union-attr]
