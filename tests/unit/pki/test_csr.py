"""agent.pki.csr: PKCS#10 requests, checked by cryptography and by the openssl CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AttributeOID, NameOID

from agent.pki.certificate import format_name
from agent.pki.csr import (
    InvalidChallengePasswordError,
    InvalidSubjectNameError,
    build_csr,
    csr_to_der,
    csr_to_pem,
    default_subject,
    parse_subject_name,
)
from agent.pki.keystore import KeyPairType, KeyStore, KeyUsage

UNSTRUCTURED_NAME = x509.ObjectIdentifier("1.2.840.113549.1.9.2")
SEED_CA_SUBJECT = "cn=Root coax-u10 Certificate Manager,ou=HFR,o=Cisco Systems,l=San Jose,st=CA,c=US"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def openssl_req(csr: x509.CertificateSigningRequest, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "req.pem"
    path.write_text(csr_to_pem(csr))
    return subprocess.run(["openssl", "req", "-in", str(path), *args], capture_output=True, text=True)


def key_usage(csr: x509.CertificateSigningRequest) -> x509.Extension[x509.KeyUsage]:
    return csr.extensions.get_extension_for_class(x509.KeyUsage)


def test_default_subject_is_unstructured_name(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    csr = build_csr(key, fqdn="myrouter.mydomain.com")
    attrs = list(csr.subject)
    assert len(attrs) == 1
    assert attrs[0].oid == UNSTRUCTURED_NAME == NameOID.UNSTRUCTURED_NAME
    assert attrs[0].value == "myrouter.mydomain.com"
    assert format_name(csr.subject) == "unstructuredName=myrouter.mydomain.com"
    assert csr.is_signature_valid
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)
    public = csr.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == key.public_key().public_numbers()
    result = openssl_req(csr, tmp_path, "-verify", "-noout")
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stderr + result.stdout
    text = openssl_req(csr, tmp_path, "-noout", "-text").stdout
    assert "unstructuredName = myrouter.mydomain.com" in text
    assert "sha256WithRSAEncryption" in text


def test_trailing_dot_fqdn(key: rsa.RSAPrivateKey) -> None:
    assert list(build_csr(key, fqdn="r1.example.com.").subject)[0].value == "r1.example.com"
    assert list(default_subject("r1").rdns)[0].get_attributes_for_oid(UNSTRUCTURED_NAME)[0].value == "r1"


@pytest.mark.parametrize(
    ("usage", "signature", "encryption"),
    [(KeyUsage.GENERAL, True, True), (KeyUsage.SIGNATURE, True, False), (KeyUsage.ENCRYPTION, False, True)],
)
def test_key_usage_extension_request(key: rsa.RSAPrivateKey, usage: KeyUsage, signature: bool, encryption: bool) -> None:
    ext = key_usage(build_csr(key, fqdn="r1.example.com", key_usage=usage))
    assert ext.critical
    assert ext.value.digital_signature is signature
    assert ext.value.key_encipherment is encryption
    assert not (ext.value.key_cert_sign or ext.value.crl_sign or ext.value.data_encipherment)


def test_default_usage_is_general(key: rsa.RSAPrivateKey) -> None:
    ext = key_usage(build_csr(key, fqdn="r1.example.com"))
    assert ext.value.digital_signature and ext.value.key_encipherment


def test_challenge_password(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    csr = build_csr(key, fqdn="r1.example.com", challenge_password="s3cret-Pw")
    assert csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value == b"s3cret-Pw"
    assert csr.is_signature_valid
    assert openssl_req(csr, tmp_path, "-verify", "-noout").returncode == 0
    assert "challengePassword" in openssl_req(csr, tmp_path, "-noout", "-text").stdout


def test_no_challenge_password_attribute_by_default(key: rsa.RSAPrivateKey) -> None:
    csr = build_csr(key, fqdn="r1.example.com")
    with pytest.raises(x509.AttributeNotFound):
        csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD)


@pytest.mark.parametrize("password", ["", "x" * 256, "tab\there", "nl\n", "del\x7f"])
def test_bad_challenge_password(key: rsa.RSAPrivateKey, password: str) -> None:
    with pytest.raises(InvalidChallengePasswordError) as err:
        build_csr(key, fqdn="r1.example.com", challenge_password=password)
    assert err.value.error_tag == "invalid-value"
    assert password not in err.value.message or password == ""


def test_challenge_password_255_chars(key: rsa.RSAPrivateKey) -> None:
    assert build_csr(key, fqdn="r1.example.com", challenge_password="p" * 255).is_signature_valid


def test_subject_name_rfc4514(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    csr = build_csr(key, fqdn="ignored.example.com", subject_name="CN=r1,O=Example")
    # RFC 4514 text is most specific first; the DER sequence is the reverse
    assert [attr.oid for attr in csr.subject] == [NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME]
    assert csr.subject.rfc4514_string() == "CN=r1,O=Example"
    assert format_name(csr.subject) == "cn=r1,o=Example"
    assert not csr.subject.get_attributes_for_oid(UNSTRUCTURED_NAME)
    assert openssl_req(csr, tmp_path, "-verify", "-noout").returncode == 0
    assert "subject=O = Example, CN = r1" in openssl_req(csr, tmp_path, "-noout", "-subject").stdout


def test_subject_name_case_spaces_and_escapes() -> None:
    name = parse_subject_name("cn=r1, ou = Net Ops ,o=Acme\\, Inc.,C=US")
    assert name.rfc4514_string() == "CN=r1,OU=Net Ops,O=Acme\\, Inc.,C=US"
    assert parse_subject_name("CN=a\\2Cb").get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "a,b"
    assert parse_subject_name("CN=caf\\C3\\A9").get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "café"
    assert parse_subject_name("CN=\\ x\\ ").get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == " x "
    assert parse_subject_name("CN=a=b").get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "a=b"


def test_subject_name_special_types() -> None:
    name = parse_subject_name(
        "unstructuredName=r1.example.com,serialNumber=FOX123,E=pki@example.com,2.5.4.12=Router,OID.2.5.4.9=Main St"
    )
    oids = [attr.oid for attr in name]
    assert oids == [NameOID.STREET_ADDRESS, NameOID.TITLE, NameOID.EMAIL_ADDRESS, NameOID.SERIAL_NUMBER, UNSTRUCTURED_NAME]


def test_multi_valued_rdn() -> None:
    name = parse_subject_name("CN=r1+serialNumber=42,O=Example")
    assert len(name.rdns) == 2
    assert len(name.rdns[1]) == 2
    assert format_name(name) in ("cn=r1+serialNumber=42,o=Example", "serialNumber=42+cn=r1,o=Example")


@pytest.mark.parametrize(
    "subject",
    [
        SEED_CA_SUBJECT,
        "unstructuredName=myrouter.mydomain.com,o=Cisco Systems",
        "cn=a\\,b\\+c,ou=x\\\\y,o=\\#1,c=US",
    ],
)
def test_displayed_subjects_read_back(subject: str) -> None:
    assert format_name(parse_subject_name(subject)) == subject


@pytest.mark.parametrize(
    ("subject", "words"),
    [
        ("garbage", "is not TYPE=value"),
        ("CN", "is not TYPE=value"),
        ("XX=1", "unknown attribute type 'XX'"),
        ("C=USA", "length"),
        ("CN=", "empty value"),
        (",", "empty component"),
        ("CN=a,", "empty component"),
        ("CN=a,,O=b", "empty component"),
        ("CN=#0403616263", "'#' hex-encoded values are not supported"),
        ("CN=abc\\", "lone '\\'"),
        ("CN=\\FF", "not valid UTF-8"),
        ("", "empty"),
        ("   ", "empty"),
        ("=x", "unknown attribute type ''"),
    ],
)
def test_bad_subject_names(key: rsa.RSAPrivateKey, subject: str, words: str) -> None:
    with pytest.raises(InvalidSubjectNameError) as err:
        build_csr(key, fqdn="r1.example.com", subject_name=subject)
    assert err.value.error_tag == "invalid-value"
    assert err.value.error_app_tag == "invalid-subject-name"
    assert words in err.value.message


@pytest.mark.parametrize(
    "subject",
    [
        "CN=r1\nO=evil",  # a newline would start a new line in every log and display
        "CN=r1\n",
        "\nCN=r1",
        "CN=r1\r",
        "CN=a\tb",
        "CN=a\x00b",
        "CN=a\x1bb",
        "CN=a\x7fb",
        "CN=a\x85b",  # NEL (C1)
        "CN=a\u2028b",  # LINE SEPARATOR
        "CN=a\u2029b",  # PARAGRAPH SEPARATOR
    ],
)
def test_control_characters_in_subject_name_are_refused(key: rsa.RSAPrivateKey, subject: str) -> None:
    with pytest.raises(InvalidSubjectNameError) as err:
        build_csr(key, fqdn="r1.example.com", subject_name=subject)
    assert err.value.error_tag == "invalid-value" and err.value.error_app_tag == "invalid-subject-name"
    assert "control characters (newline, tab...) are not allowed" in err.value.message
    assert all(c.isprintable() for c in err.value.message)  # shown escaped, never raw


@pytest.mark.parametrize("escaped", ["CN=a\\0Ab", "CN=a\\0db", "CN=a\\09b", "CN=a\\C2\\85b", "O=x,CN=\\7F"])
def test_escaped_control_characters_in_subject_name_are_refused(escaped: str) -> None:
    with pytest.raises(InvalidSubjectNameError) as err:
        parse_subject_name(escaped)
    assert "holds a control character" in err.value.message


def test_printable_non_ascii_subject_name_is_fine(key: rsa.RSAPrivateKey) -> None:
    csr = build_csr(key, fqdn="r1.example.com", subject_name="CN=r\u00e9seau \u4e2d,O=\u00c5 B")
    assert csr.subject.rfc4514_string() == "CN=r\u00e9seau \u4e2d,O=\u00c5 B"


@pytest.mark.parametrize("fqdn", ["", "bad host.example.com", "-a.example.com", "a..b", "x" * 254, "a_b.com"])
def test_bad_fqdn_without_subject(key: rsa.RSAPrivateKey, fqdn: str) -> None:
    with pytest.raises(InvalidSubjectNameError) as err:
        build_csr(key, fqdn=fqdn)
    assert err.value.error_tag == "invalid-value"
    assert "hostname and domain name" in err.value.message
    # a configured subject-name makes the FQDN irrelevant
    assert build_csr(key, fqdn=fqdn, subject_name="CN=r1").is_signature_valid


def test_pem_and_der(key: rsa.RSAPrivateKey) -> None:
    csr = build_csr(key, fqdn="r1.example.com")
    pem = csr_to_pem(csr)
    assert pem.startswith("-----BEGIN CERTIFICATE REQUEST-----\n")
    assert x509.load_pem_x509_csr(pem.encode()) == csr
    assert x509.load_der_x509_csr(csr_to_der(csr)) == csr


def test_requests_for_usage_keys_from_keystore(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    info = store.generate_rsa("usage", KeyPairType.USAGE_KEYS, 1024)
    for usage in info.usages:
        csr = build_csr(store.private_key("usage", usage), fqdn="r1.example.com", key_usage=usage)
        assert csr.is_signature_valid
        spki = csr.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert spki == info.public_keys[usage]
        result = openssl_req(csr, tmp_path, "-verify", "-noout")
        assert result.returncode == 0, result.stderr
