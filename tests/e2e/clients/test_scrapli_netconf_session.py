"""scrapli-netconf (the test extra; scrapli pinned to 2025.1.30) through the whole session, on two transports.

- paramiko: scrapli's own SSH client, password login.
- system: OpenSSH (`ssh -tt ... -s netconf`): it requests a pty before the
  netconf subsystem, and logs in with a key imported for admin through the
  agent's own `key-import-authentication-rsa` RPC.
scrapli-netconf's hello starts with a newline before `<?xml` (RFC 6242 allows it).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from client_session import (
    CANCEL_COMMIT,
    CRYPTO,
    HOSTNAME_SUBTREE,
    KEYS_SUBTREE,
    USERS_SUBTREE,
    Observed,
    Scenario,
    check_agent_after,
    check_observed,
    require_program,
)
from ncclient.xml_ import to_ele
from scrapli_netconf.driver import NetconfDriver
from scrapli_netconf.response import NetconfResponse

from agentproc import ADMIN_PASSWORD, AgentProcess


def ok(response: NetconfResponse) -> str:
    assert not response.failed, response.result
    return str(response.result)


def run_session(conn: NetconfDriver, scenario: Scenario) -> Observed:
    conn.open()
    try:
        capabilities = list(conn.server_capabilities)
        get_keys = ok(conn.get(filter_=KEYS_SUBTREE, filter_type="subtree"))
        get_config_users = ok(conn.get_config(source="running", filter_=USERS_SUBTREE, filter_type="subtree"))
        ok(conn.lock(target="candidate"))
        ok(conn.edit_config(config=f"<config>{scenario.first_edit()}</config>", target="candidate"))
        ok(conn.validate(source="candidate"))
        ok(conn.commit())
        ok(conn.edit_config(config=f"<config>{scenario.hostname_edit(scenario.confirmed)}</config>", target="candidate"))
        ok(conn.commit(confirmed=True, timeout=120))
        after_confirmed = ok(conn.get_config(source="running", filter_=HOSTNAME_SUBTREE))
        ok(conn.rpc(filter_=CANCEL_COMMIT))  # scrapli has no cancel_commit(): its generic rpc()
        after_cancel = ok(conn.get_config(source="running", filter_=HOSTNAME_SUBTREE))
        ok(conn.edit_config(config=f"<config>{scenario.hostname_edit(scenario.discarded)}</config>", target="candidate"))
        ok(conn.discard())
        after_discard = ok(conn.get_config(source="candidate", filter_=HOSTNAME_SUBTREE))
        ok(conn.unlock(target="candidate"))
        key_reply = ok(conn.rpc(filter_=scenario.key_generate()))
    finally:
        conn.close()  # <close-session>, then the transport
    return Observed(capabilities, get_keys, get_config_users, after_confirmed, after_cancel, after_discard, key_reply)


def test_scrapli_paramiko_transport_full_session(agent: AgentProcess) -> None:
    scenario = Scenario("scrapli-paramiko")
    conn = NetconfDriver(host="127.0.0.1", port=agent.port, auth_username="admin", auth_password=ADMIN_PASSWORD,
                         auth_strict_key=False, transport="paramiko", timeout_ops=60, ssh_config_file=False)
    check_observed(run_session(conn, scenario), scenario)
    check_agent_after(agent, scenario)


def test_scrapli_system_transport_openssh_with_a_pty_full_session(agent: AgentProcess, tmp_path: Path) -> None:
    require_program("ssh", "openssh-client")
    key = tmp_path / "id_rsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(key)], check=True, timeout=60)
    public = (tmp_path / "id_rsa.pub").read_text().strip()
    with agent.connect() as m:
        m.dispatch(to_ele(f'<key-import-authentication-rsa xmlns="{CRYPTO}"><label>scrapli-system</label>'
                          f"<public-key>{public}</public-key></key-import-authentication-rsa>"))
    scenario = Scenario("scrapli-system")
    conn = NetconfDriver(host="127.0.0.1", port=agent.port, auth_username="admin", auth_private_key=str(key),
                         auth_strict_key=False, transport="system", timeout_ops=60, ssh_config_file=False)
    check_observed(run_session(conn, scenario), scenario)
    check_agent_after(agent, scenario)

