"""The expiry monitor over simulated time: exact notification times and modes, restarts, certificate changes.

Real key store, certificate store and Pki in a temporary directory; real
certificates (signed here with ``cryptography``); only the clock is
simulated, through the agent's injectable clock.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fakeclock import SetClock

from agent.pki.certstore import CertificateStore
from agent.pki.enrollment import Pki
from agent.pki.events import AlertMode, CertificateExpiring, CertificateInstalled, CertificateType, PkiEvent
from agent.pki.expiry import STATE_FILE, ExpiryMonitor, ExpiryStatus, Scan, schedule, trustpoint_certificates
from agent.pki.keystore import DEFAULT_LABEL, KeyPairType, KeyStore, KeyUsage
from agent.pki.trustpoint import TrustpointConfig

DAY = dt.timedelta(days=1)
T0 = dt.datetime(2026, 3, 1, 9, 30, 0, tzinfo=dt.UTC)


@dataclass
class Rig:
    """A data directory with keys, a CA, trustpoints, a Pki and the monitor over them."""

    root: Path
    clock: SetClock
    keystore: KeyStore
    certstore: CertificateStore
    pki: Pki
    ca_key: rsa.RSAPrivateKey
    ca_cert: x509.Certificate
    events: list[PkiEvent] = field(default_factory=list)
    monitor: ExpiryMonitor | None = None

    def start_monitor(self) -> ExpiryMonitor:
        self.monitor = ExpiryMonitor(
            lambda names: trustpoint_certificates(self.pki, self.certstore, names),
            self.root / STATE_FILE,
            self.events.append,
            clock=self.clock,
        )
        self.certstore.add_listener(self.monitor.certificates_changed)
        return self.monitor

    def router_status(self) -> list[ExpiryStatus]:
        assert self.monitor is not None
        return [s for s in self.monitor.status() if s.cert_type is CertificateType.ID]

    def issue(self, label: str, days: float, usage: KeyUsage = KeyUsage.GENERAL, serial: int = 0x2EC) -> x509.Certificate:
        public = self.keystore.public_key(label, usage)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cisco.com")]))
            .issuer_name(self.ca_cert.subject)
            .public_key(public)
            .serial_number(serial)
            .not_valid_before(self.clock.now())
            .not_valid_after(self.clock.now() + dt.timedelta(days=days))
            .sign(self.ca_key, hashes.SHA256())
        )

    def install(self, tp: str, cert: x509.Certificate, usage: KeyUsage = KeyUsage.GENERAL) -> None:
        if self.certstore.ca(tp) is None:
            self.certstore.set_ca(tp, self.ca_cert)
        self.certstore.set_certificate(tp, usage, cert)

    def expiring(self) -> list[CertificateExpiring]:
        return [e for e in self.events if isinstance(e, CertificateExpiring)]


def _ca(now: dt.datetime) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "IN"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "KA"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "BGL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CSCO"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "SPBU"),
            x509.NameAttribute(NameOID.COMMON_NAME, "cacert"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - DAY)
        .not_valid_after(now + 3650 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


@pytest.fixture(scope="module")
def ca_material() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return _ca(T0)


@pytest.fixture
def rig(tmp_path: Path, ca_material: tuple[rsa.RSAPrivateKey, x509.Certificate]) -> Iterator[Rig]:
    clock = SetClock(T0)
    keystore = KeyStore(tmp_path / "keys")
    keystore.generate_rsa("check", modulus=1024)
    keystore.generate_rsa("uk", KeyPairType.USAGE_KEYS, modulus=1024)
    certstore = CertificateStore(tmp_path / "trustpoints", clock=clock)
    pki = Pki(tmp_path, keystore, certstore, clock=clock)
    pki.configure(
        [
            TrustpointConfig("check", terminal=True, rsakeypair="check"),
            TrustpointConfig("other", terminal=True, rsakeypair="check"),
            TrustpointConfig("usage", terminal=True, rsakeypair="uk"),
        ]
    )
    ca_key, ca_cert = ca_material
    made = Rig(tmp_path, clock, keystore, certstore, pki, ca_key, ca_cert)
    yield made
    if made.monitor is not None:
        made.monitor.close()
    pki.close()


def _run_until(rig: Rig, end: dt.datetime, late: dt.timedelta = dt.timedelta(0)) -> None:
    """Drive the monitor like its thread does: jump to each due time (``late`` after it) and check."""
    assert rig.monitor is not None
    due = rig.monitor.check()
    while due is not None and due + late <= end:
        rig.clock.current = due + late
        due = rig.monitor.check()
    rig.clock.current = end


def _offsets(events: list[CertificateExpiring], not_after: dt.datetime) -> list[tuple[dt.timedelta, AlertMode]]:
    return [(not_after - e.time, e.mode) for e in events]


EXPECTED = [(d * DAY, AlertMode.WARNING) for d in (60, 53, 46, 39, 32, 25, 18, 11)] + [
    (d * DAY, AlertMode.ALERT) for d in (7, 6, 5, 4, 3, 2, 1)
]


def test_schedule_points_from_not_after() -> None:
    not_after = dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    points = schedule(not_after)
    assert [(not_after - p.at, p.mode) for p in points] == EXPECTED


def test_ninety_days_exact_times_and_modes(rig: Rig) -> None:
    rig.start_monitor()
    assert rig.monitor is not None
    assert rig.monitor.check() is None  # nothing installed yet: the state file starts empty
    cert = rig.issue("check", days=90)
    rig.install("check", cert)
    _run_until(rig, T0 + 91 * DAY)
    installed = [e for e in rig.events if isinstance(e, CertificateInstalled)]
    assert sorted((e.certificate.cert_type.value, e.time) for e in installed) == [("CA", T0), ("ID", T0)]
    not_after = cert.not_valid_after_utc
    router = [e for e in rig.expiring() if e.certificate.cert_type is CertificateType.ID]
    assert _offsets(router, not_after) == EXPECTED
    assert all(e.time_left == not_after - e.time for e in router)
    first = router[0]
    assert first.time == T0 + 30 * DAY
    assert (first.certificate.trustpoint, first.certificate.serial_number) == ("check", "02EC")
    assert first.certificate.issuer == "CN=cacert,OU=SPBU,O=CSCO,L=BGL,ST=KA,C=IN"
    assert first.certificate.subject == "CN=cisco.com"
    # The CA certificate (10 years) is in no window; the usage-key trustpoint has nothing.
    assert all(e.certificate.cert_type is CertificateType.ID for e in rig.expiring())


def test_late_checks_do_not_drift(rig: Rig) -> None:
    rig.start_monitor()
    cert = rig.issue("check", days=90)
    rig.install("check", cert)
    _run_until(rig, T0 + 91 * DAY, late=dt.timedelta(hours=5))
    not_after = cert.not_valid_after_utc
    router = [e for e in rig.expiring() if e.certificate.cert_type is CertificateType.ID]
    # Each one five hours late, but every one on its own point: never "last + 7 days".
    assert [(o + dt.timedelta(hours=5), m) for o, m in _offsets(router, not_after)] == EXPECTED


def test_restart_neither_repeats_nor_misses(rig: Rig) -> None:
    rig.start_monitor()
    cert = rig.issue("check", days=90)
    rig.install("check", cert)
    not_after = cert.not_valid_after_utc
    _run_until(rig, not_after - 40 * DAY)  # 60, 53 and 46 days before are sent
    assert _offsets(rig.expiring(), not_after) == EXPECTED[:3]
    assert rig.monitor is not None
    rig.monitor.close()

    # Restart at once: nothing is sent again.
    rig.start_monitor()
    assert rig.monitor is not None
    rig.monitor.check()
    assert len(rig.expiring()) == 3
    rig.monitor.close()

    # Down across 39 and 32 days before: one catch-up at restart, then the schedule's own points.
    rig.clock.current = not_after - 30 * DAY
    rig.start_monitor()
    _run_until(rig, not_after + DAY)
    offsets = _offsets(rig.expiring(), not_after)
    assert offsets[:3] == EXPECTED[:3]
    assert offsets[3] == (30 * DAY, AlertMode.WARNING)
    assert offsets[4:] == EXPECTED[5:]
    assert not [e for e in rig.events if isinstance(e, CertificateInstalled) and e.time > T0]


def test_restart_into_the_last_week_sends_an_alert_with_the_time_left(rig: Rig) -> None:
    rig.start_monitor()
    cert = rig.issue("check", days=90)
    rig.install("check", cert)
    not_after = cert.not_valid_after_utc
    _run_until(rig, not_after - 20 * DAY)
    assert rig.monitor is not None
    rig.monitor.close()
    rig.clock.current = not_after - dt.timedelta(days=1, hours=23, minutes=59, seconds=41)
    rig.start_monitor()
    rig.monitor.check()
    last = rig.expiring()[-1]
    assert last.mode is AlertMode.ALERT
    assert last.seconds_left == 2 * 86400 - 19


@pytest.mark.parametrize(
    ("days", "mode", "next_offset"),
    [(5, AlertMode.ALERT, 4 * DAY), (30, AlertMode.WARNING, 25 * DAY), (59, AlertMode.WARNING, 53 * DAY)],
)
def test_certificate_installed_inside_the_window_is_reported_at_once(
    rig: Rig, days: int, mode: AlertMode, next_offset: dt.timedelta
) -> None:
    rig.start_monitor()
    assert rig.monitor is not None
    rig.monitor.check()
    cert = rig.issue("check", days=days)
    rig.install("check", cert)
    due = rig.monitor.check()
    (event,) = rig.expiring()
    assert (event.mode, event.time, event.time_left) == (mode, T0, days * DAY)
    assert due == cert.not_valid_after_utc - next_offset
    (status,) = rig.router_status()
    assert (status.next_time, status.last_time, status.last_mode) == (due, T0, mode)


def test_status_before_and_inside_the_window(rig: Rig) -> None:
    monitor = rig.start_monitor()
    monitor.check()
    cert = rig.issue("check", days=365)
    rig.install("check", cert)
    (status,) = rig.router_status()  # a change not yet checked: scanned afresh
    assert (status.trustpoint, status.cert_type, status.key_usage) == ("check", CertificateType.ID, KeyUsage.GENERAL)
    assert (status.next_time, status.next_mode) == (cert.not_valid_after_utc - 60 * DAY, AlertMode.WARNING)
    assert status.last_time is None


def test_exclusions_usage_keys_key_missing_ca_without_router_certificate(rig: Rig) -> None:
    monitor = rig.start_monitor()
    monitor.check()
    rig.install("usage", rig.issue("uk", 5, KeyUsage.SIGNATURE, serial=10), KeyUsage.SIGNATURE)
    rig.install("usage", rig.issue("uk", 5, KeyUsage.ENCRYPTION, serial=11), KeyUsage.ENCRYPTION)
    rig.certstore.set_ca("other", rig.ca_cert)  # a CA certificate alone
    rig.install("check", rig.issue("check", 5))
    rig.keystore.generate_rsa("check", modulus=1024, replace=True)  # its key pair is replaced: key-missing
    monitor.check()
    assert rig.expiring() == []
    assert monitor.status() == []
    installed = {(e.certificate.trustpoint, e.certificate.cert_type) for e in rig.events}
    assert installed == {
        ("usage", CertificateType.CA),
        ("usage", CertificateType.ID),
        ("other", CertificateType.CA),
        ("check", CertificateType.CA),
        ("check", CertificateType.ID),
    }


def test_ca_certificate_with_a_router_certificate_follows_the_schedule(rig: Rig, tmp_path: Path) -> None:
    ca_key, ca_cert = rig.ca_key, rig.ca_cert
    short_ca = (
        x509.CertificateBuilder()
        .subject_name(ca_cert.subject)
        .issuer_name(ca_cert.subject)
        .public_key(ca_key.public_key())
        .serial_number(7)
        .not_valid_before(T0 - DAY)
        .not_valid_after(T0 + 20 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    monitor = rig.start_monitor()
    monitor.check()
    rig.certstore.set_ca("check", short_ca)
    monitor.check()
    assert rig.expiring() == []  # no router certificate yet
    rig.install("check", rig.issue("check", 365))
    monitor.check()
    (event,) = rig.expiring()
    assert (event.certificate.cert_type, event.certificate.key_usage, event.mode) == (
        CertificateType.CA,
        None,
        AlertMode.WARNING,
    )


def test_clear_forgets_and_a_new_install_is_reported(rig: Rig) -> None:
    monitor = rig.start_monitor()
    monitor.check()
    cert = rig.issue("check", days=5)
    rig.install("check", cert)
    monitor.check()
    assert len(rig.expiring()) == 1
    rig.pki.clear_certificates("check")
    assert monitor.status() == []
    monitor.check()
    rig.clock.current = T0 + dt.timedelta(hours=1)
    rig.install("check", rig.issue("check", days=5, serial=0x2ED))
    monitor.check()
    assert [e.certificate.serial_number for e in rig.expiring()] == ["02EC", "02ED"]
    installed = [e.certificate for e in rig.events if isinstance(e, CertificateInstalled)]
    assert [c.serial_number for c in installed if c.cert_type is CertificateType.ID] == ["02EC", "02ED"]


def test_first_start_takes_existing_certificates_as_known(rig: Rig) -> None:
    rig.install("check", rig.issue("check", days=365))
    monitor = rig.start_monitor()
    monitor.check()
    assert rig.events == []
    assert (rig.root / STATE_FILE).is_file()


def test_expired_certificate_is_not_checked_in_a_loop(rig: Rig) -> None:
    monitor = rig.start_monitor()
    monitor.check()
    rig.install("check", rig.issue("check", days=3))
    monitor.check()
    monitor.close()
    rig.clock.current = T0 + 10 * DAY  # down until after expiry
    monitor = rig.start_monitor()
    due = monitor.check()  # the router certificate has nothing left; the CA's own schedule remains
    assert due == rig.ca_cert.not_valid_after_utc - 60 * DAY
    assert len(rig.expiring()) == 1
    (status,) = rig.router_status()
    assert (status.next_time, status.last_time) == (None, T0)


def test_thread_reports_a_change_at_once(rig: Rig) -> None:
    got = threading.Event()
    seen: list[PkiEvent] = []

    def emit(event: PkiEvent) -> None:
        seen.append(event)
        if isinstance(event, CertificateExpiring):
            got.set()

    monitor = ExpiryMonitor(
        lambda names: trustpoint_certificates(rig.pki, rig.certstore, names), rig.root / STATE_FILE, emit, clock=rig.clock
    )
    rig.monitor = monitor
    rig.certstore.add_listener(monitor.certificates_changed)
    monitor.start()
    rig.install("check", rig.issue("check", days=5))
    assert got.wait(10), seen
    assert monitor.close(5)



def test_a_change_rescans_only_its_trustpoint_and_agrees_with_a_full_scan(rig: Rig) -> None:
    asked: list[frozenset[str] | None] = []

    def source(names: Collection[str] | None) -> Scan:
        asked.append(None if names is None else frozenset(names))
        return trustpoint_certificates(rig.pki, rig.certstore, names)

    monitor = ExpiryMonitor(source, rig.root / STATE_FILE, rig.events.append, clock=rig.clock)
    rig.monitor = monitor
    rig.certstore.add_listener(monitor.certificates_changed)
    rig.install("check", rig.issue("check", days=200))
    monitor.check()
    assert asked == [None]  # the first check reads everything

    rig.install("other", rig.issue("check", days=5, serial=0x2ED))
    monitor.check()
    assert asked[1:] == [frozenset({"other"})]
    assert [(e.certificate.trustpoint, e.mode) for e in rig.expiring()] == [("other", AlertMode.ALERT)]
    merged = monitor.status()
    assert [s.trustpoint for s in merged if s.cert_type is CertificateType.ID] == ["check", "other"]

    rig.certstore.remove_certificate("other", KeyUsage.GENERAL)
    monitor.check()
    assert asked[2:] == [frozenset({"other"})]
    merged = monitor.status()
    assert [s.trustpoint for s in rig.router_status()] == ["check"]

    monitor.certificates_changed()  # e.g. key pairs changed: everything again
    monitor.check()
    assert asked[3:] == [None]
    assert monitor.status() == merged  # the merged scan is what a full scan finds
    monitor.check()  # a timer wake-up: a full scan catches what nobody announced
    assert asked[4:] == [None]


def test_a_key_pair_change_names_the_trustpoints_using_it(rig: Rig) -> None:
    assert rig.pki.trustpoints_using({"check"}) == {"check", "other"}
    assert rig.pki.trustpoints_using({"uk", "nobody"}) == {"usage"}
    assert rig.pki.trustpoints_using({"nobody"}) == frozenset()
    assert rig.pki.trustpoints_using({DEFAULT_LABEL}) is None  # unconfigured trustpoints use it: all of them
