"""The commit database: the last commits of running, durable, with their changes and snapshots.

Every change of running (a commit of the candidate, an edit or copy of
running, a confirmed-commit rollback, a ``rollback-configuration``) gets a
:class:`CommitRecord` with an IOS XR-style id (1000000001, 1000000002, ...),
who made it, when, an optional label and comment, the changes, and the
configuration it produced, so that any kept commit can be rolled back to.

On disk this is a journal, ``DIR/commits/journal-<first id>.log``: each
commit is one frame (padded to 4 KiB) appended to the newest segment, with one ``fdatasync``
(a new segment, every ``keep`` commits, also syncs the directory). That is
the commit's durable point: the configuration of running is the snapshot of
the newest frame. A frame is ``CJ``, its length and its CRC-32, then the
record (JSON) and snapshot as a zlib stream (compressed when over 32 KiB,
stored below: :data:`_STORE_UP_TO`); a crash while appending leaves a
torn last frame, which the next start cuts off (that commit was never
acknowledged). Segments whose commits are all older than the newest ``keep``
are deleted. Per-commit files of the earlier format (``<id>.json.gz``) are
moved into the journal at the first start.

A large commit's changes may follow it (``changes_follow``): its frame holds
the record without them and is the durable point as above; the changes,
computed after the commit is answered, come in a frame of their own
(``{"changes-of": id, "changes": [...]}``, not synced: the next commit's sync
carries it). A crash between the two leaves a commit without changes, which
the next start computes again from its snapshot and the one before it
(:meth:`CommitHistory.missing_changes`). Until its changes are recorded a
commit is not listed in :attr:`CommitHistory.records`.

Writes happen outside every datastore lock (the datastore's committer's jobs
call :meth:`CommitHistory.append`, one at a time; :meth:`CommitHistory.complete` runs with
the commit's listeners, before the committer's next job).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent.datastore.diff import Change, ChangeKind
from agent.files import ensure_private_dir, fsync_dir, write_all

log = logging.getLogger(__name__)

FIRST_ID = 1000000001  # the router's first commit id
DEFAULT_KEEP = 100
_LEGACY_SUFFIX = ".json.gz"
_SEGMENT = "journal-{}.log"
_MAGIC = b"CJ"
_HEADER = struct.Struct(">2sII")  # magic, payload length, CRC-32 of the payload
_CHANGES_OF = "changes-of"
"""A frame whose record has this key holds the changes of that commit (appended after it)."""
_ALIGN = 4096
"""Frames start at multiples of this: every commit takes blocks of its own, so on a full disk every
commit is refused (appending into the slack of the last block would let a few through)."""


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


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
    changes_follow: bool = False
    """The changes are not known yet: :meth:`CommitHistory.complete` records them (a large commit's
    changes are computed after its caller is answered)."""

    def to_json(self) -> dict[str, object]:
        return {**self._head(), "changes": [list(change[:4]) for change in self.changes]}

    def _json(self, changes_json: str | None) -> str:
        """The record as JSON text, with its changes already encoded (they are most of it); None: to follow."""
        if changes_json is None:
            return f'{json.dumps(self._head())[:-1]}, "changes": [], "changes-follow": true}}'
        return f'{json.dumps(self._head())[:-1]}, "changes": {changes_json}}}'

    def _head(self) -> dict[str, object]:
        return {
            "id": self.commit_id,
            "user": self.user,
            "session-id": self.session_id,
            "timestamp": self.timestamp.isoformat(),
            "kind": self.kind,
            "label": self.label,
            "comment": self.comment,
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
            changes=tuple(_change_from_json(c) for c in changes),
            changes_follow=data.get("changes-follow") is True,
        )


_KINDS = {kind.value: kind for kind in ChangeKind}


def _changes_json(changes: tuple[Change, ...]) -> str:
    """``[[path, kind, old, new], ...]`` (journals written before this format hold ``{"path", "kind",
    "old", "new"}`` objects: :func:`_change_from_json` reads both). ``ChangeKind`` is a str, so the
    C encoder writes each change's first four fields as they are: 7,000 per bulk commit."""
    return json.dumps([change[:4] for change in changes])


_PACK_OVER = 2048
"""Changes JSON longer than this is kept compressed in memory; shorter, as it is. A one-entry commit's
few hundred bytes shrink by ~100 bytes, and compressing them cost the committer ~20 µs before the
reply (zlib sets up its state for every call)."""


_STORE_UP_TO = 32 * 1024
"""A frame's record and snapshot up to this size are written as a stored zlib stream (level 0: the
bytes as they are, with zlib's framing and checksum), larger ones compressed (level 1). Compressing a
small datastore's ~25 KB took ~65 µs of the committer's time before the reply, against ~10 µs to
store it, to save ~24 KiB of disk per commit (compressed, its frame pads to 4 KiB); the journal's
frames then take at most 200 × 36 KiB below this size (the newest ``keep`` commits, in at most two
segments). Every reader decompresses both alike (earlier agents included)."""


