"""agent.pki.certificate: loading and describing certificates made by OpenSSL (a CA no one here wrote)."""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from agent.pki.certificate import (
    CertificateInfo,
    InvalidCertificateError,
    InvalidFingerprintError,
    X509KeyUsage,
    fingerprint_matches,
    format_fingerprint,
    format_name,
    format_router_date,
    format_serial,
    is_self_signed,
    load_certificate,
    load_certificates,
    normalize_fingerprint,
    verify_issued_by,
)

SEED_CA_SUBJECT = "cn=Root coax-u10 Certificate Manager,ou=HFR,o=Cisco Systems,l=San Jose,st=CA,c=US"
SEED_ROUTER_SUBJECT = "unstructuredName=myrouter.mydomain.com,o=Cisco Systems"
SEED_CRL_DP = "ldap://coax-u10.cisco.com/CN=Root coax-u10 Certificate Manager,O=Cisco Systems"
OPENSSL_CA_SUBJ = "/C=US/ST=CA/L=San Jose/O=Cisco Systems/OU=HFR/CN=Root coax-u10 Certificate Manager"

ROUTER_EXT = f"""keyUsage = critical, digitalSignature, keyEncipherment
crlDistributionPoints = crldp
[crldp]
fullname = @crlnames
[crlnames]
URI.1 = {SEED_CRL_DP}
"""


def openssl(*args: str, text: bool = True) -> str:
    return subprocess.run(["openssl", *args], check=True, capture_output=True, text=text).stdout


def openssl_bytes(*args: str) -> bytes:
    return subprocess.run(["openssl", *args], check=True, capture_output=True).stdout


@dataclass
class Pki:
    folder: Path
    ca_pem: Path
    ca_key: Path
    router_pem: Path
    router_key: Path
    other_ca_pem: Path  # same subject as the CA, another key
    ec_ca_pem: Path
    ec_leaf_pem: Path
    pss_leaf_pem: Path
    v1_self_pem: Path
    p7_pem: Path
    p7_der: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("openssl")
    p = {name: d / name for name in (
        "ca.pem", "ca.key", "r.key", "r.csr", "r.pem", "ext.cnf", "o.key", "o.pem", "ec.key", "ec.pem",
        "ecleaf.pem", "pss.pem", "s.key", "s.pem", "s.csr", "sv1.pem", "p7.pem", "p7.der",
    )}
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(p["ca.key"]), "-out", str(p["ca.pem"]),
            "-subj", OPENSSL_CA_SUBJ, "-days", "3650", "-set_serial", "1")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(p["r.key"]), "-out", str(p["r.csr"]),
            "-subj", "/O=Cisco Systems/unstructuredName=myrouter.mydomain.com")
    p["ext.cnf"].write_text(ROUTER_EXT)
    openssl("x509", "-req", "-in", str(p["r.csr"]), "-CA", str(p["ca.pem"]), "-CAkey", str(p["ca.key"]),
            "-set_serial", "0x6E", "-days", "7", "-extfile", str(p["ext.cnf"]), "-out", str(p["r.pem"]))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(p["o.key"]), "-out", str(p["o.pem"]),
            "-subj", OPENSSL_CA_SUBJ, "-days", "30", "-set_serial", "1")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            str(p["ec.key"]), "-out", str(p["ec.pem"]), "-subj", "/CN=EC Root", "-days", "30")
    openssl("x509", "-req", "-in", str(p["r.csr"]), "-CA", str(p["ec.pem"]), "-CAkey", str(p["ec.key"]),
            "-set_serial", "2", "-days", "7", "-out", str(p["ecleaf.pem"]))
    openssl("x509", "-req", "-in", str(p["r.csr"]), "-CA", str(p["ca.pem"]), "-CAkey", str(p["ca.key"]),
            "-set_serial", "0x02EC", "-days", "7", "-sha256", "-sigopt", "rsa_padding_mode:pss",
            "-sigopt", "rsa_pss_saltlen:32", "-out", str(p["pss.pem"]))
    openssl("req", "-x509", "-newkey", "rsa:1024", "-nodes", "-keyout", str(p["s.key"]), "-out", str(p["s.pem"]),
            "-subj", "/CN=old v1 root", "-days", "30")
    openssl("x509", "-x509toreq", "-in", str(p["s.pem"]), "-signkey", str(p["s.key"]), "-out", str(p["s.csr"]))
    openssl("x509", "-req", "-in", str(p["s.csr"]), "-signkey", str(p["s.key"]), "-days", "30",
            "-out", str(p["sv1.pem"]))
    openssl("crl2pkcs7", "-nocrl", "-certfile", str(p["ca.pem"]), "-certfile", str(p["r.pem"]), "-out", str(p["p7.pem"]))
    openssl("crl2pkcs7", "-nocrl", "-certfile", str(p["ca.pem"]), "-certfile", str(p["r.pem"]), "-outform", "DER",
            "-out", str(p["p7.der"]))
    return Pki(d, p["ca.pem"], p["ca.key"], p["r.pem"], p["r.key"], p["o.pem"], p["ec.pem"], p["ecleaf.pem"],
               p["pss.pem"], p["sv1.pem"], p["p7.pem"], p["p7.der"])


