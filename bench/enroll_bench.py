#!/usr/bin/env python3
"""Enrollment at scale: 500 trustpoints enrolled against the lab CA at once, with and without a dead CA.

    python bench/enroll_bench.py [--count 500] [--sessions 50] [--json FILE] [--quick]

The driver is a controller with a pool of NETCONF sessions (``--sessions``,
like Ansible's forks): each session takes the next trustpoint from a shared
queue and runs ``ca-enroll`` on it; a session whose CA does not answer is
held by that RPC (NETCONF answers a session's RPCs in order), the others go
on. Every trustpoint was authenticated before and has its own RSA 2048 key
pair (both untimed). Four runs, each on a fresh agent and lab CA (``ca-agent lab-ca``,
127.0.0.1):

1. ``issue``: the lab CA issues at once; all trustpoints point at it.
2. ``issue-dead-ca``: the same, but every tenth trustpoint points at a CA that
   accepts TCP connections and never answers (its CA certificate given to
   authenticated against the lab CA first); those fail after the agent's HTTP timeout.
3. ``poll``: the lab CA holds every request (``--manual-approval``); once all
   are pending, the bench approves them all and times until the agent's
   pollers (retry period unit 0.2 s) have installed every certificate.
4. ``poll-dead-ca``: as 3, but every tenth trustpoint reaches the lab CA
   through a proxy that stops answering once its requests are pending: their
   polls hang until the HTTP timeout, while the others are polled.
5. ``poll-restart``: as 3, but the agent is stopped and started again once
   every request is pending (it finds them on disk and polls them again;
   its restart is timed), then the bench approves them all. Each key pair's
   first signature after a restart goes through the key check, on the PKI
   state writer.

Reported per run: seconds until the last good enrollment finished, good
enrollments per second, p50/p99 of the good ones' ca-enroll round trips
(runs 1-2), failures, and the restart's seconds (run 5). The others must
finish as if the dead CA did not exist: compare 2 with 1 and 4 with 3; and
5 with 3 for what a restart with every request pending costs the polling.
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import figures  # noqa: E402
from figures import CRYPTO_NS  # noqa: E402
from peers import AgentPeer, stop_process  # noqa: E402
from run import agent_version, log  # noqa: E402

CHALLENGE = "bench-enroll"
READY = re.compile(r"lab-ca listening on (http://\S+)")


class LabCa:
    """``python -m agent lab-ca`` on a free port (auto-issue, or manual approval)."""

    def __init__(self, data_dir: Path, manual: bool) -> None:
        self.data_dir = data_dir
        command = [sys.executable, "-m", "agent", "lab-ca", "--port", "0", "--data-dir", str(data_dir),
                   "--challenge", CHALLENGE] + (["--manual-approval"] if manual else [])
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     cwd=str(Path(__file__).resolve().parent.parent))
        self.url = ""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode(errors="replace")
            match = READY.search(line)
            if match:
                self.url = match.group(1)
                break
            if not line and self.proc.poll() is not None:
                break
        if not self.url:
            self.stop()
            raise RuntimeError("lab-ca did not start")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def approve_all(self) -> int:
        from agent.labca.ca import LabCa as Ca

        ca = Ca(self.data_dir, create=False)
        pending = ca.pending()
        for record in pending:
            ca.approve(record.transaction_id)
        return len(pending)

    def stop(self) -> None:
        stop_process(self.proc)


class DeadCa:
    """A TCP server on 127.0.0.1 that accepts and never answers; optionally a proxy until told to hang."""

    def __init__(self, forward_to: str | None = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.forward = None
        if forward_to:
            host, port = forward_to.split("//", 1)[1].split("/", 1)[0].split(":")
            self.forward = (host, int(port))
        self.hanging = threading.Event()
        if not forward_to:
            self.hanging.set()
        self.held: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.split('//', 1)[1].split('/', 1)[1]}"

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.hanging.is_set() or self.forward is None:
                self.held.append(conn)  # never answered, closed at the end
            else:
                threading.Thread(target=self._pipe, args=(conn,), daemon=True).start()

    def _pipe(self, conn: socket.socket) -> None:
        assert self.forward is not None
        try:
            upstream = socket.create_connection(self.forward, timeout=30)
        except OSError:
            conn.close()
            return

        def copy(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=copy, args=(upstream, conn), daemon=True).start()
        copy(conn, upstream)

    def stop(self) -> None:
        self.stopped = True
        self.listener.close()
        for conn in self.held:
            conn.close()


def trustpoint_xml(name: str, url: str) -> str:
    return (f"<trustpoint><name>{name}</name><enrollment><url>{url}</url></enrollment>"
            f"<rsakeypair>{name}</rsakeypair><subject-name>CN={name},O=bench</subject-name></trustpoint>")


def run_once(
    workdir: Path, count: int, sessions: int, dead_every: int, poll: bool, restart: bool = False
) -> dict[str, Any]:
    """One run on a fresh agent and lab CA; see the module docstring."""
    ca = LabCa(workdir / "lab-ca", manual=poll)
    dead = DeadCa(forward_to=ca.url if poll else None) if dead_every else None
    agent = AgentPeer(workdir / "agent")
    agent.extra_args = ["--retry-period-unit", "0.2"]
    started_at = time.monotonic()
    try:
        agent.start()
        mgr = figures.connect(agent.connect_params())
        names = [f"tp{i:04d}" for i in range(count)]
        # A key pair per trustpoint (the SCEP transaction ID is derived from the public key).
        log(f"generating {count} RSA 2048 key pairs")
        keys: queue.SimpleQueue[str] = queue.SimpleQueue()
        for name in names:
            keys.put(name)

        def keygen() -> None:
            session = figures.connect(agent.connect_params())
            try:
                while True:
                    try:
                        label = keys.get_nowait()
                    except queue.Empty:
                        return
                    session.dispatch(figures.rpc_element("key-generate-rsa", label=label, modulus="2048"))
            finally:
                figures.close(session)

        keygens = [threading.Thread(target=keygen) for _ in range(4)]
        for thread in keygens:
            thread.start()
        for thread in keygens:
            thread.join(900)
        dead_names = {n for i, n in enumerate(names) if dead_every and i % dead_every == dead_every - 1}
        # Every trustpoint is authenticated against the lab CA (untimed); then the dead ones are
        # pointed at the dead CA (the authenticated CA certificate stays).
        for first in range(0, count, 250):
            mgr.edit_config(target="candidate", config=figures.config(
                [trustpoint_xml(n, ca.url) for n in names[first:first + 250]]))
            mgr.commit()
        log(f"authenticating {count} trustpoints")
        for name in names:
            mgr.dispatch(figures.rpc_element("ca-authenticate", trustpoint=name, accept=None))
        if dead is not None and dead_names:
            mgr.edit_config(target="candidate", config=figures.config(
                [trustpoint_xml(n, dead.url(ca.url)) for n in sorted(dead_names)]))
            mgr.commit()
        log(f"enrolling {count} trustpoints over {sessions} sessions ({len(dead_names)} at a dead CA)")
        jobs: queue.SimpleQueue[str] = queue.SimpleQueue()
        for name in names:
            jobs.put(name)
        done: list[tuple[str, str, float, float]] = []
        lock = threading.Lock()
        t0 = time.monotonic()

        def worker() -> None:
            session = figures.connect(agent.connect_params())
            try:
                while True:
                    try:
                        name = jobs.get_nowait()
                    except queue.Empty:
                        return
                    began = time.monotonic()
                    try:
                        reply = session.dispatch(figures.rpc_element("ca-enroll", trustpoint=name,
                                                                     challenge_password=CHALLENGE))
                        status = re.search(r"<status>(\w[\w-]*)</status>", reply.xml)
                        outcome = status.group(1) if status else "?"
                    except Exception as error:  # reported in the results
                        outcome = f"error: {error}"[:120]
                    with lock:
                        done.append((name, outcome, began - t0, time.monotonic() - t0))
            finally:
                figures.close(session)

        threads = [threading.Thread(target=worker) for _ in range(sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        result: dict[str, Any] = {}
        if restart:  # every request is pending now: the new agent must find them on disk
            figures.close(mgr)
            agent.stop()
            began = time.monotonic()
            agent.start()
            mgr = figures.connect(agent.connect_params())
            result.update(restart_s=round(time.monotonic() - began, 2))
        if poll:
            # Every request is pending at the CA now (the proxy passed them); the dead CA stops answering.
            if dead is not None:
                dead.hanging.set()
            approved = ca.approve_all()
            t1 = time.monotonic()
            log(f"approved {approved}; waiting for the pollers")
            issued = 0
            while time.monotonic() < t1 + 300:
                reply = mgr.get(filter=("subtree", f'<crypto xmlns="{CRYPTO_NS}"><ca><trustpoint><name/>'
                                                  "<enrollment/></trustpoint></ca></crypto>")).xml
                issued = len(re.findall(r"<state>issued</state>", reply))
                if issued >= count - len(dead_names):
                    break
                time.sleep(0.25)
            result.update(poll_seconds=round(time.monotonic() - t1, 2), issued=issued, approved=approved)
        good = [d for d in done if d[0] not in dead_names]
        rounds = sorted(d[3] - d[2] for d in good)
        ok = [d for d in good if d[1] in ("issued", "pending")]
        result.update(
            count=count, sessions=sessions, dead=len(dead_names),
            good_finished_s=round(max((d[3] for d in good), default=0.0), 2),
            good_per_s=round(len(ok) / max((d[3] for d in good), default=1.0), 1),
            enroll_ms_p50=round(rounds[len(rounds) // 2] * 1000, 1) if rounds else None,
            enroll_ms_p99=round(rounds[min(len(rounds) - 1, int(0.99 * len(rounds)))] * 1000, 1) if rounds else None,
            good_failed=len(good) - len(ok), good_outcomes=sorted({d[1] for d in good}),
            dead_outcomes=sorted({d[1] for d in done if d[0] in dead_names}),
            dead_finished_s=round(max((d[3] for d in done if d[0] in dead_names), default=0.0), 2),
            total_s=round(time.monotonic() - started_at, 1),
        )
        figures.close(mgr)
        return result
    finally:
        agent.stop()
        if dead is not None:
            dead.stop()
        ca.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--runs", default="issue,issue-dead-ca,poll,poll-dead-ca,poll-restart")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"meta": {"agent_version": agent_version(), "count": args.count,
                                    "sessions": args.sessions, "driver": f"pool of {args.sessions} sessions"},
                           "runs": {}}
    for run in args.runs.split(","):
        workdir = Path(tempfile.mkdtemp(prefix=f"ca-agent-enroll-{run}-"))
        try:
            log(f"run {run}")
            out["runs"][run] = run_once(workdir, args.count, args.sessions, 10 if "dead" in run else 0,
                                        run.startswith("poll"), restart=run.endswith("restart"))
            log(f"{run}: {out['runs'][run]}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(out, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
