"""The composition root: builds the layers of one agent and wires them together.

Only this module knows every layer; each layer knows only the ones below it
(see docs/DESIGN.md).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import paramiko
from lxml import etree

from agent.datastore.edit import new_root
from agent.datastore.store import Datastores, Target
from agent.files import atomic_write, ensure_private_dir
from agent.netconf.dispatch import NetconfAgent
from agent.netconf.monitoring import Monitoring
from agent.netconf.operations import BaseOperations
from agent.netconf.server import NetconfServer
from agent.netconf.yang import YangSupport
from agent.passwords import hash_password, random_password
from agent.pki.certstore import CertificateStore
from agent.pki.enrollment import Pki
from agent.pki.keystore import KeyStore
from agent.schema.model import SchemaModel
from agent.services.accounts import Accounts
from agent.services.keys import KeyService
from agent.services.system import SYS_NS, SystemIdentity
from agent.services.trustpoints import TrustpointService
from agent.xmltree import default_ns

log = logging.getLogger(__name__)

ADMIN_USER = "admin"
ADMIN_PASSWORD_FILE = "admin-password"


@dataclass
class AgentConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8830
    retry_period_unit: float = 60.0  # seconds in one 'enrollment retry period' unit


class Application:
    """One running agent: datastores, backend, NETCONF server."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        data_dir = ensure_private_dir(config.data_dir)
        self.keystore = KeyStore(data_dir / "keys")
        host_info = self.keystore.ensure_default()
        log.info("SSH host key: RSA %d-bit key pair %r", host_info.size, host_info.label)
        self.schema = SchemaModel.load()
        self.yang = YangSupport(self.schema)
        initial = None if (data_dir / "running.xml").exists() else self._first_config(data_dir)
        self.datastores = Datastores(data_dir, self.yang, self.yang, self.yang.validate, initial)
        self.identity = SystemIdentity(lambda: self.datastores.get(Target.RUNNING))
        self.agent = NetconfAgent(self.datastores, self.yang)
        BaseOperations(self.agent)
        Monitoring(self.agent, self.schema).register()
        certstore = CertificateStore(data_dir / "trustpoints")
        self.pki = Pki(
            data_dir, self.keystore, certstore, lambda: self.identity.fqdn, retry_unit_seconds=config.retry_period_unit
        )
        self.keys = KeyService(self.keystore, lambda: self.identity.fqdn, self.pki)
        self.keys.register(self.agent, self.schema)
        TrustpointService(self.pki, lambda: self.datastores.get(Target.RUNNING)).register(self.agent, self.schema)
        accounts = Accounts(lambda: self.datastores.get(Target.RUNNING), self.keystore)
        host_key = paramiko.RSAKey(key=self.keystore.ssh_host_key())
        self.server = NetconfServer(self.agent, accounts, host_key, config.host, config.port)

    @property
    def port(self) -> int:
        return int(self.server.port)

    def _first_config(self, data_dir: Path) -> etree._Element:
        """The configuration of a first start: user admin with a hashed password."""
        password = os.environ.get("CA_AGENT_ADMIN_PASSWORD")
        if not password:
            password = random_password()
            atomic_write(data_dir / ADMIN_PASSWORD_FILE, (password + "\n").encode(), mode=0o600)
            # Printed once, on the console of the person who started the agent.
            print(f"ca-agent: first start, user {ADMIN_USER!r} password: {password}", file=sys.stderr, flush=True)
            print(f"ca-agent: (also written to {data_dir / ADMIN_PASSWORD_FILE})", file=sys.stderr, flush=True)
        root = new_root()
        aaa = etree.SubElement(root, f"{{{SYS_NS}}}aaa", nsmap=default_ns(SYS_NS))
        user = etree.SubElement(aaa, f"{{{SYS_NS}}}user")
        etree.SubElement(user, f"{{{SYS_NS}}}name").text = ADMIN_USER
        etree.SubElement(user, f"{{{SYS_NS}}}password-hash").text = hash_password(password)
        return root

    def stop(self) -> None:
        """Close every session and stop listening."""
        self.server.shutdown()
        self.pki.close()
