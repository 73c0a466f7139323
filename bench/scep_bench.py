#!/usr/bin/env python3
"""SCEP sub-benchmark: our agent's ca-authenticate + ca-enroll against micromdm scepclient.

micromdm's scepserver listens on every interface, so this must run inside a
private network namespace; bench/run.py re-executes it as

    bash tests/netns_run.sh python bench/scep_bench.py --json-out FILE [--count N]

and reads FILE. It starts scepserver (fresh CA) and a fresh agent, then per
repetition, on a new trustpoint with a new key pair (prepared untimed):
- ours: time `ca-authenticate` (accept) + `ca-enroll` (challenge-password)
  over one NETCONF session;
- theirs: time one `scepclient` run (GetCACert + PKCSReq) with a
  pre-generated key, in a fresh directory.
Reports the medians as JSON: {"ours": FIGURE, "theirs": FIGURE, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent))

import figures  # noqa: E402
from figures import Figure  # noqa: E402
from peers import AgentPeer, cpu_seconds, free_port, stop_process, wait_for  # noqa: E402

CHALLENGE = "bench-scep-secret"


def in_private_netns() -> str | None:
    if os.environ.get("CA_AGENT_NETNS") != "1":
        return "not inside tests/netns_run.sh (CA_AGENT_NETNS != 1)"
    names = sorted(name for _, name in socket.if_nameindex())
    if names != ["lo"]:
        return f"this namespace has interfaces {names}, not only lo"
    return None


def serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "?operation=GetCACaps", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def ours(agent: AgentPeer, url: str, count: int, deadline: float) -> tuple[Figure, dict[str, Any]]:
    mgr = figures.connect(agent.connect_params())
    auth_times: list[float] = []
    enroll_times: list[float] = []
    totals: list[float] = []
    cpus: list[float] = []
    detail: dict[str, Any] = {}
    try:
        for i in range(count):
            if totals and time.monotonic() > deadline:
                break
            name = f"scep{i}"
            label = f"bench-scep-{i}"
            entry = f"<trustpoint><name>{name}</name><enrollment><url>{url}</url></enrollment>"
            try:  # untimed preparation: a key pair of its own
                mgr.dispatch(figures.rpc_element("key-generate-rsa", label=label, modulus="2048", replace="true"))
                entry += f"<rsakeypair>{label}</rsakeypair>"
            except Exception as error:
                if not figures.unsupported(error):
                    raise
                detail["key"] = "key-generate-rsa n/a: the default key pair is used"
            entry += f"<subject-name>CN=bench-agent-{secrets.token_hex(4)},O=bench</subject-name></trustpoint>"
            mgr.edit_config(target="candidate", config=figures.config([entry]))
            mgr.commit()
            cpu0 = cpu_seconds(agent.server_pids())
            start = time.perf_counter()
            try:
                mgr.dispatch(figures.rpc_element("ca-authenticate", trustpoint=name, accept=None))
                middle = time.perf_counter()
                reply = mgr.dispatch(figures.rpc_element("ca-enroll", trustpoint=name, challenge_password=CHALLENGE))
            except Exception as error:
                note = "n/a (not available)" if figures.unsupported(error) else f"n/a (error: {error})"
                return Figure(value=None, unit="s", note=note), detail
            end = time.perf_counter()
            cpus.append(cpu_seconds(agent.server_pids()) - cpu0)
            status = etree.fromstring(reply.xml.encode()).findtext(f"{{{figures.CRYPTO_NS}}}status")
            if status != "issued":
                return Figure(value=None, unit="s", note=f"n/a (ca-enroll status {status!r})"), detail
            auth_times.append(middle - start)
            enroll_times.append(end - middle)
            totals.append(end - start)
    finally:
        figures.close(mgr)
    import statistics

    detail["ca_authenticate_median_s"] = statistics.median(auth_times)
    detail["ca_enroll_median_s"] = statistics.median(enroll_times)
    figure = Figure(
        value=statistics.median(totals), unit="s", count=len(totals), seconds=sum(totals),
        server_cpu_ms_per_op=1000 * sum(cpus) / len(cpus),
        note=(f"median; ca-authenticate {detail['ca_authenticate_median_s'] * 1000:.0f} ms + "
              f"ca-enroll {detail['ca_enroll_median_s'] * 1000:.0f} ms, RPC round trips included"),
        samples=[round(t, 6) for t in totals],
    )
    return figure, detail


def theirs(workdir: Path, url: str, depot: Path, count: int, deadline: float) -> Figure:
    totals: list[float] = []
    cpus: list[float] = []
    for i in range(count):
        if totals and time.monotonic() > deadline:
            break
        folder = workdir / f"scepclient-{i}"  # scepclient silently reuses csr.pem: a fresh folder each time
        folder.mkdir(parents=True)
        key = folder / "key.pem"
        subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"], check=True,
                       capture_output=True, timeout=60)
        command = ["scepclient", "-private-key", str(key), f"-server-url={url}", f"-challenge={CHALLENGE}",
                   "-cn", f"bench-client-{secrets.token_hex(4)}"]
        usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=str(folder))
        elapsed = time.perf_counter() - start
        usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime)
        issued = list(folder.glob("client.pem"))
        if proc.returncode != 0 or not issued:
            return Figure(value=None, unit="s", note=f"n/a (scepclient failed: {(proc.stderr or proc.stdout)[-200:]})")
        check = subprocess.run(["openssl", "verify", "-CAfile", str(depot / "ca.pem"), str(issued[0])],
                               capture_output=True, timeout=30)
        if check.returncode != 0:
            return Figure(value=None, unit="s", note="n/a (scepclient's certificate does not verify)")
        totals.append(elapsed)
    import statistics

    return Figure(value=statistics.median(totals), unit="s", count=len(totals), seconds=sum(totals),
                  server_cpu_ms_per_op=1000 * sum(cpus) / len(cpus),
                  note="median; one scepclient process (GetCACert + PKCSReq); CPU = scepclient's", samples=[round(t, 6) for t in totals])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json-out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0, help="time limit for each side's repetitions")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--profile", action="store_true",
                        help="sample the agent with py-spy during our repetitions and print where the time goes")
    args = parser.parse_args()
    reason = in_private_netns()
    if reason is not None:
        print(f"scep_bench.py: refusing to start scepserver: {reason}", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="scep-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    depot = workdir / "depot"
    result: dict[str, Any] = {}
    server: subprocess.Popen[bytes] | None = None
    agent: AgentPeer | None = None
    try:
        subprocess.run(["scepserver", "ca", "-init", "-depot", str(depot), "-keySize", "2048",
                        "-organization", "Bench CA"], check=True, capture_output=True, timeout=60)
        port = free_port()
        with open(workdir / "scepserver.log", "wb") as log:
            server = subprocess.Popen(
                ["scepserver", "-depot", str(depot), "-port", str(port), "-challenge", CHALLENGE, "-allowrenew", "0"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}/scep"
        wait_for(lambda: serving(url), 15, "scepserver", server)
        agent = AgentPeer(workdir / "agent").start()
        spy = None
        if args.profile:
            raw = workdir / "pyspy.txt"
            spy = subprocess.Popen(["py-spy", "record", "--nonblocking", "-p", str(agent.rss_pid()), "-r", "500",
                                    "--format", "raw", "-o", str(raw)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        figure, detail = ours(agent, url, args.count, time.monotonic() + args.seconds)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
            from profile_agent import summarise

            summarise(workdir / "pyspy.txt", 30)
        result["ours"] = figure.to_json()
        result["ours_detail"] = detail
        result["theirs"] = theirs(workdir, url, depot, args.count, time.monotonic() + args.seconds).to_json()
    finally:
        if agent is not None:
            agent.stop()
        stop_process(server)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    args.json_out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
