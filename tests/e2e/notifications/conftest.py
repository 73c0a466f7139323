"""Fixtures of the NETCONF notification tests (RFC 5277, RFC 6470, ca-agent-crypto notifications)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/e2e: nacm_e2e_helpers

from labcaproc import LabCaProcess  # noqa: E402


@pytest.fixture
def lab_cas(tmp_path: Path) -> Iterator[callable]:
    """Start `ca-agent lab-ca` processes; all stopped at teardown."""
    started: list[LabCaProcess] = []

    def start(name: str, *options: str) -> LabCaProcess:
        proc = LabCaProcess(tmp_path / name, *options).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
