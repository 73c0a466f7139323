"""A newcomer's first try, with nothing but the README: `ca-agent --lab-ca`, then `ca-cli` finding the admin
password in the data directory, the README's walkthrough typed in a pty, and cut-and-paste enrollment signed
by `ca-agent lab-ca sign`."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest
from cli_e2e_helpers import REPO, Cli, run_cli
from cryptography import x509

from agentproc import AgentProcess

PROMPT_LINE = re.compile(r"^(RP/0/RP0/CPU0:\S+#)(.*)$")
QUESTION_LINE = re.compile(r"^(.*(?:\]:|Password:))(.*)$")
README_URL = "http://127.0.0.1:8080/scep"
LAB_CA_URL = re.compile(r"lab CA: SCEP at (http://\S+)")


def readme_walkthrough() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- walkthrough:", 1)[1].split("<!-- end of walkthrough -->", 1)[0]
    lines = block.split("```", 2)[1].splitlines()[1:]  # the lines of the fenced block
    assert lines[0] == "$ ./ca-cli"
    return lines[1:]


@pytest.fixture
def first_start(agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> tuple[AgentProcess, str]:
    """The agent as the README starts it: ./ca-agent-data, --lab-ca, a password it makes up itself."""
    agent = agent_factory("ca-agent-data", env={"CA_AGENT_ADMIN_PASSWORD": ""},
                          args=["--lab-ca", "--lab-ca-port", "0"]).start()
    assert (tmp_path / "ca-agent-data" / "admin-password").is_file()
    found = LAB_CA_URL.search(agent.log_text())
    assert found, agent.log_text()
    return agent, found.group(1)


def test_the_readme_walkthrough_needs_nothing_else(first_start: tuple[AgentProcess, str], tmp_path: Path,
                                                    cli_factory) -> None:
    agent, url = first_start
    log = agent.log_text()
    assert f"lab CA: on a trustpoint: enrollment url {url}" in log
    assert f"ca-agent lab-ca sign --data-dir {tmp_path / 'ca-agent-data' / 'lab-ca'} < request.pem" in log
    # ca-cli from the directory the agent was started in, no password given: no question, the prompt at once
    cli = Cli(agent, tmp_path, cwd=tmp_path, password=False)
    try:
        steps = readme_walkthrough()
        last_output: list[str] = []
        expected_output: list[str] = []
        waiting = False
        for line in steps:
            command = PROMPT_LINE.match(line)
            question = QUESTION_LINE.match(line)
            if command:
                if waiting:
                    last_output = cli.wait_prompt()
                assert cli.prompt == command.group(1), f"README prompt {command.group(1)} != {cli.prompt}"
                if command.group(2) == "exit":
                    cli.child.sendline("exit")
                    break
                cli.send(command.group(2).replace(README_URL, url))
                waiting, expected_output = True, []
            elif question:
                answer = question.group(2) if not question.group(1).endswith("Password:") else "any-password"
                cli.answer(question.group(1), answer)
            else:
                expected_output.append(line)
        # the last show, with its output modifier, prints exactly what the README shows
        assert [out.rstrip() for out in last_output] == expected_output
        cli.child.expect(pexpect.EOF)
    finally:
        cli.child.close()
    agent.log_until("certificate enrollment for trustpoint myca: issued")


def test_cut_and_paste_signed_by_lab_ca_sign(first_start: tuple[AgentProcess, str], tmp_path: Path) -> None:
    agent, _ = first_start
    lab_dir = tmp_path / "ca-agent-data" / "lab-ca"
    ca_pem = (lab_dir / "ca.pem").read_text()
    done = run_cli(agent, tmp_path, cwd=tmp_path, CA_AGENT_PASSWORD="", stdin="\n".join([
        "crypto key generate rsa mykey", "1024",
        "configure", "crypto ca trustpoint paste", "enrollment terminal", "rsakeypair mykey", "end", "yes",
        "crypto ca authenticate paste", *ca_pem.splitlines(), "", "yes",
        "crypto ca enroll paste", "", "",
    ]) + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    request = re.search(r"-----BEGIN CERTIFICATE REQUEST-----.*?-----END CERTIFICATE REQUEST-----", done.stdout,
                        re.S)
    assert request, done.stdout

    signed = subprocess.run([sys.executable, "-m", "agent", "lab-ca", "sign", "--data-dir", str(lab_dir)],
                            input=request.group(0), capture_output=True, text=True, timeout=60, check=True)
    cert = x509.load_pem_x509_certificate(signed.stdout.encode())
    assert signed.stderr.startswith(f"lab-ca: issued serial {cert.serial_number:02X} to ")
    done = run_cli(agent, tmp_path, cwd=tmp_path, CA_AGENT_PASSWORD="", stdin="\n".join([
        "crypto ca import paste certificate", *signed.stdout.splitlines(), "",
        "show crypto ca certificates paste | include Status|Serial Number  :",
    ]) + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "% Router Certificate successfully imported" in done.stdout
    assert done.stdout.splitlines()[-2:] == ["Status        :Available", f"Serial Number  :{cert.serial_number:02X}"]

    # the request from a file works too; what is not a request is refused in words
    (tmp_path / "req.pem").write_text(request.group(0))
    again = subprocess.run([sys.executable, "-m", "agent", "lab-ca", "sign", str(tmp_path / "req.pem"),
                            "--data-dir", str(lab_dir)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "BEGIN CERTIFICATE" in again.stdout
    bad = subprocess.run([sys.executable, "-m", "agent", "lab-ca", "sign", "--data-dir", str(lab_dir)],
                         input="not a request", capture_output=True, text=True, timeout=60)
    assert (bad.returncode, bad.stderr) == (1, "lab-ca: that is not a PKCS#10 certificate request (PEM or DER)\n")


def test_the_password_file_is_only_for_admin_on_this_host(first_start: tuple[AgentProcess, str],
                                                          tmp_path: Path) -> None:
    agent, _ = first_start
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_cli(agent, tmp_path, "-c", "show running-config hostname", cwd=elsewhere, CA_AGENT_PASSWORD="")
    assert (done.returncode, done.stderr) == (
        2, "% No password: set $CA_AGENT_PASSWORD, or --data-dir of an agent on this host (stdin is not a terminal)\n")
    done = run_cli(agent, tmp_path, "--data-dir", str(tmp_path / "ca-agent-data"), "-c", "show running-config username",
                   cwd=elsewhere, CA_AGENT_PASSWORD="")
    assert done.returncode == 0 and done.stdout.startswith("username admin\n")
    done = run_cli(agent, tmp_path, "--user", "other", "-c", "show runn", cwd=tmp_path, CA_AGENT_PASSWORD="")
    assert done.returncode == 2  # another user: the admin password is not tried


def test_a_taken_lab_ca_port_is_reported(agent_factory: Callable[..., AgentProcess]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        agent = agent_factory(args=["--lab-ca", "--lab-ca-port", str(port)])
        with pytest.raises(RuntimeError):
            agent.start()
    assert f"cannot start the lab CA on 127.0.0.1 port {port}" in agent.log_text()
    assert "choose another with --lab-ca-port" in agent.log_text()
