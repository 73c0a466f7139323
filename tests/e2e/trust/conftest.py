"""Fixtures for the trust tests: slapd, lab CAs, two agents (the router and a peer of another domain)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trust_e2e_helpers import Slapd  # noqa: E402

from agentproc import AgentProcess  # noqa: E402


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    if shutil.which("slapd") is None or shutil.which("ldapadd") is None:
        pytest.skip("slapd and ldap-utils are not installed")
    instance = Slapd(tmp_path / "slapd")
    yield instance
    instance.stop()



@pytest.fixture
def two_agents(agent_factory) -> tuple[AgentProcess, AgentProcess]:
    """The router under test and a peer router (another ca-agent) of another domain."""
    return agent_factory("router").start(), agent_factory("peer").start()
