"""Shared fixtures: real ca-agent subprocesses per test, and lab CAs (`ca-agent lab-ca`) beside them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from agentproc import AgentProcess  # noqa: E402
from labcaproc import LabCaProcess  # noqa: E402


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[callable]:
    """Make AgentProcess objects; every one still running is stopped at the end."""
    made: list[AgentProcess] = []

    def make(name: str = "data", **kwargs: object) -> AgentProcess:
        proc = AgentProcess(tmp_path / name, **kwargs)  # type: ignore[arg-type]
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.stop()


@pytest.fixture
def agent(agent_factory: callable) -> AgentProcess:
    """A started agent with a fresh data dir."""
    return agent_factory().start()


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
