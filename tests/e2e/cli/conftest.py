"""Fixtures for the ca-cli end-to-end tests: a real agent, the lab CA as its own process, the CLI in a pty."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_e2e_helpers import CHALLENGE, FAST, Cli  # noqa: E402

from agentproc import AgentProcess  # noqa: E402
from labcaproc import LabCaProcess  # noqa: E402


@pytest.fixture
def cli_factory(tmp_path: Path) -> Iterator[Callable[..., Cli]]:
    made: list[Cli] = []

    def make(agent: AgentProcess, *args: str) -> Cli:
        cli = Cli(agent, tmp_path, *args)
        made.append(cli)
        return cli

    yield make
    for cli in made:
        if cli.child.isalive():
            cli.child.terminate(force=True)


@pytest.fixture
def lab_ca(tmp_path: Path) -> Iterator[LabCaProcess]:
    ca = LabCaProcess(tmp_path / "lab-ca", "--challenge", CHALLENGE).start()
    yield ca
    ca.stop()


@pytest.fixture
def fast_agent(agent_factory: Callable[..., AgentProcess]) -> AgentProcess:
    return agent_factory(args=FAST).start()
