"""Run `ca-agent lab-ca` as its own process, as an operator would."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from agentproc import spawn_until_ready

READY = re.compile(r"lab-ca listening on (http://\S+)")


class LabCaProcess:
    """`python -m agent lab-ca --port 0 --data-dir D ...` and its approve/reject commands."""

    def __init__(self, data_dir: Path, *options: str) -> None:
        self.data_dir = data_dir
        self.options = list(options)
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: list[str] = []

    def start(self, timeout: float = 30.0) -> LabCaProcess:
        """Start and wait for the ready line. Raises RuntimeError."""
        self.proc, match, self.log = spawn_until_ready(
            [sys.executable, "-m", "agent", "lab-ca", "--port", "0", "--data-dir", str(self.data_dir), *self.options],
            READY,
            timeout=timeout,
        )
        if match is None:
            self.stop()
            raise RuntimeError("lab-ca did not start:\n" + "".join(self.log))
        self.url = match.group(1)
        return self

    def command(self, *args: str) -> str:
        """Run `ca-agent lab-ca ARGS --data-dir D`; returns stdout. Raises CalledProcessError."""
        done = subprocess.run(
            [sys.executable, "-m", "agent", "lab-ca", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    @property
    def ca_pem(self) -> Path:
        return self.data_dir / "ca.pem"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        self.proc = None
