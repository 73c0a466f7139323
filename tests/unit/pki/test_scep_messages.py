"""agent.pki.scep: capabilities, CA certificate classification, pkiMessage round trips."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AttributeOID, NameOID

from agent.errors import PkiError
from agent.pki import cms
from agent.pki.scep import (
    CA_CERT_CONTENT_TYPE,
    CA_RA_CERT_CONTENT_TYPE,
    CaCaps,
    CaCertificates,
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
    ScepProtocolError,
    ScepUrlError,
    ScepVerificationError,
    transaction_id_for,
)
from agent.pki.scep.http import normalize_url
from agent.pki.scep.messages import RequestBody, new_nonce

NOW = dt.datetime.now(dt.UTC)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: rsa.RSAPrivateKey,
    *,
    issuer: tuple[str, rsa.RSAPrivateKey] | None = None,
    ca: bool,
    usage: x509.KeyUsage | None = None,
) -> x509.Certificate:
    issuer_name, issuer_key = (subject, key) if issuer is None else issuer
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _usage(*, sign: bool, encrypt: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=encrypt,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


@pytest.fixture(scope="module")
def pki() -> dict[str, object]:
    root_key, ca_key, ra_key, ra2_key, client_key = _key(), _key(), _key(), _key(), _key()
    root = _cert("Root", root_key, ca=True)
    ca = _cert("Issuing CA", ca_key, issuer=("Root", root_key), ca=True)
    ra_both = _cert("RA", ra_key, issuer=("Issuing CA", ca_key), ca=False, usage=_usage(sign=True, encrypt=True))
    ra_sign = _cert("RA sign", ra_key, issuer=("Issuing CA", ca_key), ca=False, usage=_usage(sign=True, encrypt=False))
    ra_enc = _cert("RA enc", ra2_key, issuer=("Issuing CA", ca_key), ca=False, usage=_usage(sign=False, encrypt=True))
    client = _cert("client", client_key, ca=False)
    return {
        "root": root,
        "ca": ca,
        "ca_key": ca_key,
        "ra_both": ra_both,
        "ra_key": ra_key,
        "ra_sign": ra_sign,
        "ra_enc": ra_enc,
        "ra2_key": ra2_key,
        "client": client,
        "client_key": client_key,
    }


# --------------------------------------------------------------------------- GetCACaps


def test_scep_caps_parse_micromdm() -> None:
    caps = CaCaps.from_text("Renewal\nSHA-1\nSHA-256\nAES\nDES3\nSCEPStandard\nPOSTPKIOperation")
    assert caps.post and caps.sha256 and caps.sha1 and caps.aes and caps.des3 and caps.renewal
    assert caps.scep_standard and not caps.get_next_ca_cert and not caps.sha512
    assert caps.digest_algorithm() is cms.DigestAlgorithm.SHA256
    assert caps.content_encryption() is cms.ContentEncryption.AES128_CBC
    assert caps.unknown == ()


def test_scep_caps_case_whitespace_and_unknown_keywords() -> None:
    caps = CaCaps.from_text("  postpkioperation\r\nsha-1 Frobnicate\n\n")
    assert caps.capabilities == {Capability.POST_PKI_OPERATION, Capability.SHA1}
    assert caps.unknown == ("Frobnicate",)
    assert caps.digest_algorithm() is cms.DigestAlgorithm.SHA1
    assert caps.content_encryption() is cms.ContentEncryption.DES3_CBC


def test_scep_caps_empty_means_legacy_defaults() -> None:
    caps = CaCaps.from_text("")
    assert not caps.post
    assert caps.digest_algorithm() is cms.DigestAlgorithm.SHA1
    assert caps.content_encryption() is cms.ContentEncryption.DES3_CBC


def test_scep_caps_scep_standard_implies_baseline() -> None:
    caps = CaCaps.of(Capability.SCEP_STANDARD)
    assert caps.post and caps.aes and caps.sha256 and not caps.des3


def test_scep_caps_text_round_trip() -> None:
    caps = CaCaps.of(Capability.AES, Capability.SHA256, Capability.POST_PKI_OPERATION)
    assert CaCaps.from_text(caps.to_text()) == caps


# --------------------------------------------------------------------------- GetCACert


def test_scep_cacerts_single_der(pki) -> None:
    ca = pki["ca"]
    parsed = CaCertificates.from_http(CA_CERT_CONTENT_TYPE, ca.public_bytes(Encoding.DER))
    assert parsed.ca == ca and not parsed.has_ra
    assert parsed.recipient == ca and parsed.signers == (ca,)
    assert parsed.to_http() == (CA_CERT_CONTENT_TYPE, ca.public_bytes(Encoding.DER))


def test_scep_cacerts_pem_tolerated(pki) -> None:
    parsed = CaCertificates.from_http(CA_CERT_CONTENT_TYPE, pki["ca"].public_bytes(Encoding.PEM))
    assert parsed.ca == pki["ca"]


def test_scep_cacerts_in_pem_are_capped_as_in_a_pkcs7_bag(pki) -> None:
    """GetCACert in PEM had no cap: 4 MiB of small CA certificates (9,200) cost 18.5 s of CPU in the
    quadratic classification, the PKCS#7 form stops at cms.MAX_CERTS."""
    many = pki["ca"].public_bytes(Encoding.PEM) * (cms.MAX_CERTS + 1)
    with pytest.raises(ScepProtocolError, match=f"more than {cms.MAX_CERTS} certificates"):
        CaCertificates.from_http(CA_RA_CERT_CONTENT_TYPE, many)
    with pytest.raises(cms.CmsFormatError, match="too many certificates"):
        cms.parse_certs_only(cms.build_certs_only([pki["ca"]] * (cms.MAX_CERTS + 1)))
    at_most = CaCertificates.from_http(CA_RA_CERT_CONTENT_TYPE, pki["ca"].public_bytes(Encoding.PEM) * cms.MAX_CERTS)
    assert at_most.ca == pki["ca"] and len(at_most.chain) == cms.MAX_CERTS


