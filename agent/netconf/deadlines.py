"""One thread that fires callbacks at deadlines (handshake, hello and idle timeouts).

A timer thread per connection would cost a thread per connection for a
callback that almost never runs; here every deadline is an entry in one heap,
and the thread sleeps exactly until the earliest one (no polling tick).
Callbacks run on this thread after its lock is released; they must be short
(closing a socket is).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _nothing() -> None:
    pass


class Deadline:
    """A scheduled callback; :meth:`cancel` makes it a no-op."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        # The heap drops cancelled entries lazily, when they come due: let go of
        # what the callback holds (a session, a connection) now, not then.
        self.callback = _nothing


class Deadlines:
    """A heap of deadlines served by one daemon thread (monotonic time)."""

    def __init__(self, name: str = "netconf-deadlines") -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def after(self, seconds: float, callback: Callable[[], None]) -> Deadline:
        """Call ``callback`` in ``seconds`` unless cancelled first."""
        deadline = Deadline(time.monotonic() + seconds, callback)
        with self._cond:
            heapq.heappush(self._heap, (deadline.when, next(self._counter), deadline))
            if self._heap[0][2] is deadline:
                self._cond.notify()
        return deadline

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    # Cancelled entries are dropped lazily, when they reach the top.
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                if self._stopped:
                    return
                due = heapq.heappop(self._heap)[2]
            if not due.cancelled:
                try:
                    due.callback()
                except Exception:  # one bad callback must not stop the others
                    log.exception("deadline callback failed")
