"""Shared fixtures: a real ca-agent subprocess per test (or per module)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from agentproc import AgentProcess  # noqa: E402


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
