#!/usr/bin/env python3
"""Profile our agent under one benchmark workload with py-spy, and summarise where the time goes.

    pip install py-spy            # once (allowed for profiling)
    python bench/profile_agent.py WORKLOAD [--seconds S] [--top N] [--keep]

WORKLOAD: setup, get_empty, get_1000, edit_commit, edit_commit_1000, bulk,
bulk_running, edit_running, edit_running_1000, get_one_1000, get_config_one_1000, concurrent_empty,
concurrent_1000, or rss (no profiler: VmRSS/VmHWM after each step of the
candidate workload). ``--entries N`` makes the "1000" workloads (and bulk)
use N trustpoints instead.

A fresh agent is started, the workload's preparation runs unprofiled, then
`py-spy record --format raw` samples the agent process (all threads, on-CPU
only) while the workload runs for a bounded time. Printed: samples, the
functions with the most self time, and the most inclusive time (percent of
on-CPU samples), with their file:line.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import figures  # noqa: E402
from peers import AgentPeer, cpu_seconds, make_ssh_key  # noqa: E402

WORKLOADS = (
    "setup", "get_empty", "get_1000", "edit_commit", "edit_commit_1000", "bulk", "bulk_running", "edit_running",
    "edit_running_1000", "get_one_1000", "get_config_one_1000", "concurrent_empty", "concurrent_1000", "rss",
)


def vm(pid: int) -> str:
    fields = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return f"VmRSS {fields['VmRSS']:.1f} MiB, VmHWM {fields['VmHWM']:.1f} MiB"


def bulk_config(count: int, prefix: str = "tp") -> str:
    return figures.config([figures.trustpoint(f"{prefix}{i:04d}", i) for i in range(count)])


# Leaf frames that are blocking waits py-spy did not recognise as idle (threads parked in
# recv/select/lock waits while holding no GIL): not CPU work of the agent.
IDLE_LEAF = re.compile(
    r"^(Condition\.wait|Event\.wait|Thread\._wait_for_tstate_lock|Future\.result) "
    r"|^Packetizer\.read_all \(paramiko/packet\.py"
    r"|^QuickAckSocket\.recv \("
    r"|^NetconfSshServer\._accept_loop \("
    r"|^SerialExecutor\._loop \("
    r"|^NetconfSession\._write_loop \("
)


def summarise(raw: Path, top: int) -> None:
    total = 0
    idle = 0
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if IDLE_LEAF.search(frames[-1]):
            idle += count
            continue
        total += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"\n{total} on-CPU samples ({idle} more were blocking waits, left out)")
    if not total:
        return
    print(f"\n-- self time (top {top}) --")
    for frame, count in self_time.most_common(top):
        print(f"{100 * count / total:6.1f}%  {frame}")
    print(f"\n-- inclusive time (top {top * 2}) --")
    for frame, count in inclusive.most_common(top * 2):
        print(f"{100 * count / total:6.1f}%  {frame}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--seconds", type=float, default=5.0, help="profiled time (bounded)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (raw py-spy output)")
    parser.add_argument("--no-profile", action="store_true", help="run the workload only (throughput)")
    parser.add_argument("--entries", type=int, default=1000, help="trustpoints of the *_1000 and bulk workloads")
    parser.add_argument("--cycle", type=int, default=0,
                        help="edit_commit / edit_running: remove the trustpoints added every N edits (as the "
                             "benchmark's 100 edits on a small datastore; 0: the datastore grows)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ca-agent-profile-"))
    key = work / "client_key"
    make_ssh_key(key)
    agent = AgentPeer(work, key)
    spy: subprocess.Popen[bytes] | None = None
    conc = None
    try:
        agent.start()
        mgr = figures.connect(agent.connect_params())
        public = Path(f"{key}.pub").read_text().strip()
        try:
            mgr.dispatch(figures.rpc_element("key-import-authentication-rsa", label="bench-client",
                                             public_key=public, user="admin"))
            agent.auth = "publickey"
        except Exception as error:
            print(f"(key-import-authentication-rsa: {error}; using password authentication)")
        params = agent.connect_params()
        pid = agent.rss_pid()
        w = args.workload
        if w == "rss":
            print("started:", vm(pid))
            mgr.edit_config(target="candidate", config=bulk_config(1000))
            print("after edit-config of 1000:", vm(pid))
            mgr.commit()
            print("after commit:", vm(pid))
            for _ in range(20):
                mgr.get_config(source="running")
            print("after 20 get-config:", vm(pid))
            conc = figures.ConcurrentSessions(params, 20, 2)
            print("after opening 20 sessions:", vm(pid))
            conc.run(3.0, 1000, agent.server_pids())
            print("after 20 concurrent get-config for 3 s:", vm(pid))
            return 0
        if w in ("get_1000", "edit_commit_1000", "concurrent_1000", "edit_running_1000", "get_one_1000",
                 "get_config_one_1000"):
            mgr.edit_config(target="candidate", config=bulk_config(args.entries))
            mgr.commit()
        if w.startswith("concurrent"):
            conc = figures.ConcurrentSessions(params, 20, 2)
        raw = work / "pyspy.txt"
        spy = None if args.no_profile else subprocess.Popen(
            ["py-spy", "record", "--nonblocking", "-p", str(pid), "-r", str(args.rate), "--format", "raw", "-o", str(raw),
             "-d", str(int(args.seconds) + 30)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        if spy is not None:
            time.sleep(1.0)  # py-spy attaches
        cpu0 = cpu_seconds(agent.server_pids())
        began = time.monotonic()
        deadline = began + args.seconds
        ops = 0
        bulk = bulk_config(args.entries, "b")
        names = [f"b{i:04d}" for i in range(args.entries)]
        while time.monotonic() < deadline and ops < 100000:
            if w == "setup":
                figures.close(figures.connect(params))
            elif w in ("get_empty", "get_1000"):
                mgr.get_config(source="running")
            elif w == "get_one_1000":
                mgr.get(filter=("subtree", f'<crypto xmlns="{figures.CRYPTO_NS}"><ca><trustpoint>'
                                          f"<name>tp{ops % args.entries:04d}</name></trustpoint></ca></crypto>"))
            elif w == "get_config_one_1000":
                mgr.get_config(source="running", filter=(
                    "subtree", f'<crypto xmlns="{figures.CRYPTO_NS}"><ca><trustpoint>'
                               f"<name>tp{ops % args.entries:04d}</name></trustpoint></ca></crypto>"))
            elif w in ("edit_commit", "edit_commit_1000", "edit_running", "edit_running_1000"):
                target = "candidate" if w.startswith("edit_commit") else "running"
                if args.cycle and ops and ops % args.cycle == 0:
                    mgr.edit_config(target=target, config=figures.remove_config(
                        [f"x{i}" for i in range(ops - args.cycle, ops)]))
                    if target == "candidate":
                        mgr.commit()
                mgr.edit_config(target=target, config=figures.config([figures.trustpoint(f"x{ops}", ops)]))
                if target == "candidate":
                    mgr.commit()
            elif w == "bulk":
                mgr.edit_config(target="candidate", config=bulk)
                mgr.commit()
                mgr.edit_config(target="candidate", config=figures.remove_config(names))
                mgr.commit()
            elif w == "bulk_running":
                mgr.edit_config(target="running", config=bulk)
                mgr.edit_config(target="running", config=figures.remove_config(names))
            elif w.startswith("concurrent"):
                assert conc is not None
                fig = conc.run(max(1.0, deadline - time.monotonic()), 100000, agent.server_pids())
                print(f"concurrent: {fig.value:.1f}/s")
                ops += fig.count
                break
            ops += 1
        elapsed = time.monotonic() - began
        cpu = cpu_seconds(agent.server_pids()) - cpu0
        print(f"workload {w}: {ops} iterations in {elapsed:.1f} s ({ops / elapsed:.1f}/s), "
              f"agent CPU {1000 * cpu / max(ops, 1):.2f} ms per iteration")
        if spy is None:
            return 0
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=60)
        spy = None
        if not raw.exists():
            print("py-spy wrote nothing:", err.decode(errors="replace")[-500:])
            return 1
        summarise(raw, args.top)
        figures.close(mgr)
    finally:
        if spy is not None:
            spy.kill()
            spy.wait()
        if conc is not None:
            conc.close()
        agent.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
