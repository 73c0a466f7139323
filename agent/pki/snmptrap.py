"""CISCO-PKI-MIB traps (SNMPv2c) with pysnmp, on an asyncio loop of their own.

``ciscoPkiCertExpiryAlert`` (1.3.6.1.4.1.9.9.854.1.2) carries certSerialNum,
certSubName, certIssuerName, certType, certTpLabel and certRemainingLife;
``ciscoPkiCertInstallAlert`` (.854.1.1) carries certSerialNum, certIssuerName,
certStartDate, certEndDate, certType, certTpLabel and certSubName. All are
DisplayStrings, columns of certChainTable (.854.2.2.1.1.N) indexed by
certChainLabel, for which we use the trustpoint name (length-prefixed, as
SNMP encodes a string index).

pysnmp's API is asyncio: :class:`TrapSender` runs one event loop in its own
thread and hands each send to it, so no caller (NETCONF threads, the expiry
monitor) ever waits for SNMP.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.clock import SYSTEM_CLOCK, Clock
from agent.pki.certificate import format_router_date
from agent.pki.events import CertificateExpiring, CertificateInstalled, colon_serial, format_time_left

__all__ = [
    "Trap",
    "TrapReceiver",
    "TrapSender",
    "expiry_trap",
    "install_trap",
    "CISCO_PKI_MIB",
    "CERT_EXPIRY_ALERT",
    "CERT_INSTALL_ALERT",
    "CERT_COLUMNS",
]

_log = logging.getLogger(__name__)

CISCO_PKI_MIB = "1.3.6.1.4.1.9.9.854"
CERT_INSTALL_ALERT = f"{CISCO_PKI_MIB}.1.1"
CERT_EXPIRY_ALERT = f"{CISCO_PKI_MIB}.1.2"
_CERT_CHAIN_ENTRY = f"{CISCO_PKI_MIB}.2.2.1.1"
_SYS_UP_TIME = "1.3.6.1.2.1.1.3.0"  # SNMPv2-MIB sysUpTime.0, the first varbind of every SNMPv2 trap
CERT_COLUMNS = {
    "certSerialNum": 2,
    "certIssuerName": 3,
    "certStartDate": 4,
    "certEndDate": 5,
    "certType": 6,
    "certRemainingLife": 7,
    "certTpLabel": 8,
    "certSubName": 9,
}


@dataclass(frozen=True)
class TrapReceiver:
    """``snmp-server host ADDRESS traps version 2c COMMUNITY [udp-port PORT]``."""

    address: str
    community: str
    port: int = 162


@dataclass(frozen=True)
class Trap:
    """A notification OID and its (OID, DisplayString value) varbinds, in order."""

    oid: str
    varbinds: tuple[tuple[str, str], ...]


def _index(label: str) -> str:
    octets = label.encode("utf-8")
    return ".".join(str(n) for n in (len(octets), *octets))


def _varbinds(label: str, values: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    index = _index(label)
    return tuple((f"{_CERT_CHAIN_ENTRY}.{CERT_COLUMNS[name]}.{index}", value) for name, value in values)


def expiry_trap(event: CertificateExpiring) -> Trap:
    """``ciscoPkiCertExpiryAlert`` for one expiry notification. Raises nothing."""
    cert = event.certificate
    return Trap(
        CERT_EXPIRY_ALERT,
        _varbinds(
            cert.trustpoint,
            [
                ("certSerialNum", colon_serial(cert.serial_number)),
                ("certSubName", cert.subject),
                ("certIssuerName", cert.issuer),
                ("certType", cert.cert_type.value),
                ("certTpLabel", cert.trustpoint),
                ("certRemainingLife", format_time_left(event.time_left)),
            ],
        ),
    )


def install_trap(event: CertificateInstalled) -> Trap:
    """``ciscoPkiCertInstallAlert`` for a certificate just installed. Raises nothing."""
    cert = event.certificate
    return Trap(
        CERT_INSTALL_ALERT,
        _varbinds(
            cert.trustpoint,
            [
                ("certSerialNum", colon_serial(cert.serial_number)),
                ("certIssuerName", cert.issuer),
                ("certStartDate", format_router_date(cert.not_before)),
                ("certEndDate", format_router_date(cert.not_after)),
                ("certType", cert.cert_type.value),
                ("certTpLabel", cert.trustpoint),
                ("certSubName", cert.subject),
            ],
        ),
    )


class TrapSender:
    """Sends SNMPv2c traps from one asyncio loop in its own (daemon) thread.

    The loop and the pysnmp engine start with the first trap. sysUpTime is
    the time since this sender was made (the agent's start). Thread-safe.
    """

    def __init__(self, timeout: float = 1.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self._timeout = timeout
        self._clock = clock
        self._started = clock.monotonic()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine: Any = None  # pysnmp SnmpEngine, created in the loop's thread
        self._pending: set[concurrent.futures.Future[int]] = set()
        self._closed = False
        self.sent = 0
        self.errors = 0

    def send(self, trap: Trap, receivers: Sequence[TrapReceiver]) -> concurrent.futures.Future[int]:
        """Queue ``trap`` to every receiver; never blocks.

        The future gives the number of receivers it was sent to (errors are
        logged and counted, never raised). After :meth:`close` nothing is
        sent and the future is already done with 0.
        """
        with self._lock:
            if self._closed or not receivers:
                done: concurrent.futures.Future[int] = concurrent.futures.Future()
                done.set_result(0)
                return done
            loop = self._ensure_loop()
            uptime = int((self._clock.monotonic() - self._started) * 100) % 2**32  # TimeTicks: 1/100 s
            future = asyncio.run_coroutine_threadsafe(self._send_all(trap, tuple(receivers), uptime), loop)
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def close(self, timeout: float = 5.0) -> bool:
        """Let queued traps go (within ``timeout`` s), then stop the loop. Raises nothing."""
        with self._lock:
            if self._closed:
                return True
            self._closed = True
            pending = list(self._pending)
            loop, thread = self._loop, self._thread
        concurrent.futures.wait(pending, timeout)
        if loop is None or thread is None:
            return True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        except Exception:  # noqa: BLE001 - stop the loop whatever happened to the engine
            _log.debug("snmp: shutting the engine down failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        return not thread.is_alive()

    # ------------------------------------------------------------------ the loop's side

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()
                loop.close()

            self._thread = threading.Thread(target=run, name="snmp-trap-sender", daemon=True)
            self._thread.start()
            ready.wait(5.0)
            self._loop = loop
        return self._loop

    def _forget(self, future: concurrent.futures.Future[int]) -> None:
        with self._lock:
            self._pending.discard(future)

    async def _send_all(self, trap: Trap, receivers: tuple[TrapReceiver, ...], uptime: int) -> int:
        from pysnmp.hlapi.v3arch import asyncio as hlapi  # imported on first use: ~0.3 s

        if self._engine is None:
            self._engine = hlapi.SnmpEngine()
        notification = hlapi.NotificationType(hlapi.ObjectIdentity(trap.oid)).add_varbinds(
            (_SYS_UP_TIME, hlapi.TimeTicks(uptime)),
            *[(oid, hlapi.OctetString(value.encode("utf-8"))) for oid, value in trap.varbinds],
        )
        delivered = 0
        for receiver in receivers:
            try:
                transport = hlapi.Udp6TransportTarget if ":" in receiver.address else hlapi.UdpTransportTarget
                target = await transport.create((receiver.address, receiver.port), timeout=self._timeout, retries=0)
                error, _, _, _ = await hlapi.send_notification(
                    self._engine,
                    hlapi.CommunityData(receiver.community, mpModel=1),
                    target,
                    hlapi.ContextData(),
                    "trap",
                    notification,
                )
            except Exception as exc:  # noqa: BLE001 - one bad receiver must not stop the others
                error = exc
            if error:
                self.errors += 1
                _log.warning("snmp: trap %s to %s port %d failed: %s", trap.oid, receiver.address, receiver.port, error)
                continue
            self.sent += 1
            delivered += 1
        return delivered

    async def _shutdown(self) -> None:
        """Close pysnmp's dispatcher and let the tasks it cancels finish (no 'Task was destroyed' at exit)."""
        if self._engine is not None:
            self._engine.close_dispatcher()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
