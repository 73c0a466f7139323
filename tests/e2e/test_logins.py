"""Password logins over real SSH: throttled per source, logged with the source (issue 11 "Logins")."""

from __future__ import annotations

import time

import paramiko
import pytest

from agentproc import ADMIN_PASSWORD, AgentProcess


def attempt(port: int, username: str, password: str) -> tuple[bool, float]:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    started = time.monotonic()
    try:
        client.connect("127.0.0.1", port=port, username=username, password=password, allow_agent=False,
                       look_for_keys=False, timeout=60, auth_timeout=60)
        return True, time.monotonic() - started
    except paramiko.AuthenticationException:
        return False, time.monotonic() - started
    finally:
        client.close()


def test_failed_logins_from_one_source_are_spaced_out_and_logged(agent: AgentProcess) -> None:
    results = [attempt(agent.port, "admin", f"guess-{n}") for n in range(6)]
    assert not any(ok for ok, _ in results)
    # 3 free failures, a free 4th attempt, then each attempt waits for its slot: 1 s, then 2 s
    assert results[4][1] >= 1.0 and results[5][1] >= 2.0, [round(t, 2) for _, t in results]
    assert "for user 'admin' from 127.0.0.1" in agent.log_until("next attempt from there delayed")
    # the right password still gets in (after its slot) and clears the record
    ok, _ = attempt(agent.port, "admin", ADMIN_PASSWORD)
    assert ok
    ok, took = attempt(agent.port, "nobody", "x")
    assert not ok and took < 30


@pytest.mark.parametrize("username", ["admin", "no-such-user"])
def test_unknown_and_known_users_fail_alike(agent: AgentProcess, username: str) -> None:
    ok, _ = attempt(agent.port, username, "wrong")
    assert not ok
    agent.log_until(f"password authentication failed for user {username!r}")


def test_a_huge_user_name_is_logged_cut_short(agent: AgentProcess) -> None:
    """Before any login, a client chooses what the failure's log line quotes: a 200 KB name wrote a 200 KB line."""
    ok, _ = attempt(agent.port, "u" * 200_000, "wrong")
    assert not ok
    log = agent.log_until("password authentication failed")
    line = next(x for x in log.splitlines() if "password authentication failed" in x)
    assert len(line) < 4300 and line.endswith("more characters)")