def load(path: Path) -> x509.Certificate:
    return load_certificate(path.read_text())


def openssl_fp(path: Path, digest: str) -> str:
    out = openssl("x509", "-in", str(path), "-noout", "-fingerprint", f"-{digest}")
    return out.strip().split("=", 1)[1]  # "AB:CD:..."


def openssl_date(path: Path, which: str) -> dt.datetime:
    out = openssl("x509", "-in", str(path), "-noout", f"-{which}").strip().split("=", 1)[1]
    return dt.datetime.strptime(out, "%b %d %H:%M:%S %Y GMT").replace(tzinfo=dt.UTC)


# --------------------------------------------------------------------------- CertificateInfo


def test_ca_certificate_info(pki: Pki) -> None:
    info = CertificateInfo.from_x509(load(pki.ca_pem))
    assert info.serial_number == "01"  # as the seed prints it
    assert info.subject == SEED_CA_SUBJECT
    assert info.issuer == SEED_CA_SUBJECT
    assert info.is_ca is True
    assert info.is_self_signed is True
    assert info.valid_from == openssl_date(pki.ca_pem, "startdate")
    assert info.valid_to == openssl_date(pki.ca_pem, "enddate")
    assert info.valid_from.tzinfo is not None and info.valid_to.tzinfo is not None
    assert info.crl_distribution_points == ()
    assert info.fingerprint_sha256 == openssl_fp(pki.ca_pem, "sha256").replace(":", "")
    assert info.fingerprint_sha1 == openssl_fp(pki.ca_pem, "sha1").replace(":", "")
    assert info.fingerprint_md5 == openssl_fp(pki.ca_pem, "md5").replace(":", "")
    assert len(info.fingerprint_md5) == 32 and info.fingerprint_md5 == info.fingerprint_md5.upper()
    spki_der = openssl_bytes("x509", "-in", str(pki.ca_pem), "-noout", "-pubkey")
    assert info.public_key_der == serialization.load_pem_public_key(spki_der).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert info.pem == pki.ca_pem.read_text()
    assert load_certificate(info.pem) == load(pki.ca_pem)


