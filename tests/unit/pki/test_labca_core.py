"""agent.labca without HTTP: PKIOperation handling, renewal, records, serials, CRL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AttributeOID, ExtendedKeyUsageOID, NameOID

from agent.labca import LabCa, LabCaError, LabCaNotFoundError, LabCaRequestError, LabCaStateError, RequestState
from agent.labca.store import RequestRecord, parse_serial, serial_hex
from agent.pki import cms
from agent.pki.scep import CertRep, FailInfo, MessageType, PkiMessage, PkiRequest, PkiStatus
from agent.pki.scep.messages import new_nonce


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LabCa:
    return LabCa(tmp_path_factory.mktemp("labca") / "ca", challenge="pw", crl_url="http://127.0.0.1:1/crl")


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _self_signed(key: rsa.RSAPrivateKey, cn: str = "requester") -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )


def _csr(key: rsa.RSAPrivateKey, *, challenge: bytes | None = b"pw", extensions: bool = False):
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, "r9.example.com")])
    )
    if challenge is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge)
    if extensions:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("r9.example.com")]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(key, hashes.SHA256())


def _exchange(
    ca: LabCa,
    request: PkiRequest,
    signer_key: rsa.RSAPrivateKey,
    signer_cert: x509.Certificate,
) -> CertRep:
    der = request.to_der(
        signer_key=signer_key,
        signer_cert=signer_cert,
        recipient=ca.ca_certificate,
        digest=cms.DigestAlgorithm.SHA256,
        encryption=cms.ContentEncryption.AES128_CBC,
        signing_time=dt.datetime.now(dt.UTC),
    )
    reply = PkiMessage.from_der(ca.handle_pki_operation(der))
    rep = CertRep.from_message(reply, signers=[ca.ca_certificate], key=signer_key, certificate=signer_cert)
    assert rep.recipient_nonce == request.sender_nonce
    return rep


def test_labca_issue_copies_requested_extensions(ca: LabCa) -> None:
    key = _key()
    cert = ca.issue(_csr(key, extensions=True))
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == ["r9.example.com"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ca.certificate(cert.serial_number) == cert


def test_labca_pkcsreq_signed_with_another_key_is_bad_message_check(ca: LabCa) -> None:
    key, other = _key(), _key()
    request = PkiRequest(MessageType.PKCS_REQ, "TX-OTHER", new_nonce(), _csr(key))
    rep = _exchange(ca, request, other, _self_signed(other))
    assert rep.status is PkiStatus.FAILURE and rep.fail_info is FailInfo.BAD_MESSAGE_CHECK


def test_labca_transaction_id_bound_to_its_key(ca: LabCa) -> None:
    first, second = _key(), _key()
    ok = _exchange(
        ca, PkiRequest(MessageType.PKCS_REQ, "TX-BOUND", new_nonce(), _csr(first)), first, _self_signed(first)
    )
    assert ok.status is PkiStatus.SUCCESS
    clash = _exchange(
        ca, PkiRequest(MessageType.PKCS_REQ, "TX-BOUND", new_nonce(), _csr(second)), second, _self_signed(second)
    )
    assert clash.status is PkiStatus.FAILURE and clash.fail_info is FailInfo.BAD_REQUEST


def test_labca_renewal_signed_with_issued_certificate(ca: LabCa) -> None:
    old_key, new_key = _key(), _key()
    old_cert = ca.issue(_csr(old_key))
    renewal = PkiRequest(MessageType.RENEWAL_REQ, "TX-RENEW", new_nonce(), _csr(new_key, challenge=None))
    rep = _exchange(ca, renewal, old_key, old_cert)
    assert rep.status is PkiStatus.SUCCESS
    assert rep.certificates[0].public_key() == new_key.public_key()

    stranger = _key()  # a self-signed certificate is not enough to renew
    refused = _exchange(
        ca,
        PkiRequest(MessageType.RENEWAL_REQ, "TX-RENEW-2", new_nonce(), _csr(new_key, challenge=None)),
        stranger,
        _self_signed(stranger),
    )
    assert refused.status is PkiStatus.FAILURE and refused.fail_info is FailInfo.BAD_REQUEST

    ca.revoke(old_cert.serial_number)
    revoked = _exchange(
        ca,
        PkiRequest(MessageType.RENEWAL_REQ, "TX-RENEW-3", new_nonce(), _csr(_key(), challenge=None)),
        old_key,
        old_cert,
    )
    assert revoked.status is PkiStatus.FAILURE and revoked.fail_info_text is not None
    assert "revoked" in revoked.fail_info_text


def test_labca_request_not_for_this_ca_is_bad_message_check(ca: LabCa, tmp_path: Path) -> None:
    other_ca = LabCa(tmp_path / "other")
    key = _key()
    cert = _self_signed(key)
    der = PkiRequest(MessageType.PKCS_REQ, "TX-ELSEWHERE", new_nonce(), _csr(key)).to_der(
        signer_key=key,
        signer_cert=cert,
        recipient=other_ca.ca_certificate,
        digest=cms.DigestAlgorithm.SHA1,
        encryption=cms.ContentEncryption.DES3_CBC,
        signing_time=dt.datetime.now(dt.UTC),
    )
    reply = PkiMessage.from_der(ca.handle_pki_operation(der))
    assert reply.status is PkiStatus.FAILURE and reply.fail_info is FailInfo.BAD_MESSAGE_CHECK
    assert reply.digest is cms.DigestAlgorithm.SHA1  # answers with the requester's digest
    assert reply.verify([ca.ca_certificate]) == ca.ca_certificate


@pytest.mark.parametrize("garbage", [b"", b"junk", b"\x30\x03\x02\x01\x00"])
def test_labca_garbage_is_a_request_error(ca: LabCa, garbage: bytes) -> None:
    with pytest.raises(LabCaRequestError):
        ca.handle_pki_operation(garbage)


def test_labca_approve_reject_errors(ca: LabCa) -> None:
    with pytest.raises(LabCaNotFoundError) as caught:
        ca.approve("NO-SUCH")
    assert caught.value.error_tag == "data-missing"
    ca.manual_approval = True
    try:
        key = _key()
        rep = _exchange(
            ca, PkiRequest(MessageType.PKCS_REQ, "TX-MANUAL", new_nonce(), _csr(key)), key, _self_signed(key)
        )
    finally:
        ca.manual_approval = False
    assert rep.status is PkiStatus.PENDING
    assert [r.transaction_id for r in ca.pending()] == ["TX-MANUAL"]
    ca.reject("TX-MANUAL")
    with pytest.raises(LabCaStateError):
        ca.approve("TX-MANUAL")
    assert ca.pending() == []
    assert ca.requests(RequestState.REJECTED)[0].reason == "rejected by the CA administrator"


def test_labca_crl_is_reused_until_revocation(ca: LabCa) -> None:
    first = ca.crl()
    assert ca.crl() == first
    cert = ca.issue(_csr(_key()))
    second = ca.revoke(cert.serial_number)
    assert second != first
    assert second.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert ca.crl() == second
    with pytest.raises(LabCaStateError):
        ca.revoke(cert.serial_number)


def test_labca_request_record_round_trip() -> None:
    now = dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    record = RequestRecord("TX/+=", RequestState.ISSUED, _csr(_key()), now, now, serial=0x6E, reason=None)
    assert RequestRecord.from_json(record.to_json()) == record


@pytest.mark.parametrize(("text", "value"), [("6E", 0x6E), ("6e", 0x6E), ("0x6E", 0x6E), ("00:6E", 0x6E), ("01", 1)])
def test_labca_serial_text(text: str, value: int) -> None:
    assert parse_serial(text) == value
    assert serial_hex(value) in ("6E", "01")


def test_labca_opens_its_keys_checked_and_refuses_a_damaged_or_foreign_one(tmp_path: Path) -> None:
    """The CA and RA keys are checked when the CA opens (numbers, a signature, the certificate's key).

    The check replaced OpenSSL's primality test at parse time (~36 ms a key);
    a damaged CRT exponent must still be refused, and so must a sound key
    that is not the one its certificate names: the CA would otherwise sign
    certificates and CRLs that nothing verifies.
    """
    root = tmp_path / "ca"
    first = LabCa(root, challenge="pw", ra=True, key_size=1024)
    LabCa(root, challenge="pw", ra=True)  # reopens as it is
    store = first.store
    good = store.ca_key_path.read_bytes()

    numbers = first.ca_key.private_numbers()
    damaged = rsa.RSAPrivateNumbers(
        numbers.p, numbers.q, numbers.d, numbers.dmp1 + 2, numbers.dmq1, numbers.iqmp, numbers.public_numbers)
    store.write_identity(store.ca_key_path, store.ca_cert_path,
                         damaged.private_key(unsafe_skip_rsa_key_validation=True), first.ca_certificate)
    with pytest.raises(LabCaError, match="ca.key is damaged"):
        LabCa(root, challenge="pw", ra=True)

    store.ca_key_path.write_bytes(good)
    assert first.ra_certificate is not None
    store.write_identity(store.ra_key_path, store.ra_cert_path,
                         rsa.generate_private_key(public_exponent=65537, key_size=1024), first.ra_certificate)
    with pytest.raises(LabCaError, match="ra.key is not the key of"):
        LabCa(root, challenge="pw", ra=True)
    LabCa(root, challenge="pw", ra=False)  # the CA alone is sound
