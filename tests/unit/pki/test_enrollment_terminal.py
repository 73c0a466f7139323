"""Cut-and-paste enrollment (``enrollment terminal``) with a CA run by the openssl CLI, and CA trust checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AttributeOID, NameOID

from agent.pki.certificate import load_certificate
from agent.pki.certstore import CaNotAuthenticatedError, CertificateStore, WrongIssuerError
from agent.pki.csr import InvalidSubjectNameError
from agent.pki.enrollment import Pki
from agent.pki.keystore import KeyPairType, KeyStore, KeyUsage
from agent.pki.trustpoint import (
    CaCertificateRequiredError,
    CertificateStatus,
    EnrollmentStatus,
    InvalidTrustpointConfigError,
    NoEnrollmentInProgressError,
    RequestState,
    TrustpointConfig,
    UnexpectedCaCertificateError,
    UntrustedCaError,
)

FQDN = "myrouter.mydomain.com"
CHALLENGE = "terminal-Secret-9d2e"


def openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], check=True, capture_output=True, text=True, timeout=60).stdout


@dataclass
class OpensslCa:
    folder: Path
    name: str
    serial: int = 100

    @property
    def key(self) -> Path:
        return self.folder / f"{self.name}.key"

    @property
    def pem(self) -> Path:
        return self.folder / f"{self.name}.pem"

    @property
    def text(self) -> str:
        return self.pem.read_text()

    def sign(self, csr_pem: str) -> str:
        """``openssl x509 -req``: sign a request as pasted into the CA, keeping its requested extensions."""
        self.serial += 1
        csr = self.folder / f"req-{self.serial}.pem"
        csr.write_text(csr_pem)
        return openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.pem), "-CAkey", str(self.key),
            "-set_serial", str(self.serial), "-days", "30", "-copy_extensions", "copy",
        )


def make_root(folder: Path, name: str, subj: str) -> OpensslCa:
    ca = OpensslCa(folder, name)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca.key), "-out", str(ca.pem),
            "-subj", subj, "-days", "3650", "-set_serial", "1")
    return ca


def make_intermediate(root: OpensslCa, name: str, subj: str) -> OpensslCa:
    ca = OpensslCa(root.folder, name)
    csr = root.folder / f"{name}.csr"
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca.key), "-out", str(csr), "-subj", subj)
    ext = root.folder / f"{name}.ext"
    ext.write_text("basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n")
    ca.pem.write_text(openssl("x509", "-req", "-in", str(csr), "-CA", str(root.pem), "-CAkey", str(root.key),
                              "-set_serial", "7", "-days", "365", "-extfile", str(ext)))
    return ca


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OpensslCa]:
    folder = tmp_path_factory.mktemp("openssl-ca")
    root = make_root(folder, "root", "/C=US/ST=CA/L=San Jose/O=Cisco Systems/OU=HFR/CN=Root coax-u10 Certificate Manager")
    return {
        "root": root,
        "other": make_root(folder, "other", "/O=Elsewhere/CN=Other CA"),
        "sub": make_intermediate(root, "sub", "/O=Cisco Systems/CN=Issuing CA"),
    }


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, KeyStore, Pki]]:
    root = tmp_path / "data"
    keystore = KeyStore(root / "keys")
    pki = Pki(root, keystore, CertificateStore(root / "trustpoints"), retry_unit_seconds=0.05)
    yield root, keystore, pki
    pki.close()


def terminal(name: str = "myca", label: str = "mykey") -> TrustpointConfig:
    return TrustpointConfig(name=name, terminal=True, rsakeypair=label)


def sha256_colons(pem: Path) -> str:
    # openssl prints "sha256 Fingerprint=AB:CD:..." (older: "SHA256 Fingerprint=")
    return openssl("x509", "-in", str(pem), "-noout", "-fingerprint", "-sha256").strip().split("=", 1)[1]


# --------------------------------------------------------------------------- authenticate


def test_terminal_authenticate_needs_the_pasted_ca(setup, cas) -> None:
    _, _, pki = setup
    with pytest.raises(CaCertificateRequiredError) as missing:
        pki.authenticate(terminal(), accept=True)
    assert missing.value.error_tag == "invalid-value"
    assert missing.value.message == "trustpoint myca uses enrollment terminal: paste the CA certificate (ca-certificate)"
    shown = pki.authenticate(terminal(), ca_pem=cas["root"].text)
    assert not shown.installed and shown.ca.serial_number == "01"
    assert shown.ca.subject == "cn=Root coax-u10 Certificate Manager,ou=HFR,o=Cisco Systems,l=San Jose,st=CA,c=US"
    result = pki.authenticate(terminal(), ca_pem=cas["root"].text, fingerprint=sha256_colons(cas["root"].pem))
    assert result.installed and pki.state("myca").ca == result.ca
    with pytest.raises(UnexpectedCaCertificateError):
        pki.authenticate(TrustpointConfig("scep", enrollment_url="http://127.0.0.1:9/scep"), ca_pem=cas["root"].text)


def test_subordinate_ca_needs_its_issuer_trusted_by_another_trustpoint(setup, cas) -> None:
    _, _, pki = setup
    with pytest.raises(UntrustedCaError) as refused:
        pki.authenticate(terminal("issuing"), ca_pem=cas["sub"].text, accept=True)
    assert "not self-signed" in refused.value.message and "authenticate the issuing CA first" in refused.value.message
    assert pki.state("issuing").ca is None
    pki.authenticate(terminal("root"), ca_pem=cas["root"].text, accept=True)
    result = pki.authenticate(terminal("issuing"), ca_pem=cas["sub"].text, accept=True)
    assert result.installed and "issued by trustpoint root's CA" in result.message
    bundle = cas["sub"].text + cas["root"].text  # a pasted chain: the issuing CA is taken
    assert pki.authenticate(terminal("issuing"), ca_pem=bundle, accept=True).ca.subject == "cn=Issuing CA,o=Cisco Systems"


def test_a_self_signed_ca_is_taken_without_reading_the_other_trustpoints(setup, cas) -> None:
    """Other trustpoints' CA certificates are only read for a CA that needs an issuer among them."""
    root, _, pki = setup
    (root / "trustpoints" / "damaged" / "ca.pem").mkdir(parents=True)  # unreadable as a file
    assert pki.authenticate(terminal("root"), ca_pem=cas["root"].text, accept=True).installed
    with pytest.raises(OSError):  # a subordinate CA does read them (and the damaged one stops it)
        pki.authenticate(terminal("issuing"), ca_pem=cas["sub"].text, accept=True)


