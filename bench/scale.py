#!/usr/bin/env python3
"""Scale run: 100, 1,000 and 10,000 trustpoints side by side with netconfd and netopeer2; 100 sessions.

    python bench/scale.py [--sizes 100,1000,10000] [--quick] [--no-peers] [--json FILE]

Per datastore size (trustpoints loaded in bulk commits of at most 1,000,
the same on every server), in rounds that alternate between the servers:
one-entry edit-config + commit per second, get-config of everything per
second, a subtree-filtered <get-config> and <get> of one trustpoint per
second, peak RSS (VmHWM) and, for our agent only, the restart time (stop,
start, until a get-config of everything has answered; netopeer2's running
datastore lives in shared memory and does not survive a restart, and
netconfd's restart is not measured).

Then 100 concurrent sessions on the 1,000-trustpoint datastore (in 4 client
processes): 50 readers doing subtree-filtered gets of one random trustpoint,
50 writers doing lock candidate, a one-leaf edit, commit, unlock. A lock
refused because another writer holds it (lock-denied) is retried with a
randomized exponential back-off (2 ms doubling to 100 ms) and counted apart;
so is a connection the server drops while the 100 open at once (tried
again up to 6 times, after 0.1-0.2 s doubling: netopeer2 drops about half
of them before its SSH banner); every other failure is an error.
Reported: operations per second, p50/p99 latency per kind, errors, and
memory per session (growth of the server's proportional set size, Pss, with
the 100 sessions open, divided by 100).

The peers enforce access control as our agent does, with the agent's own
task groups (see bench/peers.py: netconfd with NACM enforcing, netopeer2
logged in as a non-root user); ``--no-access-control`` runs them as the
earlier runs did (netconfd --access-control=off, netopeer2 as root).

Every process is stopped by PID at the end; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import figures  # noqa: E402
from figures import CRYPTO_NS, NC_NS  # noqa: E402
from peers import (  # noqa: E402
    CRYPTO_MODULE,
    YANG_DIR,
    AgentPeer,
    NetconfdPeer,
    Netopeer2Peer,
    YumaGuard,
    make_ssh_key,
    netopeer2_available,
    vm_hwm_kib,
)
from run import agent_version, log, use_publickey  # noqa: E402

CHUNK = 1000


def name_of(index: int) -> str:
    return f"tp{index:05d}"


def one_filter(name: str) -> tuple[str, str]:
    return ("subtree", f'<crypto xmlns="{CRYPTO_NS}"><ca><trustpoint><name>{name}</name></trustpoint></ca></crypto>')


def pss_kib(pids: list[int]) -> int:
    """Proportional set size of the processes (shared pages split between them)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


class ServerFailed(Exception):
    """A server failed an operation of the scale run (it is left out from then on)."""

    def __init__(self, name: str, error: BaseException) -> None:
        super().__init__(f"{name}: {error}")
        self.name = name


