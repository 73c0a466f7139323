"""Issue 13's ca-cli commands, one-shot with commands (and pasted PEM) on stdin, against a real agent and lab CAs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trust_e2e_helpers import enroll, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from cli_e2e_helpers import run_cli  # noqa: E402


def test_crl_trustpool_and_verify_commands(two_agents, lab_cas, tmp_path: Path) -> None:
    router, peer = two_agents
    ca_c = lab_cas("ca-c", "--subject", "CN=Domain C CA,O=Example")
    with peer.connect() as p:
        peer_cert = enroll(p, "C", ca_c.url, "peer-c")
    pem = text(peer_cert, "c:pem")
    serial = text(peer_cert, "c:serial-number")
    bundle = tmp_path / "www"
    bundle.mkdir()
    (bundle / "pool.pem").write_bytes(ca_c.ca_pem.read_bytes())
    web = subprocess.Popen(
        [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(bundle)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert web.stdout is not None
        port = web.stdout.readline().split("port ")[1].split()[0]  # "Serving HTTP on 127.0.0.1 port N ..."
        script = "\n".join(
            [
                "configure",
                "crypto ca trustpoint C",
                f"enrollment url {ca_c.url}",
                "crl optional",
                "commit",
                "end",
                "crypto ca authenticate C",
                "yes",
                "crypto ca verify trustpoint C purpose ike",
                *pem.strip().splitlines(),
                "",
                "crypto ca crl request C",
                "show crypto ca crls",
                f"crypto ca trustpool import url http://127.0.0.1:{port}/pool.pem",
                "show crypto ca trustpool",
                "crypto ca verify trustpoint trustpool",
                *pem.strip().splitlines(),
                "",
                "crypto ca trustpool import url clean",
                "configure",
                "crypto ca trustpool policy",
                f"cabundle url http://127.0.0.1:{port}/pool.pem",
                "crl optional",
                "commit",
                "end",
                "show running-config",
            ]
        ) + "\n"
        done = run_cli(router, tmp_path, stdin=script)
    finally:
        web.terminate()
        web.wait(10)
    out = done.stdout
    assert "Certificate is VALID (trustpoint C)" in out, out + done.stderr
    assert "Revocation : good (CRL http://127.0.0.1" in out
    assert "CRL Entry" in out and "Issuer : cn=Domain C CA,o=Example" in out and "Revoked Certificates : 0" in out
    assert "1 CA certificate(s) added to the trustpool, 0 skipped" in out
    assert "CA certificate\n  Serial Number  :" in out and "cn=Domain C CA,o=Example" in out
    assert "Certificate is VALID (trustpoint trustpool)" in out
    assert "% Trustpool cleared: 1 CA certificate(s) removed" in out
    assert "crypto ca trustpool policy\n cabundle url http://127.0.0.1" in out and " crl optional\n!" in out
    assert "crypto ca trustpoint C\n enrollment url" in out

    ca_c.command("revoke", serial, "--reason", "keyCompromise")
    script = "crypto ca crl request C\n" + "crypto ca verify trustpoint C\n" + pem.strip() + "\n\n"
    done = run_cli(router, tmp_path, stdin=script)
    assert "Certificate is NOT VALID (trustpoint C)" in done.stdout, done.stdout + done.stderr
    assert "Revocation : revoked at" in done.stdout and "reason keyCompromise" in done.stdout
    assert "% Certificate verification failed: revoked" in done.stdout
    assert done.returncode != 0

    # The peer's own view: its certificate shows Status: Revoked once it fetched its CA's CRL.
    done = run_cli(peer, tmp_path, stdin="crypto ca crl request C\nshow crypto ca certificates C\n")
    assert "Status        :Revoked" in done.stdout, done.stdout + done.stderr