def _self_signed(*, ca: bool, days: tuple[int, int]) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Old CA" if ca else "Not a CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(5).not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_expired_or_non_ca_certificates_are_refused(setup) -> None:
    _, _, pki = setup
    with pytest.raises(UntrustedCaError) as expired:
        pki.authenticate(terminal(), ca_pem=_self_signed(ca=True, days=(-30, -1)), accept=True)
    assert "not valid now" in expired.value.message
    with pytest.raises(UntrustedCaError) as leaf:
        pki.authenticate(terminal(), ca_pem=_self_signed(ca=False, days=(-1, 30)), accept=True)
    assert "not a CA certificate" in leaf.value.message
    assert pki.state("myca").ca is None


# --------------------------------------------------------------------------- enroll and import


def test_terminal_general_keys_request_sign_import(setup, cas) -> None:
    root, keystore, pki = setup
    keystore.generate_rsa("mykey", modulus=1024)
    tp = terminal()
    with pytest.raises(CaNotAuthenticatedError):
        pki.enroll(tp, None, fqdn=FQDN)
    pki.authenticate(tp, ca_pem=cas["root"].text, accept=True)
    outcome = pki.enroll(tp, CHALLENGE, fqdn=FQDN)
    assert outcome.status is EnrollmentStatus.REQUESTED
    assert "ca-import-certificate myca" in outcome.message
    pem = outcome.certificate_requests[KeyUsage.GENERAL]
    csr = x509.load_pem_x509_csr(pem.encode())
    assert csr.subject == x509.Name([x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, FQDN)])
    assert csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value == CHALLENGE.encode()
    request = outcome.requests[KeyUsage.GENERAL]
    assert request.status is EnrollmentStatus.REQUESTED and request.transaction_id is None
    assert request.fingerprint == hashlib.md5(csr.public_bytes(serialization.Encoding.DER)).hexdigest().upper()

    state = pki.state("myca")
    assert state.certificates[KeyUsage.GENERAL].status is CertificateStatus.PENDING
    assert state.requests[KeyUsage.GENERAL].state is RequestState.AWAITING_IMPORT
    for path in root.rglob("*"):
        if path.is_file():
            assert CHALLENGE.encode() not in path.read_bytes() and b"CERTIFICATE REQUEST" not in path.read_bytes()

    with pytest.raises(WrongIssuerError):
        pki.import_certificate(tp, cas["other"].sign(pem))
    assert pki.state("myca").requests[KeyUsage.GENERAL].state is RequestState.AWAITING_IMPORT

    signed = cas["root"].sign(pem)
    imported = pki.import_certificate(tp, signed)
    assert imported.key_usage is KeyUsage.GENERAL
    assert imported.certificate.serial_number == f"{cas['root'].serial:02X}"
    assert imported.certificate.issuer == pki.state("myca").ca.subject  # type: ignore[union-attr]
    state = pki.state("myca")
    assert state.certificates[KeyUsage.GENERAL].status is CertificateStatus.AVAILABLE
    assert state.requests[KeyUsage.GENERAL].state is RequestState.ISSUED
    assert state.requests[KeyUsage.GENERAL].serial_number == imported.certificate.serial_number
    assert load_certificate(signed) == load_certificate(state.certificates[KeyUsage.GENERAL].info.pem)  # type: ignore[union-attr]


