"""SSH authentication for NETCONF sessions (paramiko's server interface).

The NETCONF layer knows nothing of where users and keys come from: it asks an
:class:`Authenticator` supplied by the services layer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

import paramiko

log = logging.getLogger(__name__)


class Authenticator(Protocol):
    def check_password(self, username: str, password: str) -> bool:
        """True when ``password`` is the user's password."""
        ...

    def authorized_keys(self, username: str) -> Sequence[bytes]:
        """SSH wire-format public key blobs the user may log in with."""
        ...


class SshAuthController(paramiko.ServerInterface):
    """Password and public-key authentication; only the netconf subsystem."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator
        self.event = threading.Event()
        self.username: str | None = None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def check_auth_none(self, username: str) -> int:
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        if username and password and self.authenticator.check_password(username, password):
            self.username = username
            log.info("user %s authenticated by password", username)
            return paramiko.AUTH_SUCCESSFUL
        log.warning("password authentication failed for user %r", username)
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        blob = key.asbytes()
        if any(blob == allowed for allowed in self.authenticator.authorized_keys(username)):
            self.username = username
            log.info("user %s authenticated by public key", username)
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        self.event.set()
        return name == "netconf"
