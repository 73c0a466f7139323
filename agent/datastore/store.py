"""The running and candidate datastores: locks, edits, commit, confirmed commit, history.

Published trees are never mutated: every change builds a new root and swaps
the reference. One short mutex guards the references, the locks and the
pending confirmed commit; it is never held across disk I/O, validation of a
whole tree, or a call into another layer.

Every change of running goes through one committer, in order (a
SerialExecutor: one job at a time, on its own thread, or on the caller's
when nothing else is queued, which spares two thread hand-overs): it
validates, makes the change durable (``rollback.xml`` for a confirmed commit,
written atomically and fsynced; then the commit record with the new
configuration, appended to the commit journal with one fdatasync:
agent/datastore/history.py), publishes it, and only then calls the listeners
(services, notifications), still in commit order, with no lock held. The
caller waits for its job, so a change is acknowledged only once it is durable
and the backend has seen it. A change that cannot be saved (disk full)
changes nothing and leaves no pending confirmed commit behind.

The journal is what start-up reads. ``running.xml`` is the same
configuration as a plain file for people and tools: overwritten after every
commit, neither atomically nor synced (agent/files.py overwrite_file), and
rewritten from the journal at start-up when a crash left it behind.

A pending confirmed commit keeps ``rollback.xml`` (the configuration to go
back to) on disk, so a crash or restart before the confirm restores the old
configuration (RFC 6241 section 8.4.1).

The configuration has a size limit (``max_size``: bytes of ``running.xml``),
so that a writer cannot grow it until the agent runs out of memory (eight
candidate edits of 12.5 MB took it to 4.7 GB) and then out of it again at
every start. A change that would take running over it, or make running
larger while it is over (a lower limit at restart), is ``resource-denied``;
what shrinks it is always accepted, and the automatic rollback of a
confirmed commit is never refused. Running is checked exactly, on the bytes
the journal saves anyway. The candidate is not serialised on every edit (its
whole tree, at every keystroke of a controller): it carries an upper
bound, its size plus what each edit since may add at most (_growth_bound),
and is serialised only when that bound passes the limit.
"""

from __future__ import annotations

import datetime as dt
import enum
import errno
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from lxml import etree

from agent.clock import SYSTEM_CLOCK, Clock
from agent.datastore.diff import Change, diff_trees, public_changes, trees_differ
from agent.datastore.edit import (
    NO_CHANGES,
    ChangeSet,
    EditResult,
    ErrorOption,
    Operation,
    PathNamer,
    SchemaLookup,
    WriteGuard,
    apply_edit,
    join_changes,
    new_root,
)
from agent.datastore.history import CommitHistory, CommitRecord
from agent.errors import DatastoreError
from agent.files import atomic_write, fsync_dir, overwrite_file, remove_stale_temporaries
from agent.serial import SerialExecutor

log = logging.getLogger(__name__)

RUNNING_FILE = "running.xml"
ROLLBACK_FILE = "rollback.xml"
DEFAULT_CONFIRM_TIMEOUT = 600
LISTENER_HOLD_LIMIT = 1.0  # seconds a commit's listeners wait for their release (defer_listeners) at most
DEFAULT_MAX_SIZE = 16 * 1024 * 1024  # bytes of running.xml: ~50,000 trustpoints
CHANGES_FOLLOW_OVER = 64
"""A commit touching more subtrees than this is answered before its changes are computed: they are
recorded with its listeners (the commit is durable without them; a restart computes lost ones again)."""
_T = TypeVar("_T")
_DECLARATION = re.compile(rb'xmlns(?::[^=\s]+)?="[^"]*"')  # as lxml writes them (double quotes)


class Target(enum.Enum):
    RUNNING = "running"
    CANDIDATE = "candidate"


class TestOption(enum.Enum):
    __test__ = False  # not a pytest test class, despite its name
    TEST_THEN_SET = "test-then-set"
    SET = "set"
    TEST_ONLY = "test-only"


class Validator(Protocol):
    def __call__(
        self, root: etree._Element, *, full: bool, base: etree._Element | None = None, changes: ChangeSet = None
    ) -> bool:
        """Raise an AgentError if ``root`` is not valid config (full: all constraints).

        ``base``, a tree that passed before, and ``changes``, where ``root``
        differs from it, let the validator check only what changed and what
        depends on it. Returns True when every constraint holds, False when
        only the value checks of a ``full=False`` call passed.
        """
        ...


@dataclass(frozen=True)
class Principal:
    """Who asks for a change: the session and its user."""

    session_id: int
    user: str
    source_host: str = ""


SYSTEM = Principal(0, "system")


@dataclass(frozen=True)
class CommitNote:
    """An optional label and comment for the commit database (``commit label L comment C``)."""

    label: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class CommitEvent:
    """Running changed: ``old`` -> ``new``, as recorded."""

    old: etree._Element
    new: etree._Element
    record: CommitRecord
    who: Principal
    datastore: str = "running"
    touched: ChangeSet = None  # where ``old`` and ``new`` may differ (None: anywhere)


class ConfirmEventKind(enum.Enum):
    START = "start"
    CANCEL = "cancel"
    TIMEOUT = "timeout"
    EXTEND = "extend"
    COMPLETE = "complete"


