"""The seed's "Configuring Certification Authority Interoperability: Example", typed into ca-cli in a pty.

Real agent, lab CA as its own process; every output block is compared with
the seed's field by field (labels, order, layout), values with the agent's
state over NETCONF.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pexpect
from cli_e2e_helpers import CHALLENGE, Cli, run_cli
from cli_seed_text import (
    SEED_AUTHENTICATE,
    SEED_CERTIFICATES,
    SEED_ENROLL,
    SEED_MYPUBKEY,
    SEED_REGENERATE_DIALOG,
    fields,
    skeleton,
)
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from agentproc import AgentProcess
from labcaproc import LabCaProcess

CRYPTO = "urn:ca-agent:yang:crypto"
NS = {"c": CRYPTO}
P = "RP/0/RP0/CPU0:"


def blocks(lines: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for line in lines:
        if line:
            out[-1].append(line)
        elif out[-1]:
            out.append([])
    return [b for b in out if b]


def test_seed_configuration_example(agent: AgentProcess, lab_ca: LabCaProcess, cli_factory) -> None:
    cli: Cli = cli_factory(agent)
    assert cli.prompt == f"{P}router#"

    # configure / hostname myrouter / domain name mydomain.com / end -> commit them? yes
    assert cli.run("configure") == []
    assert cli.prompt == f"{P}router(config)#"
    assert cli.run("hostname myrouter") == []
    assert cli.run("domain name mydomain.com") == []
    cli.send("end")
    cli.answer("Uncommitted changes found, commit them? [yes]:", "yes")
    assert cli.wait_prompt() == ["Uncommitted changes found, commit them? [yes]:yes"]
    assert cli.prompt == f"{P}myrouter#"

    # crypto key generate rsa mykey (the default modulus, as in the seed)
    cli.send("crypto key generate rsa mykey")
    cli.answer("How many bits in the modulus [2048]:", "")
    dialog = [line.rstrip() for line in cli.wait_prompt()]
    seed_dialog = [line.replace("512 to 4096", "1024 to 4096") for line in SEED_REGENERATE_DIALOG]
    assert dialog == [seed_dialog[0], *seed_dialog[3:]]  # a new label: no replace question

    # show crypto key mypubkey rsa: the mykey block has the seed's fields, in order
    output = cli.run("show crypto key mypubkey rsa")
    mykey = next(b for b in blocks(output) if b[0] == "Key label: mykey")
    assert skeleton(mykey, exact_spacing=False) == skeleton(SEED_MYPUBKEY, exact_spacing=False)
    assert [label for label, _ in fields(mykey)] == [label for label, _ in fields(SEED_MYPUBKEY)]
    assert dict(fields(mykey))["Size"] == "2048" and dict(fields(mykey))["Type"] == "RSA General purpose"
    with agent.connect() as m:
        state = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><key/></crypto>')).data_ele
        der = state.xpath("c:crypto/c:key/c:rsa[c:label='mykey']/c:key-pair/c:public-key/text()", namespaces=NS)[0]
    assert "".join("".join(line.split()) for line in mykey[5:]) == der

    # configure / crypto ca trustpoint myca / ... / rsaakeypair mykey (sic) / end -> yes
    cli.run("configure")
    assert cli.run("crypto ca trustpoint myca") == []
    assert cli.prompt == f"{P}myrouter(config-trustp)#"
    for line in (f"enrollment url {lab_ca.url}", "enrollment retry count 25", "enrollment retry period 2",
                 "rsaakeypair mykey"):
        assert cli.run(line) == [], line
    cli.send("end")
    cli.answer("Uncommitted changes found, commit them? [yes]:", "yes")
    cli.wait_prompt()
    assert cli.prompt == f"{P}myrouter#"
    assert cli.run("show running-config crypto ca trustpoint myca") == [
        "crypto ca trustpoint myca",
        f" enrollment url {lab_ca.url}",
        " enrollment retry count 25",
        " enrollment retry period 2",
        " rsakeypair mykey",
        "!",
    ]

    # crypto ca authenticate myca -> the seed's block, the lab CA's MD5 fingerprint, accepted
    cli.send("crypto ca authenticate myca")
    cli.answer("Do you accept this certificate?? [yes/no]:", "yes")
    shown = cli.wait_prompt()
    assert skeleton(shown) == skeleton(SEED_AUTHENTICATE)
    ca_cert = x509.load_pem_x509_certificate(lab_ca.ca_pem.read_bytes())
    md5 = hashlib.md5(ca_cert.public_bytes(Encoding.DER)).hexdigest().upper()
    assert shown[7] == "Fingerprint:" + " ".join(md5[i : i + 2] for i in range(0, 32, 2))
    assert shown[0] == f"Serial Number :{ca_cert.serial_number:02X}"

    # crypto ca enroll myca -> the seed's lines, password twice without echo, the request fingerprint
    cli.send("crypto ca enroll myca")
    cli.answer("Password:", CHALLENGE)
    cli.answer("Re-enter Password:", CHALLENGE)
    enrolled = [line.rstrip() for line in cli.wait_prompt()]
    assert CHALLENGE not in "\n".join(enrolled)
    assert [line for line in enrolled if line][:8] == SEED_ENROLL[:7] + [enrolled[-2]]
    assert skeleton([enrolled[-2]]) == skeleton(SEED_ENROLL[-1:])
    assert enrolled[-1].startswith("% Certificate received from the CA and installed")

    # show crypto ca certificates -> the seed's block, layout exactly
    certificates = cli.run("show crypto ca certificates")
    assert skeleton(certificates) == skeleton(SEED_CERTIFICATES)
    values = dict(fields(certificates))
    with agent.connect() as m:
        tp = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><ca/></crypto>')).data_ele.find(
            "c:crypto/c:ca/c:trustpoint", NS)
    cert = tp.find("c:certificate", NS)
    assert cert.findtext("c:status", namespaces=NS) == "available"
    assert values["Serial Number"] == cert.findtext("c:serial-number", namespaces=NS)
    assert certificates[certificates.index("Subject Name   :") + 1].strip() == "unstructuredName=myrouter.mydomain.com"
    assert certificates[-1].strip() == cert.findtext("c:crl-distribution-point", namespaces=NS)

    assert cli.close() == 0


def test_help_completion_and_a_bad_command_in_the_shell(agent: AgentProcess, cli_factory) -> None:
    cli: Cli = cli_factory(agent)
    # `?` lists what is valid here and keeps the line
    cli.child.send("show ?")
    cli.child.expect_exact("  crypto          Crypto commands")
    cli.child.expect_exact("  running-config  Current operating configuration")
    # Tab completes the unique keyword; Enter runs the completed line
    cli.child.send("run\t")
    cli.child.expect_exact("running-config")
    cli.send("")
    assert cli.wait_prompt()[0] == "Building configuration..."
    # a typo: the marker under the word, the router's message, no traceback
    out = cli.run("show crypto ca certificatez")
    assert out == [" " * len(f"{P}router#show crypto ca ") + "^", "% Invalid input detected at '^' marker."]
    assert cli.run("show crypto") == ["% Incomplete command."]
    assert cli.run("c") == ['% Ambiguous command: "c"']
    # history: Up brings the last command back
    cli.child.send("\x1b[A")
    cli.child.expect_exact("c")
    cli.send("")
    assert cli.wait_prompt() == ['% Ambiguous command: "c"']
    assert cli.close() == 0


def test_a_dropped_connection_says_so_and_exits_non_zero(agent: AgentProcess, cli_factory) -> None:
    cli: Cli = cli_factory(agent)
    agent.kill9()
    cli.child.expect_exact("closed by foreign host")
    cli.child.expect(pexpect.EOF)
    cli.child.close()
    assert cli.child.exitstatus == 3
    assert "Traceback" not in cli.child.before


def test_wrong_password_and_no_agent(agent: AgentProcess, tmp_path: Path) -> None:
    done = run_cli(agent, tmp_path, "-c", "show runn", CA_AGENT_PASSWORD="wrong")
    assert (done.returncode, done.stderr) == (3, "% Authentication failed for user admin\n")
    agent.stop()
    done = run_cli(agent, tmp_path, "-c", "show runn")
    assert done.returncode == 3 and done.stderr.startswith("% Cannot connect to 127.0.0.1 port")
    assert "Traceback" not in done.stderr

