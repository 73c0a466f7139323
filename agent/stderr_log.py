"""The agent's log on standard error, which a reader that stops reading cannot hold up.

logging's ``StreamHandler`` writes on the thread that logs, holding the
handler's lock. When whatever reads standard error stops reading (a paused
pager, a stopped ``journald``, a full pipe to a supervisor), that write blocks,
and so does every later log call on its lock: a NETCONF session that answered
an ``rpc-error`` hung for good, and with it anything else that logged, logins
included.

Here a log call never blocks. It writes its line itself only when nothing is
queued before it, the line is short, and the stream takes it at once (``poll``
says a pipe has room); otherwise it queues the line for a thread of its own.
(Queueing every line halved the reads of the 100-session benchmark, with
twice the lock retries; writing here, as ``StreamHandler`` did, does not.) Beyond
:data:`QUEUE_LIMIT` characters of waiting lines (lines can hold what a client
sent, so a count of lines would not bound memory), lines are dropped and
counted, as the syslog sender does, and the next line written says how many.
A record's message is cut after :data:`MAX_MESSAGE` characters (its traceback,
if any, is kept whole): messages quote what clients sent, and a login with a
200 KB user name wrote a 200 KB line.
"""

from __future__ import annotations

import logging
import queue
import select
import threading
from typing import TextIO

QUEUE_LIMIT = 1024 * 1024  # characters of lines waiting for a reader that stopped reading
MAX_MESSAGE = 4096  # characters of one record's message; more are cut, and how many said
# Longest line (in characters) the logging thread writes itself: a pipe with room takes PIPE_BUF = 4096 bytes
# at once, and 400 characters stay under it whatever their encoding (at most 10 bytes each, escaped).
_AT_ONCE = 400


class StderrLog(logging.Handler):
    """A logging handler that writes a line at once when the stream takes it, else queues it for its thread."""

    def __init__(self, stream: TextIO, limit: int = QUEUE_LIMIT) -> None:
        super().__init__()
        self._stream = stream
        self._poller = _writability_poller(stream)  # None: not a file, only the writer thread writes to it
        self._limit = limit
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._counts = threading.Condition(threading.Lock())
        self._dropped = 0
        self._reported = 0  # of the dropped lines, those a line written has told about
        self._unwritten = 0  # lines queued and not yet written (or given up on)
        self._queued_size = 0  # their characters
        self._closed = False
        self._thread = threading.Thread(target=self._write_lines, name="stderr-log", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Lines dropped so far because the reader fell behind by more than the limit."""
        with self._counts:
            return self._dropped

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record``'s line, or queue it; never blocks. Raises nothing."""
        try:
            line = self.format(_cut(record))
        except Exception:  # noqa: BLE001 - a bad format string must not break the caller
            self.handleError(record)
            return
        with self._counts:
            if self._closed:
                return
            if self._unwritten == 0 and self._dropped == self._reported and self._takes_at_once(line):
                # Nothing waits before it, and the stream takes it without blocking: written here, as
                # StreamHandler did (queueing every line halved the 100-session benchmark's reads).
                self._write(line + "\n")
                return
            if self._queued_size + len(line) > self._limit:
                self._dropped += 1
                return
            self._unwritten += 1
            self._queued_size += len(line)
            self._queue.put(line)  # (SimpleQueue.put never blocks) before close() can queue the end

    def _takes_at_once(self, line: str) -> bool:
        """Whether the stream takes ``line`` now without blocking (a pipe with room for it, a file).

        Called with ``_counts`` held: one caller at a time uses the poller.
        """
        return len(line) < _AT_ONCE and self._poller is not None and bool(self._poller.poll(0))

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # standard error closed or gone: nothing else to tell it

    def drain(self, timeout: float = 2.0) -> bool:
        """Wait until the queued lines are written; False if not within ``timeout`` s. Raises nothing."""
        with self._counts:
            return self._counts.wait_for(lambda: self._unwritten == 0, timeout)

    def flush(self) -> None:
        """Wait (at most 2 s) until the queued lines are written."""
        self.drain()

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (for at most ``timeout`` s: the reader may be gone), then stop."""
        with self._counts:
            closed, self._closed = self._closed, True
        if not closed:
            self._queue.put(None)
            self._thread.join(timeout)
        super().close()

    def _write_lines(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                return
            with self._counts:
                dropped, reported = self._dropped, self._reported
                self._reported = dropped
            notice = "" if dropped == reported else (
                f"ca-agent: {dropped - reported} log lines dropped: standard error was not being read\n"
            )
            try:
                self._write(notice + line + "\n")
            finally:
                with self._counts:
                    self._unwritten -= 1
                    self._queued_size -= len(line)
                    self._counts.notify_all()


def _writability_poller(stream: TextIO) -> select.poll | None:
    """A poller asking whether ``stream``'s file takes a write at once; None when it is not a file."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return None
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return poller


def _cut(record: logging.LogRecord) -> logging.LogRecord:
    """``record``, or a copy whose message stops after :data:`MAX_MESSAGE` characters and says how many more."""
    message = record.getMessage()
    if len(message) <= MAX_MESSAGE:
        return record
    shortened = f"{message[:MAX_MESSAGE]} ... ({len(message) - MAX_MESSAGE} more characters)"
    return logging.makeLogRecord({**record.__dict__, "msg": shortened, "args": None})
