"""ca-cli's logging and SNMP commands (the edits they send), their running-config lines, show logging,
and the expiry alert line of show crypto ca certificates."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree
from test_cli_session import NC, SYS, FakeAgent, session

from agent.cli.alert_render import alert_config_blocks, expiry_alert_line, render_logging
from agent.cli.render import render_running_config

CRYPTO = "urn:ca-agent:yang:crypto"
NOW = dt.datetime(2026, 11, 6, 12, 0, 0, tzinfo=dt.UTC)


def configure(*lines: str) -> tuple[FakeAgent, list[etree._Element], str]:
    """Run config-mode lines (output as a script run prints it: the failing line, then the '^' marker)."""
    agent = FakeAgent()
    cli, out = session(agent, echo=False)
    assert cli.execute("configure")
    for line in lines:
        cli.execute(line)
    return agent, agent.edits, out.getvalue()


def body(edit: etree._Element) -> str:
    """The edit without the <config> wrapper and namespace declarations, for readable comparisons."""
    text = etree.tostring(edit[0]).decode()
    return text.replace(f' xmlns="{SYS}"', "").replace(f' xmlns:nc="{NC}"', "")


def test_logging_host_line_replaces_the_host() -> None:
    _, edits, out = configure("logging host 192.0.2.1 transport udp port 5514 format rfc3164 severity warnings")
    assert out == ""
    assert body(edits[0]) == (
        '<logging><host nc:operation="replace"><address>192.0.2.1</address><transport>udp</transport>'
        "<port>5514</port><format>rfc3164</format><severity>warnings</severity></host></logging>"
    )
    _, edits, _ = configure("logging host 2001:db8::1")
    assert body(edits[0]) == '<logging><host nc:operation="replace"><address>2001:db8::1</address></host></logging>'


@pytest.mark.parametrize(
    ("line", "bad"),
    [
        ("logging host 192.0.2.300", "192.0.2.300"),
        ("logging host 192.0.2.1 port 0", "0"),
        ("logging host 192.0.2.1 severity warnings port 5", "port"),  # the options come in a fixed order
        ("logging buffered 5", "5"),
        ("snmp-server host 192.0.2.1 traps version 3 public", "3"),
    ],
)
def test_bad_lines_are_marked(line: str, bad: str) -> None:
    agent, edits, out = configure(line)
    assert edits == []
    assert out.splitlines() == [line, " " * line.rindex(bad) + "^", "% Invalid input detected at '^' marker."]


def test_snmp_server_lines() -> None:
    _, edits, _ = configure(
        "snmp-server host 192.0.2.9 traps version 2c public udp-port 1162",
        "snmp-server host 192.0.2.10 traps private",
        "snmp-server traps pki",
        "logging buffered 500",
        "no snmp-server traps pki",
        "no snmp-server host 192.0.2.9 traps version 2c public",
        "no logging host 192.0.2.1",
        "no logging buffered",
    )
    assert [body(e) for e in edits] == [
        '<snmp-server><host nc:operation="replace"><address>192.0.2.9</address><version>v2c</version>'
        "<community>public</community><port>1162</port></host></snmp-server>",
        '<snmp-server><host nc:operation="replace"><address>192.0.2.10</address><version>v2c</version>'
        "<community>private</community></host></snmp-server>",
        "<snmp-server><traps><pki/></traps></snmp-server>",
        "<logging><buffered><size>500</size></buffered></logging>",
        '<snmp-server><traps><pki nc:operation="remove"/></traps></snmp-server>',
        '<snmp-server><host nc:operation="remove"><address>192.0.2.9</address></host></snmp-server>',
        '<logging><host nc:operation="remove"><address>192.0.2.1</address></host></logging>',
        '<logging><buffered><size nc:operation="remove"/></buffered></logging>',
    ]


RUNNING = etree.fromstring(
    f'<data xmlns="{NC}"><hostname xmlns="{SYS}">r1</hostname>'
    f'<logging xmlns="{SYS}"><host><address>192.0.2.1</address><port>5514</port><format>rfc3164</format></host>'
    f"<buffered><size>500</size></buffered></logging>"
    f'<snmp-server xmlns="{SYS}"><host><address>192.0.2.9</address><version>v2c</version>'
    f"<community>public</community><port>1162</port></host><traps><pki/></traps></snmp-server></data>"
)


def test_running_config_lines_read_back_as_the_same_commands() -> None:
    lines = [block[0] for block in alert_config_blocks(RUNNING)]
    assert lines == [
        "logging host 192.0.2.1 port 5514 format rfc3164",
        "logging buffered 500",
        "snmp-server host 192.0.2.9 traps version 2c public udp-port 1162",
        "snmp-server traps pki",
    ]
    _, edits, out = configure(*lines)
    assert out == ""
    assert len(edits) == 4
    assert render_running_config(RUNNING, "snmp-server traps") == ["snmp-server traps pki"]  # the seed's check
    assert render_running_config(RUNNING, "runn") == ["% No such configuration item(s)"]
    full = render_running_config(RUNNING)
    assert full[:2] == ["Building configuration...", "hostname r1"] and full[-1] == "end"
    assert "snmp-server traps pki" in full


def test_show_logging() -> None:
    data = etree.fromstring(
        f'<data xmlns="{NC}"><logging xmlns="{SYS}"><host><address>192.0.2.1</address><port>5514</port>'
        f"<messages-sent>3</messages-sent></host><buffered><size>500</size><messages-logged>7</messages-logged>"
        f"<entry><sequence>7</sequence><time>2026-11-06T07:08:09.123Z</time><severity>alerts</severity>"
        f"<message>%SECURITY-CEPKI-1-CERT_EXPIRING_ALERT : b</message></entry>"
        f"<entry><sequence>6</sequence><time>2026-11-06T07:08:09Z</time><severity>informational</severity>"
        f"<message>%SECURITY-CEPKI-6-INFO: a</message></entry></buffered></logging></data>"
    )
    assert render_logging(data) == [
        "Syslog logging: enabled",
        "    Logging to 192.0.2.1 port 5514 (UDP, RFC 5424), level informational, 3 message lines sent",
        "    Buffer logging: level debugging, 7 messages logged",
        "",
        "Log Buffer (500 lines):",
        "",
        "RP/0/RP0/CPU0:Nov  6 07:08:09.000 UTC: ca-agent: %SECURITY-CEPKI-6-INFO: a",
        "RP/0/RP0/CPU0:Nov  6 07:08:09.123 UTC: ca-agent: %SECURITY-CEPKI-1-CERT_EXPIRING_ALERT : b",
    ]


def certificate(valid_to: dt.datetime, alert: str) -> etree._Element:
    return etree.fromstring(
        f'<certificate xmlns="{CRYPTO}"><valid-to>{valid_to:%Y-%m-%dT%H:%M:%SZ}</valid-to>'
        f"<expiry-alert>{alert}</expiry-alert></certificate>"
    )


def test_expiry_alert_line() -> None:
    def at(delta: dt.timedelta) -> str:
        return f"{NOW + delta:%Y-%m-%dT%H:%M:%SZ}"

    soon = NOW + dt.timedelta(days=30)
    warning = f"<next-notification>{at(dt.timedelta(days=6))}</next-notification><next-mode>warning</next-mode>"
    assert expiry_alert_line(certificate(soon, warning), NOW) == "Expiry alert   :warning, next in 6 days"
    alert = f"<next-notification>{at(dt.timedelta(hours=1, minutes=5))}</next-notification><next-mode>alert</next-mode>"
    assert expiry_alert_line(certificate(soon, alert), NOW) == "Expiry alert   :alert, next in 1 hour"
    due = f"<next-notification>{at(dt.timedelta(0))}</next-notification><next-mode>alert</next-mode>"
    assert expiry_alert_line(certificate(soon, due), NOW) == "Expiry alert   :alert, due now"
    # Outside the 60-day window nothing is shown (the seed's layout of show crypto ca certificates).
    assert expiry_alert_line(certificate(NOW + dt.timedelta(days=300), warning), NOW) is None
    last = "<last-notification>2026-11-05T12:00:00Z</last-notification><last-mode>alert</last-mode>"
    assert expiry_alert_line(certificate(NOW + dt.timedelta(hours=5), last), NOW) == (
        "Expiry alert   :alert, last one sent"
    )
    assert expiry_alert_line(certificate(NOW - dt.timedelta(hours=5), last), NOW) == "Expiry alert   :expired"
