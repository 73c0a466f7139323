"""Start the real `ca-agent` as a subprocess and talk to it with ncclient."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ncclient import manager
from ncclient.transport import session as nc_session

# ncclient polls its socket every TICK seconds before writing a queued request;
# the default (0.1 s) would add up to 100 ms to every RPC of the suite.
nc_session.TICK = 0.005

ADMIN_PASSWORD = "test-admin-pw"
READY = re.compile(r"ready: NETCONF over SSH on (\S+) port (\d+)")


def spawn_until_ready(
    argv: list[str],
    ready: re.Pattern[str],
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    timeout: float = 30.0,
) -> tuple[subprocess.Popen[bytes], re.Match[str] | None, list[str]]:
    """Start ``argv`` and wait (with a deadline) for a stderr line matching ``ready``.

    Returns the process, the match (None if it exited or timed out first) and
    the stderr lines so far; stderr keeps being drained (and appended to
    ``log_path``) for the life of the process.
    """
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    lines: list[str] = []
    found: list[re.Match[str]] = []
    done = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        log = open(log_path, "a", encoding="utf-8") if log_path is not None else None
        try:
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace")
                lines.append(line)
                if log is not None:
                    log.write(line)
                    log.flush()
                match = ready.search(line)
                if match and not found:
                    found.append(match)
                    done.set()
        finally:
            if log is not None:
                log.close()
            done.set()

    threading.Thread(target=pump, daemon=True).start()
    done.wait(timeout)
    return proc, (found[0] if found else None), lines


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Await a condition with a deadline (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def complete_lines(path: Path) -> str:
    """The complete lines of a log another thread or process may be appending to ("" if there is none).

    A reader can see a line cut short while it is being written: a 4 KB line
    was once read cut at a page boundary, after the wait for its first words
    had ended.
    """
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return text[: text.rfind("\n") + 1]


class AgentProcess:
    """One `ca-agent` subprocess on a free port with its own data dir."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.env = dict(os.environ, CA_AGENT_ADMIN_PASSWORD=ADMIN_PASSWORD, PYTHONUNBUFFERED="1")
        if env:
            self.env.update(env)
        self.args = list(args or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, port: int = 0, timeout: float = 30.0) -> AgentProcess:
        """Start and wait until the agent says it is ready. Raises RuntimeError."""
        self.proc, match, lines = spawn_until_ready(
            [sys.executable, "-m", "agent", "--data-dir", str(self.data_dir), "--port", str(port), *self.args],
            READY,
            self.env,
            self.log_path,
            timeout,
        )
        if match is None:
            self.stop()
            raise RuntimeError("ca-agent did not become ready:\n" + "".join(lines))
        self.port = int(match.group(2))
        return self

    def log_text(self) -> str:
        """The log's complete lines so far."""
        return complete_lines(self.log_path)

    def log_until(self, text: str, timeout: float = 10.0) -> str:
        """The log's complete lines once one holds ``text``. Raises AssertionError after ``timeout`` s.

        A line the agent logs before a reply can reach the file after the
        reply: the agent queues long lines for its log thread, and the tests'
        pump copies standard error to the file on a thread of its own.
        """
        log = ""

        def logged() -> bool:
            nonlocal log
            log = self.log_text()
            return text in log

        wait_until(logged, timeout, f"{text!r} in the agent's log")
        return log

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def connect(self, username: str = "admin", password: str = ADMIN_PASSWORD, **kwargs: Any) -> manager.Manager:
        params: dict[str, Any] = dict(
            host="127.0.0.1",
            port=self.port,
            username=username,
            password=password,
            hostkey_verify=False,
            allow_agent=False,
            look_for_keys=False,
            timeout=60,
        )
        params.update(kwargs)
        return manager.connect(**params)
