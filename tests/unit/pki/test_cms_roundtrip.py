"""agent.pki.cms: SignedData / EnvelopedData / certs-only, against itself and OpenSSL."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms as acms
from asn1crypto import core
from ber import tlv
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from agent.pki import cms

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
SCEP_TXID = "2.16.840.1.113733.1.9.7"


def _identity(cn: str, serial: int = 7) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert


@pytest.fixture(scope="module")
def alice() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return _identity("alice")


@pytest.fixture(scope="module")
def bob() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return _identity("bob")


def _write_pem(tmp_path: Path, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
    key_path = tmp_path / "key.pem"
    cert_path = tmp_path / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


# --------------------------------------------------------------------------- BER helpers


def _tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    return tag, data[pos : pos + length], pos + length


def _children(content: bytes) -> list[tuple[int, bytes, bytes]]:
    out = []
    pos = 0
    while pos < len(content):
        start = pos
        tag, value, pos = _tlv(content, pos)
        out.append((tag, value, content[start:pos]))
    return out


def _indef(tag: int, parts: list[bytes]) -> bytes:
    return bytes([tag, 0x80]) + b"".join(parts) + b"\x00\x00"


def _chunked_octets(value: bytes) -> bytes:
    half = len(value) // 2
    return _indef(0x24, [tlv(0x04, value[:half]), tlv(0x04, value[half:])])


def _ber_signed_data(der: bytes) -> bytes:
    """Re-encode a ContentInfo/SignedData with indefinite lengths and a chunked eContent.

    Certificates and signed attributes stay DER (as every real BER sender does).
    """
    _, info, _ = _tlv(der, 0)
    oid, explicit = _children(info)
    _, sd_wrapped, _ = _tlv(explicit[2], 0)
    (_, sd_body, _) = _children(sd_wrapped)[0]
    parts = []
    for tag, value, raw in _children(sd_body):
        if tag == 0x30:  # encapContentInfo
            ctype, econtent = _children(value)
            _, octets_tlv, _ = _tlv(econtent[2], 0)
            _, octets, _ = _tlv(octets_tlv, 0)
            parts.append(_indef(0x30, [ctype[2], _indef(0xA0, [_chunked_octets(octets)])]))
        elif tag & 0x20:
            parts.append(_indef(tag, [c[2] for c in _children(value)]))
        else:
            parts.append(raw)
    return _indef(0x30, [oid[2], _indef(0xA0, [_indef(0x30, parts)])])


# --------------------------------------------------------------------------- SignedData


@pytest.mark.parametrize("digest", list(cms.DigestAlgorithm))
def test_cms_sign_verify_round_trip(alice, digest: cms.DigestAlgorithm) -> None:
    key, cert = alice
    der = cms.build_signed_data(
        b"payload",
        signer_key=key,
        signer_cert=cert,
        digest=digest,
        signing_time=NOW,
        attributes=[(SCEP_TXID, core.PrintableString("ABC123"))],
    )
    message = cms.parse_signed_data(der)
    assert message.content == b"payload"
    assert message.certificates == (cert,)
    assert message.signer_infos[0].digest_algorithm is digest
    assert message.verify([cert]) == cert
    assert core.load(message.attribute(SCEP_TXID)[0]).native == "ABC123"
    signing_time = acms.Time.load(message.attribute(cms.OID_SIGNING_TIME)[0]).native
    assert signing_time == NOW


def test_cms_signed_data_without_content_verifies(alice) -> None:
    key, cert = alice
    der = cms.build_signed_data(
        None, signer_key=key, signer_cert=cert, digest=cms.DigestAlgorithm.SHA256, signing_time=NOW
    )
    message = cms.parse_signed_data(der)
    assert message.content is None
    assert message.verify([cert]) == cert


def test_cms_openssl_verifies_our_signature(alice, tmp_path: Path) -> None:
    key, cert = alice
    der = cms.build_signed_data(
        b"hello openssl",
        signer_key=key,
        signer_cert=cert,
        digest=cms.DigestAlgorithm.SHA256,
        signing_time=NOW,
        attributes=[(SCEP_TXID, core.PrintableString("T1"))],
    )
    (tmp_path / "m.der").write_bytes(der)
    result = subprocess.run(
        ["openssl", "cms", "-verify", "-noverify", "-inform", "DER", "-in", str(tmp_path / "m.der")],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello openssl"


def test_cms_we_verify_openssl_streamed_ber(alice, tmp_path: Path) -> None:
    key, cert = alice
    key_path, cert_path = _write_pem(tmp_path, key, cert)
    (tmp_path / "p.txt").write_bytes(b"streamed content " * 100)
    subprocess.run(
        ["openssl", "cms", "-sign", "-stream", "-binary", "-nodetach", "-outform", "DER"]
        + ["-in", str(tmp_path / "p.txt"), "-signer", str(cert_path), "-inkey", str(key_path)]
        + ["-out", str(tmp_path / "s.der")],
        check=True,
        capture_output=True,
        timeout=30,
    )
    ber = (tmp_path / "s.der").read_bytes()
    assert ber[1] == 0x80  # indefinite length
    message = cms.parse_signed_data(ber)
    assert message.content == b"streamed content " * 100
    assert message.verify([cert]) == cert


def test_cms_indefinite_length_and_chunked_content_accepted(alice) -> None:
    key, cert = alice
    der = cms.build_signed_data(
        b"0123456789abcdef", signer_key=key, signer_cert=cert, digest=cms.DigestAlgorithm.SHA1, signing_time=NOW
    )
    ber = _ber_signed_data(der)
    assert ber != der and ber[1] == 0x80
    message = cms.parse_signed_data(ber)
    assert message.content == b"0123456789abcdef"
    assert message.verify([cert]) == cert


@pytest.mark.parametrize("content", [None, b"", b"payload " * 400])
def test_cms_signed_data_is_der(alice, bob, content: bytes | None) -> None:
    """What we send is DER throughout (a SET OF sorted, no indefinite length): re-encoding it changes nothing."""
    key, cert = alice
    der = cms.build_signed_data(
        content, signer_key=key, signer_cert=cert, digest=cms.DigestAlgorithm.SHA256, signing_time=NOW,
        attributes=[(SCEP_TXID, core.PrintableString("TX-2")), ("2.16.840.1.113733.1.9.5", core.OctetString(b"n" * 16))],
        certificates=[bob[1]],
    )
    assert acms.ContentInfo.load(der).dump(force=True) == der
    message = cms.parse_signed_data(der)
    assert message.content == content and message.verify([cert]) == cert


def _attributes_out_of_der_order(der: bytes) -> bytes:
    """``der`` with its signed attributes sent in reverse order: a SET OF no longer sorted as DER wants.

    The signature still covers the DER form, as a BER sender's does. Same length, so no outer
    length changes.
    """
    signed_attrs = acms.ContentInfo.load(der)["content"]["signer_infos"][0]["signed_attrs"]
    sent = signed_attrs.dump()
    attrs = [attr.dump() for attr in signed_attrs]
    body = b"".join(reversed(attrs))
    reordered = sent[: len(sent) - len(body)] + body
    assert reordered != sent and len(reordered) == len(sent) and der.count(sent) == 1
    return der.replace(sent, reordered)


def test_cms_signed_attributes_not_in_der_order_verify_after_reencoding(alice) -> None:
    """The received attribute bytes are tried first; a re-encoding as DER only when they fail."""
    key, cert = alice
    der = cms.build_signed_data(
        b"payload", signer_key=key, signer_cert=cert, digest=cms.DigestAlgorithm.SHA256, signing_time=NOW,
        attributes=[(SCEP_TXID, core.PrintableString("TX-1"))],
    )
    reordered = _attributes_out_of_der_order(der)
    assert cms.parse_signed_data(reordered).verify([cert]) == cert
    tampered = bytearray(reordered)
    tampered[reordered.index(b"TX-1")] ^= 0x01  # inside a signed attribute: neither encoding verifies
    with pytest.raises(cms.CmsSignatureError, match="does not verify"):
        cms.parse_signed_data(bytes(tampered)).verify([cert])


def test_cms_tampered_signature_refused(alice) -> None:
    key, cert = alice
    der = bytearray(
        cms.build_signed_data(
            b"payload", signer_key=key, signer_cert=cert, digest=cms.DigestAlgorithm.SHA256, signing_time=NOW
        )
    )
    der[-5] ^= 0x01  # the signature is the last field
    with pytest.raises(cms.CmsSignatureError, match="does not verify"):
        cms.parse_signed_data(bytes(der)).verify([cert])


def test_cms_tampered_content_refused(alice) -> None:
    key, cert = alice
    der = cms.build_signed_data(
        b"payload", signer_key=key, signer_cert=cert, digest=cms.DigestAlgorithm.SHA256, signing_time=NOW
    )
    tampered = der.replace(b"payload", b"paylaod")
    with pytest.raises(cms.CmsSignatureError, match="messageDigest"):
        cms.parse_signed_data(tampered).verify([cert])


def test_cms_signer_not_among_candidates_refused(alice, bob) -> None:
    key, cert = alice
    der = cms.build_signed_data(
        b"x", signer_key=key, signer_cert=cert, digest=cms.DigestAlgorithm.SHA256, signing_time=NOW
    )
    with pytest.raises(cms.CmsSignatureError, match="not among the expected signers"):
        cms.parse_signed_data(der).verify([bob[1]])


def test_cms_impostor_with_same_issuer_and_serial_refused(alice) -> None:
    key, cert = alice
    _, impostor = _identity("alice", serial=cert.serial_number)  # same name and serial, other key
    der = cms.build_signed_data(
        b"x", signer_key=key, signer_cert=cert, digest=cms.DigestAlgorithm.SHA256, signing_time=NOW
    )
    with pytest.raises(cms.CmsSignatureError, match="does not verify"):
        cms.parse_signed_data(der).verify([impostor])


def test_cms_key_must_match_signer_certificate(alice, bob) -> None:
    with pytest.raises(cms.CmsError, match="does not belong"):
        cms.build_signed_data(
            b"x", signer_key=alice[0], signer_cert=bob[1], digest=cms.DigestAlgorithm.SHA256, signing_time=NOW
        )


@pytest.mark.parametrize("garbage", [b"", b"\x30\x03\x02\x01\x01", b"not asn1 at all", b"\x30\x80"])
def test_cms_garbage_is_a_format_error(garbage: bytes) -> None:
    with pytest.raises(cms.CmsFormatError):
        cms.parse_signed_data(garbage)


def test_cms_enveloped_data_is_not_signed_data(alice) -> None:
    env = cms.build_enveloped_data(b"x", alice[1], cms.ContentEncryption.AES128_CBC)
    with pytest.raises(cms.CmsFormatError, match="enveloped_data"):
        cms.parse_signed_data(env)


# --------------------------------------------------------------------------- EnvelopedData

SENDABLE = [e for e in cms.ContentEncryption if e is not cms.ContentEncryption.DES_CBC]


@pytest.mark.parametrize("encryption", SENDABLE)
def test_cms_envelope_round_trip(alice, encryption: cms.ContentEncryption) -> None:
    key, cert = alice
    # Line ends and NULs too: a CSR is binary, and no MIME canonicalisation may touch it.
    for content in (b"", b"x", b"exactly sixteen!", b"a longer secret " * 50, b"line\nends\r\n\x00\n"):
        env = cms.build_enveloped_data(content, cert, encryption)
        assert cms.enveloped_data_encryption(env) is encryption
        assert cms.decrypt_enveloped_data(env, key, cert) == content
        assert cms.decrypt_enveloped_data(env, key) == content


@pytest.mark.parametrize("encryption", SENDABLE)
def test_cms_openssl_decrypts_our_envelope(alice, tmp_path: Path, encryption: cms.ContentEncryption) -> None:
    key, cert = alice
    key_path, cert_path = _write_pem(tmp_path, key, cert)
    (tmp_path / "e.der").write_bytes(cms.build_enveloped_data(b"for openssl", cert, encryption))
    result = subprocess.run(
        ["openssl", "cms", "-decrypt", "-inform", "DER", "-in", str(tmp_path / "e.der")]
        + ["-inkey", str(key_path), "-recip", str(cert_path)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"for openssl"


@pytest.mark.parametrize("cipher", ["-aes128", "-aes256", "-des3"])
def test_cms_we_decrypt_openssl_streamed_envelope(alice, tmp_path: Path, cipher: str) -> None:
    key, cert = alice
    _, cert_path = _write_pem(tmp_path, key, cert)
    (tmp_path / "p.txt").write_bytes(b"from openssl " * 40)
    subprocess.run(
        ["openssl", "cms", "-encrypt", "-stream", "-binary", "-outform", "DER", cipher]
        + ["-in", str(tmp_path / "p.txt"), "-out", str(tmp_path / "e.der"), str(cert_path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    ber = (tmp_path / "e.der").read_bytes()
    assert ber[1] == 0x80
    assert cms.decrypt_enveloped_data(ber, key, cert) == b"from openssl " * 40


def test_cms_constructed_definite_encrypted_content_accepted(alice) -> None:
    """Go's pkcs7 (micromdm) sends encryptedContent as [0] constructed, definite length."""
    key, cert = alice
    env = cms.build_enveloped_data(b"go style", cert, cms.ContentEncryption.AES128_CBC)
    _, info, _ = _tlv(env, 0)
    oid, explicit = _children(info)
    _, ed_body, _ = _tlv(explicit[1], 0)
    version, recipients, eci = _children(ed_body)
    ctype, alg, content = _children(eci[1])
    assert content[0] == 0x80  # primitive [0] as we send it
    eci_go = tlv(0x30, ctype[2] + alg[2] + tlv(0xA0, tlv(0x04, content[1])))
    ed_go = tlv(0x30, version[2] + recipients[2] + eci_go)
    env_go = tlv(0x30, oid[2] + tlv(0xA0, ed_go))
    assert cms.decrypt_enveloped_data(env_go, key, cert) == b"go style"