def _packed(changes_json: str) -> bytes:
    """The changes as kept in memory: their JSON (a list: ``[``...), zlib-compressed when long."""
    raw = changes_json.encode("utf-8")
    return zlib.compress(raw, 1) if len(raw) > _PACK_OVER else raw


def _unpacked(packed: bytes) -> tuple[Change, ...]:
    items = json.loads(packed if packed.startswith(b"[") else zlib.decompress(packed))  # zlib's start 0x78
    assert isinstance(items, list)
    return tuple(_change_from_json(item) for item in items)


def _change_from_json(item: object) -> Change:
    if isinstance(item, list):
        path, kind, old, new = item
        return Change(str(path), _KINDS[kind], old, new)
    assert isinstance(item, dict)
    return Change(str(item["path"]), ChangeKind(item["kind"]), item.get("old"), item.get("new"))


@dataclass
class _Stored:
    """A kept record, and where its frame is: segment file and payload offset/length.

    The record's changes are kept as JSON (compressed when long: :func:`_packed`), not as objects: a bulk
    commit of 1,000 trustpoints records 7,000 changes, and a hundred such
    commits held as named tuples took ~180 MB and made every full garbage
    collection walk 700,000 of them (measured: 40–80 ms each, several per
    bulk edit). They are unpacked when the records are read.
    """

    header: CommitRecord
    """The record without its changes."""
    changes: bytes | None
    """None while they are to follow (:meth:`CommitHistory.complete`)."""
    segment: Path
    offset: int
    length: int

    @property
    def record(self) -> CommitRecord:
        assert self.changes is not None
        return replace(self.header, changes=_unpacked(self.changes))