def test_router_certificate_info(pki: Pki) -> None:
    info = CertificateInfo.from_x509(load(pki.router_pem))
    assert info.serial_number == "6E"
    assert openssl("x509", "-in", str(pki.router_pem), "-noout", "-serial").strip() == "serial=6E"
    assert info.subject == SEED_ROUTER_SUBJECT  # exactly the seed's line
    assert info.issuer == SEED_CA_SUBJECT
    assert info.crl_distribution_points == (SEED_CRL_DP,)
    assert info.key_usage == (X509KeyUsage.DIGITAL_SIGNATURE, X509KeyUsage.KEY_ENCIPHERMENT)
    assert [u.value for u in info.key_usage] == ["digitalSignature", "keyEncipherment"]
    assert info.is_ca is False
    assert info.is_self_signed is False
    assert info.valid_to - info.valid_from == dt.timedelta(days=7)
    assert info.valid_from == openssl_date(pki.router_pem, "startdate")
    key_pub = openssl_bytes("pkey", "-in", str(pki.router_key), "-pubout", "-outform", "DER")
    assert info.public_key_der == key_pub
    assert info.fingerprint_md5 == openssl_fp(pki.router_pem, "md5").replace(":", "")


def test_serial_formats(pki: Pki) -> None:
    assert CertificateInfo.from_x509(load(pki.pss_leaf_pem)).serial_number == "02EC"
    assert format_serial(1) == "01"
    assert format_serial(0x6E) == "6E"
    assert format_serial(0x2EC) == "02EC"
    assert format_serial(0) == "00"
    assert format_serial(0xABCDEF0123) == "ABCDEF0123"
    assert format_serial(0xF) == "0F"


def test_v1_self_signed_root_is_ca(pki: Pki) -> None:
    cert = load(pki.v1_self_pem)
    assert cert.version is x509.Version.v1
    info = CertificateInfo.from_x509(cert)
    assert info.is_ca and info.is_self_signed
    assert info.subject == "cn=old v1 root"
    assert info.key_usage == () and info.crl_distribution_points == ()


def test_leaf_v1_without_extensions_is_not_ca(pki: Pki) -> None:
    info = CertificateInfo.from_x509(load(pki.ec_leaf_pem))
    assert info.is_ca is False and info.is_self_signed is False


def test_description_is_reused_for_the_same_certificate(pki: Pki) -> None:
    """A certificate described again (even loaded anew) gets the kept description; another does not."""
    first = CertificateInfo.from_x509(load(pki.ca_pem))
    assert CertificateInfo.from_x509(load(pki.ca_pem)) is first
    other = CertificateInfo.from_x509(load(pki.router_pem))
    assert other is not first and other.subject != first.subject
    with pytest.raises(AttributeError):
        first.subject = "cn=changed"  # type: ignore[misc]  # frozen: a kept description cannot be altered


def test_name_formatting_details() -> None:
    name = x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "US")]),
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme, Inc."),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "R+D"),
                ]
            ),
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.EMAIL_ADDRESS, "pki@example.com")]),
            x509.RelativeDistinguishedName([x509.NameAttribute(x509.ObjectIdentifier("1.3.6.1.4.1.9.9"), "x")]),
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, " padded ")]),
        ]
    )
    text = format_name(name)
    assert text.startswith("cn=\\ padded\\ ,1.3.6.1.4.1.9.9=x,emailAddress=pki@example.com,")
    assert "o=Acme\\, Inc." in text and "ou=R\\+D" in text
    assert text.endswith(",c=US")


# --------------------------------------------------------------------------- loading


def test_load_certificate_forms(pki: Pki) -> None:
    cert = load(pki.ca_pem)
    pem = pki.ca_pem.read_text()
    der = cert.public_bytes(serialization.Encoding.DER)
    body = "".join(line + "\n" for line in pem.splitlines() if not line.startswith("-----"))
    assert load_certificate(pem.encode()) == cert
    assert load_certificate(der) == cert
    assert load_certificate("Some explanatory text\n" + pem + "\ntrailer") == cert
    assert load_certificate(body) == cert  # bare base64, as pasted
    assert load_certificate(body + "quit\n") == cert  # the router's end-of-paste word
    assert load_certificate(pem.replace("CERTIFICATE", "X509 CERTIFICATE")) == cert


