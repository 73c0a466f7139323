"""CISCO-PKI-MIB trap content (OIDs, order, index) and the sender's lifecycle; delivery is proven against
snmptrapd in tests/e2e/alerts."""

from __future__ import annotations

import datetime as dt
import threading

from agent.pki.events import AlertMode, CertificateExpiring, CertificateInstalled, CertificateRef, CertificateType
from agent.pki.keystore import KeyUsage
from agent.pki.snmptrap import (
    CERT_EXPIRY_ALERT,
    CERT_INSTALL_ALERT,
    TrapReceiver,
    TrapSender,
    expiry_trap,
    install_trap,
)

NOW = dt.datetime(2026, 11, 6, 7, 8, 9, tzinfo=dt.UTC)
REF = CertificateRef(
    trustpoint="check",
    cert_type=CertificateType.ID,
    key_usage=KeyUsage.GENERAL,
    serial_number="02EC",
    subject="CN=cisco.com",
    issuer="CN=cacert,OU=SPBU,O=CSCO,L=BGL,ST=KA,C=IN",
    not_before=dt.datetime(2003, 8, 19, 7, 0, 0, tzinfo=dt.UTC),
    not_after=NOW + dt.timedelta(days=2),
    fingerprint_sha256="00" * 32,
)
ENTRY = "1.3.6.1.4.1.9.9.854.2.2.1.1"
INDEX = "5.99.104.101.99.107"  # "check": length, then the octets


def test_expiry_trap_carries_the_six_objects_in_mib_order() -> None:
    trap = expiry_trap(CertificateExpiring(REF, AlertMode.ALERT, dt.timedelta(days=1, seconds=5), NOW))
    assert trap.oid == CERT_EXPIRY_ALERT == "1.3.6.1.4.1.9.9.854.1.2"
    assert trap.varbinds == (
        (f"{ENTRY}.2.{INDEX}", "02:EC"),
        (f"{ENTRY}.9.{INDEX}", "CN=cisco.com"),
        (f"{ENTRY}.3.{INDEX}", "CN=cacert,OU=SPBU,O=CSCO,L=BGL,ST=KA,C=IN"),
        (f"{ENTRY}.6.{INDEX}", "ID"),
        (f"{ENTRY}.8.{INDEX}", "check"),
        (f"{ENTRY}.7.{INDEX}", "1 days, 0 hours, 0 minutes, 5 seconds"),
    )


def test_install_trap_carries_dates() -> None:
    trap = install_trap(CertificateInstalled(REF, NOW))
    assert trap.oid == CERT_INSTALL_ALERT == "1.3.6.1.4.1.9.9.854.1.1"
    assert [oid.split(".")[13] for oid, _ in trap.varbinds] == ["2", "3", "4", "5", "6", "8", "9"]
    assert dict(trap.varbinds)[f"{ENTRY}.4.{INDEX}"] == "07:00:00 UTC Tue Aug 19 2003"


def test_sender_without_receivers_or_after_close_sends_nothing() -> None:
    sender = TrapSender()
    trap = install_trap(CertificateInstalled(REF, NOW))
    assert sender.send(trap, []).result(1) == 0
    assert sender.close(5)
    assert sender.send(trap, [TrapReceiver("127.0.0.1", "public", 9)]).result(1) == 0
    assert not [t for t in threading.enumerate() if t.name == "snmp-trap-sender"]


def test_sender_runs_its_own_loop_and_stops_it() -> None:
    sender = TrapSender(timeout=0.5)
    trap = install_trap(CertificateInstalled(REF, NOW))
    # Nobody listens on the discard port: a trap is fire-and-forget, so it still counts as sent.
    assert sender.send(trap, [TrapReceiver("127.0.0.1", "public", 9)]).result(30) == 1
    assert [t.name for t in threading.enumerate() if t.name == "snmp-trap-sender"] == ["snmp-trap-sender"]
    assert sender.close(10)
    assert not [t for t in threading.enumerate() if t.name == "snmp-trap-sender"]
