#!/usr/bin/env python3
"""The long fuzz run: 100,000 executions, 0 crashes, 0 hangs, sessions and memory back where they started.

    python tests/fuzz/run.py                       # 100,000 executions (about 11 minutes on 2 cores)
    python tests/fuzz/run.py --executions 5000     # a quick look
    python tests/fuzz/run.py --out DIR             # keep reproducers and logs in DIR

In-process targets (hypothesis generates, tests/fuzz/harness.py checks):
framing (the RFC 6242 decoder), rpc (NetconfAgent.handle_message on a real
in-memory agent) and edit (the edit-config engine). Each runs in a worker
process that writes every input to a state file before running it, with a
per-input deadline (``--deadline``, faulthandler kills the worker when it
passes): a hang or a hard crash (segfault) ends the worker, the input is
saved as a reproducer and a new worker carries on with the rest.

Then the session part, against a real ``ca-agent`` over SSH: hundreds of
sessions (base:1.0 and 1.1) send generated messages, framing anomalies, half
messages and abrupt disconnects; every complete message must get a
well-formed reply (or a closed session) within the deadline; at the end the
agent's session count (/netconf-state), thread count and RSS must be back to
their baseline.

A crash is an uncaught exception other than the agent's own error types, an
``internal error`` rpc-error, or a reply that is not well-formed XML.
Reproducers go to ``OUT/crashes/`` and ``OUT/hangs/``; a fixed one belongs
in ``tests/fuzz/corpus/<target>/`` (the CI test replays the corpus).
Exit status 0 only with 0 crashes, 0 hangs and the session part clean.
"""

from __future__ import annotations

import argparse
import faulthandler
import hashlib
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
sys.path[:0] = [str(ROOT), str(TESTS)]

FUZZ_USER, FUZZ_PASSWORD = "fuzzer", "fuzz-pw"
SHARES = {"framing": 0.35, "rpc": 0.35, "edit": 0.2, "ssh": 0.1}
SUFFIX = {"framing": ".bin", "rpc": ".xml", "edit": ".xml", "ssh": ".bin"}


# -- the worker: one target, N inputs, each written down before it runs ----------------------
def worker(target: str, count: int, seed: int, state: Path, out: Path, deadline: float) -> int:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    from agent.datastore.edit import new_root

    from fuzz import strategies
    from fuzz.harness import Finding, FuzzAgents, edit, framing

    strategies.write_canary()
    agents = FuzzAgents()
    done = [0]
    crashes = [0]

    def record(args: tuple[Any, ...], payload: bytes) -> None:
        state.write_bytes(pickle.dumps((done[0], args)))

    def crash(payload: bytes, finding: Finding) -> None:
        crashes[0] += 1
        name = hashlib.sha256(payload).hexdigest()[:16] + SUFFIX[target]
        (out / "crashes").mkdir(parents=True, exist_ok=True)
        (out / "crashes" / f"{target}-{name}").write_bytes(payload)
        print(f"CRASH {target} {name}: {finding}", flush=True)

    def run(args: tuple[Any, ...], payload: bytes) -> None:
        record(args, payload)
        faulthandler.dump_traceback_later(deadline, exit=True)
        try:
            if target == "framing":
                framing(*args)
            elif target == "rpc":
                message, username, base11 = args
                agents.core.rpc(message, username=username, base11=base11)
            else:
                first, second = args
                base = edit(agents.core.yang, new_root(), *first)
                edit(agents.core.yang, base, *second)
        except Finding as finding:
            crash(payload, finding)
        finally:
            faulthandler.cancel_dump_traceback_later()
        done[0] += 1
        if done[0] % 1000 == 0:
            print(f"DONE {done[0]}", flush=True)

    strategy: Any = {
        "framing": strategies.framed_streams(),
        "rpc": st.tuples(strategies.rpc_messages(), st.sampled_from(["admin", "nobody"]), st.booleans()),
        "edit": st.tuples(strategies.config_documents(), strategies.config_documents()),
    }[target]

    @hypothesis_seed(seed)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def body(args: Any) -> None:
        if target == "rpc":
            run(args, args[0])
        elif target == "framing":
            run(args, args[0])
        else:
            run(args, args[1][0])

    body()
    agents.close()
    print(f"FINISHED {done[0]} {crashes[0]}", flush=True)
    return 0