class CommitHistory:
    """The newest ``keep`` commit records of one data directory, in an append-only journal."""

    def __init__(self, data_dir: Path, keep: int = DEFAULT_KEEP) -> None:
        """Load the records found on disk (cutting off a torn last frame). Raises OSError."""
        if keep < 2:
            raise ValueError("keep at least two commits")
        self.directory = ensure_private_dir(Path(data_dir) / "commits")
        self.keep = keep
        self._stored: list[_Stored] = []
        self._fd: int | None = None
        self._segment: Path | None = None
        self._segment_count = 0
        self._oldest_segment: Path | None = None
        segments = _segment_paths(self.directory)
        for segment in segments:
            self._read_segment(segment, last=segment == segments[-1])
        self._migrate_legacy(data_dir)
        self._trim()

    # -- reading -------------------------------------------------------------
    @property
    def records(self) -> list[CommitRecord]:
        """Oldest first; a commit whose changes are still to follow is not shown yet."""
        return [s.record for s in self._stored if s.changes is not None]

    def missing_changes(self) -> list[tuple[str, bytes | None, bytes]]:
        """(commit id, the configuration before it, after it) of each commit whose changes never followed.

        A crash between a commit and the frame of its changes leaves one; the
        caller diffs the two and calls :meth:`complete`. "Before" is None
        when the commit before it is no longer kept. Raises OSError.
        """
        missing = []
        for index, stored in enumerate(self._stored):
            if stored.changes is None:
                before = _unpack(self._read(self._stored[index - 1]))[1] if index else None
                missing.append((stored.header.commit_id, before, _unpack(self._read(stored))[1]))
        return missing

    @property
    def commit_ids(self) -> list[str]:
        """Oldest first (without unpacking the records' changes)."""
        return [s.header.commit_id for s in self._stored]

    def next_id(self) -> str:
        return str(int(self._stored[-1].header.commit_id) + 1 if self._stored else FIRST_ID)

    def snapshot(self, commit_id: str) -> bytes:
        """The configuration a kept commit produced. Raises KeyError if it is not kept, OSError."""
        for stored in self._stored:
            if stored.header.commit_id == commit_id:
                return _unpack(self._read(stored))[1]
        raise KeyError(commit_id)

    def latest_snapshot(self) -> bytes | None:
        """The configuration of the newest commit (what running is), None if there is none."""
        if not self._stored:
            return None
        return _unpack(self._read(self._stored[-1]))[1]

    @staticmethod
    def _read(stored: _Stored) -> bytes:
        with open(stored.segment, "rb") as handle:
            handle.seek(stored.offset)
            return handle.read(stored.length)

    def _read_segment(self, segment: Path, last: bool) -> None:
        data = segment.read_bytes()
        offset = 0
        count = 0
        for start, length in _frames(data):
            offset = _aligned(start + length)
            try:
                meta, _ = _unpack(data[start:start + length])
                if _CHANGES_OF in meta:
                    self._attach(meta)
                    continue
                record = CommitRecord.from_json(meta)
            except (ValueError, KeyError, AssertionError, zlib.error) as error:
                log.warning("commit history: skipping an unreadable commit in %s: %s", segment.name, error)
            else:
                if self._stored and int(record.commit_id) <= int(self._stored[-1].header.commit_id):
                    log.warning("commit history: commit %s out of order in %s, skipped", record.commit_id,
                                segment.name)
                else:
                    changes_json = None if record.changes_follow else _changes_json(record.changes)
                    self._stored.append(_stored(record, changes_json, segment, start, length))
            count += 1
        if offset < len(data):
            if last:
                # A crash while appending: the commit was never acknowledged.
                log.warning("commit history: cutting off an incomplete last commit in %s (%d bytes)",
                            segment.name, len(data) - offset)
                with open(segment, "r+b") as handle:
                    handle.truncate(offset)
                    os.fsync(handle.fileno())
            else:
                log.warning("commit history: %s is damaged after %d commits", segment.name, count)
        if last:
            self._segment, self._segment_count = segment, count

    def _attach(self, meta: dict[str, object]) -> None:
        """A changes frame read from the journal: its commit's changes (one no longer kept: ignored)."""
        changes = meta.get("changes")
        if not isinstance(changes, list):
            raise ValueError("a changes frame without changes")
        stored = self._find(str(meta[_CHANGES_OF]))
        if stored is not None and stored.changes is None:
            stored.changes = _packed(json.dumps(changes))

    def _find(self, commit_id: str) -> _Stored | None:
        for stored in reversed(self._stored):
            if stored.header.commit_id == commit_id:
                return stored
        return None

    def _migrate_legacy(self, data_dir: Path) -> None:
        """Move the per-commit files of the earlier format into the journal."""
        legacy = sorted(self.directory.glob("*" + _LEGACY_SUFFIX), key=lambda p: int(p.name.split(".")[0]))
        if not legacy:
            return
        loaded: list[tuple[CommitRecord, bytes]] = []
        for path in legacy:
            try:
                data = json.loads(gzip.decompress(path.read_bytes()))
                loaded.append((CommitRecord.from_json(data), str(data["config"]).encode("utf-8")))
            except (OSError, ValueError, KeyError, AssertionError, EOFError) as error:
                log.warning("commit history: skipping unreadable %s: %s", path.name, error)
        running = Path(data_dir) / "running.xml"
        if loaded and running.exists() and loaded[-1][1] != running.read_bytes():
            # Written before running, the newest record of a commit that never took effect.
            log.warning("commit history: commit %s never reached running; dropped", loaded[-1][0].commit_id)
            loaded.pop()
        newest = int(self._stored[-1].header.commit_id) if self._stored else 0
        for record, snapshot in loaded:
            if int(record.commit_id) > newest:
                self.append(record, snapshot)
        for path in legacy:
            path.unlink(missing_ok=True)
        fsync_dir(self.directory)
        log.info("commit history: %d commits moved into the journal", len(loaded))

    # -- writing -------------------------------------------------------------
    def append(self, record: CommitRecord, snapshot: bytes) -> None:
        """Make ``record`` durable: one frame appended and fdatasync'ed. Raises OSError (nothing kept then).

        A record whose ``changes_follow`` is durable without them: :meth:`complete` adds them.
        """
        changes_json = None if record.changes_follow else _changes_json(record.changes)
        fd = self._writable()
        start, length = self._write_frame(fd, record._json(changes_json).encode("utf-8") + b"\0" + snapshot,
                                          sync=True)
        assert self._segment is not None
        self._stored.append(_stored(record, changes_json, self._segment, start, length))
        self._segment_count += 1
        self._trim()

    def complete(self, commit_id: str, changes: tuple[Change, ...]) -> None:
        """Record the changes of a commit appended with ``changes_follow``; raises nothing.

        Their frame is not synced: the next commit's sync carries it to disk,
        and a crash before that leaves the commit without changes, which the
        next start computes again from the snapshots (:meth:`missing_changes`).
        """
        stored = self._find(commit_id)
        if stored is None or stored.changes is not None:
            return
        changes_json = _changes_json(changes)
        meta = f'{{"{_CHANGES_OF}": {json.dumps(commit_id)}, "changes": {changes_json}}}'
        try:
            self._write_frame(self._writable(), meta.encode("utf-8") + b"\0", sync=False)
        except OSError as error:
            log.warning("commit history: cannot record the changes of commit %s (%s); the next start "
                        "computes them again", commit_id, error)
        stored.changes = _packed(changes_json)

    def _write_frame(self, fd: int, raw: bytes, sync: bool) -> tuple[int, int]:
        """Append one frame of ``raw`` (a zlib stream: :data:`_STORE_UP_TO`), padded: (payload offset,
        length). Raises OSError (none left behind)."""
        payload = zlib.compress(raw, 1 if len(raw) > _STORE_UP_TO else 0)
        frame = _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload
        frame += b"\0" * (_aligned(len(frame)) - len(frame))
        offset = os.lseek(fd, 0, os.SEEK_END)
        try:
            write_all(fd, frame)
            if sync:
                os.fdatasync(fd)
        except OSError:
            try:  # leave no partial frame behind (the next start would cut it off anyway)
                os.ftruncate(fd, offset)
            except OSError:
                pass
            raise
        return offset + _HEADER.size, len(payload)

    def _writable(self) -> int:
        if self._segment is None or self._segment_count >= self.keep:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            segment = self.directory / _SEGMENT.format(self.next_id())
            fd = os.open(segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fsync_dir(self.directory)  # the new segment's name is durable before any commit in it
            except OSError:
                os.close(fd)
                segment.unlink(missing_ok=True)
                raise
            self._fd, self._segment, self._segment_count = fd, segment, 0
        if self._fd is None:
            self._fd = os.open(self._segment, os.O_WRONLY | os.O_APPEND)
        return self._fd

    def _trim(self) -> None:
        """Forget all but the newest ``keep``; delete the segments left with none of them."""
        if len(self._stored) > self.keep:
            self._stored = self._stored[-self.keep:]
        oldest = self._stored[0].segment if self._stored else self._segment
        if oldest is self._oldest_segment:
            return  # no segment can have emptied since the last look
        self._oldest_segment = oldest
        live = {s.segment for s in self._stored} | ({self._segment} if self._segment else set())
        for segment in _segment_paths(self.directory):
            if segment not in live:
                segment.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _stored(record: CommitRecord, changes_json: str | None, segment: Path, offset: int, length: int) -> _Stored:
    packed = _packed(changes_json) if changes_json is not None else None
    return _Stored(replace(record, changes=(), changes_follow=False), packed, segment, offset, length)


def _frame_at(data: bytes, offset: int) -> tuple[int, int] | None:
    """(payload start, payload length) of a whole, intact frame at ``offset``; None if torn or bad."""
    if len(data) - offset < _HEADER.size:
        return None
    magic, length, crc = _HEADER.unpack_from(data, offset)
    start = offset + _HEADER.size
    if magic != _MAGIC or start + length > len(data) or zlib.crc32(data[start:start + length]) != crc:
        return None
    return start, length


def _frames(data: bytes) -> Iterator[tuple[int, int]]:
    """(payload start, payload length) of each intact frame of a segment, up to the first torn or bad one."""
    offset = 0
    while (frame := _frame_at(data, offset)) is not None:
        yield frame
        offset = _aligned(frame[0] + frame[1])


def _segment_paths(directory: Path) -> list[Path]:
    """The journal's segments in ``directory``, oldest first (by the first commit id in their names)."""
    found = []
    for path in directory.glob(_SEGMENT.format("*")):
        try:
            found.append((int(path.name[len("journal-"):-len(".log")]), path))
        except ValueError:
            continue
    return [path for _, path in sorted(found)]


def _unpack(payload: bytes) -> tuple[dict[str, object], bytes]:
    """(record JSON, snapshot) of a frame's payload. Raises ValueError, zlib.error."""
    raw = zlib.decompress(payload)
    meta, sep, snapshot = raw.partition(b"\0")
    if not sep:
        raise ValueError("no snapshot in the commit frame")
    data = json.loads(meta)
    if not isinstance(data, dict):
        raise ValueError("not a commit record")
    return data, snapshot


def read_journal(data_dir: Path) -> list[tuple[dict[str, object], bytes]]:
    """Every readable commit in ``DIR/commits`` (record as JSON, configuration), oldest first.

    A commit whose changes never followed (a crash) is read with ``"changes-follow": true``.

    Read only (a torn tail is skipped, not cut off): for tools and tests
    that look at a data directory. Raises OSError.
    """
    found: list[tuple[dict[str, object], bytes]] = []
    for segment in _segment_paths(Path(data_dir) / "commits"):
        data = segment.read_bytes()
        for start, length in _frames(data):
            try:
                meta, snapshot = _unpack(data[start:start + length])
            except (ValueError, zlib.error):
                continue
            if _CHANGES_OF not in meta:
                found.append((meta, snapshot))
                continue
            for earlier, _ in reversed(found):  # a changes frame: into its commit's record
                if earlier.get("id") == meta[_CHANGES_OF] and earlier.pop("changes-follow", False):
                    earlier["changes"] = meta.get("changes")
                    break
    return found
