"""The SCEP client against the lab CA (in-process HTTP server on 127.0.0.1)."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import subprocess
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from agent.labca import LabCa, RequestState
from agent.labca.cli import main as lab_ca_main
from agent.pki import cms
from agent.pki.scep import (
    CA_RA_CERT_CONTENT_TYPE,
    CaCaps,
    Capability,
    CertRep,
    FailInfo,
    IssuerAndSerial,
    IssuerAndSubject,
    MessageType,
    PkiMessage,
    PkiRequest,
    PkiStatus,
    ScepClient,
    ScepVerificationError,
    transaction_id_for,
)
from agent.pki.scep.http import ScepTransport
from agent.pki.scep.messages import new_nonce

CHALLENGE = "lab-secret"


def _verify_with_openssl(ca_pem: Path, cert: x509.Certificate, tmp_path: Path) -> None:
    path = tmp_path / "issued.pem"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca_pem), str(path)], capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _crl_urls(cert: x509.Certificate) -> list[str]:
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    return [str(name.value) for point in cdp for name in point.full_name or []]


# --------------------------------------------------------------------------- immediate issue


def test_labca_immediate_issue(lab_ca, rsa_key, make_csr, tmp_path: Path) -> None:
    ca, server = lab_ca(challenge=CHALLENGE)
    client = ScepClient(server.url, timeout=10)
    caps = client.get_ca_caps()
    assert caps.post and caps.sha256 and caps.sha1 and caps.aes and caps.des3 and caps.renewal
    ca_certs = client.get_ca_certificates()
    assert ca_certs.ca == ca.ca_certificate and not ca_certs.has_ra
    csr = make_csr(rsa_key, unstructured_name="router20.example.com", challenge=CHALLENGE)
    response = client.enroll(csr, rsa_key, ca_certs)
    assert response.status is PkiStatus.SUCCESS, response.message
    cert = response.certificate
    assert cert is not None
    assert cert.subject == csr.subject
    assert cert.subject.rfc4514_string() == "1.2.840.113549.1.9.2=router20.example.com"
    assert cert.issuer == ca.ca_certificate.subject
    assert _crl_urls(cert) == [server.crl_url]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 365
    _verify_with_openssl(ca.store.ca_cert_path, cert, tmp_path)
    assert ca.requests(RequestState.ISSUED)[0].serial == cert.serial_number


def test_labca_serials_increase_and_resend_returns_same_certificate(lab_ca, make_csr) -> None:
    _, server = lab_ca(validity_days=30)
    client = ScepClient(server.url, timeout=10)
    ca_certs = client.get_ca_certificates()
    serials = []
    for _ in range(2):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        csr = make_csr(key, cn=f"host-{secrets.token_hex(4)}")
        first = client.enroll(csr, key, ca_certs)
        assert first.certificate is not None
        assert (first.certificate.not_valid_after_utc - first.certificate.not_valid_before_utc).days == 30
        again = client.enroll(csr, key, ca_certs)  # a lost response: same request, same certificate
        assert again.certificate == first.certificate
        serials.append(first.certificate.serial_number)
    assert serials[1] == serials[0] + 1


def test_labca_wrong_or_missing_challenge_is_bad_request(lab_ca, rsa_key, make_csr) -> None:
    ca, server = lab_ca(challenge=CHALLENGE)
    client = ScepClient(server.url, timeout=10)
    ca_certs = client.get_ca_certificates()
    for challenge in ("wrong", None):
        response = client.enroll(make_csr(rsa_key, cn="h", challenge=challenge), rsa_key, ca_certs)
        assert response.status is PkiStatus.FAILURE
        assert response.fail_info is FailInfo.BAD_REQUEST
        # the CA's own words (failInfoText) after the failInfo keyword
        assert response.message == "CA rejected the request (badRequest): wrong or missing challenge password"
        assert response.fail_info_text == "wrong or missing challenge password"
        assert response.transaction_id == transaction_id_for(rsa_key.public_key()) and response.certificate is None
    assert ca.requests() == []  # failures leave nothing behind
    ok = client.enroll(make_csr(rsa_key, cn="h", challenge=CHALLENGE), rsa_key, ca_certs)
    assert ok.status is PkiStatus.SUCCESS
    assert ok.certificate is not None and ok.ca_certificates == ()  # the lab CA sends only the new certificate
    assert ok.message == f"certificate issued: serial {ok.certificate.serial_number:02X}, subject CN=h"


# --------------------------------------------------------------------------- manual approval


def test_labca_manual_approval_then_poll(lab_ca, rsa_key, make_csr, tmp_path: Path, capsys) -> None:
    ca, server = lab_ca(challenge=CHALLENGE, manual_approval=True)
    client = ScepClient(server.url, timeout=10)
    ca_certs = client.get_ca_certificates()
    csr = make_csr(rsa_key, cn="pending-host", unstructured_name="r1.example.com", challenge=CHALLENGE)
    response = client.enroll(csr, rsa_key, ca_certs)
    assert response.status is PkiStatus.PENDING
    assert response.certificate is None and response.fail_info is None
    txid = response.transaction_id
    assert txid in response.message

    assert client.poll(txid, csr.subject, rsa_key, ca_certs).status is PkiStatus.PENDING

    data_dir = str(ca.store.root)
    assert lab_ca_main(["list", "--data-dir", data_dir]) == 0
    listing = capsys.readouterr().out
    assert txid in listing and "pending" in listing and "CN=pending-host" in listing

    assert lab_ca_main(["approve", txid, "--data-dir", data_dir]) == 0
    assert f"approved {txid}" in capsys.readouterr().out
    assert lab_ca_main(["approve", txid, "--data-dir", data_dir]) == 1  # no longer pending
    assert "not pending" in capsys.readouterr().err

    done = client.poll(txid, csr.subject, rsa_key, ca_certs)
    assert done.status is PkiStatus.SUCCESS, done.message
    assert done.certificate is not None and done.certificate.subject == csr.subject
    _verify_with_openssl(ca.store.ca_cert_path, done.certificate, tmp_path)
    again = client.poll(txid, csr.subject, rsa_key, ca_certs)
    assert again.certificate == done.certificate


def test_labca_reject_then_poll_fails(lab_ca, rsa_key, make_csr, capsys) -> None:
    ca, server = lab_ca(manual_approval=True)
    client = ScepClient(server.url, timeout=10)
    ca_certs = client.get_ca_certificates()
    csr = make_csr(rsa_key, cn="rejected-host")
    txid = client.enroll(csr, rsa_key, ca_certs).transaction_id
    assert lab_ca_main(["reject", txid, "--data-dir", str(ca.store.root), "--reason", "not on the list"]) == 0
    response = client.poll(txid, csr.subject, rsa_key, ca_certs)
    assert response.status is PkiStatus.FAILURE
    assert response.fail_info is FailInfo.BAD_REQUEST
    assert response.message.endswith(": not on the list")


def test_labca_poll_checks_key_subject_and_transaction(lab_ca, rsa_key, make_csr) -> None:
    _, server = lab_ca(manual_approval=True)
    client = ScepClient(server.url, timeout=10)
    ca_certs = client.get_ca_certificates()
    csr = make_csr(rsa_key, cn="h1")
    txid = client.enroll(csr, rsa_key, ca_certs).transaction_id
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stolen = client.poll(txid, csr.subject, other_key, ca_certs)
    assert stolen.status is PkiStatus.FAILURE and stolen.fail_info is FailInfo.BAD_MESSAGE_CHECK
    wrong_subject = client.poll(txid, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "h2")]), rsa_key, ca_certs)
    assert wrong_subject.fail_info is FailInfo.BAD_CERT_ID
    unknown = client.poll("NO-SUCH-TX", csr.subject, rsa_key, ca_certs)
    assert unknown.fail_info is FailInfo.BAD_CERT_ID


# --------------------------------------------------------------------------- RA mode


def test_labca_ra_mode(lab_ca, rsa_key, make_csr, tmp_path: Path) -> None:
    ca, server = lab_ca(ra=True, challenge=CHALLENGE)
    assert ca.ra_certificate is not None
    with urllib.request.urlopen(f"{server.url}?operation=GetCACert", timeout=10) as reply:
        assert reply.headers["Content-Type"] == CA_RA_CERT_CONTENT_TYPE
    client = ScepClient(server.url, timeout=10)
    ca_certs = client.get_ca_certificates()
    assert ca_certs.ca == ca.ca_certificate
    assert ca_certs.ra_signing == ca.ra_certificate == ca_certs.ra_encryption
    assert ca_certs.recipient == ca.ra_certificate

    response = client.enroll(make_csr(rsa_key, cn="via-ra", challenge=CHALLENGE), rsa_key, ca_certs)
    assert response.status is PkiStatus.SUCCESS, response.message
    assert response.certificate is not None and response.certificate.issuer == ca.ca_certificate.subject
    _verify_with_openssl(ca.store.ca_cert_path, response.certificate, tmp_path)

    # Look at the wire: the request is for the RA, the CertRep is signed by the RA, not the CA.
    signer = _self_signed(rsa_key)
    request = PkiRequest(
        MessageType.CERT_POLL,
        response.transaction_id,
        new_nonce(),
        IssuerAndSubject.from_names(ca.ca_certificate.subject, response.certificate.subject),
    )
    der = request.to_der(
        signer_key=rsa_key,
        signer_cert=signer,
        recipient=ca.ra_certificate,
        digest=cms.DigestAlgorithm.SHA256,
        encryption=cms.ContentEncryption.DES3_CBC,
        signing_time=signer.not_valid_before_utc,
    )
    reply_der = ScepTransport(server.url, timeout=10).post("PKIOperation", der).body
    message = PkiMessage.from_der(reply_der)
    assert message.status is PkiStatus.SUCCESS
    assert message.verify([ca.ra_certificate]) == ca.ra_certificate
    with pytest.raises(ScepVerificationError):
        message.verify([ca.ca_certificate])
    assert message.envelope_encryption is cms.ContentEncryption.DES3_CBC  # answers in the request's cipher


def _self_signed(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "requester")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )


# --------------------------------------------------------------------------- CRL, GetCert, GetCRL


def test_labca_crl_served_and_revocation(lab_ca, rsa_key, make_csr, capsys) -> None:
    ca, server = lab_ca()
    client = ScepClient(server.url, timeout=10)
    ca_certs = client.get_ca_certificates()
    cert = client.enroll(make_csr(rsa_key, cn="to-revoke"), rsa_key, ca_certs).certificate
    assert cert is not None
    for path in ("/crl", "/ca.crl"):
        with urllib.request.urlopen(f"{server.base_url}{path}", timeout=10) as reply:
            assert reply.headers["Content-Type"] == "application/pkix-crl"
            crl = x509.load_der_x509_crl(reply.read())
        assert crl.issuer == ca.ca_certificate.subject
        assert crl.is_signature_valid(ca.ca_certificate.public_key())
        assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is None

    serial_text = f"{cert.serial_number:02X}"
    assert lab_ca_main(["revoke", serial_text, "--data-dir", str(ca.store.root)]) == 0
    assert f"revoked serial {serial_text}" in capsys.readouterr().out
    assert lab_ca_main(["revoke", serial_text, "--data-dir", str(ca.store.root)]) == 1
    assert lab_ca_main(["revoke", "FFFF", "--data-dir", str(ca.store.root)]) == 1
    assert "no certificate with serial FFFF" in capsys.readouterr().err

    with urllib.request.urlopen(_crl_urls(cert)[0], timeout=10) as reply:
        crl = x509.load_der_x509_crl(reply.read())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number >= 2

    # The same CRL and the certificate over SCEP (GetCRL / GetCert), which the lab CA also serves.
    get_crl = _scep_query(server.url, ca, MessageType.GET_CRL, IssuerAndSerial.from_certificate(ca.ca_certificate), rsa_key)
    assert get_crl.status is PkiStatus.SUCCESS and len(get_crl.crls) == 1
    assert get_crl.crls[0].get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    issuer = ca.ca_certificate.subject.public_bytes()
    get_cert = _scep_query(server.url, ca, MessageType.GET_CERT, IssuerAndSerial(issuer, cert.serial_number), rsa_key)
    assert get_cert.status is PkiStatus.SUCCESS and get_cert.certificates == (cert,)
    unknown = _scep_query(server.url, ca, MessageType.GET_CERT, IssuerAndSerial(issuer, 0xFFFF), rsa_key)
    assert unknown.status is PkiStatus.FAILURE and unknown.fail_info is FailInfo.BAD_CERT_ID


def _scep_query(url: str, ca: LabCa, kind: MessageType, body: IssuerAndSerial, key: rsa.RSAPrivateKey) -> CertRep:
    """One GetCert/GetCRL exchange, built from the message classes (the agent's client sends neither)."""
    signer = _self_signed(key)
    request = PkiRequest(kind, f"TX-{kind.name}-{secrets.token_hex(4)}", new_nonce(), body)
    der = request.to_der(
        signer_key=key,
        signer_cert=signer,
        recipient=ca.ca_certificate,
        digest=cms.DigestAlgorithm.SHA256,
        encryption=cms.ContentEncryption.AES128_CBC,
        signing_time=signer.not_valid_before_utc,
    )
    reply = PkiMessage.from_der(ScepTransport(url, timeout=10).post("PKIOperation", der).body)
    rep = CertRep.from_message(reply, signers=(ca.ca_certificate,), key=key, certificate=signer)
    assert rep.transaction_id == request.transaction_id and rep.recipient_nonce == request.sender_nonce
    return rep


def test_labca_state_survives_restart(tmp_path: Path, rsa_key, make_csr, lab_ca) -> None:
    ca, server = lab_ca(name="persist", manual_approval=True)
    client = ScepClient(server.url, timeout=10)
    ca_certs = client.get_ca_certificates()
    csr = make_csr(rsa_key, cn="persist")
    txid = client.enroll(csr, rsa_key, ca_certs).transaction_id
    reopened = LabCa(tmp_path / "persist", create=False)
    assert reopened.ca_certificate == ca.ca_certificate
    assert [r.transaction_id for r in reopened.pending()] == [txid]
    reopened.approve(txid)
    assert client.poll(txid, csr.subject, rsa_key, ca_certs).status is PkiStatus.SUCCESS


def test_labca_get_pki_operation_tolerates_unencoded_base64(lab_ca, rsa_key, make_csr) -> None:
    """Some clients forget to URL-encode the base64 message: '+' arrives as a space."""
    ca, server = lab_ca()
    signer = _self_signed(rsa_key)
    for attempt in range(20):  # find a message whose base64 contains '+'
        request = PkiRequest(
            MessageType.PKCS_REQ, f"TX-GET-{attempt}", new_nonce(), make_csr(rsa_key, cn=f"get-{attempt}")
        )
        der = request.to_der(
            signer_key=rsa_key,
            signer_cert=signer,
            recipient=ca.ca_certificate,
            digest=cms.DigestAlgorithm.SHA256,
            encryption=cms.ContentEncryption.AES128_CBC,
            signing_time=signer.not_valid_before_utc,
        )
        text = base64.b64encode(der).decode()
        if "+" in text:
            break
    else:
        pytest.fail("no '+' in 20 base64 messages")
    url = f"{server.url}?operation=PKIOperation&message={text.replace('/', '%2F')}"
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.headers["Content-Type"] == "application/x-pki-message"
        message = PkiMessage.from_der(reply.read())
    assert message.status is PkiStatus.SUCCESS
    assert message.recipient_nonce == request.sender_nonce


@pytest.mark.parametrize("caps", [CaCaps.of(Capability.AES, Capability.SHA256), CaCaps.of(Capability.DES3)])
def test_labca_enrollment_by_get(lab_ca, rsa_key, make_csr, caps: CaCaps) -> None:
    """A CA without POSTPKIOperation gets PKIOperation by GET (base64 in the query), both ways."""
    ca, server = lab_ca(challenge=CHALLENGE)
    client = ScepClient(server.url, timeout=10, caps=caps)
    response = client.enroll(make_csr(rsa_key, cn="by-get", challenge=CHALLENGE), rsa_key, client.get_ca_certificates())
    assert response.status is PkiStatus.SUCCESS, response.message
    assert response.certificate is not None and response.certificate.issuer == ca.ca_certificate.subject
