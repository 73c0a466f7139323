"""The certificate expiry monitor (seed: "Expiry Notification for PKI Certificate").

For every router certificate the schedule comes from its notAfter alone:
60 days before it, then every week while more than a week is left (60, 53,
46, 39, 32, 25, 18 and 11 days before: mode warning), then every day of the
last week (7, 6, ... 1 days before: mode alert). A notification that falls
due while the agent is down, or a certificate installed already inside the
window, is reported at once, once, with the validity actually left; the
schedule then goes on at its own times (never "now + a week"), so it does
not drift.

Excluded, as on the router: trustpool certificates (they are not in
trustpoints), usage-key certificates, certificates whose key pair was
zeroized or replaced, and CA certificates whose trustpoint has no alerting
router certificate. A CA certificate of a trustpoint that has one follows
the same schedule (certificate type CA).

What was sent is persisted (``<data>/expiry-alerts.json``, atomically,
before the event is handed on), so a restart neither repeats nor misses a
notification. The monitor also notices new certificates and reports them
(:class:`~agent.pki.events.CertificateInstalled`); at the very first start
(no state file) the certificates already there are taken as known.

One background thread sleeps until the earliest due time (re-reading the
wall clock at least every ``max_sleep`` seconds, so a clock step is
noticed) or until :meth:`ExpiryMonitor.certificates_changed` pokes it. No
lock is held across disk I/O or while events are emitted.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent.clock import SYSTEM_CLOCK, Clock
from agent.files import atomic_write
from agent.pki.certificate import InvalidCertificateError, load_certificate
from agent.pki.certstore import CertificateStore, CertificateStoreCorruptError
from agent.pki.enrollment import Pki
from agent.pki.events import (
    AlertMode,
    CertificateExpiring,
    CertificateInstalled,
    CertificateRef,
    CertificateType,
    PkiEvent,
)
from agent.pki.keystore import KeyUsage
from agent.pki.trustpoint import CertificateStatus

__all__ = [
    "ExpiryMonitor",
    "ExpiryStatus",
    "Plan",
    "Scan",
    "ScheduledNotification",
    "WatchedCertificate",
    "due_index",
    "plan_notifications",
    "schedule",
    "trustpoint_certificates",
    "FIRST_NOTICE",
    "STATE_FILE",
]

_log = logging.getLogger(__name__)

FIRST_NOTICE = dt.timedelta(days=60)
_WEEK = dt.timedelta(days=7)
_DAY = dt.timedelta(days=1)
STATE_FILE = "expiry-alerts.json"
_FORMAT = "ca-agent-expiry/1"
_RETRY_AFTER_FAILURE = 60.0  # seconds before a failed check (e.g. a full disk) is tried again
# After a change, changes that follow within this time (real seconds) are taken in the same check:
# hundreds of certificates installed by the pollers make a few checks, not one each (every check
# plans all watched certificates and rewrites the records), and an alert is still sent at once.
_GATHER_SECONDS = 0.1


# --------------------------------------------------------------------------- the schedule (pure)


@dataclass(frozen=True)
class ScheduledNotification:
    """One point of a certificate's schedule."""

    at: dt.datetime
    mode: AlertMode


@functools.lru_cache(maxsize=4096)  # a pure function, asked for every watched certificate at every check
def schedule(not_after: dt.datetime) -> tuple[ScheduledNotification, ...]:
    """Every notification time of a certificate expiring at ``not_after``, in order.

    60 days before, weekly while more than a week is left (warning), then
    daily from a week before until expiry (alert): 15 points. Raises nothing.
    """
    points: list[ScheduledNotification] = []
    at = not_after - FIRST_NOTICE
    while not_after - at > _WEEK:
        points.append(ScheduledNotification(at, AlertMode.WARNING))
        at += _WEEK
    at = not_after - _WEEK
    while at < not_after:
        points.append(ScheduledNotification(at, AlertMode.for_time_left(not_after - at)))
        at += _DAY
    return tuple(points)


def due_index(points: tuple[ScheduledNotification, ...], not_after: dt.datetime, now: dt.datetime) -> int | None:
    """Index of the latest point at or before ``now`` (None before the first, or once expired). Raises nothing."""
    if now >= not_after:
        return None
    due = None
    for index, point in enumerate(points):
        if point.at > now:
            break
        due = index
    return due


# --------------------------------------------------------------------------- what is watched


@dataclass(frozen=True)
class WatchedCertificate:
    """A certificate of a trustpoint, and whether it gets expiry notifications."""

    ref: CertificateRef
    alerts: bool

    @property
    def key(self) -> str:
        """Identifies this certificate in this role (a CA certificate may serve several trustpoints)."""
        usage = self.ref.key_usage.value if self.ref.key_usage is not None else "-"
        return f"{self.ref.trustpoint}|{self.ref.cert_type.value}|{usage}|{self.ref.fingerprint_sha256}"