@pytest.mark.parametrize("order", [(KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION), (KeyUsage.ENCRYPTION, KeyUsage.SIGNATURE)])
def test_terminal_usage_keys_import_in_either_order(setup, cas, order) -> None:
    _, keystore, pki = setup
    keystore.generate_rsa("mykey", KeyPairType.USAGE_KEYS, modulus=1024)
    tp = TrustpointConfig("myca", terminal=True, rsakeypair="mykey", subject_name="CN=r1,O=Example")
    pki.authenticate(tp, ca_pem=cas["root"].text, accept=True)
    outcome = pki.enroll(tp, None, fqdn=FQDN)
    assert set(outcome.certificate_requests) == {KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION}
    first, second = order
    assert pki.import_certificate(tp, cas["root"].sign(outcome.certificate_requests[first])).key_usage is first
    state = pki.state("myca")
    assert state.certificates[first].status is CertificateStatus.AVAILABLE
    assert state.certificates[second].status is CertificateStatus.PENDING
    assert pki.import_certificate(tp, cas["root"].sign(outcome.certificate_requests[second])).key_usage is second
    state = pki.state("myca")
    assert {u: c.status for u, c in state.certificates.items()} == {
        KeyUsage.SIGNATURE: CertificateStatus.AVAILABLE,
        KeyUsage.ENCRYPTION: CertificateStatus.AVAILABLE,
    }
    assert all(r.state is RequestState.ISSUED for r in state.requests.values())
    sig = load_certificate(state.certificates[KeyUsage.SIGNATURE].info.pem)  # type: ignore[union-attr]
    usage = sig.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment
    assert sig.subject.rfc4514_string() == "CN=r1,O=Example"


def test_terminal_cancel_and_clear(setup, cas) -> None:
    root, keystore, pki = setup
    keystore.generate_rsa("mykey", modulus=1024)
    tp = terminal()
    pki.authenticate(tp, ca_pem=cas["root"].text, accept=True)
    pki.enroll(tp, None, fqdn=FQDN)
    pki.cancel_enrollment("myca")
    assert pki.state("myca").requests == {} and pki.state("myca").certificates == {}
    with pytest.raises(NoEnrollmentInProgressError):
        pki.cancel_enrollment("myca")
    pem = pki.enroll(tp, None, fqdn=FQDN).certificate_requests[KeyUsage.GENERAL]
    pki.import_certificate(tp, cas["root"].sign(pem))
    assert pki.clear_certificates("myca") == ["myca"]
    assert sorted(p.name for p in (root / "trustpoints" / "myca").iterdir()) == []


def test_enroll_refuses_a_subject_name_with_control_characters(setup, cas) -> None:
    """The backend's own check, for a configuration that never went through YANG validation."""
    root, keystore, pki = setup
    keystore.generate_rsa("mykey", modulus=1024)
    tp = TrustpointConfig(name="myca", terminal=True, rsakeypair="mykey", subject_name="CN=r1\nO=evil")
    pki.authenticate(tp, ca_pem=cas["root"].text, accept=True)
    with pytest.raises(InvalidSubjectNameError) as caught:
        pki.enroll(tp, CHALLENGE)
    assert caught.value.error_tag == "invalid-value" and caught.value.error_app_tag == "invalid-subject-name"
    assert "control characters" in caught.value.message
    assert pki.state("myca").requests == {}  # nothing requested, nothing written
    assert not list((root / "trustpoints" / "myca").glob("enrollment-*"))


def test_trustpoint_config_is_validated() -> None:
    with pytest.raises(InvalidTrustpointConfigError):
        TrustpointConfig("tp", retry_period=0)
    with pytest.raises(InvalidTrustpointConfigError):
        TrustpointConfig("tp", retry_count=101)
    with pytest.raises(InvalidTrustpointConfigError):
        TrustpointConfig("tp", enrollment_url="http://ca/", terminal=True)
    assert TrustpointConfig("tp").key_label == "the_default" and TrustpointConfig("tp").method is None