def test_scep_cacerts_ca_and_single_ra(pki) -> None:
    body = cms.build_certs_only([pki["ra_both"], pki["ca"]])
    parsed = CaCertificates.from_http(CA_RA_CERT_CONTENT_TYPE, body)
    assert parsed.ca == pki["ca"]
    assert parsed.ra_signing == pki["ra_both"] == parsed.ra_encryption
    assert parsed.recipient == pki["ra_both"]
    assert parsed.signers == (pki["ra_both"], pki["ca"])
    content_type, again = parsed.to_http()
    assert content_type == CA_RA_CERT_CONTENT_TYPE
    assert CaCertificates.from_http(content_type, again) == CaCertificates.from_certificates(
        cms.parse_certs_only(again)[0]
    )


def test_scep_cacerts_separate_signing_and_encryption_ra_with_chain(pki) -> None:
    certs = [pki["ra_enc"], pki["root"], pki["ra_sign"], pki["ca"]]
    parsed = CaCertificates.from_certificates(certs)
    assert parsed.ca == pki["ca"]  # the issuer of the RA certificates, not the root
    assert parsed.ra_signing == pki["ra_sign"]
    assert parsed.ra_encryption == pki["ra_enc"]
    assert parsed.recipient == pki["ra_enc"]


def test_scep_cacerts_chain_without_ra_picks_issuing_ca(pki) -> None:
    parsed = CaCertificates.from_certificates([pki["root"], pki["ca"]])
    assert parsed.ca == pki["ca"] and not parsed.has_ra


def test_scep_cacerts_errors(pki) -> None:
    with pytest.raises(ScepProtocolError, match="no certificate"):
        CaCertificates.from_certificates([])
    with pytest.raises(ScepProtocolError, match="no CA certificate"):
        CaCertificates.from_certificates([pki["ra_both"], pki["client"]])
    with pytest.raises(ScepProtocolError, match="not issued by"):
        CaCertificates.from_certificates([pki["root"], pki["ra_both"]])
    with pytest.raises(ScepProtocolError, match="signing"):
        CaCertificates.from_certificates([pki["ca"], pki["ra_enc"]])
    with pytest.raises(ScepProtocolError, match="content type"):
        CaCertificates.from_http("text/html", b"<html>")
    with pytest.raises(ScepProtocolError, match="neither"):
        CaCertificates.from_http(CA_RA_CERT_CONTENT_TYPE, b"garbage")
    assert issubclass(ScepProtocolError, PkiError)


# --------------------------------------------------------------------------- pkiMessages


