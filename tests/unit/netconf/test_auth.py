"""Failed-login throttle and the cost of a login (issue 11 "Logins", issue 10 "Concurrency")."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest

from agent import passwords
from agent.netconf.auth import LoginThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_free_failures_then_growing_spacing_per_source() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(free_failures=3, base_delay=1.0, max_delay=8.0, monotonic=clock)
    for _ in range(3):
        assert throttle.admit("10.0.0.1") == 0.0
        throttle.failed("10.0.0.1")
    waits = []
    for _ in range(6):
        waits.append(throttle.admit("10.0.0.1"))
        clock.now += waits[-1]
        throttle.failed("10.0.0.1")
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0]  # the 4th attempt is free too; then 1, 2, 4... s apart
    assert throttle.admit("10.0.0.2") == 0.0  # another source is not held back


def test_parallel_attempts_from_one_source_get_separate_slots() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(free_failures=0, base_delay=2.0, max_delay=30.0, monotonic=clock)
    throttle.failed("x")  # one failure: attempts are 2 s apart from now on
    slots = [throttle.admit("x") for _ in range(5)]  # five connections at once
    assert slots == [2.0, 4.0, 6.0, 8.0, 10.0]


def test_success_clears_and_quiet_time_forgets() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(free_failures=0, base_delay=1.0, forget_after=60.0, monotonic=clock)
    throttle.failed("a")
    throttle.succeeded("a")
    assert throttle.admit("a") == 0.0
    throttle.failed("b")
    clock.now += 61
    assert throttle.admit("b") == 0.0


def test_tracked_sources_are_bounded() -> None:
    throttle = LoginThrottle(free_failures=0, max_sources=10, monotonic=FakeClock())
    for n in range(100):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert throttle.admit("10.0.0.0") == 0.0  # the oldest were forgotten
    assert throttle.admit("10.0.0.99") > 0.0


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts real scrypt runs (the real function still runs)."""
    calls: list[int] = []
    real = hashlib.scrypt

    def counting(*args: object, **kwargs: object) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hashlib, "scrypt", counting)
    yield calls


def test_an_unknown_user_a_malformed_or_foreign_hash_cost_one_scrypt_like_a_real_check(scrypt_calls: list[int]) -> None:
    stored = passwords.hash_password("right")
    scrypt_calls.clear()
    assert passwords.verify_password("right", stored)
    assert passwords.verify_password("wrong", stored) is False
    assert passwords.verify_password("x", None) is False  # unknown user
    assert passwords.verify_password("x", "$scrypt$n=16384,r=8,p=200$AAAA$BBBB") is False  # foreign cost
    assert passwords.verify_password("x", "garbage") is False
    assert len(scrypt_calls) == 5


def test_logins_hash_concurrently() -> None:
    """Two jobs on the scrypt pool overlap: one slow login does not hold the next back."""
    inside = 0
    peak = 0
    lock = threading.Lock()
    both = threading.Barrier(2, timeout=10)

    def job() -> None:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        both.wait()  # only returns once the other job runs at the same time
        with lock:
            inside -= 1

    futures = [passwords._SCRYPT_POOL.submit(job) for _ in range(2)]  # noqa: SLF001 - the pool is under test
    for future in futures:
        future.result(15)
    assert peak == 2
