#!/usr/bin/env python3
"""SCEP sub-benchmark: our agent's ca-authenticate + ca-enroll against micromdm scepclient.

micromdm's scepserver listens on every interface, so this must run inside a
private network namespace; bench/run.py re-executes it as

    bash tests/netns_run.sh python bench/scep_bench.py --json-out FILE [--count N]

and reads FILE. It starts scepserver (fresh CA) and a fresh agent (and, for
information, a second one with its data directory on tmpfs, where fsync costs
nothing: scepclient syncs nothing it writes), then per repetition, on a new
trustpoint with a new key pair (prepared untimed):
- ours: time `ca-authenticate` (accept) + `ca-enroll` (challenge-password)
  over one NETCONF session, the two agents in turn;
- theirs: time one `scepclient` run (GetCACert + PKCSReq) with a
  pre-generated key, in a fresh directory.
Reports the medians as JSON: {"ours": FIGURE, "ours_tmpfs": FIGURE, "theirs": FIGURE, ...}.
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


class OurSide:
    """One agent's repetitions: its own NETCONF session, trustpoints and figures."""

    def __init__(self, agent: AgentPeer, url: str) -> None:
        self.agent = agent
        self.url = url
        self.mgr = figures.connect(agent.connect_params())
        self.auth_times: list[float] = []
        self.enroll_times: list[float] = []
        self.totals: list[float] = []
        self.cpus: list[float] = []
        self.detail: dict[str, Any] = {}
        self.failure: Figure | None = None

    def repeat(self, i: int) -> None:
        """One untimed preparation (key pair, trustpoint), then a timed ca-authenticate + ca-enroll."""
        mgr, name, label = self.mgr, f"scep{i}", f"bench-scep-{i}"
        entry = f"<trustpoint><name>{name}</name><enrollment><url>{self.url}</url></enrollment>"
        try:  # untimed preparation: a key pair of its own
            mgr.dispatch(figures.rpc_element("key-generate-rsa", label=label, modulus="2048", replace="true"))
            entry += f"<rsakeypair>{label}</rsakeypair>"
        except Exception as error:
            if not figures.unsupported(error):
                raise
            self.detail["key"] = "key-generate-rsa n/a: the default key pair is used"
        entry += f"<subject-name>CN=bench-agent-{secrets.token_hex(4)},O=bench</subject-name></trustpoint>"
        mgr.edit_config(target="candidate", config=figures.config([entry]))
        mgr.commit()
        cpu0 = cpu_seconds(self.agent.server_pids())
        start = time.perf_counter()
        try:
            mgr.dispatch(figures.rpc_element("ca-authenticate", trustpoint=name, accept=None))
            middle = time.perf_counter()
            reply = mgr.dispatch(figures.rpc_element("ca-enroll", trustpoint=name, challenge_password=CHALLENGE))
        except Exception as error:
            note = "n/a (not available)" if figures.unsupported(error) else f"n/a (error: {error})"
            self.failure = Figure(value=None, unit="s", note=note)
            return
        end = time.perf_counter()
        self.cpus.append(cpu_seconds(self.agent.server_pids()) - cpu0)
        status = etree.fromstring(reply.xml.encode()).findtext(f"{{{figures.CRYPTO_NS}}}status")
        if status != "issued":
            self.failure = Figure(value=None, unit="s", note=f"n/a (ca-enroll status {status!r})")
            return
        self.auth_times.append(middle - start)
        self.enroll_times.append(end - middle)
        self.totals.append(end - start)

    def figure(self) -> Figure:
        import statistics

        if self.failure is not None:
            return self.failure
        self.detail["ca_authenticate_median_s"] = statistics.median(self.auth_times)
        self.detail["ca_enroll_median_s"] = statistics.median(self.enroll_times)
        return Figure(
            value=statistics.median(self.totals), unit="s", count=len(self.totals), seconds=sum(self.totals),
            server_cpu_ms_per_op=1000 * sum(self.cpus) / len(self.cpus),
            note=(f"median; ca-authenticate {self.detail['ca_authenticate_median_s'] * 1000:.0f} ms + "
                  f"ca-enroll {self.detail['ca_enroll_median_s'] * 1000:.0f} ms, RPC round trips included"),
            samples=[round(t, 6) for t in self.totals],
        )

    def close(self) -> None:
        figures.close(self.mgr)


def ours(agents: list[AgentPeer], url: str, count: int, deadline: float) -> list[tuple[Figure, dict[str, Any]]]:
    """Each agent's figure; their repetitions alternate, so the machine's load falls on all alike."""
    sides: list[OurSide] = []
    try:
        for agent in agents:
            sides.append(OurSide(agent, url))
        for i in range(count):
            if any(side.totals for side in sides) and time.monotonic() > deadline:  # even if the first agent failed
                break
            for side in sides:
                if side.failure is None:
                    side.repeat(i)
    finally:
        for side in sides:
            side.close()
    return [(side.figure(), side.detail) for side in sides]


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
    parser.add_argument("--no-tmpfs", action="store_true",
                        help="measure only the agent on disk, not also one with its data directory on tmpfs")
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
    agents: list[AgentPeer] = []
    shm: Path | None = None
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
        agent = AgentPeer(workdir / "agent")
        agents.append(agent)
        agent.start()
        if not args.no_tmpfs:  # fsync costs nothing there: like scepclient, which syncs nothing it writes
            shm = Path(tempfile.mkdtemp(prefix="ca-agent-scep-", dir="/dev/shm"))
            agent_tmpfs = AgentPeer(shm)
            agent_tmpfs.name = "ca-agent (tmpfs)"
            agents.append(agent_tmpfs)
            agent_tmpfs.start()
        spy = None
        if args.profile:
            raw = workdir / "pyspy.txt"
            spy = subprocess.Popen(["py-spy", "record", "--nonblocking", "-p", str(agent.rss_pid()), "-r", "500",
                                    "--format", "raw", "-o", str(raw)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        measured = ours(agents, url, args.count, time.monotonic() + args.seconds)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
            from profile_agent import summarise

            summarise(workdir / "pyspy.txt", 30)
        result["ours"] = measured[0][0].to_json()
        result["ours_detail"] = measured[0][1]
        if len(measured) > 1:
            result["ours_tmpfs"] = measured[1][0].to_json()
            result["ours_tmpfs_detail"] = measured[1][1]
        result["theirs"] = theirs(workdir, url, depot, args.count, time.monotonic() + args.seconds).to_json()
    finally:
        for started in agents:
            started.stop()
        if shm is not None:
            shutil.rmtree(shm, ignore_errors=True)
        stop_process(server)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    args.json_out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