def _csr(key: rsa.RSAPrivateKey, challenge: bytes | None = b"pw") -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name(
            [
                x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, "r1.example.com"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lab"),
            ]
        )
    )
    if challenge is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge)
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize(
    ("digest", "encryption"),
    [
        (cms.DigestAlgorithm.SHA256, cms.ContentEncryption.AES128_CBC),
        (cms.DigestAlgorithm.SHA1, cms.ContentEncryption.DES3_CBC),
        (cms.DigestAlgorithm.SHA512, cms.ContentEncryption.AES256_CBC),
    ],
)
def test_scep_pkcsreq_round_trip(pki, digest, encryption) -> None:
    key, client = pki["client_key"], pki["client"]
    csr = _csr(key)
    txid = transaction_id_for(key.public_key())
    request = PkiRequest(MessageType.PKCS_REQ, txid, new_nonce(), csr)
    der = request.to_der(
        signer_key=key,
        signer_cert=client,
        recipient=pki["ca"],
        digest=digest,
        encryption=encryption,
        signing_time=NOW,
    )
    message = PkiMessage.from_der(der)
    assert message.message_type is MessageType.PKCS_REQ
    assert message.transaction_id == txid
    assert message.digest is digest
    assert message.envelope_encryption is encryption
    parsed, signer = PkiRequest.from_message(message, key=pki["ca_key"], certificate=pki["ca"])
    assert signer == client
    assert parsed == request


def test_scep_certpoll_and_getcert_bodies_round_trip(pki) -> None:
    key, client = pki["client_key"], pki["client"]
    bodies: list[tuple[MessageType, RequestBody]] = [
        (MessageType.CERT_POLL, IssuerAndSubject.from_names(pki["ca"].subject, _name("r1"))),
        (MessageType.GET_CERT, IssuerAndSerial(issuer=pki["ca"].subject.public_bytes(), serial=0x6E)),
        (MessageType.GET_CRL, IssuerAndSerial.from_certificate(pki["ca"])),
    ]
    for message_type, body in bodies:
        request = PkiRequest(message_type, "TX-1", new_nonce(), body)
        der = request.to_der(
            signer_key=key,
            signer_cert=client,
            recipient=pki["ra_both"],
            digest=cms.DigestAlgorithm.SHA256,
            encryption=cms.ContentEncryption.AES128_CBC,
            signing_time=NOW,
        )
        parsed, _ = PkiRequest.from_message(PkiMessage.from_der(der), key=pki["ra_key"], certificate=pki["ra_both"])
        assert parsed == request


def test_scep_request_body_type_checked(pki) -> None:
    with pytest.raises(TypeError):
        PkiRequest(MessageType.CERT_POLL, "TX", new_nonce(), _csr(pki["client_key"]))
    with pytest.raises(ValueError, match="not a request"):
        PkiRequest(MessageType.CERT_REP, "TX", new_nonce(), _csr(pki["client_key"]))


@pytest.mark.parametrize("status", list(PkiStatus))
def test_scep_certrep_round_trip(pki, status: PkiStatus) -> None:
    client_key, client = pki["client_key"], pki["client"]
    nonce = new_nonce()
    kwargs: dict[str, object] = {}
    if status is PkiStatus.SUCCESS:
        kwargs["certificates"] = (client, pki["ca"])
    if status is PkiStatus.FAILURE:
        kwargs["fail_info"] = FailInfo.BAD_REQUEST
        kwargs["fail_info_text"] = "wrong challenge"
    rep = CertRep(transaction_id="TX-9", recipient_nonce=nonce, status=status, **kwargs)  # type: ignore[arg-type]
    der = rep.to_der(
        signer_key=pki["ra_key"],
        signer_cert=pki["ra_both"],
        recipient=client,
        digest=cms.DigestAlgorithm.SHA256,
        encryption=cms.ContentEncryption.AES128_CBC,
        signing_time=NOW,
    )
    message = PkiMessage.from_der(der)
    assert message.status is status and message.recipient_nonce == nonce
    parsed = CertRep.from_message(message, signers=(pki["ra_both"], pki["ca"]), key=client_key, certificate=client)
    assert parsed.status is status
    assert parsed.transaction_id == "TX-9"
    assert parsed.recipient_nonce == nonce and parsed.sender_nonce == rep.sender_nonce
    if status is PkiStatus.SUCCESS:
        assert set(parsed.certificates) == {client, pki["ca"]}
    else:
        assert message.signed.content is None and parsed.certificates == ()
    if status is PkiStatus.FAILURE:
        assert parsed.fail_info is FailInfo.BAD_REQUEST
        assert parsed.fail_info_text == "wrong challenge"


