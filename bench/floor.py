#!/usr/bin/env python3
"""How fast could an edit of running be? The floor under the edit-config-on-running figure.

    python bench/floor.py [--rounds 5] [--edits 100] [--seconds 8] [--json FILE]

An experiment, not a figure of the agent: it starts, beside each other,
- our agent as it is;
- "floor, durable": our agent whose edit-config on running of a trustpoint
  does nothing but append 600 bytes to a file and fdatasync it, on the
  committer thread, and answer <ok/> (no edit, no validation, no journal,
  no listeners): every other part of the request is the real one (SSH,
  framing, parsing, access control, dispatch, the committer hand-off);
- "floor, no disk": the same without the write and the fdatasync;
- "edit + validation, durable": the real edit of the running tree and its
  real (incremental) validation, then the durable floor's 600 bytes and
  fdatasync, and the new tree published: what an edit of running would
  cost if the commit record, the snapshot, the journal frame, running.xml
  and the listeners all cost nothing before the reply (a bound for any
  journal design that writes only a small delta before answering; nothing
  of the commit is durable in it);
- netconfd with access control enforced and without it, as bench/run.py
  starts them (both write their configuration back to a file after every
  edit, without fsync),
and times `edit-config` on running, one new trustpoint per edit, driven by
the same ncclient code in alternating rounds (bench/figures.py), as the
report's "edit-config on running /s" row does.

The three are our agent changed in memory for this run only: a
``sitecustomize.py`` in a temporary directory, put on the agent processes'
PYTHONPATH, wraps ``Datastores.edit``. Nothing of it is in the agent.

What it shows: the time left for the edit itself (apply, validate, journal)
if ours is to match netconfd is netconfd's time minus the durable floor's;
"edit + validation, durable" against netconfd says whether moving all the
rest after the reply could be enough.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import figures  # noqa: E402
import run  # noqa: E402
from peers import YANG_DIR, AgentPeer, YumaGuard, make_ssh_key  # noqa: E402

FLOOR_ENV = "CA_AGENT_BENCH_FLOOR"

# Loaded by every Python process that has its directory on PYTHONPATH; acts only with FLOOR_ENV set.
SITECUSTOMIZE = textwrap.dedent(
    '''
    import os

    _MODE = os.environ.get("CA_AGENT_BENCH_FLOOR")
    if _MODE in ("fsync", "none", "validated"):
        import inspect

        from lxml import etree

        from agent.datastore import store as _store
        from agent.datastore.edit import EditResult

        _real_edit = _store.Datastores.edit
        _edit_signature = inspect.signature(_real_edit)
        _files = {}

        def _floor_edit(self, target, config, who, *args, **kwargs):
            first = config[0] if len(config) else None
            if (target is not _store.Target.RUNNING or first is None
                    or "crypto" not in (etree.QName(first).namespace or "")):
                return _real_edit(self, target, config, who, *args, **kwargs)  # the set-up's own edits

            def job():
                result = None
                if _MODE == "validated":
                    with self._mutex:
                        self._check_writable(_store.Target.RUNNING, who)
                    base = self._running
                    call = _edit_signature.bind(self, target, config, who, *args, **kwargs)
                    call.apply_defaults()  # the edit's options by name, however the caller passed them
                    options = call.arguments
                    result = _store.apply_edit(base, config, self.schema, self.namer, options["default_operation"],
                                               options["error_option"], options["guard"])
                    self._validate(result.root, full=True, base=base, changes=result.touched)
                if _MODE in ("fsync", "validated"):
                    fd = _files.get(id(self))
                    if fd is None:
                        fd = _files[id(self)] = os.open(
                            str(self._dir / "floor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                    os.write(fd, b"x" * 600)
                    os.fdatasync(fd)
                if result is not None:
                    with self._mutex:
                        self._running = result.root
                    return result, []
                return EditResult(self._running, changed=False), []

            return self._run(job)

        _store.Datastores.edit = _floor_edit
    '''
)


class Experiment:
    """An experiment's temporary directory (also bench/bulk_floor.py's), its servers and sessions.

    ``work``: the directory; ``patch_dir``: the one holding the ``sitecustomize.py``; ``key``: the
    client key; ``modpath``: netconfd's module path. :meth:`stop` stops everything and removes the
    directory, and ``~/.yuma`` if netconfd created it.
    """

    def __init__(self, prefix: str, sitecustomize: str) -> None:
        self.yuma = YumaGuard()
        self.work = Path(tempfile.mkdtemp(prefix=prefix))
        self.patch_dir = self.work / "patch"
        self.patch_dir.mkdir()
        (self.patch_dir / "sitecustomize.py").write_text(sitecustomize)
        self.key = self.work / "client_key"
        make_ssh_key(self.key)
        self.modpath = os.pathsep.join([str(YANG_DIR), os.path.join(sys.prefix, "share", "yang", "modules", "ietf")])
        self.servers: list[tuple[str, Any]] = []
        self.mgrs: list[Any] = []

    def start(self, agents: list[tuple[str, dict[str, str] | None]],
              first_on_path: dict[str, Path] | None = None) -> list[list[int]]:
        """Start our agent once per ``(label, environment)`` (an environment turns the sitecustomize on;
        None: the agent as it is), then netconfd on running with access control enforced and without it,
        and open one session to each. ``first_on_path``: a directory to put first on a label's
        PYTHONPATH (another revision's ``agent/``: bench/ab.py). Returns each server's pids, in order."""
        for label, env in agents:
            agent = AgentPeer(self.work / f"agent-{len(self.servers)}", self.key)
            if first_on_path and label in first_on_path:
                agent.extra_pythonpath.append(str(first_on_path[label]))
            if env:
                agent.extra_env.update(env)
                agent.extra_pythonpath.append(str(self.patch_dir))
            self.servers.append((label, agent))  # stopped by stop() even if it fails to start
            agent.start()
            run.use_publickey(agent, self.key)
        for label, access_control in (("netconfd", True), ("netconfd, NACM off", False)):
            self.servers.append((label, run.start_netconfd(self.work, self.key, "running", run.CRYPTO_MODULE,
                                                           self.modpath, access_control=access_control)))
        self.mgrs.extend(figures.connect(peer.connect_params()) for _, peer in self.servers)
        return [peer.server_pids() for _, peer in self.servers]

    @staticmethod
    def add_edit_round_options(parser: argparse.ArgumentParser, rounds: int) -> None:
        """``--rounds`` (default ``rounds``), ``--edits`` and ``--seconds``: what :meth:`edit_rounds` takes."""
        parser.add_argument("--rounds", type=int, default=rounds, help="measurements, each of alternating rounds")
        parser.add_argument("--edits", type=int, default=100, help="edits per server per measurement")
        parser.add_argument("--seconds", type=float, default=8.0, help="time limit per server per measurement")

    def edit_rounds(self, pids: list[list[int]], rounds: int, edits: int, seconds: float,
                    prefix: str) -> dict[str, list[figures.Figure]]:
        """``rounds`` measurements of edit-config on running, one new trustpoint per edit, each in
        alternating rounds over every server (bench/figures.py), its trustpoints removed after it.
        Returns each server's figures by label."""
        found: dict[str, list[figures.Figure]] = {label: [] for label, _ in self.servers}
        for r in range(rounds):
            names = f"{prefix}{r}x"
            measured = figures.interleaved_rate([figures.edit_running_op(m, names) for m in self.mgrs], pids, edits,
                                                seconds)
            for (label, _), mgr, figure in zip(self.servers, self.mgrs, measured, strict=True):
                found[label].append(figure)
                mgr.edit_config(target="running", config=figures.remove_config(
                    [f"{names}{i + 10}" for i in range(-2, figure.count)]))
        return found

    def stop(self) -> None:
        for mgr in self.mgrs:
            figures.close(mgr)
        for _, peer in self.servers:
            peer.stop()
        self.yuma.cleanup()
        shutil.rmtree(self.work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    Experiment.add_edit_round_options(parser, rounds=5)
    parser.add_argument("--json", type=Path, help="write the figures as JSON to this file")
    args = parser.parse_args(argv)

    experiment = Experiment("ca-agent-floor-", SITECUSTOMIZE)
    try:
        pids = experiment.start([(label, {FLOOR_ENV: floor} if floor else None) for label, floor in (
            ("ours", None), ("edit + validation, durable", "validated"), ("floor, durable", "fsync"),
            ("floor, no disk", "none"))])
        found = experiment.edit_rounds(pids, args.rounds, args.edits, args.seconds, "f")
    finally:
        experiment.stop()
    rates = {label: [figure.value or 0.0 for figure in figs] for label, figs in found.items()}
    cpu = {label: [figure.server_cpu_ms_per_op or 0.0 for figure in figs] for label, figs in found.items()}

    result: dict[str, Any] = {"agent": run.agent_version(), "load_average": os.getloadavg(), "servers": {}}
    print(f"{'server':27s} {'edits/s':>9s} {'ms/edit':>8s} {'server CPU ms':>14s}  measurements /s")
    for label, values in rates.items():
        median = statistics.median(values)
        result["servers"][label] = {"per_second": values, "median_per_second": median,
                                    "server_cpu_ms_per_op": statistics.median(cpu[label])}
        print(f"{label:27s} {median:9.1f} {1000 / median:8.2f} {statistics.median(cpu[label]):14.2f}  "
              + ", ".join(f"{v:.0f}" for v in values))
    ms = {label: 1000 / statistics.median(values) for label, values in rates.items()}
    for peer in ("netconfd", "netconfd, NACM off"):
        budget = ms[peer] - ms["floor, durable"]
        result[f"budget_ms_vs_{peer}"] = budget
        print(f"left for the edit itself, to match {peer}: {budget:.2f} ms (ours spends "
              f"{ms['ours'] - ms['floor, durable']:.2f} ms, its edit and validation alone "
              f"{ms['edit + validation, durable'] - ms['floor, durable']:.2f} ms)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
