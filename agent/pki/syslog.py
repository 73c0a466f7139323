"""The router's log lines: the in-memory buffer and syslog over UDP (RFC 5424, or RFC 3164).

Every line the agent logs in the router's format (``%FACILITY-SUB-N-MNEMONIC
: text``, e.g. ``%SECURITY-CEPKI-6-INFO`` or the expiry alerts) is captured
from Python logging by :class:`RouterLogHandler`, kept in the
:class:`LogBuffer` (``show logging``) and queued to the :class:`SyslogSender`,
whose own thread sends one datagram per configured host. Logging never
waits for the network: the handler only appends and enqueues, so it may run
in any thread, whatever locks that thread holds.

:func:`expiry_message` formats the seed's expiry lines.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import logging
import os
import queue
import re
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.clock import SYSTEM_CLOCK, Clock
from agent.pki.events import AlertMode, CertificateExpiring, colon_serial, format_time_left

__all__ = [
    "Severity",
    "SyslogFormat",
    "SyslogHost",
    "LogLine",
    "LogBuffer",
    "SyslogSender",
    "RouterLogHandler",
    "parse_router_line",
    "format_rfc5424",
    "format_rfc3164",
    "expiry_message",
    "python_level",
    "APP_NAME",
    "FACILITY_LOCAL7",
]

_log = logging.getLogger(__name__)

APP_NAME = "ca-agent"
FACILITY_LOCAL7 = 23  # the router's default syslog facility
_QUEUE_LIMIT = 10_000  # lines waiting to be sent; beyond this they are dropped (and counted)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ROUTER_LINE = re.compile(r"%([A-Z0-9_]+)-([A-Z0-9_]+)-([0-7])-([A-Z0-9_]+)\s?:")


class Severity(enum.IntEnum):
    """Syslog severities (RFC 5424 6.2.1), named as the router's ``logging ... severity`` keywords."""

    EMERGENCIES = 0
    ALERTS = 1
    CRITICAL = 2
    ERRORS = 3
    WARNINGS = 4
    NOTIFICATIONS = 5
    INFORMATIONAL = 6
    DEBUGGING = 7

    @property
    def keyword(self) -> str:
        """``informational``, ``alerts``... (the YANG enum). Raises nothing."""
        return self.name.lower()

    @classmethod
    def from_keyword(cls, word: str) -> Severity:
        """Raises ValueError for an unknown keyword."""
        try:
            return cls[word.upper()]
        except KeyError:
            raise ValueError(f"unknown severity {word!r}") from None


class SyslogFormat(enum.Enum):
    RFC5424 = "rfc5424"
    RFC3164 = "rfc3164"


@dataclass(frozen=True)
class SyslogHost:
    """A configured syslog server (``logging host ADDRESS ...``)."""

    address: str
    port: int = 514
    format: SyslogFormat = SyslogFormat.RFC5424
    severity: Severity = Severity.INFORMATIONAL


@dataclass(frozen=True)
class LogLine:
    """One logged line."""

    sequence: int
    time: dt.datetime
    severity: Severity
    message: str


def parse_router_line(message: str) -> tuple[Severity, str] | None:
    """Severity and mnemonic of a ``%FAC-SUB-N-MNEMONIC :`` line; None for other text. Raises nothing."""
    match = _ROUTER_LINE.match(message)
    if match is None:
        return None
    return Severity(int(match.group(3))), match.group(4)


def python_level(severity: Severity) -> int:
    """The Python logging level a line of ``severity`` is logged at. Raises nothing."""
    if severity <= Severity.CRITICAL:
        return logging.CRITICAL
    if severity is Severity.ERRORS:
        return logging.ERROR
    if severity is Severity.WARNINGS:
        return logging.WARNING
    if severity is Severity.DEBUGGING:
        return logging.DEBUG
    return logging.INFO


# --------------------------------------------------------------------------- message formats


def _pri(severity: Severity, facility: int) -> str:
    return f"<{facility * 8 + int(severity)}>"


