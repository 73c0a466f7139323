"""The measurements, written once and run against either server with ncclient.

Every loop is bounded twice: by a count and by a deadline. Rates are
operations completed divided by the wall time they took. Beside each figure
the server's CPU time per operation is recorded (utime+stime of the server's
processes, from /proc), which does not depend on how fast the client is.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from lxml import etree
from peers import cpu_seconds

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
CRYPTO_NS = "urn:ca-agent:yang:crypto"
TICK = 0.001  # ncclient.transport.session.TICK: the default 0.1 s would dominate every RPC


# --------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class Settings:
    """Counts and time limits of one run (``--quick`` or full)."""

    setup_count: int
    setup_seconds: float
    rate_count: int
    rate_seconds: float  # per server, over all rounds
    edit_count: int
    edit_count_1000: int
    edit_seconds: float
    bulk_entries: int
    bulk_rounds: int  # the one-edit bulk figures: median of this many loads per server, interleaved
    concurrent_sessions: int
    concurrent_processes: int
    concurrent_seconds: float  # per server, over all rounds
    keygen_count: int
    keygen_seconds: float
    scep_count: int

    @staticmethod
    def quick() -> Settings:
        return Settings(
            setup_count=6, setup_seconds=8, rate_count=5000, rate_seconds=2.0, edit_count=30, edit_count_1000=10,
            edit_seconds=10.0,
            bulk_entries=1000, bulk_rounds=3, concurrent_sessions=20, concurrent_processes=2, concurrent_seconds=2.0,
            keygen_count=3, keygen_seconds=20, scep_count=5,
        )

    @staticmethod
    def full() -> Settings:
        return Settings(
            setup_count=20, setup_seconds=30, rate_count=20000, rate_seconds=6.0, edit_count=100, edit_count_1000=30,
            edit_seconds=20.0,
            # Nine loads: one load of 1,000 moves by ±20 % from round to round (ours and the peers'), so a median
            # of three flipped targets within 10 % of level between two runs (stop 47).
            bulk_entries=1000, bulk_rounds=9, concurrent_sessions=20, concurrent_processes=2, concurrent_seconds=4.0,
            keygen_count=10, keygen_seconds=60, scep_count=25,
        )


# --------------------------------------------------------------------------
# ncclient plumbing


def connect(params: dict[str, Any]) -> Any:
    """One NETCONF session (SSH + hello) with ``ncclient.manager.connect``."""
    from ncclient import manager
    from ncclient.transport import session as nc_session

    nc_session.TICK = TICK
    return manager.connect(**params)


def close(mgr: Any) -> None:
    try:
        mgr.close_session()
    except Exception:  # a session the server already dropped
        pass


def trustpoint(name: str, index: int) -> str:
    """One trustpoint as a realistic router would carry it."""
    return (
        f"<trustpoint><name>{name}</name><enrollment>"
        f"<url>http://ca{index % 10}.example.com/cgi-bin/pkiclient.exe</url>"
        f"<retry><period>{1 + index % 60}</period><count>{1 + index % 100}</count></retry>"
        f"</enrollment><rsakeypair>key-{index % 7}</rsakeypair></trustpoint>"
    )


def config(entries: list[str]) -> str:
    return f'<config xmlns="{NC_NS}"><crypto xmlns="{CRYPTO_NS}"><ca>{"".join(entries)}</ca></crypto></config>'


def remove_config(names: list[str]) -> str:
    entries = "".join(
        f'<trustpoint nc:operation="remove"><name>{name}</name></trustpoint>' for name in names
    )
    return (
        f'<config xmlns="{NC_NS}" xmlns:nc="{NC_NS}"><crypto xmlns="{CRYPTO_NS}"><ca>{entries}</ca></crypto></config>'
    )


def rpc_element(name: str, **leaves: str | None) -> etree._Element:
    """``<name xmlns=crypto>`` with leaf children; a None value makes an empty leaf."""
    element = etree.Element(f"{{{CRYPTO_NS}}}{name}", nsmap={None: CRYPTO_NS})  # type: ignore[dict-item]
    for leaf, value in leaves.items():
        child = etree.SubElement(element, f"{{{CRYPTO_NS}}}{leaf.replace('_', '-')}")
        if value is not None:
            child.text = value
    return element


def unsupported(error: BaseException) -> bool:
    """True for an rpc-error operation-not-supported (the RPC is not wired yet)."""
    return getattr(error, "tag", None) == "operation-not-supported"


# --------------------------------------------------------------------------
# results


@dataclass
class Figure:
    """One measured number (per second, seconds or MiB) with how it was obtained."""

    value: float | None
    unit: str
    count: int = 0
    seconds: float = 0.0
    server_cpu_ms_per_op: float | None = None
    note: str = ""
    samples: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.samples:
            data.pop("samples")
        return data


def rate(
    op: Callable[[int], Any], settings_count: int, settings_seconds: float, server_pids: Callable[[], list[int]],
    warmup: int = 2,
) -> Figure:
    """Operations per second of ``op(i)``, bounded by count and time."""
    for i in range(warmup):
        op(-1 - i)
    cpu0 = cpu_seconds(server_pids())
    start = time.perf_counter()
    deadline = start + settings_seconds
    count = 0
    while count < settings_count and time.perf_counter() < deadline:
        op(count)
        count += 1
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(server_pids()) - cpu0
    return Figure(
        value=count / elapsed if elapsed > 0 else None, unit="/s", count=count, seconds=elapsed,
        server_cpu_ms_per_op=1000 * cpu / count if count else None,
    )


def timed(op: Callable[[], Any], server_pids: list[int]) -> Figure:
    cpu0 = cpu_seconds(server_pids)
    start = time.perf_counter()
    op()
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(server_pids) - cpu0
    return Figure(value=elapsed, unit="s", count=1, seconds=elapsed, server_cpu_ms_per_op=1000 * cpu)


def median_time(
    op: Callable[[int], float | None], count: int, seconds: float, server_pids: Callable[[], list[int]] | None = None,
) -> Figure:
    """Median of ``op(i)``'s returned durations (or its wall time if it returns None)."""
    samples: list[float] = []
    cpu0 = cpu_seconds(server_pids()) if server_pids else 0.0
    deadline = time.perf_counter() + seconds
    while len(samples) < count and (not samples or time.perf_counter() < deadline):
        start = time.perf_counter()
        result = op(len(samples))
        samples.append(result if result is not None else time.perf_counter() - start)
    cpu = (cpu_seconds(server_pids()) - cpu0) if server_pids else None
    return Figure(
        value=statistics.median(samples), unit="s", count=len(samples), seconds=sum(samples),
        server_cpu_ms_per_op=1000 * cpu / len(samples) if cpu is not None else None,
        samples=[round(s, 6) for s in samples],
    )


