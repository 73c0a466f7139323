"""`ca-agent recover-admin`: the way back in after admin locked itself out (agent stopped), logged."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from nacm_e2e_helpers import DENIED, NACM, NC, NS, SYS, config_of, error_of
from ncclient.transport.errors import AuthenticationError

from agentproc import ADMIN_PASSWORD, AgentProcess

HOSTNAME = f'<config xmlns="{NC}"><hostname xmlns="{SYS}">%s</hostname></config>'
LOCK_OUT = (f'<config xmlns="{NC}" xmlns:nc="{NC}"><nacm xmlns="{NACM}"><groups><group><name>root-system</name>'
            f'<user-name nc:operation="delete">admin</user-name></group></groups></nacm></config>')


def recover(data_dir: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CA_AGENT_ADMIN_PASSWORD"}
    if password is not None:
        env["CA_AGENT_ADMIN_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "agent", "recover-admin", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
    )


def lock_admin_out(agent: AgentProcess) -> None:
    with agent.connect() as m:
        m.edit_config(target="running", config=LOCK_OUT)
        assert error_of(lambda: m.edit_config(target="running", config=HOSTNAME % "h1")).tag == DENIED


def test_recover_admin_after_a_lock_out(agent_factory) -> None:
    agent: AgentProcess = agent_factory().start()
    lock_admin_out(agent)
    before = (agent.data_dir / "running.xml").read_bytes()

    refused = recover(agent.data_dir, password="new-admin-pw")
    assert refused.returncode == 1 and "in use" in refused.stderr and "stop the agent" in refused.stderr
    assert (agent.data_dir / "running.xml").read_bytes() == before

    agent.stop()
    done = recover(agent.data_dir, password="new-admin-pw")
    assert done.returncode == 0, done.stderr
    assert "admin recovered" in done.stderr and "new-admin-pw" not in done.stderr
    journal = (agent.data_dir / "recovery.log").read_text()
    assert "recover-admin" in journal and "admin added to group root-system" in journal
    assert stat.S_IMODE(os.stat(agent.data_dir / "recovery.log").st_mode) == 0o600
    assert "new-admin-pw" not in (agent.data_dir / "running.xml").read_text()

    agent.start()
    with pytest.raises(AuthenticationError):
        agent.connect(password=ADMIN_PASSWORD)
    with agent.connect(password="new-admin-pw") as m:
        m.edit_config(target="running", config=HOSTNAME % "h2")
        running = config_of(m)
        assert running.findtext("s:hostname", namespaces=NS) == "h2"
        assert running.findtext("n:nacm/n:rule-list[1]/n:name", namespaces=NS) == "root-system"


def test_random_password_and_a_pending_confirmed_commit(agent_factory) -> None:
    agent: AgentProcess = agent_factory().start()
    with agent.connect() as m:
        m.edit_config(target="candidate", config=LOCK_OUT)
        m.commit(confirmed=True, timeout="600", persist="p1")  # locked out, unconfirmed...
    agent.kill9()  # ...and the agent dies: the next start goes back to rollback.xml
    assert (agent.data_dir / "rollback.xml").exists()
    done = recover(agent.data_dir)  # no terminal, no environment: a random password, printed once
    assert done.returncode == 0, done.stderr
    password_file = agent.data_dir / "admin-password"
    password = password_file.read_text().strip()
    assert password and password in done.stderr
    assert stat.S_IMODE(os.stat(password_file).st_mode) == 0o600
    agent.start()
    with agent.connect(password=password) as m:
        m.edit_config(target="running", config=HOSTNAME % "h3")


def test_a_second_agent_on_the_same_data_dir_is_refused(agent_factory) -> None:
    first: AgentProcess = agent_factory().start()
    second = AgentProcess(first.data_dir)
    with pytest.raises(RuntimeError) as failure:
        second.start(timeout=20)
    assert "in use" in str(failure.value)
    with first.connect() as m:
        m.edit_config(target="running", config=HOSTNAME % "still-mine")
