"""Known-answer SCEP vectors: messages of real peers, read by our code without any server.

The bytes under tests/fixtures/scep/ were captured once from micromdm's
``scepserver`` (answering our client) and micromdm's ``scepclient`` (enrolling
with our lab CA), with the throwaway keys needed to read them; see
tests/fixtures/scep/README.md for how, and capture.py to re-capture. A bug
shared by our client and our lab CA cannot pass these tests, since one side of
every message here is written by someone else's code.

RFC 8894 examples and registry values sit at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AttributeOID, NameOID

from agent.labca import LabCa
from agent.pki import cms
from agent.pki.scep import (
    CA_CERT_CONTENT_TYPE,
    CaCaps,
    CaCertificates,
    Capability,
    CertRep,
    FailInfo,
    MessageType,
    PkiMessage,
    PkiRequest,
    PkiStatus,
    ScepProtocolError,
    ScepVerificationError,
)
from agent.pki.scep import messages as scep_messages

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scep"
MANIFEST: dict[str, Any] = json.loads((FIXTURES / "manifest.json").read_text())
SCEPSERVER = FIXTURES / "scepserver"
LABCA = FIXTURES / "labca"


def _key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _same_key(cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bool:
    public = cert.public_key()
    return isinstance(public, rsa.RSAPublicKey) and public.public_numbers() == key.public_key().public_numbers()


def _cn(name: x509.Name) -> str:
    return str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _challenge(csr: x509.CertificateSigningRequest) -> str:
    value = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
    return value.decode() if isinstance(value, bytes) else str(value)


def _scepserver_ca_certs() -> CaCertificates:
    body = (SCEPSERVER / "getcacert.der").read_bytes()
    return CaCertificates.from_http(MANIFEST["scepserver"]["getcacert_content_type"], body)


def _flip(data: bytes, needle: bytes, offset: int = 0) -> bytes:
    """``data`` with one bit changed in the (only) occurrence of ``needle``."""
    at = data.index(needle)
    assert data.find(needle, at + 1) == -1, "ambiguous tamper target"
    position = at + offset
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


# --------------------------------------------------------------------------- scepserver: GetCACaps, GetCACert


def test_scepserver_getcacaps_known_answer() -> None:
    text = (SCEPSERVER / "getcacaps.txt").read_text()
    assert text.split() == ["Renewal", "SHA-1", "SHA-256", "AES", "DES3", "SCEPStandard", "POSTPKIOperation"]
    caps = CaCaps.from_text(text)
    assert caps.capabilities == {
        Capability.RENEWAL,
        Capability.SHA1,
        Capability.SHA256,
        Capability.AES,
        Capability.DES3,
        Capability.SCEP_STANDARD,
        Capability.POST_PKI_OPERATION,
    }
    assert caps.unknown == ()
    assert not caps.get_next_ca_cert and not caps.sha512
    # what our client then chooses: the strongest advertised algorithms, by POST
    assert caps.digest_algorithm() is cms.DigestAlgorithm.SHA256
    assert caps.content_encryption() is cms.ContentEncryption.AES128_CBC
    assert caps.post


def test_scepserver_getcacert_known_answer() -> None:
    assert MANIFEST["scepserver"]["getcacert_content_type"] == CA_CERT_CONTENT_TYPE
    ca_certs = _scepserver_ca_certs()
    ca = _cert(SCEPSERVER / "ca.pem")
    assert ca_certs.ca == ca
    assert not ca_certs.has_ra
    assert ca_certs.recipient == ca and ca_certs.signers == (ca,)
    assert ca.subject.rfc4514_string() == "OU=SCEP CA,O=ca-agent KAT,C=US"
    with pytest.raises(ScepProtocolError, match="unexpected content type"):
        CaCertificates.from_http("text/html", (SCEPSERVER / "getcacert.der").read_bytes())


# --------------------------------------------------------------------------- scepserver: CertRep SUCCESS


ENROLLMENTS = MANIFEST["scepserver"]["enrollments"]


@pytest.mark.parametrize(
    ("name", "digest", "encryption"),
    [
        ("success", cms.DigestAlgorithm.SHA256, cms.ContentEncryption.AES128_CBC),
        ("des3-sha1-get", cms.DigestAlgorithm.SHA1, cms.ContentEncryption.DES3_CBC),
    ],
)
def test_scepserver_certrep_success_known_answer(
    name: str, digest: cms.DigestAlgorithm, encryption: cms.ContentEncryption
) -> None:
    case = ENROLLMENTS[name]
    key = _key(SCEPSERVER / f"{name}.key")
    ca_certs = _scepserver_ca_certs()
    request = PkiMessage.from_der((SCEPSERVER / f"{name}-pkcsreq.der").read_bytes())
    reply = PkiMessage.from_der((SCEPSERVER / f"{name}-certrep.der").read_bytes())

    # our request, as scepserver received it
    assert request.message_type is MessageType.PKCS_REQ
    assert request.transaction_id == case["transaction_id"]
    assert request.digest is digest and request.envelope_encryption is encryption
    assert request.sender_nonce is not None and len(request.sender_nonce) == 16
    signer_cert = request.verify(request.certificates)  # our transient self-signed certificate
    assert _same_key(signer_cert, key) and signer_cert.subject == signer_cert.issuer

    # scepserver's answer: SHA-1 signed and single-DES enveloped, whatever we asked
    assert reply.message_type is MessageType.CERT_REP
    assert reply.status is PkiStatus.SUCCESS and reply.fail_info is None
    assert reply.digest is cms.DigestAlgorithm.SHA1
    assert reply.envelope_encryption is cms.ContentEncryption.DES_CBC
    assert reply.transaction_id == request.transaction_id
    assert reply.recipient_nonce == request.sender_nonce
    assert reply.sender_nonce == request.sender_nonce  # micromdm echoes our nonce as its senderNonce

    rep = CertRep.from_message(reply, signers=ca_certs.signers, key=key, certificate=signer_cert)
    assert rep.status is PkiStatus.SUCCESS
    assert rep.recipient_nonce == request.sender_nonce and rep.transaction_id == case["transaction_id"]
    mine = [c for c in rep.certificates if _same_key(c, key)]
    assert len(mine) == 1
    cert = mine[0]
    assert _cn(cert.subject) == case["cn"]
    assert format(cert.serial_number, "X") == case["serial"]
    cert.verify_directly_issued_by(ca_certs.ca)  # raises if scepserver's CA did not sign it
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature


@pytest.mark.parametrize("name", ["success", "des3-sha1-get", "badchallenge"])
def test_our_pkcsreq_opens_with_scepserver_ca_key(name: str) -> None:
    """What scepserver decrypted: our CSR with its subject and challenge password."""
    case = ENROLLMENTS[name]
    message = PkiMessage.from_der((SCEPSERVER / f"{name}-pkcsreq.der").read_bytes())
    request, signer = PkiRequest.from_message(
        message, key=_key(SCEPSERVER / "ca.key"), certificate=_cert(SCEPSERVER / "ca.pem")
    )
    csr = request.body
    assert isinstance(csr, x509.CertificateSigningRequest) and csr.is_signature_valid
    assert _cn(csr.subject) == case["cn"] and _challenge(csr) == case["challenge"]
    assert _same_key(signer, _key(SCEPSERVER / f"{name}.key"))
    assert request.sender_nonce == message.sender_nonce


# --------------------------------------------------------------------------- scepserver: CertRep FAILURE


def test_scepserver_certrep_failure_known_answer() -> None:
    case = ENROLLMENTS["badchallenge"]
    key = _key(SCEPSERVER / "badchallenge.key")
    request = PkiMessage.from_der((SCEPSERVER / "badchallenge-pkcsreq.der").read_bytes())
    reply = PkiMessage.from_der((SCEPSERVER / "badchallenge-certrep.der").read_bytes())
    assert case["status"] == "FAILURE" and case["fail_info"] == "badRequest"
    assert reply.status is PkiStatus.FAILURE and reply.fail_info is FailInfo.BAD_REQUEST
    assert reply.fail_info_text is None  # scepserver sends no failInfoText
    assert reply.envelope_encryption is None  # a FAILURE carries no pkcsPKIEnvelope
    signer_cert = request.verify(request.certificates)
    rep = CertRep.from_message(reply, signers=_scepserver_ca_certs().signers, key=key, certificate=signer_cert)
    assert rep.status is PkiStatus.FAILURE and rep.fail_info is FailInfo.BAD_REQUEST
    assert rep.certificates == () and rep.crls == ()
    assert rep.transaction_id == request.transaction_id == case["transaction_id"]
    assert rep.recipient_nonce == request.sender_nonce


# --------------------------------------------------------------------------- scepserver: tampering is caught


def _success_parts() -> tuple[bytes, rsa.RSAPrivateKey, x509.Certificate, CaCertificates]:
    request = PkiMessage.from_der((SCEPSERVER / "success-pkcsreq.der").read_bytes())
    return (
        (SCEPSERVER / "success-certrep.der").read_bytes(),
        _key(SCEPSERVER / "success.key"),
        request.verify(request.certificates),
        _scepserver_ca_certs(),
    )


def _open(
    der: bytes, key: rsa.RSAPrivateKey, signer: x509.Certificate, signers: tuple[x509.Certificate, ...]
) -> CertRep:
    return CertRep.from_message(PkiMessage.from_der(der), signers=signers, key=key, certificate=signer)


def test_scepserver_certrep_signed_by_another_ca_is_refused() -> None:
    der, key, signer, _ = _success_parts()
    with pytest.raises(ScepVerificationError, match="not among the expected signers"):
        _open(der, key, signer, (_cert(LABCA / "ca.pem"),))


def test_scepserver_certrep_with_a_changed_signature_is_refused() -> None:
    der, key, signer, ca_certs = _success_parts()
    signature = PkiMessage.from_der(der).signed.signer_infos[0].signature
    with pytest.raises(ScepVerificationError, match="signature does not verify"):
        _open(_flip(der, signature, len(signature) - 1), key, signer, ca_certs.signers)


def test_scepserver_certrep_with_a_changed_signed_attribute_is_refused() -> None:
    der, key, signer, ca_certs = _success_parts()
    txid = ENROLLMENTS["success"]["transaction_id"].encode()
    tampered = _flip(der, txid, 3)  # still a printable transactionID, no longer the signed one
    assert PkiMessage.from_der(tampered).transaction_id != txid.decode()
    with pytest.raises(ScepVerificationError, match="signature does not verify"):
        _open(tampered, key, signer, ca_certs.signers)


def test_scepserver_certrep_with_changed_content_is_refused() -> None:
    der, key, signer, ca_certs = _success_parts()
    content = PkiMessage.from_der(der).signed.content
    assert content is not None
    with pytest.raises(ScepVerificationError, match="messageDigest does not match"):
        _open(_flip(der, content[-64:], 10), key, signer, ca_certs.signers)


def test_scepserver_certrep_cannot_be_opened_with_another_key() -> None:
    der, _, signer, ca_certs = _success_parts()
    with pytest.raises(ScepProtocolError, match="cannot open the pkcsPKIEnvelope"):
        _open(der, _key(SCEPSERVER / "badchallenge.key"), signer, ca_certs.signers)


# --------------------------------------------------------------------------- scepclient -> our lab CA


def _scepclient_request() -> PkiMessage:
    return PkiMessage.from_der((LABCA / "scepclient-pkcsreq.der").read_bytes())


def test_scepclient_pkcsreq_known_answer() -> None:
    message = _scepclient_request()
    key = _key(LABCA / "scepclient.key")
    assert message.message_type is MessageType.PKCS_REQ
    # micromdm's client: SHA-1, single DES, a base64 SHA-1 of the key as transactionID
    assert message.digest is cms.DigestAlgorithm.SHA1
    assert message.envelope_encryption is cms.ContentEncryption.DES_CBC
    assert len(message.transaction_id) == 28 and message.transaction_id.endswith("=")
    assert message.sender_nonce is not None and len(message.sender_nonce) == 16
    request, signer = PkiRequest.from_message(message, key=_key(LABCA / "ca.key"), certificate=_cert(LABCA / "ca.pem"))
    assert request.message_type is MessageType.PKCS_REQ
    assert request.transaction_id == message.transaction_id
    csr = request.body
    assert isinstance(csr, x509.CertificateSigningRequest) and csr.is_signature_valid
    captured = x509.load_pem_x509_csr((LABCA / "scepclient-csr.pem").read_bytes())
    assert csr.public_bytes(serialization.Encoding.DER) == captured.public_bytes(serialization.Encoding.DER)
    assert _cn(csr.subject) == MANIFEST["labca"]["cn"]
    assert _challenge(csr) == MANIFEST["labca"]["challenge"]
    assert _same_key(signer, key) and signer.subject.rfc4514_string() == "CN=SCEP SIGNER,O=ca-agent KAT"


def test_scepclient_pkcsreq_for_someone_else_does_not_open() -> None:
    with pytest.raises(ScepProtocolError, match="cannot open the pkcsPKIEnvelope"):
        PkiRequest.from_message(
            _scepclient_request(), key=_key(SCEPSERVER / "ca.key"), certificate=_cert(SCEPSERVER / "ca.pem")
        )


def _lab_ca(tmp_path: Path, challenge: str) -> LabCa:
    data = tmp_path / "labca"
    data.mkdir(mode=0o700)
    shutil.copy(LABCA / "ca.key", data / "ca.key")
    shutil.copy(LABCA / "ca.pem", data / "ca.pem")
    return LabCa(data, challenge=challenge, create=False)


def _openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True, timeout=60, check=False)


def _check_with_openssl(certrep: bytes, folder: Path, cert: x509.Certificate, signer: x509.Certificate) -> None:
    """openssl verifies the CertRep against the lab CA, decrypts it for scepclient's key, finds ``cert``."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    (folder / "certrep.der").write_bytes(certrep)
    (folder / "signer.pem").write_bytes(signer.public_bytes(serialization.Encoding.PEM))
    verified = _openssl(
        "cms", "-verify", "-inform", "DER", "-in", str(folder / "certrep.der"), "-binary",
        "-CAfile", str(LABCA / "ca.pem"), "-purpose", "any", "-no_check_time", "-out", str(folder / "envelope.der"),
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr.decode()
    decrypted = _openssl(
        "cms", "-decrypt", "-inform", "DER", "-in", str(folder / "envelope.der"), "-binary",
        "-recip", str(folder / "signer.pem"), "-inkey", str(LABCA / "scepclient.key"), "-out", str(folder / "certs.p7"),
    )  # fmt: skip
    assert decrypted.returncode == 0, decrypted.stderr.decode()
    printed = _openssl("pkcs7", "-inform", "DER", "-in", str(folder / "certs.p7"), "-print_certs")
    assert printed.returncode == 0, printed.stderr.decode()
    assert x509.load_pem_x509_certificates(printed.stdout) == [cert]


def test_lab_ca_answers_scepclient_request(tmp_path: Path) -> None:
    """Our lab CA issues for micromdm's request, and openssl reads the CertRep."""
    message = _scepclient_request()
    key = _key(LABCA / "scepclient.key")
    signer = message.verify(message.certificates)
    ca = _lab_ca(tmp_path, MANIFEST["labca"]["challenge"])
    der = ca.handle_pki_operation((LABCA / "scepclient-pkcsreq.der").read_bytes())
    reply = PkiMessage.from_der(der)
    assert reply.digest is cms.DigestAlgorithm.SHA1  # answered with the request's digest
    assert reply.envelope_encryption is cms.ContentEncryption.AES128_CBC  # never single DES
    rep = CertRep.from_message(reply, signers=(ca.ca_certificate,), key=key, certificate=signer)
    assert rep.status is PkiStatus.SUCCESS, rep.fail_info_text
    assert rep.transaction_id == message.transaction_id and rep.recipient_nonce == message.sender_nonce
    assert len(rep.certificates) == 1
    cert = rep.certificates[0]
    assert _same_key(cert, key)
    assert cert.subject == x509.load_pem_x509_csr((LABCA / "scepclient-csr.pem").read_bytes()).subject
    cert.verify_directly_issued_by(_cert(LABCA / "ca.pem"))
    _check_with_openssl(der, tmp_path, cert, signer)


def test_lab_ca_refuses_scepclient_request_with_another_challenge(tmp_path: Path) -> None:
    message = _scepclient_request()
    ca = _lab_ca(tmp_path, "another-challenge")
    reply = PkiMessage.from_der(ca.handle_pki_operation((LABCA / "scepclient-pkcsreq.der").read_bytes()))
    signer = message.verify(message.certificates)
    rep = CertRep.from_message(
        reply, signers=(ca.ca_certificate,), key=_key(LABCA / "scepclient.key"), certificate=signer
    )
    assert rep.status is PkiStatus.FAILURE and rep.fail_info is FailInfo.BAD_REQUEST
    assert rep.certificates == () and rep.recipient_nonce == message.sender_nonce
    assert not ca.store.list_requests()  # nothing recorded or issued


def test_captured_lab_ca_certrep_is_what_scepclient_accepted(tmp_path: Path) -> None:
    """The CertRep our lab CA sent at capture time holds the certificate scepclient then saved."""
    message = _scepclient_request()
    signer = message.verify(message.certificates)
    der = (LABCA / "labca-certrep.der").read_bytes()
    rep = CertRep.from_message(
        PkiMessage.from_der(der),
        signers=(_cert(LABCA / "ca.pem"),),
        key=_key(LABCA / "scepclient.key"),
        certificate=signer,
    )
    accepted = _cert(LABCA / "scepclient-issued.pem")
    assert rep.status is PkiStatus.SUCCESS and rep.certificates == (accepted,)
    assert rep.recipient_nonce == message.sender_nonce
    _check_with_openssl(der, tmp_path, accepted, signer)


# --------------------------------------------------------------------------- RFC 8894


def test_rfc8894_getcacaps_example() -> None:
    """Section 3.5.2: 'GET ...?operation=GetCACaps might return' these keywords."""
    caps = CaCaps.from_text("AES\nGetNextCACert\nPOSTPKIOperation\nSCEPStandard\nSHA-256\n")
    assert caps.aes and caps.get_next_ca_cert and caps.post and caps.scep_standard and caps.sha256
    assert not caps.des3 and not caps.sha1 and not caps.renewal
    assert caps.digest_algorithm() is cms.DigestAlgorithm.SHA256
    assert caps.content_encryption() is cms.ContentEncryption.AES128_CBC
    # "SCEPStandard" alone implies "AES", "POSTPKIOperation" and "SHA-256" (section 3.5.2)
    alone = CaCaps.from_text("SCEPStandard")
    assert alone.aes and alone.post and alone.sha256 and not alone.sha512 and not alone.renewal


def test_rfc8894_legacy_ca_without_capabilities() -> None:
    """Section 3.5.1: a CA that answers nothing useful gets the legacy SHA-1 / Triple-DES, GET."""
    caps = CaCaps.from_text("")
    assert caps.digest_algorithm() is cms.DigestAlgorithm.SHA1
    assert caps.content_encryption() is cms.ContentEncryption.DES3_CBC
    assert not caps.post


def test_rfc8894_registry_values() -> None:
    """Section 3.2.1 (OIDs), 3.2.1.2 (messageType), 3.2.1.3 (pkiStatus), 3.2.1.4 (failInfo)."""
    assert {m.name: m.value for m in MessageType} == {
        "CERT_REP": "3",
        "RENEWAL_REQ": "17",
        "UPDATE_REQ": "18",
        "PKCS_REQ": "19",
        "CERT_POLL": "20",
        "GET_CERT": "21",
        "GET_CRL": "22",
    }
    assert {s.name: s.value for s in PkiStatus} == {"SUCCESS": "0", "FAILURE": "2", "PENDING": "3"}
    assert [(f.value, f.keyword) for f in FailInfo] == [
        ("0", "badAlg"),
        ("1", "badMessageCheck"),
        ("2", "badRequest"),
        ("3", "badTime"),
        ("4", "badCertId"),
    ]
    attributes = "2.16.840.1.113733.1.9"  # id-VeriSign pki(1) attributes(9)
    assert scep_messages.OID_MESSAGE_TYPE == f"{attributes}.2"
    assert scep_messages.OID_PKI_STATUS == f"{attributes}.3"
    assert scep_messages.OID_FAIL_INFO == f"{attributes}.4"
    assert scep_messages.OID_SENDER_NONCE == f"{attributes}.5"
    assert scep_messages.OID_RECIPIENT_NONCE == f"{attributes}.6"
    assert scep_messages.OID_TRANSACTION_ID == f"{attributes}.7"
    assert scep_messages.OID_FAIL_INFO_TEXT == "1.3.6.1.5.5.7.24.1"  # id-pkix 24 1
