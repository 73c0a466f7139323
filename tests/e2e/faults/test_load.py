"""50 sessions at once doing lock/edit/commit/unlock and get (issue 11, "Faults").

Every session increments a shared counter (the hostname c<N>) under the
locks of running and the candidate, read-modify-write, for a bounded time:
0 lost updates (the final counter is the number of acknowledged
increments), 0 deadlocks (every session finishes by a deadline, and the
locks are free afterwards), memory flat (RSS after vs. before) and the
agent's threads back to their baseline once the sessions are gone.
"""

from __future__ import annotations

import random
import threading
import time

from lxml import etree
from ncclient import manager

from agentproc import AgentProcess
from faults_helpers import NC, SYS, hostname_config, hostname_of
from rawnetconf import netconf_session, rpc, rss_kib, threads, wait_until

SESSIONS = 50
SECONDS = 15.0
NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
LOCK = "<lock><target><%s/></target></lock>"
UNLOCK = "<unlock><target><%s/></target></unlock>"


def counter(m: manager.Manager) -> int:
    name = hostname_of(m.get_config("running").data_xml)
    return int(name[1:]) if name else 0


class Worker:
    """One session, over raw SSH (ncclient polls every session every 5 ms: 50 of them would load the client)."""

    def __init__(self, agent: AgentProcess, index: int, until: float) -> None:
        self.index = index
        self.until = until
        self.increments = 0
        self.gets = 0
        self.lock_denied = 0
        self.error: BaseException | None = None
        self.client, self.channel = netconf_session(agent.port)
        self.message_id = 0
        self.thread = threading.Thread(target=self._run, name=f"load-{index}", daemon=True)

    def rpc(self, body: str) -> etree._Element:
        self.message_id += 1
        reply = rpc(self.channel, body, str(self.message_id)).split(b"\n", 2)[2].rsplit(b"\n##", 1)[0]
        return etree.fromstring(reply)

    def ok(self, body: str) -> str | None:
        """None for <ok/>, else the error-tag."""
        reply = self.rpc(body)
        if reply.find(f"{{{NC}}}ok") is not None:
            return None
        tag = reply.findtext(f".//{{{NC}}}error-tag")
        assert tag is not None, etree.tostring(reply)
        return tag

    def _locked(self) -> bool:
        """Both locks, or none (a session holding one and waiting for the other could deadlock)."""
        if self.ok(LOCK % "candidate") is not None:
            return False
        if self.ok(LOCK % "running") is not None:
            assert self.ok(UNLOCK % "candidate") is None
            return False
        return True

    def _run(self) -> None:
        rng = random.Random(self.index)
        try:
            while time.monotonic() < self.until:
                if rng.random() < 0.3:
                    self.rpc(f'<get><filter><netconf-state xmlns="{NCM}"><datastores/></netconf-state></filter></get>')
                    self.gets += 1
                    continue
                if not self._locked():
                    self.lock_denied += 1
                    time.sleep(rng.uniform(0.05, 0.5))  # back off, then try again
                    continue
                data = self.rpc("<get-config><source><running/></source></get-config>")
                name = data.findtext(f".//{{{SYS}}}hostname") or "c0"
                edit = f"<edit-config><target><candidate/></target>{hostname_config(f'c{int(name[1:]) + 1}')}</edit-config>"
                for body in (edit, "<commit/>", UNLOCK % "running", UNLOCK % "candidate"):
                    tag = self.ok(body)
                    assert tag is None, f"{body}: {tag}"
                    if body == "<commit/>":
                        self.increments += 1
        except BaseException as error:  # reported by the test
            self.error = error
        finally:
            try:
                assert b"<ok/>" in rpc(self.channel, "<close-session/>", "close")
            except BaseException as error:  # a session that cannot close is an error too
                self.error = self.error or error
            self.client.close()


def test_fifty_sessions_lose_no_update_and_leave_nothing_behind(agent: AgentProcess) -> None:
    pid = agent.proc.pid  # type: ignore[union-attr]
    idle_threads = threads(pid)
    # Warm-up: every code path once, with as many sessions, so that the baseline is not a cold start.
    warm_until = time.monotonic() + 10  # the first round grows the RSS once (malloc arenas of 50 threads)
    warm = [Worker(agent, -1 - i, warm_until) for i in range(SESSIONS)]
    for worker in warm:
        worker.thread.start()
    for worker in warm:
        worker.thread.join(60)
    wait_until(lambda: threads(pid) <= idle_threads, 30, "the warm-up sessions' threads to end")
    baseline_threads, baseline_rss = threads(pid), rss_kib(pid)
    with agent.connect() as m:
        start = counter(m)
    warm_increments = sum(w.increments for w in warm)
    assert start == warm_increments

    until = time.monotonic() + SECONDS
    workers = [Worker(agent, i, until) for i in range(SESSIONS)]
    for worker in workers:
        worker.thread.start()
    for worker in workers:
        worker.thread.join(max(until - time.monotonic(), 0) + 60)
    stuck = [w.index for w in workers if w.thread.is_alive()]
    assert not stuck, f"sessions {stuck} did not finish within 60 s of the end: deadlock"
    errors = [(w.index, repr(w.error)) for w in workers if w.error is not None]
    assert not errors, errors

    increments = sum(w.increments for w in workers)
    with agent.connect() as m:
        assert counter(m) == start + increments, "lost updates"
        m.lock("running")  # nothing left locked
        m.lock("candidate")
        m.unlock("candidate")
        m.unlock("running")
    wait_until(lambda: threads(pid) <= baseline_threads, 30, "the agent's threads to come back to the baseline")
    growth = rss_kib(pid) - baseline_rss
    print(f"\n{SESSIONS} sessions, {SECONDS:g} s: {increments} increments, {sum(w.gets for w in workers)} gets, "
          f"{sum(w.lock_denied for w in workers)} lock-denied; threads {baseline_threads} -> {threads(pid)}, "
          f"RSS {baseline_rss} -> {rss_kib(pid)} KiB")
    assert increments > 0
    assert growth < 16 * 1024, f"RSS grew by {growth} KiB"
