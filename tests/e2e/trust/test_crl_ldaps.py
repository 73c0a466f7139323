"""CRLs over ldaps: the LDAP server's certificate is checked, as an https CDP's is.

A real slapd serves ldaps with a certificate from a throwaway CA. The agent
trusts what the system trusts (OpenSSL's default store, which
``SSL_CERT_FILE`` replaces here): a server whose certificate does not chain
to it, or does not name the host of the URL, gives no CRL.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from trust_e2e_helpers import Slapd

sys.path.insert(0, str(Path(__file__).parents[3]))

from agent.pki.crlfetch import FetchError, ServerFailedError, fetch_crl  # noqa: E402

CA_DN = "cn=LDAPS Test CA,o=Example"
NOW = dt.datetime.now(dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example")])


class _Pki:
    """A CA, its CRL, and a server certificate for the names given."""

    def __init__(self, folder: Path, server_names: list[x509.GeneralName]) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.ca = (
            x509.CertificateBuilder().subject_name(_name("LDAPS Test CA")).issuer_name(_name("LDAPS Test CA"))
            .public_key(self.key.public_key()).serial_number(1)
            .not_valid_before(NOW - dt.timedelta(hours=1)).not_valid_after(NOW + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.crl_der = (
            x509.CertificateRevocationListBuilder().issuer_name(self.ca.subject)
            .last_update(NOW - dt.timedelta(minutes=5)).next_update(NOW + dt.timedelta(days=1))
            .sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (
            x509.CertificateBuilder().subject_name(_name("ldap server")).issuer_name(self.ca.subject)
            .public_key(server_key.public_key()).serial_number(2)
            .not_valid_before(NOW - dt.timedelta(hours=1)).not_valid_after(NOW + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(server_names), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(self.ca.public_bytes(serialization.Encoding.PEM))
        self.cert_file = folder / "server.pem"
        self.cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        self.key_file = folder / "server.key"
        self.key_file.write_bytes(server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ))


def _serve(tmp_path: Path, slapd: Slapd, names: list[x509.GeneralName]) -> tuple[_Pki, str]:
    pki = _Pki(tmp_path / "pki", names)
    slapd.tls = (pki.cert_file, pki.key_file)
    slapd.start()
    slapd.publish(CA_DN, pki.ca.public_bytes(serialization.Encoding.DER), pki.crl_der)
    return pki, f"{slapd.tls_url}/{CA_DN}"


def test_ldaps_server_trusted_by_the_system_store(tmp_path, slapd, monkeypatch) -> None:
    pki, url = _serve(tmp_path, slapd, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    assert fetch_crl(url, CA_DN, 10.0) == pki.crl_der


def test_ldaps_server_of_an_unknown_ca_gives_no_crl(tmp_path, slapd, monkeypatch) -> None:
    pki, url = _serve(tmp_path, slapd, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    other = _Pki(tmp_path / "other", [x509.DNSName("unused.example")])
    monkeypatch.setenv("SSL_CERT_FILE", str(other.ca_file))
    with pytest.raises(FetchError, match="certificate is not trusted"):
        fetch_crl(url, CA_DN, 10.0)


def test_ldaps_server_certificate_for_another_host_gives_no_crl(tmp_path, slapd, monkeypatch) -> None:
    pki, url = _serve(tmp_path, slapd, [x509.DNSName("ldap.example.com")])
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    with pytest.raises(FetchError, match="certificate does not name 127.0.0.1"):
        fetch_crl(url, CA_DN, 10.0)


def test_ldaps_server_that_never_completes_the_handshake_costs_the_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts (the kernel's backlog), never answers
        url = f"ldaps://127.0.0.1:{listener.getsockname()[1]}/{CA_DN}"
        began = time.monotonic()
        with pytest.raises(ServerFailedError, match="no complete answer within 1 s"):
            fetch_crl(url, CA_DN, 1.0)
        assert time.monotonic() - began < 3.0
