"""The CLI's only way to the agent: NETCONF over SSH with ncclient.

Every operation the CLI performs is one of the calls below, so anything the
CLI does a script can do with plain ncclient. ncclient's exceptions are
translated here, in one place: an ``<rpc-error>`` becomes :class:`CliError`
(printed as ``% message``), a broken session :class:`ConnectionLost`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import paramiko
from lxml import etree
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.operations.errors import TimeoutExpiredError
from ncclient.transport import session as nc_session
from ncclient.transport.errors import AuthenticationError, SSHUnknownHostError, TransportError

from agent.cli.render import CRYPTO_NS, DEFAULT_HOSTNAME, SYS_NS

__all__ = [
    "AgentClient",
    "CliError",
    "ConnectionLost",
    "NC_NS",
    "NOT_AUTHORIZED",
    "edit_config_element",
    "commit_element",
    "known_host_key",
    "rpc_element",
]

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"

# What the router prints when the user's task groups lack the command's task ID (RFC 8341 access-denied here).
NOT_AUTHORIZED = "This command is not authorized"

# ncclient waits up to TICK seconds before sending each request; 0.1 s is felt at a prompt.
nc_session.TICK = 0.01

T = TypeVar("T")


class CliError(Exception):
    """A failed command; ``message`` is printed after ``% ``.

    ``tag`` is the rpc-error's error-tag and ``info`` its error-info (XML text), when the agent refused.
    """

    def __init__(self, message: str, tag: str | None = None, info: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tag = tag
        self.info = info

    @property
    def holder_session(self) -> int | None:
        """The session-id in the error-info of a lock-denied error (0: no session holds it), else None."""
        match = _SESSION_ID.search(self.info or "")
        return int(match.group(1)) if match else None


_SESSION_ID = re.compile(r"<(?:\w+:)?session-id>\s*(\d+)\s*<")


class ConnectionLost(Exception):
    """The NETCONF session could not be opened or is gone."""


def _default_ns(namespace: str) -> Any:
    """An nsmap making ``namespace`` the default one (typed Any: lxml-stubs reject a None key)."""
    return {None: namespace}


def rpc_element(name: str, leaves: Sequence[tuple[str, str | None]]) -> etree._Element:
    """``<name xmlns=crypto><leaf>value</leaf>...</name>``; a None value makes an empty leaf. Raises nothing."""
    root = etree.Element(f"{{{CRYPTO_NS}}}{name}", nsmap=_default_ns(CRYPTO_NS))
    for leaf, value in leaves:
        child = etree.SubElement(root, f"{{{CRYPTO_NS}}}{leaf}")
        if value is not None:
            child.text = value
    return root


def edit_config_element(
    namespace: str,
    path: Sequence[str | tuple[str, str, str]],
    value: str | None = None,
    operation: str | None = None,
) -> etree._Element:
    """An edit-config ``<config>`` changing one node.

    ``path`` names the nodes from the top; a ``(list, key, value)`` step
    selects a list entry. The last node gets ``value`` as text (None: no text,
    e.g. an empty leaf or a container) and ``nc:operation`` if given.
    Raises nothing.
    """
    config = etree.Element(f"{{{NC_NS}}}config", nsmap={"nc": NC_NS})
    parent = config
    node = config
    for index, step in enumerate(path):
        if isinstance(step, tuple):
            name, key, key_value = step
            node = etree.SubElement(parent, f"{{{namespace}}}{name}", nsmap=_default_ns(namespace) if index == 0 else None)
            etree.SubElement(node, f"{{{namespace}}}{key}").text = key_value
        else:
            node = etree.SubElement(parent, f"{{{namespace}}}{step}", nsmap=_default_ns(namespace) if index == 0 else None)
        parent = node
    if value is not None:
        node.text = value
    if operation is not None:
        node.set(f"{{{NC_NS}}}operation", operation)
    return config


def commit_element(label: str | None = None, comment: str | None = None) -> etree._Element:
    """``<commit>`` carrying IOS XR's ``commit label L comment C`` (ca-agent-system's augment of its input).

    Raises nothing.
    """
    commit = etree.Element(f"{{{NC_NS}}}commit", nsmap=_default_ns(NC_NS))
    for leaf, value in (("label", label), ("comment", comment)):
        if value is not None:
            etree.SubElement(commit, f"{{{SYS_NS}}}{leaf}", nsmap=_default_ns(SYS_NS)).text = value
    return commit


_HOSTNAME_FILTER = f'<hostname xmlns="{SYS_NS}"/>'
_LOCKED_TAGS = ("in-use", "lock-denied")

_STATE_FILTERS = {
    "key": f'<crypto xmlns="{CRYPTO_NS}"><key/></crypto>',
    "ca": f'<crypto xmlns="{CRYPTO_NS}"><ca/></crypto>',
    "logging": f'<logging xmlns="{SYS_NS}"/>',
    "history": f'<commit-history xmlns="{SYS_NS}"/>',
}


def known_host_key(path: Path, host: str, port: int) -> paramiko.PKey:
    """The host key an OpenSSH known_hosts file lists for ``host`` or ``[host]:port`` (hashed entries too).

    Raises ConnectionLost if the file cannot be read or has no key for that host.
    """
    try:
        known = paramiko.HostKeys(str(path))
    except (OSError, paramiko.SSHException) as error:
        raise ConnectionLost(f"Cannot read {path}: {error}") from error
    for name in (f"[{host}]:{port}", host):
        entry = known.lookup(name)
        if entry:
            return next(iter(entry.values()))
    raise ConnectionLost(f"{path} has no host key for {host} port {port}")


class AgentClient:
    """One NETCONF session to the agent."""

    def __init__(self, session: manager.Manager, where: str, username: str) -> None:
        self._m = session
        self.where = where
        self.username = username

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        username: str,
        password: str | None,
        *,
        key_filename: str | None = None,
        known_hosts: Path | None = None,
        timeout: float = 120.0,
    ) -> AgentClient:
        """Open the session.

        Raises ConnectionLost (unreachable, host key refused, authentication failed).
        """
        params: dict[str, Any] = dict(
            host=host,
            port=port,
            username=username,
            password=password,
            key_filename=key_filename,
            allow_agent=False,
            look_for_keys=False,
            timeout=min(timeout, 30.0),
            hostkey_verify=known_hosts is not None,
        )
        if known_hosts is not None:
            # The agent must present exactly the key listed for it (ncclient compares the key itself).
            params["hostkey_b64"] = known_host_key(known_hosts, host, port).get_base64()
        where = f"{host} port {port}"
        try:
            session = manager.connect(**params)
        except AuthenticationError as error:
            raise ConnectionLost(f"Authentication failed for user {username}") from error
        except SSHUnknownHostError as error:
            raise ConnectionLost(f"Host key of {where} does not match {known_hosts}: refusing to connect") from error
        except (TransportError, OSError, EOFError, paramiko.SSHException) as error:
            raise ConnectionLost(f"Cannot connect to {where}: {error}") from error
        session.timeout = timeout
        return cls(session, where, username)

    def close(self) -> None:
        """Close the session (errors ignored: it may be gone already)."""
        try:
            if self._m.connected:
                self._m.close_session()
        except Exception:  # noqa: BLE001 - closing a dead session must not fail the exit
            pass

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the session is gone (closed by either side); True if it is. Raises nothing."""
        thread = getattr(self._m, "_session", None)  # ncclient runs each session in its own thread
        if not isinstance(thread, threading.Thread):
            return not self._m.connected
        thread.join(timeout)
        return not thread.is_alive()

    def _call(self, operation: Callable[[], T]) -> T:
        if not self._m.connected:
            raise ConnectionLost(f"Connection to {self.where} closed by foreign host")
        try:
            return operation()
        except RPCError as error:
            if error.tag == "access-denied":
                raise CliError(NOT_AUTHORIZED, error.tag) from error
            message = (error.message or error.tag or "The agent refused the operation").strip()
            raise CliError(message, error.tag, error.info) from error
        except TimeoutExpiredError as error:
            if not self._m.connected:
                raise ConnectionLost(f"Connection to {self.where} closed by foreign host") from error
            raise CliError(f"Timed out waiting for the agent ({error})") from error
        except (TransportError, OSError, EOFError, paramiko.SSHException) as error:
            raise ConnectionLost(f"Connection to {self.where} lost: {error}") from error

    def running(self) -> etree._Element:
        """<get-config source=running>; returns <data>. Raises CliError, ConnectionLost."""
        return self._call(lambda: self._m.get_config(source="running").data_ele)

    def state(self, part: str) -> etree._Element:
        """<get> of /crypto/key (``part="key"``), /crypto/ca (``"ca"``), /logging (``"logging"``) or
        /commit-history (``"history"``); returns <data>.

        Raises CliError, ConnectionLost.
        """
        subtree = _STATE_FILTERS[part]
        return self._call(lambda: self._m.get(filter=("subtree", subtree)).data_ele)

    def hostname(self) -> str:
        """The committed hostname (the YANG default when unset): one filtered <get-config>.

        Raises CliError, ConnectionLost.
        """
        data = self._call(lambda: self._m.get_config(source="running", filter=("subtree", _HOSTNAME_FILTER)).data_ele)
        return data.findtext(f"{{{SYS_NS}}}hostname") or DEFAULT_HOSTNAME

    def check_edit(self, config: etree._Element) -> bool:
        """Have the agent check an edit's values without applying it (<edit-config> test-only on the candidate).

        Returns False when it could not be checked because another session
        holds the candidate (the values are then checked at commit).
        Raises CliError (the agent refused a value), ConnectionLost.
        """
        try:
            self._call(lambda: self._m.edit_config(target="candidate", config=config, test_option="test-only"))
        except CliError as error:
            if error.tag in _LOCKED_TAGS:
                return False
            raise
        return True

    def commit_changes(self, edits: Sequence[etree._Element], commit: etree._Element | None = None) -> None:
        """Apply one session's edits to running as a single locked change of the candidate.

        <lock> candidate, <discard-changes>, one <edit-config> per edit (in
        order), <validate>, <commit>, <unlock> (which also discards whatever
        was not committed). ``commit`` replaces the plain <commit/> (e.g. one
        carrying a label and comment). Nothing of another session's is ever
        committed: the lock is refused while the candidate holds changes that
        are not ours.
        Raises CliError (tag ``lock-denied`` or ``in-use``: another session holds
        the configuration; see :attr:`CliError.holder_session`), ConnectionLost.
        """
        self._call(lambda: self._m.lock(target="candidate"))
        try:
            self._call(lambda: self._m.discard_changes())
            for edit in edits:
                self._call(lambda edit=edit: self._m.edit_config(target="candidate", config=edit))  # type: ignore[misc]
            self._call(lambda: self._m.validate(source="candidate"))
            if commit is None:
                self._call(lambda: self._m.commit())
            else:
                self._call(lambda: self._m.dispatch(commit))
        finally:
            try:
                self._call(lambda: self._m.unlock(target="candidate"))
            except CliError:
                pass  # e.g. the lock was already released: nothing of ours is left in the candidate

    def rollback_configuration(
        self, *, last: int | None = None, to: str | None = None, label: str | None = None, comment: str | None = None
    ) -> str | None:
        """``rollback-configuration`` (ca-agent-system): undo the ``last`` N commits, or go back ``to`` the
        configuration a commit produced; returns the id of the rollback's own commit, None when running
        already was that configuration.

        Raises CliError (e.g. invalid-value: no such commit kept; in-use: locked or a confirmed commit
        pending; access-denied), ConnectionLost.
        """
        request = etree.Element(f"{{{SYS_NS}}}rollback-configuration", nsmap=_default_ns(SYS_NS))
        for leaf, value in (("last", None if last is None else str(last)), ("to", to), ("label", label),
                            ("comment", comment)):
            if value is not None:
                etree.SubElement(request, f"{{{SYS_NS}}}{leaf}").text = value
        reply = self._call(lambda: self._m.dispatch(request))
        return etree.fromstring(reply.xml.encode()).findtext(f".//{{{SYS_NS}}}commit-id")

    def rpc(self, name: str, leaves: Sequence[tuple[str, str | None]] = ()) -> etree._Element:
        """Call one of the ca-agent-crypto RPCs; returns the <rpc-reply> element. Raises CliError, ConnectionLost."""
        request = rpc_element(name, leaves)
        reply = self._call(lambda: self._m.dispatch(request))
        return etree.fromstring(reply.xml.encode())

