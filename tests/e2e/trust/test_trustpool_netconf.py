"""Issue 13 end to end: the trustpool over NETCONF, with certifi's cacert.pem (a bundle nobody here wrote)."""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from ncclient.operations import RPCError
from trust_e2e_helpers import CRYPTO, NS, configure, rpc, text

NOW = dt.datetime.now(dt.UTC)


def _cert(subject: str, issuer: tuple[x509.Name, rsa.RSAPrivateKey] | None, ca: bool, days: tuple[int, int] = (-1, 365)):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Pool Test"), x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer if issuer else (name, key)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + dt.timedelta(days=days[0])).not_valid_after(NOW + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key, name


def pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving a directory."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def pool_fingerprints(m) -> set[str]:
    data = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><ca><trustpool/></ca></crypto>')).data_ele
    return {e.text for e in data.iterfind("c:crypto/c:ca/c:trustpool/c:certificate/c:fingerprint", NS)}


def test_certifi_bundle_over_http_and_inline_and_a_chain_to_a_pool_ca(agent, web) -> None:
    root, base = web
    bundle = Path(certifi.where()).read_text()
    roots = bundle.count("-----BEGIN CERTIFICATE-----")
    expired, _, _ = _cert("Expired Root", None, True, days=(-30, -1))
    test_ca, test_key, test_name = _cert("Pool Test CA", None, True)
    leaf, _, _ = _cert("not a CA", (test_name, test_key), False)
    (root / "cacert.pem").write_text(bundle + pem(expired, leaf))
    with agent.connect() as m:
        with pytest.raises(RPCError) as missing:
            rpc(m, "ca-trustpool-import", "<clean/>")
        assert missing.value.tag in ("missing-element", "data-missing")
        out = rpc(m, "ca-trustpool-import", f"<url>{base}/cacert.pem</url>")
        assert int(text(out, "c:added")) == roots and text(out, "c:skipped") == "2"
        reasons = {text(s, "c:subject"): text(s, "c:reason") for s in out.findall("c:skipped-certificate", NS)}
        assert reasons == {"cn=Expired Root,o=Pool Test": "expired", "cn=not a CA,o=Pool Test": "not-a-ca"}
        assert len(pool_fingerprints(m)) == roots

        again = rpc(m, "ca-trustpool-import", f"<bundle>{bundle}</bundle>")  # inline: all duplicates
        assert text(again, "c:added") == "0" and int(text(again, "c:skipped")) == roots
        assert {text(s, "c:reason") for s in again.findall("c:skipped-certificate", NS)} == {"duplicate"}

        # A chain to a CA of the pool validates with trustpoint 'trustpool' (no trustpoint configured at all).
        peer, _, _ = _cert("pool peer", (test_name, test_key), False)
        verify = f"<certificate>{pem(peer)}</certificate><trustpoint>trustpool</trustpoint>"
        assert text(rpc(m, "ca-verify-certificate", verify), "c:failure") == "unknown-ca"
        rpc(m, "ca-trustpool-import", f"<bundle>{pem(test_ca)}</bundle>")
        out = rpc(m, "ca-verify-certificate", verify)
        assert text(out, "c:valid") == "true" and text(out, "c:trustpoint") == "trustpool"
        assert text(out, "c:revocation") == "not-checked"

        cleaned = rpc(m, "ca-trustpool-import", f"<bundle>{pem(test_ca)}</bundle><clean/>")
        assert int(text(cleaned, "c:removed")) == roots + 1 and text(cleaned, "c:total") == "1"
        assert text(rpc(m, "ca-trustpool-clear"), "c:removed") == "1"
        assert pool_fingerprints(m) == set()
        with pytest.raises(RPCError) as bad:
            rpc(m, "ca-trustpool-import", "<url>ftp://example/x</url>")
        assert bad.value.tag == "invalid-value"


def test_cabundle_url_policy_refreshed_in_the_background(agent, web) -> None:
    root, base = web
    ca, _, _ = _cert("Policy CA", None, True)
    (root / "bundle.pem").write_text(pem(ca))
    fingerprint = ca.fingerprint(hashes.SHA256()).hex().upper()
    with agent.connect() as m:
        configure(
            m,
            f'<crypto xmlns="{CRYPTO}"><ca><trustpool><policy><cabundle-url>{base}/bundle.pem</cabundle-url>'
            "<crl-optional/></policy></trustpool></ca></crypto>",
        )
        deadline = time.monotonic() + 30
        while fingerprint not in pool_fingerprints(m):
            assert time.monotonic() < deadline, "cabundle url was not imported"
            time.sleep(0.05)
    agent.stop()
    agent.start()  # the pool is on disk
    with agent.connect() as m:
        assert fingerprint in pool_fingerprints(m)
