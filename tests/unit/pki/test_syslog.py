"""Syslog: the seed's expiry line, RFC 5424 / RFC 3164 framing, the buffer, UDP sending, the logging capture."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fakeclock import SetClock

from agent.pki.events import AlertMode, CertificateExpiring, CertificateRef, CertificateType, format_time_left
from agent.pki.keystore import KeyUsage
from agent.pki.syslog import (
    LogBuffer,
    LogLine,
    RouterLogHandler,
    Severity,
    SyslogFormat,
    SyslogHost,
    SyslogSender,
    expiry_message,
    format_rfc3164,
    format_rfc5424,
    parse_router_line,
)

SEED_ALERT = (
    "%SECURITY-CEPKI-1-CERT_EXPIRING_ALERT : Certificate expiring WITHIN A WEEK. Trustpoint Name= check, "
    "Certificate Type= ID, Serial Number= 02:EC, Issuer Name= CN=cacert,OU=SPBU,O=CSCO,L=BGL,ST=KA,C=IN, "
    "Subject name= CN=cisco.com, Time Left= 1 days, 23 hours, 59 minutes, 41 seconds"
)
NOW = dt.datetime(2026, 11, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)


def seed_certificate() -> x509.Certificate:
    """A certificate with the names and serial number of the seed's syslog example."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    issuer = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "IN"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "KA"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "BGL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CSCO"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "SPBU"),
            x509.NameAttribute(NameOID.COMMON_NAME, "cacert"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cisco.com")]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(0x02EC)
        .not_valid_before(NOW - dt.timedelta(days=300))
        .not_valid_after(NOW + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )


def test_alert_line_is_the_seeds() -> None:
    ref = CertificateRef.from_x509("check", CertificateType.ID, KeyUsage.GENERAL, seed_certificate())
    left = dt.timedelta(days=1, hours=23, minutes=59, seconds=41)
    severity, line = expiry_message(CertificateExpiring(ref, AlertMode.ALERT, left, NOW))
    assert (severity, line) == (Severity.ALERTS, SEED_ALERT)


def test_warning_line_has_the_same_fields_at_severity_4() -> None:
    ref = CertificateRef.from_x509("check", CertificateType.ID, KeyUsage.GENERAL, seed_certificate())
    severity, line = expiry_message(CertificateExpiring(ref, AlertMode.WARNING, dt.timedelta(days=53), NOW))
    assert severity is Severity.WARNINGS
    assert line == SEED_ALERT.replace(
        "%SECURITY-CEPKI-1-CERT_EXPIRING_ALERT : Certificate expiring WITHIN A WEEK.",
        "%SECURITY-CEPKI-4-CERT_EXPIRING_WARNING : Certificate expiring WITHIN 60 DAYS.",
    ).replace("1 days, 23 hours, 59 minutes, 41 seconds", "53 days, 0 hours, 0 minutes, 0 seconds")
    assert parse_router_line(line) == (Severity.WARNINGS, "CERT_EXPIRING_WARNING")


def test_time_left_never_negative() -> None:
    assert format_time_left(dt.timedelta(seconds=-5)) == "0 days, 0 hours, 0 minutes, 0 seconds"


def test_rfc5424_and_rfc3164_framing() -> None:
    line = LogLine(1, NOW, Severity.ALERTS, SEED_ALERT)
    assert format_rfc5424(line, "r1.example.com", procid=42) == (
        f"<185>1 2026-11-06T07:08:09.123Z r1.example.com ca-agent 42 CERT_EXPIRING_ALERT - {SEED_ALERT}".encode()
    )
    assert format_rfc3164(line, "r1.example.com", procid=42) == f"<185>Nov  6 07:08:09 r1 ca-agent[42]: {SEED_ALERT}".encode()
    plain = LogLine(2, NOW, Severity.INFORMATIONAL, "no router format")
    assert format_rfc5424(plain, "", procid=1) == b"<190>1 2026-11-06T07:08:09.123Z - ca-agent 1 - - no router format"


def test_parse_router_line() -> None:
    assert parse_router_line("%SECURITY-CEPKI-6-INFO: enrollment") == (Severity.INFORMATIONAL, "INFO")
    assert parse_router_line("%SECURITY-CEPKI-3-ERROR : x") == (Severity.ERRORS, "ERROR")
    assert parse_router_line("SECURITY-CEPKI-3-ERROR: x") is None
    assert parse_router_line("%SECURITY-CEPKI-9-X: x") is None


def test_buffer_keeps_the_newest_and_counts_all() -> None:
    buffer = LogBuffer(3, SetClock(NOW))
    for n in range(5):
        buffer.append(Severity.INFORMATIONAL, f"line {n}")
    assert [line.message for line in buffer.lines()] == ["line 2", "line 3", "line 4"]
    assert [line.sequence for line in buffer.lines()] == [3, 4, 5]
    buffer.resize(2)
    assert [line.message for line in buffer.lines()] == ["line 3", "line 4"]
    assert (buffer.logged, buffer.size) == (5, 2)
    with pytest.raises(ValueError):
        buffer.resize(0)


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def test_sender_sends_by_severity_and_counts(receiver: socket.socket) -> None:
    port = receiver.getsockname()[1]
    sender = SyslogSender(lambda: "r1.example.com")
    warnings_only = SyslogHost("127.0.0.1", port, SyslogFormat.RFC3164, Severity.WARNINGS)
    sender.configure([warnings_only])
    sender.submit(LogLine(1, NOW, Severity.INFORMATIONAL, "%SECURITY-CEPKI-6-INFO: not sent"))
    sender.submit(LogLine(2, NOW, Severity.ALERTS, SEED_ALERT))
    assert sender.flush(10)
    data, _ = receiver.recvfrom(65535)
    assert data.decode().endswith(f" r1 ca-agent[{os.getpid()}]: {SEED_ALERT}")
    assert data.startswith(b"<185>Nov  6 07:08:09 ")
    assert sender.sent(warnings_only) == 1
    sender.configure([])
    sender.submit(LogLine(3, NOW, Severity.ALERTS, SEED_ALERT))
    assert sender.close(5)
    receiver.settimeout(0.2)
    with pytest.raises(TimeoutError):
        receiver.recvfrom(65535)  # nothing after the host was removed


def test_handler_captures_router_lines_only() -> None:
    got: list[tuple[Severity, str]] = []
    logger = logging.getLogger("agent.test-syslog-capture")
    handler = RouterLogHandler(lambda severity, message: got.append((severity, message)))
    logger.addHandler(handler)
    try:
        logger.warning("%s: trustpoint %s", "%SECURITY-CEPKI-6-INFO", "tp")
        logger.warning("not a router line")
        logger.warning("%s", "%SECURITY-CEPKI-1-CERT_EXPIRING_ALERT : x")
    finally:
        logger.removeHandler(handler)
    assert got == [
        (Severity.INFORMATIONAL, "%SECURITY-CEPKI-6-INFO: trustpoint tp"),
        (Severity.ALERTS, "%SECURITY-CEPKI-1-CERT_EXPIRING_ALERT : x"),
    ]