def run_target(target: str, count: int, seed: int, out: Path, deadline: float) -> dict[str, int]:
    """Run ``count`` inputs of ``target`` in workers, restarting after a hang or a hard crash."""
    totals = {"executions": 0, "crashes": 0, "hangs": 0, "hard-crashes": 0}
    state = out / f"{target}.state"
    attempt = 0
    while totals["executions"] < count:
        attempt += 1
        remaining = count - totals["executions"]
        state.unlink(missing_ok=True)
        log = open(out / f"{target}-worker-{attempt}.log", "w", encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", target, "--executions", str(remaining), "--seed",
             str(seed + attempt), "--state", str(state), "--out", str(out), "--deadline", str(deadline)],
            stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
        )
        assert proc.stdout is not None
        finished = None
        for line in proc.stdout:
            if line.startswith("CRASH"):
                totals["crashes"] += 1
                print(f"  {line.strip()}", flush=True)
            elif line.startswith("FINISHED"):
                finished = int(line.split()[1])
        code = proc.wait()
        log.close()
        if finished is not None and code == 0:
            totals["executions"] += finished
            if finished < remaining:  # hypothesis ran out of distinct inputs: try another seed
                continue
            break
        # The worker died: a hang (faulthandler exits with 1) or a hard crash (a signal).
        index, args = pickle.loads(state.read_bytes()) if state.exists() else (0, None)
        totals["executions"] += index + 1
        kind = "hangs" if code == 1 else "hard-crashes"
        totals[kind] += 1
        payload = _payload(target, args)
        name = hashlib.sha256(payload).hexdigest()[:16] + SUFFIX[target]
        (out / kind).mkdir(parents=True, exist_ok=True)
        (out / kind / f"{target}-{name}").write_bytes(payload)
        print(f"  {kind[:-1].upper()} {target} {name} (worker exit {code}; see {log.name})", flush=True)
    return totals


def _payload(target: str, args: Any) -> bytes:
    if args is None:
        return b""
    if target == "edit":
        return bytes(args[1][0])
    return bytes(args[0])


