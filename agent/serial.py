"""One thread that runs jobs one at a time, in the order they were given.

The datastore's committer and the PKI's state writer are both "single
writer" designs: every change of durable state runs on one thread, so
changes are ordered without any lock being held across their disk I/O (or
across the listeners they call afterwards); callers wait on a future, not on
a lock.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class SerialExecutor:
    """Runs callables on one daemon thread, FIFO."""

    def __init__(self, name: str, around: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext) -> None:
        """``around`` makes the context every job runs in (its exit is part of the job)."""
        self._around = around
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def on_thread(self) -> bool:
        """True when called from the executor's own thread (a job)."""
        return threading.current_thread() is self._thread

    def run(self, job: Callable[[], _T]) -> _T:
        """Run ``job`` after every job queued before it and return its result (or raise its exception).

        A job calling :meth:`run` would wait for itself: it runs inline instead.
        """
        if self.on_thread:
            return job()
        future: Future[Any] = Future()
        self._jobs.put((job, future))
        result: _T = future.result()
        return result

    def submit(self, job: Callable[[], object]) -> None:
        """Queue ``job`` without waiting; its exception is logged."""

        def logged() -> None:
            try:
                job()
            except Exception:
                log.exception("background job failed")

        self._jobs.put((logged, Future()))

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued jobs, then stop (bounded wait)."""
        self._jobs.put(None)
        if not self.on_thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, future = item
            try:
                with self._around():
                    result = job()
            except BaseException as error:  # handed to the waiting caller
                future.set_exception(error)
                continue
            future.set_result(result)
