"""Issue 11: who may do what. Users in no group, in operator, in pki-admin and in a custom rule-list try
every operation class over NETCONF (ncclient) against the real agent; refusals are RFC 8341 access-denied."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from nacm_e2e_helpers import (
    CRYPTO,
    DENIED,
    NACM,
    NC,
    NCM,
    NS,
    OK,
    SYS,
    add_users,
    config_of,
    crypto_rpc,
    error_of,
    outcome,
)
from ncclient import manager

from agentproc import AgentProcess

ALLOWED = "allowed"  # anything but access-denied (the operation ran, maybe failing for its own reasons)

# The custom task group: hostname only, its own password, key generation, one trustpoint and one schema hidden.
# The rule paths use a prefix declared by the client on the <path> element (x:), and the module prefixes.
NETOPS_RULES = f"""
<rule-list xmlns:x="{CRYPTO}"><name>netops</name><group>netops</group>
  <rule><name>hostname</name><path>/sys:hostname</path><access-operations>create update delete</access-operations>
    <action>permit</action></rule>
  <rule><name>own-password</name><path>/sys:aaa/sys:user[sys:name=$USER]/sys:password-hash</path>
    <access-operations>update</access-operations><action>permit</action></rule>
  <rule><name>keygen</name><module-name>ca-agent-crypto</module-name><rpc-name>key-generate-rsa</rpc-name>
    <access-operations>exec</access-operations><action>permit</action></rule>
  <rule><name>hide-tp</name><path>/x:crypto/x:ca/x:trustpoint[x:name='hidden']</path>
    <access-operations>read</access-operations><action>deny</action></rule>
  <rule><name>hide-schema</name><path>/ncm:netconf-state/ncm:schemas/ncm:schema[ncm:identifier='ietf-netconf-acm']</path>
    <access-operations>read</access-operations><action>deny</action></rule>