def format_rfc5424(line: LogLine, hostname: str, *, facility: int = FACILITY_LOCAL7, procid: int | None = None) -> bytes:
    """``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`` (RFC 5424 section 6). Raises nothing.

    MSGID is the line's mnemonic (``CERT_EXPIRING_ALERT``), ``-`` for other text.
    """
    utc = line.time.astimezone(dt.UTC)
    stamp = f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"
    parsed = parse_router_line(line.message)
    msgid = parsed[1][:32] if parsed else "-"
    host = _header_word(hostname, 255)
    pid = os.getpid() if procid is None else procid
    header = f"{_pri(line.severity, facility)}1 {stamp} {host} {APP_NAME} {pid} {msgid} -"
    return f"{header} {line.message}".encode()


def format_rfc3164(line: LogLine, hostname: str, *, facility: int = FACILITY_LOCAL7, procid: int | None = None) -> bytes:
    """``<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`` (RFC 3164 section 4.1). Raises nothing.

    The hostname without its domain, as RFC 3164 asks.
    """
    utc = line.time.astimezone(dt.UTC)
    stamp = f"{_MONTHS[utc.month - 1]} {utc.day:>2} {utc:%H:%M:%S}"
    host = _header_word(hostname.split(".")[0], 255)
    pid = os.getpid() if procid is None else procid
    return f"{_pri(line.severity, facility)}{stamp} {host} {APP_NAME}[{pid}]: {line.message}".encode()


def _header_word(text: str, limit: int) -> str:
    word = "".join(c for c in text if "!" <= c <= "~")[:limit]
    return word or "-"


def expiry_message(event: CertificateExpiring) -> tuple[Severity, str]:
    """The router's syslog line for one expiry notification, and its severity.

    Alert mode is the seed's line (severity 1); warning mode is
    ``%SECURITY-CEPKI-4-CERT_EXPIRING_WARNING : Certificate expiring WITHIN
    60 DAYS.`` with the same fields (severity 4). Raises nothing.
    """
    cert = event.certificate
    fields = (
        f"Trustpoint Name= {cert.trustpoint}, Certificate Type= {cert.cert_type.value}, "
        f"Serial Number= {colon_serial(cert.serial_number)}, Issuer Name= {cert.issuer}, "
        f"Subject name= {cert.subject}, Time Left= {format_time_left(event.time_left)}"
    )
    if event.mode is AlertMode.ALERT:
        return Severity.ALERTS, f"%SECURITY-CEPKI-1-CERT_EXPIRING_ALERT : Certificate expiring WITHIN A WEEK. {fields}"
    return Severity.WARNINGS, f"%SECURITY-CEPKI-4-CERT_EXPIRING_WARNING : Certificate expiring WITHIN 60 DAYS. {fields}"


# --------------------------------------------------------------------------- the buffer


class LogBuffer:
    """The last ``size`` lines (``logging buffered``). Thread-safe; no I/O."""

    def __init__(self, size: int = 200, clock: Clock = SYSTEM_CLOCK) -> None:
        """Raises ValueError for a size below 1."""
        if size < 1:
            raise ValueError("the log buffer needs room for at least one line")
        self._lock = threading.Lock()
        self._lines: collections.deque[LogLine] = collections.deque(maxlen=size)
        self._clock = clock
        self._logged = 0

    def append(self, severity: Severity, message: str) -> LogLine:
        """Keep a line (the oldest goes when full); returns it with its sequence number. Raises nothing."""
        with self._lock:
            self._logged += 1
            line = LogLine(self._logged, self._clock.now(), severity, message)
            self._lines.append(line)
            return line

    def resize(self, size: int) -> None:
        """Keep at most ``size`` lines from now on (the newest are kept). Raises ValueError below 1."""
        if size < 1:
            raise ValueError("the log buffer needs room for at least one line")
        with self._lock:
            if self._lines.maxlen != size:
                self._lines = collections.deque(self._lines, maxlen=size)

    @property
    def size(self) -> int:
        """How many lines the buffer keeps."""
        with self._lock:
            return self._lines.maxlen or 0

    @property
    def logged(self) -> int:
        """Lines logged since start (including those the buffer dropped)."""
        with self._lock:
            return self._logged

    def lines(self) -> list[LogLine]:
        """The lines held, oldest first. Raises nothing."""
        with self._lock:
            return list(self._lines)


# --------------------------------------------------------------------------- sending


