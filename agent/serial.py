"""One thread that runs jobs one at a time, in the order they were given.

The datastore's committer and the PKI's state writer are both "single
writer" designs: every change of durable state runs on one thread, so
changes are ordered without any lock being held across their disk I/O (or
across the listeners they call afterwards); callers wait on a future, not on
a lock.

An executor made with ``inline_when_idle`` runs a caller's job on the
caller's own thread when nothing is queued or running: handing a job to
another Python thread and back took 80-130 µs here (two thread wake-ups and
GIL hand-overs), a tenth of an edit of running. The job still runs alone and
in order: while it runs, later jobs queue, and the executor's thread waits
for it before taking the next (the one lock it holds meanwhile; no other
thread ever waits on it). Inside the job :attr:`SerialExecutor.on_thread` is
true, so a job calling :meth:`SerialExecutor.run` still runs inline.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_IDLE_CHECK = 1.0  # seconds: how often an idle inline executor's thread looks for a follow-up left to run


class ExecutorClosedError(RuntimeError):
    """A job given to a :class:`SerialExecutor` after its :meth:`~SerialExecutor.close`."""


class SerialExecutor:
    """Runs callables one at a time, FIFO, on one daemon thread (or, ``inline_when_idle``, on an idle caller's)."""

    def __init__(
        self, name: str, around: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
        inline_when_idle: bool = False,
    ) -> None:
        """``around`` makes the context every job runs in (its exit is part of the job).

        ``inline_when_idle``: :meth:`run` and :meth:`run_then` run the job on the
        caller's thread when no job is queued or running (module docstring).
        """
        self._around = around
        self._inline = inline_when_idle
        # (job, its future, whether the job returns (result, then)): see run_then.
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any], bool] | None] = queue.SimpleQueue()
        # Orders every put against close()'s end marker: a job queued after it would never run, and its
        # caller would wait for ever (a CA's answer arriving after shutdown once held the agent's exit so).
        # Also guards the two fields below.
        self._put_lock = threading.Lock()
        self._closed = False
        self._unfinished = 0  # jobs given and not finished, queued or running (here or inline)
        self._follow_up: Callable[[], object] | None = None  # an inline run_then's, to run before the next job
        self._exclusive = threading.Lock()  # held by whoever runs a job; only the executor's thread waits on it
        self._local = threading.local()  # .running: this thread runs a job inline
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def on_thread(self) -> bool:
        """True when called from within a job: on the executor's own thread, or inline on a caller's."""
        return threading.current_thread() is self._thread or getattr(self._local, "running", False)

    def run(self, job: Callable[[], _T]) -> _T:
        """Run ``job`` after every job queued before it and return its result (or raise its exception).

        A job calling :meth:`run` would wait for itself: it runs inline instead.
        Raises ExecutorClosedError after :meth:`close`.
        """
        if self.on_thread:
            return job()
        if self._inline and self._claim_idle():
            value: _T = self._run_here(job, split=False)
            return value
        future: Future[Any] = Future()
        self._put((job, future, False))
        result: _T = future.result()
        return result

    def run_then(self, job: Callable[[], tuple[_T, Callable[[], object] | None]]) -> _T:
        """Like :meth:`run` for a ``job`` returning ``(result, then)``: the caller has ``result`` as soon as
        the job (and the context it runs in) returns, and ``then`` (if not None) runs right after,
        before any later job: on the executor's thread, or, after a job run inline, on the thread that
        runs the next job (with none coming, on the executor's thread within a second).

        The caller's wait ends before ``then`` ends: work the caller need not wait
        for (a commit's listeners, once the commit is durable) overlaps with what
        the caller does next. ``then``'s exception is logged.
        """
        if self.on_thread:
            result, then = job()
            if then is not None:
                _logged(then)
            return result
        if self._inline and self._claim_idle():
            answer: _T = self._run_here(job, split=True)
            return answer
        future: Future[Any] = Future()
        self._put((job, future, True))
        value: _T = future.result()
        return value

    def submit(self, job: Callable[[], object]) -> None:
        """Queue ``job`` without waiting; its exception is logged. After :meth:`close` it is dropped."""
        try:
            self._put((lambda: _logged(job), Future(), False))
        except ExecutorClosedError:
            log.debug("%s: a job given after close was dropped", self._thread.name)

    def close(self, timeout: float = 10.0) -> None:
        """Finish the queued jobs, then stop (bounded wait). Jobs given later are refused."""
        with self._put_lock:
            if not self._closed:
                self._closed = True
                self._jobs.put(None)
        if not self.on_thread:
            self._thread.join(timeout)

    def _put(self, item: tuple[Callable[[], Any], Future[Any], bool]) -> None:
        with self._put_lock:
            if self._closed:
                raise ExecutorClosedError(f"{self._thread.name} has stopped")
            self._unfinished += 1
            self._jobs.put(item)

    def _claim_idle(self) -> bool:
        """Whether the caller may run its job now, on its own thread (then it counts as running)."""
        with self._put_lock:
            if self._closed:
                raise ExecutorClosedError(f"{self._thread.name} has stopped")
            if self._unfinished:
                return False
            self._unfinished = 1
            return True

    def _run_here(self, job: Callable[[], Any], split: bool) -> Any:
        """Run a claimed job on this thread; a run_then's follow-up is left for whoever runs the next job."""
        try:
            with self._exclusive:
                self._local.running = True
                try:
                    self._run_follow_up()
                    with self._around():
                        result = job()
                finally:
                    self._local.running = False
                if not split:
                    return result
                result, then = result
                if then is not None:
                    # Not handed to the executor's thread: waking it for every commit cost the agent
                    # about five thread switches per edit of running. It looks for one left over
                    # once a second when idle (_loop).
                    with self._put_lock:
                        self._follow_up = then
                return result
        finally:
            with self._put_lock:
                self._unfinished -= 1

    def _run_follow_up(self) -> None:
        """Run the last inline run_then's follow-up, if nobody has yet. Called holding ``_exclusive``."""
        with self._put_lock:
            then, self._follow_up = self._follow_up, None
        if then is not None:
            _logged(then)

    def _loop(self) -> None:
        while True:
            try:
                item = self._jobs.get(timeout=_IDLE_CHECK if self._inline else None)
            except queue.Empty:
                # Idle: an inline run_then's follow-up that no later job ran (a follow-up may end a
                # wait of its own, as the datastore's held listeners do after a time limit).
                if self._follow_up is not None:
                    with self._exclusive:
                        self._run_follow_up()
                continue
            if item is None:
                with self._exclusive:
                    self._run_follow_up()
                return
            with self._exclusive:
                self._run_follow_up()
                try:
                    self._run_queued(*item)
                finally:
                    with self._put_lock:
                        self._unfinished -= 1

    def _run_queued(self, job: Callable[[], Any], future: Future[Any], split: bool) -> None:
        try:
            with self._around():
                result = job()
        except BaseException as error:  # handed to the waiting caller
            future.set_exception(error)
            return
        then = None
        if split:
            result, then = result
        future.set_result(result)
        if then is not None:  # after the job's context has closed (a state writer's directory syncs)
            _logged(then)


class SpareThreads:
    """A few threads that take a caller's side job only when one of them is idle.

    For overlapping two independent waits of one caller (two HTTP exchanges
    with a CA). A job is never queued behind another caller's: when every
    spare thread is busy (a CA that never answers holds one until its
    timeout), the caller runs the job itself, as it would without them.
    """

    def __init__(self, name: str, count: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix=name)  # threads made on demand
        self._idle = threading.BoundedSemaphore(count)

    def beside(self, job: Callable[[], _T]) -> Callable[[], _T] | None:
        """Start ``job`` on an idle spare thread; None when none is idle (run it yourself).

        Returns a function that waits for ``job`` and gives its result or
        raises its exception.
        """
        if not self._idle.acquire(blocking=False):
            return None

        def run() -> _T:
            try:
                return job()
            finally:
                self._idle.release()

        try:
            future = self._pool.submit(run)
        except RuntimeError:  # shut down
            self._idle.release()
            return None
        return future.result

    def close(self) -> None:
        """Take no more jobs; the running ones finish on their own. Raises nothing."""
        self._pool.shutdown(wait=False)


def _logged(job: Callable[[], object]) -> None:
    try:
        job()
    except Exception:
        log.exception("background job failed")
