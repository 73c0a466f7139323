"""The one atomic-write helper: every durable state file goes through here.

A crash at any instant leaves either the old or the new content, never a mix:
write a temporary file in the same directory, fsync it, rename it over the
target, then fsync the directory so the rename itself is durable.

A single-writer step that changes several files of one directory (a
certificate and its enrollment record) runs inside
:func:`deferred_directory_syncs`: each directory is then synced once, when
the step ends, instead of after every rename.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

_deferred = threading.local()


@contextlib.contextmanager
def deferred_directory_syncs() -> Iterator[None]:
    """Within this thread's block, :func:`fsync_dir` only notes the directory; each is synced once at the end.

    Everything renamed or unlinked inside the block is durable when the
    block is left (also when it is left by an exception: what was renamed
    stays renamed, so it is made durable too); then the block's
    :func:`when_durable` callbacks run. Nested blocks sync at the outermost
    one's end. Raises OSError from the syncs (the callbacks do not run then).
    """
    if getattr(_deferred, "dirs", None) is not None:
        yield
        return
    pending: dict[str, None] = {}
    callbacks: list[Callable[[], None]] = []
    _deferred.dirs = pending
    _deferred.callbacks = callbacks
    try:
        yield
    finally:
        _deferred.dirs = None
        _deferred.callbacks = None
        for directory in pending:
            _sync_dir(directory)
        for callback in callbacks:
            callback()


def when_durable(callback: Callable[[], None]) -> None:
    """Call ``callback`` once what this thread wrote so far is durable: at once, or at the end of
    its deferred block (so nothing is announced before it would survive a crash)."""
    callbacks: list[Callable[[], None]] | None = getattr(_deferred, "callbacks", None)
    if callbacks is None:
        callback()
    else:
        callbacks.append(callback)


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Raises OSError if the directory is not writable.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def overwrite_file(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` over ``path`` in place: neither atomic nor durable, and cheap.

    Only for files derived from durable state (``running.xml``, rebuilt from
    the commit journal at start-up): a reader at the same instant, or a
    crash, may see it half-written. Replacing by rename would be atomic, but
    on ext4 each rename over a file forces the new data out first (up to 4 ms
    here, on every commit). Raises OSError.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, mode)
    try:
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], written)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd``: one write(2) on a regular file, looping only if the kernel writes less.

    Raises OSError.
    """
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in ``directory`` durable (at the end of a deferred block, if in one)."""
    pending: dict[str, None] | None = getattr(_deferred, "dirs", None)
    if pending is not None:
        pending[os.fspath(directory)] = None
        return
    _sync_dir(directory)


def _sync_dir(directory: str | os.PathLike[str]) -> None:
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def secure_delete(path: str | os.PathLike[str]) -> None:
    """Overwrite a file with random bytes, fsync, then unlink it (key zeroize).

    Missing files are ignored.
    """
    target = Path(path)
    try:
        size = target.stat().st_size
    except FileNotFoundError:
        return
    with open(target, "r+b") as handle:
        handle.write(secrets.token_bytes(max(size, 1)))
        handle.flush()
        os.fsync(handle.fileno())
    target.unlink()
    fsync_dir(target.parent)


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (mode 0700) if needed and return it."""
    directory = Path(path)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    return directory


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> int:
    """Delete the temporary files of writes a crash interrupted (``.NAME.HEX.tmp``), recursively.

    They may hold secrets (a configuration with password hashes) and are
    never read. Returns how many were removed. Raises OSError.
    """
    removed = 0
    for path in Path(directory).rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed
