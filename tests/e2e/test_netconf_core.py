"""Issue 2 end to end: the real agent over SSH, driven by ncclient (and netconf-console2)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest
from lxml import etree
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.transport.errors import AuthenticationError

from agentproc import ADMIN_PASSWORD, AgentProcess, wait_until

SYS = "urn:ca-agent:yang:system"
CRYPTO = "urn:ca-agent:yang:crypto"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = {"sys": SYS, "crypto": CRYPTO, "nc": NC}

HOSTNAME_CONFIG = f"""<config xmlns="{NC}">
  <hostname xmlns="{SYS}">myhost</hostname>
  <domain xmlns="{SYS}"><name>mydomain.com</name></domain>
</config>"""


def trustpoint_config(name: str, body: str, operation: str | None = None) -> str:
    op = f' xmlns:nc="{NC}" nc:operation="{operation}"' if operation else ""
    return f"""<config xmlns="{NC}"><crypto xmlns="{CRYPTO}"><ca>
      <trustpoint{op}><name>{name}</name>{body}</trustpoint></ca></crypto></config>"""


def running(m: manager.Manager) -> etree._Element:
    return m.get_config("running").data_ele


def test_hello_advertises_capabilities_and_modules(agent: AgentProcess) -> None:
    with agent.connect() as m:
        caps = set(m.server_capabilities)
        assert m.session_id
    for cap in (
        "urn:ietf:params:netconf:base:1.0",
        "urn:ietf:params:netconf:base:1.1",
        "urn:ietf:params:netconf:capability:candidate:1.0",
        "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
        "urn:ietf:params:netconf:capability:validate:1.1",
        # RFC 4741's versions too: yangcli enables confirmed commit only when it sees confirmed-commit:1.0
        "urn:ietf:params:netconf:capability:confirmed-commit:1.0",
        "urn:ietf:params:netconf:capability:validate:1.0",
        "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
        "urn:ietf:params:netconf:capability:xpath:1.0",
        "urn:ietf:params:netconf:capability:writable-running:1.0",
    ):
        assert cap in caps
    module_caps = [c for c in caps if "?module=" in c]
    names = {c.split("module=")[1].split("&")[0]: c for c in module_caps}
    assert "ca-agent-system" in names and "ca-agent-crypto" in names and "ietf-netconf-monitoring" in names
    assert names["ca-agent-crypto"].startswith(CRYPTO + "?module=ca-agent-crypto&revision=2026-11-26")


def test_seed_hostname_and_domain_commit(agent: AgentProcess) -> None:
    with agent.connect() as m:
        m.edit_config(target="candidate", config=HOSTNAME_CONFIG)
        # Not yet in running: a candidate edit takes effect on commit only.
        assert running(m).find("sys:hostname", NS) is None
        assert m.get_config("candidate").data_ele.findtext("sys:hostname", namespaces=NS) == "myhost"
        m.commit()
        data = running(m)
        assert data.findtext("sys:hostname", namespaces=NS) == "myhost"
        assert data.findtext("sys:domain/sys:name", namespaces=NS) == "mydomain.com"
    on_disk = (agent.data_dir / "running.xml").read_text()
    assert "myhost" in on_disk and "mydomain.com" in on_disk


def test_trustpoint_with_every_leaf_and_choice(agent: AgentProcess) -> None:
    body = """<enrollment><url>http://ca.domain.com/certsrv/mscep/mscep.dll</url>
        <retry><period>2</period><count>25</count></retry></enrollment>
        <query-url>ldap://my-ldap.domain.com</query-url>
        <rsakeypair>mykey</rsakeypair>
        <subject-name>CN=r1,O=Example</subject-name>"""
    with agent.connect() as m:
        m.edit_config(target="candidate", config=trustpoint_config("myca", body))
        m.commit()
        tp = running(m).find("crypto:crypto/crypto:ca/crypto:trustpoint", NS)
        assert tp.findtext("crypto:name", namespaces=NS) == "myca"
        assert tp.findtext("crypto:enrollment/crypto:url", namespaces=NS).endswith("mscep.dll")
        assert tp.findtext("crypto:enrollment/crypto:retry/crypto:period", namespaces=NS) == "2"
        assert tp.findtext("crypto:enrollment/crypto:retry/crypto:count", namespaces=NS) == "25"
        assert tp.findtext("crypto:query-url", namespaces=NS) == "ldap://my-ldap.domain.com"
        assert tp.findtext("crypto:rsakeypair", namespaces=NS) == "mykey"
        assert tp.findtext("crypto:subject-name", namespaces=NS) == "CN=r1,O=Example"
        # 'enrollment terminal' replaces 'enrollment url': the two are cases of one choice.
        m.edit_config(target="candidate", config=trustpoint_config("myca", "<enrollment><terminal/></enrollment>"))
        m.commit()
        enrollment = running(m).find("crypto:crypto/crypto:ca/crypto:trustpoint/crypto:enrollment", NS)
        assert enrollment.find("crypto:terminal", NS) is not None
        assert enrollment.find("crypto:url", NS) is None
        # delete the trustpoint
        m.edit_config(target="candidate", config=trustpoint_config("myca", "", operation="delete"))
        m.commit()
        assert running(m).find("crypto:crypto/crypto:ca/crypto:trustpoint", NS) is None
        with pytest.raises(RPCError) as missing:
            m.edit_config(target="candidate", config=trustpoint_config("myca", "", operation="delete"))
        assert missing.value.tag == "data-missing"


@pytest.mark.parametrize(
    ("retry", "leaf", "message"),
    [
        ("<period>0</period>", "period", "The retry period is 1 to 60 minutes."),
        ("<period>61</period>", "period", "The retry period is 1 to 60 minutes."),
        ("<count>101</count>", "count", "The retry count is 1 to 100."),
    ],
)
def test_retry_range_errors(agent: AgentProcess, retry: str, leaf: str, message: str) -> None:
    config = trustpoint_config("myca", f"<enrollment><url>http://ca</url><retry>{retry}</retry></enrollment>")
    path = f"/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='myca']/crypto:enrollment/crypto:retry/crypto:{leaf}"
    with agent.connect() as m:
        with pytest.raises(RPCError) as refused:
            m.edit_config(target="candidate", config=config)
        assert refused.value.tag == "invalid-value"
        assert refused.value.path.strip() == path
        assert refused.value.message == message  # the YANG range's error-message
        # Skipping the test at edit time moves the refusal to commit, same tag and path.
        m.edit_config(target="candidate", config=config, test_option="set")
        with pytest.raises(RPCError) as at_commit:
            m.commit()
        assert at_commit.value.tag == "invalid-value"
        assert at_commit.value.path.strip() == path
        m.discard_changes()
        assert running(m).find("crypto:crypto", NS) is None


def test_edit_running_is_validated_and_applied(agent: AgentProcess) -> None:
    with agent.connect() as m:
        m.edit_config(target="running", config=HOSTNAME_CONFIG)
        assert running(m).findtext("sys:hostname", namespaces=NS) == "myhost"
        bad = f'<config xmlns="{NC}"><hostname xmlns="{SYS}">-bad-</hostname></config>'
        with pytest.raises(RPCError) as refused:
            m.edit_config(target="running", config=bad)
        assert refused.value.tag == "invalid-value"
        assert refused.value.path.strip() == "/sys:hostname"
        assert running(m).findtext("sys:hostname", namespaces=NS) == "myhost"
        unknown = f'<config xmlns="{NC}"><nosuch xmlns="{SYS}">x</nosuch></config>'
        with pytest.raises(RPCError) as unknown_error:
            m.edit_config(target="running", config=unknown)
        assert unknown_error.value.tag == "unknown-element"


def test_edit_operations_create_replace_remove(agent: AgentProcess) -> None:
    with agent.connect() as m:
        tp = "<enrollment><url>http://ca1</url></enrollment><rsakeypair>k1</rsakeypair>"
        m.edit_config(target="running", config=trustpoint_config("a", tp, operation="create"))
        with pytest.raises(RPCError) as exists:
            m.edit_config(target="running", config=trustpoint_config("a", tp, operation="create"))
        assert exists.value.tag == "data-exists"
        m.edit_config(target="running", config=trustpoint_config("a", "<enrollment><terminal/></enrollment>", "replace"))
        entry = running(m).find("crypto:crypto/crypto:ca/crypto:trustpoint", NS)
        assert entry.find("crypto:rsakeypair", NS) is None  # replace dropped what it did not name
        m.edit_config(target="running", config=trustpoint_config("a", "", operation="remove"))
        m.edit_config(target="running", config=trustpoint_config("a", "", operation="remove"))  # no error
        assert running(m).find("crypto:crypto/crypto:ca/crypto:trustpoint", NS) is None


def test_the_request_after_a_commit_sees_the_backend_applied_it(agent: AgentProcess) -> None:
    """A commit's listeners run after its reply; the next request, on this session or another, waits for them.

    ca-cancel-enroll answers from the PKI backend's trustpoints, which a listener
    updates: refused as "not configured" if the request overtook the listener.
    """

    def cancel_refusal(m: manager.Manager, name: str) -> str:
        with pytest.raises(RPCError) as refused:
            m.dispatch(etree.fromstring(f'<ca-cancel-enroll xmlns="{CRYPTO}"><trustpoint>{name}</trustpoint></ca-cancel-enroll>'))
        return str(refused.value.message)

    def many(names: list[str], operation: str | None = None) -> str:
        op = f' nc:operation="{operation}"' if operation else ""
        body = "<enrollment><terminal/></enrollment>" if operation is None else ""
        entries = "".join(f"<trustpoint{op}><name>{n}</name>{body}</trustpoint>" for n in names)
        return f'<config xmlns="{NC}" xmlns:nc="{NC}"><crypto xmlns="{CRYPTO}"><ca>{entries}</ca></crypto></config>'

    # Big commits: their listeners take long enough that a request not waiting for them overtakes them.
    with agent.connect() as m, agent.connect() as other:
        for i in range(3):
            names = [f"seen{i}-{n}" for n in range(1500)]
            m.edit_config(target="running", config=many(names))
            assert "no enrollment in progress" in cancel_refusal(m if i % 2 else other, names[-1])
            m.edit_config(target="running", config=many(names, "delete"))
            assert "is not configured" in cancel_refusal(other if i % 2 else m, names[-1])


def test_error_options(agent: AgentProcess) -> None:
    config = f"""<config xmlns="{NC}" xmlns:nc="{NC}">
      <hostname xmlns="{SYS}">h1</hostname>
      <crypto xmlns="{CRYPTO}"><ca><trustpoint nc:operation="delete"><name>none</name></trustpoint></ca></crypto>
    </config>"""
    missing_path = "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='none']"
    with agent.connect() as m:
        with pytest.raises(RPCError) as rolled_back:
            m.edit_config(target="running", config=config, error_option="rollback-on-error")
        assert rolled_back.value.tag == "data-missing"
        assert (rolled_back.value.path or "").strip() == missing_path
        assert running(m).find("sys:hostname", NS) is None
        with pytest.raises(RPCError) as partial:
            m.edit_config(target="running", config=config, error_option="continue-on-error")
        assert partial.value.tag == "data-missing"
        assert (partial.value.path or "").strip() == missing_path
        assert running(m).findtext("sys:hostname", namespaces=NS) == "h1"


def test_a_reply_reports_at_most_1000_errors_and_counts_the_rest(agent: AgentProcess) -> None:
    # One rpc-error per failing node: 100,000 failing deletes made a 33 MB reply, 20 s of CPU and 381 MB.
    deletes = "".join(f'<trustpoint nc:operation="delete"><name>gone{i}</name></trustpoint>' for i in range(1500))
    config = f"""<config xmlns="{NC}" xmlns:nc="{NC}">
      <hostname xmlns="{SYS}">after-errors</hostname><crypto xmlns="{CRYPTO}"><ca>{deletes}</ca></crypto>
    </config>"""
    with agent.connect() as m:
        with pytest.raises(RPCError) as failed:
            m.edit_config(target="running", config=config, error_option="continue-on-error")
        errors = failed.value.errors
        assert len(errors) == 1001
        assert all(error.tag == "data-missing" for error in errors[:1000])
        assert errors[-1].tag == "operation-failed"
        assert "500 more errors, not reported" in (errors[-1].message or "")
        assert running(m).findtext("sys:hostname", namespaces=NS) == "after-errors"  # the rest was applied
    agent.log_until("and 991 more rpc-errors in the same reply")  # 10 of the 1,001 logged one by one


def test_copy_config_and_validate(agent: AgentProcess) -> None:
    with agent.connect() as m:
        # ncclient's copy_config only names datastores; send the inline form as is.
        inline = etree.fromstring(
            f'<copy-config xmlns="{NC}"><target><candidate/></target><source>{HOSTNAME_CONFIG}</source></copy-config>'
        )
        m.dispatch(inline)
        m.validate(source="candidate")
        m.commit()
        assert running(m).findtext("sys:hostname", namespaces=NS) == "myhost"
        m.copy_config(source="running", target="candidate")
        with pytest.raises(RPCError) as same:
            m.copy_config(source="running", target="running")
        assert same.value.tag == "invalid-value"


def test_lock_contention_between_sessions(agent: AgentProcess) -> None:
    with agent.connect() as a, agent.connect() as b:
        a.lock("candidate")
        with pytest.raises(RPCError) as denied:
            b.lock("candidate")
        assert denied.value.tag == "lock-denied"
        assert denied.value.info is not None and f"<session-id>{a.session_id}</session-id>" in denied.value.info.replace(
            " ", ""
        ).replace(f'xmlns="{NC}"', "")
        with pytest.raises(RPCError) as in_use:
            b.edit_config(target="candidate", config=HOSTNAME_CONFIG)
        assert in_use.value.tag == "in-use"
        state = b.get(filter=("subtree", '<netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><datastores/></netconf-state>')).data_ele
        holder = state.xpath("//*[local-name()='locked-by-session']/text()")
        assert holder == [str(a.session_id)]
        with pytest.raises(RPCError) as not_holder:
            b.unlock("candidate")
        assert not_holder.value.tag == "operation-failed"
        assert not_holder.value.type == "protocol"
        a.unlock("candidate")
        b.lock("candidate")
        b.unlock("candidate")


def test_lock_released_when_holder_session_ends(agent: AgentProcess) -> None:
    with agent.connect() as b:
        a = agent.connect()
        a.lock("running")
        with pytest.raises(RPCError) as denied:
            b.lock("running")
        assert denied.value.tag == "lock-denied"
        a.close_session()
        wait_until(lambda: _try_lock(b), 10, "the lock to be released")


def _try_lock(m: manager.Manager) -> bool:
    try:
        m.lock("running")
    except RPCError:
        return False
    m.unlock("running")
    return True


def test_confirmed_commit_rolls_back_on_timeout(agent: AgentProcess) -> None:
    with agent.connect() as m:
        m.edit_config(target="candidate", config=HOSTNAME_CONFIG)
        m.commit(confirmed=True, timeout="1")
        assert running(m).findtext("sys:hostname", namespaces=NS) == "myhost"
        assert (agent.data_dir / "rollback.xml").exists()
        wait_until(lambda: running(m).find("sys:hostname", NS) is None, 10, "the rollback")
        assert not (agent.data_dir / "rollback.xml").exists()


def test_confirmed_commit_confirmed_by_second_commit(agent: AgentProcess) -> None:
    with agent.connect() as m:
        m.edit_config(target="candidate", config=HOSTNAME_CONFIG)
        m.commit(confirmed=True, timeout="1")
        m.commit()  # confirms: the 1 s timer must be gone
        assert not (agent.data_dir / "rollback.xml").exists()
        # A second confirmed commit with a longer timeout, started after the first: when its
        # rollback has happened, the first timer's deadline is long past. Its rollback
        # returns to the confirmed "myhost"; a surviving first timer would instead have
        # wiped the hostname a second earlier, and that is what would be seen first.
        m.edit_config(target="candidate", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">second</hostname></config>')
        m.commit(confirmed=True, timeout="3")
        seen: list[str | None] = []

        def rolled_back() -> bool:
            seen.append(running(m).findtext("sys:hostname", namespaces=NS))
            return seen[-1] != "second"

        wait_until(rolled_back, 30, "the second confirmed commit to roll back")
        assert seen[-1] == "myhost", seen


def test_confirmed_commit_rolls_back_when_session_drops(agent: AgentProcess) -> None:
    with agent.connect() as observer:
        m = agent.connect()
        m.edit_config(target="candidate", config=HOSTNAME_CONFIG)
        m.commit(confirmed=True, timeout="600")
        assert running(observer).findtext("sys:hostname", namespaces=NS) == "myhost"
        m.close_session()
        wait_until(lambda: running(observer).find("sys:hostname", NS) is None, 10, "rollback on disconnect")


def test_persistent_confirmed_commit_and_cancel(agent: AgentProcess) -> None:
    with agent.connect() as other:
        m = agent.connect()
        m.edit_config(target="candidate", config=HOSTNAME_CONFIG)
        m.commit(confirmed=True, timeout="600", persist="job-42")
        m.close_session()
        # persist: survives its session; confirmable from another session with the id
        assert running(other).findtext("sys:hostname", namespaces=NS) == "myhost"
        with pytest.raises(RPCError) as wrong:
            other.commit(persist_id="wrong")
        assert wrong.value.tag == "invalid-value"
        other.commit(persist_id="job-42")
        assert running(other).findtext("sys:hostname", namespaces=NS) == "myhost"
        # a second confirmed commit, cancelled
        other.edit_config(target="candidate", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">second</hostname></config>')
        other.commit(confirmed=True, persist="p2")
        assert running(other).findtext("sys:hostname", namespaces=NS) == "second"
        other.cancel_commit(persist_id="p2")
        assert running(other).findtext("sys:hostname", namespaces=NS) == "myhost"


def test_kill_9_after_commit_keeps_config(agent_factory) -> None:
    proc = agent_factory().start()
    m = proc.connect()
    m.edit_config(target="candidate", config=HOSTNAME_CONFIG)
    m.commit()
    proc.kill9()
    assert not list(proc.data_dir.glob(".*.tmp"))
    proc.start()
    with proc.connect() as m:
        data = running(m)
        assert data.findtext("sys:hostname", namespaces=NS) == "myhost"
        assert data.findtext("sys:domain/sys:name", namespaces=NS) == "mydomain.com"


def test_unconfirmed_commit_is_rolled_back_after_crash(agent_factory) -> None:
    proc = agent_factory().start()
    m = proc.connect()
    m.edit_config(target="candidate", config=HOSTNAME_CONFIG)
    m.commit()
    m.edit_config(target="candidate", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">tmp</hostname></config>')
    m.commit(confirmed=True, persist="x")
    assert (proc.data_dir / "rollback.xml").exists()
    proc.kill9()
    proc.start()
    with proc.connect() as m:
        assert running(m).findtext("sys:hostname", namespaces=NS) == "myhost"


def test_first_start_data_dir_and_sigterm(agent_factory, tmp_path: Path) -> None:
    env = {"CA_AGENT_ADMIN_PASSWORD": ""}
    proc = agent_factory("fresh", env=env).start()
    mode = stat.S_IMODE(os.stat(proc.data_dir).st_mode)
    assert mode == 0o700
    pw_file = proc.data_dir / "admin-password"
    assert stat.S_IMODE(os.stat(pw_file).st_mode) == 0o600
    password = pw_file.read_text().strip()
    assert password and password in proc.log_text()  # printed once
    with proc.connect(password=password) as m:
        users = running(m).findall("sys:aaa/sys:user", NS)
        assert [u.findtext("sys:name", namespaces=NS) for u in users] == ["admin"]
        stored = users[0].findtext("sys:password-hash", namespaces=NS)
        assert stored.startswith("$scrypt$") and password not in stored
    assert password not in (proc.data_dir / "running.xml").read_text()
    with pytest.raises(AuthenticationError):
        proc.connect(password="wrong")
    assert proc.stop() == 0


def test_get_schema_returns_yang_pyang_parses(agent: AgentProcess, tmp_path: Path) -> None:
    with agent.connect() as m:
        text = m.get_schema("ca-agent-crypto").data
        assert text.lstrip().startswith("module ca-agent-crypto")
        schemas = m.get(filter=("subtree", '<netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><schemas/></netconf-state>')).data_ele
        identifiers = schemas.xpath("//*[local-name()='identifier']/text()")
        assert "ca-agent-crypto" in identifiers and "ietf-netconf-monitoring" in identifiers
        with pytest.raises(RPCError) as unknown:
            m.get_schema("no-such-module")
        assert unknown.value.tag == "invalid-value"
    out = tmp_path / "ca-agent-crypto.yang"
    out.write_text(text)
    yang_dir = Path(__file__).resolve().parents[2] / "yang"
    result = subprocess.run(["pyang", "-p", str(yang_dir), "-f", "tree", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "trustpoint* [name]" in result.stdout


def test_filters_subtree_and_xpath(agent: AgentProcess) -> None:
    with agent.connect() as m:
        for name in ("ca1", "ca2", "ca3"):
            m.edit_config(target="candidate", config=trustpoint_config(name, f"<rsakeypair>k-{name}</rsakeypair>"))
        m.edit_config(target="candidate", config=HOSTNAME_CONFIG)
        m.commit()
        subtree = f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>ca2</name></trustpoint></ca></crypto>'
        data = m.get_config("running", filter=("subtree", subtree)).data_ele
        names = data.xpath("//crypto:trustpoint/crypto:name/text()", namespaces=NS)
        assert names == ["ca2"]
        assert data.find("sys:hostname", NS) is None
        assert data.findtext(".//crypto:rsakeypair", namespaces=NS) == "k-ca2"
        selected = m.get_config("running", filter=("xpath", "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='ca3']/crypto:rsakeypair")).data_ele
        assert selected.xpath("//crypto:trustpoint/crypto:name/text()", namespaces=NS) == ["ca3"]  # key kept
        assert selected.xpath("//crypto:rsakeypair/text()", namespaces=NS) == ["k-ca3"]
        hostname_only = m.get(filter=("xpath", "/sys:hostname"))
        assert hostname_only.data_ele.findtext("sys:hostname", namespaces=NS) == "myhost"
        assert hostname_only.data_ele.find("crypto:crypto", NS) is None
        library = m.get(filter=("subtree", '<yang-library xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-library"/>')).data_ele
        assert "ca-agent-crypto" in library.xpath("//*[local-name()='module']/*[local-name()='name']/text()")


def test_kill_session(agent: AgentProcess) -> None:
    with agent.connect() as killer:
        victim = agent.connect()
        victim.lock("candidate")
        killer.kill_session(victim.session_id)
        wait_until(lambda: _try_lock_candidate(killer), 10, "lock release")
        with pytest.raises(RPCError) as bad:
            killer.kill_session(killer.session_id)
        assert bad.value.tag == "invalid-value"


def _try_lock_candidate(m: manager.Manager) -> bool:
    try:
        m.lock("candidate")
    except RPCError:
        return False
    m.unlock("candidate")
    return True


def _raw_session(port: int, base11: bool) -> tuple[paramiko.SSHClient, paramiko.Channel]:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=port, username="admin", password=ADMIN_PASSWORD, allow_agent=False, look_for_keys=False)
    channel = client.get_transport().open_session()
    channel.invoke_subsystem("netconf")
    caps = "<capability>urn:ietf:params:netconf:base:1.0</capability>"
    if base11:
        caps += "<capability>urn:ietf:params:netconf:base:1.1</capability>"
    channel.sendall(f'<?xml version="1.0"?><hello xmlns="{NC}"><capabilities>{caps}</capabilities></hello>]]>]]>'.encode())
    _read_until(channel, b"]]>]]>")
    return client, channel


def _read_until(channel: paramiko.Channel, marker: bytes) -> bytes:
    data = b""
    channel.settimeout(20)
    while marker not in data:
        chunk = channel.recv(65536)
        if not chunk:
            raise EOFError(data)
        data += chunk
    return data


def _frame(message: str) -> bytes:
    raw = message.encode()
    return b"\n#%d\n" % len(raw) + raw + b"\n##\n"


def test_malformed_message_gets_error_and_session_survives_on_base11(agent: AgentProcess) -> None:
    client, channel = _raw_session(agent.port, base11=True)
    try:
        channel.sendall(_frame('<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get-config><source>'))
        reply = _read_until(channel, b"\n##\n")
        assert b"malformed-message" in reply
        channel.sendall(_frame(f'<rpc message-id="2" xmlns="{NC}"><get-config><source><running/></source></get-config></rpc>'))
        reply = _read_until(channel, b"\n##\n")
        assert b'message-id="2"' in reply and b"<data" in reply
        channel.sendall(_frame(f'<rpc xmlns="{NC}"><get/></rpc>'))
        assert b"missing-attribute" in _read_until(channel, b"\n##\n")
        channel.sendall(_frame(f'<rpc message-id="3" xmlns="{NC}"><frobnicate/></rpc>'))
        assert b"operation-not-supported" in _read_until(channel, b"\n##\n")
    finally:
        client.close()


def test_malformed_message_closes_a_base10_session_without_that_error_tag(agent: AgentProcess) -> None:
    """RFC 6241 Appendix A: malformed-message must not be sent to a base:1.0-only client."""
    client, channel = _raw_session(agent.port, base11=False)
    try:
        channel.sendall(f'<rpc xmlns="{NC}"><get/></rpc>]]>]]>'.encode())
        assert b"missing-attribute" in _read_until(channel, b"]]>]]>")
        channel.sendall(f'<rpc message-id="3" xmlns="{NC}"><frobnicate/></rpc>]]>]]>'.encode())
        assert b"operation-not-supported" in _read_until(channel, b"]]>]]>")
        channel.sendall(b'<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get-config><source>]]>]]>')
        with pytest.raises(EOFError) as closed:
            _read_until(channel, b"]]>]]>")
        assert b"malformed-message" not in closed.value.args[0]
    finally:
        client.close()
    agent.log_until("malformed message")


def test_netconf_console2_as_second_client(agent: AgentProcess, tmp_path: Path) -> None:
    tool = shutil.which("netconf-console2")
    assert tool, "netconf-console2 must be installed (pip install netconf-console2 six)"
    edit = tmp_path / "edit.xml"
    edit.write_text(f'<hostname xmlns="{SYS}">console2</hostname>')  # the tool wraps it in <config>
    base = [tool, "--host", "127.0.0.1", "--port", str(agent.port), "-u", "admin", "-p", ADMIN_PASSWORD]
    hello = subprocess.run(base + ["--hello"], capture_output=True, text=True, timeout=60)
    assert hello.returncode == 0, hello.stderr
    assert "urn:ietf:params:netconf:capability:candidate:1.0" in hello.stdout
    done = subprocess.run(base + ["--db", "running", "--edit-config", str(edit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr + done.stdout
    got = subprocess.run(base + ["--get-config"], capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert "<hostname" in got.stdout and "console2" in got.stdout


def test_python_dash_m_agent_help() -> None:
    result = subprocess.run([sys.executable, "-m", "agent", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "--data-dir" in result.stdout and "--port" in result.stdout
