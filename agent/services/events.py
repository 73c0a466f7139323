"""The fan-out of PKI events to their consumers (syslog, SNMP traps, NETCONF notifications).

The PKI backend produces plain event objects (agent/pki/events.py);
producers call :meth:`EventBus.publish`, which only queues the event, so it
may be called from any thread whatever locks that thread holds (e.g. from
the enrollment listener, which runs under a trustpoint's lock). One
dispatcher thread then hands each event, in publication order, to every
subscriber, with no producer lock held. A subscriber that raises is logged
and skipped; the others still get the event.

A NETCONF notification publisher subscribes like any other sink and turns
each event into its YANG notification with
:func:`agent.services.notifications.notification_element`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from agent.pki.events import PkiEvent

__all__ = ["EventBus", "EventSink"]

_log = logging.getLogger(__name__)

EventSink = Callable[[PkiEvent], None]
"""Receives every published event, in the dispatcher thread; must not block for long."""


class EventBus:
    """Queue plus one dispatcher thread; subscribers are called in subscription order. Thread-safe."""

    def __init__(self, name: str = "pki-events") -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._sinks: list[EventSink] = []
        self._queue: queue.SimpleQueue[PkiEvent | None] = queue.SimpleQueue()
        self._pending = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    def subscribe(self, sink: EventSink) -> Callable[[], None]:
        """Deliver every later event to ``sink``; returns a function that unsubscribes it. Raises nothing."""
        with self._cond:
            self._sinks.append(sink)

        def unsubscribe() -> None:
            with self._cond:
                if sink in self._sinks:
                    self._sinks.remove(sink)

        return unsubscribe

    def publish(self, event: PkiEvent) -> None:
        """Queue ``event`` for the subscribers; never blocks. Ignored after :meth:`close`. Raises nothing."""
        with self._cond:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._pending += 1
            self._queue.put(event)

    def flush(self, timeout: float) -> bool:
        """Wait until every event published so far was delivered; True if within ``timeout`` s. Raises nothing."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is queued (within ``timeout`` s), then stop. Raises nothing."""
        with self._cond:
            if self._closed:
                return True
            self._closed = True
            thread = self._thread
        if thread is None:
            return True
        self._queue.put(None)
        thread.join(timeout)
        return not thread.is_alive()

    def _loop(self) -> None:
        while True:
            event = self._queue.get()  # blocks until an event (or the stop marker) arrives
            if event is None:
                return
            with self._cond:
                sinks = list(self._sinks)
            for sink in sinks:
                try:
                    sink(event)
                except Exception:  # noqa: BLE001 - one failing consumer must not starve the others
                    _log.exception("event consumer %r failed on %s", sink, type(event).__name__)
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()
