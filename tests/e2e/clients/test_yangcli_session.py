"""yangcli (yuma123, Debian `yangcli`) through the whole session, as a batch script.

yangcli loads every module the agent lists that it has no copy of (ours and
ietf-yang-library@2019-01-04) with <get-schema>, compiles them (patterns through
libxml2's XSD regex engine) and builds each request from them: it edits both our
modules with its own path syntax. It needs a tty (`script -qec`) and writes into
~/.yuma (HOME and --home point at a temporary directory).

Two yangcli limits shape the script: `merge` of a top-level leaf (/hostname)
aborts yangcli itself (yangcli_cmd.c asserts a parent container), so the
hostname goes in with `edit-config config=@file`; and yangcli offers
`commit --confirmed` only to a server that lists :confirmed-commit:1.0.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from client_session import Observed, Scenario, check_agent_after, check_observed, require_program

from agentproc import ADMIN_PASSWORD, AgentProcess

REPLY = re.compile(r"^RPC (OK|Data|Error) Reply \d+ for session \d+:\n", re.MULTILINE)


def yangcli_script(scenario: Scenario, files: dict[str, Path]) -> str:
    tp = f"/crypto/ca/trustpoint[name='{scenario.trustpoint}']"
    return "\n".join([
        "sget /crypto/key/rsa/label",  # data 0
        "sget-config /aaa/user/name source=running",  # data 1
        "lock target=candidate",
        f"edit-config target=candidate config=@{files['hostname']}",
        f"merge /domain/name value={scenario.domain}",
        f"merge {tp}/enrollment/url value=http://ca.example.com/scep",
        f"merge {tp}/rsakeypair value={scenario.key_label}",
        "validate source=candidate",
        "commit",
        f"edit-config target=candidate config=@{files['confirmed']}",
        "commit --confirmed --confirm-timeout=120",
        "sget-config /hostname source=running",  # data 2
        "cancel-commit",
        "sget-config /hostname source=running",  # data 3
        f"edit-config target=candidate config=@{files['discarded']}",
        "discard-changes",
        "sget-config /hostname source=candidate",  # data 4
        "unlock target=candidate",
        f"key-generate-rsa label={scenario.key_label} modulus=1024",  # data 5
        "",
    ])


def test_yangcli_full_session_with_modules_from_get_schema(agent: AgentProcess, tmp_path: Path) -> None:
    yangcli = require_program("yangcli", "yangcli")
    require_program("script", "util-linux")
    scenario = Scenario("yangcli")
    files = {
        "hostname": scenario.hostname_edit(scenario.committed),
        "confirmed": scenario.hostname_edit(scenario.confirmed),
        "discarded": scenario.hostname_edit(scenario.discarded),
    }
    paths = {name: tmp_path / f"{name}.xml" for name in files}
    for name, text in files.items():
        paths[name].write_text(text)
    script = tmp_path / "session.yc"
    script.write_text(yangcli_script(scenario, paths))
    home = tmp_path / "home"
    home.mkdir()
    command = shlex.join([
        yangcli, f"--home={home}", "--server=127.0.0.1", f"--ncport={agent.port}", "--user=admin",
        f"--password={ADMIN_PASSWORD}", "--batch-mode", f"--run-script={script}", "--display-mode=xml",
        "--log-level=debug",
    ])
    done = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=300,
                          env={"HOME": str(home), "PATH": "/usr/bin:/bin", "TERM": "dumb"})
    out = done.stdout.replace("\r\n", "\n")
    assert done.returncode == 0, out[-5000:]
    assert "canceled" not in out and "RPC Error Reply" not in out and "\nError:" not in out, out[-5000:]
    for module in ("ca-agent-system", "ca-agent-crypto", "ietf-yang-library"):
        assert f"Got autoload reply for '{module}'" in out, f"{module} not fetched with <get-schema>"
        assert re.search(rf"Loading YANG module from file:\n +\S+/{module}@[0-9-]+\.yang\n", out), module
    assert "error(" not in out, out  # yuma's compiler messages: 'file:line.col: error(N): ...'
    kinds = REPLY.findall(out)
    assert len(kinds) == 19 and kinds.count("Data") == 6, kinds
    bodies = REPLY.split(out)[1:]  # kind, body, kind, body...
    data = [re.search(r"<rpc-reply.*?</rpc-reply>", body, re.DOTALL).group(0)  # type: ignore[union-attr]
            for kind, body in zip(bodies[::2], bodies[1::2], strict=True) if kind == "Data"]
    protocol = out.split("Server Protocol Capabilities\n")[1].split("\n\n")[0].split()
    modules = out.split("Server Module Capabilities\n")[1].split("\n\n")[0].split()
    capabilities = [f"urn:ietf:params:netconf:capability:{c}" for c in protocol if ":" in c] + [
        f"module={m.split('@')[0]}" for m in modules if "@" in m]
    check_observed(Observed(capabilities, *data[:2], *data[2:5], data[5]), scenario)
    check_agent_after(agent, scenario)
