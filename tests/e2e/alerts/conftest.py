"""Real receivers for the alerts: Net-SNMP's snmptrapd, a UDP syslog socket, the lab CA as its own process."""

from __future__ import annotations

import itertools
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentproc import complete_lines
from labcaproc import LabCaProcess
from rawnetconf import wait_until


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SyslogReceiver:
    """A UDP socket on 127.0.0.1 standing in for a syslog server: every datagram is one message."""

    sock: socket.socket
    received: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def drain(self) -> list[str]:
        self.sock.setblocking(False)
        try:
            while True:
                data, _ = self.sock.recvfrom(65535)
                self.received.append(data.decode("utf-8"))
        except BlockingIOError:
            pass
        return self.received

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first message matching ``pattern`` (a regex searched in each message), waiting with a deadline."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for message in self.drain():
                match = regex.search(message)
                if match:
                    return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no syslog message matches {pattern!r}; got {self.received}")
            self.sock.setblocking(True)
            self.sock.settimeout(remaining)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.received.append(data.decode("utf-8"))

    def matching(self, pattern: str) -> list[str]:
        return [m for m in self.drain() if re.search(pattern, m)]


@pytest.fixture
def syslog_receiver() -> Iterator[SyslogReceiver]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield SyslogReceiver(sock)
    sock.close()


@dataclass
class TrapDaemon:
    """snmptrapd (PEERS.md recipe) logging one line per trap: ``TRAP host [transport] OID = value~ ...``."""

    port: int
    log: Path

    def traps(self) -> list[str]:
        """The complete trap lines so far (snmptrapd may be writing the last one as this reads)."""
        return [line for line in complete_lines(self.log).splitlines() if line.startswith("TRAP ")]

    def wait_for(self, text: str, timeout: float = 20.0, count: int = 1) -> list[str]:
        found: list[str] = []

        def enough() -> bool:
            found[:] = [t for t in self.traps() if text in t]
            return len(found) >= count

        wait_until(enough, timeout, f"{count} trap(s) with {text!r} in {self.log}")
        return found


@pytest.fixture
def snmptrapd(tmp_path: Path) -> Iterator[TrapDaemon]:
    binary = shutil.which("snmptrapd") or ("/usr/sbin/snmptrapd" if Path("/usr/sbin/snmptrapd").exists() else None)
    if binary is None:
        pytest.skip("snmptrapd (Debian package snmptrapd) is not installed")
    folder = tmp_path / "snmptrapd"
    folder.mkdir()
    (folder / "snmptrapd.conf").write_text("disableAuthorization yes\n")
    port = free_udp_port()
    log = folder / "traps.log"
    proc = subprocess.Popen(
        [binary, "-f", "-C", "-c", str(folder / "snmptrapd.conf"), "-m", "", "-M", "/dev/null", "-On",
         "-Lf", str(log), "-F", "TRAP %B [%b] %V~ %v\n", f"udp:127.0.0.1:{port}"],
        env={"SNMP_PERSISTENT_DIR": str(folder / "persist"), "PATH": "/usr/sbin:/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    # snmptrapd writes its version banner to the log once it has bound the port.
    wait_until(lambda: log.exists() and "NET-SNMP version" in log.read_text() or proc.poll() is not None, 10,
             "snmptrapd to start")
    assert proc.poll() is None, log.read_text() if log.exists() else "snmptrapd exited"
    yield TrapDaemon(port, log)
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def lab_ca_process(lab_cas: Callable[..., LabCaProcess]) -> Callable[..., LabCaProcess]:
    """Lab CAs named in start order (the shared ``lab_cas`` starts and stops them)."""
    count = itertools.count()
    return lambda *options: lab_cas(f"lab-ca-{next(count)}", *options)
