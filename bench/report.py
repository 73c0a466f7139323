#!/usr/bin/env python3
"""Markdown report and PNG charts from the JSON of run.py, scale.py and enroll_bench.py.

    python bench/report.py --run RUN.json [--scale SCALE.json] [--enroll ENROLL.json]
                           [--baseline BASELINE.json] [--out bench/results]

Writes OUT/REPORT.md, OUT/ratios.png (for every figure and peer: how many
times the agent is ahead, a bar each, with the 1.0 line) and
OUT/growth.png (cost per operation against the number of trustpoints, per
server). Needs matplotlib (bench/requirements.txt); the agent does not.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

OPEN_NETCONFD = "netconfd-nacm-off"  # as bench/run.py
ROOT_NETOPEER2 = "netopeer2-root"
INFO_PEERS = ((OPEN_NETCONFD, "netconfd, NACM off"), (ROOT_NETOPEER2, "netopeer2, root (no NACM)"))

GROWTH_FIGURES = [
    ("edit_commit", "edit-config + commit of one trustpoint", "ms", True),
    ("get_config", "get-config of everything", "ms", True),
    ("get_config_one", "get-config filtered to one trustpoint", "ms", True),
    ("get_one", "get filtered to one trustpoint", "ms", True),
    ("rss_mib", "peak RSS", "MiB", False),
]


def advantage(row: dict[str, Any]) -> float | None:
    """How many times the agent is ahead on this row (>1: ahead), whichever way the figure is better."""
    r = row.get("ratio")
    if r is None or r <= 0:
        return None
    return r if row["better"] == "higher" else 1.0 / r


def fmt_value(figure: dict[str, Any] | None) -> str:
    if not figure or figure.get("value") is None:
        return (figure or {}).get("note") or "-"
    value, unit = figure["value"], figure["unit"]
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:.1f}/s"


def order_of(sizes: list[int], costs: list[float | None]) -> tuple[str, float | None]:
    """Growth order from the log-log slope of the cost between the two largest sizes."""
    pairs = [(n, c) for n, c in zip(sizes, costs, strict=True) if c]
    if len(pairs) < 2:
        return "n/a", None
    (n1, c1), (n2, c2) = pairs[-2], pairs[-1]
    slope = math.log(c2 / c1) / math.log(n2 / n1)
    if slope < 0.25:
        kind = "constant"
    elif slope < 0.8:
        kind = "sublinear"
    elif slope < 1.2:
        kind = "linear"
    else:
        kind = "superlinear"
    return kind, slope


def cost_ms(figure: Any) -> float | None:
    if isinstance(figure, (int, float)):
        return float(figure)
    if not figure or not figure.get("value"):
        return None
    return 1000.0 / figure["value"] if figure.get("unit") == "/s" else figure["value"] * 1000


def ratio_chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if advantage(r) is not None and r["target"].startswith("ratio")]
    labels = [f"{r['figure'][:58]}  [{r['server']}]" for r in shown]
    values = [advantage(r) or 0.0 for r in shown]
    colors = ["#2a7" if v >= 1.0 else "#d44" for v in values]
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(shown) + 1.5))
    ax.barh(range(len(shown)), values, color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("times ahead of the peer (> 1: ca-agent better; log scale)")
    ax.set_title("ca-agent against netconfd and netopeer2\n(each enforcing access control), per figure")
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.2f}", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def growth_chart(scale: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(int(n) for n in scale["sizes"])
    servers = sorted({s for n in scale["sizes"].values() for s in n})
    extra = [("restart", "restart of ca-agent (s)")] if scale.get("restart_s") else []
    count = len(GROWTH_FIGURES) + len(extra)
    fig, axes = plt.subplots(2, (count + 1) // 2, figsize=(15, 8))
    for ax, (key, title, unit, per_op) in zip(axes.flat, GROWTH_FIGURES, strict=False):
        for server in servers:
            ys = [cost_ms(scale["sizes"][str(n)].get(server, {}).get(key)) for n in sizes]
            ax.plot(sizes, [y if y else float("nan") for y in ys], marker="o", label=server)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("trustpoints")
        ax.set_ylabel(f"{unit} per operation" if per_op else unit)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if extra:
        ax = axes.flat[len(GROWTH_FIGURES)]
        ax.plot(sizes, [scale["restart_s"].get(str(n)) for n in sizes], marker="o", label="ours")
        ax.set_xscale("log")
        ax.set_title(extra[0][1], fontsize=9)
        ax.set_xlabel("trustpoints")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[count:]:
        ax.axis("off")
    fig.suptitle("How the cost grows with the number of trustpoints (log-log)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_phrase(machine: dict[str, Any]) -> str:
    """"load average 1.30, 2.93, 2.13 at the start, ... at the end, on 2 CPUs" from a run's machine facts."""

    def loads(key: str) -> str:
        values = machine.get(key)
        return ", ".join(f"{v:.2f}" for v in values) if values else "-"

    return (f"load average {loads('loadavg_start')} at the start, {loads('loadavg_end')} at the end, "
            f"on {machine.get('cpus')} CPUs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--scale", type=Path)
    parser.add_argument("--enroll", type=Path)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--notes", type=Path, help="Markdown appended to the report (findings, changes)")
    args = parser.parse_args(argv)
    run = json.loads(args.run.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = ["# ca-agent against netconfd and netopeer2: report", ""]
    meta = run["meta"]
    lines += [
        f"Agent {meta.get('agent_version')}, {meta.get('mode')} run of `bench/run.py` "
        f"({meta.get('seconds')} s; {load_phrase(meta['machine'])} shared with other developers). netconfd: "
        + str(meta.get("netconfd_module")) + "; "
        + str(meta.get("netconfd_access", "access control off")) + ". netopeer2: "
        + str(meta.get("netopeer2")) + ".", "",
        "![ratio per figure and peer](ratios.png)", "",
    ]
    present = {row["peer"] for row in run["rows"]}
    info_peers = [(peer, label) for peer, label in INFO_PEERS if peer in present]
    open_rows = OPEN_NETCONFD in present
    if info_peers:
        lines += [
            "The targets are against the peers configured like ours: access control enforced, with the agent's "
            "own task groups. The last columns, the peers without access control as in the earlier runs, are "
            "information.", ""]
    lines += [
        "| figure | ours | netconfd | ratio | netopeer2 | ratio | target | met |"
        + "".join(f" {label} | ratio |" for _, label in info_peers),
        "|---|---|---|---|---|---|---|---|" + "---|---|" * len(info_peers),
    ]
    by_key: dict[str, dict[str, dict[str, Any]]] = {}
    order: list[str] = []
    for row in run["rows"]:
        if row["key"] not in by_key:
            order.append(row["key"])
        by_key.setdefault(row["key"], {})[row["peer"]] = row
    for key in order:
        peers = by_key[key]
        first = next(iter(peers.values()))
        # An "other" row has one peer of its own (openssl, scepclient), shown in netconfd's column.
        nc = peers.get("netconfd") or (first if first["mode"] == "other" else None)
        np2 = peers.get("netopeer2")
        mets = [r["target_met"] for r in peers.values() if r["target_met"] is not None]
        met = "" if not mets else ("yes" if all(mets) else "**no**")

        def cell(r: dict[str, Any] | None) -> tuple[str, str]:
            if r is None:
                return "-", "-"
            return fmt_value(r["theirs"]), f"{r['ratio']:.2f}" if r["ratio"] is not None else "n/a"

        a, b = cell(nc)
        c, d = cell(np2)
        line = (f"| {first['figure']} | {fmt_value(first['ours'])} | {a} | {b} | {c} | {d} | "
                f"{first['target']} | {met} |")
        for peer, _ in info_peers:
            e, f = cell(peers.get(peer))
            line += f" {e} | {f} |"
        lines.append(line)
    ratio_chart(run["rows"], args.out / "ratios.png")
    if args.baseline and args.baseline.exists():
        base = json.loads(args.baseline.read_text())
        now = {(r["key"], r["peer"]): r for r in run["rows"]}
        # A baseline without the access-control setting ran netconfd without it: compare with that netconfd.
        old_style = "netconfd_access" not in base["meta"]
        same = {"netconfd": OPEN_NETCONFD if old_style and open_rows else "netconfd",
                "netopeer2": ROOT_NETOPEER2 if old_style and ROOT_NETOPEER2 in present else "netopeer2"}
        lines += ["", f"Before this round (agent {base['meta'].get('agent_version')}, same benchmark"
                  + ("; the peers without access control, then and now" if old_style and info_peers else "")
                  + "):", "", "| figure | peer | ratio before | ratio now |", "|---|---|---|---|"]
        for row in base["rows"]:
            other = now.get((row["key"], same.get(row["peer"], row["peer"])))
            if row.get("ratio") is None or other is None or other.get("ratio") is None or row["target"] == "info":
                continue
            lines.append(f"| {row['figure']} | {row['server']} | {row['ratio']:.2f} | {other['ratio']:.2f} |")
    if args.scale and args.scale.exists():
        scale = json.loads(args.scale.read_text())
        sizes = sorted(int(n) for n in scale["sizes"])
        servers = sorted({s for n in scale["sizes"].values() for s in n})
        growth_chart(scale, args.out / "growth.png")
        scale_meta = scale.get("meta", {})
        lines += ["", "## Scale", "", "![growth curves](growth.png)", "",
                  f"Agent {scale_meta.get('agent_version')}, `bench/scale.py` "
                  f"({load_phrase(scale_meta.get('machine', {}))}; it can be from another day than the run above).",
                  "",
                  "Cost per operation (ms; RSS in MiB) at each size, and the order of growth read from the "
                  "slope between the two largest sizes on a log-log scale (cost ∝ n^slope: < 0.25 constant, "
                  "< 0.8 sublinear, < 1.2 linear).", "",
                  "| figure | server | " + " | ".join(f"{n:,}" for n in sizes) + " | order (slope) |",
                  "|---|---|" + "---|" * len(sizes) + "---|"]
        for key, title, _unit, _per_op in GROWTH_FIGURES:
            for server in servers:
                costs = [cost_ms(scale["sizes"][str(n)].get(server, {}).get(key)) for n in sizes]
                kind, slope = order_of(sizes, costs)
                cells = " | ".join(f"{c:.2f}" if c else "-" for c in costs)
                lines.append(f"| {title} | {server} | {cells} | {kind}"
                             + (f" ({slope:.2f})" if slope is not None else "") + " |")
        restart = [scale.get("restart_s", {}).get(str(n)) for n in sizes]
        if any(restart):
            kind, slope = order_of(sizes, restart)
            lines.append("| restart, until a get-config answered (s) | ours | "
                         + " | ".join(f"{r:.2f}" if r else "-" for r in restart)
                         + f" | {kind}" + (f" ({slope:.2f})" if slope is not None else "") + " |")
        loads = scale.get("load_s", {})
        for server in servers:
            if server in loads:
                lines.append(f"| loading up to this size (bulk commits of 1,000), s | {server} | "
                             + " | ".join(str(loads[server].get(str(n), "-")) for n in sizes) + " | |")
        for server, why in (scale.get("failed") or {}).items():
            lines.append(f"\n{server} left the scale run: {why}")
        conc = scale.get("concurrency") or {}
        if conc:
            lines += ["", "### 100 concurrent sessions", "",
                      f"On {next(iter(conc.values())).get('size', '?'):,} trustpoints: 50 readers (`<get>` filtered "
                      "to one random trustpoint), 50 writers (lock candidate, one-leaf edit, commit, unlock; a "
                      "lock-denied is retried with a randomized exponential back-off from 2 to 100 ms and "
                      "counted apart), 4 client processes. The 100 sessions connect at once; a connection the "
                      "server drops then is tried again (up to 6 times, randomized back-off from 0.1 s doubling) "
                      "and counted apart as a reconnection.", "",
                      "| server | sessions | reads/s | read p50 / p99 ms | writes/s | write p50 / p99 ms | errors "
                      "| lock retries | reconnections | memory per session (Pss) |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for server, c in conc.items():
                lines.append(
                    f"| {server} | {c['sessions']} | {c['reads_per_s']} | {c['read_ms_p50']} / {c['read_ms_p99']} "
                    f"| {c['writes_per_s']} | {c['write_ms_p50']} / {c['write_ms_p99']} | {c['errors']} "
                    f"| {c['lock_retries']} | {c.get('open_retries', '-')} | {c['memory_per_session_kib']} KiB |")
                if c.get("error_samples"):
                    lines.append(f"|  | errors, e.g. | {'; '.join(c['error_samples'][:1])[:150]} | | | | | | | |")
    if args.enroll and args.enroll.exists():
        enroll = json.loads(args.enroll.read_text())
        lines += ["", "## Enrollment at scale", "",
                  f"{enroll['meta']['count']} trustpoints, {enroll['meta']['driver']} (each takes the next "
                  "trustpoint and runs `ca-enroll`), lab CA on 127.0.0.1; `dead-ca`: every tenth trustpoint points "
                  "at a CA that never answers; `restart`: the agent restarted once every request is pending.", "",
                  "| run | good enrollments done after | good /s | ca-enroll p50 / p99 ms | polling until all issued "
                  "| failed (good) | dead CA outcome |", "|---|---|---|---|---|---|---|"]
        for name, r in enroll["runs"].items():
            lines.append(
                f"| {name} | {r['good_finished_s']} s | {r['good_per_s']} | {r['enroll_ms_p50']} / {r['enroll_ms_p99']} "
                f"| {str(r.get('poll_seconds', '-')) + ' s' if 'poll_seconds' in r else '-'} "
                f"({r.get('issued', '-')} issued{'; after a restart of ' + str(r['restart_s']) + ' s' if 'restart_s' in r else ''}) "
                f"| {r['good_failed']} | {', '.join(r['dead_outcomes']) or '-'} |")
    if args.notes and args.notes.exists():
        lines += ["", args.notes.read_text().strip()]
    (args.out / "REPORT.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