@dataclass(frozen=True)
class Scan:
    """The certificates of every trustpoint; trustpoints whose files could not be read are named apart."""

    certificates: tuple[WatchedCertificate, ...]
    unreadable: frozenset[str] = frozenset()


def trustpoint_certificates(pki: Pki, certstore: CertificateStore, names: Collection[str] | None = None) -> Scan:
    """Every CA, RA and router certificate in the trustpoints (or in ``names`` only), with its alerting flag.

    A router certificate alerts if it is the general-purpose one and its key
    pair is still there (status available); the CA certificate alerts if its
    trustpoint has such a router certificate. A name without certificates
    (e.g. a removed trustpoint) gives nothing. Raises OSError.
    """
    found: list[WatchedCertificate] = []
    unreadable: set[str] = set()
    for name in certstore.trustpoints() if names is None else sorted(names):
        try:
            state = pki.state(name)
            router = [
                (usage, cert.status, load_certificate(cert.info.pem))
                for usage, cert in state.certificates.items()
                if cert.info is not None
            ]
            ca = load_certificate(state.ca.pem) if state.ca is not None else None
            ras = [load_certificate(ra.info.pem) for ra in state.ra]
        except (CertificateStoreCorruptError, InvalidCertificateError) as exc:
            _log.warning("expiry monitor: the certificates of trustpoint %s cannot be read: %s", name, exc)
            unreadable.add(name)
            continue
        alerting_router = False
        for usage, status, cert in router:
            alerts = usage is KeyUsage.GENERAL and status is CertificateStatus.AVAILABLE
            alerting_router = alerting_router or alerts
            found.append(WatchedCertificate(CertificateRef.from_x509(name, CertificateType.ID, usage, cert), alerts))
        if ca is not None:
            ref = CertificateRef.from_x509(name, CertificateType.CA, None, ca)
            found.append(WatchedCertificate(ref, alerting_router))
        for ra in ras:
            found.append(WatchedCertificate(CertificateRef.from_x509(name, CertificateType.RA, None, ra), False))
    return Scan(tuple(found), frozenset(unreadable))


# --------------------------------------------------------------------------- persisted records


