"""What one request may cost: a CPU budget for filter evaluation, and the session's cancellation.

A hostile filter can be made to cost as much as the attacker likes: a
4-level nested ``count(//*[count(//*...)])`` over a few hundred nodes takes
minutes of CPU, and libxml2's XPath engine cannot be interrupted from
outside. Instead the evaluation is *metered from inside*: the XPath filter is
rewritten so that every location step calls a tiny extension function for
each node it visits (agent/netconf/xpath_rewrite.py), and that function
(:meth:`Meter.tick`) raises once the request has used up its CPU budget or
its session has closed; libxml2 stops evaluating at the first error an
extension function reports. Subtree filters charge the same meter per data
node they compare.

The budget is CPU time of the evaluating thread (``time.thread_time``), not
wall time: it measures what the request costs, whatever the load of the
machine, and is checked every :data:`CHECK_EVERY` steps (a step costs about
0.3 µs, so a check is due every ~0.1 ms of evaluation).

:class:`Cancellation` is the session's "I am gone" signal, passed down as a
value: the session (and its transport, when the client disconnects) cancels
it; whoever does long work on the session's behalf looks at it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from agent.errors import NetconfError

DEFAULT_XPATH_BUDGET = 5.0  # CPU seconds per filter evaluation (`ca-agent --xpath-budget`)
CHECK_EVERY = 256  # steps between two looks at the clock and the cancellation
BUDGET_APP_TAG = "filter-budget-exceeded"


class Cancellation:
    """Set once, from any thread, when the work done for a session is no longer wanted."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Mark as cancelled (idempotent, never blocks, safe under any lock)."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


NEVER_CANCELLED = Cancellation()  # a shared token nobody cancels (use a fresh one to cancel)


@dataclass(frozen=True)
class FilterBudget:
    """The CPU seconds one filter may use, and the session whose closing stops it."""

    seconds: float = DEFAULT_XPATH_BUDGET
    cancellation: Cancellation = field(default=NEVER_CANCELLED)

    def meter(self, hint: str = "fewer nested '//' paths") -> Meter:
        """A fresh meter; its clock starts now, on the calling thread. ``hint``: how to simplify, if it runs out."""
        return Meter(self, hint)


class Meter:
    """Counts the steps of one evaluation; raises when the budget is spent or the session is gone.

    One meter belongs to one evaluation on one thread.
    """

    __slots__ = ("steps", "_limit", "_cancellation", "_started", "_next_check", "_hint")

    def __init__(self, budget: FilterBudget, hint: str = "fewer nested '//' paths") -> None:
        self.steps = 0
        self._hint = hint
        self._limit = budget.seconds
        self._cancellation = budget.cancellation
        self._started = time.thread_time()
        self._next_check = CHECK_EVERY

    def tick(self, _context: object = None) -> bool:
        """One step (the XPath extension function; always true, so a predicate keeps every node).

        Raises NetconfError operation-failed when the budget is spent or the
        session was cancelled.
        """
        self.steps += 1
        if self.steps >= self._next_check:
            self._next_check = self.steps + CHECK_EVERY
            self.check()
        return True

    def charge(self, steps: int) -> None:
        """Count ``steps`` at once (Python-side work such as subtree matching). Raises as :meth:`tick`."""
        self.steps += steps
        if self.steps >= self._next_check:
            self._next_check = self.steps + CHECK_EVERY
            self.check()

    def check(self) -> None:
        """Raise now if the session is gone or the budget is spent (NetconfError operation-failed)."""
        if self._cancellation.cancelled:
            raise NetconfError(
                "filter evaluation stopped: the session closed",
                error_tag="operation-failed",
                error_type="application",
            )
        used = time.thread_time() - self._started
        if used > self._limit:
            raise NetconfError(
                f"the filter needs more than its budget of {self._limit:g} s of CPU "
                f"(stopped after {self.steps} steps); simplify it (e.g. {self._hint})",
                error_tag="operation-failed",
                error_type="application",
                error_app_tag=BUDGET_APP_TAG,
            )