def test_scep_certrep_from_unexpected_signer_refused(pki) -> None:
    rep = CertRep(transaction_id="TX", recipient_nonce=new_nonce(), status=PkiStatus.PENDING)
    der = rep.to_der(
        signer_key=pki["client_key"],
        signer_cert=pki["client"],
        recipient=None,
        digest=cms.DigestAlgorithm.SHA256,
        encryption=cms.ContentEncryption.AES128_CBC,
        signing_time=NOW,
    )
    with pytest.raises(ScepVerificationError):
        CertRep.from_message(
            PkiMessage.from_der(der), signers=(pki["ca"],), key=pki["client_key"], certificate=pki["client"]
        )


def test_scep_certrep_failure_needs_fail_info_to_send(pki) -> None:
    rep = CertRep(transaction_id="TX", recipient_nonce=b"n" * 16, status=PkiStatus.FAILURE)
    with pytest.raises(ValueError, match="failInfo"):
        rep.to_der(
            signer_key=pki["ca_key"],
            signer_cert=pki["ca"],
            recipient=None,
            digest=cms.DigestAlgorithm.SHA256,
            encryption=cms.ContentEncryption.AES128_CBC,
            signing_time=NOW,
        )
    with pytest.raises(ValueError, match="only a FAILURE"):
        CertRep(transaction_id="TX", recipient_nonce=b"n", status=PkiStatus.PENDING, fail_info=FailInfo.BAD_ALG)


def test_scep_fail_info_texts() -> None:
    assert FailInfo.BAD_REQUEST.keyword == "badRequest"
    assert FailInfo.BAD_ALG.keyword == "badAlg"
    assert all(f.description for f in FailInfo)
    assert FailInfo("4") is FailInfo.BAD_CERT_ID


def test_scep_message_without_scep_attributes_refused(pki) -> None:
    plain = cms.build_signed_data(
        b"x",
        signer_key=pki["client_key"],
        signer_cert=pki["client"],
        digest=cms.DigestAlgorithm.SHA256,
        signing_time=NOW,
    )
    with pytest.raises(ScepProtocolError, match="messageType"):
        PkiMessage.from_der(plain)
    with pytest.raises(ScepProtocolError, match="not a SCEP pkiMessage"):
        PkiMessage.from_der(b"\x30\x00")


def test_scep_transaction_id_is_deterministic(pki) -> None:
    key = pki["client_key"]
    a = transaction_id_for(key.public_key())
    assert a == transaction_id_for(key.public_key())
    assert len(a) == 64 and a == a.upper()
    assert len(transaction_id_for(key.public_key(), cms.DigestAlgorithm.SHA1)) == 40


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://ca.example.com", "http://ca.example.com/cgi-bin/pkiclient.exe"),
        ("http://ca.example.com/", "http://ca.example.com/cgi-bin/pkiclient.exe"),
        ("HTTP://127.0.0.1:8080/scep?x=1", "http://127.0.0.1:8080/scep"),
        (
            "http://ca.domain.com/certsrv/mscep/mscep.dll",
            "http://ca.domain.com/certsrv/mscep/mscep.dll",
        ),
    ],
)
def test_scep_url_normalization(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize("url", ["ldap://ca.example.com", "http://", "http://host:port/x", "ca.example.com"])
def test_scep_url_must_be_http(url: str) -> None:
    with pytest.raises(ScepUrlError) as caught:
        ScepClient(url)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, PkiError)
    assert caught.value.error_tag == "invalid-value"


# --------------------------------------------------------------------------- gaps found by mutation testing


def test_scep_nonce_is_16_fresh_bytes() -> None:
    nonces = {new_nonce() for _ in range(50)}
    assert len(nonces) == 50 and {len(n) for n in nonces} == {16}