def test_load_certificates_bundles(pki: Pki) -> None:
    ca, router = load(pki.ca_pem), load(pki.router_pem)
    both = pki.ca_pem.read_text() + pki.router_pem.read_text()
    assert load_certificates(both) == [ca, router]
    assert sorted(c.serial_number for c in load_certificates(pki.p7_pem.read_text())) == [1, 0x6E]
    assert sorted(c.serial_number for c in load_certificates(pki.p7_der.read_bytes())) == [1, 0x6E]
    assert load_certificates(pki.ca_pem.read_bytes()) == [ca]
    key_and_cert = pki.router_key.read_text() + pki.router_pem.read_text()
    assert load_certificates(key_and_cert) == [router]  # other blocks are skipped
    with pytest.raises(InvalidCertificateError) as err:
        load_certificate(both)
    assert "Expected one certificate but found 2" in err.value.message


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("hello, I am not a certificate", "not a certificate"),
        ("", "empty"),
        ("quit\n", "empty"),
        (b"\x30\x03\x02\x01\x01", "not an X.509 certificate"),
        (b"\xff\xfe\xfd", "not an X.509 certificate"),
        ("TUlJQg==", "not an X.509 certificate"),
        ("-----BEGIN CERTIFICATE-----\nMIIB!!\n-----END CERTIFICATE-----\n", "not valid base64"),
        ("-----BEGIN CERTIFICATE-----\nTUlJQg==\n-----END CERTIFICATE-----\n", "not a valid X.509 certificate"),
        ("-----BEGIN CERTIFICATE-----\nMIIB\n", "no matching BEGIN/END"),
        ("x" * (1024 * 1024 + 1), "too long"),
    ],
)
def test_load_certificate_refusals(data: str | bytes, words: str) -> None:
    with pytest.raises(InvalidCertificateError) as err:
        load_certificate(data)
    assert err.value.error_tag == "invalid-value"
    assert err.value.error_app_tag == "invalid-certificate"
    assert words in err.value.message


def test_private_key_is_not_a_certificate(pki: Pki) -> None:
    text = pki.router_key.read_text()
    with pytest.raises(InvalidCertificateError) as err:
        load_certificate(text)
    assert "'PRIVATE KEY' block is not a certificate" in err.value.message
    assert text.splitlines()[2] not in err.value.message


def test_csr_is_not_a_certificate(pki: Pki) -> None:
    with pytest.raises(InvalidCertificateError) as err:
        load_certificate((pki.folder / "r.csr").read_text())
    assert "'CERTIFICATE REQUEST' block is not a certificate" in err.value.message


# --------------------------------------------------------------------------- fingerprints


def test_normalize_fingerprint() -> None:
    seed_md5 = "58 71 FB 94 55 65 D4 64 38 91 2B 00 61 E9 F8 05"  # authenticate output
    assert normalize_fingerprint(seed_md5) == "5871FB945565D46438912B0061E9F805"
    assert normalize_fingerprint("17D8B38D ED2BDF2E DF8ADB7F A7DBE35A") == "17D8B38DED2BDF2EDF8ADB7FA7DBE35A"
    assert normalize_fingerprint("58:71:fb:94:55:65:d4:64:38:91:2b:00:61:e9:f8:05") == "5871FB945565D46438912B0061E9F805"
    assert normalize_fingerprint("  " + "ab" * 32 + "\n") == "AB" * 32
    assert format_fingerprint("5871fb945565d46438912b0061e9f805") == seed_md5
    assert format_fingerprint("17D8B38DED2BDF2EDF8ADB7FA7DBE35A", group=8) == "17D8B38D ED2BDF2E DF8ADB7F A7DBE35A"


@pytest.mark.parametrize("bad", ["", "xyz", "58 71 FB", "G" * 32, "AB" * 17, "A" * 31, "AB" * 33])
def test_normalize_fingerprint_refusals(bad: str) -> None:
    with pytest.raises(InvalidFingerprintError) as err:
        normalize_fingerprint(bad)
    assert err.value.error_tag == "invalid-value"


