"""Test CAs, certificates, CRLs and a tiny HTTP server for the trust tests (agent.pki.verify, revocation, trustpool)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
_KEYS: list[rsa.RSAPrivateKey] = []


def key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit key (1024 would be refused by the validator's algorithm policy)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def name(cn: str, org: str = "Example") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _ku(ca: bool, sign: bool = True) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign, content_commitment=False, key_encipherment=not ca, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )


@dataclass
class MiniCa:
    """A CA that issues certificates and CRLs (issuer name + key)."""

    subject: x509.Name
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    revoked: list[tuple[int, dt.datetime, x509.ReasonFlags | None]] = field(default_factory=list)
    crl_number: int = 0

    @classmethod
    def root(cls, cn: str, *, not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
             crl_sign: bool = True) -> MiniCa:
        k = key()
        subject = name(cn)
        usage = _ku(True)
        if not crl_sign:
            usage = x509.KeyUsage(True, False, False, False, False, True, False, False, False)
        cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - dt.timedelta(days=1))
            .not_valid_after(not_after or NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
            .sign(k, hashes.SHA256())
        )
        return cls(subject, k, cert)

    def issue(
        self,
        cn: str,
        *,
        ca: bool = False,
        serial: int | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        cdp: str | None = None,
        eku: list[x509.ObjectIdentifier] | None = None,
        sign_with: rsa.RSAPrivateKey | None = None,
        public_key: rsa.RSAPublicKey | None = None,
    ) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        k = key()
        builder = (
            x509.CertificateBuilder().subject_name(name(cn)).issuer_name(self.subject)
            .public_key(public_key or k.public_key())
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(not_before or NOW - dt.timedelta(hours=1))
            .not_valid_after(not_after or NOW + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(_ku(ca), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if cdp:
            builder = builder.add_extension(
                x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(cdp)], None, None, None)]),
                critical=False,
            )
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        return builder.sign(sign_with or self.key, hashes.SHA256()), k

    def intermediate(self, cn: str) -> MiniCa:
        cert, k = self.issue(cn, ca=True)
        return MiniCa(name(cn), k, cert)

    def revoke(self, serial: int, reason: x509.ReasonFlags | None = x509.ReasonFlags.key_compromise) -> None:
        self.revoked.append((serial, NOW - dt.timedelta(minutes=5), reason))

    def crl(self, *, sign_with: rsa.RSAPrivateKey | None = None, next_update: dt.timedelta = dt.timedelta(days=7),
            number: int | None = None, issuer: x509.Name | None = None,
            age: dt.timedelta = dt.timedelta(minutes=1)) -> bytes:
        self.crl_number += 1
        builder = (
            x509.CertificateRevocationListBuilder().issuer_name(issuer or self.subject)
            .last_update(NOW - age).next_update(NOW + next_update)
            .add_extension(x509.CRLNumber(number if number is not None else self.crl_number), critical=False)
        )
        for serial, when, reason in self.revoked:
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            if reason is not None:
                entry = entry.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(sign_with or self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


EKU_CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]
EKU_SERVER = [ExtendedKeyUsageOID.SERVER_AUTH]


class Served:
    """What the HTTP server answers: path -> (status, body); counts requests per path."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, bytes]] = {}
        self.hits: dict[str, int] = {}
        self.base = ""

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def put(self, path: str, body: bytes, status: int = 200) -> str:
        self.files[path] = (status, body)
        return self.url(path)


@contextmanager
def http_server() -> Iterator[Served]:
    """A real HTTP server on 127.0.0.1 (free port) serving :class:`Served` content."""
    served = Served()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            served.hits[self.path] = served.hits.get(self.path, 0) + 1
            status, body = served.files.get(self.path, (404, b"not found"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
