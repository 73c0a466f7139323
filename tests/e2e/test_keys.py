"""Issue 3 end to end: RSA key pairs over NETCONF (generate, zeroize, import, show)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from ncclient.operations import RPCError
from ncclient.transport.errors import AuthenticationError

from agentproc import AgentProcess

CRYPTO = "urn:ca-agent:yang:crypto"
SYS = "urn:ca-agent:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = {"c": CRYPTO, "s": SYS}


def rpc(m, name: str, body: str = "") -> etree._Element:
    reply = m.dispatch(etree.fromstring(f'<{name} xmlns="{CRYPTO}">{body}</{name}>'))
    return etree.fromstring(reply.xml.encode())


def rpc_error(m, name: str, body: str = "") -> RPCError:
    with pytest.raises(RPCError) as failure:
        rpc(m, name, body)
    return failure.value


def key_state(m) -> etree._Element:
    data = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><key/></crypto>')).data_ele
    return data.find("c:crypto/c:key", NS)


def rsa_entry(m, label: str) -> etree._Element | None:
    for entry in key_state(m).findall("c:rsa", NS):
        if entry.findtext("c:label", namespaces=NS) == label:
            return entry
    return None


def stored_public_keys(data_dir: Path, label: str) -> dict[str, str]:
    """SPKI DER hex of each private key stored for ``label`` (read from keys/ on disk)."""
    record = json.loads((data_dir / "keys" / f"{label}.rsa.json").read_text())
    out = {}
    for usage, pem in record["keys"].items():
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        out[usage] = der.hex().upper()
    return out


def test_generate_show_replace_zeroize(agent: AgentProcess) -> None:
    with agent.connect() as m:
        out = rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        assert out.findtext("c:label", namespaces=NS) == "mykey"
        assert out.findtext("c:type", namespaces=NS) == "general-purpose"
        assert out.findtext("c:size", namespaces=NS) == "1024"
        entry = rsa_entry(m, "mykey")
        assert entry.findtext("c:type", namespaces=NS) == "general-purpose"
        assert entry.findtext("c:size", namespaces=NS) == "1024"
        assert entry.findtext("c:created", namespaces=NS).endswith("Z")
        pairs = {p.findtext("c:usage", namespaces=NS): p.findtext("c:public-key", namespaces=NS) for p in entry.findall("c:key-pair", NS)}
        assert pairs == {"general-purpose": stored_public_keys(agent.data_dir, "mykey")["general"]}
        assert pairs["general-purpose"].startswith("30819F300D06092A864886F70D010101")  # like the seed's Data block

        refused = rpc_error(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>")
        assert refused.tag == "data-exists"
        assert "You already have keys defined for mykey" in refused.message

        old = pairs["general-purpose"]
        rpc(m, "key-generate-rsa", "<label>mykey</label><usage-keys/><modulus>1024</modulus><replace>true</replace>")
        entry = rsa_entry(m, "mykey")
        assert entry.findtext("c:type", namespaces=NS) == "usage-keys"
        pairs = {p.findtext("c:usage", namespaces=NS): p.findtext("c:public-key", namespaces=NS) for p in entry.findall("c:key-pair", NS)}
        assert set(pairs) == {"signature", "encryption"} and old not in pairs.values()
        stored = stored_public_keys(agent.data_dir, "mykey")
        assert pairs == {"signature": stored["signature"], "encryption": stored["encryption"]}

        rpc(m, "key-generate-rsa", "<label>other</label><modulus>1024</modulus>")
        zeroized = rpc(m, "key-zeroize-rsa", "<label>mykey</label>")
        assert zeroized.xpath("//c:zeroized/text()", namespaces=NS) == ["mykey"]
        assert rsa_entry(m, "mykey") is None and rsa_entry(m, "other") is not None
        assert not (agent.data_dir / "keys" / "mykey.rsa.json").exists()
        assert rpc_error(m, "key-zeroize-rsa", "<label>mykey</label>").tag == "data-missing"
        everything = rpc(m, "key-zeroize-rsa")
        assert set(everything.xpath("//c:zeroized/text()", namespaces=NS)) == {"other", "the_default"}
        assert key_state(m).findall("c:rsa", NS) == []


@pytest.mark.parametrize("modulus", ["512", "8192", "0"])
def test_modulus_out_of_range(agent: AgentProcess, modulus: str) -> None:
    with agent.connect() as m:
        error = rpc_error(m, "key-generate-rsa", f"<label>k</label><modulus>{modulus}</modulus>")
        assert error.tag == "invalid-value"
        assert error.message == "The key modulus is 1024 to 4096 bits."  # the YANG range's error-message
        assert error.path.strip() == "/crypto:key-generate-rsa/crypto:modulus"


def test_default_label_is_the_fqdn(agent: AgentProcess) -> None:
    with agent.connect() as m:
        m.edit_config(
            target="running",
            config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">myrouter</hostname>'
            f'<domain xmlns="{SYS}"><name>mydomain.com</name></domain></config>',
        )
        out = rpc(m, "key-generate-rsa", "<modulus>1024</modulus>")
        assert out.findtext("c:label", namespaces=NS) == "myrouter.mydomain.com"
        assert rsa_entry(m, "myrouter.mydomain.com") is not None


def _openssh_line(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _write_private(key: rsa.RSAPrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    )
    path.chmod(0o600)
    return path


def test_import_authentication_key_then_login_with_it(agent: AgentProcess, tmp_path: Path) -> None:
    user_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with agent.connect() as m:
        out = rpc(m, "key-import-authentication-rsa", f"<label>adminkey</label><public-key>{_openssh_line(user_key)}</public-key>")
        assert out.findtext("c:user", namespaces=NS) == "admin"  # the calling user by default
        assert out.findtext("c:size", namespaces=NS) == "2048"
        auth = key_state(m).find("c:authentication/c:rsa", NS)
        assert auth.findtext("c:label", namespaces=NS) == "adminkey"
        spki = user_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert auth.findtext("c:public-key", namespaces=NS) == spki.hex().upper()
        # PEM works too, and a malformed key says what was wrong
        pem = stranger.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        rpc(m, "key-import-authentication-rsa", f"<label>pemkey</label><public-key>{pem}</public-key><user>nobody</user>")
        bad = rpc_error(m, "key-import-authentication-rsa", "<label>bad</label><public-key>not a key at all</public-key>")
        assert bad.tag == "invalid-value" and bad.message
    good_file = _write_private(user_key, tmp_path / "id_rsa")
    with agent.connect(password=None, key_filename=str(good_file)) as m:
        assert m.session_id
    bad_file = _write_private(rsa.generate_private_key(public_exponent=65537, key_size=2048), tmp_path / "other")
    with pytest.raises(AuthenticationError):
        agent.connect(password=None, key_filename=str(bad_file))
    # 'stranger' was imported for user nobody, who is not a configured user: no login
    with pytest.raises(AuthenticationError):
        agent.connect(username="nobody", password=None, key_filename=str(_write_private(stranger, tmp_path / "s")))


def test_state_survives_restart_and_private_keys_never_leave_keys_dir(agent_factory) -> None:
    proc = agent_factory().start()
    replies: list[str] = []
    with proc.connect() as m:
        replies.append(rpc(m, "key-generate-rsa", "<label>mykey</label><modulus>1024</modulus>").xpath("string(.)"))
        replies.append(etree.tostring(rpc(m, "key-generate-rsa", "<label>uk</label><usage-keys/><modulus>1024</modulus>")).decode())
        replies.append(m.get().xml)
        replies.append(m.get_config("running").xml)
        replies.append(m.get_config("candidate").xml)
        before = etree.tostring(key_state(m)).decode()
    proc.stop()
    proc.start()
    with proc.connect() as m:
        after = etree.tostring(key_state(m)).decode()
        replies.append(m.get().xml)
        session_id = m.session_id
    assert before == after
    keys_dir = proc.data_dir / "keys"
    assert stat.S_IMODE(os.stat(keys_dir).st_mode) == 0o700
    secrets_found: list[str] = []
    for key_file in keys_dir.glob("*.rsa.json"):
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        for pem in json.loads(key_file.read_text())["keys"].values():
            key = serialization.load_pem_private_key(pem.encode(), password=None)
            der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            d_hex = format(key.private_numbers().d, "X")
            p_hex = format(key.private_numbers().p, "X")
            body_lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
            secrets_found.extend(
                [d_hex, d_hex.lower(), p_hex, p_hex.lower(), der.hex(), der.hex().upper(), base64.b64encode(der).decode()]
            )
            secrets_found.extend(body_lines[2:-1])  # full 64-char lines of the private PEM body
    haystacks = replies + [proc.log_until(f"session {session_id} closed")]  # the log up to the session's end
    for path in proc.data_dir.rglob("*"):
        if path.is_file() and keys_dir not in path.parents:
            haystacks.append(path.read_bytes().decode("utf-8", "replace"))
    for secret in secrets_found:
        assert all(secret not in hay for hay in haystacks)


def ssh_host_key(port: int) -> paramiko.PKey:
    """The host key the agent presents to a new SSH connection (key exchange only, no login)."""
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.start_client(timeout=30)
        return transport.get_remote_server_key()
    finally:
        transport.close()


def test_replacing_default_key_changes_host_key_at_next_start(agent_factory) -> None:
    proc = agent_factory().start()
    old_host_key = ssh_host_key(proc.port).asbytes()
    with proc.connect() as m:
        rpc(m, "key-generate-rsa", "<label>the_default</label><modulus>2048</modulus><replace>true</replace>")
    assert ssh_host_key(proc.port).asbytes() == old_host_key  # until the next start
    proc.log_until("SSH host key changes at the next start")
    proc.stop()
    proc.start()
    new_host_key = ssh_host_key(proc.port)
    assert new_host_key.asbytes() != old_host_key
    stored = stored_public_keys(proc.data_dir, "the_default")["general"]
    assert isinstance(new_host_key, paramiko.RSAKey)
    numbers = new_host_key.public_numbers
    rebuilt = rsa.RSAPublicNumbers(numbers.e, numbers.n).public_key()
    der = rebuilt.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert der.hex().upper() == stored
