"""The SCEP client against the real micromdm scepserver (inside a private network namespace)."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from agent.pki.scep import (
    CA_CERT_CONTENT_TYPE,
    CaCaps,
    Capability,
    FailInfo,
    PkiStatus,
    ScepClient,
)

pytestmark = pytest.mark.netns  # scepserver binds every interface: see tests/netns_run.sh


def _openssl_verify(ca_pem: Path, cert_pem: bytes, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    path = tmp_path / "issued.pem"
    path.write_bytes(cert_pem)
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca_pem), str(path)], capture_output=True, timeout=30, check=False
    )


def test_scep_micromdm_authenticate(scepserver) -> None:
    client = ScepClient(scepserver.url, timeout=10)
    caps = client.get_ca_caps()
    assert caps.post and caps.sha256 and caps.aes and caps.des3 and caps.renewal and caps.scep_standard
    ca_certs = client.get_ca_certificates()
    assert not ca_certs.has_ra
    assert ca_certs.ca.public_bytes(Encoding.PEM) == scepserver.ca_pem.read_bytes()
    assert ca_certs.to_http()[0] == CA_CERT_CONTENT_TYPE


def test_scep_micromdm_enroll_and_openssl_verify(scepserver, rsa_key, make_csr, tmp_path: Path) -> None:
    client = ScepClient(scepserver.url, timeout=10)
    ca_certs = client.get_ca_certificates()
    cn = f"agent-{secrets.token_hex(6)}"
    csr = make_csr(rsa_key, cn=cn, challenge=scepserver.challenge)
    started = time.monotonic()
    response = client.enroll(csr, rsa_key, ca_certs)
    elapsed = time.monotonic() - started
    assert response.status is PkiStatus.SUCCESS, response.message
    assert response.fail_info is None
    cert = response.certificate
    assert cert is not None
    assert cert.subject == csr.subject
    assert cert.public_key() == rsa_key.public_key()
    assert response.transaction_id and response.message.startswith("certificate issued: serial ")
    result = _openssl_verify(scepserver.ca_pem, cert.public_bytes(Encoding.PEM), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"scepserver enrollment took {elapsed * 1000:.1f} ms")


def test_scep_micromdm_wrong_challenge_is_bad_request(scepserver, rsa_key, make_csr) -> None:
    client = ScepClient(scepserver.url, timeout=10)
    ca_certs = client.get_ca_certificates()
    csr = make_csr(rsa_key, cn=f"agent-{secrets.token_hex(6)}", challenge="not-the-secret")
    response = client.enroll(csr, rsa_key, ca_certs)
    assert response.status is PkiStatus.FAILURE
    assert response.fail_info is FailInfo.BAD_REQUEST
    assert response.certificate is None
    assert response.message.startswith("CA rejected the request: badRequest (")
    assert "challenge password" in response.message


def test_scep_micromdm_missing_challenge_is_bad_request(scepserver, rsa_key, make_csr) -> None:
    client = ScepClient(scepserver.url, timeout=10)
    csr = make_csr(rsa_key, cn=f"agent-{secrets.token_hex(6)}")
    response = client.enroll(csr, rsa_key, client.get_ca_certificates())
    assert response.status is PkiStatus.FAILURE and response.fail_info is FailInfo.BAD_REQUEST


@pytest.mark.parametrize(
    "caps",
    [
        CaCaps.of(Capability.DES3, Capability.SHA1),  # legacy algorithms, GET with base64
        CaCaps.of(Capability.AES, Capability.SHA256),  # modern algorithms, still GET
        CaCaps.of(Capability.DES3, Capability.SHA256, Capability.POST_PKI_OPERATION),
    ],
    ids=["des3-sha1-get", "aes-sha256-get", "des3-sha256-post"],
)
def test_scep_micromdm_algorithm_and_transport_variants(
    scepserver, rsa_key, make_csr, tmp_path: Path, caps: CaCaps
) -> None:
    client = ScepClient(scepserver.url, timeout=10, caps=caps)
    ca_certs = client.get_ca_certificates()
    csr = make_csr(rsa_key, cn=f"agent-{secrets.token_hex(6)}", challenge=scepserver.challenge)
    response = client.enroll(csr, rsa_key, ca_certs)
    assert response.status is PkiStatus.SUCCESS, response.message
    assert response.certificate is not None
    result = _openssl_verify(scepserver.ca_pem, response.certificate.public_bytes(Encoding.PEM), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
