"""The agent's injectable clock (agent.clock.Clock) as tests drive it."""

from __future__ import annotations

import datetime as dt


class SetClock:
    """``now()`` is whatever the test sets ``current`` to; ``monotonic()`` moves with it (0.0 at the start)."""

    def __init__(self, now: dt.datetime) -> None:
        self.start = self.current = now

    def now(self) -> dt.datetime:
        return self.current

    def monotonic(self) -> float:
        return (self.current - self.start).total_seconds()
