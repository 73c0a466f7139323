"""What the router's messages promise, kept: zeroize removes the certificates of the keys, a regenerated key
shows "Key mismatch", a failed background enrollment stays visible with why and when, and cancel-enroll and
clear say what they did. ca-cli in a pty or one-shot, a real agent, the lab CA as its own process."""

from __future__ import annotations

import re
from pathlib import Path

from cli_e2e_helpers import CHALLENGE, Cli, run_cli
from lxml import etree

from agentproc import AgentProcess
from labcaproc import LabCaProcess
from rawnetconf import wait_until

CRYPTO = "urn:ca-agent:yang:crypto"
NS = {"c": CRYPTO}
FAST = ["--retry-period-unit", "0.2"]


def script(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def request_state(agent: AgentProcess, name: str) -> str | None:
    with agent.connect() as m:
        data = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><ca/></crypto>')).data_ele
    found = data.xpath(f"c:crypto/c:ca/c:trustpoint[c:name='{name}']/c:enrollment/c:request/c:state/text()",
                       namespaces=NS)
    return found[0] if found else None


def enrolled(agent: AgentProcess, tmp_path: Path, lab: LabCaProcess, tp: str, key: str) -> None:
    """Generate ``key`` (1024 bits, quick), configure trustpoint ``tp`` on it, authenticate, enroll."""
    done = run_cli(agent, tmp_path, stdin=script(
        f"crypto key generate rsa {key}", "1024",
        "configure", f"crypto ca trustpoint {tp}", f"enrollment url {lab.url}", f"rsakeypair {key}", "commit", "end",
        f"crypto ca authenticate {tp}", "yes", f"crypto ca enroll {tp}", CHALLENGE, CHALLENGE,
    ))
    assert done.returncode == 0 and "% Certificate received from the CA and installed" in done.stdout, done.stdout


def test_regenerate_then_zeroize_a_label_and_zeroize_all(
    agent: AgentProcess, lab_ca: LabCaProcess, tmp_path: Path, cli_factory
) -> None:
    enrolled(agent, tmp_path, lab_ca, "myca", "mykey")
    enrolled(agent, tmp_path, lab_ca, "other", "otherkey")
    cli: Cli = cli_factory(agent)

    # regenerate mykey: the warning names the trustpoint using it; its certificate then shows Key mismatch
    cli.send("crypto key generate rsa mykey")
    cli.answer("Do you really want to replace them? [yes/no]: ", "yes")
    cli.answer("How many bits in the modulus [2048]: ", "1024")
    dialog = cli.wait_prompt()
    assert dialog[:3] == [
        "The name for the keys will be: mykey",
        "% You already have keys defined for mykey",
        "% Trustpoint(s) myca use these keys: their router certificates will not match the new keys "
        "(Key mismatch) until you enroll again.",
    ]
    assert cli.run("show crypto ca certificates myca | include Status") == ["Status        :Key mismatch"]
    assert cli.run("show crypto ca certificates other | include Status") == ["Status        :Available"]
    agent.log_until("trustpoint(s) myca certify the old keys (Key mismatch) until re-enrolled")

    # re-enroll: available again; zeroize mykey: its certificate goes with it, as the warning says
    cli.send("crypto ca enroll myca")
    cli.answer("Password: ", CHALLENGE)
    cli.answer("Re-enter Password: ", CHALLENGE)
    assert any(line.startswith("% Certificate received from the CA") for line in cli.wait_prompt())
    serial = cli.run("show crypto ca certificates myca | include ^Serial")[0].split(":")[1]
    cli.send("crypto key zeroize rsa mykey")
    cli.answer("Do you really want to remove these keys ?? [yes/no]: ", "yes")
    out = cli.wait_prompt()
    assert out[:2] == ["% Keys to be removed are named mykey",
                       "% All router certs issued using these keys will also be removed."]
    assert out[-2:] == ["% Keys removed: mykey",
                        f"% Router certificate of trustpoint myca (General Purpose, serial number {serial}) removed"]
    assert cli.run("show crypto ca certificates myca | include Router|Status") == []
    assert cli.run("show crypto ca certificates other | count Router certificate") == [
        "Number of lines which match regexp = 1"]

    # zeroize all: every certificate of every key goes
    cli.send("crypto key zeroize rsa")
    cli.answer("Do you really want to remove these keys ?? [yes/no]: ", "yes")
    out = cli.wait_prompt()
    assert out[:2] == ["% All keys will be removed.", "% All router certs issued using these keys will also be removed."]
    assert out[-1].startswith("% Router certificate of trustpoint other (General Purpose, serial number ")
    assert cli.run("show crypto ca certificates | count Router certificate") == ["Number of lines which match regexp = 0"]
    assert cli.close() == 0


def test_rejected_and_timed_out_enrollments_stay_visible(agent_factory, tmp_path: Path, cli_factory) -> None:
    agent = agent_factory(args=FAST).start()
    lab = LabCaProcess(tmp_path / "manual-ca", "--manual-approval").start()
    try:
        done = run_cli(agent, tmp_path, stdin=script(
            "configure",
            "crypto ca trustpoint rejected", f"enrollment url {lab.url}", "enrollment retry count 100", "exit",
            "crypto ca trustpoint slow", f"enrollment url {lab.url}", "enrollment retry count 2", "end", "yes",
            "crypto ca authenticate rejected", "yes", "crypto ca authenticate slow", "yes",
            "crypto ca enroll rejected", "", "",
        ))
        txid = re.search(r"pending \(transaction ID (\S+)\)\.", done.stdout)
        assert done.returncode == 0 and txid, done.stdout + done.stderr
        lab.command("reject", txid.group(1))
        wait_until(lambda: request_state(agent, "rejected") == "rejected", 60, "the agent to see the rejection")
        done = run_cli(agent, tmp_path, stdin=script("crypto ca enroll slow", "", ""))
        assert done.returncode == 0
        wait_until(lambda: request_state(agent, "slow") == "timed-out", 60, "the retry count to run out")

        cli: Cli = cli_factory(agent)
        out = cli.run("show crypto ca certificates rejected | begin Router")
        assert out[:4] == ["Router certificate", "Key usage      :General Purpose", "Status        :Rejected",
                           "Reason         :CA rejected the request (badRequest): rejected by the CA administrator"]
        assert re.fullmatch(r"Rejected at    :\d\d:\d\d:\d\d UTC \w{3} \w{3} \d+ \d{4}", out[4])
        assert out[5] == f"Transaction ID :{txid.group(1)}"
        out = cli.run("show crypto ca certificates slow | begin Router")
        assert out[2:4] == [
            "Status        :Timed out",
            "Reason         :the CA still held the request pending after 2 polls (the retry count): have the CA "
            "administrator approve it, then enroll again",
        ]
        assert out[4].startswith("Timed out at   :")
        agent.log_until(
            "trustpoint rejected: rejected: CA rejected the request (badRequest): rejected by the CA administrator")
        log = agent.log_until("trustpoint slow: timed-out: the CA still held the request pending after 2 polls")
        assert "challenge password" not in log
        assert cli.close() == 0
    finally:
        lab.stop()


def test_cancel_enroll_and_clear_say_what_they_did(agent: AgentProcess, tmp_path: Path) -> None:
    lab = LabCaProcess(tmp_path / "manual-ca", "--manual-approval").start()
    try:
        done = run_cli(agent, tmp_path, stdin=script(
            "configure", "crypto ca trustpoint myca", f"enrollment url {lab.url}", "end", "yes",
            "crypto ca authenticate myca", "yes", "crypto ca enroll myca", "", "",
        ))
        txid = re.search(r"pending \(transaction ID (\S+)\)\.", done.stdout)
        assert done.returncode == 0 and txid, done.stdout
        done = run_cli(agent, tmp_path, "-c", "crypto ca cancel-enroll myca")
        assert done.stdout == (f"% Enrollment request of trustpoint myca (General Purpose key, transaction ID "
                               f"{txid.group(1)}) cancelled\n")
        with agent.connect() as m:  # the RPC says it too
            m.dispatch(_rpc("ca-enroll", "myca"))
            reply = etree.fromstring(m.dispatch(_rpc("ca-cancel-enroll", "myca")).xml.encode())
        assert reply.xpath("//c:cancelled/c:key-usage/text()", namespaces=NS) == ["general-purpose"]
        assert reply.xpath("//c:cancelled/c:transaction-id/text()", namespaces=NS) == [txid.group(1)]

        done = run_cli(agent, tmp_path, "-c", "clear crypto ca certificates myca", "-c",
                       "clear crypto ca certificates myca", "-c", "clear crypto ca certificates")
        assert done.stdout.splitlines() == [
            "% Certificates of trustpoint myca cleared (CA, RA and router certificates)",
            "% Trustpoint myca has no certificates to clear",
            "% No certificates to clear",
        ]
    finally:
        lab.stop()


def _rpc(name: str, trustpoint: str) -> etree._Element:
    element = etree.Element(f"{{{CRYPTO}}}{name}", nsmap={None: CRYPTO})
    etree.SubElement(element, f"{{{CRYPTO}}}trustpoint").text = trustpoint
    return element
