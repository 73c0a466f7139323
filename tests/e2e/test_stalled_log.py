"""No one reads the agent's standard error: the agent must go on serving (its log waits, then drops).

Before, log lines were written by the thread that logged: once the pipe was
full (64 KiB), the session that answered an rpc-error hung in that write and
every later log call waited behind it, a new login included.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ncclient.operations import RPCError

from agentproc import READY, AgentProcess

CRYPTO = "urn:ca-agent:yang:crypto"
SYS = "urn:ca-agent:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
# each refused edit logs one line of ~2 KB (the unknown element's name is in it)
BAD_EDIT = f'<config xmlns="{NC}"><crypto xmlns="{CRYPTO}"><{"z" * 2000}/></crypto></config>'


def _refuse(session: object, count: int) -> float:
    """Send ``count`` edits the agent refuses; the slowest answer's time in seconds."""
    slowest = 0.0
    for _ in range(count):
        started = time.monotonic()
        try:
            session.edit_config(target="candidate", config=BAD_EDIT)  # type: ignore[attr-defined]
        except RPCError as error:
            assert error.tag == "unknown-element"
        slowest = max(slowest, time.monotonic() - started)
    return slowest


def _start_unread(tmp_path: Path) -> tuple[AgentProcess, subprocess.Popen[bytes]]:
    """An agent whose standard error is read until it is ready, and then no more."""
    agent = AgentProcess(tmp_path / "data")  # for its connect() and environment only
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--data-dir", str(agent.data_dir), "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=agent.env,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not agent.port:
        match = READY.search(proc.stderr.readline().decode())
        if match:
            agent.port = int(match.group(2))
    if not agent.port:
        proc.kill()
        raise AssertionError("the agent did not become ready")
    return agent, proc


def test_an_unread_standard_error_stops_no_session_and_no_login(tmp_path: Path) -> None:
    agent, proc = _start_unread(tmp_path)
    assert proc.stderr is not None
    try:
        flooding = agent.connect(timeout=10)
        # 1,200 lines of 2 KB: the pipe (64 KiB) and the agent's queue (1 MiB) both fill up.
        slowest = _refuse(flooding, 1200)
        assert slowest < 5.0, f"an rpc-error took {slowest:.1f} s to come back"
        second = agent.connect(timeout=10)  # a login logs too
        second.edit_config(target="candidate", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">stalled</hostname></config>')
        second.commit()
        assert "stalled" in second.get_config(source="running").data_xml
        second.close_session()

        # The reader comes back: what was queued is written, with how many lines were dropped.
        received: list[bytes] = []
        pump = threading.Thread(target=lambda: received.extend(iter(proc.stderr.readline, b"")), daemon=True)
        pump.start()
        _refuse(flooding, 1)
        flooding.close_session()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        pump.join(10)
        text = b"".join(received).decode("utf-8", "replace")
        dropped = re.search(r"ca-agent: (\d+) log lines dropped: standard error was not being read", text)
        assert dropped and int(dropped.group(1)) > 0, text[-2000:]
        assert "shutting down (SIGTERM)" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_agent_stops_on_sigterm_with_standard_error_unread(tmp_path: Path) -> None:
    agent, proc = _start_unread(tmp_path)
    try:
        with agent.connect(timeout=10) as session:
            _refuse(session, 100)  # 200 KB of log: more than the pipe holds
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0  # the log gives up on its reader after a few seconds
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
