"""netconf-console2 (PyPI, the test extra) through the whole session: one invocation, one NETCONF session.

netconf-console2 runs its command-line operations in order on one session (filters
as XPath arguments of each --get/--get-config; --filter and --db are global) and prints each reply (<data> for get/get-config, <ok/>, or the whole rpc-reply
for --rpc) as its own XML document.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from client_session import (
    CANCEL_COMMIT,
    Observed,
    Scenario,
    check_agent_after,
    check_observed,
    run_client,
)

from agentproc import ADMIN_PASSWORD, AgentProcess

DOCUMENT = re.compile(r"<\?xml version='1.0' encoding='UTF-8'\?>\n")


def test_netconf_console2_full_session(agent: AgentProcess, tmp_path: Path) -> None:
    tool = shutil.which("netconf-console2")
    assert tool, "netconf-console2 must be installed (the test extra of setup.cfg)"
    scenario = Scenario("console2")
    files = {
        **{f"first{i}.xml": part for i, part in enumerate(scenario.first_edit_parts())},  # one node per file
        "confirmed.xml": scenario.hostname_edit(scenario.confirmed),
        "discarded.xml": scenario.hostname_edit(scenario.discarded),
        "cancel.xml": CANCEL_COMMIT,
        "keygen.xml": scenario.key_generate(),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    f = {name: str(tmp_path / name) for name in files}
    argv = [
        tool, "--host", "127.0.0.1", "--port", str(agent.port), "-u", "admin", "-p", ADMIN_PASSWORD, "--db", "candidate",
        "--hello",
        "--get", "/crypto:crypto/crypto:key/crypto:rsa/crypto:label",  # XPath (--filter is global, not per command)
        "--get-config", "/sys:aaa/sys:user/sys:name",  # --db candidate: the candidate equals running here
        "--lock",
        "--edit-config", f["first0.xml"], f["first1.xml"], f["first2.xml"],
        "--validate", "candidate",
        "--commit",
        "--edit-config", f["confirmed.xml"],
        "--commit", "confirmed", "--timeout", "120",
        "--get", "/sys:hostname",  # running (and state)
        "--rpc", f["cancel.xml"],
        "--get", "/sys:hostname",
        "--edit-config", f["discarded.xml"],
        "--discard-changes",
        "--get-config", "/sys:hostname",  # the candidate
        "--unlock",
        "--rpc", f["keygen.xml"],
    ]
    done = run_client(argv)
    replies = [part for part in DOCUMENT.split(done.stdout) if part.strip()]
    assert len(replies) == 17, done.stdout
    hello = replies[0]
    for skipped, reply in ((3, "lock"), (4, "edit-config"), (5, "validate"), (6, "commit"), (7, "edit-config"),
                           (8, "confirmed commit"), (12, "edit-config"), (13, "discard-changes"), (15, "unlock")):
        assert "<ok" in replies[skipped] and "rpc-error" not in replies[skipped], (reply, replies[skipped])
    assert "<ok/>" in replies[10], replies[10]  # cancel-commit, as a whole rpc-reply
    seen = Observed(
        capabilities=re.findall(r"<nc:capability>([^<]+)</nc:capability>", hello),
        get_keys=replies[1],
        get_config_users=replies[2],
        after_confirmed=replies[9],
        after_cancel=replies[11],
        after_discard=replies[14],
        key_reply=replies[16],
    )
    check_observed(seen, scenario)
    check_agent_after(agent, scenario)
