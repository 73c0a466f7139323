"""Who may open a NETCONF session: users of the running config, keys of the keystore."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives import serialization
from lxml import etree

from agent.errors import SchemaError
from agent.passwords import stored_form, verify_password
from agent.pki.keystore import KeyStore

SYS_NS = "urn:ca-agent:yang:system"
PASSWORD_HASH_TAG = f"{{{SYS_NS}}}password-hash"
log = logging.getLogger(__name__)


def password_input(value: str) -> str:
    """The input converter of /aaa/user/password-hash: ``$0$<password>`` becomes its hash.

    Any other value passes unchanged (YANG validation accepts only the
    agent's own hash format). Raises SchemaError invalid-value for an empty
    clear-text password.
    """
    try:
        return stored_form(value.strip())
    except ValueError as error:
        raise SchemaError(
            f"invalid password: {error}", error_tag="invalid-value", info={"bad-element": "password-hash"}
        ) from None


class Accounts:
    """The Authenticator of the NETCONF layer (agent/netconf/auth.py)."""

    def __init__(self, running: Callable[[], etree._Element], keystore: KeyStore) -> None:
        self._running = running
        self._keystore = keystore

    def _user(self, username: str) -> etree._Element | None:
        for user in self._running().iterfind(f"{{{SYS_NS}}}aaa/{{{SYS_NS}}}user"):
            if user.findtext(f"{{{SYS_NS}}}name") == username:
                return user
        return None

    def check_password(self, username: str, password: str) -> bool:
        # An unknown user costs the same scrypt as a known one (verify_password
        # hashes even without a stored hash): names cannot be probed by timing.
        user = self._user(username)
        stored = user.findtext(f"{{{SYS_NS}}}password-hash") if user is not None else None
        return verify_password(password, stored)

    def authorized_keys(self, username: str) -> Sequence[bytes]:
        """The keys ``username`` may log in with: imported for that user *and* bound to the user in
        ``/aaa/user[name]/authorized-key`` (so writing /aaa is what grants a login)."""
        user = self._user(username)
        if user is None:
            return []
        bound = {element.text or "" for element in user.iterfind(f"{{{SYS_NS}}}authorized-key")}
        blobs = []
        for key in self._keystore.authorized_keys(username, labels=bound):
            line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            blobs.append(base64.b64decode(line.split()[1]))
        return blobs
