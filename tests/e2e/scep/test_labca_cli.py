"""``lab-ca`` as a separate process: serve, approve from another process, stop on SIGTERM."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.labca.cli import main as lab_ca_main
from agent.labca.server import MAX_CONNECTIONS
from agent.pki.scep import PkiStatus, ScepClient

REPO = Path(__file__).resolve().parents[3]
LAUNCH = "import sys; from agent.labca.cli import main; sys.exit(main(sys.argv[1:]))"
READY = re.compile(r"lab-ca listening on (http://\S+/scep)")
START_TIMEOUT = 30.0


def _lab_ca_command(*args: str) -> list[str]:
    return [sys.executable, "-c", LAUNCH, *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _wait_for_url(proc: subprocess.Popen[str]) -> str:
    """Read stderr until the ready line, within START_TIMEOUT seconds."""
    assert proc.stderr is not None
    deadline = time.monotonic() + START_TIMEOUT
    seen: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stderr, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"lab-ca did not become ready: {seen}")
            if not selector.select(remaining):
                continue
            line = proc.stderr.readline()
            if not line:
                raise AssertionError(f"lab-ca exited ({proc.wait(5)}): {seen}")
            seen.append(line)
            match = READY.search(line)
            if match:
                return match.group(1)


@pytest.fixture
def lab_ca_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    data_dir = tmp_path / "lab"
    proc = subprocess.Popen(
        _lab_ca_command("--port", "0", "--data-dir", str(data_dir), "--manual-approval", "--challenge", "pw"),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=_env(),
        cwd=tmp_path,
    )
    try:
        yield proc, _wait_for_url(proc), data_dir
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_labca_cli_serve_approve_and_sigterm(lab_ca_process, rsa_key, make_csr) -> None:
    proc, url, data_dir = lab_ca_process
    assert url.startswith("http://127.0.0.1:")
    client = ScepClient(url, timeout=10)
    ca_certs = client.get_ca_certificates()
    csr = make_csr(rsa_key, cn="cli-host", challenge="pw")
    pending = client.enroll(csr, rsa_key, ca_certs)
    assert pending.status is PkiStatus.PENDING

    listed = subprocess.run(
        _lab_ca_command("list", "--data-dir", str(data_dir)),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=True,
    )
    assert pending.transaction_id in listed.stdout
    subprocess.run(
        _lab_ca_command("approve", pending.transaction_id, "--data-dir", str(data_dir)),
        capture_output=True,
        env=_env(),
        timeout=60,
        check=True,
    )
    issued = client.poll(pending.transaction_id, csr.subject, rsa_key, ca_certs)
    assert issued.status is PkiStatus.SUCCESS, issued.message
    assert issued.certificate is not None

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_labca_cli_usage_and_missing_ca(tmp_path: Path, capsys) -> None:
    assert lab_ca_main([]) == 2  # serve needs --port and --data-dir
    assert lab_ca_main(["approve"]) == 2
    assert lab_ca_main(["list", "--data-dir", str(tmp_path / "nothing")]) == 1
    assert "there is no lab CA" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()
    assert lab_ca_main(["revoke", "zz", "--data-dir", str(tmp_path)]) == 2


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def test_clients_that_send_nothing_get_at_most_max_connections_threads_and_then_others_are_served(
    lab_ca_process,
) -> None:
    """Before: a thread per connection, each held for 30 s by a client that sends nothing (150 such: 150 threads)."""
    proc, url, _ = lab_ca_process
    host, port = url.split("/")[2].split(":")
    baseline = _threads(proc.pid)
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(150)]
    try:
        time.sleep(1.0)
        busy = _threads(proc.pid)
        assert MAX_CONNECTIONS <= busy - baseline <= MAX_CONNECTIONS + 2, (baseline, busy)
    finally:
        for sock in idle:
            sock.close()
    start = time.monotonic()
    assert ScepClient(url, timeout=20).get_ca_caps() is not None  # the idle ones gone, served again
    assert time.monotonic() - start < 10.0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
