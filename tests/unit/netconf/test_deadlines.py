"""The deadline heap: a cancelled deadline lets go of its callback at once."""

from __future__ import annotations

import gc
import threading
import weakref

from agent.netconf.deadlines import Deadlines


class Holder:
    """Stands for a session or connection a deadline's callback would keep alive."""

    def fire(self) -> None:
        raise AssertionError("a cancelled deadline fired")


def test_a_cancelled_deadline_releases_what_its_callback_holds() -> None:
    deadlines = Deadlines("test-deadlines")
    try:
        holder = Holder()
        alive = weakref.ref(holder)
        deadline = deadlines.after(3600, holder.fire)  # stays in the heap for an hour
        deadline.cancel()
        del holder
        gc.collect()
        assert alive() is None
    finally:
        deadlines.stop()


def test_deadlines_fire_in_order_and_cancelled_ones_do_not() -> None:
    deadlines = Deadlines("test-deadlines")
    fired: list[str] = []
    done = threading.Event()
    try:
        deadlines.after(0.02, lambda: fired.append("second"))
        deadlines.after(0.01, lambda: fired.append("first"))
        deadlines.after(0.015, lambda: fired.append("cancelled")).cancel()
        deadlines.after(0.03, done.set)
        assert done.wait(10)
        assert fired == ["first", "second"]
    finally:
        deadlines.stop()
