#!/usr/bin/env python3
"""How much of one edit of 1,000 trustpoints on running is owed to the deletion made just before it?

    python bench/bulk_floor.py [--rounds 12] [--entries 1000] [--json FILE]

An experiment, not a figure of the agent. ``bench/run.py``'s "edit-config
1,000 trustpoints on running" times a create of 1,000 trustpoints that
follows, from its second round on, the untimed deletion of the same 1,000.
Our agent answers that deletion before its work after the reply is done (the
commit record's changes, the config-change notification, the services),
and the next request waits for that work; netconfd does all of it before it
replies. This starts, beside each other:
- "ours": our agent as it is;
- "ours, 1 s pause after the deletion": the same, but the driver waits 1 s
  between the deletion's reply and the timed create, so that nothing of the
  deletion is left when the create starts;
- "ours, no changes or notification": our agent whose large commits (those
  whose changes follow their reply) record no changes and publish no
  config-change notification: not a correct agent, the bound of what making
  those two steps free, or moving them anywhere off the path, could gain;
- netconfd with access control enforced (the target's peer in
  ``bench/run.py``) and without it,
and runs rounds that alternate between them (the order reversed every other
round): each server deletes the 1,000 (untimed, except in the first round,
when there is nothing to delete) and then creates them (timed), as
``bench/run.py`` does. Printed: the median create per server, its server
CPU, and each of ours against netconfd.

The changed agent is our agent changed in memory for this run only: a
``sitecustomize.py`` in a temporary directory, put on that agent process's
PYTHONPATH, replaces ``Datastores._with_changes`` and
``BaseNotifications.datastore_event``. Nothing of it is in the agent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import figures  # noqa: E402
import run  # noqa: E402
from floor import Experiment  # noqa: E402

BULK_ENV = "CA_AGENT_BENCH_BULK"
PAUSED = "ours, 1 s pause after the deletion"
PAUSE_SECONDS = 1.0

# Loaded by every Python process that has its directory on PYTHONPATH; acts only with BULK_ENV set.
SITECUSTOMIZE = textwrap.dedent(
    '''
    import os

    if os.environ.get("CA_AGENT_BENCH_BULK") == "no-changes":
        from dataclasses import replace

        from agent.datastore import store as _store
        from agent.netconf import base_notifications as _notifications

        def _without_changes(self, event):
            # Neither diffed nor recorded: the commit stays out of the history's list.
            return replace(event, record=replace(event.record, changes=(), changes_follow=False))

        _real_event = _notifications.BaseNotifications.datastore_event

        def _event(self, event):
            if isinstance(event, _store.CommitEvent) and not event.record.changes:
                return  # a large commit, left without changes above: no config-change notification
            _real_event(self, event)

        _store.Datastores._with_changes = _without_changes
        _notifications.BaseNotifications.datastore_event = _event
    '''
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12, help="timed creates per server")
    parser.add_argument("--entries", type=int, default=1000, help="trustpoints per edit")
    parser.add_argument("--json", type=Path, help="write the figures as JSON to this file")
    args = parser.parse_args(argv)

    experiment = Experiment("ca-agent-bulk-floor-", SITECUSTOMIZE)
    servers, mgrs = experiment.servers, experiment.mgrs
    create = figures.bulk_config(args.entries)
    delete = figures.remove_config(figures.bulk_names(args.entries))
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    try:
        pids = experiment.start([("ours", None), (PAUSED, None),
                                 ("ours, no changes or notification", {BULK_ENV: "no-changes"})])
        times = {label: [] for label, _ in servers}
        cpu = {label: [] for label, _ in servers}
        for round_ in range(args.rounds + 1):
            order = list(range(len(servers)))
            if round_ % 2:
                order.reverse()
            for k in order:
                label, mgr = servers[k][0], mgrs[k]
                if round_:
                    mgr.edit_config(target="running", config=delete)
                    if label == PAUSED:
                        time.sleep(PAUSE_SECONDS)
                figure = figures.timed(lambda mgr=mgr: mgr.edit_config(target="running", config=create), pids[k])
                if round_:  # the first create follows no deletion, as in bench/run.py's first round
                    times[label].append(1000 * (figure.value or 0.0))
                    cpu[label].append(figure.server_cpu_ms_per_op or 0.0)
    finally:
        experiment.stop()

    result: dict[str, Any] = {"agent": run.agent_version(), "entries": args.entries, "load_average": os.getloadavg(),
                              "servers": {}}
    median = {label: statistics.median(values) for label, values in times.items()}
    print(f"one edit-config of {args.entries} trustpoints on running after their deletion, {args.rounds} rounds")
    print(f"{'server':36s} {'ms':>7s} {'server CPU ms':>14s} {'/ netconfd':>11s}  measurements ms")
    for label, values in times.items():
        ratio = median[label] / median["netconfd"]
        result["servers"][label] = {"ms": values, "median_ms": median[label], "ratio_to_netconfd": ratio,
                                    "server_cpu_ms": statistics.median(cpu[label])}
        print(f"{label:36s} {median[label]:7.1f} {statistics.median(cpu[label]):14.1f} {ratio:11.2f}  "
              + ", ".join(f"{v:.0f}" for v in values))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