# --------------------------------------------------------------------------
# concurrent sessions: worker processes, each driving sessions from threads


def _concurrent_worker(params: dict[str, Any], sessions: int, commands: Any, results: Any) -> None:
    managers: list[Any] = []
    errors: list[str] = []
    lock = threading.Lock()

    def open_one() -> None:
        try:
            mgr = connect(params)
            mgr.get_config(source="running")  # warm-up
            with lock:
                managers.append(mgr)
        except Exception as error:  # reported to the parent
            with lock:
                errors.append(repr(error))

    threads = [threading.Thread(target=open_one) for _ in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    results.put(("ready", len(managers), errors))
    while True:
        try:
            command = commands.get(timeout=600)
        except queue.Empty:
            break
        if command[0] != "run":
            break
        _, start_at, duration, max_per_session = command
        counts: list[tuple[int, float]] = []

        def loop(mgr: Any, start_at: float, duration: float, max_per_session: int,
                 counts: list[tuple[int, float]]) -> None:
            time.sleep(max(0.0, start_at - time.monotonic()))
            end = start_at + duration
            n = 0
            try:
                while n < max_per_session and time.monotonic() < end:
                    mgr.get_config(source="running")
                    n += 1
            finally:
                with lock:
                    counts.append((n, time.monotonic()))

        threads = [
            threading.Thread(target=loop, args=(mgr, start_at, duration, max_per_session, counts))
            for mgr in managers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(duration + 120)
        results.put(("done", counts))
    for mgr in managers:
        close(mgr)
    results.put(("closed",))


class ConcurrentSessions:
    """N sessions spread over P client processes (the client must not be the only bottleneck)."""

    def __init__(self, params: dict[str, Any], sessions: int, processes: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.results = ctx.Queue()
        self.commands = []
        self.procs = []
        per = [sessions // processes + (1 if i < sessions % processes else 0) for i in range(processes)]
        for count in per:
            commands = ctx.Queue()
            proc = ctx.Process(target=_concurrent_worker, args=(params, count, commands, self.results), daemon=True)
            proc.start()
            self.commands.append(commands)
            self.procs.append(proc)
        self.opened = 0
        self.errors: list[str] = []
        for _ in self.procs:
            _, opened, errors = self._next(180)
            self.opened += opened
            self.errors.extend(errors)

    def _next(self, timeout: float) -> Any:
        """The next worker message; RuntimeError if the workers died or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.results.get(timeout=1.0)
            except queue.Empty:
                if not any(proc.is_alive() for proc in self.procs):
                    raise RuntimeError("the concurrent-session worker processes exited") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no answer from the concurrent-session workers in {timeout:.0f} s") from None

    def run(self, seconds: float, max_per_session: int, server_pids: list[int]) -> Figure:
        start_at = time.monotonic() + 0.2
        for commands in self.commands:
            commands.put(("run", start_at, seconds, max_per_session))
        cpu0 = cpu_seconds(server_pids)
        counts: list[tuple[int, float]] = []
        for _ in self.procs:
            message = self._next(seconds + 180)
            counts.extend(message[1])
        cpu = cpu_seconds(server_pids) - cpu0
        total = sum(n for n, _ in counts)
        elapsed = max((end for _, end in counts), default=start_at) - start_at
        note = f"{self.opened} sessions in {len(self.procs)} client processes"
        if self.errors:
            note += f"; {len(self.errors)} failed to open: {self.errors[0]}"
        return Figure(
            value=total / elapsed if elapsed > 0 and total else None, unit="/s", count=total, seconds=elapsed,
            server_cpu_ms_per_op=1000 * cpu / total if total else None, note=note,
        )

    def close(self) -> None:
        for commands in self.commands:
            commands.put(("stop",))
        deadline = time.monotonic() + 60
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


# --------------------------------------------------------------------------
# the figures, measured on both servers side by side
#
# Both servers run at the same time and every figure is measured in rounds
# that alternate between them (ours, theirs, theirs, ours, ...), so that load
# from elsewhere on the machine hits both alike. Loops that change the
# datastore run a fixed count on both, so both datastores stay the same size.


Op = Callable[[int], Any]


def interleaved_rate(ops: list[Op], pids: list[list[int]], count: int, seconds: float, rounds: int = 4,
                     warmup: int = 2) -> list[Figure]:
    """Per server: operations per second of ``ops[k](i)``, in alternating rounds.

    Each server does at most ``count`` operations in at most ``seconds`` in total.
    """
    for op in ops:
        for i in range(warmup):
            op(-1 - i)
    done = [0] * len(ops)
    elapsed = [0.0] * len(ops)
    cpu = [0.0] * len(ops)
    per_count = max(1, -(-count // rounds))
    for r in range(rounds):
        order = range(len(ops)) if r % 2 == 0 else reversed(range(len(ops)))
        for k in order:
            cpu0 = cpu_seconds(pids[k])
            start = time.perf_counter()
            deadline = start + seconds / rounds
            j = 0
            while j < per_count and done[k] < count and time.perf_counter() < deadline:
                ops[k](done[k])
                done[k] += 1
                j += 1
            elapsed[k] += time.perf_counter() - start
            cpu[k] += cpu_seconds(pids[k]) - cpu0
    return [
        Figure(value=n / e if e > 0 and n else None, unit="/s", count=n, seconds=e,
               server_cpu_ms_per_op=1000 * c / n if n else None)
        for n, e, c in zip(done, elapsed, cpu, strict=True)
    ]


def interleaved_median(ops: list[Callable[[], float]], pids: list[list[int]], count: int,
                       seconds: float) -> list[Figure]:
    """Per server: the median of the durations ``ops[k]()`` returns, sampled alternately."""
    samples: list[list[float]] = [[] for _ in ops]
    cpu = [0.0] * len(ops)
    deadline = time.perf_counter() + seconds
    for i in range(count):
        if i and time.perf_counter() > deadline:
            break
        order = range(len(ops)) if i % 2 == 0 else reversed(range(len(ops)))
        for k in order:
            cpu0 = cpu_seconds(pids[k])
            samples[k].append(ops[k]())
            cpu[k] += cpu_seconds(pids[k]) - cpu0
    return [
        Figure(value=statistics.median(s), unit="s", count=len(s), seconds=sum(s),
               server_cpu_ms_per_op=1000 * c / len(s), samples=[round(x, 6) for x in s])
        for s, c in zip(samples, cpu, strict=True)
    ]


def setup_op(params: dict[str, Any]) -> Callable[[], float]:
    def one() -> float:
        start = time.perf_counter()
        mgr = connect(params)
        elapsed = time.perf_counter() - start
        close(mgr)
        return elapsed

    return one


def reply_size(mgr: Any) -> int:
    return len(mgr.get_config(source="running").xml)


def get_config_op(mgr: Any) -> Op:
    def op(i: int) -> None:
        mgr.get_config(source="running")

    return op


def edit_commit_op(mgr: Any, prefix: str) -> Op:
    def op(i: int) -> None:
        mgr.edit_config(target="candidate", config=config([trustpoint(f"{prefix}{i + 10}", i)]))
        mgr.commit()

    return op


def edit_running_op(mgr: Any, prefix: str) -> Op:
    def op(i: int) -> None:
        mgr.edit_config(target="running", config=config([trustpoint(f"{prefix}{i + 10}", i)]))

    return op


def bulk_names(count: int) -> list[str]:
    return [f"tp{i:04d}" for i in range(count)]


def bulk_config(count: int) -> str:
    return config([trustpoint(name, i) for i, name in enumerate(bulk_names(count))])


def median_figure(figures: list[Figure]) -> Figure:
    """The sample with the median value (the lower middle one of an even count), its samples listed."""
    ranked = sorted(figures, key=lambda f: f.value if f.value is not None else float("inf"))
    chosen = ranked[(len(ranked) - 1) // 2]
    chosen.samples = [round(f.value, 6) for f in figures if f.value is not None]
    if len(figures) > 1:
        chosen.note = f"median of {len(figures)}; " + (chosen.note or "")
    return chosen


def candidate_figures_pair(peers: list[Any], settings: Settings,
                           log: Callable[[str], None]) -> list[dict[str, Figure]]:
    """The figures of servers with a candidate datastore (edit-config + commit), side by side."""
    outs: list[dict[str, Figure]] = [{} for _ in peers]
    params = [peer.connect_params() for peer in peers]
    fixed_pids = [[peer.rss_pid()] + ([peer.sshd.pid] if getattr(peer, "sshd", None) else []) for peer in peers]

    def put(key: str, figures: list[Figure], note: Callable[[int], str] | None = None) -> None:
        for k, figure in enumerate(figures):
            if note is not None:
                figure.note = note(k)
            outs[k][key] = figure

    log("session set-up")
    for p in params:
        close(connect(p))  # warm-up: the first connection pays for imports and caches
    put("setup", interleaved_median([setup_op(p) for p in params], fixed_pids, settings.setup_count,
                                    settings.setup_seconds))
    mgrs = [connect(p) for p in params]

    def concurrent(key: str, what: str) -> None:
        # Opened only for this figure: idle ncclient sessions poll every TICK and would load the
        # machine while the other figures are measured.
        log(f"{settings.concurrent_sessions} concurrent sessions each: get-config, {what}")
        concs: list[ConcurrentSessions] = []
        try:
            for p in params:
                concs.append(ConcurrentSessions(p, settings.concurrent_sessions, settings.concurrent_processes))
            put(key, concurrent_rounds(concs, [peer.server_pids() for peer in peers], settings))
        finally:
            for conc in concs:
                conc.close()

    try:
        pids = [peer.server_pids() for peer in peers]  # now including each session's sshd children
        log("get-config, empty datastore")
        get_ops = [get_config_op(m) for m in mgrs]
        put("get_config_empty", interleaved_rate(get_ops, pids, settings.rate_count, settings.rate_seconds),
            lambda k: f"reply {reply_size(mgrs[k])} bytes")
        concurrent("concurrent_empty", "empty datastore")

        log(f"edit-config + commit, one trustpoint per commit, {settings.edit_count} commits each")
        put("edit_commit", interleaved_rate([edit_commit_op(m, "e") for m in mgrs], pids, settings.edit_count,
                                            settings.edit_seconds))
        for figure in (outs[k]["edit_commit"] for k in range(len(peers))):
            if figure.count < settings.edit_count:
                figure.note = f"time limit reached after {figure.count} of {settings.edit_count}"
        for k, m in enumerate(mgrs):
            m.edit_config(target="candidate",
                          config=remove_config([f"e{i + 10}" for i in range(-2, outs[k]["edit_commit"].count)]))
            m.commit()

        log(f"one edit-config of {settings.bulk_entries} trustpoints + commit, median of {settings.bulk_rounds}")
        bulk = bulk_config(settings.bulk_entries)
        unload = remove_config(bulk_names(settings.bulk_entries))
        loads: list[list[Figure]] = [[] for _ in mgrs]
        for round_ in range(settings.bulk_rounds):
            for k, m in enumerate(mgrs):
                if round_:  # untimed: back to the datastore the first load started from
                    m.edit_config(target="candidate", config=unload)
                    m.commit()
                parts: dict[str, float] = {}

                def load(m: Any = m, parts: dict[str, float] = parts) -> None:
                    start = time.perf_counter()
                    m.edit_config(target="candidate", config=bulk)
                    parts["edit"] = time.perf_counter() - start
                    m.commit()
                    parts["commit"] = time.perf_counter() - start - parts["edit"]

                figure = timed(load, pids[k])
                figure.note = f"edit-config {parts['edit']:.3f} s + commit {parts['commit']:.3f} s"
                loads[k].append(figure)
        for k in range(len(mgrs)):
            outs[k]["bulk_commit"] = median_figure(loads[k])

        log(f"get-config, {settings.bulk_entries} trustpoints")
        put("get_config_1000", interleaved_rate(get_ops, pids, settings.rate_count, settings.rate_seconds),
            lambda k: f"reply {reply_size(mgrs[k])} bytes")
        concurrent("concurrent_1000", f"{settings.bulk_entries} trustpoints")

        log(f"edit-config + commit on {settings.bulk_entries} trustpoints, {settings.edit_count_1000} commits each")
        put("edit_commit_1000", interleaved_rate([edit_commit_op(m, "x") for m in mgrs], pids,
                                                 settings.edit_count_1000, settings.edit_seconds))
        for k, peer in enumerate(peers):
            outs[k]["rss_1000"] = Figure(value=(peer_hwm(peer) or 0) / 1024, unit="MiB", note="VmHWM")
    finally:
        for m in mgrs:
            close(m)
    return outs


def concurrent_rounds(concs: list[ConcurrentSessions], pids: list[list[int]], settings: Settings,
                      rounds: int = 2) -> list[Figure]:
    parts: list[list[Figure]] = [[] for _ in concs]
    for r in range(rounds):
        order = range(len(concs)) if r % 2 == 0 else reversed(range(len(concs)))
        for k in order:
            parts[k].append(concs[k].run(settings.concurrent_seconds / rounds, settings.rate_count, pids[k]))
    out = []
    for figures in parts:
        count = sum(f.count for f in figures)
        seconds = sum(f.seconds for f in figures)
        cpu = sum((f.server_cpu_ms_per_op or 0) * f.count for f in figures)
        out.append(Figure(value=count / seconds if seconds and count else None, unit="/s", count=count,
                          seconds=seconds, server_cpu_ms_per_op=cpu / count if count else None,
                          note=figures[0].note))
    return out


def running_figures_pair(peers: list[Any], settings: Settings, log: Callable[[str], None]) -> list[dict[str, Figure]]:
    """The figures of edit-config straight on running (:writable-running), side by side."""
    outs: list[dict[str, Figure]] = [{} for _ in peers]
    mgrs = [connect(peer.connect_params()) for peer in peers]
    try:
        pids = [peer.server_pids() for peer in peers]
        log(f"edit-config on running, one trustpoint per edit, {settings.edit_count} edits each")
        for k, figure in enumerate(interleaved_rate([edit_running_op(m, "r") for m in mgrs], pids,
                                                    settings.edit_count, settings.edit_seconds)):
            outs[k]["edit_running"] = figure
            if figure.count < settings.edit_count:
                figure.note = f"time limit reached after {figure.count} of {settings.edit_count}"
        for k, m in enumerate(mgrs):
            m.edit_config(target="running",
                          config=remove_config([f"r{i + 10}" for i in range(-2, outs[k]["edit_running"].count)]))
        log(f"one edit-config of {settings.bulk_entries} trustpoints on running, median of {settings.bulk_rounds}")
        bulk = bulk_config(settings.bulk_entries)
        unload = remove_config(bulk_names(settings.bulk_entries))
        loads: list[list[Figure]] = [[] for _ in mgrs]
        for round_ in range(settings.bulk_rounds):
            for k, m in enumerate(mgrs):
                if round_:
                    m.edit_config(target="running", config=unload)
                loads[k].append(timed(partial(m.edit_config, target="running", config=bulk), pids[k]))
        for k in range(len(mgrs)):
            outs[k]["bulk_running"] = median_figure(loads[k])
        log(f"edit-config on running on {settings.bulk_entries} trustpoints, {settings.edit_count_1000} edits each")
        for k, figure in enumerate(interleaved_rate([edit_running_op(m, "y") for m in mgrs], pids,
                                                    settings.edit_count_1000, settings.edit_seconds)):
            outs[k]["edit_running_1000"] = figure
        for k, peer in enumerate(peers):
            outs[k]["rss_running"] = Figure(value=(peer_hwm(peer) or 0) / 1024, unit="MiB", note="VmHWM")
    finally:
        for m in mgrs:
            close(m)
    return outs


def setup_time(params: dict[str, Any], settings: Settings, server_pids: list[int]) -> Figure:
    """Median session set-up of one server alone (ours with password authentication)."""
    close(connect(params))
    return interleaved_median([setup_op(params)], [server_pids], settings.setup_count, settings.setup_seconds)[0]


def peer_hwm(peer: Any) -> int | None:
    from peers import vm_hwm_kib

    return vm_hwm_kib(peer.rss_pid())


# --------------------------------------------------------------------------
# key generation: key-generate-rsa vs openssl genrsa


def keygen_ours(peer: Any, settings: Settings) -> Figure:
    mgr = connect(peer.connect_params())
    try:
        request = rpc_element("key-generate-rsa", label="bench-keygen", modulus="2048", replace="true")
        try:
            mgr.dispatch(request)
        except Exception as error:
            if unsupported(error):
                return Figure(value=None, unit="s", note="n/a (not available)")
            return Figure(value=None, unit="s", note=f"n/a (error: {error})")

        def one(_: int) -> None:
            mgr.dispatch(request)

        figure = median_time(one, settings.keygen_count, settings.keygen_seconds, peer.server_pids)
        figure.note = "median; RPC round trip included"
        return figure
    finally:
        close(mgr)


def keygen_openssl(workdir: str, settings: Settings) -> Figure:
    import subprocess

    out = os.path.join(workdir, "openssl-genrsa.pem")

    import resource

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def one(_: int) -> None:
        subprocess.run(["openssl", "genrsa", "-out", out, "2048"], check=True, capture_output=True, timeout=60)

    cpu0 = children_cpu()
    figure = median_time(one, settings.keygen_count, settings.keygen_seconds)
    figure.server_cpu_ms_per_op = 1000 * (children_cpu() - cpu0) / figure.count
    figure.note = "median; process start included; CPU = openssl's"
    return figure
