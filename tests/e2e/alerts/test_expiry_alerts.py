"""Issue 14 end to end: a real enrollment with the lab CA (short-lived certificates), then the alerts
arrive at a UDP syslog receiver and at Net-SNMP's snmptrapd; state, restart and ca-cli.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

from conftest import SyslogReceiver, TrapDaemon
from cryptography import x509
from lxml import etree

from agent.schema.model import ietf_yang_dirs

from agentproc import AgentProcess
from labcaproc import LabCaProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from cli_e2e_helpers import run_cli  # noqa: E402

CRYPTO = "urn:ca-agent:yang:crypto"
SYS = "urn:ca-agent:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = {"c": CRYPTO, "s": SYS}
CHALLENGE = "alert-challenge"
REPO = Path(__file__).resolve().parents[3]

PKI_MIB = ".1.3.6.1.4.1.9.9.854"
COLUMN = f"{PKI_MIB}.2.2.1.1"
TIME_LEFT = r"(\d+) days, (\d+) hours, (\d+) minutes, (\d+) seconds"


def rpc(m, name: str, body: str = "") -> etree._Element:
    reply = m.dispatch(etree.fromstring(f'<{name} xmlns="{CRYPTO}">{body}</{name}>'))
    return etree.fromstring(reply.xml.encode())


def configure(m, xml: str) -> None:
    m.edit_config(target="candidate", config=f'<config xmlns="{NC}">{xml}</config>')
    m.commit()


def alerts_config(syslog_port: int, trap_port: int | None, *, traps_pki: bool, syslog_format: str = "") -> str:
    fmt = f"<format>{syslog_format}</format>" if syslog_format else ""
    snmp = ""
    if trap_port is not None:
        traps = "<traps><pki/></traps>" if traps_pki else ""
        snmp = (
            f'<snmp-server xmlns="{SYS}"><host><address>127.0.0.1</address><port>{trap_port}</port>'
            f"<community>public</community></host>{traps}</snmp-server>"
        )
    return (
        f'<hostname xmlns="{SYS}">r1</hostname><domain xmlns="{SYS}"><name>example.com</name></domain>'
        f'<logging xmlns="{SYS}"><host><address>127.0.0.1</address><port>{syslog_port}</port>{fmt}</host></logging>'
        + snmp
    )


def enroll(m, name: str, url: str, label: str = "mykey") -> x509.Certificate:
    """Key pair, trustpoint, authenticate, enroll; returns the router certificate installed."""
    rpc(m, "key-generate-rsa", f"<label>{label}</label><modulus>1024</modulus><replace>true</replace>")
    configure(
        m,
        f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>{name}</name><enrollment><url>{url}</url></enrollment>'
        f"<rsakeypair>{label}</rsakeypair></trustpoint></ca></crypto>",
    )
    rpc(m, "ca-authenticate", f"<trustpoint>{name}</trustpoint><accept/>")
    out = rpc(m, "ca-enroll", f"<trustpoint>{name}</trustpoint><challenge-password>{CHALLENGE}</challenge-password>")
    assert out.findtext("c:status", namespaces=NS) == "issued", etree.tostring(out).decode()
    return x509.load_pem_x509_certificate(router_cert(m, name).findtext("c:pem", namespaces=NS).encode())


def router_cert(m, name: str) -> etree._Element:
    data = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><ca/></crypto>')).data_ele
    (cert,) = data.xpath(
        f"c:crypto/c:ca/c:trustpoint[c:name='{name}']/c:certificate[c:key-usage='general-purpose']", namespaces=NS
    )
    return cert


def seed_line(mode: str, tp: str, cert: x509.Certificate, ca: x509.Certificate) -> str:
    """The exact line expected (up to the time left), from the certificates themselves."""
    serial = f"{cert.serial_number:X}"
    serial = serial.rjust(len(serial) + len(serial) % 2, "0")
    colon = ":".join(serial[i : i + 2] for i in range(0, len(serial), 2))
    issuer = ca.subject.rfc4514_string()  # the lab CA's name: CN/O only, which RFC 4514 writes the router's way
    head = (
        "%SECURITY-CEPKI-1-CERT_EXPIRING_ALERT : Certificate expiring WITHIN A WEEK."
        if mode == "alert"
        else "%SECURITY-CEPKI-4-CERT_EXPIRING_WARNING : Certificate expiring WITHIN 60 DAYS."
    )
    return (
        f"{head} Trustpoint Name= {tp}, Certificate Type= ID, Serial Number= {colon}, "
        f"Issuer Name= {issuer}, Subject name= unstructuredName=r1.example.com, Time Left= "
    )


def yanglint_get(data: list[etree._Element], tmp_path: Path) -> None:
    path = tmp_path / "get.xml"
    path.write_bytes(b"".join(etree.tostring(child) for child in data))
    done = subprocess.run(
        ["yanglint", "-p", str(REPO / "yang"), *(f"-p{d}" for d in ietf_yang_dirs()), "-t", "get", str(REPO / "yang" / "ca-agent-system.yang"),
         str(REPO / "yang" / "ca-agent-crypto.yang"), str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def left_seconds(match: re.Match[str]) -> int:
    days, hours, minutes, seconds = (int(g) for g in match.groups()[-4:])
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def test_five_day_certificate_alert_by_syslog_and_trap(
    agent: AgentProcess, lab_ca_process, syslog_receiver: SyslogReceiver, snmptrapd: TrapDaemon, tmp_path: Path
) -> None:
    lab: LabCaProcess = lab_ca_process("--challenge", CHALLENGE, "--validity-days", "5")
    ca = x509.load_pem_x509_certificate(lab.ca_pem.read_bytes())
    with agent.connect() as m:
        configure(m, alerts_config(syslog_receiver.port, snmptrapd.port, traps_pki=True))
        cert = enroll(m, "check", lab.url)

        # Syslog, RFC 5424: <185> = local7 (23) * 8 + alert (1); MSGID the mnemonic; MSG the router's line.
        expected = seed_line("alert", "check", cert, ca)
        match = syslog_receiver.wait_for(
            r"^<185>1 \S+Z r1\.example\.com ca-agent \d+ CERT_EXPIRING_ALERT - (?P<msg>.*)$"
        )
        message = match.group("msg")
        assert message.startswith(expected), message
        left = re.fullmatch(TIME_LEFT, message[len(expected):])
        assert left is not None, message
        assert 4 * 86400 < left_seconds(left) <= 5 * 86400
        # The enrollment's own %SECURITY-CEPKI lines take the same path.
        syslog_receiver.wait_for(r"^<190>1 .* INFO - %SECURITY-CEPKI-6-INFO: certificate enrollment for trustpoint check: issued")

        # snmptrapd: ciscoPkiCertExpiryAlert with its six varbinds (indexed by the trustpoint name).
        (trap,) = snmptrapd.wait_for(f"OID: {PKI_MIB}.1.2")
        index = ".5.99.104.101.99.107"  # "check"
        for column, value in (
            (2, expected.split("Serial Number= ")[1].split(",")[0]),
            (9, "unstructuredName=r1.example.com"),
            (3, ca.subject.rfc4514_string()),
            (6, "ID"),
            (8, "check"),
        ):
            assert f'{COLUMN}.{column}{index} = STRING: "{value}"' in trap, trap
        assert re.search(rf'{COLUMN}\.7{index} = STRING: "{TIME_LEFT}"', trap), trap
        order = [int(n) for n in re.findall(rf"{re.escape(COLUMN)}\.(\d)\.", trap)]
        assert order == [2, 9, 3, 6, 8, 7]  # the MIB's OBJECTS order
        # ... and ciscoPkiCertInstallAlert for the CA and the router certificate.
        installs = snmptrapd.wait_for(f"OID: {PKI_MIB}.1.1", count=2)
        assert sorted(re.search(rf'{COLUMN}\.6{index} = STRING: "(\w+)"', t).group(1) for t in installs) == ["CA", "ID"]

        # State: next notification one day later, alert mode; the line is in the buffer.
        alert = router_cert(m, "check").find("c:expiry-alert", NS)
        assert alert.findtext("c:next-mode", namespaces=NS) == "alert"
        assert alert.findtext("c:last-mode", namespaces=NS) == "alert"
        next_at = dt.datetime.fromisoformat(alert.findtext("c:next-notification", namespaces=NS))
        assert next_at == cert.not_valid_after_utc - dt.timedelta(days=4)
        logging_state = m.get(filter=("subtree", f'<logging xmlns="{SYS}"/>')).data_ele
        messages = logging_state.xpath("s:logging/s:buffered/s:entry/s:message/text()", namespaces=NS)
        assert any(msg.startswith(expected) for msg in messages)
        sent = logging_state.xpath("s:logging/s:host/s:messages-sent/text()", namespaces=NS)
        assert int(sent[0]) >= 2
        # libyang agrees that the state conforms to the YANG modules.
        crypto = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><ca/></crypto>')).data_ele
        yanglint_get([*logging_state, *crypto], tmp_path)

    # A restart sends nothing again: after it, only the new trustpoint's alert comes.
    agent.stop()
    agent.start()
    with agent.connect() as m:
        enroll(m, "second", lab.url, label="other")
        syslog_receiver.wait_for(r"Trustpoint Name= second,")
    assert len(syslog_receiver.matching(r"CERT_EXPIRING_ALERT.*Trustpoint Name= check,")) == 1
    snmptrapd.wait_for(".2.2.1.1.8.6.115.101.99.111.110.100", count=3)  # "second": expiry + 2 install traps
    assert len(snmptrapd.wait_for(f"OID: {PKI_MIB}.1.2", count=2)) == 2


def test_thirty_day_certificate_warning_rfc3164_and_traps_only_when_enabled(
    agent: AgentProcess, lab_ca_process, syslog_receiver: SyslogReceiver, snmptrapd: TrapDaemon
) -> None:
    lab: LabCaProcess = lab_ca_process("--challenge", CHALLENGE, "--validity-days", "30")
    ca = x509.load_pem_x509_certificate(lab.ca_pem.read_bytes())
    with agent.connect() as m:
        configure(m, alerts_config(syslog_receiver.port, snmptrapd.port, traps_pki=False, syslog_format="rfc3164"))
        cert = enroll(m, "check", lab.url)
        expected = seed_line("warning", "check", cert, ca)
        # RFC 3164: <188> = local7 * 8 + warning (4); the short hostname; TAG ca-agent[pid].
        match = syslog_receiver.wait_for(r"^<188>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d r1 ca-agent\[\d+\]: (?P<msg>.*)$")
        message = match.group("msg")
        assert message.startswith(expected), message
        left = re.fullmatch(TIME_LEFT, message[len(expected):])
        assert left is not None and 29 * 86400 < left_seconds(left) <= 30 * 86400
        alert = router_cert(m, "check").find("c:expiry-alert", NS)
        assert alert.findtext("c:next-mode", namespaces=NS) == "warning"
        next_at = dt.datetime.fromisoformat(alert.findtext("c:next-notification", namespaces=NS))
        assert next_at == cert.not_valid_after_utc - dt.timedelta(days=25)

        # Without 'snmp-server traps pki' nothing went to snmptrapd; with it, the next install is trapped.
        configure(m, f'<snmp-server xmlns="{SYS}"><traps><pki/></traps></snmp-server>')
        rpc(m, "ca-clear-certificates", "<trustpoint>check</trustpoint>")
        enroll(m, "check", lab.url)
        snmptrapd.wait_for(f"OID: {PKI_MIB}.1.2")
        assert len([t for t in snmptrapd.traps() if f"OID: {PKI_MIB}.1.2" in t]) == 1


def cli(agent: AgentProcess, tmp_path: Path, *commands: str) -> subprocess.CompletedProcess[str]:
    """ca-cli one-shot with ``-c`` per command."""
    return run_cli(agent, tmp_path, *(arg for command in commands for arg in ("-c", command)))


def test_cli_configures_and_shows(
    agent: AgentProcess, lab_ca_process, syslog_receiver: SyslogReceiver, snmptrapd: TrapDaemon, tmp_path: Path
) -> None:
    lab: LabCaProcess = lab_ca_process("--challenge", CHALLENGE, "--validity-days", "5")
    done = cli(
        agent, tmp_path,
        "configure",
        "hostname r1",
        f"logging host 127.0.0.1 port {syslog_receiver.port} format rfc5424 severity informational",
        "logging buffered 200",
        f"snmp-server host 127.0.0.1 traps version 2c public udp-port {snmptrapd.port}",
        "snmp-server traps pki",
        "commit",
        "end",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    done = cli(agent, tmp_path, "show runn snmp-server traps")  # as the seed types it
    assert done.stdout == "snmp-server traps pki\n"
    done = cli(agent, tmp_path, "show runn logging", "show runn snmp-server host")
    assert done.stdout.splitlines() == [
        f"logging host 127.0.0.1 port {syslog_receiver.port} format rfc5424 severity informational",
        "logging buffered 200",
        f"snmp-server host 127.0.0.1 traps version 2c public udp-port {snmptrapd.port}",
    ]
    with agent.connect() as m:
        enroll(m, "check", lab.url)
    syslog_receiver.wait_for("CERT_EXPIRING_ALERT")
    snmptrapd.wait_for(f"OID: {PKI_MIB}.1.2")

    done = cli(agent, tmp_path, "show logging")
    lines = done.stdout.splitlines()
    assert lines[0] == "Syslog logging: enabled"
    assert re.fullmatch(
        rf"    Logging to 127\.0\.0\.1 port {syslog_receiver.port} \(UDP, RFC 5424\), level informational, "
        r"\d+ message lines sent", lines[1]), lines
    assert "Log Buffer (200 lines):" in lines
    assert any(
        re.fullmatch(r"RP/0/RP0/CPU0:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d\.\d{3} UTC: ca-agent: "
                     r"%SECURITY-CEPKI-1-CERT_EXPIRING_ALERT : Certificate expiring WITHIN A WEEK\. "
                     r"Trustpoint Name= check, .*", line)
        for line in lines
    ), lines

    done = cli(agent, tmp_path, "show crypto ca certificates check")
    lines = done.stdout.splitlines()
    router = lines.index("Router certificate")
    # Sent at once (5 days before the end), the next one is due a day after issue: less than 24 hours away.
    end = next(i for i in range(router, len(lines)) if lines[i].startswith("Validity End   :"))
    assert lines[end + 1] == "Expiry alert   :alert, next in 23 hours", lines
    assert not any(line.strip().startswith("Expiry alert") for line in lines[:router])  # the CA: 10 years left

    done = cli(agent, tmp_path, "configure", "no snmp-server traps pki", "no logging host 127.0.0.1",
               "no snmp-server host 127.0.0.1", "commit", "end")
    assert done.returncode == 0, done.stdout + done.stderr
    assert cli(agent, tmp_path, "show running-config snmp-server").stdout == "% No such configuration item(s)\n"
    done = cli(agent, tmp_path, "configure", "logging host 127.0.0.1 port 0")
    assert "% Invalid input detected at '^' marker." in done.stdout
