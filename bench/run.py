#!/usr/bin/env python3
"""Side-by-side benchmark: our agent against yuma123 netconfd, openssl and micromdm SCEP.

    python bench/run.py [--quick] [--json FILE] [--no-scep] [--no-netopeer2] [--keep]

Starts our agent and, beside it, netconfd loaded with our ca-agent-crypto
module (behind a throwaway sshd on 127.0.0.1; with NACM enforced and the
agent's own task groups, as ours, and for information a second one without
access control, as the earlier runs) and CESNET netopeer2 with the
same module (the shared peer kit), drives all with the same
ncclient code, times key-generate-rsa against `openssl genrsa` and one SCEP
authenticate+enroll against micromdm's scepclient (inside a private network
namespace, see bench/scep_bench.py), prints a table and writes it as JSON.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import figures  # noqa: E402
from figures import Figure, Settings  # noqa: E402
from peers import (  # noqa: E402
    CRYPTO_MODULE,
    NP2_NACM_USER,
    REPO,
    YANG_DIR,
    AgentPeer,
    NetconfdPeer,
    Netopeer2Peer,
    YumaGuard,
    config_only_copy,
    make_ssh_key,
    netopeer2_available,
)

CRYPTO_CAPABILITY = "urn:ca-agent:yang:crypto?module=ca-agent-crypto"


@dataclass(frozen=True)
class Row:
    """One figure of the table: which mode measures it, and which way is better."""

    mode: str  # "candidate" or "running": which netconfd instance it is compared with
    key: str
    figure: str
    better: str  # "higher" or "lower"
    target: str  # how the target is expressed, e.g. "ratio >= 1"
    peer: str = ""  # an "other" row's one peer (default: its key), e.g. scepclient for both SCEP rows


ROWS = [
    Row("candidate", "setup", "session set-up, SSH + hello (s, median)", "lower", "ratio <= 1"),
    Row("candidate", "setup_password", "  same, ours with password auth (scrypt)", "lower", "info"),
    Row("candidate", "get_config_empty", "get-config /s, empty datastore", "higher", "ratio >= 1"),
    Row("candidate", "get_config_1000", "get-config /s, 1,000 trustpoints", "higher", "ratio >= 1"),
    Row("candidate", "edit_commit", "edit-config + commit /s (1 trustpoint each)", "higher", "ratio >= 1"),
    Row("candidate", "edit_commit_1000", "  same, on 1,000 trustpoints", "higher", "ratio >= 1"),
    Row("candidate", "bulk_commit", "edit-config 1,000 trustpoints + commit (s)", "lower", "ratio <= 1"),
    Row("candidate", "concurrent_empty", "20 sessions get-config, total /s, empty", "higher", "ratio >= 1"),
    Row("candidate", "concurrent_1000", "20 sessions get-config, total /s, 1,000 tp", "higher", "ratio >= 1"),
    Row("candidate", "rss_1000", "peak RSS with 1,000 trustpoints (MiB)", "lower", "ours < 150"),
    Row("running", "edit_running", "edit-config on running /s (1 trustpoint each)", "higher", "ratio >= 1"),
    Row("running", "edit_running_1000", "  same, on 1,000 trustpoints", "higher", "ratio >= 1"),
    Row("running", "bulk_running", "edit-config 1,000 trustpoints on running (s)", "lower", "ratio <= 1"),
    Row("running", "rss_running", "peak RSS, running-target run (MiB)", "lower", "ours < 150"),
    Row("running", "edit_running_tmpfs", "edit-config on running /s, ours on tmpfs (fsync free, like the peers)",
        "higher", "info"),
    Row("running", "edit_running_1000_tmpfs", "  same, on 1,000 trustpoints", "higher", "info"),
    Row("running", "bulk_running_tmpfs", "edit-config 1,000 trustpoints on running (s), ours on tmpfs", "lower",
        "info"),
    Row("other", "keygen", "key-generate-rsa 2048 vs openssl genrsa 2048 (s, median)", "lower", "info"),
    Row("other", "scep", "SCEP authenticate + enroll vs scepclient (s, median)", "lower", "ratio <= 1"),
    Row("other", "scep_tmpfs", "  same, ours on tmpfs (fsync free, like scepclient)", "lower", "info", peer="scep"),
]

OPEN_NETCONFD = "netconfd-nacm-off"
"""netconfd without access control, as in the earlier runs: shown beside the like-with-like netconfd, as information."""
ROOT_NETOPEER2 = "netopeer2-root"
"""netopeer2 driven as root, whom sysrepo exempts from NACM, as in the earlier runs: information."""
INFO_PEERS = (OPEN_NETCONFD, ROOT_NETOPEER2)

PEER_LABELS = {
    ("candidate", "netconfd"): "netconfd (candidate)",
    ("running", "netconfd"): "netconfd (running)",
    ("candidate", OPEN_NETCONFD): "netconfd, NACM off (candidate)",
    ("running", OPEN_NETCONFD): "netconfd, NACM off (running)",
    ("candidate", "netopeer2"): "netopeer2",
    ("running", "netopeer2"): "netopeer2",
    ("candidate", ROOT_NETOPEER2): "netopeer2, root (no NACM)",
    ("running", ROOT_NETOPEER2): "netopeer2, root (no NACM)",
    ("other", "keygen"): "openssl genrsa",
    ("other", "scep"): "micromdm scepclient",
}


def agent_version() -> str:
    """The commit measured, and whether agent/ or yang/ differ from it (the tree changes under us)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "agent", "yang"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" + uncommitted changes in agent/ or yang/" if dirty else "")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# servers


