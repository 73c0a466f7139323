"""The agent's log on standard error, written by a thread of its own.

logging's ``StreamHandler`` writes on the thread that logs, holding the
handler's lock. When whatever reads standard error stops reading (a paused
pager, a stopped ``journald``, a full pipe to a supervisor), that write blocks,
and so does every later log call on its lock: a NETCONF session that answered
an ``rpc-error`` hung for good, and with it anything else that logged. With
100 sessions the lock was also where sessions queued for each other.

Here a log call formats its line and queues it (never blocking); one thread
writes. Beyond :data:`QUEUE_LIMIT` bytes of waiting lines (lines can hold what
a client sent, so a count of lines would not bound memory), lines are dropped
and counted, as the syslog sender does, and the next line written says how
many.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TextIO

QUEUE_LIMIT = 1024 * 1024  # characters of lines waiting for a reader that stopped reading


class StderrLog(logging.Handler):
    """A logging handler that hands formatted lines to a writer thread (started at once)."""

    def __init__(self, stream: TextIO, limit: int = QUEUE_LIMIT) -> None:
        super().__init__()
        self._stream = stream
        self._limit = limit
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._counts = threading.Condition(threading.Lock())
        self._dropped = 0
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
        """Queue ``record``'s line; never blocks. Raises nothing."""
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - a bad format string must not break the caller
            self.handleError(record)
            return
        with self._counts:
            if self._closed:
                return
            if self._queued_size + len(line) > self._limit:
                self._dropped += 1
                return
            self._unwritten += 1
            self._queued_size += len(line)
            self._queue.put(line)  # (SimpleQueue.put never blocks) before close() can queue the end

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
        reported = 0
        while True:
            line = self._queue.get()
            if line is None:
                return
            with self._counts:
                dropped = self._dropped
            try:
                if dropped != reported:
                    self._stream.write(
                        f"ca-agent: {dropped - reported} log lines dropped: standard error was not being read\n"
                    )
                    reported = dropped
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass  # standard error closed or gone: nothing else to tell it
            finally:
                with self._counts:
                    self._unwritten -= 1
                    self._queued_size -= len(line)
                    self._counts.notify_all()
