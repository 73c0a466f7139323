"""Issue 4 end to end: ca-authenticate / ca-enroll over NETCONF against real CAs.

micromdm scepserver (a CA no one here wrote; needs the private network
namespace of tests/netns_run.sh) and the lab CA run as `ca-agent lab-ca`.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree
from ncclient.operations import RPCError

from agentproc import AgentProcess
from labcaproc import LabCaProcess
from rawnetconf import wait_until

CRYPTO = "urn:ca-agent:yang:crypto"
SYS = "urn:ca-agent:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = {"c": CRYPTO, "s": SYS}
FAST = ["--retry-period-unit", "0.2"]  # one 'minute' of retry period = 0.2 s, so polling is testable


def rpc(m, name: str, body: str = "") -> etree._Element:
    reply = m.dispatch(etree.fromstring(f'<{name} xmlns="{CRYPTO}">{body}</{name}>'))
    return etree.fromstring(reply.xml.encode())


def configure(m, xml: str) -> None:
    m.edit_config(target="candidate", config=f'<config xmlns="{NC}">{xml}</config>')
    m.commit()


def trustpoint(name: str, url: str, extra: str = "", label: str = "mykey") -> str:
    return (
        f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>{name}</name>'
        f"<enrollment><url>{url}</url>{extra}</enrollment><rsakeypair>{label}</rsakeypair>"
        f"</trustpoint></ca></crypto>"
    )


def tp_state(m, name: str) -> etree._Element:
    data = m.get(filter=("xpath", f"/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='{name}']")).data_ele
    return data.find("c:crypto/c:ca/c:trustpoint", NS)


def cert_status(m, name: str, usage: str = "general-purpose") -> str | None:
    state = tp_state(m, name)
    for cert in state.findall("c:certificate", NS):
        if cert.findtext("c:key-usage", namespaces=NS) == usage:
            return cert.findtext("c:status", namespaces=NS)
    return None


def request_state(m, name: str, usage: str = "general-purpose") -> etree._Element | None:
    for req in tp_state(m, name).findall("c:enrollment/c:request", NS):
        if req.findtext("c:key-usage", namespaces=NS) == usage:
            return req
    return None


def openssl_verify(ca_pem: Path, cert_pem: str, tmp_path: Path) -> None:
    leaf_file = tmp_path / f"leaf-{secrets.token_hex(4)}.pem"
    leaf_file.write_text(cert_pem)
    done = subprocess.run(["openssl", "verify", "-CAfile", str(ca_pem), str(leaf_file)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# -- micromdm scepserver ---------------------------------------------------------


def test_scepserver_authenticate_enroll_general_then_usage_keys(scepserver, agent: AgentProcess, tmp_path: Path) -> None:
    cn = f"r-{secrets.token_hex(4)}"
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>2048</modulus>")
        configure(m, trustpoint("myca", scepserver.url))
        configure(m, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>myca</name><subject-name>CN={cn},O=Example</subject-name></trustpoint></ca></crypto>')
        shown = rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint>")
        assert shown.findtext("c:installed", namespaces=NS) == "false"  # "Do you accept this certificate?" - not yet
        assert tp_state(m, "myca").find("c:ca-certificate", NS) is None
        ca = x509.load_pem_x509_certificate(scepserver.ca_pem.read_bytes())
        assert "Test CA" in shown.findtext("c:subject", namespaces=NS)
        fingerprint = shown.findtext("c:fingerprint", namespaces=NS)
        spaced = ":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2)).lower()
        installed = rpc(m, "ca-authenticate", f"<trustpoint>myca</trustpoint><fingerprint>{spaced}</fingerprint>")
        assert installed.findtext("c:installed", namespaces=NS) == "true"
        serial = format(ca.serial_number, "X")
        assert installed.findtext("c:serial-number", namespaces=NS) == serial.rjust(len(serial) + len(serial) % 2, "0")
        assert tp_state(m, "myca").find("c:ca-certificate", NS) is not None

        out = rpc(m, "ca-enroll", f"<trustpoint>myca</trustpoint><challenge-password>{scepserver.challenge}</challenge-password>")
        assert out.findtext("c:status", namespaces=NS) == "issued", etree.tostring(out).decode()
        cert = tp_state(m, "myca").find("c:certificate", NS)
        assert cert.findtext("c:key-usage", namespaces=NS) == "general-purpose"
        assert cert.findtext("c:status", namespaces=NS) == "available"
        assert cn in cert.findtext("c:subject", namespaces=NS)
        openssl_verify(scepserver.ca_pem, cert.findtext("c:pem", namespaces=NS), tmp_path)

        # usage keys: two certificates, signature and encryption
        rpc(m, "key-generate-rsa", "<label>mykey</label><usage-keys/><modulus>2048</modulus><replace>true</replace>")
        configure(m, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>myca</name><subject-name>CN={cn}-u,O=Example</subject-name></trustpoint></ca></crypto>')
        out = rpc(m, "ca-enroll", f"<trustpoint>myca</trustpoint><challenge-password>{scepserver.challenge}</challenge-password>")
        assert out.findtext("c:status", namespaces=NS) == "issued", etree.tostring(out).decode()
        usages = sorted(out.xpath("c:request/c:key-usage/text()", namespaces=NS))
        assert usages == ["encryption", "signature"]
        certs = {c.findtext("c:key-usage", namespaces=NS): c for c in tp_state(m, "myca").findall("c:certificate", NS)}
        assert {u: c.findtext("c:status", namespaces=NS) for u, c in certs.items() if u != "general-purpose"} == {
            "signature": "available",
            "encryption": "available",
        }
        for usage in ("signature", "encryption"):
            openssl_verify(scepserver.ca_pem, certs[usage].findtext("c:pem", namespaces=NS), tmp_path)


def test_scepserver_wrong_challenge_is_rejected_clearly(scepserver, agent: AgentProcess) -> None:
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        configure(m, trustpoint("myca", scepserver.url))
        configure(m, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>myca</name><subject-name>CN=w-{secrets.token_hex(4)}</subject-name></trustpoint></ca></crypto>')
        rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint><accept/>")
        out = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>wrong-password</challenge-password>")
        assert out.findtext("c:status", namespaces=NS) == "failed"
        message = out.findtext("c:message", namespaces=NS)
        assert "badRequest" in message or "rejected" in message.lower()
        assert "wrong-password" not in message
        assert cert_status(m, "myca") != "available"


# -- the lab CA ------------------------------------------------------------------


@pytest.fixture
def lab_ca_process(tmp_path: Path):
    made: list[LabCaProcess] = []

    def start(*options: str) -> LabCaProcess:
        proc = LabCaProcess(tmp_path / f"lab-ca-{len(made)}", *options).start()
        made.append(proc)
        return proc

    yield start
    for proc in made:
        proc.stop()


def test_lab_ca_pending_approve_poll_available(lab_ca_process, agent_factory, tmp_path: Path) -> None:
    lab = lab_ca_process("--challenge", "pw1", "--manual-approval")
    agent = agent_factory(args=FAST).start()
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        configure(m, trustpoint("myca", lab.url, "<retry><period>1</period><count>100</count></retry>"))
        rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint><accept/>")
        out = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>pw1</challenge-password>")
        assert out.findtext("c:status", namespaces=NS) == "pending"
        txid = out.findtext("c:transaction-id", namespaces=NS)
        assert cert_status(m, "myca") == "pending"
        req = request_state(m, "myca")
        assert req.findtext("c:state", namespaces=NS) == "pending"
        assert req.findtext("c:transaction-id", namespaces=NS) == txid
        assert req.findtext("c:next-poll", namespaces=NS)
    # the client is gone; the agent keeps polling on its own
    assert txid in lab.command("list")
    lab.command("approve", txid)
    with agent.connect() as m:
        wait_until(lambda: cert_status(m, "myca") == "available", 30, "the background poll to install the certificate")
        req = request_state(m, "myca")
        assert req.findtext("c:state", namespaces=NS) == "issued"
        assert int(req.findtext("c:attempts", namespaces=NS)) >= 2
        openssl_verify(lab.ca_pem, tp_state(m, "myca").findtext("c:certificate/c:pem", namespaces=NS), tmp_path)


def test_lab_ca_pending_survives_agent_restart(lab_ca_process, agent_factory) -> None:
    lab = lab_ca_process("--challenge", "pw2", "--manual-approval")
    agent = agent_factory()  # minutes: no background poll will come during this test
    agent.start()
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        configure(m, trustpoint("myca", lab.url))
        rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint><accept/>")
        out = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>pw2</challenge-password>")
        txid = out.findtext("c:transaction-id", namespaces=NS)
        assert out.findtext("c:status", namespaces=NS) == "pending"
    agent.stop()
    lab.command("approve", txid)
    agent.start()
    with agent.connect() as m:
        assert request_state(m, "myca").findtext("c:state", namespaces=NS) == "pending"
        # calling ca-enroll again polls at once with the same transaction id
        out = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>pw2</challenge-password>")
        assert out.findtext("c:status", namespaces=NS) == "issued", etree.tostring(out).decode()
        assert out.findtext("c:transaction-id", namespaces=NS) == txid
        assert cert_status(m, "myca") == "available"


def test_lab_ca_restart_then_background_poll(lab_ca_process, agent_factory) -> None:
    lab = lab_ca_process("--challenge", "pw3", "--manual-approval")
    agent = agent_factory(args=FAST).start()
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        configure(m, trustpoint("myca", lab.url, "<retry><period>1</period><count>100</count></retry>"))
        rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint><accept/>")
        txid = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>pw3</challenge-password>").findtext(
            "c:transaction-id", namespaces=NS
        )
    agent.kill9()
    lab.command("approve", txid)
    agent.start()
    with agent.connect() as m:
        wait_until(lambda: cert_status(m, "myca") == "available", 30, "polling resumed after the restart")


def test_lab_ca_retry_count_exhausted_times_out(lab_ca_process, agent_factory) -> None:
    lab = lab_ca_process("--challenge", "pw4", "--manual-approval")
    agent = agent_factory(args=["--retry-period-unit", "0.05"]).start()
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        configure(m, trustpoint("myca", lab.url, "<retry><period>1</period><count>3</count></retry>"))
        rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint><accept/>")
        rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>pw4</challenge-password>")

        def timed_out() -> bool:
            req = request_state(m, "myca")
            return req is not None and req.findtext("c:state", namespaces=NS) == "timed-out"

        wait_until(timed_out, 30, "the timeout state")
        req = request_state(m, "myca")
        assert int(req.findtext("c:attempts", namespaces=NS)) == 4  # the request and 3 polls
        assert "3 polls" in req.findtext("c:last-error", namespaces=NS)


def test_lab_ca_reject_and_cancel(lab_ca_process, agent_factory) -> None:
    lab = lab_ca_process("--challenge", "pw5", "--manual-approval")
    agent = agent_factory().start()
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        configure(m, trustpoint("myca", lab.url))
        rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint><accept/>")
        txid = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>pw5</challenge-password>").findtext(
            "c:transaction-id", namespaces=NS
        )
        lab.command("reject", txid)
        out = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>pw5</challenge-password>")
        assert out.findtext("c:status", namespaces=NS) == "failed"
        assert request_state(m, "myca").findtext("c:state", namespaces=NS) == "rejected"
        # a new request, then cancelled
        out = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>pw5</challenge-password>")
        assert out.findtext("c:status", namespaces=NS) == "pending"
        rpc(m, "ca-cancel-enroll", "<trustpoint>myca</trustpoint>")
        assert request_state(m, "myca") is None
        with pytest.raises(RPCError) as nothing:
            rpc(m, "ca-cancel-enroll", "<trustpoint>myca</trustpoint>")
        assert nothing.value.tag == "data-missing"


def test_lab_ca_ra_mode(lab_ca_process, agent: AgentProcess, tmp_path: Path) -> None:
    lab = lab_ca_process("--challenge", "pw6", "--ra")
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        configure(m, trustpoint("myca", lab.url))
        out = rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint><accept/>")
        assert out.findtext("c:ra-certificates", namespaces=NS) == "1"
        ra = tp_state(m, "myca").find("c:ra-certificate", NS)
        assert set(ra.xpath("c:usage/text()", namespaces=NS)) == {"signing", "encryption"}
        out = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>pw6</challenge-password>")
        assert out.findtext("c:status", namespaces=NS) == "issued"
        openssl_verify(lab.ca_pem, tp_state(m, "myca").findtext("c:certificate/c:pem", namespaces=NS), tmp_path)


def test_errors_unknown_trustpoint_and_unauthenticated_ca(lab_ca_process, agent: AgentProcess) -> None:
    lab = lab_ca_process("--challenge", "pw7")
    with agent.connect() as m:
        with pytest.raises(RPCError) as unknown:
            rpc(m, "ca-authenticate", "<trustpoint>nosuch</trustpoint>")
        assert unknown.value.tag == "data-missing"
        assert unknown.value.path.strip() == "/crypto:ca-authenticate/crypto:trustpoint"
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        configure(m, trustpoint("myca", lab.url))
        with pytest.raises(RPCError) as first:
            rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>pw7</challenge-password>")
        assert "authenticate" in first.value.message
        with pytest.raises(RPCError) as mismatch:
            rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint><fingerprint>00112233445566778899AABBCCDDEEFF</fingerprint>")
        assert mismatch.value.tag == "invalid-value" and "fingerprint" in mismatch.value.message


def test_deleting_trustpoint_removes_its_certificates(lab_ca_process, agent: AgentProcess) -> None:
    lab = lab_ca_process("--challenge", "pw8")
    with agent.connect() as m:
        rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        configure(m, trustpoint("myca", lab.url))
        rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint><accept/>")
        rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>pw8</challenge-password>")
        assert cert_status(m, "myca") == "available"
        assert any((agent.data_dir / "trustpoints" / "myca").iterdir())
        configure(m, trustpoint("other", lab.url))
        rpc(m, "ca-authenticate", "<trustpoint>other</trustpoint><accept/>")
        configure(m, trustpoint("bare", lab.url))  # never authenticated: no files
        gone = "".join(f'<trustpoint nc:operation="delete"><name>{name}</name></trustpoint>'
                       for name in ("myca", "other", "bare"))
        m.edit_config(
            target="candidate",
            config=f'<config xmlns="{NC}" xmlns:nc="{NC}"><crypto xmlns="{CRYPTO}"><ca>{gone}</ca></crypto></config>',
        )
        m.commit()
        # The backend applies a commit once its reply is sent, before the next request is answered.
        m.get_config("running")
        for name in ("myca", "other", "bare"):
            assert not (agent.data_dir / "trustpoints" / name).exists()
        configure(m, trustpoint("myca", lab.url))
        state = tp_state(m, "myca")
        assert state.find("c:ca-certificate", NS) is None and state.find("c:certificate", NS) is None


def test_seed_configuration_example(lab_ca_process, agent: AgentProcess, tmp_path: Path) -> None:
    """The seed's whole 'Configuration Example', step by step, against the lab CA."""
    lab = lab_ca_process("--challenge", "seed-challenge")
    with agent.connect() as m:
        # configure / hostname myrouter / domain name mydomain.com / end -> yes
        configure(m, f'<hostname xmlns="{SYS}">myrouter</hostname><domain xmlns="{SYS}"><name>mydomain.com</name></domain>')
        # crypto key generate rsa mykey  (default modulus)
        out = rpc(m, "key-generate-rsa", "<label>mykey</label>")
        assert out.findtext("c:size", namespaces=NS) == "2048"
        # show crypto key mypubkey rsa
        keys = m.get(filter=("xpath", "/crypto:crypto/crypto:key/crypto:rsa[crypto:label='mykey']")).data_ele
        assert keys.findtext(".//c:type", namespaces=NS) == "general-purpose"
        # crypto ca trustpoint myca / enrollment url / retry count 25 / retry period 2 / rsakeypair mykey / end
        configure(m, trustpoint("myca", lab.url, "<retry><count>25</count><period>2</period></retry>"))
        cfg = m.get_config("running").data_ele.find("c:crypto/c:ca/c:trustpoint", NS)
        assert cfg.findtext("c:enrollment/c:retry/c:count", namespaces=NS) == "25"
        assert cfg.findtext("c:enrollment/c:retry/c:period", namespaces=NS) == "2"
        # crypto ca authenticate myca -> shown; "Do you accept this certificate?? [yes/no]:yes"
        shown = rpc(m, "ca-authenticate", "<trustpoint>myca</trustpoint>")
        for field in ("serial-number", "subject", "issuer", "valid-from", "valid-to", "fingerprint-md5"):
            assert shown.findtext(f"c:{field}", namespaces=NS)
        rpc(m, "ca-authenticate", f"<trustpoint>myca</trustpoint><fingerprint>{shown.findtext('c:fingerprint-md5', namespaces=NS)}</fingerprint>")
        # crypto ca enroll myca (challenge password)
        out = rpc(m, "ca-enroll", "<trustpoint>myca</trustpoint><challenge-password>seed-challenge</challenge-password>")
        assert out.findtext("c:status", namespaces=NS) == "issued"
        assert len(out.findtext("c:request/c:fingerprint", namespaces=NS)) == 32  # MD5, as the router prints
        # show crypto ca certificates
        state = tp_state(m, "myca")
        ca = state.find("c:ca-certificate", NS)
        assert ca.findtext("c:subject", namespaces=NS) == ca.findtext("c:issuer", namespaces=NS)
        router = state.find("c:certificate", NS)
        assert router.findtext("c:key-usage", namespaces=NS) == "general-purpose"
        assert router.findtext("c:status", namespaces=NS) == "available"
        assert router.findtext("c:subject", namespaces=NS) == "unstructuredName=myrouter.mydomain.com"
        assert router.findtext("c:issuer", namespaces=NS) == ca.findtext("c:subject", namespaces=NS)
        assert router.findtext("c:crl-distribution-point", namespaces=NS).startswith("http://127.0.0.1")
        for field in ("serial-number", "valid-from", "valid-to"):
            assert router.findtext(f"c:{field}", namespaces=NS)
        openssl_verify(lab.ca_pem, router.findtext("c:pem", namespaces=NS), tmp_path)
        session_id = m.session_id
    # the challenge password appears nowhere in the data dir or the logs (all of the session's lines, up to its end)
    needle = b"seed-challenge"
    for path in agent.data_dir.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), path
    assert "seed-challenge" not in agent.log_until(f"session {session_id} closed")
