"""Every script of client_examples/ run against a live agent (and the lab CA), its effect checked over NETCONF."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_e2e_helpers import CHALLENGE, REPO
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agent.labca import LabCa

from agentproc import ADMIN_PASSWORD, AgentProcess
from labcaproc import LabCaProcess

CRYPTO = "urn:ca-agent:yang:crypto"
SYS = "urn:ca-agent:yang:system"
NS = {"c": CRYPTO, "s": SYS}
EXAMPLES = REPO / "client_examples"


def example(agent: AgentProcess, name: str, *args: str, password: str = ADMIN_PASSWORD) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CA_AGENT_PASSWORD=password, CA_CHALLENGE_PASSWORD=CHALLENGE)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--port", str(agent.port), *args],
        capture_output=True, text=True, timeout=180, env=env, cwd=str(REPO),
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def state(agent: AgentProcess):
    with agent.connect() as m:
        return m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"/>')).data_ele


def certificate(agent: AgentProcess, trustpoint: str, leaf: str) -> str | None:
    return state(agent).findtext(
        f"c:crypto/c:ca/c:trustpoint[c:name='{trustpoint}']/c:certificate/c:{leaf}", namespaces=NS)


def test_seed_procedures_one_script_each(agent: AgentProcess, lab_ca: LabCaProcess, tmp_path: Path) -> None:
    ok(example(agent, "hostname_and_domain.py", "--hostname", "myhost", "--domain", "mydomain.com"))
    with agent.connect() as m:
        running = m.get_config("running").data_ele
    assert running.findtext("s:hostname", namespaces=NS) == "myhost"
    assert running.findtext("s:domain/s:name", namespaces=NS) == "mydomain.com"

    out = ok(example(agent, "generate_key.py", "--label", "mykey", "--modulus", "1024"))
    assert "Key label: mykey" in out
    assert state(agent).xpath("c:crypto/c:key/c:rsa[c:label='mykey']/c:size/text()", namespaces=NS) == ["1024"]
    assert example(agent, "generate_key.py", "--label", "mykey").returncode == 1  # exists: needs --replace
    out = ok(example(agent, "generate_key.py"))  # no label: the FQDN
    assert "Key label: myhost.mydomain.com" in out

    key_file = tmp_path / "alice.pub"
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    key_file.write_bytes(public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))
    ok(example(agent, "import_public_key.py", "--label", "alice-key", "--key-file", str(key_file)))
    assert state(agent).xpath("c:crypto/c:key/c:authentication/c:rsa/c:label/text()", namespaces=NS) == ["alice-key"]

    ok(example(agent, "declare_trustpoint.py", "--name", "myca", "--url", lab_ca.url, "--query-url",
               "ldap://my-ldap.domain.com", "--retry-period", "2", "--retry-count", "25", "--rsakeypair", "mykey"))
    with agent.connect() as m:
        tp = m.get_config("running").data_ele.find("c:crypto/c:ca/c:trustpoint", NS)
    assert tp.findtext("c:enrollment/c:url", namespaces=NS) == lab_ca.url
    assert tp.findtext("c:enrollment/c:retry/c:count", namespaces=NS) == "25"
    assert tp.findtext("c:rsakeypair", namespaces=NS) == "mykey"

    out = ok(example(agent, "authenticate_ca.py", "--trustpoint", "myca"))  # shows, installs nothing
    assert "not installed" in out
    assert state(agent).find("c:crypto/c:ca/c:trustpoint/c:ca-certificate", NS) is None
    der = x509.load_pem_x509_certificate(lab_ca.ca_pem.read_bytes()).public_bytes(serialization.Encoding.DER)
    md5 = hashlib.md5(der).hexdigest().upper()
    assert example(agent, "authenticate_ca.py", "--trustpoint", "myca", "--fingerprint", "00" * 16).returncode == 1
    ok(example(agent, "authenticate_ca.py", "--trustpoint", "myca", "--fingerprint", " ".join(
        md5[i : i + 2] for i in range(0, 32, 2))))
    assert state(agent).findtext("c:crypto/c:ca/c:trustpoint/c:ca-certificate/c:fingerprint-md5", namespaces=NS) == md5

    ok(example(agent, "enroll.py", "--trustpoint", "myca"))
    assert certificate(agent, "myca", "status") == "available"
    first_serial = certificate(agent, "myca", "serial-number")

    out = ok(example(agent, "show_certificates.py"))
    assert "Trustpoint: myca" in out and f"Serial Number  : {first_serial}" in out
    assert example(agent, "show_certificates.py", "--trustpoint", "nope").returncode == 1

    old_key = state(agent).xpath("c:crypto/c:key/c:rsa[c:label='mykey']/c:key-pair/c:public-key/text()", namespaces=NS)
    out = ok(example(agent, "regenerate.py", "--trustpoint", "myca"))
    assert "cleared certificates of: myca" in out
    new_key = state(agent).xpath("c:crypto/c:key/c:rsa[c:label='mykey']/c:key-pair/c:public-key/text()", namespaces=NS)
    assert new_key != old_key
    assert certificate(agent, "myca", "status") == "available"
    assert certificate(agent, "myca", "serial-number") != first_serial

    ok(example(agent, "zeroize_key.py", "--label", "myhost.mydomain.com"))
    labels = state(agent).xpath("c:crypto/c:key/c:rsa/c:label/text()", namespaces=NS)
    assert "myhost.mydomain.com" not in labels and "mykey" in labels
    failed = example(agent, "zeroize_key.py", "--label", "myhost.mydomain.com")
    assert failed.returncode == 1 and "error: the agent refused" in failed.stderr and "Traceback" not in failed.stderr


def test_cut_and_paste_script(agent: AgentProcess, lab_ca: LabCaProcess, tmp_path: Path) -> None:
    csr_file = tmp_path / "request.pem"
    ok(example(agent, "cut_and_paste_enrollment.py", "request", "--trustpoint", "paste",
               "--ca-cert-file", str(lab_ca.ca_pem), "--csr-out", str(csr_file)))
    csr = x509.load_pem_x509_csr(csr_file.read_bytes())
    cert_file = tmp_path / "issued.pem"
    cert_file.write_bytes(LabCa(lab_ca.data_dir, create=False).issue(csr).public_bytes(serialization.Encoding.PEM))
    out = ok(example(agent, "cut_and_paste_enrollment.py", "import", "--trustpoint", "paste",
                     "--certificate-file", str(cert_file)))
    assert "imported the general-purpose certificate" in out
    assert certificate(agent, "paste", "status") == "available"


def test_configuration_example_script(agent: AgentProcess, lab_ca: LabCaProcess) -> None:
    out = ok(example(agent, "configuration_example.py", "--url", lab_ca.url))
    assert "Router certificate: available" in out
    with agent.connect() as m:
        assert m.get_config("running").data_ele.findtext("s:hostname", namespaces=NS) == "myrouter"
    assert certificate(agent, "myca", "subject") == "unstructuredName=myrouter.mydomain.com"
    # run again: the key pair exists now, so the script fails, and says why
    again = example(agent, "configuration_example.py", "--url", lab_ca.url)
    assert again.returncode == 1 and "error: the agent refused" in again.stderr


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")))
def test_every_example_fails_cleanly_with_a_wrong_password(agent: AgentProcess, script: str) -> None:
    args = {"cut_and_paste_enrollment.py": ["import", "--trustpoint", "x", "--certificate-file", __file__]}.get(script, [])
    required = {
        "hostname_and_domain.py": ["--hostname", "h", "--domain", "d.com"],
        "zeroize_key.py": ["--label", "k"],
        "import_public_key.py": ["--label", "k", "--key-file", __file__],
        "declare_trustpoint.py": ["--name", "t", "--terminal"],
        "authenticate_ca.py": ["--trustpoint", "t"],
        "enroll.py": ["--trustpoint", "t"],
        "regenerate.py": ["--trustpoint", "t"],
        "configuration_example.py": ["--url", "http://127.0.0.1:1/scep"],
    }.get(script, [])
    done = example(agent, script, *required, *args, password="wrong")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("error:")