@pytest.mark.parametrize("txid", ["", "TX\n1", "TX\x00"])
def test_scep_request_transaction_id_must_be_printable(pki, txid: str) -> None:
    with pytest.raises(ValueError, match="printable"):
        PkiRequest(MessageType.PKCS_REQ, txid, new_nonce(), _csr(pki["client_key"]))


def test_scep_envelope_for_another_certificate_of_the_same_key_is_refused(pki) -> None:
    """The envelope must name *our* certificate (issuer and serial), not merely be decryptable by our key."""
    key = pki["client_key"]
    ours = _cert("client", key, ca=False)
    theirs = _cert("client", key, ca=False)  # same key and name, another serial number
    rep = CertRep(transaction_id="TX", recipient_nonce=new_nonce(), status=PkiStatus.SUCCESS, certificates=(ours,))
    der = rep.to_der(
        signer_key=pki["ca_key"],
        signer_cert=pki["ca"],
        recipient=theirs,
        digest=cms.DigestAlgorithm.SHA256,
        encryption=cms.ContentEncryption.AES128_CBC,
        signing_time=NOW,
    )
    with pytest.raises(ScepProtocolError, match="not addressed to our certificate"):
        CertRep.from_message(PkiMessage.from_der(der), signers=(pki["ca"],), key=key, certificate=ours)
    opened = CertRep.from_message(PkiMessage.from_der(der), signers=(pki["ca"],), key=key, certificate=theirs)
    assert opened.certificates == (ours,)


def test_scep_stray_fail_info_outside_a_failure_is_ignored(pki) -> None:
    """A PENDING CertRep that also carries a failInfo attribute is still just PENDING."""
    from asn1crypto import core

    from agent.pki.scep import messages

    nonce = new_nonce()
    der = cms.build_signed_data(
        None,
        signer_key=pki["ca_key"],
        signer_cert=pki["ca"],
        digest=cms.DigestAlgorithm.SHA256,
        signing_time=NOW,
        attributes=[
            (messages.OID_MESSAGE_TYPE, core.PrintableString("3")),
            (messages.OID_TRANSACTION_ID, core.PrintableString("TX")),
            (messages.OID_PKI_STATUS, core.PrintableString("3")),
            (messages.OID_FAIL_INFO, core.PrintableString("2")),
            (messages.OID_SENDER_NONCE, core.OctetString(new_nonce())),
            (messages.OID_RECIPIENT_NONCE, core.OctetString(nonce)),
        ],
    )
    rep = CertRep.from_message(
        PkiMessage.from_der(der), signers=(pki["ca"],), key=pki["client_key"], certificate=pki["client"]
    )
    assert rep.status is PkiStatus.PENDING and rep.fail_info is None and rep.recipient_nonce == nonce


def test_scep_cacerts_chain_without_ra_is_sent_whole(pki) -> None:
    parsed = CaCertificates.from_certificates([pki["root"], pki["ca"]])
    content_type, body = parsed.to_http()
    assert content_type == CA_RA_CERT_CONTENT_TYPE  # a bag, so the intermediate is not lost
    assert set(cms.parse_certs_only(body)[0]) == {pki["root"], pki["ca"]}  # a DER SET: order is not kept
    ra = CaCertificates(ca=pki["ca"], ra_signing=pki["ra_sign"], ra_encryption=pki["ra_enc"], chain=(pki["ca"],))
    sent = cms.parse_certs_only(ra.to_http()[1])[0]
    assert len(sent) == 3 and set(sent) == {pki["ca"], pki["ra_sign"], pki["ra_enc"]}


def test_scep_cacerts_pem_with_leading_whitespace_and_a_v1_root(pki) -> None:
    v1_key = _key()
    name = _name("Old Root")
    v1_root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(v1_key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(v1_key, hashes.SHA256())
    )  # no BasicConstraints: a CA only because it is self-issued
    ra = _cert("Old RA", _key(), issuer=("Old Root", v1_key), ca=False)  # no KeyUsage: may sign and encrypt
    parsed = CaCertificates.from_certificates([ra, v1_root])
    assert parsed.ca == v1_root and parsed.ra_signing == ra == parsed.ra_encryption
    pem = b"\n\n  " + pki["ca"].public_bytes(Encoding.PEM)
    assert CaCertificates.from_http(f"{CA_CERT_CONTENT_TYPE}; charset=x", pem).ca == pki["ca"]
