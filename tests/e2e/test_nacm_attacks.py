"""Issue 11's attacker: a second user created by admin tries to read the hashes, import an SSH key for
admin, replace admin's password, zeroize every key (the host key too) and delete /aaa. Everything fails,
across a restart. Spoken as raw NETCONF over paramiko, so the exact replies are checked."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from nacm_e2e_helpers import CRYPTO, DENIED, NC, NS, SYS, RawSession, add_users, config_of, error_of, rpc_error_fields

from agentproc import ADMIN_PASSWORD, AgentProcess


def host_key_of(port: int, username: str, password: str) -> bytes:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=port, username=username, password=password, allow_agent=False, look_for_keys=False)
    try:
        transport = client.get_transport()
        assert transport is not None
        return transport.get_remote_server_key().asbytes()
    finally:
        client.close()


def login_with_key(port: int, username: str, key: rsa.RSAPrivateKey) -> None:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect("127.0.0.1", port=port, username=username, pkey=paramiko.RSAKey(key=key),
                       allow_agent=False, look_for_keys=False)
    finally:
        client.close()


@pytest.mark.parametrize("group", [None, "operator", "pki-admin"])
def test_second_user_cannot_take_over(agent_factory, tmp_path: Path, group: str | None) -> None:
    agent: AgentProcess = agent_factory().start()
    add_users(agent, {"mallory": ("mallory-pw", group)})
    host_key = host_key_of(agent.port, "admin", ADMIN_PASSWORD)
    raw = RawSession.open(agent.port, "mallory", "mallory-pw")
    try:
        # 1. read every password hash: get, get-config, and an XPath probe on the hash
        for request in ("<get/>", "<get-config><source><running/></source></get-config>",
                        "<get-config><source><candidate/></source></get-config>",
                        f'<get><filter type="xpath" xmlns:s="{SYS}" select="//s:user[starts-with(s:password-hash, \'$\')]"/></get>'):
            reply = raw.send(f'<rpc message-id="1" xmlns="{NC}">{request}</rpc>')
            assert "<rpc-reply" in reply and "password-hash" not in reply and "$scrypt$" not in reply
        # 2. replace admin's password, on running and through the candidate
        change = (f'<aaa xmlns="{SYS}"><user><name>admin</name><password-hash>$0$owned</password-hash></user></aaa>')
        reply = raw.rpc(f"<edit-config><target><running/></target><config>{change}</config></edit-config>")
        expected_type = "protocol" if group == "operator" else "application"
        error_type, error_tag, error_path = rpc_error_fields(reply)
        assert (error_type, error_tag) == (expected_type, DENIED)
        if group != "operator":
            assert error_path == "/sys:aaa/sys:user[sys:name='admin']/sys:password-hash"
        reply = raw.rpc(f"<edit-config><target><candidate/></target><config>{change}</config></edit-config>")
        assert rpc_error_fields(reply)[1] == DENIED
        # 3. delete /aaa, by edit and by copy-config of an empty configuration
        reply = raw.rpc(f'<edit-config><target><running/></target><config><aaa xmlns="{SYS}" xmlns:nc="{NC}" '
                        f'nc:operation="delete"/></config></edit-config>')
        assert rpc_error_fields(reply)[1] == DENIED
        reply = raw.rpc("<copy-config><target><running/></target><source><config/></source></copy-config>")
        assert rpc_error_fields(reply)[1] == DENIED
        # 4. put itself in root-system
        reply = raw.rpc('<edit-config><target><running/></target><config><nacm xmlns="urn:ietf:params:xml:ns:yang:'
                        'ietf-netconf-acm"><groups><group><name>root-system</name><user-name>mallory</user-name>'
                        "</group></groups></nacm></config></edit-config>")
        assert rpc_error_fields(reply)[1] == DENIED
        # 5. an SSH key for admin: refused as an RPC (no group, operator), or, for pki-admin, which runs
        # the crypto RPCs, because binding a key to a login writes /aaa/user[admin] with its own rights
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        reply = raw.rpc(f'<key-import-authentication-rsa xmlns="{CRYPTO}"><label>evil</label>'
                        f"<public-key>{line.decode()}</public-key><user>admin</user></key-import-authentication-rsa>")
        if group == "pki-admin":
            assert rpc_error_fields(reply) == (
                "application", DENIED, "/sys:aaa/sys:user[sys:name='admin']/sys:authorized-key[.='evil']")
        else:
            assert rpc_error_fields(reply) == ("protocol", DENIED, "/nc:rpc/crypto:key-import-authentication-rsa")
        with pytest.raises(paramiko.AuthenticationException):
            login_with_key(agent.port, "admin", key)
        if group == "pki-admin":  # its own login: allowed, and the key then works
            reply = raw.rpc(f'<key-import-authentication-rsa xmlns="{CRYPTO}"><label>mine</label>'
                            f"<public-key>{line.decode()}</public-key></key-import-authentication-rsa>")
            assert "<rpc-error>" not in reply, reply
            login_with_key(agent.port, "mallory", key)
        else:            # 6. zeroize every key, the SSH host key included (pki-admin may: that is its task group)
            for body in ("", "<label>the_default</label>"):
                reply = raw.rpc(f'<key-zeroize-rsa xmlns="{CRYPTO}">{body}</key-zeroize-rsa>')
                assert rpc_error_fields(reply) == ("protocol", DENIED, "/nc:rpc/crypto:key-zeroize-rsa")
    finally:
        raw.close()
    agent.stop()
    agent.start()
    assert host_key_of(agent.port, "admin", ADMIN_PASSWORD) == host_key
    with agent.connect() as m:
        running = config_of(m)
        assert [u.text for u in running.iterfind("s:aaa/s:user/s:name", NS)] == ["admin", "mallory"]
        labels = [k.text for k in m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><key/></crypto>'))
                  .data_ele.iterfind("c:crypto/c:key/c:rsa/c:label", NS)]
        assert "the_default" in labels
    assert "owned" not in (agent.data_dir / "running.xml").read_text()


def test_clear_text_passwords_are_stored_hashed_everywhere(agent: AgentProcess) -> None:
    raw = RawSession.open(agent.port, "admin", ADMIN_PASSWORD)
    try:
        user = f'<aaa xmlns="{SYS}"><user><name>%s</name><password-hash>$0$%s</password-hash></user></aaa>'
        for target, name in (("running", "alice"), ("candidate", "bob")):
            reply = raw.rpc(f"<edit-config><target><{target}/></target><config>{user % (name, name + '-clear')}"
                            f"</config></edit-config>")
            assert reply.find("nc:ok", NS) is not None, etree.tostring(reply)
        candidate = raw.send(f'<rpc message-id="2" xmlns="{NC}"><get-config><source><candidate/></source></get-config></rpc>')
        assert "bob-clear" not in candidate and "$0$" not in candidate and candidate.count("$scrypt$n=16384,r=8,p=1$") == 3
        assert raw.rpc("<commit/>").find("nc:ok", NS) is not None
        reply = raw.rpc("<copy-config><target><candidate/></target><source><config>"
                        f"{user % ('admin', 'admin-new')}</config></source></copy-config>")
        assert reply.find("nc:ok", NS) is not None, etree.tostring(reply)
        assert raw.rpc("<discard-changes/>").find("nc:ok", NS) is not None
    finally:
        raw.close()
    text = (agent.data_dir / "running.xml").read_text()
    assert "alice-clear" not in text and "bob-clear" not in text and "$0$" not in text
    agent.connect(username="alice", password="alice-clear").close_session()
    agent.connect(username="bob", password="bob-clear").close_session()


@pytest.mark.parametrize(
    "value",
    [
        # the agent's format with other scrypt parameters (p=200 made each login take seconds)
        "$scrypt$n=16384,r=8,p=200$" + "A" * 22 + "==$" + "B" * 43 + "=",
        "$scrypt$n=2,r=1,p=1$" + "A" * 22 + "==$" + "B" * 43 + "=",
        "$scrypt$n=16384,r=8,p=1$short$hash",
        "$6$salt$0123456789",  # another crypt scheme
        "$0$",  # an empty clear-text password
    ],
)
def test_foreign_hashes_are_refused(agent: AgentProcess, value: str) -> None:
    with agent.connect() as m:
        for target in ("running", "candidate"):
            error = error_of(lambda target=target: m.edit_config(target=target, config=(
                f'<config xmlns="{NC}"><aaa xmlns="{SYS}"><user><name>slow</name>'
                f"<password-hash>{value}</password-hash></user></aaa></config>")))
            assert error.tag == "invalid-value", error.message
            assert "password" in error.message
        assert config_of(m).find("s:aaa/s:user[s:name='slow']", NS) is None
