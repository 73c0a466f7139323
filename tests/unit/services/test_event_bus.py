"""The event bus: order, isolation of failing consumers, publishing from under a lock, close."""

from __future__ import annotations

import datetime as dt
import threading

from agent.pki.events import EnrollmentCompleted, PkiEvent
from agent.pki.keystore import KeyUsage
from agent.services.events import EventBus

NOW = dt.datetime(2026, 11, 6, tzinfo=dt.UTC)


def event(n: int) -> EnrollmentCompleted:
    return EnrollmentCompleted(f"tp{n}", KeyUsage.GENERAL, f"tx{n}", f"{n:02X}", NOW)


def test_every_subscriber_gets_every_event_in_order_despite_a_failing_one() -> None:
    bus = EventBus()
    first: list[PkiEvent] = []
    second: list[PkiEvent] = []

    def broken(e: PkiEvent) -> None:
        raise RuntimeError("consumer bug")

    bus.subscribe(first.append)
    bus.subscribe(broken)
    unsubscribe = bus.subscribe(second.append)
    for n in range(50):
        bus.publish(event(n))
    assert bus.flush(10)
    assert first == second == [event(n) for n in range(50)]
    unsubscribe()
    bus.publish(event(99))
    assert bus.flush(10)
    assert second[-1] == event(49) and first[-1] == event(99)
    assert bus.close(5)
    bus.publish(event(100))
    assert first[-1] == event(99)


def test_publish_from_under_a_lock_the_consumer_also_takes() -> None:
    bus = EventBus()
    lock = threading.Lock()
    got = threading.Event()

    def consumer(e: PkiEvent) -> None:
        with lock:  # would deadlock if publish() delivered in the producer's thread
            got.set()

    bus.subscribe(consumer)
    with lock:
        bus.publish(event(1))
        assert not got.wait(0.05)
    assert got.wait(10)
    assert bus.close(5)
