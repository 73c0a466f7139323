"""The composition root: builds the layers of one agent and wires them together.

Only this module knows every layer; each layer knows only the ones below it
(see docs/DESIGN.md).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from lxml import etree

from agent.datastore.edit import ChangeSet, new_root
from agent.datastore.store import DEFAULT_MAX_SIZE, Datastores, Target
from agent.files import atomic_write, ensure_private_dir
from agent.netconf.base_notifications import BaseNotifications
from agent.netconf.budget import DEFAULT_XPATH_BUDGET
from agent.netconf.dispatch import NetconfAgent
from agent.netconf.history import CommitHistoryService
from agent.netconf.monitoring import Monitoring
from agent.netconf.nacm import AccessControl
from agent.netconf.nacm_rules import NACM_NS
from agent.netconf.nmda import NmdaOperations
from agent.netconf.notifications import Notifications
from agent.netconf.operations import BaseOperations
from agent.netconf.ssh import NetconfSshServer, ServerLimits
from agent.netconf.yang import YangSupport
from agent.passwords import hash_password, random_password
from agent.pki.certstore import CertificateStore
from agent.pki.enrollment import Pki
from agent.pki.events import PkiEvent
from agent.pki.keystore import KeyStore
from agent.pki.revocation import CrlManager
from agent.pki.trustpool import BundleUpdater, TrustPool
from agent.pki.verify import PeerVerifier
from agent.runlock import RunLock
from agent.schema.model import SchemaModel
from agent.services.accounts import PASSWORD_HASH_TAG, Accounts, password_input
from agent.services.alerts import AlertService
from agent.services.keys import KeyService
from agent.services.notifications import notification_element
from agent.services.system import SystemIdentity
from agent.services.taskgroups import ADMIN_USER, admin_account, default_access_config
from agent.services.trust import TrustService
from agent.services.trustpoints import TRUSTPOINT_TAGS, TrustpointService
from agent.services.yangio import CRYPTO_NS

log = logging.getLogger(__name__)

ADMIN_PASSWORD_FILE = "admin-password"


@dataclass
class AgentConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8830
    retry_period_unit: float = 60.0  # seconds in one 'enrollment retry period' unit
    limits: ServerLimits = field(default_factory=ServerLimits)
    crl_timeout: float = 10.0  # seconds per CRL fetch (LDAP or HTTP) before the next source is tried
    cabundle_refresh_seconds: float = 86400.0  # how often 'cabundle url' is imported again
    replay_log_size: int = 1000  # notifications kept for RFC 5277 replay (and at most 4 MiB)
    filter_budget: float = DEFAULT_XPATH_BUDGET  # CPU seconds one <filter> may use
    max_datastore_size: int | None = DEFAULT_MAX_SIZE  # bytes of running.xml (and the candidate); None: none


class Application:
    """One running agent: datastores, backend, NETCONF server."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        data_dir = ensure_private_dir(config.data_dir)
        self.run_lock = RunLock.acquire(data_dir)  # one agent (or recover-admin) per data directory
        self.keystore = KeyStore(data_dir / "keys")
        host_info = self.keystore.ensure_default()
        log.info("SSH host key: RSA %d-bit key pair %r", host_info.size, host_info.label)
        self.schema = SchemaModel.load()
        self.yang = YangSupport(self.schema)
        initial = None if Datastores.has_configuration(data_dir) else self._first_config(data_dir)
        # RFC 8341 access control, fed by running; it also refuses unreadable rule paths at commit.
        self.access = AccessControl(self.yang, lambda: self.datastores.get(Target.RUNNING))

        def validate(
            root: etree._Element, *, full: bool, base: etree._Element | None = None, changes: ChangeSet = None
        ) -> bool:
            self.access.check_config(root)
            return self.yang.validate(root, full=full, base=base, changes=changes)

        self.datastores = Datastores(data_dir, self.yang, self.yang, validate, initial,
                                     max_size=config.max_datastore_size)
        # After each commit's reply (listeners run then): free the validated trees no longer a base.
        self.datastores.add_event_listener(lambda _event: self.yang.release_old_bases())
        self.identity = SystemIdentity(lambda: self.datastores.get(Target.RUNNING))
        self.agent = NetconfAgent(self.datastores, self.yang)
        self.agent.access = self.access
        self.agent.add_state_provider(self.access.state, produces=[f"{{{NACM_NS}}}nacm"])
        self.agent.add_input_converter(PASSWORD_HASH_TAG, password_input)
        base = BaseOperations(self.agent, self.schema, config.filter_budget)
        base.scoped_lists.append((TRUSTPOINT_TAGS, f"{{{CRYPTO_NS}}}name"))  # a <get> of one trustpoint
        NmdaOperations(self.agent, base, self.schema)
        Monitoring(self.agent, self.schema).register()
        CommitHistoryService(self.agent, self.schema).register()
        certstore = CertificateStore(data_dir / "trustpoints")
        self.pki = Pki(data_dir, self.keystore, certstore, retry_unit_seconds=config.retry_period_unit)
        self.keys = KeyService(self.keystore, lambda: self.identity.fqdn, self.pki)
        self.keys.register(self.agent, self.schema)
        crls = CrlManager(data_dir / "crls", timeout=config.crl_timeout)
        pool = TrustPool(data_dir / "trustpool")
        self.trust = TrustService(
            certstore,
            crls,
            pool,
            BundleUpdater(pool, interval=config.cabundle_refresh_seconds),
            PeerVerifier(crls),
            lambda: self.datastores.get(Target.RUNNING),
        )
        TrustpointService(
            self.pki,
            lambda: self.datastores.get(Target.RUNNING),
            revocation=self.trust.revocation_of,
            fqdn=lambda: self.identity.fqdn,
        ).register(self.agent, self.schema)
        self.trust.register(self.agent, self.schema)
        self.alerts = AlertService(
            pki=self.pki,
            certstore=certstore,
            data_dir=data_dir,
            running=lambda: self.datastores.get(Target.RUNNING),
            hostname=lambda: self.identity.fqdn,
        )
        self.alerts.register(self.agent)
        self.keys.add_change_listener(self.alerts.key_pairs_changed)
        self._wire_notifications(data_dir)
        accounts = Accounts(lambda: self.datastores.get(Target.RUNNING), self.keystore)
        host_key = paramiko.RSAKey(key=self.keystore.ssh_host_key())
        self.server = NetconfSshServer(self.agent, accounts, host_key, config.host, config.port, config.limits)

    def _wire_notifications(self, data_dir: Path) -> None:
        """RFC 5277 stream and replay log; RFC 6470 events; the PKI events of the alert bus (issue 14)."""
        self.notifications = Notifications(self.agent, data_dir / "notifications",
                                           max_entries=self.config.replay_log_size)
        self.notifications.register(streams_modelled=self.schema.module("nc-notifications") is not None)

        def pki_notification(event: PkiEvent) -> None:
            element = notification_element(event)
            if element is not None:
                self.notifications.publish(element, event.time)

        self.alerts.bus.subscribe(pki_notification)
        self.trust.add_event_sink(self.alerts.bus.publish)  # certificate-revoked from fetched CRLs
        # Last: it compares the capabilities (complete only now) with the previous run's.
        BaseNotifications(self.agent, self.notifications, data_dir / "notifications").register()

    @property
    def port(self) -> int:
        return int(self.server.port)

    def _first_config(self, data_dir: Path) -> etree._Element:
        """The configuration of a first start: user admin with a hashed password, the task groups."""
        password = os.environ.get("CA_AGENT_ADMIN_PASSWORD")
        if not password:
            password = random_password()
            atomic_write(data_dir / ADMIN_PASSWORD_FILE, (password + "\n").encode(), mode=0o600)
            # Printed once, on the console of the person who started the agent.
            print(f"ca-agent: first start, user {ADMIN_USER!r} password: {password}", file=sys.stderr, flush=True)
            print(f"ca-agent: (also written to {data_dir / ADMIN_PASSWORD_FILE})", file=sys.stderr, flush=True)
        root = new_root()
        root.append(admin_account(hash_password(password)))
        root.append(default_access_config(ADMIN_USER))
        return root

    def stop(self) -> None:
        """Close every session and stop listening."""
        self.server.shutdown()
        self.datastores.close()
        self.alerts.close()
        self.pki.close()
        self.trust.close()
        self.notifications.close()
        self.run_lock.release()
