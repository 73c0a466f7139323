"""The client refuses bad CertReps (from deliberately misbehaving lab CAs) and reports transport failures."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from agent.errors import PkiError
from agent.labca import LabCa
from agent.pki.scep import (
    CaCertificates,
    PkiMessage,
    ScepClient,
    ScepHttpError,
    ScepTransportError,
    ScepVerificationError,
)


class WrongNonceCa(LabCa):
    """Answers with a recipientNonce that is not the request's senderNonce."""

    def response_recipient_nonce(self, message: PkiMessage) -> bytes:
        return bytes(b ^ 0xFF for b in super().response_recipient_nonce(message))


class ImpostorCa(LabCa):
    """Signs CertReps with a certificate that looks like the CA's (same name and serial), other key."""

    def response_signer(self) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        real = self.ca_certificate
        now = dt.datetime.now(dt.UTC)
        fake = (
            x509.CertificateBuilder()
            .subject_name(real.subject)
            .issuer_name(real.issuer)
            .public_key(key.public_key())
            .serial_number(real.serial_number)
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        return key, fake


class StrangerCa(LabCa):
    """Signs CertReps with an unrelated self-signed certificate."""

    def response_signer(self) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(99)
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        return key, cert


@pytest.mark.parametrize(
    ("cls", "match"),
    [
        (WrongNonceCa, "recipientNonce does not match"),
        (ImpostorCa, "signature does not verify"),
        (StrangerCa, "not among the expected signers"),
    ],
)
def test_scep_client_refuses_bad_certrep(lab_ca, rsa_key, make_csr, cls: type[LabCa], match: str) -> None:
    _, server = lab_ca(cls=cls)
    client = ScepClient(server.url, timeout=10)
    ca_certs = client.get_ca_certificates()
    with pytest.raises(ScepVerificationError, match=match) as caught:
        client.enroll(make_csr(rsa_key, cn="victim"), rsa_key, ca_certs)
    assert caught.value.error_app_tag == "scep-verification-failed"
    assert isinstance(caught.value, PkiError)


def test_scep_client_refuses_certrep_signed_by_ra_it_does_not_know(lab_ca, rsa_key, make_csr) -> None:
    """A CertRep signed by an RA is refused when the client trusts only the CA certificate."""
    ca, server = lab_ca(ra=True)
    ca_only = CaCertificates(ca=ca.ca_certificate, chain=(ca.ca_certificate,))
    client = ScepClient(server.url, timeout=10)
    with pytest.raises(ScepVerificationError, match="not among the expected signers"):
        client.enroll(make_csr(rsa_key, cn="x"), rsa_key, ca_only)


class WrongTxidCa(LabCa):
    """Answers (correctly signed) for another transaction."""

    def response_transaction_id(self, message: PkiMessage) -> str:
        return "NOT-" + message.transaction_id


class TamperingCa(LabCa):
    """Alters a signed attribute after signing."""

    def handle_pki_operation(self, data: bytes) -> bytes:
        txid = PkiMessage.from_der(data).transaction_id.encode()
        reply = super().handle_pki_operation(data)
        assert txid in reply
        return reply.replace(txid, b"X" * len(txid))


def test_scep_client_wrong_transaction_id_refused(lab_ca, rsa_key, make_csr) -> None:
    _, server = lab_ca(cls=WrongTxidCa)
    client = ScepClient(server.url, timeout=10)
    with pytest.raises(ScepVerificationError, match="transactionID"):
        client.enroll(make_csr(rsa_key, cn="x"), rsa_key, client.get_ca_certificates())


def test_scep_client_tampered_certrep_refused(lab_ca, rsa_key, make_csr) -> None:
    _, server = lab_ca(cls=TamperingCa)
    client = ScepClient(server.url, timeout=10)
    with pytest.raises(ScepVerificationError, match="signature does not verify"):
        client.enroll(make_csr(rsa_key, cn="x"), rsa_key, client.get_ca_certificates())


# --------------------------------------------------------------------------- transport failures


def test_scep_client_connection_refused_names_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/scep"
    client = ScepClient(url, timeout=5)
    with pytest.raises(ScepTransportError) as caught:
        client.get_ca_caps()
    assert url in caught.value.message
    assert "refused" in caught.value.message.lower()
    assert caught.value.error_app_tag == "scep-unreachable"
    assert caught.value.info["url"] == url


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listening socket that never accepts: connections succeed, answers never come."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def test_scep_client_timeout_is_bounded(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}/scep"
    client = ScepClient(url, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ScepTransportError) as caught:
        client.get_ca_certificates()
    assert time.monotonic() - started < 5
    assert url in caught.value.message
    assert "0.5 s" in caught.value.message


class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_error(404, "Not Found")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def not_found_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/scep"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_scep_client_http_errors(not_found_url: str) -> None:
    client = ScepClient(not_found_url, timeout=5)
    caps = client.get_ca_caps()  # a CA without GetCACaps: no capabilities, legacy algorithms
    assert not caps.capabilities
    with pytest.raises(ScepHttpError) as caught:
        client.get_ca_certificates()
    assert caught.value.status == 404
    assert not_found_url in caught.value.message and "HTTP 404" in caught.value.message