def load(mgr: Any, start: int, end: int) -> float:
    """Add trustpoints start..end-1 in commits of at most CHUNK (a refused chunk: in tenths); returns seconds."""
    began = time.perf_counter()
    for first in range(start, end, CHUNK):
        last = min(end, first + CHUNK)
        try:
            mgr.edit_config(target="candidate", config=figures.config(
                [figures.trustpoint(name_of(i), i) for i in range(first, last)]))
            mgr.commit()
        except Exception:  # e.g. netopeer2's callback timeout on a large commit: smaller commits
            mgr.discard_changes()
            step = max(1, (last - first) // 10)
            for sub in range(first, last, step):
                mgr.edit_config(target="candidate", config=figures.config(
                    [figures.trustpoint(name_of(i), i) for i in range(sub, min(last, sub + step))]))
                mgr.commit()
    return time.perf_counter() - began


def guarded(name: str, op: Any) -> Any:
    def run(i: int) -> None:
        try:
            op(i)
        except Exception as error:
            raise ServerFailed(name, error) from error
    return run


class Server:
    """One server of the scale run and its management session."""

    def __init__(self, name: str, peer: Any) -> None:
        self.name = name
        self.peer = peer
        self.mgr = figures.connect(peer.connect_params())

    def reconnect(self) -> None:
        figures.close(self.mgr)
        self.mgr = figures.connect(self.peer.connect_params())


def measure_size(servers: list[Server], size: int, settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-size figures of every server, alternating between them."""
    out: dict[str, dict[str, Any]] = {s.name: {} for s in servers}
    pids = [s.peer.server_pids() for s in servers]
    count, seconds = settings["count"], settings["seconds"]

    def edit_op(mgr: Any, tag: str) -> Any:
        def op(i: int) -> None:
            mgr.edit_config(target="candidate", config=figures.config([figures.trustpoint(f"{tag}{i + 10}", i)]))
            mgr.commit()
        return op

    log(f"{size}: edit-config + commit of one trustpoint")
    rates = figures.interleaved_rate([guarded(s.name, edit_op(s.mgr, f"e{size}-")) for s in servers], pids, count,
                                     seconds * len(servers) / 2, rounds=2, warmup=1)
    for server, figure in zip(servers, rates, strict=True):
        out[server.name]["edit_commit"] = figure.to_json()
        server.mgr.edit_config(target="candidate", config=figures.remove_config(
            [f"e{size}-{i + 10}" for i in range(-1, figure.count)]))
        server.mgr.commit()

    log(f"{size}: get-config of everything")
    rates = figures.interleaved_rate([guarded(s.name, figures.get_config_op(s.mgr)) for s in servers], pids,
                                     count * 5,
                                     seconds * len(servers) / 2, rounds=2, warmup=1)
    for server, figure in zip(servers, rates, strict=True):
        out[server.name]["get_config"] = figure.to_json()

    rng = random.Random(size)
    names = [name_of(rng.randrange(size)) for _ in range(1000)]
    for kind in ("get_config_one", "get_one"):
        log(f"{size}: {'<get-config>' if kind == 'get_config_one' else '<get>'} filtered to one trustpoint")

        def filtered(mgr: Any, kind: str = kind) -> Any:
            def op(i: int) -> None:
                flt = one_filter(names[i % len(names)])
                reply = mgr.get_config(source="running", filter=flt) if kind == "get_config_one" else mgr.get(filter=flt)
                assert names[i % len(names)] in reply.xml
            return op

        rates = figures.interleaved_rate([guarded(s.name, filtered(s.mgr)) for s in servers], pids, count * 10,
                                         seconds * len(servers) / 2, rounds=2, warmup=1)
        for server, figure in zip(servers, rates, strict=True):
            out[server.name][kind] = figure.to_json()
    for server in servers:
        out[server.name]["rss_mib"] = (vm_hwm_kib(server.peer.rss_pid()) or 0) / 1024
    return out


def restart_time(server: Server) -> float:
    """Our agent: stop, start, until a get-config of everything answered (s)."""
    figures.close(server.mgr)
    server.peer.stop()
    began = time.perf_counter()
    server.peer.start()
    server.mgr = figures.connect(server.peer.connect_params())
    server.mgr.get_config(source="running")
    return time.perf_counter() - began


# --------------------------------------------------------------------------
# 100 concurrent sessions

OPEN_ATTEMPTS = 6  # back-offs of 0.1-0.2, 0.2-0.4, ... 1.6-3.2 s: ~6 s at most


def backoff(rng: random.Random, attempt: int, first: float, most: float) -> float:
    """A randomized exponential back-off, as a controller would wait: ``first`` doubling up to ``most``,
    times a random factor in [0.5, 1)."""
    return rng.uniform(0.5, 1.0) * min(most, first * 2 ** attempt)


def _mixed_worker(params: dict[str, Any], readers: int, writers: int, size: int, duration: float, seed: int,
                  results: Any) -> None:
    from ncclient.operations.rpc import RPCError

    rng = random.Random(seed)
    lock = threading.Lock()
    record: dict[str, Any] = {"read": [], "write": [], "errors": [], "lock_retries": 0, "opened": 0,
                              "open_retries": 0}
    managers: list[tuple[str, Any]] = []

    def open_one(role: str, seed: int) -> None:
        # All sessions connect at once; a server that drops some of the connections (netopeer2 closes
        # ~half of 100 before its SSH banner) is tried again after a randomized back-off, and counted.
        local = random.Random(seed)
        for attempt in range(OPEN_ATTEMPTS):
            try:
                mgr = figures.connect(params)
            except Exception as error:
                if attempt + 1 < OPEN_ATTEMPTS:
                    with lock:
                        record["open_retries"] += 1
                    time.sleep(backoff(local, attempt, 0.2, 3.2))
                    continue
                with lock:
                    record["errors"].append(f"open: {error!r}")
                return
            with lock:
                managers.append((role, mgr))
            return

    openers = [threading.Thread(target=open_one, args=("read" if i < readers else "write", rng.random()))
               for i in range(readers + writers)]
    for thread in openers:
        thread.start()
    for thread in openers:
        thread.join(300)
    record["opened"] = len(managers)
    results.put(("open", len(managers)))
    start_at = time.monotonic() + 1.0
    end_at = start_at + duration

    def read_loop(mgr: Any, seed: int) -> None:
        local = random.Random(seed)
        time.sleep(max(0.0, start_at - time.monotonic()))
        while time.monotonic() < end_at:
            name = name_of(local.randrange(size))
            began = time.perf_counter()
            try:
                reply = mgr.get(filter=one_filter(name))
                if name not in reply.xml:
                    raise AssertionError(f"{name} missing from the reply")
            except Exception as error:
                with lock:
                    record["errors"].append(f"read: {error!r}"[:300])
                continue
            with lock:
                record["read"].append(time.perf_counter() - began)

    def write_loop(mgr: Any, seed: int) -> None:
        local = random.Random(seed)
        time.sleep(max(0.0, start_at - time.monotonic()))
        n = 0
        while time.monotonic() < end_at:
            name = name_of(local.randrange(size))
            began = time.perf_counter()
            try:
                attempt = 0
                while True:
                    try:
                        mgr.lock(target="candidate")
                        break
                    except RPCError as error:
                        if error.tag != "lock-denied" or time.monotonic() > end_at + 60:
                            raise
                        with lock:
                            record["lock_retries"] += 1
                        time.sleep(backoff(local, attempt, 0.002, 0.1))  # 2 ms doubling to 100 ms
                        attempt += 1
                try:
                    mgr.edit_config(target="candidate", config=(
                        f'<config xmlns="{NC_NS}"><crypto xmlns="{CRYPTO_NS}"><ca><trustpoint><name>{name}</name>'
                        f"<rsakeypair>key-w{n % 5}</rsakeypair></trustpoint></ca></crypto></config>"))
                    mgr.commit()
                finally:
                    mgr.unlock(target="candidate")
            except Exception as error:
                with lock:
                    record["errors"].append(f"write: {error!r}"[:300])
                continue
            n += 1
            with lock:
                record["write"].append(time.perf_counter() - began)

    threads = [threading.Thread(target=read_loop if role == "read" else write_loop, args=(mgr, rng.random()))
               for role, mgr in managers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 180)
    for _, mgr in managers:
        figures.close(mgr)
    results.put(("done", record))


def concurrent_sessions(server: Server, size: int, sessions: int, duration: float, processes: int = 4) -> dict[str, Any]:
    """``sessions`` sessions (half readers, half writers) in ``processes`` client processes."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    pids = server.peer.server_pids()
    pss_before = pss_kib(server.peer.server_pids())
    procs = []
    per = sessions // processes
    for k in range(processes):
        proc = ctx.Process(target=_mixed_worker, args=(server.peer.connect_params(), per // 2, per - per // 2, size,
                                                        duration, k, results), daemon=True)
        proc.start()
        procs.append(proc)
    opened = 0
    for _ in procs:
        kind, value = results.get(timeout=600)
        opened += value
    pss_open = pss_kib(server.peer.server_pids())
    cpu0 = figures.cpu_seconds(server.peer.server_pids())
    records = []
    for _ in procs:
        kind, value = results.get(timeout=duration + 600)
        records.append(value)
    cpu = figures.cpu_seconds(server.peer.server_pids()) - cpu0
    for proc in procs:
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
    reads = sorted(x for r in records for x in r["read"])
    writes = sorted(x for r in records for x in r["write"])
    errors = [e for r in records for e in r["errors"]]

    def pct(values: list[float], p: float) -> float | None:
        return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 2) if values else None

    del pids
    return {
        "sessions": opened, "seconds": duration,
        "reads_per_s": round(len(reads) / duration, 1), "writes_per_s": round(len(writes) / duration, 1),
        "read_ms_p50": pct(reads, 0.5), "read_ms_p99": pct(reads, 0.99),
        "write_ms_p50": pct(writes, 0.5), "write_ms_p99": pct(writes, 0.99),
        "errors": len(errors), "error_samples": errors[:3],
        "lock_retries": sum(r["lock_retries"] for r in records),
        "open_retries": sum(r["open_retries"] for r in records),
        "memory_per_session_kib": round((pss_open - pss_before) / max(opened, 1), 1),
        "server_cpu_s": round(cpu, 2),
    }


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, 10 s of concurrency")
    parser.add_argument("--no-peers", action="store_true", help="our agent only")
    parser.add_argument("--no-concurrency", action="store_true")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--concurrency-size", type=int, default=1000)
    parser.add_argument("--no-access-control", action="store_true",
                        help="the peers without access control (netconfd --access-control=off, netopeer2 as root)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    settings = {"count": 10 if args.quick else 30, "seconds": 8.0 if args.quick else 20.0}
    duration = 10.0 if args.quick else 20.0
    workdir = Path(tempfile.mkdtemp(prefix="ca-agent-scale-"))
    yuma = YumaGuard()
    modpath = os.pathsep.join([str(YANG_DIR), os.path.join(sys.prefix, "share", "yang", "modules", "ietf")])
    meta: dict[str, Any] = {"sizes": sizes, "settings": settings, "agent_version": agent_version(),
                            "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
                            "peers_access_control": not args.no_access_control}
    result: dict[str, Any] = {"meta": meta, "sizes": {}, "restart_s": {}, "load_s": {}, "concurrency": {}}
    started: list[Any] = []
    servers: list[Server] = []
    try:
        key = workdir / "client_key"
        make_ssh_key(key)
        agent = AgentPeer(workdir / "agent", key).start()
        started.append(agent)
        use_publickey(agent, key)
        servers.append(Server("ours", agent))
        if not args.no_peers:
            ncd = NetconfdPeer(workdir / "netconfd", key, CRYPTO_MODULE, "candidate", modpath,
                               access_control=not args.no_access_control).start()
            started.append(ncd)
            servers.append(Server("netconfd", ncd))
            why = netopeer2_available()
            if why is None:
                np2 = Netopeer2Peer(workdir / "netopeer2", CRYPTO_MODULE, key,
                                    access_control=not args.no_access_control).start()
                started.append(np2)
                servers.append(Server("netopeer2", np2))
            else:
                meta["netopeer2"] = why
        loaded = 0
        result["failed"] = {}
        for size in sizes:
            for server in list(servers):
                log(f"{server.name}: loading trustpoints {loaded}..{size - 1}")
                try:
                    seconds = load(server.mgr, loaded, size)
                except Exception as error:  # this server goes no further
                    log(f"{server.name} failed to load {size} trustpoints: {error}")
                    result["failed"][server.name] = f"loading {size} trustpoints: {error}"[:300]
                    servers.remove(server)
                    figures.close(server.mgr)
                    continue
                result["load_s"].setdefault(server.name, {})[str(size)] = round(seconds, 3)
            loaded = size
            while True:
                try:
                    result["sizes"][str(size)] = measure_size(servers, size, settings)
                    break
                except ServerFailed as failed:
                    log(f"{failed}: left out from now on")
                    result["failed"][failed.name] = f"at {size} trustpoints: {failed}"[:300]
                    gone = next(s for s in servers if s.name == failed.name)
                    servers.remove(gone)
                    figures.close(gone.mgr)
            log(f"{size}: restart of our agent")
            result["restart_s"][str(size)] = round(restart_time(servers[0]), 3)
            if size == args.concurrency_size and not args.no_concurrency:
                for server in servers:
                    log(f"{size}: {args.sessions} concurrent sessions on {server.name}")
                    figures.close(server.mgr)
                    result["concurrency"][server.name] = concurrent_sessions(server, size, args.sessions, duration)
                    server.mgr = figures.connect(server.peer.connect_params())
                    result["concurrency"][server.name]["size"] = size
            result["sizes"][str(size)]["ours"]["rss_mib"] = max(
                result["sizes"][str(size)]["ours"]["rss_mib"], (vm_hwm_kib(servers[0].peer.rss_pid()) or 0) / 1024)
    finally:
        for server in servers:
            figures.close(server.mgr)
        for peer in reversed(started):
            try:
                peer.stop()
            except Exception as error:
                log(f"stopping {peer.name}: {error}")
        yuma.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    meta["machine"]["loadavg_end"] = os.getloadavg()
    text = json.dumps(result, indent=1, default=str)
    if args.json:
        args.json.write_text(text + "\n")
        log(f"JSON written to {args.json}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