def test_fingerprint_matches_by_length(pki: Pki) -> None:
    cert = load(pki.ca_pem)
    md5 = openssl_fp(pki.ca_pem, "md5")
    seed_style = " ".join(md5.split(":"))  # "58 71 FB ..."
    assert fingerprint_matches(cert, seed_style)
    assert fingerprint_matches(cert, openssl_fp(pki.ca_pem, "sha1").lower())
    assert fingerprint_matches(cert, openssl_fp(pki.ca_pem, "sha256"))
    assert not fingerprint_matches(cert, openssl_fp(pki.router_pem, "md5"))
    assert not fingerprint_matches(cert, openssl_fp(pki.other_ca_pem, "sha256"))
    with pytest.raises(InvalidFingerprintError):
        fingerprint_matches(cert, "12 34")


# --------------------------------------------------------------------------- issued-by


def test_verify_issued_by(pki: Pki) -> None:
    ca, router, other = load(pki.ca_pem), load(pki.router_pem), load(pki.other_ca_pem)
    assert verify_issued_by(router, ca)  # RSA PKCS#1 v1.5
    assert verify_issued_by(ca, ca)
    assert not verify_issued_by(router, other)  # same issuer name, other key
    assert not verify_issued_by(ca, router)
    assert not verify_issued_by(router, router)
    assert verify_issued_by(load(pki.pss_leaf_pem), ca)  # RSA-PSS
    assert not verify_issued_by(load(pki.pss_leaf_pem), other)
    ec_ca, ec_leaf = load(pki.ec_ca_pem), load(pki.ec_leaf_pem)
    assert verify_issued_by(ec_leaf, ec_ca)  # ECDSA
    assert not verify_issued_by(ec_leaf, ca)
    assert is_self_signed(ec_ca) and is_self_signed(ca)
    assert is_self_signed(other)


def test_same_name_other_key_is_not_self_signed() -> None:
    """A certificate naming itself as issuer but signed by another key."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imposter")])
    subject_key = rsa.generate_private_key(65537, 1024)
    signer = rsa.generate_private_key(65537, 1024)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(subject_key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(signer, hashes.SHA256())
    )
    assert not is_self_signed(cert)
    assert CertificateInfo.from_x509(cert).is_self_signed is False


# --------------------------------------------------------------------------- dates


def test_format_router_date_matches_seed() -> None:
    assert format_router_date(dt.datetime(2003, 8, 19, 7, 0, 0, tzinfo=dt.UTC)) == "07:00:00 UTC Tue Aug 19 2003"
    assert format_router_date(dt.datetime(2020, 8, 19, 7, 0, 0, tzinfo=dt.UTC)) == "07:00:00 UTC Wed Aug 19 2020"
    assert format_router_date(dt.datetime(2003, 9, 22, 21, 43, 14, tzinfo=dt.UTC)) == "21:43:14 UTC Mon Sep 22 2003"
    assert format_router_date(dt.datetime(2003, 9, 18, 17, 33, 23, 999, tzinfo=dt.UTC)) == "17:33:23 UTC Thu Sep 18 2003"


def test_format_router_date_converts_to_utc_and_does_not_pad_day() -> None:
    pdt = dt.timezone(dt.timedelta(hours=-7))
    assert format_router_date(dt.datetime(2003, 8, 19, 0, 0, 0, tzinfo=pdt)) == "07:00:00 UTC Tue Aug 19 2003"
    assert format_router_date(dt.datetime(2003, 9, 1, 1, 2, 3, tzinfo=dt.UTC)) == "01:02:03 UTC Mon Sep 1 2003"
    with pytest.raises(ValueError):
        format_router_date(dt.datetime(2003, 8, 19, 7, 0, 0))


def test_format_router_date_of_openssl_certificate(pki: Pki) -> None:
    info = CertificateInfo.from_x509(load(pki.ca_pem))
    start = openssl_date(pki.ca_pem, "startdate")
    expected = f"{start:%H:%M:%S} UTC {start:%a} {start:%b} {start.day} {start.year}"
    assert format_router_date(info.valid_from) == expected
