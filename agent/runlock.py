"""One process at a time per data directory: the running agent, or an offline tool such as recover-admin.

An exclusive ``flock`` on ``DIR/ca-agent.pid`` (which holds the owner's pid,
for messages). The kernel drops the lock when the process dies, even by
``kill -9``, so a stale file never blocks a start.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "ca-agent.pid"


class DataDirInUse(OSError):
    """Another process holds the data directory."""


class RunLock:
    """The held lock; :meth:`release` (or process exit) frees it."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path

    @classmethod
    def acquire(cls, data_dir: Path) -> RunLock:
        """Take the data directory's lock and write our pid into it.

        Raises DataDirInUse (naming the holder's pid) if another process has
        it, OSError if the file cannot be opened.
        """
        path = data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise DataDirInUse(f"{data_dir} is in use by {who} (a running ca-agent?)") from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        """Free the lock (the file stays: removing it would race with a process opening it). Raises nothing."""
        if self._fd < 0:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = -1
