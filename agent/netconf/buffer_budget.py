"""One cap on the bytes that all sessions hold for their clients together.

Each session may hold a message of up to ``--max-message-size`` (16 MiB)
while it arrives, and up to 64 MiB of replies its client has not read. One
session's bounds are fine; 256 sessions' add up to 4 and 16 GiB. Twelve
sessions that each sent 15 MiB of a message and never finished it took the
agent from 68 to 269 MiB; six that asked for 60 MB of replies without
reading them, from 86 to 436 MiB. So any user who can log in could have run
the agent out of memory.

A :class:`BufferBudget` caps the total. When an update would take the total
over the cap, the holder of the most is given up: it is taken out of the
budget and returned, for the caller to end. That is the newcomer itself when
it holds the most. So sessions holding a little (ordinary requests) are not
ended while others hold a lot, and the agent's memory stays bounded.

No call leaves this module under its lock: the caller ends the session.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

Owner = TypeVar("Owner")

DEFAULT_MAX_BUFFERED_INPUT = 128 * 1024 * 1024  # eight messages of the default 16 MiB limit at once
DEFAULT_MAX_BUFFERED_OUTPUT = 128 * 1024 * 1024  # two sessions at their own limit (max_pending_output, 64 MiB)


class BufferBudget(Generic[Owner]):
    """The bytes held by owners (sessions), capped in total. Thread-safe."""

    def __init__(self, limit: int) -> None:
        """Raises ValueError for a non-positive ``limit``."""
        if limit <= 0:
            raise ValueError("a buffer budget must be positive")
        self.limit = limit
        self._lock = threading.Lock()
        self._held: dict[Owner, int] = {}
        self._total = 0

    @property
    def total(self) -> int:
        """The bytes held now, by all owners."""
        with self._lock:
            return self._total

    def update(self, owner: Owner, held: int) -> Owner | None:
        """Record that ``owner`` now holds ``held`` bytes.

        Returns None while the total stays within the limit. Over it, returns
        the owner holding the most (``owner`` itself when that is it), already
        taken out of the budget: the caller ends it.
        """
        with self._lock:
            self._total += held - self._held.get(owner, 0)
            if held:
                self._held[owner] = held
            else:
                self._held.pop(owner, None)
            if self._total <= self.limit:
                return None
            largest = max(self._held, key=self._held.__getitem__)
            self._total -= self._held.pop(largest)
            return largest

    def release(self, owner: Owner) -> None:
        """``owner`` holds nothing any more (it ended). Raises nothing."""
        with self._lock:
            self._total -= self._held.pop(owner, 0)