def start_netconfd(workdir: Path, client_key: Path, target: str, module: Path, modpath: str,
                   access_control: bool = True) -> NetconfdPeer:
    name = f"netconfd-{target}" if access_control else f"netconfd-nacm-off-{target}"
    peer = NetconfdPeer(workdir / name, client_key, module, target, modpath, access_control=access_control)
    return peer.start()


def netconfd_accepts(peer: NetconfdPeer) -> tuple[bool, str]:
    """Whether netconfd loaded our module: it is advertised and the log has no error."""
    try:
        mgr = figures.connect(peer.connect_params())
    except Exception as error:
        return False, f"cannot connect: {error}"
    try:
        advertised = any(cap.startswith(CRYPTO_CAPABILITY) for cap in mgr.server_capabilities)
        mgr.edit_config(target=peer.target, config=figures.config([figures.trustpoint("probe", 0)]))
        if peer.target == "candidate":
            mgr.commit()
        mgr.edit_config(target=peer.target, config=figures.remove_config(["probe"]))
        if peer.target == "candidate":
            mgr.commit()
    except Exception as error:
        return False, f"refused a trustpoint edit: {error}"
    finally:
        figures.close(mgr)
    errors = [line for line in peer.log_text().splitlines() if line.lower().startswith("error")]
    if not advertised:
        return False, "module not advertised in <hello>"
    if errors:
        return False, "; ".join(errors[:3])
    return True, "full module accepted (config false state nodes and RPCs included; no SIL code, so RPCs are no-ops)"


def use_publickey(agent: AgentPeer, client_key: Path) -> str:
    """Import the client key with key-import-authentication-rsa so both servers use key auth."""
    mgr = figures.connect(agent.connect_params())
    try:
        public = Path(f"{client_key}.pub").read_text().strip()
        mgr.dispatch(figures.rpc_element("key-import-authentication-rsa", label="bench-client", public_key=public,
                                         user="admin"))
    except Exception as error:
        return "password (key-import-authentication-rsa: " + (
            "n/a (not available)" if figures.unsupported(error) else str(error)) + ")"
    finally:
        figures.close(mgr)
    agent.auth = "publickey"
    return "publickey (RSA 2048, as for netconfd)"


# --------------------------------------------------------------------------
# SCEP sub-benchmark (private network namespace)


def run_scep(workdir: Path, settings: Settings) -> dict[str, Any]:
    out = workdir / "scep.json"
    command = [
        "bash", str(REPO / "tests" / "netns_run.sh"), sys.executable, str(REPO / "bench" / "scep_bench.py"),
        "--json-out", str(out), "--count", str(settings.scep_count), "--workdir", str(workdir / "scep"),
    ]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return {"error": "scep_bench.py timed out after 240 s"}
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"error": f"scep_bench.py exited {proc.returncode}: " + " | ".join(tail)}
    return json.loads(out.read_text())


