"""The commit database: the last commits of running, durable, with their changes and snapshots.

Every change of running (a commit of the candidate, an edit or copy of
running, a confirmed-commit rollback, a ``rollback-configuration``) gets a
:class:`CommitRecord` with an IOS XR-style id (1000000001, 1000000002, ...),
who made it, when, an optional label and comment, the changes, and the
configuration it produced, so that any kept commit can be rolled back to.

On disk, one file per commit, ``DIR/commits/<id>.json.gz`` (metadata and
snapshot together, so a record is written with one atomic write), and the
newest ``keep`` are kept. Writes happen outside every datastore lock (the
datastore's committer thread calls :meth:`CommitHistory.write`).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from agent.datastore.diff import Change, ChangeKind
from agent.files import atomic_write, ensure_private_dir

log = logging.getLogger(__name__)

FIRST_ID = 1000000001  # the router's first commit id
DEFAULT_KEEP = 100
_SUFFIX = ".json.gz"


@dataclass(frozen=True)
class CommitRecord:
    """One commit of running."""

    commit_id: str
    user: str
    session_id: int
    timestamp: dt.datetime
    kind: str  # commit | edit-config | copy-config | rollback | confirmed-commit-rollback | ...
    label: str | None = None
    comment: str | None = None
    changes: tuple[Change, ...] = field(default_factory=tuple)

    def to_json(self, snapshot: bytes) -> dict[str, object]:
        return {
            "id": self.commit_id,
            "user": self.user,
            "session-id": self.session_id,
            "timestamp": self.timestamp.isoformat(),
            "kind": self.kind,
            "label": self.label,
            "comment": self.comment,
            "changes": [
                {"path": c.path, "kind": c.kind.value, "old": c.old_value, "new": c.new_value} for c in self.changes
            ],
            "config": snapshot.decode("utf-8"),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> CommitRecord:
        changes = data.get("changes") or []
        assert isinstance(changes, list)
        return cls(
            commit_id=str(data["id"]),
            user=str(data["user"]),
            session_id=int(str(data["session-id"])),
            timestamp=dt.datetime.fromisoformat(str(data["timestamp"])),
            kind=str(data["kind"]),
            label=str(data["label"]) if data.get("label") is not None else None,
            comment=str(data["comment"]) if data.get("comment") is not None else None,
            changes=tuple(
                Change(str(c["path"]), ChangeKind(c["kind"]), c.get("old"), c.get("new")) for c in changes
            ),
        )


class CommitHistory:
    """The newest ``keep`` commit records of one data directory."""

    def __init__(self, data_dir: Path, keep: int = DEFAULT_KEEP) -> None:
        """Load the records found on disk. Raises OSError."""
        if keep < 2:
            raise ValueError("keep at least two commits")
        self.directory = ensure_private_dir(Path(data_dir) / "commits")
        self.keep = keep
        self._records: list[CommitRecord] = []
        for path in sorted(self.directory.glob("*" + _SUFFIX), key=lambda p: int(p.name.split(".")[0])):
            try:
                self._records.append(CommitRecord.from_json(self._load(path)))
            except (OSError, ValueError, KeyError, AssertionError, EOFError) as error:
                log.warning("commit history: skipping unreadable %s: %s", path.name, error)

    @property
    def records(self) -> list[CommitRecord]:
        """Oldest first."""
        return list(self._records)

    def next_id(self) -> str:
        return str(int(self._records[-1].commit_id) + 1 if self._records else FIRST_ID)

    def _path(self, commit_id: str) -> Path:
        return self.directory / f"{commit_id}{_SUFFIX}"

    @staticmethod
    def _load(path: Path) -> dict[str, object]:
        data = json.loads(gzip.decompress(path.read_bytes()))
        if not isinstance(data, dict):
            raise ValueError("not a commit record")
        return data

    def write(self, record: CommitRecord, snapshot: bytes) -> None:
        """Make ``record`` durable (one atomic write). Raises OSError; nothing is kept then."""
        payload = gzip.compress(json.dumps(record.to_json(snapshot)).encode("utf-8"), compresslevel=1)
        atomic_write(self._path(record.commit_id), payload)

    def added(self, record: CommitRecord) -> None:
        """Take a written record into the list and drop the oldest beyond ``keep``."""
        self._records.append(record)
        while len(self._records) > self.keep:
            old = self._records.pop(0)
            self._path(old.commit_id).unlink(missing_ok=True)

    def discard(self, commit_id: str) -> None:
        """Remove a record whose commit did not take effect (written, then running failed)."""
        self._path(commit_id).unlink(missing_ok=True)
        self._records = [r for r in self._records if r.commit_id != commit_id]

    def snapshot(self, commit_id: str) -> bytes:
        """The configuration a kept commit produced. Raises KeyError if it is not kept."""
        if not any(r.commit_id == commit_id for r in self._records):
            raise KeyError(commit_id)
        return str(self._load(self._path(commit_id))["config"]).encode("utf-8")

    def reconcile(self, running: bytes) -> None:
        """Drop the newest record if its configuration is not running.

        The record of a commit is written before running; a crash between
        the two leaves one record of a commit that never took effect (and was
        never acknowledged).
        """
        if not self._records:
            return
        newest = self._records[-1]
        try:
            if self.snapshot(newest.commit_id) == running:
                return
        except (OSError, ValueError, KeyError):
            pass
        log.warning("commit history: commit %s never reached running; dropped", newest.commit_id)
        self.discard(newest.commit_id)