# -- the session part: a real agent over SSH ---------------------------------------------------
def ssh_part(count: int, seed: int, out: Path, deadline: float) -> dict[str, Any]:
    import paramiko
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from lxml import etree

    from agentproc import AgentProcess
    from fuzz import strategies
    from rawnetconf import BASE10, BASE11, EOM, NC, frame, open_subsystem, rss_kib, ssh_client, threads, wait_until

    strategies.write_canary()
    messages: list[bytes] = []

    @hypothesis_seed(seed)
    @settings(max_examples=count + count // 5, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategies.rpc_messages())
    def collect(message: bytes) -> None:  # a few more than needed: sessions that end early leave some unsent
        messages.append(message)

    collect()
    agent = AgentProcess(out / "agent-data", args=["--filter-budget", "2"]).start()
    pid = agent.proc.pid  # type: ignore[union-attr]
    with agent.connect() as admin:
        admin.edit_config(target="running", config=f"""<config xmlns="{NC}">
          <aaa xmlns="urn:ca-agent:yang:system"><user><name>{FUZZ_USER}</name>
            <password-hash>$0${FUZZ_PASSWORD}</password-hash></user></aaa>
          <nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm"><groups><group><name>pki-admin</name>
            <user-name>{FUZZ_USER}</user-name></group></groups></nacm></config>""")
    findings: list[str] = []
    opened = [0]  # sessions started
    lock = threading.Lock()
    ncm = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"

    def sessions() -> int:
        with agent.connect() as m:
            data = m.get(filter=("subtree", f'<netconf-state xmlns="{ncm}"><sessions/></netconf-state>')).data_ele
            return len(data.findall(f".//{{{ncm}}}session")) - 1

    def note(text: str, payload: bytes) -> None:
        name = hashlib.sha256(payload).hexdigest()[:16]
        (out / "ssh").mkdir(parents=True, exist_ok=True)
        (out / "ssh" / f"{name}.bin").write_bytes(payload)
        with lock:
            findings.append(f"{text} ({name}.bin)")
        print(f"  SSH {text} ({name}.bin)", flush=True)

    def one_session(batch: list[bytes], local: random.Random) -> int:
        sent = 0
        base11 = local.random() < 0.7
        client = None
        with lock:
            opened[0] += 1
        try:
            # As a pki-admin, so that no message can lock admin (the observer) out.
            client = ssh_client(agent.port, FUZZ_USER, FUZZ_PASSWORD)
            channel = open_subsystem(client)  # raises paramiko.SSHException if refused
            channel.settimeout(deadline)
            buffer = _read_frame(channel, EOM, b"")[1]
            caps = f"<capability>{BASE10}</capability>" + (f"<capability>{BASE11}</capability>" if base11 else "")
            channel.sendall(f'<hello xmlns="{NC}"><capabilities>{caps}</capabilities></hello>'.encode() + EOM)
            for message in batch:
                roll = local.random()
                if roll < 0.03:  # a framing anomaly: the session must end (or answer), never hang
                    channel.sendall(local.choice(strategies.CHUNK_ANOMALIES) + message)
                    sent += 1
                    return sent
                if roll < 0.06:  # half a message, then gone
                    framed = frame(message) if base11 else message + EOM
                    channel.sendall(framed[: local.randrange(len(framed))])
                    return sent
                channel.sendall(frame(message) if base11 else message + EOM)
                sent += 1
                try:
                    reply, buffer = _read_frame(channel, b"\n##\n" if base11 else EOM, buffer)
                except TimeoutError:
                    note(f"no reply within {deadline:g} s", message)
                    return sent
                except EOFError:
                    return sent  # the agent closed the session (base:1.0 malformed message, close-session)
                body = _unframe(reply, base11)
                try:
                    root = etree.fromstring(body)
                except etree.XMLSyntaxError as error:
                    note(f"reply is not well-formed XML: {error}", message)
                    return sent
                if b"internal error" in body or strategies.CANARY_TEXT.encode() in body:
                    note("internal error or leaked file in reply", message)
                if root.tag != f"{{{NC}}}rpc-reply":
                    note(f"reply is {root.tag}", message)
        except (OSError, EOFError, paramiko.SSHException) as error:
            if "timed out" in str(error):
                note("session stalled", batch[0] if batch else b"")
        finally:
            if client is not None:
                client.close()
        return sent

    def run_sessions(batches: list[list[bytes]], parallel: int, wanted: int) -> int:
        total = [0]
        queue = list(enumerate(batches))

        def loop() -> None:
            while True:
                with lock:
                    if not queue or total[0] >= wanted:
                        return
                    index, batch = queue.pop()
                local = random.Random(seed * 1000003 + index)
                while batch:  # a session that ended early: the rest of the batch goes in a new one
                    done = one_session(batch, local)
                    with lock:
                        total[0] += done
                    batch = batch[max(done, 1):]

        workers = [threading.Thread(target=loop) for _ in range(parallel)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        return total[0]

    try:
        batches = [messages[i : i + 25] for i in range(0, len(messages), 25)]
        # The first few hundred sessions grow the RSS by some 70 MiB once (malloc arenas of the session
        # threads, first use of every code path); the baseline is taken after them.
        warm_up = max(1, len(batches) // 4)
        warm = run_sessions(batches[:warm_up], 8, count)
        wait_until(lambda: sessions() == 0, 60, "warm-up sessions to end")
        baseline = {"sessions": sessions(), "threads": threads(pid), "rss_kib": rss_kib(pid)}
        started = time.monotonic()
        executed = warm + run_sessions(batches[warm_up:], 8, count - warm)
        elapsed = time.monotonic() - started
        after: dict[str, int] = {}
        try:
            wait_until(lambda: sessions() == baseline["sessions"], 60, "the session count to come back")
            wait_until(lambda: threads(pid) <= baseline["threads"], 60, "the thread count to come back")
        except AssertionError as error:
            findings.append(str(error))
        after = {"threads": threads(pid), "rss_kib": rss_kib(pid), "sessions": sessions()}
        growth = after["rss_kib"] - baseline["rss_kib"]
        if growth > 32 * 1024:
            findings.append(f"RSS grew by {growth} KiB")
        code = agent.stop()
        if code != 0:
            findings.append(f"the agent exited with {code} on SIGTERM")
        return {"executions": executed, "sessions": opened[0], "findings": findings, "baseline": baseline,
                "after": after, "seconds": round(elapsed, 1)}
    finally:
        agent.stop()


def _read_frame(channel: Any, marker: bytes, buffer: bytes) -> tuple[bytes, bytes]:
    """One message up to ``marker`` (chunked: the end-of-chunks), and what was read past it."""
    while marker not in buffer:
        try:
            data = channel.recv(65536)
        except OSError as error:  # socket.timeout
            raise TimeoutError(str(error)) from None
        if not data:
            raise EOFError(buffer)
        buffer += data
    index = buffer.index(marker) + len(marker)
    return buffer[:index], buffer[index:]


def _unframe(reply: bytes, base11: bool) -> bytes:
    if not base11:
        return reply[: -len(b"]]>]]>")]
    body, position = b"", 0
    while reply[position : position + 2] == b"\n#" and reply[position + 2 : position + 3] != b"#":
        end = reply.index(b"\n", position + 2)
        size = int(reply[position + 2 : end])
        body += reply[end + 1 : end + 1 + size]
        position = end + 1 + size
    return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--deadline", type=float, default=30.0, help="seconds one input may take (default 30)")
    parser.add_argument("--out", type=Path, default=None, help="keep reproducers and logs here")
    parser.add_argument("--targets", default="framing,rpc,edit,ssh")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    if args.worker:
        return worker(args.worker, args.executions, seed, args.state, args.out, args.deadline)
    out = args.out or Path(tempfile.mkdtemp(prefix="ca-agent-fuzz-run-"))
    out.mkdir(parents=True, exist_ok=True)
    targets = [t for t in args.targets.split(",") if t]
    shares = {t: SHARES[t] for t in targets}
    scale = args.executions / sum(shares.values())
    print(f"fuzz run: {args.executions} executions, seed {seed}, per-input deadline {args.deadline:g} s, "
          f"output in {out}", flush=True)
    report: dict[str, Any] = {"seed": seed}
    started = time.monotonic()
    for target in targets:
        count = round(shares[target] * scale)
        begun = time.monotonic()
        if target == "ssh":
            result = ssh_part(count, seed, out, args.deadline)
        else:
            result = run_target(target, count, seed, out, args.deadline)
        result["seconds"] = round(time.monotonic() - begun, 1)
        report[target] = result
        print(f"{target}: {json.dumps(result)}", flush=True)
    report["seconds"] = round(time.monotonic() - started, 1)
    executions = sum(r["executions"] for t, r in report.items() if isinstance(r, dict))
    crashes = sum(r.get("crashes", 0) + r.get("hard-crashes", 0) for r in report.values() if isinstance(r, dict))
    hangs = sum(r.get("hangs", 0) for r in report.values() if isinstance(r, dict))
    ssh_findings = report.get("ssh", {}).get("findings", [])
    print(f"total: {executions} executions, {crashes} crashes, {hangs} hangs, "
          f"{len(ssh_findings)} session findings, {report['seconds']} s", flush=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    clean = crashes == 0 and hangs == 0 and not ssh_findings
    if clean and args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if clean else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    sys.exit(main())