# --------------------------------------------------------------------------
# table


def ratio(ours: Figure | None, theirs: Figure | None) -> float | None:
    if ours is None or theirs is None or ours.value is None or theirs.value is None or theirs.value == 0:
        return None
    return ours.value / theirs.value


def target_met(row: Row, ours: Figure | None, value: float | None) -> bool | None:
    if row.target == "ratio >= 1":
        return None if value is None else value >= 1.0
    if row.target == "ratio <= 1":
        return None if value is None else value <= 1.0
    if row.target == "ours < 150":
        return None if ours is None or ours.value is None else ours.value < 150
    return None


def fmt(figure: Figure | None) -> str:
    if figure is None:
        return "-"
    if figure.value is None:
        return figure.note or "n/a"
    value = figure.value
    if figure.unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if figure.unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:.1f}/s"


def fmt_cpu(figure: Figure | None) -> str:
    if figure is None or figure.server_cpu_ms_per_op is None:
        return "-"
    return f"{figure.server_cpu_ms_per_op:.2f}"


def peers_of(row: Row) -> list[str]:
    if row.mode == "other":
        return [row.peer or row.key]
    return ["netconfd", "netopeer2", *INFO_PEERS]


def build_rows(ours: dict[str, Figure], theirs: dict[str, dict[str, Figure]]) -> list[dict[str, Any]]:
    """One row per figure and peer: ours, theirs, the ratio and whether the target is met."""
    rows = []
    for row in ROWS:
        o = ours.get(row.key)
        for peer in peers_of(row):
            t = theirs.get(peer, {}).get(row.key)
            if t is None and peer in ("netopeer2", *INFO_PEERS):
                continue
            r = ratio(o, t)
            # The targets are against like-with-like servers; the peers without access control are information.
            target = "info" if peer in INFO_PEERS else row.target
            rows.append({
                "server": PEER_LABELS[(row.mode, peer)], "peer": peer, "mode": row.mode,
                "figure": row.figure.strip(), "key": row.key, "better": row.better,
                "target": target, "ours": o.to_json() if o else None, "theirs": t.to_json() if t else None,
                "ratio": round(r, 4) if r is not None else None,
                "target_met": None if target == "info" else target_met(row, o, r),
                "_ours": o, "_theirs": t, "_row": row,
            })
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ("server", "figure", "ours", "theirs", "ratio", "target", "met", "CPU ms/op ours|theirs")
    lines = [header]
    for row in rows:
        met = {True: "yes", False: "NO", None: ""}[row["target_met"]]
        r = row["ratio"]
        lines.append((
            row["server"], row["_row"].figure, fmt(row["_ours"]), fmt(row["_theirs"]),
            f"{r:.3f}" if r is not None else "n/a", row["target"], met,
            f"{fmt_cpu(row['_ours'])} | {fmt_cpu(row['_theirs'])}",
        ))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for index, line in enumerate(lines):
        print("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))


# --------------------------------------------------------------------------
# main


def start_netopeer2(workdir: Path, name: str, meta: dict[str, Any], client_key: Path) -> list[Netopeer2Peer]:
    """Two fresh netopeer2 instances with ca-agent-crypto (access control enforced, and root who bypasses it).

    Empty (and why, in meta) when netopeer2 cannot run; only the root one when
    the NACM user cannot be made.
    """
    why = netopeer2_available()
    if why is None:
        try:
            root = Netopeer2Peer(workdir / f"{name}-root", CRYPTO_MODULE, client_key, access_control=False).start()
        except Exception as error:  # the benchmark goes on without this peer
            why = str(error)
        else:
            try:
                enforced = Netopeer2Peer(workdir / name, CRYPTO_MODULE, client_key).start()
            except Exception as error:
                root.stop()
                why = f"with access control: {error}"
            else:
                meta["netopeer2"] = (
                    "ca-agent-crypto installed with the kit's install-module.sh; sessions log in as "
                    f"{NP2_NACM_USER}, in root-system of the agent's own first-start /nacm (imported into running), "
                    "so NACM is enforced as ours does for admin; beside it, for information, one driven as root, "
                    "whom sysrepo exempts from NACM, as the earlier runs; the same RSA 2048 client key as the "
                    "other servers")
                return [enforced, root]
    meta["netopeer2"] = f"not measured: {why}"
    log(f"netopeer2: {why}")
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short run (well under 2 minutes)")
    parser.add_argument("--json", type=Path, help="write the table and raw figures as JSON to this file")
    parser.add_argument("--no-scep", action="store_true", help="skip the SCEP sub-benchmark (needs unshare -rn)")
    parser.add_argument("--no-netopeer2", action="store_true", help="leave netopeer2 out")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data dirs)")
    args = parser.parse_args(argv)
    settings = Settings.quick() if args.quick else Settings.full()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ca-agent-bench-"))
    yuma = YumaGuard()
    modpath = os.pathsep.join([str(YANG_DIR), os.path.join(sys.prefix, "share", "yang", "modules", "ietf")])
    ours: dict[str, Figure] = {}
    theirs: dict[str, dict[str, Figure]] = {"netconfd": {}, "netopeer2": {}, OPEN_NETCONFD: {}, ROOT_NETOPEER2: {},
                                            "keygen": {}, "scep": {}}
    meta: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "settings": settings.__dict__,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_start": os.getloadavg()},
        "ncclient_tick": figures.TICK,
        "agent_version": agent_version(),
    }
    running: list[Any] = []
    extra_dirs: list[Path] = []  # outside workdir (the tmpfs agent's)
    try:
        client_key = workdir / "client_key"
        make_ssh_key(client_key, "rsa")

        # ---- candidate: all servers side by side ------------------------------------------------
        log("ca-agent: starting (candidate figures)")
        agent = AgentPeer(workdir / "agent-candidate", client_key)
        running.append(agent)
        agent.start()
        log("netconfd: starting --target=candidate with " + CRYPTO_MODULE.name)
        module = CRYPTO_MODULE
        ncd = start_netconfd(workdir, client_key, "candidate", module, modpath)
        running.append(ncd)
        accepted, why = netconfd_accepts(ncd)
        if not accepted:
            log(f"netconfd refused the full module ({why}): using a config-only copy made with pyang")
            ncd.stop()
            running.remove(ncd)
            module = config_only_copy(CRYPTO_MODULE, workdir / "config-only", modpath.split(os.pathsep))
            ncd = start_netconfd(workdir, client_key, "candidate", module, modpath)
            running.append(ncd)
            accepted2, why2 = netconfd_accepts(ncd)
            why = f"full module refused ({why}); config-only copy generated with pyang: " + (
                "accepted" if accepted2 else f"also refused ({why2})")
        meta["netconfd_module"] = why
        meta["netconfd_access"] = (
            "NACM enforced (--access-control=enforcing, no superuser), loaded at start with the agent's own "
            "first-start /nacm (its three task groups), root in root-system, as admin is in ours; no :startup, so "
            "it writes its configuration back to a file after every change (without fsync), as ours makes every "
            "change durable; beside it, for information, a netconfd with --access-control=off as in the earlier "
            "runs, which writes ~/.yuma/startup-cfg.xml after every change")
        log("netconfd: " + why)
        log("netconfd: starting one more, without access control (information)")
        ncd_open = start_netconfd(workdir, client_key, "candidate", module, modpath, access_control=False)
        running.append(ncd_open)
        np2 = [] if args.no_netopeer2 else start_netopeer2(workdir, "netopeer2-candidate", meta, client_key)
        running.extend(np2)
        if args.no_netopeer2:
            meta["netopeer2"] = "left out (--no-netopeer2)"

        log("ca-agent: session set-up with password authentication")
        ours["setup_password"] = figures.setup_time(agent.connect_params(), settings, [agent.rss_pid()])
        meta["ours_auth"] = use_publickey(agent, client_key)
        log(f"ca-agent: authentication {meta['ours_auth']}")
        peers: list[Any] = [agent, ncd, ncd_open, *np2]
        names = ["netconfd", OPEN_NETCONFD, "netopeer2", ROOT_NETOPEER2][: len(peers) - 1]
        outs = figures.candidate_figures_pair(peers, settings, lambda m: log("all: " + m))
        ours.update(outs[0])
        for name, out in zip(names, outs[1:], strict=True):
            theirs[name].update(out)
            theirs[name]["setup_password"] = out["setup"]  # the peers: key authentication only
        log("ca-agent: key-generate-rsa 2048")
        ours["keygen"] = figures.keygen_ours(agent, settings)
        for peer in peers:
            peer.stop()
            running.remove(peer)

        # ---- running target: all servers side by side --------------------------------------------
        log("ca-agent: starting a fresh agent, and one with its data directory on tmpfs (where fsync costs "
            "nothing, as for the peers' memory-only datastores); netconfd --target=running; a fresh netopeer2")
        agent = AgentPeer(workdir / "agent-running", client_key)
        running.append(agent)
        agent.start()
        use_publickey(agent, client_key)
        shm = Path(tempfile.mkdtemp(prefix="ca-agent-bench-", dir="/dev/shm"))
        extra_dirs.append(shm)
        agent_tmpfs = AgentPeer(shm, client_key)
        agent_tmpfs.name = "ca-agent (tmpfs)"
        running.append(agent_tmpfs)
        agent_tmpfs.start()
        use_publickey(agent_tmpfs, client_key)
        ncd = start_netconfd(workdir, client_key, "running", module, modpath)
        running.append(ncd)
        ncd_open = start_netconfd(workdir, client_key, "running", module, modpath, access_control=False)
        running.append(ncd_open)
        np2 = [] if args.no_netopeer2 else start_netopeer2(workdir, "netopeer2-running", meta, client_key)
        running.extend(np2)
        peers = [agent, agent_tmpfs, ncd, ncd_open, *np2]
        names = ["netconfd", OPEN_NETCONFD, "netopeer2", ROOT_NETOPEER2][: len(peers) - 2]
        outs = figures.running_figures_pair(peers, settings, lambda m: log("all: " + m))
        ours.update(outs[0])
        for key in ("edit_running", "edit_running_1000", "bulk_running"):
            ours[f"{key}_tmpfs"] = outs[1][key]
        for name, out in zip(names, outs[2:], strict=True):
            theirs[name].update(out)
            for key in ("edit_running", "edit_running_1000", "bulk_running"):
                theirs[name][f"{key}_tmpfs"] = out[key]
        for peer in peers:
            peer.stop()
            running.remove(peer)
        shutil.rmtree(shm, ignore_errors=True)

        # ---- key generation and SCEP --------------------------------------------------------
        log("openssl genrsa 2048")
        theirs["keygen"]["keygen"] = figures.keygen_openssl(str(workdir), settings)
        if args.no_scep:
            for key in ("scep", "scep_tmpfs"):
                ours[key] = Figure(value=None, unit="s", note="skipped (--no-scep)")
                theirs["scep"][key] = Figure(value=None, unit="s", note="skipped (--no-scep)")
        else:
            log("SCEP authenticate + enroll (inside unshare -rn)")
            scep = run_scep(workdir, settings)
            meta["scep"] = {k: v for k, v in scep.items() if k not in ("ours", "ours_tmpfs", "theirs")}
            for side, store, key in (("ours", ours, "scep"), ("ours_tmpfs", ours, "scep_tmpfs"),
                                     ("theirs", theirs["scep"], "scep")):
                data = scep.get(side)
                store[key] = Figure(**data) if data else Figure(value=None, unit="s",
                                                                note=f"n/a ({scep.get('error', 'no result')})")
            theirs["scep"]["scep_tmpfs"] = theirs["scep"]["scep"]  # the same scepclient runs
    finally:
        for peer in reversed(running):
            try:
                peer.stop()
            except Exception as error:  # keep cleaning up
                log(f"stopping {peer.name}: {error}")
        yuma.cleanup()
        for directory in extra_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["machine"]["loadavg_end"] = os.getloadavg()
    rows = build_rows(ours, theirs)
    print()
    print_table(rows)
    print(f"\n{meta['mode']} run, {meta['seconds']} s; ours: {meta.get('ours_auth')}; "
          f"netconfd: {meta.get('netconfd_module')}; netopeer2: {meta.get('netopeer2')}")
    if args.json:
        clean = [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
        args.json.write_text(json.dumps({"meta": meta, "rows": clean}, indent=1, default=str) + "\n")
        log(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