@dataclass(frozen=True)
class ConfirmEvent:
    """A step of a confirmed commit (RFC 6470 netconf-confirmed-commit)."""

    kind: ConfirmEventKind
    who: Principal
    timeout: int | None = None


DatastoreEvent = CommitEvent | ConfirmEvent
_Job = Callable[[], tuple[Any, list[DatastoreEvent]]]
CommitListener = Callable[[etree._Element, etree._Element], None]
ChangeListener = Callable[[etree._Element, etree._Element, ChangeSet], None]
EventListener = Callable[[DatastoreEvent], None]


@dataclass
class _PendingConfirm:
    rollback_to: etree._Element
    who: Principal
    persist: str | None
    timer: threading.Timer


class _ConfirmAction(enum.Enum):
    NONE = 0
    START = 1  # write rollback.xml before running
    END = 2  # remove rollback.xml after running


class _ListenerGate:
    """Holds one commit's listeners until its caller has been answered (Datastores.defer_listeners).

    The caller that opens the gate runs them itself (it is running already: no thread to wake
    while later requests wait for them); the committer waits for ``done`` before its next job.
    """

    __slots__ = ("delivery", "done", "number")

    def __init__(self) -> None:
        # Every request makes one and most make no commit: nothing here until a commit uses it.
        self.number = 0  # the commit's number once it is durable; 0 while none was made
        self.delivery: Callable[[], None] | None = None  # the listeners to run, until someone claims them
        self.done: threading.Event | None = None


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
        history_keep: int = 100,
        max_size: int | None = None,
    ) -> None:
        """Load (or create) running from ``data_dir``. Raises OSError, SchemaError.

        ``max_size``: the configuration's size limit in bytes (module docstring); None: no limit.
        """
        self._dir = Path(data_dir)
        self._max_size = max_size
        self._clock = clock
        self.schema = schema
        self.namer = namer
        self._validate = validator
        self._mutex = threading.Lock()
        self._commit_listeners: list[tuple[CommitListener | None, ChangeListener | None]] = []
        self._event_listeners: list[EventListener] = []
        self._locks: dict[Target, int] = {}
        self._lock_times: dict[Target, dt.datetime] = {}
        self._pending: _PendingConfirm | None = None
        self._candidate: etree._Element | None = None  # None: identical to running
        self._valid_candidate: etree._Element | None = None  # the candidate, if known fully valid
        # The candidate differs from a fully valid tree (running, or an earlier candidate) by these changes.
        self._candidate_base: etree._Element | None = None
        self._candidate_changes: ChangeSet = NO_CHANGES
        self._candidate_touched: ChangeSet = NO_CHANGES  # and differs from running by these
        self._candidate_origin: etree._Element | None = None  # the running it was made from
        self._candidate_size = 0  # at least the candidate's serialised size (an estimate: module docstring)
        removed = remove_stale_temporaries(self._dir)
        if removed:
            log.warning("removed %d temporary file%s left by an interrupted write", removed, "s"[: removed != 1])
        self._history = CommitHistory(self._dir, history_keep)
        self._complete_history()
        self._running, self._running_size = self._load(initial)  # the size: running.xml's bytes
        if max_size is not None and self._running_size > max_size:
            log.warning("the configuration is %d bytes, over the limit of %d: changes that make it larger are "
                        "refused until it is below", self._running_size, max_size)
        # Commits whose listeners are held until their reply is sent (defer_listeners), numbered:
        # requests made after a commit was answered wait for its listeners (wait_delivered).
        self._delivery = threading.Condition()
        self._delivered_up_to = 0
        self._numbered = 0  # the last number given to a held commit
        self._released_up_to = 0  # answered: their listeners may run, and later requests wait for them
        self._gates = threading.local()  # pending: the gate for this thread's next commit; used: its last one
        self._committer = SerialExecutor("datastore-commit", inline_when_idle=True)

    # -- start-up ----------------------------------------------------------
    def _complete_history(self) -> None:
        """Compute the changes of a commit that a crash left without them (they follow their commit)."""
        for commit_id, before, after in self._history.missing_changes():

            def again(commit_id: str = commit_id, before: bytes | None = before, after: bytes = after) -> list[Change]:
                if before is None:
                    raise ValueError("the commit before it is no longer kept")
                changes = diff_trees(_parse(before), _parse(after), self.schema, self.namer)
                log.info("commit history: the changes of commit %s computed again after a restart", commit_id)
                return changes

            self._record_changes(commit_id, again)

    def _load(self, initial: etree._Element | None) -> tuple[etree._Element, int]:
        """Running as the data directory holds it, and its size (never refused at start-up: see _persist)."""
        rollback = self._dir / ROLLBACK_FILE
        running_file = self._dir / RUNNING_FILE
        latest = self._history.latest_snapshot()
        if latest is None and running_file.exists():
            # A data directory of an agent without the commit journal: its running.xml is the configuration.
            data = running_file.read_bytes()
            record = self._record(SYSTEM, "initial-configuration", new_root(), _parse(data), None)
            if record is not None:
                self._history.append(record, data)
            latest = data
        if rollback.exists():
            # A confirmed commit was never confirmed: go back (RFC 6241 8.4.1).
            target = _parse(rollback.read_bytes())
            current = _parse(latest) if latest is not None else new_root()
            record = self._record(SYSTEM, "confirmed-commit-rollback", current, target,
                                  CommitNote(comment="unconfirmed commit rolled back at start-up"))
            try:
                if record is not None:
                    size = self._persist(target, record, _ConfirmAction.END, limited=False)
                else:
                    size = len(latest) if latest is not None else len(_serialize(target))
                    self._remove_rollback_file()
            except (DatastoreError, OSError) as error:  # e.g. a full disk: say why the agent cannot start
                reason = error.message if isinstance(error, DatastoreError) else str(error)
                raise DatastoreError(f"an unconfirmed commit must be rolled back at start-up: {reason}",
                                     error_tag="resource-denied") from error
            log.warning("unconfirmed commit found at start-up: configuration rolled back")
            return target, size
        if latest is not None:
            if not running_file.exists() or running_file.read_bytes() != latest:
                self._export(latest)  # a crash came between the journal and running.xml
            return _parse(latest), len(latest)
        root = initial if initial is not None else new_root()
        self._validate(root, full=True)
        record = self._record(SYSTEM, "initial-configuration", new_root(), root, None)
        if record is not None:
            size = self._persist(root, record, _ConfirmAction.NONE, limited=False)
        else:
            empty = _serialize(root)
            atomic_write(running_file, empty)  # an empty first configuration
            size = len(empty)
        return root, size

    @staticmethod
    def has_configuration(data_dir: Path) -> bool:
        """Whether ``data_dir`` holds a configuration already (else a first start builds one)."""
        directory = Path(data_dir)
        return (directory / RUNNING_FILE).exists() or any((directory / "commits").glob("journal-*.log"))

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call ``listener(old, new)`` after every change of running (in commit order, no lock held).

        Listeners run once the change is durable, before the next change, and
        before any NETCONF request made after the change was answered is
        handled; held by the caller (defer_listeners), on its thread once it
        has answered (see _run and wait_delivered).
        """
        self._commit_listeners.append((listener, None))

    def add_change_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(old, new, touched)`` like a commit listener, with where the trees may differ.

        ``touched`` (agent/datastore/edit.py ChangeSet) lets a listener look
        only at what changed; None means anything may have.
        """
        self._commit_listeners.append((None, listener))

    def add_event_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for every commit and confirmed-commit step, in order."""
        self._event_listeners.append(listener)

    def close(self) -> None:
        """Stop the committer (queued jobs finish first) and the confirm timer."""
        with self._mutex:
            if self._pending is not None:
                self._pending.timer.cancel()
        self._committer.close()
        self._history.close()

    # -- reading -----------------------------------------------------------
    def get(self, target: Target) -> etree._Element:
        """The current tree of ``target``: never mutate it (it is replaced, never changed, so readers may
        index it: see xmltree.publish)."""
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

    def history(self) -> list[CommitRecord]:
        """The kept commits of running, oldest first."""
        return self._history.records

    # -- locks -------------------------------------------------------------
    def lock(self, target: Target, who: Principal) -> None:
        """Lock ``target`` for ``who``.

        Raises DatastoreError lock-denied (error-info session-id = holder, 0
        when the refusal is not due to another session's lock).
        """
        with self._mutex:
            holder = self._locks.get(target, 0)
            if holder:
                raise _lock_denied(holder, f"the {target.value} datastore is locked by session {holder}")
            if target is Target.CANDIDATE and self._candidate is not None:
                raise _lock_denied(0, "the candidate has uncommitted changes; commit or discard them first")
            pending = self._pending
            if target is Target.RUNNING and pending is not None and pending.who.session_id != who.session_id:
                raise _lock_denied(0, "a confirmed commit is pending on another session")
            self._locks[target] = who.session_id
            self._lock_times[target] = self._clock.now()

    def unlock(self, target: Target, who: Principal) -> None:
        """Release ``target``; releasing the candidate lock discards its changes.

        Raises DatastoreError operation-failed if this session does not hold it.
        """
        with self._mutex:
            holder = self._locks.get(target, 0)
            if holder != who.session_id:
                owner = f"session {holder}" if holder else "nobody"
                raise DatastoreError(
                    f"the {target.value} datastore is not locked by this session (held by {owner})",
                    error_tag="operation-failed",
                    error_type="protocol",
                    info={"session-id": str(holder)},
                )
            del self._locks[target]
            if target is Target.CANDIDATE:
                self._drop_candidate()

    def _check_writable(self, target: Target, who: Principal) -> None:
        holder = self._locks.get(target, 0)
        if holder and holder != who.session_id:
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
        who: Principal,
        default_operation: Operation = Operation.MERGE,
        test_option: TestOption = TestOption.TEST_THEN_SET,
        error_option: ErrorOption = ErrorOption.STOP_ON_ERROR,
        note: CommitNote | None = None,
        guard: WriteGuard | None = None,
    ) -> EditResult:
        """<edit-config> on ``target``; on running the result is validated and committed.

        ``guard`` is asked before every change (access control, agent/datastore/edit.py).
        Raises DatastoreError/SchemaError; on error nothing is changed unless
        error_option is continue-on-error.
        """
        if target is Target.CANDIDATE:
            return self._update_candidate(
                who,
                lambda base: apply_edit(base, config, self.schema, self.namer, default_operation, error_option, guard),
                test_option,
                growth=_growth_bound(config) if self._max_size is not None else 0,
            )

        def job() -> tuple[Any, list[DatastoreEvent]]:
            with self._mutex:
                self._check_writable(Target.RUNNING, who)
            base = self._running  # only the committer's job replaces it
            result = apply_edit(base, config, self.schema, self.namer, default_operation, error_option, guard)
            if test_option is not TestOption.SET:
                self._validate(result.root, full=True, base=base, changes=result.touched)
            if test_option is TestOption.TEST_ONLY or not result.changed:
                return result, []
            return result, self._change_running(who, "edit-config", result.root, note, result.touched)

        return self._run(job)

    def replace(
        self, target: Target, root: etree._Element, who: Principal, note: CommitNote | None = None,
        guard: WriteGuard | None = None,
    ) -> None:
        """<copy-config> into ``target``: validated, and committed when running.

        ``guard`` is asked whether the old tree may become ``root``.
        Raises DatastoreError in-use or access-denied, or SchemaError.
        """
        if target is Target.CANDIDATE:

            def replace_candidate(base: etree._Element) -> EditResult:
                if guard is not None:
                    guard.check_replace(base, root)
                return EditResult(root, changed=True)

            self._update_candidate(who, replace_candidate, TestOption.TEST_THEN_SET, growth=None)
            return

        def job() -> tuple[Any, list[DatastoreEvent]]:
            with self._mutex:
                self._check_writable(Target.RUNNING, who)
            if guard is not None:
                guard.check_replace(self._running, root)
            self._validate(root, full=True)
            return None, self._change_running(who, "copy-config", root, note)

        self._run(job)

    def _update_candidate(
        self, who: Principal, edit: Callable[[etree._Element], EditResult], test_option: TestOption,
        growth: int | None,
    ) -> EditResult:
        """Apply ``edit`` to the candidate. ``growth``: how many bytes it may add to the candidate's
        serialised size at most (None: unknown, the result is measured)."""
        # Optimistic: compute outside the mutex, publish only if nobody changed
        # the candidate meanwhile (else compute again on the newer tree).
        while True:
            with self._mutex:
                self._check_writable(Target.CANDIDATE, who)
                if self._candidate is not None:
                    base, anchor, since = self._candidate, self._candidate_base, self._candidate_changes
                    touched_before, base_size = self._candidate_touched, self._candidate_size
                else:
                    base, anchor, since, touched_before = self._running, self._running, NO_CHANGES, NO_CHANGES
                    base_size = self._running_size
            result = edit(base)
            size = base_size
            if result.changed and test_option is not TestOption.TEST_ONLY:
                size = self._candidate_size_after(base, base_size, result.root, growth)
            changes = join_changes(since, result.touched)
            fully_valid = False
            if test_option is not TestOption.SET:
                # Constraints across nodes (mandatory, leafref...) are only
                # enforced at validate/commit: a candidate may be incomplete.
                fully_valid = self._validate(result.root, full=False, base=anchor, changes=changes)
            with self._mutex:
                current = self._candidate if self._candidate is not None else self._running
                if current is not base:
                    continue
                self._check_writable(Target.CANDIDATE, who)
                if test_option is not TestOption.TEST_ONLY and result.changed:
                    if self._candidate is None:
                        self._candidate_origin = self._running
                    self._candidate = result.root
                    self._candidate_size = size
                    self._candidate_touched = join_changes(touched_before, result.touched)
                    self._valid_candidate = result.root if fully_valid else None
                    if fully_valid:
                        self._candidate_base, self._candidate_changes = result.root, NO_CHANGES
                    else:
                        self._candidate_base, self._candidate_changes = anchor, changes
                return result

    def _candidate_size_after(
        self, base: etree._Element, base_size: int, new: etree._Element, growth: int | None
    ) -> int:
        """The candidate's size (or an upper estimate) once ``base`` (``base_size``) becomes ``new``.

        Raises DatastoreError resource-denied if ``new`` is over the limit and larger than ``base``.
        """
        if self._max_size is None:
            return 0
        if growth is not None and base_size + growth <= self._max_size:
            return base_size + growth
        size = len(_serialize(new))
        if size > self._max_size:
            # Over the limit: refused unless it shrinks the candidate. ``base_size`` is never below the
            # base's real size, so an edit larger than it is refused at once; only one that may shrink
            # the candidate has the base measured exactly (the bound may be high).
            if size > base_size or size > len(_serialize(base)):
                raise _too_large(size, self._max_size, "candidate")
        return size

    def discard_changes(self, who: Principal) -> None:
        """Reset the candidate to running. Raises DatastoreError in-use."""
        with self._mutex:
            self._check_writable(Target.CANDIDATE, who)
            self._drop_candidate()

    def validate(self, root: etree._Element) -> None:
        """Full validation of a tree. Raises SchemaError."""
        self._validate(root, full=True)

    # -- commit ------------------------------------------------------------
    def commit(
        self,
        who: Principal,
        confirmed: bool = False,
        confirm_timeout: int = DEFAULT_CONFIRM_TIMEOUT,
        persist: str | None = None,
        persist_id: str | None = None,
        note: CommitNote | None = None,
        guard: WriteGuard | None = None,
    ) -> str | None:
        """Make the candidate running, optionally as a confirmed commit.

        ``guard`` is asked whether running may become the candidate (RFC 8341
        3.2.8: the nodes that differ need create/update/delete access).

        Returns the commit id (None when nothing changed). Raises
        DatastoreError (in-use; invalid-value for a wrong persist-id;
        resource-denied when the disk is full) or SchemaError when the
        candidate is not valid.
        """

        def job() -> tuple[Any, list[DatastoreEvent]]:
            with self._mutex:
                self._check_writable(Target.RUNNING, who)
                self._check_writable(Target.CANDIDATE, who)
                pending = self._pending
                if pending is not None:
                    _check_confirm_owner(pending, who, persist_id)
                candidate = self._candidate if self._candidate is not None else self._running
                known_valid = candidate is self._valid_candidate
                anchor, changes = self._candidate_base, self._candidate_changes
                touched = self._candidate_touched if self._candidate_origin is self._running else None
            running = self._running
            if guard is not None and candidate is not running:
                guard.check_replace(running, candidate)
            if candidate is not running and not known_valid:
                self._validate(candidate, full=True, base=anchor, changes=changes)
            if confirmed:
                action = _ConfirmAction.START if pending is None else _ConfirmAction.NONE
                rollback_to = pending.rollback_to if pending is not None else running
            else:
                action = _ConfirmAction.END if pending is not None else _ConfirmAction.NONE
                rollback_to = running
            events: list[DatastoreEvent] = []
            commit_id: str | None = None
            record = (self._record(who, "commit", running, candidate, note, touched)
                      if candidate is not running else None)
            size = self._running_size
            if record is not None:
                size = self._persist(candidate, record, action, rollback_to)
                commit_id = record.commit_id
            else:
                self._persist_confirm_only(action, rollback_to)
            with self._mutex:
                if record is not None:
                    self._running, self._running_size = candidate, size
                if self._candidate is candidate:
                    self._drop_candidate()
                if confirmed:
                    if pending is not None:
                        pending.timer.cancel()
                    self._pending = self._new_pending(rollback_to, who, persist, confirm_timeout)
                elif pending is not None:
                    pending.timer.cancel()
                    self._pending = None
            if record is not None:
                events.append(CommitEvent(running, candidate, record, who, touched=touched))
            if confirmed:
                kind = ConfirmEventKind.START if pending is None else ConfirmEventKind.EXTEND
                events.append(ConfirmEvent(kind, who, confirm_timeout))
            elif pending is not None:
                events.append(ConfirmEvent(ConfirmEventKind.COMPLETE, who))
            return commit_id, events

        result = self._run(job)
        return str(result) if result is not None else None

    def cancel_commit(self, who: Principal, persist_id: str | None = None) -> None:
        """Roll back a pending confirmed commit now.

        Raises DatastoreError operation-failed when none is pending, or
        invalid-value for a wrong persist-id / in-use for another session's.
        """

        def job() -> tuple[Any, list[DatastoreEvent]]:
            with self._mutex:
                pending = self._pending
                if pending is None:
                    raise DatastoreError("no confirmed commit is pending", error_tag="operation-failed")
                _check_confirm_owner(pending, who, persist_id)
            return None, self._roll_back(pending, ConfirmEventKind.CANCEL, who)

        self._run(job)

    def rollback(
        self, who: Principal, last: int | None = None, to: str | None = None, note: CommitNote | None = None,
        guard: WriteGuard | None = None,
    ) -> str | None:
        """Go back ``last`` commits, or to the configuration commit ``to`` produced; a commit itself.

        Returns the new commit id (None if running already is that
        configuration). Raises DatastoreError invalid-value (no such commit
        kept), in-use (locked, or a confirmed commit pending), SchemaError.
        """

        def job() -> tuple[Any, list[DatastoreEvent]]:
            with self._mutex:
                self._check_writable(Target.RUNNING, who)
                if self._pending is not None:
                    raise DatastoreError(
                        "a confirmed commit is pending: confirm or cancel it first", error_tag="in-use"
                    )
            ids = self._history.commit_ids
            if to is not None:
                wanted = to
                if to not in ids:
                    raise DatastoreError(
                        f"commit {to} is not in the commit database (the last {len(ids)} commits are kept)",
                        error_tag="invalid-value",
                    )
            else:
                count = last or 1
                if count >= len(ids):
                    raise DatastoreError(
                        f"cannot roll back {count} commit{'s'[: count != 1]}: "
                        f"only {len(ids) - 1} can be undone with the commits kept",
                        error_tag="invalid-value",
                    )
                wanted = ids[-count - 1]
            target = _parse(self._history.snapshot(wanted))
            if guard is not None:
                guard.check_replace(self._running, target)
            self._validate(target, full=True)
            label = (note or CommitNote()).label
            comment = (note or CommitNote()).comment or f"rollback to the configuration of commit {wanted}"
            events = self._change_running(who, "rollback", target, CommitNote(label, comment))
            records_now = [e for e in events if isinstance(e, CommitEvent)]
            return (records_now[0].record.commit_id if records_now else None), events

        result = self._run(job)
        return str(result) if result is not None else None

    # -- the committer -----------------------------------------------------
    def defer_listeners(self) -> Callable[[], None]:
        """Hold the listeners of the next commit this thread makes until the returned callable is called.

        For a caller with something to do first that the listeners need not
        precede: a NETCONF session sends the commit's reply, then releases
        them and runs them itself, while the client reads the reply (one
        thread runs Python at a time: listeners running beside the reply would
        delay it). The commit is durable before the caller is answered either
        way. Call the result once on every path, on this thread; held
        listeners start after LISTENER_HOLD_LIMIT seconds regardless (on the
        committer). Raises nothing.
        """
        gate = _ListenerGate()
        self._gates.pending = gate

        def release() -> None:
            if getattr(self._gates, "pending", None) is gate:
                self._gates.pending = None
            self._open(gate)

        return release

    def _run(self, job: Callable[[], tuple[_T, list[DatastoreEvent]]]) -> _T:
        """Run ``job`` on the committer and return its result once the change is durable.

        The listeners run before any later job: on the committer before the
        caller is answered, or, held (defer_listeners), on the thread that
        releases them once it has answered its client; every NETCONF request
        first waits for the listeners of the commits answered before it
        (wait_delivered), so no request sees the backend behind the
        configuration it was told of.
        """
        if self._committer.on_thread or getattr(self._gates, "delivering", False):
            raise RuntimeError("a datastore listener may not change the datastore")
        self._release_own_gate()  # a second change in one request must not queue behind held listeners
        gate = getattr(self._gates, "pending", None)
        self._gates.pending = None
        self._gates.used = gate
        return self._committer.run_then(lambda: self._then_deliver_later(job, gate))

    def _release_own_gate(self) -> None:
        used = getattr(self._gates, "used", None)
        if used is not None:
            self._gates.used = None
            self._open(used)

    def _open(self, gate: _ListenerGate) -> None:
        """Let the gate's commit's listeners run (here, unless already done); later requests wait for them."""
        if gate.done is None:
            return  # no commit was made under it (its number and event are set before its caller returns)
        delivery = self._claim(gate)
        if delivery is not None:
            self._gates.delivering = True
            try:
                delivery()
            finally:
                self._gates.delivering = False
        gate.done.set()

    def _claim(self, gate: _ListenerGate) -> Callable[[], None] | None:
        """Mark the gate's commit answered and take its listeners to run; None if someone took them."""
        with self._delivery:
            self._released_up_to = max(self._released_up_to, gate.number)
            delivery, gate.delivery = gate.delivery, None
        return delivery

    def _submit(self, job: _Job) -> None:
        """Queue a job without waiting (timers)."""
        self._committer.submit(lambda: self._then_deliver(job))

    def _then_deliver(self, job: Callable[[], tuple[_T, list[DatastoreEvent]]]) -> _T:
        result, events = job()
        self._deliver(events)
        return result

    def _then_deliver_later(
        self, job: Callable[[], tuple[_T, list[DatastoreEvent]]], gate: _ListenerGate | None,
    ) -> tuple[_T, Callable[[], None] | None]:
        result, events = job()
        if not events:
            return result, None
        if gate is None:  # no one to release them: they run before the caller is answered
            self._deliver(events)
            return result, None
        with self._delivery:
            self._numbered += 1
            number = self._numbered
            # Before the caller has its answer, so before it can open the gate.
            gate.number = number
            gate.delivery = lambda: self._deliver_numbered(events, number)
            gate.done = threading.Event()
        return result, lambda: self._await_gate(gate)

    def _await_gate(self, gate: _ListenerGate) -> None:
        """On the committer: the next job waits until the gate's listeners have run (by whoever opens it)."""
        assert gate.done is not None
        if gate.done.wait(LISTENER_HOLD_LIMIT):
            return
        log.warning("commit listeners held for %g s without release: running them now", LISTENER_HOLD_LIMIT)
        delivery = self._claim(gate)
        if delivery is not None:
            delivery()
        else:  # the caller opened the gate meanwhile and runs them: still one at a time
            gate.done.wait()

    def _deliver_numbered(self, events: list[DatastoreEvent], number: int) -> None:
        try:
            self._deliver(events)
        finally:
            with self._delivery:
                self._delivered_up_to = number
                self._delivery.notify_all()

    def wait_delivered(self) -> None:
        """Wait until the listeners of every change whose caller has been answered have run.

        A change still being answered (its listeners held) is concurrent with
        the caller of this, which need not see it; and only the changes
        answered when this is called count, so a stream of commits cannot keep
        a caller waiting. Releases listeners this thread still holds first.
        Raises nothing.
        """
        self._release_own_gate()
        wanted = self._released_up_to
        if self._delivered_up_to >= wanted or self._committer.on_thread:
            return
        with self._delivery:
            while self._delivered_up_to < wanted:
                self._delivery.wait()

    def _deliver(self, events: list[DatastoreEvent]) -> None:
        for event in events:
            if isinstance(event, CommitEvent):
                if event.record.changes_follow:
                    event = self._with_changes(event)
                for commit_listener, change_listener in self._commit_listeners:
                    try:
                        if change_listener is not None:
                            change_listener(event.old, event.new, event.touched)
                        elif commit_listener is not None:
                            commit_listener(event.old, event.new)
                    except Exception:  # a backend failure must not undo a durable commit
                        log.exception("commit listener failed")
            for listener in self._event_listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("datastore event listener failed")

    def _with_changes(self, event: CommitEvent) -> CommitEvent:
        """The commit's changes, recorded (before any listener sees the commit). Raises nothing."""
        changes = self._record_changes(
            event.record.commit_id, lambda: diff_trees(event.old, event.new, self.schema, self.namer, event.touched))
        return replace(event, record=replace(event.record, changes=changes, changes_follow=False))

    def _record_changes(self, commit_id: str, diff: Callable[[], list[Change]]) -> tuple[Change, ...]:
        """Record the changes ``diff`` finds for a commit made without them. Raises nothing.

        If they cannot be computed the commit stands, listed without changes rather than not at all.
        """
        changes: tuple[Change, ...] = ()
        try:
            changes = tuple(public_changes(diff()))
        except Exception:
            log.exception("commit history: the changes of commit %s cannot be computed", commit_id)
        self._history.complete(commit_id, changes)
        return changes

    def _change_running(
        self, who: Principal, kind: str, new: etree._Element, note: CommitNote | None, touched: ChangeSet = None,
    ) -> list[DatastoreEvent]:
        """Record, persist and publish a new running (committer's jobs only)."""
        old = self._running
        record = self._record(who, kind, old, new, note, touched)
        if record is None:
            return []
        size = self._persist(new, record, _ConfirmAction.NONE)
        with self._mutex:
            self._running, self._running_size = new, size
        return [CommitEvent(old, new, record, who, touched=touched)]

    def _record(
        self, who: Principal, kind: str, old: etree._Element, new: etree._Element, note: CommitNote | None,
        touched: ChangeSet = None,
    ) -> CommitRecord | None:
        """The record of ``old`` -> ``new``; None when nothing changed (secrets included).

        ``touched`` (where the trees may differ) keeps the diff to the size of the change.
        """
        follow = touched is not None and len(touched) > CHANGES_FOLLOW_OVER
        if follow:
            # Whether anything changed is known at the first change (a bulk create: at once); the
            # changes themselves (~10 µs per touched entry) are computed after the reply (_deliver).
            if not trees_differ(old, new, self.schema, self.namer, touched):
                return None
            changes: list[Change] = []
        else:
            changes = diff_trees(old, new, self.schema, self.namer, touched)
            if not changes:
                return None
        note = note or CommitNote()
        return CommitRecord(
            commit_id=self._history.next_id(),
            user=who.user,
            session_id=who.session_id,
            timestamp=self._clock.now(),
            kind=kind,
            label=note.label,
            comment=note.comment,
            changes=tuple(public_changes(changes)),
            changes_follow=follow,
        )

    def _persist(
        self,
        new: etree._Element,
        record: CommitRecord,
        action: _ConfirmAction,
        rollback_to: etree._Element | None = None,
        limited: bool = True,
    ) -> int:
        """Make ``new`` durable with its record; returns its size. Raises DatastoreError; on error nothing
        changed on disk.

        ``rollback.xml`` (a confirmed commit starting) is durable before the
        commit is; the commit is durable once its journal frame is synced.
        ``limited``: refused (resource-denied) if over the size limit and larger
        than running; start-up and a confirmed commit's rollback are not.
        """
        snapshot = _serialize(new)
        if (limited and self._max_size is not None and len(snapshot) > self._max_size
                and len(snapshot) > self._running_size):
            raise _too_large(len(snapshot), self._max_size, "running")
        try:
            if action is _ConfirmAction.START:
                assert rollback_to is not None
                atomic_write(self._dir / ROLLBACK_FILE, _serialize(rollback_to))
            self._history.append(record, snapshot)
        except OSError as error:
            if action is _ConfirmAction.START:
                (self._dir / ROLLBACK_FILE).unlink(missing_ok=True)
            raise _save_failed(error) from error
        self._export(snapshot)
        if action is _ConfirmAction.END:
            self._remove_rollback_file()
        return len(snapshot)

    def _export(self, snapshot: bytes) -> None:
        """``running.xml`` for people and tools (the journal is the durable copy)."""
        try:
            overwrite_file(self._dir / RUNNING_FILE, snapshot)
        except OSError as error:
            log.warning("cannot write %s: %s (the commit itself is saved)", RUNNING_FILE, error)

    def _persist_confirm_only(self, action: _ConfirmAction, rollback_to: etree._Element) -> None:
        """A confirmed commit (or its confirmation) that changes nothing in running."""
        if action is _ConfirmAction.START:
            try:
                atomic_write(self._dir / ROLLBACK_FILE, _serialize(rollback_to))
            except OSError as error:
                raise _save_failed(error) from error
        elif action is _ConfirmAction.END:
            self._remove_rollback_file()

    def _remove_rollback_file(self) -> None:
        path = self._dir / ROLLBACK_FILE
        if path.exists():
            path.unlink()
            fsync_dir(self._dir)

    # -- confirmed commit ---------------------------------------------------
    def _new_pending(self, rollback_to: etree._Element, who: Principal, persist: str | None,
                     timeout: int) -> _PendingConfirm:
        timer = threading.Timer(timeout, lambda: self._submit(lambda: self._timed_out(pending)))
        timer.daemon = True
        pending = _PendingConfirm(rollback_to, who, persist, timer)
        timer.start()
        return pending

    def _timed_out(self, pending: _PendingConfirm) -> tuple[object, list[DatastoreEvent]]:
        with self._mutex:
            if self._pending is not pending:
                return None, []  # confirmed, extended or cancelled meanwhile
        try:
            return None, self._roll_back(pending, ConfirmEventKind.TIMEOUT, SYSTEM)
        except DatastoreError as error:
            log.error("confirmed commit timed out but could not be rolled back (%s); retrying in 10 s", error)
            retry = threading.Timer(10, lambda: self._submit(lambda: self._timed_out(pending)))
            retry.daemon = True
            retry.start()
            return None, []

    def _roll_back(self, pending: _PendingConfirm, kind: ConfirmEventKind, who: Principal) -> list[DatastoreEvent]:
        """Restore the configuration from before a confirmed commit (committer's jobs only)."""
        old = self._running
        target = pending.rollback_to
        events: list[DatastoreEvent] = []
        record = self._record(who, "confirmed-commit-rollback", old, target,
                              CommitNote(comment=f"confirmed commit rolled back ({kind.value})"))
        size = self._running_size
        if record is not None:
            size = self._persist(target, record, _ConfirmAction.END, limited=False)
            events.append(CommitEvent(old, target, record, who))
        else:
            self._remove_rollback_file()
        with self._mutex:
            pending.timer.cancel()
            self._pending = None
            self._running, self._running_size = target, size
            self._drop_candidate()
        events.append(ConfirmEvent(kind, who))
        log.warning("confirmed commit rolled back (%s)", kind.value)
        return events

    # -- sessions ----------------------------------------------------------
    def session_closed(self, session_id: int) -> None:
        """Release the session's locks; roll back its unconfirmed non-persist commit (and wait for it)."""
        with self._mutex:
            for target in [t for t, sid in self._locks.items() if sid == session_id]:
                del self._locks[target]
                if target is Target.CANDIDATE:
                    self._drop_candidate()
            pending = self._pending
        if pending is not None and pending.persist is None and pending.who.session_id == session_id:

            def job() -> tuple[Any, list[DatastoreEvent]]:
                with self._mutex:
                    if self._pending is not pending:
                        return None, []
                return None, self._roll_back(pending, ConfirmEventKind.CANCEL, pending.who)

            try:
                self._run(job)
            except DatastoreError as error:
                log.error("session %d closed before its confirm; rollback failed: %s", session_id, error)

    def _drop_candidate(self) -> None:
        self._candidate = None
        self._valid_candidate = None
        self._candidate_base = None
        self._candidate_changes = NO_CHANGES
        self._candidate_touched = NO_CHANGES
        self._candidate_origin = None


def _check_confirm_owner(pending: _PendingConfirm, who: Principal, persist_id: str | None) -> None:
    if pending.persist is not None:
        if persist_id != pending.persist:
            raise DatastoreError(
                "the persist-id does not match the pending confirmed commit",
                error_tag="invalid-value",
                error_app_tag="persist-id-mismatch",
            )
    elif pending.who.session_id != who.session_id:
        raise DatastoreError(
            f"a confirmed commit of session {pending.who.session_id} is pending; only that session may confirm it",
            error_tag="in-use",
            info={"session-id": str(pending.who.session_id)},
        )


def _save_failed(error: OSError) -> DatastoreError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DatastoreError(
            "not enough disk space to save the configuration; nothing was changed",
            error_tag="resource-denied",
        )
    return DatastoreError(f"cannot save the configuration ({error.strerror or error}); nothing was changed",
                          error_tag="operation-failed")


def _too_large(size: int, limit: int, target: str) -> DatastoreError:
    # The size goes to the log only: it counts what access control may hide from the requester (RFC 8341).
    log.warning("a change of the %s configuration refused: %d bytes, over the limit of %d", target, size, limit)
    return DatastoreError(
        f"the {target} configuration would be over this agent's limit of {limit} bytes "
        "(--max-datastore-size); nothing was changed",
        error_tag="resource-denied",
        error_app_tag="datastore-size-limit",
    )


def _growth_bound(config: etree._Element) -> int:
    """What applying ``config`` may add to the candidate's serialised size, at most.

    The datastore is written pretty-printed with its namespaces declared once
    per module (apply_edit builds its elements: it does not copy the request's
    prefixes), so an element stored takes no more room than the request's own
    pretty-printed (same depths, same indentation); twice that for margin.
    What the request may say once and the datastore repeats is a value's
    namespace declarations (a NACM rule's path keeps its prefixes, declared on
    the leaf): each prefix in a value needs a colon there, and each
    declaration is one the request made. Deletions count as growth: an upper
    estimate. About 4 µs for a one-trustpoint edit.
    """
    text = etree.tostring(config, pretty_print=True)
    widest = max(map(len, _DECLARATION.findall(text)), default=0)
    return 2 * len(text) + text.count(b":") * widest


def _lock_denied(holder: int, message: str) -> DatastoreError:
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