</rule-list>"""

USERS = {
    "nobody": ("nobody-pw", None),
    "oper": ("oper-pw", "operator"),
    "pki": ("pki-pw", "pki-admin"),
    "ops": ("ops-pw", "netops"),
}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    proc = AgentProcess(tmp_path_factory.mktemp("nacm") / "data").start()
    try:
        add_users(proc, USERS, NETOPS_RULES)
        with proc.connect() as m:
            m.edit_config(target="running", config=(
                f'<config xmlns="{NC}"><crypto xmlns="{CRYPTO}"><ca>'
                f"<trustpoint><name>tp1</name><enrollment><terminal/></enrollment></trustpoint>"
                f"<trustpoint><name>hidden</name><enrollment><terminal/></enrollment></trustpoint>"
                f"</ca></crypto></config>"))
        yield proc
    finally:
        proc.stop()


def connect(agent: AgentProcess, user: str) -> manager.Manager:
    return agent.connect(username=user, password=USERS[user][0])


def ssh_line() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def operation_classes(m: manager.Manager, user: str) -> dict[str, Callable[[], object]]:
    """Every operation class, as this user would try it (names and labels per user, so nothing collides)."""
    def edit(target: str, body: str) -> Callable[[], object]:
        return lambda: m.edit_config(target=target, config=f'<config xmlns="{NC}">{body}</config>')

    return {
        "get": lambda: m.get(),
        "get-config": lambda: m.get_config(source="running"),
        "edit-config crypto": edit("running", f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>tp-{user}</name>'
                                              f"<enrollment><terminal/></enrollment></trustpoint></ca></crypto>"),
        "edit-config hostname": edit("candidate", f'<hostname xmlns="{SYS}">host-{user}</hostname>'),
        "edit-config aaa": edit("running", f'<aaa xmlns="{SYS}"><user><name>x-{user}</name>'
                                           f"<password-hash>$0$x</password-hash></user></aaa>"),
        "edit-config nacm": edit("running", f'<nacm xmlns="{NACM}"><groups><group><name>root-system</name>'
                                            f"<user-name>{user}</user-name></group></groups></nacm>"),
        "copy-config running to candidate": lambda: m.copy_config(source="running", target="candidate"),
        "copy-config own view to running": lambda: m.dispatch(_copy_to_running(config_of(m))),
        "discard-changes": lambda: m.discard_changes(),
        "lock": lambda: (m.lock("running"), m.unlock("running")),
        "commit": lambda: m.commit(),
        "kill-session": lambda: m.dispatch(etree.fromstring(f'<kill-session xmlns="{NC}"><session-id>999</session-id></kill-session>')),
        "delete-config": lambda: m.dispatch(etree.fromstring(f'<delete-config xmlns="{NC}"><target><candidate/></target></delete-config>')),
        "key-generate-rsa": lambda: crypto_rpc(m, "key-generate-rsa", f"<label>k-{user}</label><modulus>1024</modulus>"),
        "key-zeroize-rsa": lambda: crypto_rpc(m, "key-zeroize-rsa", f"<label>k-{user}</label>"),
        "key-import-authentication-rsa": lambda: crypto_rpc(
            m, "key-import-authentication-rsa", f"<label>a-{user}</label><public-key>{ssh_line()}</public-key>"),
        "ca-authenticate": lambda: crypto_rpc(m, "ca-authenticate", "<trustpoint>tp1</trustpoint>"),
        "ca-enroll": lambda: crypto_rpc(m, "ca-enroll", "<trustpoint>tp1</trustpoint>"),
        "ca-cancel-enroll": lambda: crypto_rpc(m, "ca-cancel-enroll", "<trustpoint>tp1</trustpoint>"),
        "ca-import-certificate": lambda: crypto_rpc(
            m, "ca-import-certificate", "<trustpoint>tp1</trustpoint><certificate>not a certificate</certificate>"),
        "ca-clear-certificates": lambda: crypto_rpc(m, "ca-clear-certificates", "<trustpoint>tp1</trustpoint>"),
        "get-schema": lambda: m.get_schema("ca-agent-crypto"),
    }


def _copy_to_running(data: etree._Element) -> etree._Element:
    """<copy-config> of an inline <config> (what the user sees of running) onto running."""
    copy = etree.fromstring(f'<copy-config xmlns="{NC}"><target><running/></target><source><config/></source></copy-config>')
    config = copy.find("nc:source/nc:config", NS)
    assert config is not None
    config.extend(list(data))
    return copy


CRYPTO_RPCS = ("key-generate-rsa", "key-zeroize-rsa", "key-import-authentication-rsa", "ca-authenticate",
               "ca-enroll", "ca-cancel-enroll", "ca-import-certificate", "ca-clear-certificates")

EXPECTED: dict[str, dict[str, str]] = {
    # RFC 8341 defaults: read what is not secret, write nothing, base operations yes, marked RPCs no.
    "nobody": {
        "get": OK, "get-config": OK, "edit-config crypto": DENIED, "edit-config hostname": DENIED,
        "edit-config aaa": DENIED, "edit-config nacm": DENIED, "copy-config running to candidate": OK,
        "copy-config own view to running": DENIED, "discard-changes": OK, "lock": OK, "commit": OK,
        "kill-session": DENIED, "delete-config": DENIED, **{name: DENIED for name in CRYPTO_RPCS}, "get-schema": OK,
    },
    # read-only
    "oper": {
        "get": OK, "get-config": OK, "edit-config crypto": DENIED, "edit-config hostname": DENIED,
        "edit-config aaa": DENIED, "edit-config nacm": DENIED, "copy-config running to candidate": DENIED,
        "copy-config own view to running": DENIED, "discard-changes": DENIED, "lock": DENIED, "commit": DENIED,
        "kill-session": DENIED, "delete-config": DENIED, **{name: DENIED for name in CRYPTO_RPCS}, "get-schema": OK,
    },
    # crypto configuration and every crypto RPC, nothing else
    "pki": {
        "get": OK, "get-config": OK, "edit-config crypto": OK, "edit-config hostname": DENIED,
        "edit-config aaa": DENIED, "edit-config nacm": DENIED, "copy-config running to candidate": OK,
        "copy-config own view to running": DENIED, "discard-changes": OK, "lock": OK, "commit": OK,
        "kill-session": DENIED, "delete-config": DENIED, **{name: ALLOWED for name in CRYPTO_RPCS}, "get-schema": OK,
    },
    # custom rule-list
    "ops": {
        "get": OK, "get-config": OK, "edit-config crypto": DENIED, "edit-config hostname": OK,
        "edit-config aaa": DENIED, "edit-config nacm": DENIED, "copy-config running to candidate": OK,
        "copy-config own view to running": DENIED, "discard-changes": OK, "lock": OK, "commit": OK,
        "kill-session": DENIED, "delete-config": DENIED, **{name: DENIED for name in CRYPTO_RPCS},
        "key-generate-rsa": OK, "get-schema": OK,
    },
}


@pytest.mark.parametrize("user", list(USERS))
def test_every_operation_class(agent: AgentProcess, user: str) -> None:
    with connect(agent, user) as m:
        got = {name: outcome(call) for name, call in operation_classes(m, user).items()}
    expected = EXPECTED[user]
    got_compared = {k: (v if expected[k] != ALLOWED else (ALLOWED if v != DENIED else DENIED)) for k, v in got.items()}
    assert got_compared == expected
    with agent.connect() as m:  # admin: nothing the refusals were about happened
        running = config_of(m)
        assert running.find(f"s:aaa/s:user[s:name='x-{user}']", NS) is None
        assert user not in [u.text for u in running.iterfind("n:nacm/n:groups/n:group[n:name='root-system']/n:user-name", NS)]
        assert (running.find(f"c:crypto/c:ca/c:trustpoint[c:name='tp-{user}']", NS) is not None) == (user == "pki")


def test_refusals_name_the_operation_or_the_node(agent: AgentProcess) -> None:
    with connect(agent, "pki") as m:
        error = error_of(lambda: m.dispatch(etree.fromstring(f'<kill-session xmlns="{NC}"><session-id>9</session-id></kill-session>')))
        assert (error.type, error.tag, error.path.strip()) == ("protocol", DENIED, "/nc:rpc/nc:kill-session")
        error = error_of(lambda: m.edit_config(target="running", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">h</hostname></config>'))
        assert (error.type, error.tag, error.path.strip()) == ("application", DENIED, "/sys:hostname")
    with connect(agent, "oper") as m:
        error = error_of(lambda: crypto_rpc(m, "key-zeroize-rsa"))
        assert (error.type, error.tag, error.path.strip()) == ("protocol", DENIED, "/nc:rpc/crypto:key-zeroize-rsa")


@pytest.mark.parametrize("user", list(USERS))
def test_reads_leave_out_secrets(agent: AgentProcess, user: str) -> None:
    with connect(agent, user) as m:
        for data in (m.get().data_ele, config_of(m), config_of(m, "candidate")):
            names = [u.text for u in data.iterfind("s:aaa/s:user/s:name", NS)]
            assert "admin" in names and user in names
            assert data.find(".//s:password-hash", NS) is None
            assert data.find("n:nacm/n:groups", NS) is None and data.find("n:nacm/n:rule-list", NS) is None
            tps = [t.text for t in data.iterfind("c:crypto/c:ca/c:trustpoint/c:name", NS)]
            assert "tp1" in tps and ("hidden" in tps) == (user != "ops")
        # XPath filters see only the readable tree: no probing of hidden values
        probe = m.get(filter=("xpath", "/sys:aaa/sys:user[starts-with(sys:password-hash, '$scrypt')]")).data_ele
        assert probe.find("s:aaa", NS) is None
        hidden = m.get_config(source="running", filter=("xpath", "//crypto:trustpoint[crypto:name='hidden']")).data_ele
        assert (hidden.find("c:crypto", NS) is None) == (user == "ops")
        sessions = m.get(filter=("subtree", f'<netconf-state xmlns="{NCM}"><sessions/></netconf-state>')).data_ele
        assert user in [s.text for s in sessions.iterfind("ncm:netconf-state/ncm:sessions/ncm:session/ncm:username", NS)]


def test_get_schema_hidden_by_a_rule_answers_as_for_an_unknown_module(agent: AgentProcess) -> None:
    with connect(agent, "ops") as m:
        hidden = error_of(lambda: m.get_schema("ietf-netconf-acm"))
        unknown = error_of(lambda: m.get_schema("no-such-module"))
        assert (hidden.tag, hidden.type) == (unknown.tag, unknown.type) == ("invalid-value", "application")
        assert hidden.message.replace("ietf-netconf-acm", "X") == unknown.message.replace("no-such-module", "X")
        schemas = m.get(filter=("subtree", f'<netconf-state xmlns="{NCM}"><schemas/></netconf-state>')).data_ele
        identifiers = [s.text for s in schemas.iterfind("ncm:netconf-state/ncm:schemas/ncm:schema/ncm:identifier", NS)]
        assert "ca-agent-crypto" in identifiers and "ietf-netconf-acm" not in identifiers
    with connect(agent, "nobody") as m:
        assert "module ietf-netconf-acm" in m.get_schema("ietf-netconf-acm").data


def test_own_password_only_and_admin_sees_the_counters(agent: AgentProcess) -> None:
    with connect(agent, "ops") as m:
        m.edit_config(target="running", config=f'<config xmlns="{NC}"><aaa xmlns="{SYS}"><user><name>ops</name>'
                                                f"<password-hash>$0$ops-new</password-hash></user></aaa></config>")
        error = error_of(lambda: m.edit_config(target="running", config=(
            f'<config xmlns="{NC}"><aaa xmlns="{SYS}"><user><name>nobody</name>'
            f"<password-hash>$0$owned</password-hash></user></aaa></config>")))
        assert (error.tag, error.path.strip()) == (DENIED, "/sys:aaa/sys:user[sys:name='nobody']/sys:password-hash")
    agent.connect(username="ops", password="ops-new").close_session()
    USERS["ops"] = ("ops-new", "netops")
    agent.connect(username="nobody", password="nobody-pw").close_session()
    with agent.connect() as m:
        counters = m.get(filter=("subtree", f'<nacm xmlns="{NACM}"><denied-operations/><denied-data-writes/>'
                                            f"<denied-notifications/></nacm>")).data_ele
        assert int(counters.findtext("n:nacm/n:denied-operations", namespaces=NS)) > 0
        assert int(counters.findtext("n:nacm/n:denied-data-writes", namespaces=NS)) > 0
        assert counters.findtext("n:nacm/n:denied-notifications", namespaces=NS) == "0"
    with connect(agent, "pki") as m:  # /nacm, counters included, is default-deny-all
        assert m.get(filter=("subtree", f'<nacm xmlns="{NACM}"/>')).data_ele.find("n:nacm", NS) is None


def test_unreadable_rule_path_is_refused_at_commit(agent: AgentProcess) -> None:
    with agent.connect() as m:
        error = error_of(lambda: m.edit_config(target="running", config=(
            f'<config xmlns="{NC}"><nacm xmlns="{NACM}"><rule-list><name>bad</name><group>netops</group>'
            f"<rule><name>typo</name><path>/nosuch:crypto</path><action>deny</action></rule></rule-list></nacm></config>")))
        assert error.tag == "invalid-value" and "nacm:path" in error.path
        assert config_of(m).find("n:nacm/n:rule-list[n:name='bad']", NS) is None


def test_operator_sees_keys_it_may_not_touch(agent: AgentProcess) -> None:
    with connect(agent, "oper") as m:
        keys = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><key/></crypto>')).data_ele
        assert "the_default" in [k.text for k in keys.iterfind("c:crypto/c:key/c:rsa/c:label", NS)]


def test_commit_needs_write_access_to_what_differs(agent: AgentProcess) -> None:
    """RFC 8341 3.2.8: committing someone else's pending edit needs the rights that edit needed."""
    user_edit = (f'<config xmlns="{NC}"><aaa xmlns="{SYS}"><user><name>pending</name>'
                 f"<password-hash>$0$pending-pw</password-hash></user></aaa></config>")
    crypto_edit = (f'<config xmlns="{NC}"><crypto xmlns="{CRYPTO}"><ca><trustpoint><name>tp-pending</name>'
                   f"<enrollment><terminal/></enrollment></trustpoint></ca></crypto></config>")
    with agent.connect() as admin:
        admin.edit_config(target="candidate", config=user_edit)
        for user in ("nobody", "pki", "ops"):
            with connect(agent, user) as m:
                error = error_of(lambda m=m: m.commit())
                assert (error.tag, error.type) == (DENIED, "application")
                assert error.path.strip().startswith("/sys:aaa/sys:user[sys:name='pending']")
        admin.discard_changes()
    with connect(agent, "pki") as pki:
        pki.edit_config(target="candidate", config=crypto_edit)
        with connect(agent, "nobody") as m:
            assert error_of(lambda: m.commit()).tag == DENIED
        pki.commit()
    with agent.connect() as admin:
        running = config_of(admin)
        assert running.find("s:aaa/s:user[s:name='pending']", NS) is None
        assert running.find("c:crypto/c:ca/c:trustpoint[c:name='tp-pending']", NS) is not None
