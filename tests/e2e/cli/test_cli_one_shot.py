"""ca-cli one-shot: `-c COMMAND` and commands (with their answers) on stdin, against a real agent and lab CA."""

from __future__ import annotations

import re
from pathlib import Path

from cli_e2e_helpers import CHALLENGE, FAST, run_cli
from cli_seed_text import SEED_CERTIFICATES, skeleton
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agent.labca import LabCa

from agentproc import AgentProcess
from labcaproc import LabCaProcess
from rawnetconf import wait_until

CRYPTO = "urn:ca-agent:yang:crypto"
SYS = "urn:ca-agent:yang:system"
NS = {"c": CRYPTO, "s": SYS}
P = "RP/0/RP0/CPU0:"


def script(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def ca_state(agent: AgentProcess, name: str):
    with agent.connect() as m:
        data = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><ca/></crypto>')).data_ele
    return data.xpath(f"c:crypto/c:ca/c:trustpoint[c:name='{name}']", namespaces=NS)[0]


def test_script_on_stdin_then_one_shot_commands(agent: AgentProcess, lab_ca: LabCaProcess, tmp_path: Path) -> None:
    done = run_cli(agent, tmp_path, stdin=script(
        "configure", "hostname myrouter", "domain name mydomain.com",
        "crypto ca trustpoint myca", f"enrollment url {lab_ca.url}", "end", "yes",
        "! The following command authenticates the CA to your router.",
        "crypto ca authenticate myca", "yes",
        "crypto ca enroll myca", CHALLENGE, CHALLENGE,
    ))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout.splitlines()
    # A transcript, as a router session reads: prompt + command, questions + answers; never the password.
    assert out[:5] == [f"{P}router#configure", f"{P}router(config)#hostname myrouter",
                       f"{P}router(config)#domain name mydomain.com", f"{P}router(config)#crypto ca trustpoint myca",
                       f"{P}router(config-trustp)#enrollment url {lab_ca.url}"]
    assert f"{P}router(config-trustp)#end" in out
    assert "Uncommitted changes found, commit them? [yes]:yes" in out
    assert f"{P}myrouter#crypto ca authenticate myca" in out
    assert "Do you accept this certificate?? [yes/no]:yes" in out
    assert "Password: " in out and "Re-enter Password: " in out
    assert CHALLENGE not in done.stdout
    assert any(re.fullmatch(r"Fingerprint: (?:[0-9A-F]{8} ){3}[0-9A-F]{8}", line) for line in out)

    done = run_cli(agent, tmp_path, "-c", "show crypto ca certificates")
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert skeleton(lines) == skeleton(SEED_CERTIFICATES)  # no prompt, no echo: just the block
    assert lines[0] == "Trustpoint      :myca"

    done = run_cli(agent, tmp_path, "-c", "show crypto key mypubkey rsa the_default", "-c", "shw")
    assert done.returncode == 1
    assert done.stdout.startswith("Key label: the_default\n")
    assert done.stdout.endswith("shw\n^\n% Invalid input detected at '^' marker.\n")
    assert "Traceback" not in done.stdout + done.stderr


def test_end_answers_no_and_cancel(agent: AgentProcess, tmp_path: Path) -> None:
    done = run_cli(agent, tmp_path, stdin=script(
        "configure", "hostname other", "end", "cancel", "show running-config hostname", "end", "no",
        "configure", "domain name example.net", "abort",
        "configure", "hostname kept", "commit", "hostname dropped",  # end of input in config mode
    ))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout.splitlines()
    cancel = out.index("Uncommitted changes found, commit them? [yes]:cancel")
    assert out[cancel + 1] == f"{P}router(config)#show running-config hostname"  # still in config mode
    assert out[cancel + 2] == "% No such configuration item(s)"  # running unchanged
    assert "Uncommitted changes found, commit them? [yes]:no" in out
    assert f"{P}router(config)#abort" in out
    assert out[-1] == "% Uncommitted configuration changes were discarded."
    with agent.connect() as m:
        running = m.get_config("running").data_ele
        assert running.findtext("s:hostname", namespaces=NS) == "kept"
        assert running.find("s:domain", NS) is None
        candidate = m.get_config("candidate").data_ele
        assert candidate.findtext("s:hostname", namespaces=NS) == "kept"


def test_cut_and_paste_enrollment(agent: AgentProcess, lab_ca: LabCaProcess, tmp_path: Path) -> None:
    ca_pem = lab_ca.ca_pem.read_text().strip().splitlines()
    done = run_cli(agent, tmp_path, stdin=script(
        "configure", "crypto ca trustpoint paste", "enrollment terminal", "commit", "end",
        "crypto ca authenticate paste", *ca_pem, "", "yes",
        "crypto ca enroll paste", "pw", "pw",
    ))
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'End with a blank line or the word "quit" on a line by itself' in done.stdout
    assert "Do you accept this certificate?? [yes/no]:yes" in done.stdout
    match = re.search(r"-----BEGIN CERTIFICATE REQUEST-----.+?-----END CERTIFICATE REQUEST-----", done.stdout, re.S)
    assert match, done.stdout
    assert "---End - This line not part of the certificate request---" in done.stdout
    csr = x509.load_pem_x509_csr(match.group().encode())
    issued = LabCa(lab_ca.data_dir, create=False).issue(csr)  # the CA administrator signs it
    cert_pem = issued.public_bytes(serialization.Encoding.PEM).decode().strip().splitlines()

    done = run_cli(agent, tmp_path, stdin=script(
        "crypto ca import paste certificate", *cert_pem, "quit", "show crypto ca certificates paste",
    ))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout.splitlines()
    assert "% Router Certificate successfully imported" in out
    assert "Status        :Available" in out and f"Serial Number  :{issued.serial_number:02X}" in out
    cert = ca_state(agent, "paste").find("c:certificate", NS)
    assert cert.findtext("c:status", namespaces=NS) == "available"


def test_pending_enrollment_is_polled_by_the_agent(agent_factory, tmp_path: Path) -> None:
    agent = agent_factory(args=FAST).start()
    lab = LabCaProcess(tmp_path / "manual-ca", "--manual-approval").start()
    try:
        done = run_cli(agent, tmp_path, stdin=script(
            "configure", "crypto ca trustpoint myca", f"enrollment url {lab.url}", "enrollment retry count 100",
            "end", "yes", "crypto ca authenticate myca", "yes", "crypto ca enroll myca", "", "",
        ))
        assert done.returncode == 0, done.stdout + done.stderr
        pending = re.search(r"% Certificate request sent to the CA; it is pending \(transaction ID (\S+)\)\.", done.stdout)
        assert pending, done.stdout
        assert "% The router will poll the CA every 1 minute(s), up to 100 times." in done.stdout
        shown = run_cli(agent, tmp_path, "-c", "show crypto ca certificates myca").stdout.splitlines()
        assert shown[-3:] == ["Router certificate", "Key usage      :General Purpose", "Status        :Pending"]

        lab.command("approve", pending.group(1))
        wait_until(lambda: ca_state(agent, "myca").findtext("c:certificate/c:status", namespaces=NS) == "available",
                 60, "the agent to fetch the approved certificate")
        shown = run_cli(agent, tmp_path, "-c", "show crypto ca certificates myca").stdout.splitlines()
        assert "Status        :Available" in shown
    finally:
        lab.stop()


def test_key_commands(agent: AgentProcess, tmp_path: Path) -> None:
    user_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    ssh_line = user_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    done = run_cli(agent, tmp_path, stdin=script(
        "crypto key generate rsa usage-keys ukey", "1024",
        "show crypto key mypubkey rsa ukey",
        "crypto key import authentication rsa general-keys alice-key", ssh_line, "",
        "show crypto key authentication rsa",
        "crypto key zeroize rsa ukey", "yes",
        "crypto key zeroize rsa ukey",
    ))
    assert done.returncode == 1  # the last command: no such key
    out = done.stdout.splitlines()
    assert [line for line in out if line.startswith("Type")] == [
        "Type     : RSA Signature", "Type     : RSA Encryption", "Type     : RSA public key used for authentication"]
    assert out.count("Size     : 1024") == 2 and "Key label: alice-key" in out
    assert "% Public key alice-key (2048 bits) imported: user admin can log in with it" in out
    assert "Do you really want to remove these keys ?? [yes/no]: yes" in out
    assert out[-1] == "% RSA key pair ukey does not exist"
    with agent.connect() as m:
        keys = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><key/></crypto>')).data_ele
    labels = keys.xpath("c:crypto/c:key/c:rsa/c:label/text()", namespaces=NS)
    assert "ukey" not in labels and "the_default" in labels
    assert keys.xpath("c:crypto/c:key/c:authentication/c:rsa/c:label/text()", namespaces=NS) == ["alice-key"]


def test_public_key_login_and_known_hosts(agent: AgentProcess, tmp_path: Path) -> None:
    import paramiko

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "id_rsa"
    key_file.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                               serialization.NoEncryption()))
    ssh_line = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                 serialization.PublicFormat.OpenSSH).decode()
    done = run_cli(agent, tmp_path, stdin=script("crypto key import authentication rsa admin-key", ssh_line, ""))
    assert done.returncode == 0, done.stdout + done.stderr

    transport = paramiko.Transport(("127.0.0.1", agent.port))
    try:
        transport.start_client(timeout=30)
        host_key = transport.get_remote_server_key()
    finally:
        transport.close()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{agent.port} {host_key.get_name()} {host_key.get_base64()}\n")

    done = run_cli(agent, tmp_path, "--key", str(key_file), "--known-hosts", str(known_hosts),
                   "-c", "show crypto key authentication rsa admin-key", CA_AGENT_PASSWORD="")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Key label: admin-key\n")

    other = paramiko.RSAKey.generate(1024)
    known_hosts.write_text(f"[127.0.0.1]:{agent.port} ssh-rsa {other.get_base64()}\n")
    done = run_cli(agent, tmp_path, "--known-hosts", str(known_hosts), "-c", "show runn")
    assert done.returncode == 3 and "does not match" in done.stderr
    known_hosts.write_text("")
    done = run_cli(agent, tmp_path, "--known-hosts", str(known_hosts), "-c", "show runn")
    assert done.returncode == 3 and "has no host key for 127.0.0.1" in done.stderr
