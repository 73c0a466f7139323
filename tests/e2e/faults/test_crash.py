"""kill -9 during commits (issue 11, "Faults"): nothing acknowledged is lost, the datastore always loads.

Before: 50 kill -9 left 19 copies of the configuration (with the admin
password hash) behind as temporary files.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
from ncclient import manager

from agentproc import AgentProcess
from faults_helpers import check_history_matches_running, hostname_config, hostname_of, temporaries
from rawnetconf import wait_until

KILLS = 100


class Committer:
    """A client committing in a loop, hostname c1, c2, ...: by edit-config on running, or candidate + commit."""

    def __init__(self, m: manager.Manager, first: int, confirmed: bool = False) -> None:
        self.m = m
        self.confirmed = confirmed  # candidate commits as confirmed commits, then confirmed
        self.next = first
        self.acknowledged: list[int] = []
        self.attempted = first - 1
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                value = self.next
                self.attempted = value
                if value % 2:
                    self.m.edit_config(target="running", config=hostname_config(f"c{value}"))
                else:
                    self.m.edit_config(target="candidate", config=hostname_config(f"c{value}"))
                    if self.confirmed:
                        self.m.commit(confirmed=True, timeout="600")
                    self.m.commit()
                self.acknowledged.append(value)
                self.next = value + 1
        except Exception:  # the agent was killed under us
            return


def running_value(data: Path) -> int:
    name = hostname_of((data / "running.xml").read_bytes())
    assert name is not None and name.startswith("c"), name
    return int(name[1:])


# 100 agent starts: 136 s on an idle 2-core machine, over the suite's 300 s with both cores busy
@pytest.mark.timeout(900)
def test_a_hundred_kill_9_during_commits_lose_nothing_acknowledged(agent_factory) -> None:
    seed = random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    agent: AgentProcess = agent_factory().start()
    data = agent.data_dir
    acknowledged: list[int] = []
    next_value = 1
    interrupted_writes = 0
    started = time.monotonic()
    for kill in range(KILLS):
        committer = Committer(agent.connect(), next_value)
        # Kill at a random moment, once commits are flowing.
        wait_until(lambda c=committer: bool(c.acknowledged) or not c.thread.is_alive(), 30, "a first commit")
        time.sleep(rng.uniform(0, 0.25))
        agent.kill9()
        committer.thread.join(90)  # ncclient's own timeout is 60 s
        assert not committer.thread.is_alive(), f"kill {kill} (seed {seed}): the client hangs on a killed agent"
        acknowledged += committer.acknowledged
        interrupted_writes += len(temporaries(data))

        agent.start()  # the datastore loads, every time
        # (a background writer of the new agent may have one for a moment: a leftover never goes)
        wait_until(lambda: not temporaries(data), 10, f"kill {kill} (seed {seed}): temporary files to go")
        value = running_value(data)
        last_ack = acknowledged[-1] if acknowledged else 0
        assert last_ack <= value <= committer.attempted, (
            f"kill {kill} (seed {seed}): running is c{value}, last acknowledged c{last_ack}, "
            f"last attempted c{committer.attempted}")
        records = check_history_matches_running(data)
        # Every acknowledged commit is in the commit history (it keeps the last 100).
        kept = {hostname_of(str(r["config"])) for r in records}
        for ack in acknowledged[-60:]:
            assert f"c{ack}" in kept, f"kill {kill} (seed {seed}): acknowledged commit c{ack} is not in the history"
        next_value = value + 1
    with agent.connect() as m:
        assert hostname_of(m.get_config("running").data_xml) == f"c{next_value - 1}"
    print(f"\n{KILLS} kill -9 in {time.monotonic() - started:.0f} s (seed {seed}): {len(acknowledged)} commits "
          f"acknowledged, {interrupted_writes} interrupted writes left temporary files, all removed at start")
    assert len(acknowledged) >= KILLS


def test_the_temporary_file_of_a_write_killed_midway_is_removed_at_start(agent_factory) -> None:
    # A commit appends to the commit journal (no temporary file: a torn frame is cut off at start);
    # the atomic writes left are those of rollback.xml, which a confirmed commit writes first.
    agent: AgentProcess = agent_factory().start()
    data = agent.data_dir
    deadline = time.monotonic() + 120
    caught: list[Path] = []
    while not caught:
        assert time.monotonic() < deadline, "never caught a write in progress"
        committer = Committer(agent.connect(), 1, confirmed=True)
        pid = agent.proc.pid  # type: ignore[union-attr]
        while committer.thread.is_alive() and time.monotonic() < deadline:
            if any(name.endswith(".tmp") for d in (data, data / "commits") for name in os.listdir(d)):
                os.kill(pid, signal.SIGKILL)  # at once: the write is still going on
                break
        agent.kill9()
        committer.thread.join(30)
        caught = temporaries(data)
        agent.start()
    assert temporaries(data) == []
    assert "left by an interrupted write" in agent.log_until("temporary file")
