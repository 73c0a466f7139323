#!/usr/bin/env python3
"""A/B: the agent of the working tree against the agent of a git revision, with timers inside both.

    python bench/ab.py [--base HEAD] [--rounds 8] [--edits 100] [--preload 0] [--json FILE]

An experiment, like bench/floor.py: it starts, beside each other, our agent
from the working tree ("new"), our agent from ``--base`` (``git archive`` of
its ``agent/`` and ``yang/`` into the experiment's directory, put first on
that agent's PYTHONPATH: "base"), and netconfd with and without access
control (bench/floor.py's Experiment), and times `edit-config` on running,
one new trustpoint per edit, in alternating rounds (bench/figures.py), as
the report's "edit-config on running /s" row does; ``--preload N`` gives
every server N trustpoints first (the row "same, on 1,000 trustpoints").

Both agents get a ``sitecustomize.py`` that wraps the steps of a request
and records each call's wall and thread CPU time: the request
(``handle_message``), the committer's ``apply_edit``, validation, commit
record, ``_persist`` (snapshot, journal, running.xml) and within it the
journal append, the listeners after the reply, and the reply's send. A
step the base revision does not have is left out. The removals between the
rounds (one per round) are timed too: the medians do not see them, the
means do (both are printed).

Why: a change of a few percent is inside the spread of any one rate
measurement on this machine (±5 % from round to round), so rates alone
cannot tell whether a change helped; the timers inside the agent can say
where the time of a request moved to.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import figures  # noqa: E402
import run  # noqa: E402
from floor import Experiment  # noqa: E402
from peers import REPO  # noqa: E402

TIMERS_ENV = "CA_AGENT_BENCH_TIMERS"

# Loaded by every Python process that has its directory on PYTHONPATH; acts only with TIMERS_ENV set.
SITECUSTOMIZE = textwrap.dedent(
    '''
    import os

    _OUT = os.environ.get("CA_AGENT_BENCH_TIMERS")
    if _OUT:
        import importlib
        import json
        import threading
        import time

        _calls = {}
        _lock = threading.Lock()
        _STEPS = (  # (module, class or None, function, label)
            ("agent.netconf.dispatch", "NetconfAgent", "handle_message", "request"),
            ("agent.datastore.store", None, "apply_edit", "apply_edit"),
            ("agent.netconf.yang", "YangSupport", "validate", "validation"),
            ("agent.datastore.store", "Datastores", "_record", "commit record"),
            ("agent.datastore.store", "Datastores", "_persist", "persist"),
            ("agent.datastore.history", "CommitHistory", "append", "journal append"),
            ("agent.datastore.store", "Datastores", "_deliver", "listeners"),
            ("agent.netconf.session", "NetconfSession", "send", "reply sent"),
        )

        def _wrap(owner, name, label):
            real = getattr(owner, name)

            def timed(*args, **kwargs):
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    return real(*args, **kwargs)
                finally:
                    sample = (time.perf_counter() - wall, time.thread_time() - cpu)
                    with _lock:
                        _calls.setdefault(label, []).append(sample)

            setattr(owner, name, timed)

        for module_name, class_name, function, label in _STEPS:
            module = importlib.import_module(module_name)
            owner = getattr(module, class_name, None) if class_name else module
            if owner is not None and hasattr(owner, function):
                _wrap(owner, function, label)

        def _dump():
            while True:
                time.sleep(0.5)
                with _lock:
                    snapshot = {label: list(samples) for label, samples in _calls.items()}
                snapshot["code"] = importlib.import_module("agent").__file__
                with open(_OUT + ".tmp", "w") as handle:
                    json.dump(snapshot, handle)
                os.replace(_OUT + ".tmp", _OUT)

        threading.Thread(target=_dump, name="bench-timers", daemon=True).start()
    '''
)


def export_revision(revision: str, into: Path) -> str:
    """``agent/`` and ``yang/`` of ``revision`` under ``into``; returns the commit it names."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", revision], check=True,
                            capture_output=True, text=True).stdout.strip()
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "agent", "yang"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit


def summarise(samples: list[list[float]]) -> dict[str, float]:
    walls = sorted(wall for wall, _ in samples)
    return {"calls": len(samples), "median_wall_ms": 1000 * statistics.median(walls),
            "median_cpu_ms": 1000 * statistics.median(cpu for _, cpu in samples),
            "mean_wall_ms": 1000 * statistics.fmean(walls),
            "p90_wall_ms": 1000 * walls[int(0.9 * (len(walls) - 1))]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD", help="the git revision to compare the working tree with")
    Experiment.add_edit_round_options(parser, rounds=8)
    parser.add_argument("--preload", type=int, default=0, help="trustpoints every server holds first")
    parser.add_argument("--json", type=Path, help="write the figures as JSON to this file")
    args = parser.parse_args(argv)

    experiment = Experiment("ca-agent-ab-", SITECUSTOMIZE)
    timers = {"new": experiment.work / "timers-new.json", "base": experiment.work / "timers-base.json"}
    try:
        base = experiment.work / "base"
        commit = export_revision(args.base, base)
        pids = experiment.start([(label, {TIMERS_ENV: str(path)}) for label, path in timers.items()],
                                first_on_path={"base": base})
        if args.preload:
            for mgr in experiment.mgrs:
                mgr.edit_config(target="running", config=figures.bulk_config(args.preload))
        found = experiment.edit_rounds(pids, args.rounds, args.edits, args.seconds, "ab")
        rates = {label: [figure.value or 0.0 for figure in figs] for label, figs in found.items()}
        time.sleep(1.5)  # the timers' last dump
        dumps = {label: json.loads(path.read_text()) for label, path in timers.items()}
        code = {label: dump.pop("code") for label, dump in dumps.items()}
        steps = {label: {step: summarise(samples) for step, samples in dump.items()} for label, dump in dumps.items()}
    finally:
        experiment.stop()

    version = run.agent_version()
    result: dict[str, Any] = {"agent": version, "base": commit, "preload": args.preload,
                              "load_average": os.getloadavg(), "code": code, "rates": rates, "steps": steps}
    print(f"new: the working tree of {version}; base: {commit}; {args.preload} trustpoints preloaded")
    for label, path in code.items():
        print(f"  {label}: {path}")
    print(f"{'server':20s} {'median /s':>10s}  measurements /s")
    for label, values in rates.items():
        print(f"{label:20s} {statistics.median(values):10.1f}  " + ", ".join(f"{v:.0f}" for v in values))
    print(f"\n{'step (median ms)':16s} {'new wall':>9s} {'base wall':>10s} {'new CPU':>8s} {'base CPU':>9s}"
          f" {'new mean':>9s} {'base mean':>10s}")
    for step in sorted(steps["base"].keys() | steps["new"].keys(),
                       key=lambda name: -max(s[name]["median_wall_ms"] for s in steps.values() if name in s)):
        row = [steps[label].get(step) for label in ("new", "base")]
        cells = [f"{s['median_wall_ms']:.3f}" if s else "-" for s in row]
        cells += [f"{s['median_cpu_ms']:.3f}" if s else "-" for s in row]
        cells += [f"{s['mean_wall_ms']:.3f}" if s else "-" for s in row]
        print(f"{step:16s} {cells[0]:>9s} {cells[1]:>10s} {cells[2]:>8s} {cells[3]:>9s} {cells[4]:>9s} {cells[5]:>10s}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
