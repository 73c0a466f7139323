"""The replay log of a notification stream (RFC 5277 section 3.2.2): bounded, on disk, crash-safe.

Layout, in one directory (``<data-dir>/notifications/``):

- ``created``: the replayLogCreationTime, written once with the atomic
  helper (and again only if the log had to be started afresh);
- ``replay.log``: the segment being appended to, one JSON line per
  notification (``{"seq": 12, "time": "...", "xml": "<notification ...>"}``);
- ``replay.old``: the previous segment.

Appends are single ``write(2)`` calls of one whole line on an ``O_APPEND``
descriptor, so a ``kill -9`` at any instant leaves every line written so far
intact (the data is in the kernel); no fsync per notification (a power loss
may lose the newest lines, never corrupt older ones). At start-up a line
that does not parse -- the torn tail of a crash during a power loss, or
anything else -- is skipped, and a torn tail is cut off before appending.

The bound: when the current segment holds ``max_entries // 2`` lines or
``max_bytes // 2`` bytes it becomes ``replay.old`` (fsynced, renamed over the
previous one, directory fsynced) and a new segment starts. So at most
``max_entries`` notifications and about ``max_bytes`` bytes are kept on disk
and in memory (defaults: 1,000 notifications, 4 MiB); what ages out of the
old segment can no longer be replayed (``replayLogCreationTime`` stays: the
RFC allows it to be older than the oldest notification kept).

Only one thread appends (the notification dispatcher); readers take a
snapshot under a short lock that is never held across I/O.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from agent.clock import SYSTEM_CLOCK, Clock
from agent.files import atomic_write, ensure_private_dir, fsync_dir, write_all

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ENTRIES", "LoggedNotification", "ReplayLog"]

log = logging.getLogger(__name__)

DEFAULT_MAX_ENTRIES = 1000
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
CREATED_FILE = "created"
CURRENT_FILE = "replay.log"
OLD_FILE = "replay.old"


@dataclass(frozen=True)
class LoggedNotification:
    """One notification of the log: its sequence number, eventTime and ``<notification>`` XML."""

    sequence: int
    event_time: dt.datetime
    xml: bytes


class ReplayLog:
    """The bounded, persisted log of one stream. Appends from one thread; reads from any."""

    def __init__(
        self,
        directory: Path,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """Open (creating, 0700) the log in ``directory`` and read what it holds.

        Raises OSError if the directory cannot be used, ValueError for a
        bound below 2 entries or 2 bytes.
        """
        if max_entries < 2 or max_bytes < 2:
            raise ValueError("the replay log needs room for at least 2 notifications")
        self._dir = ensure_private_dir(directory)
        self._clock = clock
        self._segment_entries = max_entries // 2
        self._segment_bytes = max_bytes // 2
        self._lock = threading.Lock()
        self._entries: collections.deque[LoggedNotification] = collections.deque(maxlen=max_entries)
        self.created = self._creation_time()
        for name in (OLD_FILE, CURRENT_FILE):
            for entry in self._read_segment(self._dir / name):
                self._entries.append(entry)
        current = self._dir / CURRENT_FILE
        self._cut_torn_tail(current)
        in_current = self._read_segment(current)
        self._current_entries = len(in_current)
        self._current_first = in_current[0].sequence if in_current else None
        self._current_bytes = current.stat().st_size if current.exists() else 0
        self._fd = os.open(current, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    # -- reading -------------------------------------------------------------
    @property
    def last_sequence(self) -> int:
        """The sequence number of the newest notification kept (0 if none). Raises nothing."""
        with self._lock:
            return self._entries[-1].sequence if self._entries else 0

    def entries(self) -> list[LoggedNotification]:
        """Every notification kept, oldest first (a snapshot). Raises nothing."""
        with self._lock:
            return list(self._entries)

    # -- writing (the dispatcher thread only) --------------------------------
    def append(self, sequence: int, event_time: dt.datetime, xml: bytes) -> LoggedNotification:
        """Keep one notification (in memory at once, on disk with one write).

        A failed write is logged and the notification kept in memory only.
        Raises nothing.
        """
        entry = LoggedNotification(sequence, event_time, xml)
        line = json.dumps(
            {"seq": sequence, "time": event_time.isoformat(), "xml": xml.decode("utf-8")}, separators=(",", ":")
        ).encode("utf-8") + b"\n"
        with self._lock:
            self._entries.append(entry)
        try:
            if self._current_entries >= self._segment_entries or self._current_bytes + len(line) > self._segment_bytes:
                if self._current_entries:
                    self._rotate()
            write_all(self._fd, line)
            if self._current_first is None:
                self._current_first = sequence
            self._current_entries += 1
            self._current_bytes += len(line)
        except OSError as error:
            log.error("cannot write the notification replay log in %s: %s", self._dir, error)
        return entry

    def close(self) -> None:
        """Close the file (the log stays on disk). Raises nothing."""
        try:
            os.close(self._fd)
        except OSError:
            pass

    # -- internals -------------------------------------------------------------
    def _rotate(self) -> None:
        """The current segment becomes the old one (durably), a new one starts. Raises OSError."""
        os.fsync(self._fd)
        os.close(self._fd)
        os.replace(self._dir / CURRENT_FILE, self._dir / OLD_FILE)
        self._fd = os.open(self._dir / CURRENT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fsync_dir(self._dir)
        # What the replaced old segment held is gone from disk: forget it in memory too.
        keep_from = self._current_first
        with self._lock:
            while self._entries and keep_from is not None and self._entries[0].sequence < keep_from:
                self._entries.popleft()
        self._current_entries = 0
        self._current_bytes = 0
        self._current_first = None

    def _creation_time(self) -> dt.datetime:
        path = self._dir / CREATED_FILE
        try:
            created = dt.datetime.fromisoformat(path.read_text(encoding="utf-8").strip())
            if created.tzinfo is not None:
                return created
        except (OSError, ValueError):
            pass
        # No (readable) creation time: the log starts afresh (RFC 5277: the time is updated when the log resets).
        for name in (CURRENT_FILE, OLD_FILE):
            (self._dir / name).unlink(missing_ok=True)
        created = self._clock.now()
        atomic_write(path, (created.isoformat() + "\n").encode("utf-8"))
        return created

    def _read_segment(self, path: Path) -> list[LoggedNotification]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        entries: list[LoggedNotification] = []
        skipped = 0
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                body = json.loads(line)
                when = dt.datetime.fromisoformat(str(body["time"]))
                if when.tzinfo is None:
                    raise ValueError("naive eventTime")
                entries.append(LoggedNotification(int(body["seq"]), when, str(body["xml"]).encode("utf-8")))
            except (ValueError, KeyError, TypeError):
                skipped += 1
        if skipped:
            log.warning("replay log %s: %d unreadable line%s skipped", path.name, skipped, "s"[: skipped != 1])
        return entries

    @staticmethod
    def _cut_torn_tail(path: Path) -> None:
        """Drop a last line without its newline (a write cut short), so the next append starts a line."""
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with open(path, "r+b") as handle:
            data = handle.read()
            if data.endswith(b"\n"):
                return
            keep = data.rfind(b"\n") + 1
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        log.warning("replay log %s: a torn last line (%d bytes) was removed", path.name, size - keep)