def test_cms_single_des_is_decrypt_only(alice) -> None:
    with pytest.raises(cms.CmsError, match="single DES"):
        cms.build_enveloped_data(b"x", alice[1], cms.ContentEncryption.DES_CBC)


def test_cms_envelope_for_someone_else_refused(alice, bob) -> None:
    env = cms.build_enveloped_data(b"x", alice[1], cms.ContentEncryption.AES128_CBC)
    with pytest.raises(cms.CmsDecryptError, match="not addressed to our certificate"):
        cms.decrypt_enveloped_data(env, bob[0], bob[1])
    with pytest.raises(cms.CmsDecryptError):
        cms.decrypt_enveloped_data(env, bob[0])


# --------------------------------------------------------------------------- certs-only


def test_cms_certs_only_round_trip(alice, bob) -> None:
    der = cms.build_certs_only([alice[1], bob[1]])
    certs, crls = cms.parse_certs_only(der)
    assert set(certs) == {alice[1], bob[1]}  # a SET OF: DER sorts it
    assert crls == ()
    result = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-print_certs", "-noout"],
        input=der,
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert b"subject=CN = alice" in result.stdout and b"subject=CN = bob" in result.stdout


def test_cms_certs_only_with_crl(alice) -> None:
    key, cert = alice
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(cert.subject)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    certs, crls = cms.parse_certs_only(cms.build_certs_only([cert], [crl]))
    assert certs == (cert,)
    assert [x509.load_der_x509_crl(c) for c in crls] == [crl]


def test_cms_certs_only_from_openssl(alice, bob, tmp_path: Path) -> None:
    for name, (_, cert) in (("a", alice), ("b", bob)):
        (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(
        ["openssl", "crl2pkcs7", "-nocrl", "-outform", "DER"]
        + ["-certfile", str(tmp_path / "a.pem"), "-certfile", str(tmp_path / "b.pem")],
        capture_output=True,
        timeout=30,
        check=True,
    )
    certs, _ = cms.parse_certs_only(result.stdout)
    assert set(certs) == {alice[1], bob[1]}