class SyslogSender:
    """Sends queued lines to the configured hosts over UDP, from its own thread.

    ``hostname`` gives the HOSTNAME field (read when a line is sent).
    Thread-safe. Send errors are counted and logged (not in router format,
    so they are not sent again).
    """

    def __init__(self, hostname: Callable[[], str]) -> None:
        self._hostname = hostname
        self._cond = threading.Condition(threading.Lock())
        self._hosts: tuple[SyslogHost, ...] = ()
        self._sent: dict[tuple[str, int], int] = {}
        self._errors = 0
        self._dropped = 0
        self._pending = 0
        self._queue: queue.Queue[LogLine | None] = queue.Queue(_QUEUE_LIMIT)
        self._closed = False
        self._thread: threading.Thread | None = None

    def configure(self, hosts: Sequence[SyslogHost]) -> None:
        """Send future lines to ``hosts`` (replacing the previous list). Raises nothing."""
        with self._cond:
            self._hosts = tuple(hosts)
            keep = {(h.address, h.port) for h in hosts}
            self._sent = {k: v for k, v in self._sent.items() if k in keep}

    @property
    def hosts(self) -> tuple[SyslogHost, ...]:
        """The configured hosts."""
        with self._cond:
            return self._hosts

    def sent(self, host: SyslogHost) -> int:
        """Lines sent to ``host`` since it was configured. Raises nothing."""
        with self._cond:
            return self._sent.get((host.address, host.port), 0)

    @property
    def dropped(self) -> int:
        """Lines dropped because the queue was full."""
        with self._cond:
            return self._dropped

    def submit(self, line: LogLine) -> None:
        """Queue ``line`` for every host whose severity admits it; never blocks. Raises nothing."""
        with self._cond:
            if self._closed or not any(line.severity <= h.severity for h in self._hosts):
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="syslog-sender", daemon=True)
                self._thread.start()
            try:
                self._queue.put_nowait(line)
            except queue.Full:
                self._dropped += 1
                return
            self._pending += 1

    def flush(self, timeout: float) -> bool:
        """Wait until every queued line was sent (or failed); True if so within ``timeout`` s. Raises nothing."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Send what is queued (within ``timeout`` s), then stop. Raises nothing."""
        with self._cond:
            if self._closed:
                return True
            self._closed = True
            thread = self._thread
        if thread is None:
            return True
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return False
        thread.join(timeout)
        return not thread.is_alive()

    def _loop(self) -> None:
        sockets: dict[int, socket.socket] = {}
        try:
            while True:
                line = self._queue.get()  # blocks until a line (or the stop marker) arrives
                if line is None:
                    return
                try:
                    self._send(line, sockets)
                finally:
                    with self._cond:
                        self._pending -= 1
                        self._cond.notify_all()
        finally:
            for sock in sockets.values():
                sock.close()

    def _send(self, line: LogLine, sockets: dict[int, socket.socket]) -> None:
        with self._cond:
            hosts = self._hosts
        if not hosts:
            return
        hostname = self._hostname()
        for host in hosts:
            if line.severity > host.severity:
                continue
            formatter = format_rfc3164 if host.format is SyslogFormat.RFC3164 else format_rfc5424
            family = socket.AF_INET6 if ":" in host.address else socket.AF_INET
            try:
                sock = sockets.get(family)
                if sock is None:
                    sock = sockets[family] = socket.socket(family, socket.SOCK_DGRAM)
                sock.sendto(formatter(line, hostname), (host.address, host.port))
            except OSError as exc:
                with self._cond:
                    self._errors += 1
                _log.warning("syslog: sending to %s port %d failed: %s", host.address, host.port, exc)
                continue
            with self._cond:
                key = (host.address, host.port)
                self._sent[key] = self._sent.get(key, 0) + 1


class RouterLogHandler(logging.Handler):
    """A logging handler that passes the router-format lines (``%FAC-SUB-N-MNEMONIC :``) to ``sink``.

    ``sink(severity, message)`` must not block (it appends to the buffer and
    queues for sending). Other records are ignored.
    """

    def __init__(self, sink: Callable[[Severity, str], None]) -> None:
        super().__init__()
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        """Pass a router-format record on; ignore others. Raises nothing."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not break logging
            return
        parsed = parse_router_line(message)
        if parsed is None:
            return
        try:
            self._sink(parsed[0], message)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)