@dataclass(frozen=True)
class AlertRecord:
    """What was sent for one certificate: the index of the last schedule point covered (-1: none yet)."""

    trustpoint: str
    last_index: int = -1
    last_sent: dt.datetime | None = None
    last_mode: AlertMode | None = None

    def to_json(self) -> dict[str, object]:
        """The persisted form. Raises nothing."""
        return {
            "trustpoint": self.trustpoint,
            "last_index": self.last_index,
            "last_sent": None if self.last_sent is None else self.last_sent.isoformat(),
            "last_mode": None if self.last_mode is None else self.last_mode.value,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> AlertRecord:
        """Raises ValueError, KeyError, TypeError for malformed data."""
        sent = data.get("last_sent")
        mode = data.get("last_mode")
        when = None if sent is None else dt.datetime.fromisoformat(str(sent))
        if when is not None and when.tzinfo is None:
            raise ValueError("naive time")
        index = data.get("last_index", -1)
        if not isinstance(index, int):
            raise TypeError("last_index is not a number")
        return cls(
            trustpoint=str(data["trustpoint"]),
            last_index=index,
            last_sent=when,
            last_mode=None if mode is None else AlertMode(str(mode)),
        )


def _load_records(path: Path) -> dict[str, AlertRecord] | None:
    """The records in ``path``; None if there is no file (first start). Unreadable files count as empty."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        _log.warning("expiry monitor: ignoring unreadable %s: %s", path, exc)
        return {}
    records: dict[str, AlertRecord] = {}
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("certificates"), dict):
        _log.warning("expiry monitor: ignoring %s: not an expiry state file", path)
        return records
    for key, value in data["certificates"].items():
        try:
            records[str(key)] = AlertRecord.from_json(value)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            _log.warning("expiry monitor: ignoring a malformed record in %s: %s", path, exc)
    return records


def _dump_records(records: Mapping[str, AlertRecord]) -> bytes:
    body = {"format": _FORMAT, "certificates": {key: rec.to_json() for key, rec in sorted(records.items())}}
    return json.dumps(body, indent=1).encode("utf-8")


# --------------------------------------------------------------------------- one pass (pure)


@dataclass(frozen=True)
class Plan:
    """The outcome of one pass: records to persist, events to emit, when to look again."""

    records: dict[str, AlertRecord] = field(hash=False)
    events: tuple[PkiEvent, ...]
    next_due: dt.datetime | None


def plan_notifications(
    scan: Scan, records: Mapping[str, AlertRecord], now: dt.datetime, *, announce_new: bool = True
) -> Plan:
    """Decide what is due at ``now``.

    A certificate not in ``records`` is new: CertificateInstalled (if
    ``announce_new``). An alerting certificate whose latest due point is past
    its record's last one gets one CertificateExpiring, with the mode of the
    validity actually left. Records of certificates that are gone are
    dropped, except those of unreadable trustpoints. Raises nothing.
    """
    kept: dict[str, AlertRecord] = {
        key: rec for key, rec in records.items() if rec.trustpoint in scan.unreadable
    }
    events: list[PkiEvent] = []
    next_due: dt.datetime | None = None
    for watched in scan.certificates:
        ref = watched.ref
        record = records.get(watched.key)
        if record is None:
            record = AlertRecord(ref.trustpoint)
            if announce_new:
                events.append(CertificateInstalled(ref, now))
        if watched.alerts:
            points = schedule(ref.not_after)
            due = due_index(points, ref.not_after, now)
            if due is not None and due > record.last_index:
                left = ref.not_after - now
                mode = AlertMode.for_time_left(left)
                events.append(CertificateExpiring(ref, mode, left, now))
                record = replace(record, last_index=due, last_sent=now, last_mode=mode)
            following = max(record.last_index, -1 if due is None else due) + 1
            if now < ref.not_after and following < len(points):
                if next_due is None or points[following].at < next_due:
                    next_due = points[following].at
        kept[watched.key] = record
    return Plan(kept, tuple(events), next_due)


# --------------------------------------------------------------------------- state for display


@dataclass(frozen=True)
class ExpiryStatus:
    """Where an alerting certificate stands: next notification (None after the last) and last one sent."""

    trustpoint: str
    cert_type: CertificateType
    key_usage: KeyUsage | None
    next_time: dt.datetime | None
    next_mode: AlertMode | None
    last_time: dt.datetime | None
    last_mode: AlertMode | None


def _status(watched: WatchedCertificate, record: AlertRecord | None, now: dt.datetime) -> ExpiryStatus:
    ref = watched.ref
    record = record or AlertRecord(ref.trustpoint)
    points = schedule(ref.not_after)
    due = due_index(points, ref.not_after, now)
    next_time: dt.datetime | None = None
    next_mode: AlertMode | None = None
    if due is not None and due > record.last_index:  # due now (the worker is about to send it)
        next_time, next_mode = now, AlertMode.for_time_left(ref.not_after - now)
    else:
        following = max(record.last_index, -1 if due is None else due) + 1
        if following < len(points) and now < ref.not_after:
            next_time, next_mode = points[following].at, points[following].mode
    return ExpiryStatus(
        ref.trustpoint, ref.cert_type, ref.key_usage, next_time, next_mode, record.last_sent, record.last_mode
    )


# --------------------------------------------------------------------------- the monitor


class ExpiryMonitor:
    """Runs the schedule of every watched certificate and emits the events.

    ``source(names)`` lists the certificates of the trustpoints ``names`` (None:
    of all; normally ``lambda names: trustpoint_certificates(pki, certstore,
    names)``); ``emit`` receives
    every event, in the monitor's thread, after the records are persisted
    and with no lock held (it should hand events on quickly).
    """

    def __init__(
        self,
        source: Callable[[Collection[str] | None], Scan],
        state_file: Path,
        emit: Callable[[PkiEvent], None],
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_sleep: float = 3600.0,
    ) -> None:
        """Read the persisted records. Raises ValueError for a non-positive ``max_sleep``."""
        if max_sleep <= 0:
            raise ValueError("max_sleep must be positive")
        self._source = source
        self._path = Path(state_file)
        self._emit = emit
        self._clock = clock
        self._max_sleep = float(max_sleep)
        loaded = _load_records(self._path)
        self._first_start = loaded is None
        self._records: dict[str, AlertRecord] = loaded or {}
        self._cond = threading.Condition(threading.Lock())
        self._changes = 0  # bumped by certificates_changed()
        self._snapshot: tuple[int, Scan] | None = None  # (changes seen when it was scanned, scan)
        # Trustpoints changed since the last check (None: all, e.g. key pairs changed). One
        # enrollment rescans its own trustpoint, not all of them: with thousands of trustpoints
        # a full scan per installed certificate made enrolling them all quadratic.
        self._dirty: set[str] | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the background thread (a first check runs at once). Raises nothing."""
        with self._cond:
            if self._thread is not None or self._closed:
                return
            self._changes += 1
            self._thread = threading.Thread(target=self._loop, name="pki-expiry-monitor", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the thread; True if it ended within ``timeout`` s. Raises nothing."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def certificates_changed(self, trustpoint: str | None = None) -> None:
        """A certificate was installed, replaced or removed (or a key pair changed): look again at once.

        Only records the change and wakes the thread: safe to call while the
        caller holds its own locks. Raises nothing.
        """
        with self._cond:
            self._changes += 1
            if trustpoint is None:
                self._dirty = None
            elif self._dirty is not None:
                self._dirty.add(trustpoint)
            self._cond.notify_all()

    # ------------------------------------------------------------------ one pass

    def check(self) -> dt.datetime | None:
        """Scan the certificates, persist and emit what is due now; returns the next due time.

        Called by the monitor's thread; call it directly only when the
        thread is not started (tests drive time this way). Raises OSError if
        the records cannot be written (nothing is emitted then).
        """
        with self._cond:
            changes = self._changes
            dirty, self._dirty = self._dirty, set()
            last = self._snapshot
        scan = self._scan(dirty, last[1] if last is not None else None)
        now = self._clock.now()
        with self._cond:
            records = dict(self._records)
            announce = not self._first_start
        plan = plan_notifications(scan, records, now, announce_new=announce)
        if plan.records != records or not self._path.exists():
            atomic_write(self._path, _dump_records(plan.records))
        with self._cond:
            self._records = plan.records
            self._first_start = False
            self._snapshot = (changes, scan)
        for event in plan.events:
            try:
                self._emit(event)
            except Exception:  # noqa: BLE001 - a failing consumer must not stop the schedule
                _log.exception("expiry monitor: emitting %s failed", type(event).__name__)
        return plan.next_due

    def status(self) -> list[ExpiryStatus]:
        """Next and last notification of every alerting certificate (for the state tree).

        Uses the last scan unless certificates changed since; then the
        changed trustpoints are read again (in the caller's thread, no lock
        held). Raises OSError.
        """
        with self._cond:
            changes = self._changes
            snapshot = self._snapshot
            records = dict(self._records)
            dirty = None if self._dirty is None else set(self._dirty)
        if snapshot is not None and snapshot[0] == changes:
            scan = snapshot[1]
        else:  # (dirty is empty while check() is reading them: then everything, as _scan does)
            scan = self._scan(dirty, snapshot[1] if snapshot is not None else None)
        now = self._clock.now()
        return [_status(w, records.get(w.key), now) for w in scan.certificates if w.alerts]

    def _scan(self, dirty: set[str] | None, last: Scan | None) -> Scan:
        """The certificates now: the last scan with the ``dirty`` trustpoints read again.

        A full scan when there is no last scan, when everything may have
        changed (``dirty`` None) and on a timer wake-up (nothing dirty:
        whatever changed without telling us is caught there).
        """
        if last is None or dirty is None or not dirty:
            return self._source(None)
        fresh = self._source(frozenset(dirty))
        by_trustpoint: dict[str, list[WatchedCertificate]] = {}
        for watched in last.certificates:
            if watched.ref.trustpoint not in dirty:
                by_trustpoint.setdefault(watched.ref.trustpoint, []).append(watched)
        for watched in fresh.certificates:
            by_trustpoint.setdefault(watched.ref.trustpoint, []).append(watched)
        unreadable = (last.unreadable - dirty) | fresh.unreadable
        # the order of a full scan: by trustpoint name, each trustpoint's certificates as read
        ordered = tuple(w for name in sorted(by_trustpoint) for w in by_trustpoint[name])
        return Scan(ordered, frozenset(unreadable))

    # ------------------------------------------------------------------ the thread

    def _loop(self) -> None:
        next_due: dt.datetime | None = None
        seen = -1
        while True:
            with self._cond:
                while not self._closed and self._changes == seen:
                    if next_due is None:
                        self._cond.wait()
                        continue
                    remaining = (next_due - self._clock.now()).total_seconds()
                    if remaining <= 0:
                        break
                    self._cond.wait(min(remaining, self._max_sleep))
                if self._closed:
                    return
                if self._changes != seen:
                    gather_until = time.monotonic() + _GATHER_SECONDS
                    while not self._closed and (left := gather_until - time.monotonic()) > 0:
                        self._cond.wait(left)
                seen = self._changes
            try:
                next_due = self.check()
            except Exception:  # noqa: BLE001 - keep the schedule alive; try again soon
                _log.exception("expiry monitor: check failed; retrying in %g s", _RETRY_AFTER_FAILURE)
                next_due = self._clock.now() + dt.timedelta(seconds=_RETRY_AFTER_FAILURE)

