"""``ca-agent recover-admin``: the way back in, with the agent stopped.

Like the router's password recovery from the console, it works on the data
directory directly: it resets the password of ``admin`` and puts ``admin``
back in group ``root-system`` with root-system's permit-all rule-list first
(agent/services/taskgroups.py): as a commit of its own in the commit journal
(which the agent starts from; ``running.xml`` is rewritten too) and, if a
confirmed commit was pending, in ``rollback.xml`` (the configuration the next
start goes back to). It refuses to run while an agent holds the data
directory, takes the directory's lock itself so no agent starts meanwhile,
and logs what it did on stderr and in ``DIR/recovery.log``.

The new password comes from ``$CA_AGENT_ADMIN_PASSWORD``, else a prompt
(on a terminal), else it is random: printed once and written to
``DIR/admin-password`` (0600), as at a first start.
"""

from __future__ import annotations

import argparse
import copy
import getpass
import logging
import os
import sys
from pathlib import Path

from lxml import etree

from agent.clock import SYSTEM_CLOCK
from agent.datastore.diff import diff_trees, public_changes
from agent.datastore.history import CommitHistory, CommitRecord
from agent.datastore.store import ROLLBACK_FILE, RUNNING_FILE
from agent.errors import AgentError
from agent.files import atomic_write
from agent.passwords import hash_password, random_password
from agent.runlock import DataDirInUse, RunLock
from agent.services.taskgroups import ADMIN_USER, restore_admin

log = logging.getLogger("ca-agent.recover-admin")

ADMIN_PASSWORD_FILE = "admin-password"
RECOVERY_LOG = "recovery.log"


class RecoveryError(Exception):
    """Recovery cannot be done; the message says why."""


def choose_password(data_dir: Path, random: bool) -> str:
    """The new password: environment, prompt, or random (printed once and written to the data dir).

    Raises RecoveryError if the two prompted passwords differ or are empty.
    """
    from_env = os.environ.get("CA_AGENT_ADMIN_PASSWORD")
    if from_env and not random:
        return from_env
    if not random and sys.stdin.isatty():
        first = getpass.getpass(f"New password for {ADMIN_USER}: ")
        second = getpass.getpass("Again: ")
        if not first or first != second:
            raise RecoveryError("the passwords are empty or differ; nothing changed")
        return first
    password = random_password()
    atomic_write(data_dir / ADMIN_PASSWORD_FILE, (password + "\n").encode(), mode=0o600)
    print(f"ca-agent: recover-admin: user {ADMIN_USER!r} password: {password}", file=sys.stderr, flush=True)
    print(f"ca-agent: (also written to {data_dir / ADMIN_PASSWORD_FILE})", file=sys.stderr, flush=True)
    return password


def recover_admin(data_dir: Path, password: str) -> list[str]:
    """Reset admin's password and root-system membership in the data directory's configuration files.

    The caller holds the data directory's lock. Every file is checked
    against the YANG modules before any is written. Returns what changed.
    Raises RecoveryError (no configuration, or one that is not valid).
    """
    from agent.netconf.yang import YangSupport
    from agent.schema.model import SchemaModel

    history = CommitHistory(data_dir)
    try:
        latest = history.latest_snapshot()
        running_file = data_dir / RUNNING_FILE
        if latest is None and not running_file.exists():
            raise RecoveryError(f"{data_dir} holds no configuration: start the agent once to create it")
        sources = [(RUNNING_FILE, latest if latest is not None else running_file.read_bytes())]
        if (data_dir / ROLLBACK_FILE).exists():
            sources.append((ROLLBACK_FILE, (data_dir / ROLLBACK_FILE).read_bytes()))
        password_hash = hash_password(password)
        yang = YangSupport(SchemaModel.load())
        parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
        updated: list[tuple[str, etree._Element, etree._Element, bytes]] = []
        changes: list[str] = []
        for name, data in sources:
            try:
                before = etree.fromstring(data, parser)
            except etree.XMLSyntaxError as error:
                raise RecoveryError(f"cannot read {name}: {error}") from error
            root = copy.deepcopy(before)
            changes = restore_admin(root, password_hash)
            try:
                yang.validate(root, full=True)
            except AgentError as error:
                raise RecoveryError(f"{name} would not be valid after the recovery: {error.message}") from error
            serialized = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
            updated.append((name, before, root, serialized))
        for name, before, root, serialized in reversed(updated):  # rollback.xml before running
            if name == RUNNING_FILE:
                # A commit of its own in the commit database (the journal is what the agent starts from).
                history.append(CommitRecord(
                    commit_id=history.next_id(), user="recover-admin", session_id=0, timestamp=SYSTEM_CLOCK.now(),
                    kind="recover-admin", comment="admin restored by ca-agent recover-admin",
                    changes=tuple(public_changes(diff_trees(before, root, yang, yang))),
                ), serialized)
            atomic_write(data_dir / name, serialized)
    finally:
        history.close()
    return changes


def main(argv: list[str]) -> int:
    """``ca-agent recover-admin --data-dir DIR [--random-password]``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="ca-agent recover-admin",
        description="Reset the password of user admin and restore it in task group root-system (agent stopped).",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("./ca-agent-data"), help="the agent's state directory")
    parser.add_argument(
        "--random-password",
        action="store_true",
        help="make a random password (printed once, written to DIR/admin-password) instead of asking",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_dir: Path = args.data_dir
    if not data_dir.is_dir():
        log.error("%s is not a directory", data_dir)
        return 1
    try:
        lock = RunLock.acquire(data_dir)
    except DataDirInUse as error:
        log.error("refused: %s; stop the agent first", error)
        return 1
    try:
        password = choose_password(data_dir, args.random_password)
        changes = recover_admin(data_dir, password)
    except RecoveryError as error:
        log.error("recovery failed: %s", error)
        return 1
    finally:
        lock.release()
    summary = "; ".join(changes)
    log.warning("admin recovered by uid %d: %s", os.getuid(), summary)
    line = f"{SYSTEM_CLOCK.now().isoformat()} recover-admin by uid {os.getuid()}: {summary}\n"
    fd = os.open(data_dir / RECOVERY_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return 0
