"""ca-verify-certificate with a chain built to make path building explode: refused at once over NETCONF."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from ncclient.operations import RPCError
from trust_e2e_helpers import rpc

NOW = dt.datetime.now(dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(subject: str, issuer: str, public: rsa.RSAPublicKey, signer: rsa.RSAPrivateKey) -> x509.Certificate:
    return (
        x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer)).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


def test_ten_certificates_of_one_name_are_refused_as_invalid_value_at_once(agent) -> None:
    """The path builder took 105 s of CPU over such a chain (12 KB of PEM) before it answered unknown-ca."""
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=1024) for _ in range(9)]
    loop = [_ca("Loop", "Loop", k.public_key(), keys[(i + 1) % 9]) for i, k in enumerate(keys)]
    peer = _ca("peer", "Loop", keys[0].public_key(), keys[0])
    chain = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in [peer, *loop])
    with agent.connect() as m:
        start = time.monotonic()
        with pytest.raises(RPCError) as refused:
            rpc(m, "ca-verify-certificate", f"<certificate>{chain}</certificate>")
        assert time.monotonic() - start < 3.0
    assert refused.value.tag == "invalid-value"
    assert "at most 3 certificates with one subject name" in refused.value.message
    assert "9 name cn=Loop" in refused.value.message, refused.value.message
