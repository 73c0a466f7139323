"""Alerts: /logging and /snmp-server configuration, the expiry monitor, and where events go.

Wires the PKI side (expiry monitor, enrollment listener, certificate store
changes) to the event bus, and the bus to its sinks:

- syslog: expiry notifications become the router's lines
  (``%SECURITY-CEPKI-1-CERT_EXPIRING_ALERT : ...``), logged like every other
  router-format line; :class:`~agent.pki.syslog.RouterLogHandler` puts every
  such line in the buffer (``show logging``) and sends it to the
  ``/logging/host`` list;
- SNMP: with ``/snmp-server/traps/pki``, CISCO-PKI-MIB expiry and install
  traps to every ``/snmp-server/host``.

State: ``/logging`` (counters and the buffer's lines) and, per alerting
certificate, ``expiry-alert`` (next and last notification).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from agent.clock import SYSTEM_CLOCK, Clock
from agent.netconf.dispatch import NetconfAgent
from agent.netconf.scope import EVERYTHING, StateScope
from agent.pki.certstore import CertificateStore
from agent.pki.enrollment import Pki
from agent.pki.events import (
    CertificateExpiring,
    CertificateInstalled,
    CertificateType,
    PkiEvent,
    enrollment_event,
)
from agent.pki.expiry import STATE_FILE, ExpiryMonitor, ExpiryStatus, trustpoint_certificates
from agent.pki.snmptrap import TrapReceiver, TrapSender, expiry_trap, install_trap
from agent.pki.syslog import (
    LogBuffer,
    RouterLogHandler,
    Severity,
    SyslogFormat,
    SyslogHost,
    SyslogSender,
    expiry_message,
    python_level,
)
from agent.pki.trustpoint import EnrollmentRequest
from agent.services.events import EventBus
from agent.services.keys import USAGE_NAMES
from agent.services.system import SYS_NS
from agent.services.trustpoints import TRUSTPOINT_TAGS, trustpoint_entry
from agent.services.yangio import container, leaf, tag

__all__ = ["AlertConfig", "AlertService", "alert_config", "DEFAULT_BUFFER_SIZE"]

_log = logging.getLogger(__name__)
# Expiry lines are logged here; the router-line handler on the "agent" logger picks them up.
_expiry_log = logging.getLogger("agent.pki.expiry.syslog")

DEFAULT_BUFFER_SIZE = 200  # the YANG default of /logging/buffered/size
_ROOT_LOGGER = "agent"


def _s(name: str) -> str:
    return tag(name, SYS_NS)


@dataclass(frozen=True)
class AlertConfig:
    """What the running configuration says about logging and SNMP."""

    syslog_hosts: tuple[SyslogHost, ...] = ()
    buffer_size: int = DEFAULT_BUFFER_SIZE
    trap_receivers: tuple[TrapReceiver, ...] = ()
    pki_traps: bool = False


def alert_config(running: etree._Element) -> AlertConfig:
    """Read /logging and /snmp-server from a (valid) configuration tree. Raises nothing."""
    hosts = []
    for entry in running.iterfind(f"{_s('logging')}/{_s('host')}"):
        hosts.append(
            SyslogHost(
                address=entry.findtext(_s("address")) or "",
                port=int(entry.findtext(_s("port")) or 514),
                format=SyslogFormat(entry.findtext(_s("format")) or SyslogFormat.RFC5424.value),
                severity=Severity.from_keyword(entry.findtext(_s("severity")) or "informational"),
            )
        )
    size = running.findtext(f"{_s('logging')}/{_s('buffered')}/{_s('size')}")
    receivers = []
    for entry in running.iterfind(f"{_s('snmp-server')}/{_s('host')}"):
        receivers.append(
            TrapReceiver(
                address=entry.findtext(_s("address")) or "",
                community=entry.findtext(_s("community")) or "",
                port=int(entry.findtext(_s("port")) or 162),
            )
        )
    pki = running.find(f"{_s('snmp-server')}/{_s('traps')}/{_s('pki')}") is not None
    return AlertConfig(tuple(hosts), int(size) if size else DEFAULT_BUFFER_SIZE, tuple(receivers), pki)


class AlertService:
    """The expiry monitor, the event bus and its syslog and SNMP sinks, and their configuration."""

    def __init__(
        self,
        *,
        pki: Pki,
        certstore: CertificateStore,
        data_dir: Path,
        running: Callable[[], etree._Element],
        hostname: Callable[[], str],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """Build (nothing runs until :meth:`register`). Raises nothing."""
        self._pki = pki
        self._certstore = certstore
        self._running = running
        self._clock = clock
        self._lock = threading.Lock()
        self._config = AlertConfig()
        self.bus = EventBus()
        self.buffer = LogBuffer(DEFAULT_BUFFER_SIZE, clock)
        self.syslog = SyslogSender(hostname)
        self.traps = TrapSender()
        self.monitor = ExpiryMonitor(
            lambda names: trustpoint_certificates(pki, certstore, names),
            Path(data_dir) / STATE_FILE,
            self.bus.publish,
            clock=clock,
        )
        self._handler = RouterLogHandler(self._log_line)

    def register(self, agent: NetconfAgent) -> None:
        """Apply the running configuration, start listening and the monitor. Raises nothing."""
        agent.add_state_provider(self.logging_state, produces=[_s("logging")])
        agent.add_state_provider(self.expiry_state, produces=[tag("crypto")], scoped=True)
        agent.datastores.add_commit_listener(self.committed)
        self.apply(alert_config(self._running()))
        logging.getLogger(_ROOT_LOGGER).addHandler(self._handler)
        self.bus.subscribe(self.syslog_sink)
        self.bus.subscribe(self.snmp_sink)
        self._pki.add_listener(self._enrollment_finished)
        self._certstore.add_listener(self.monitor.certificates_changed)
        self.monitor.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the monitor, deliver queued events, lines and traps (bounded), stop. Raises nothing."""
        self.monitor.close(timeout)
        self.bus.close(timeout)
        logging.getLogger(_ROOT_LOGGER).removeHandler(self._handler)
        self.syslog.close(timeout)
        self.traps.close(timeout)

    def key_pairs_changed(self, labels: Collection[str]) -> None:
        """Key pairs were generated or zeroized: the certificates of their trustpoints may have lost their key.

        Only the trustpoints using those labels are looked at again. Raises nothing.
        """
        names = self._pki.trustpoints_using(labels)
        if names is None:
            self.monitor.certificates_changed()
            return
        for name in names:
            self.monitor.certificates_changed(name)

    # ------------------------------------------------------------------ configuration

    def committed(self, old: etree._Element, new: etree._Element) -> None:
        """Commit listener: take the new /logging and /snmp-server. Raises nothing."""
        self.apply(alert_config(new))

    def apply(self, config: AlertConfig) -> None:
        """Use ``config`` from now on (no I/O). Raises nothing."""
        with self._lock:
            self._config = config
        self.buffer.resize(config.buffer_size)
        self.syslog.configure(config.syslog_hosts)

    @property
    def config(self) -> AlertConfig:
        """The configuration in use."""
        with self._lock:
            return self._config

    # ------------------------------------------------------------------ sinks

    def _log_line(self, severity: Severity, message: str) -> None:
        """RouterLogHandler's sink: keep the line, queue it for the hosts (never blocks)."""
        self.syslog.submit(self.buffer.append(severity, message))

    def syslog_sink(self, event: PkiEvent) -> None:
        """Expiry notifications as the router's syslog lines. Raises nothing."""
        if isinstance(event, CertificateExpiring):
            severity, message = expiry_message(event)
            _expiry_log.log(python_level(severity), "%s", message)

    def snmp_sink(self, event: PkiEvent) -> None:
        """CISCO-PKI-MIB traps, when ``snmp-server traps pki`` is configured. Raises nothing."""
        config = self.config
        if not config.pki_traps or not config.trap_receivers:
            return
        if isinstance(event, CertificateExpiring):
            self.traps.send(expiry_trap(event), config.trap_receivers)
        elif isinstance(event, CertificateInstalled):
            self.traps.send(install_trap(event), config.trap_receivers)

    def _enrollment_finished(self, record: EnrollmentRequest) -> None:
        # Runs under the enrollment's trustpoint lock: only queue the event.
        event = enrollment_event(record, self._clock.now())
        if event is not None:
            self.bus.publish(event)

    # ------------------------------------------------------------------ state

    def logging_state(self) -> list[etree._Element]:
        """/logging: per host messages-sent, the buffer's counter and lines. Raises nothing."""
        root = container("logging", SYS_NS)
        for host in self.syslog.hosts:
            entry = etree.SubElement(root, _s("host"))
            leaf(entry, "address", host.address, SYS_NS)
            leaf(entry, "messages-sent", self.syslog.sent(host), SYS_NS)
        buffered = etree.SubElement(root, _s("buffered"))
        leaf(buffered, "messages-logged", self.buffer.logged, SYS_NS)
        for line in self.buffer.lines():
            entry = etree.SubElement(buffered, _s("entry"))
            leaf(entry, "sequence", line.sequence, SYS_NS)
            leaf(entry, "time", _milliseconds(line.time), SYS_NS)
            leaf(entry, "severity", line.severity.keyword, SYS_NS)
            leaf(entry, "message", line.message, SYS_NS)
        return [root]

    def expiry_state(self, scope: StateScope = EVERYTHING) -> list[etree._Element]:
        """``expiry-alert`` of every alerting certificate of a configured trustpoint. Raises nothing.

        Only of the trustpoints ``scope`` names, when it does (a <get> of one trustpoint).
        """
        try:
            alerting = self.monitor.status()
        except OSError as exc:
            _log.warning("expiry state unavailable: %s", exc)
            return []
        if not alerting:  # the common case: no lookups in running at all
            return []
        wanted = scope.list_keys(TRUSTPOINT_TAGS, tag("name"))
        running = self._running()
        if wanted is not None:
            configured = {name for name in wanted if trustpoint_entry(running, name) is not None}
        else:
            configured = {
                e.text or ""
                for e in running.iterfind(f"{tag('crypto')}/{tag('ca')}/{tag('trustpoint')}/{tag('name')}")
            }
        statuses = [s for s in alerting if s.trustpoint in configured]
        if not statuses:
            return []
        crypto = container("crypto")
        ca = etree.SubElement(crypto, tag("ca"))
        for name, group in _by_trustpoint(statuses):
            entry = etree.SubElement(ca, tag("trustpoint"))
            leaf(entry, "name", name)
            for status in group:
                if status.cert_type is CertificateType.CA:
                    holder = etree.SubElement(entry, tag("ca-certificate"))
                elif status.cert_type is CertificateType.ID and status.key_usage is not None:
                    holder = etree.SubElement(entry, tag("certificate"))
                    leaf(holder, "key-usage", USAGE_NAMES[status.key_usage])
                else:
                    continue
                alert = etree.SubElement(holder, tag("expiry-alert"))
                if status.next_time is not None and status.next_mode is not None:
                    leaf(alert, "next-notification", status.next_time)
                    leaf(alert, "next-mode", status.next_mode.value)
                if status.last_time is not None and status.last_mode is not None:
                    leaf(alert, "last-notification", status.last_time)
                    leaf(alert, "last-mode", status.last_mode.value)
        return [crypto]


def _milliseconds(when: dt.datetime) -> str:
    """A yang:date-and-time with milliseconds (log lines are told apart by them)."""
    utc = when.astimezone(dt.UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _by_trustpoint(statuses: Iterable[ExpiryStatus]) -> list[tuple[str, list[ExpiryStatus]]]:
    groups: dict[str, list[ExpiryStatus]] = {}
    for status in statuses:
        groups.setdefault(status.trustpoint, []).append(status)
    return sorted(groups.items())
