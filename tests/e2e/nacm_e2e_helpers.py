"""Helpers of the access-control end-to-end tests: users and groups made by admin, outcomes, raw SSH."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import paramiko
from lxml import etree
from ncclient import manager
from ncclient.operations import RPCError

from agentproc import AgentProcess

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:ca-agent:yang:system"
CRYPTO = "urn:ca-agent:yang:crypto"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NS = {"s": SYS, "c": CRYPTO, "n": NACM, "ncm": NCM, "nc": NC}

OK = "ok"
DENIED = "access-denied"


def users_config(users: dict[str, tuple[str, str | None]], rule_lists: str = "") -> str:
    """An edit-config <config> creating users ($0$ clear-text passwords) and their group memberships."""
    entries = "".join(f"<user><name>{n}</name><password-hash>$0${pw}</password-hash></user>" for n, (pw, _) in users.items())
    groups = "".join(
        f"<group><name>{group}</name><user-name>{n}</user-name></group>" for n, (_, group) in users.items() if group
    )
    return (
        f'<config xmlns="{NC}"><aaa xmlns="{SYS}">{entries}</aaa>'
        f'<nacm xmlns="{NACM}"><groups>{groups}</groups>{rule_lists}</nacm></config>'
    )


def add_users(agent: AgentProcess, users: dict[str, tuple[str, str | None]], rule_lists: str = "") -> None:
    """admin (root-system) creates the users on running."""
    with agent.connect() as m:
        m.edit_config(target="running", config=users_config(users, rule_lists))


def outcome(call: Callable[[], object]) -> str:
    """``ok``, or the error-tag of the rpc-error the call got."""
    try:
        call()
    except RPCError as error:
        return str(error.tag)
    return OK


def error_of(call: Callable[[], object]) -> RPCError:
    try:
        call()
    except RPCError as error:
        return error
    raise AssertionError("the operation was expected to fail")


def crypto_rpc(m: manager.Manager, name: str, body: str = "") -> etree._Element:
    reply = m.dispatch(etree.fromstring(f'<{name} xmlns="{CRYPTO}">{body}</{name}>'))
    return etree.fromstring(reply.xml.encode())


def config_of(m: manager.Manager, source: str = "running") -> etree._Element:
    return m.get_config(source=source).data_ele


@dataclass
class RawSession:
    """A NETCONF session over paramiko, base:1.0 framing: exact bytes in, exact bytes out."""

    client: paramiko.SSHClient
    channel: paramiko.Channel

    @classmethod
    def open(cls, port: int, username: str, password: str) -> RawSession:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect("127.0.0.1", port=port, username=username, password=password, allow_agent=False,
                       look_for_keys=False)
        transport = client.get_transport()
        assert transport is not None
        channel = transport.open_session()
        channel.invoke_subsystem("netconf")
        session = cls(client, channel)
        session.send(f'<hello xmlns="{NC}"><capabilities><capability>urn:ietf:params:netconf:base:1.0'
                     f"</capability></capabilities></hello>")
        return session

    def send(self, message: str) -> str:
        """Send one message; return the next message received."""
        self.channel.sendall(message.encode() + b"]]>]]>")
        data = b""
        self.channel.settimeout(30)
        while b"]]>]]>" not in data:
            chunk = self.channel.recv(65536)
            if not chunk:
                raise EOFError(data)
            data += chunk
        return data.split(b"]]>]]>")[0].decode()

    def rpc(self, body: str, message_id: str = "1") -> etree._Element:
        """One <rpc> with ``body``; returns the parsed <rpc-reply>."""
        return etree.fromstring(self.send(f'<rpc message-id="{message_id}" xmlns="{NC}">{body}</rpc>').encode())

    def close(self) -> None:
        self.client.close()


def rpc_error_fields(reply: etree._Element) -> tuple[str | None, str | None, str | None]:
    """(error-type, error-tag, error-path) of the first rpc-error of a reply."""
    error = reply.find("nc:rpc-error", NS)
    assert error is not None, etree.tostring(reply)
    path = error.findtext("nc:error-path", namespaces=NS)
    return (error.findtext("nc:error-type", namespaces=NS), error.findtext("nc:error-tag", namespaces=NS),
            path.strip() if path else None)
