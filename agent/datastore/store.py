"""The running and candidate datastores, their locks, commit and confirmed commit.

Published trees are never mutated: every change builds a new root and swaps
the reference under one lock. Every change of running is durable before it
is acknowledged (``running.xml``, atomic write), as a router's commit is.
A pending confirmed commit also writes ``rollback.xml`` (the configuration to
go back to) before running changes, so a crash or restart before the confirm
restores the old configuration (RFC 6241 section 8.4.1).
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lxml import etree

from agent.clock import SYSTEM_CLOCK, Clock
from agent.datastore.edit import (
    EditResult,
    ErrorOption,
    Operation,
    PathNamer,
    SchemaLookup,
    WriteGuard,
    apply_edit,
    new_root,
)
from agent.errors import DatastoreError
from agent.files import atomic_write

log = logging.getLogger(__name__)

RUNNING_FILE = "running.xml"
ROLLBACK_FILE = "rollback.xml"
DEFAULT_CONFIRM_TIMEOUT = 600


class Target(enum.Enum):
    RUNNING = "running"
    CANDIDATE = "candidate"


class TestOption(enum.Enum):
    __test__ = False  # not a pytest test class, despite its name
    TEST_THEN_SET = "test-then-set"
    SET = "set"
    TEST_ONLY = "test-only"


class Validator(Protocol):
    def __call__(self, root: etree._Element, *, full: bool) -> bool:
        """Raise an AgentError if ``root`` is not valid config (full: all constraints).

        Returns True when every constraint holds, False when only the value
        checks of a ``full=False`` call passed.
        """
        ...


CommitListener = Callable[[etree._Element, etree._Element], None]


@dataclass
class _PendingConfirm:
    rollback_to: etree._Element
    session_id: int
    persist: str | None
    timer: threading.Timer


class Datastores:
    """Running and candidate, shared by every session of one agent."""

    def __init__(
        self,
        data_dir: Path,
        schema: SchemaLookup,
        namer: PathNamer,
        validator: Validator,
        initial: etree._Element | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._dir = data_dir
        self._clock = clock
        self._lock_times: dict[Target, dt.datetime] = {}
        self.schema = schema
        self.namer = namer
        self._validate = validator
        self._mutex = threading.RLock()
        self._listeners: list[CommitListener] = []
        self._locks: dict[Target, int] = {}
        self._pending: _PendingConfirm | None = None
        self._running = self._load(initial)
        self._candidate: etree._Element | None = None  # None: identical to running
        self._valid_candidate: etree._Element | None = None  # the candidate, if known fully valid

    # -- start-up ----------------------------------------------------------
    def _load(self, initial: etree._Element | None) -> etree._Element:
        rollback = self._dir / ROLLBACK_FILE
        running_file = self._dir / RUNNING_FILE
        if rollback.exists():
            # A confirmed commit was never confirmed: go back (RFC 6241 8.4.1).
            root = _parse(rollback.read_bytes())
            atomic_write(running_file, rollback.read_bytes())
            rollback.unlink()
            log.warning("unconfirmed commit found at start-up: configuration rolled back")
            return root
        if running_file.exists():
            return _parse(running_file.read_bytes())
        root = initial if initial is not None else new_root()
        self._validate(root, full=True)
        atomic_write(running_file, _serialize(root))
        return root

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call ``listener(old, new)`` after every change of running."""
        self._listeners.append(listener)

    # -- reading -----------------------------------------------------------
    def get(self, target: Target) -> etree._Element:
        """The current tree of ``target`` (never mutate it)."""
        with self._mutex:
            if target is Target.CANDIDATE and self._candidate is not None:
                return self._candidate
            return self._running

    @property
    def candidate_modified(self) -> bool:
        with self._mutex:
            return self._candidate is not None

    def lock_holder(self, target: Target) -> int:
        with self._mutex:
            return self._locks.get(target, 0)

    def lock_time(self, target: Target) -> dt.datetime:
        """When the current lock on ``target`` was taken (now if unlocked)."""
        with self._mutex:
            return self._lock_times.get(target) or self._clock.now()

    @property
    def confirm_pending(self) -> bool:
        with self._mutex:
            return self._pending is not None

    # -- locks -------------------------------------------------------------
    def lock(self, target: Target, session_id: int) -> None:
        """Lock ``target`` for ``session_id``.

        Raises DatastoreError lock-denied (error-info session-id = holder, 0
        when the refusal is not due to another session's lock).
        """
        with self._mutex:
            holder = self._locks.get(target, 0)
            if holder:
                raise _lock_denied(target, holder, f"the {target.value} datastore is locked by session {holder}")
            if target is Target.CANDIDATE and self._candidate is not None:
                raise _lock_denied(target, 0, "the candidate has uncommitted changes; commit or discard them first")
            if target is Target.RUNNING and self._pending is not None and self._pending.session_id != session_id:
                raise _lock_denied(target, 0, "a confirmed commit is pending on another session")
            self._locks[target] = session_id
            self._lock_times[target] = self._clock.now()

    def unlock(self, target: Target, session_id: int) -> None:
        """Release ``target``; releasing the candidate lock discards its changes.

        Raises DatastoreError operation-failed if this session does not hold it.
        """
        with self._mutex:
            holder = self._locks.get(target, 0)
            if holder != session_id:
                who = f"session {holder}" if holder else "nobody"
                raise DatastoreError(
                    f"the {target.value} datastore is not locked by this session (held by {who})",
                    error_tag="operation-failed",
                    error_type="protocol",
                    info={"session-id": str(holder)},
                )
            del self._locks[target]
            if target is Target.CANDIDATE:
                self._drop_candidate()

    def _check_writable(self, target: Target, session_id: int) -> None:
        holder = self._locks.get(target, 0)
        if holder and holder != session_id:
            raise DatastoreError(
                f"the {target.value} datastore is locked by session {holder}",
                error_tag="in-use",
                error_type="protocol",
                info={"session-id": str(holder)},
            )

    # -- editing -----------------------------------------------------------
    def edit(
        self,
        target: Target,
        config: etree._Element,
        session_id: int,
        default_operation: Operation = Operation.MERGE,
        test_option: TestOption = TestOption.TEST_THEN_SET,
        error_option: ErrorOption = ErrorOption.STOP_ON_ERROR,
        guard: WriteGuard | None = None,
    ) -> EditResult:
        """<edit-config> on ``target``; on running the result is validated and committed.

        ``guard`` is asked before every change (access control, agent/datastore/edit.py).
        Raises DatastoreError/SchemaError; on error nothing is changed unless
        error_option is continue-on-error.
        """
        with self._mutex:
            self._check_writable(target, session_id)
            result = apply_edit(
                self.get(target), config, self.schema, self.namer, default_operation, error_option, guard
            )
            if target is Target.CANDIDATE:
                fully_valid = False
                if test_option is not TestOption.SET:
                    # Constraints across nodes (mandatory, leafref...) are only
                    # enforced at validate/commit: a candidate may be incomplete.
                    fully_valid = self._validate(result.root, full=False)
                if test_option is not TestOption.TEST_ONLY and result.changed:
                    self._candidate = result.root
                    self._valid_candidate = result.root if fully_valid else None
                return result
            if test_option is not TestOption.SET:
                self._validate(result.root, full=True)
            if test_option is not TestOption.TEST_ONLY and result.changed:
                self._publish_running(result.root)
            return result

    def replace(
        self, target: Target, root: etree._Element, session_id: int, guard: WriteGuard | None = None
    ) -> None:
        """<copy-config> into ``target``: validated, and committed when running.

        ``guard`` is asked whether the old tree may become ``root``.
        Raises DatastoreError in-use or access-denied, or SchemaError.
        """
        with self._mutex:
            self._check_writable(target, session_id)
            if guard is not None:
                guard.check_replace(self.get(target), root)
            if target is Target.CANDIDATE:
                fully_valid = self._validate(root, full=False)
                self._candidate = root
                self._valid_candidate = root if fully_valid else None
                return
            self._validate(root, full=True)
            self._publish_running(root)

    def discard_changes(self, session_id: int) -> None:
        """Reset the candidate to running. Raises DatastoreError in-use."""
        with self._mutex:
            self._check_writable(Target.CANDIDATE, session_id)
            self._drop_candidate()

    def validate(self, root: etree._Element) -> None:
        """Full validation of a tree. Raises SchemaError."""
        self._validate(root, full=True)

    # -- commit ------------------------------------------------------------
    def commit(
        self,
        session_id: int,
        confirmed: bool = False,
        confirm_timeout: int = DEFAULT_CONFIRM_TIMEOUT,
        persist: str | None = None,
        persist_id: str | None = None,
        guard: WriteGuard | None = None,
    ) -> None:
        """Make the candidate running, optionally as a confirmed commit.

        ``guard`` is asked whether running may become the candidate (RFC 8341
        3.2.8: the nodes that differ need create/update/delete access).
        Raises DatastoreError (in-use, invalid-value for a wrong persist-id or
        session, access-denied) or SchemaError when the candidate is not valid.
        """
        with self._mutex:
            self._check_writable(Target.RUNNING, session_id)
            self._check_writable(Target.CANDIDATE, session_id)
            pending = self._pending
            if pending is not None:
                self._check_confirm_owner(pending, session_id, persist_id)
            candidate = self.get(Target.CANDIDATE)
            if guard is not None and candidate is not self._running:
                guard.check_replace(self._running, candidate)
            if candidate is not self._running and candidate is not self._valid_candidate:
                self._validate(candidate, full=True)
            if confirmed:
                rollback_to = pending.rollback_to if pending is not None else self._running
                if pending is not None:
                    pending.timer.cancel()
                else:
                    atomic_write(self._dir / ROLLBACK_FILE, _serialize(rollback_to))
                timer = threading.Timer(confirm_timeout, self._confirm_timed_out)
                timer.daemon = True
                self._pending = _PendingConfirm(rollback_to, session_id, persist, timer)
                timer.start()
            elif pending is not None:
                pending.timer.cancel()
                self._pending = None
            if candidate is not self._running:
                self._publish_running(candidate)
            self._drop_candidate()
            if not confirmed and pending is not None:
                (self._dir / ROLLBACK_FILE).unlink(missing_ok=True)

    def cancel_commit(self, session_id: int, persist_id: str | None = None) -> None:
        """Roll back a pending confirmed commit now.

        Raises DatastoreError operation-failed when none is pending, or
        invalid-value for a wrong persist-id/session.
        """
        with self._mutex:
            pending = self._pending
            if pending is None:
                raise DatastoreError("no confirmed commit is pending", error_tag="operation-failed")
            self._check_confirm_owner(pending, session_id, persist_id)
            self._roll_back("cancel-commit")

    def _check_confirm_owner(self, pending: _PendingConfirm, session_id: int, persist_id: str | None) -> None:
        if pending.persist is not None:
            if persist_id != pending.persist:
                raise DatastoreError(
                    "the persist-id does not match the pending confirmed commit",
                    error_tag="invalid-value",
                    path="/nc:rpc/nc:commit/nc:persist-id" if persist_id is not None else None,
                )
        elif pending.session_id != session_id:
            raise DatastoreError(
                f"a confirmed commit of session {pending.session_id} is pending; only that session may confirm it",
                error_tag="in-use",
                info={"session-id": str(pending.session_id)},
            )

    def _confirm_timed_out(self) -> None:
        with self._mutex:
            if self._pending is not None and self._pending.timer is threading.current_thread():
                self._roll_back("confirm-timeout")

    def _roll_back(self, reason: str) -> None:
        pending = self._pending
        assert pending is not None
        pending.timer.cancel()
        self._pending = None
        self._drop_candidate()
        self._publish_running(pending.rollback_to)
        (self._dir / ROLLBACK_FILE).unlink(missing_ok=True)
        log.warning("confirmed commit rolled back (%s)", reason)

    # -- sessions ----------------------------------------------------------
    def session_closed(self, session_id: int) -> None:
        """Release the session's locks; roll back its unconfirmed non-persist commit."""
        with self._mutex:
            for target in [t for t, sid in self._locks.items() if sid == session_id]:
                del self._locks[target]
                if target is Target.CANDIDATE:
                    self._drop_candidate()
            pending = self._pending
            if pending is not None and pending.persist is None and pending.session_id == session_id:
                self._roll_back("session closed before confirm")

    def _drop_candidate(self) -> None:
        self._candidate = None
        self._valid_candidate = None

    # -- persistence -------------------------------------------------------
    def _publish_running(self, root: etree._Element) -> None:
        old = self._running
        atomic_write(self._dir / RUNNING_FILE, _serialize(root))
        self._running = root
        for listener in self._listeners:
            try:
                listener(old, root)
            except Exception:  # a backend failure must not undo a durable commit
                log.exception("commit listener failed")


def _lock_denied(target: Target, holder: int, message: str) -> DatastoreError:
    return DatastoreError(
        message,
        error_tag="lock-denied",
        error_type="protocol",
        info={"session-id": str(holder)},
    )


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    return etree.fromstring(data, parser)
