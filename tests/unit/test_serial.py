"""SerialExecutor: one thread, FIFO; run_then answers the caller before its follow-up runs. SpareThreads."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from agent.serial import ExecutorClosedError, SerialExecutor, SpareThreads


def test_run_then_answers_before_the_follow_up_and_keeps_order() -> None:
    executor = SerialExecutor("test")
    order: list[str] = []
    gate = threading.Event()

    def follow_up() -> None:
        gate.wait(5)
        order.append("then")

    assert executor.run_then(lambda: ("result", follow_up)) == "result"  # answered while follow_up waits
    order.append("caller")
    gate.set()
    executor.run(lambda: order.append("next job"))  # a later job runs after the follow-up
    assert order == ["caller", "then", "next job"]
    executor.close()


def test_run_then_follow_up_runs_after_the_jobs_context() -> None:
    events: list[str] = []

    @contextlib.contextmanager
    def around() -> Iterator[None]:
        yield
        events.append("context closed")  # e.g. a state writer's directory syncs

    executor = SerialExecutor("test", around)
    executor.run_then(lambda: (None, lambda: events.append("then")))
    executor.run(lambda: None)
    assert events[:2] == ["context closed", "then"]
    executor.close()


def test_run_then_errors_go_to_the_caller_and_follow_up_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    executor = SerialExecutor("test")

    def failing() -> tuple[None, None]:
        raise ValueError("job failed")

    with pytest.raises(ValueError, match="job failed"):
        executor.run_then(failing)

    def bad_follow_up() -> None:
        raise RuntimeError("listener failed")

    assert executor.run_then(lambda: (7, bad_follow_up)) == 7
    assert executor.run(lambda: "still serving") == "still serving"
    assert "background job failed" in caplog.text
    executor.close()


def test_run_then_on_its_own_thread_runs_inline() -> None:
    executor = SerialExecutor("test")
    order: list[str] = []

    def outer() -> str:
        value = executor.run_then(lambda: ("inner", lambda: order.append("inner then")))
        order.append("outer after inner")
        return value

    assert executor.run(outer) == "inner"
    assert order == ["inner then", "outer after inner"]
    executor.close()


def test_jobs_given_after_close_are_refused_not_left_waiting() -> None:
    """Before: a job queued behind close()'s end marker never ran and its caller waited for ever (a poll
    whose CA answered after shutdown held the agent's exit so)."""
    executor = SerialExecutor("test")
    ran: list[str] = []
    executor.submit(lambda: ran.append("queued before close"))
    executor.close()
    assert ran == ["queued before close"]
    outcome: list[object] = []

    def late_caller() -> None:
        for give in (executor.run, lambda job: executor.run_then(lambda: (job(), None))):
            try:
                give(lambda: ran.append("late"))
            except ExecutorClosedError as error:
                outcome.append(error)

    caller = threading.Thread(target=late_caller, daemon=True)
    caller.start()
    caller.join(5)
    assert not caller.is_alive(), "a caller after close waits for ever"
    assert len(outcome) == 2 and "has stopped" in str(outcome[0])
    executor.submit(lambda: ran.append("late"))  # fire and forget: dropped
    executor.close()  # twice is harmless
    assert ran == ["queued before close"]


def test_spare_threads_run_a_job_beside_the_caller_and_hand_back_its_result_or_error() -> None:
    spare = SpareThreads("test-spare", 2)
    answer = spare.beside(lambda: threading.current_thread().name)
    assert answer is not None and answer() != threading.current_thread().name

    def fails() -> None:
        raise ValueError("from the spare thread")

    failed = spare.beside(fails)
    assert failed is not None
    with pytest.raises(ValueError, match="from the spare thread"):
        failed()
    spare.close()


def test_spare_threads_never_queue_a_job_when_all_are_busy() -> None:
    spare = SpareThreads("test-spare", 1)
    release = threading.Event()
    busy = spare.beside(lambda: release.wait(5))
    assert busy is not None
    assert spare.beside(lambda: None) is None  # the caller runs it itself rather than wait behind the first
    release.set()
    assert busy() is True
    again = spare.beside(lambda: "free again")
    assert again is not None and again() == "free again"
    spare.close()
    assert spare.beside(lambda: None) is None  # closed: nothing more is taken


# -- inline_when_idle: the caller's own thread runs the job when nothing else is queued or running


def test_an_idle_executor_runs_the_job_on_the_callers_thread_only_when_asked_to() -> None:
    here = threading.current_thread()
    inline = SerialExecutor("test-inline", inline_when_idle=True)
    plain = SerialExecutor("test-plain")
    assert inline.run(threading.current_thread) is here
    assert inline.run_then(lambda: (threading.current_thread(), None)) is here
    assert plain.run(threading.current_thread) is not here
    assert inline.run(lambda: inline.on_thread) is True  # a job is "on the executor" wherever it runs
    assert inline.on_thread is False
    inline.close()
    plain.close()


def test_jobs_never_overlap_and_keep_their_order_when_some_run_inline() -> None:
    """While one caller's job runs on its own thread, others queue behind it; none starts before it ends."""
    executor = SerialExecutor("test-inline", inline_when_idle=True)
    running = threading.Lock()
    overlaps: list[int] = []
    finished: list[int] = []
    ran_on: dict[int, threading.Thread] = {}
    started = threading.Event()
    release = threading.Event()

    def job(n: int) -> int:
        ran_on[n] = threading.current_thread()
        if not running.acquire(blocking=False):
            overlaps.append(n)
            return n
        try:
            if n == 0:
                started.set()
                release.wait(5)
            finished.append(n)
            return n
        finally:
            running.release()

    first = threading.Thread(target=lambda: executor.run(lambda: job(0)))
    first.start()
    assert started.wait(5)  # job 0 runs inline on `first`
    others = [threading.Thread(target=lambda n=n: executor.run(lambda: job(n))) for n in (1, 2, 3)]
    for index, thread in enumerate(others):
        thread.start()
        deadline = time.monotonic() + 5
        while executor._unfinished < index + 2 and time.monotonic() < deadline:  # queued before the next is given
            time.sleep(0.001)
    release.set()
    for thread in (first, *others):
        thread.join(5)
    assert overlaps == []
    assert finished == [0, 1, 2, 3]
    assert ran_on[0] is first  # given while idle: inline
    assert {ran_on[n] for n in (1, 2, 3)}.isdisjoint({first, *others})  # given while busy: queued, in order
    assert executor.run(threading.current_thread) is threading.current_thread()  # idle again: inline again
    executor.close()


def test_an_inline_run_thens_follow_up_runs_before_the_next_job_or_on_its_own() -> None:
    executor = SerialExecutor("test-inline", inline_when_idle=True)
    order: list[str] = []
    gate = threading.Event()

    def follow_up() -> None:
        gate.wait(5)
        order.append("then")

    assert executor.run_then(lambda: ("result", follow_up)) == "result"  # answered before the follow-up
    order.append("caller")
    threading.Timer(0.2, gate.set).start()
    executor.run(lambda: order.append("next job"))  # waits for the follow-up, which waits for the gate
    assert order == ["caller", "then", "next job"]
    # With no job after it, the executor's own thread runs it.
    alone = threading.Event()
    executor.run_then(lambda: (None, alone.set))
    assert alone.wait(5)
    executor.close()


def test_an_inline_jobs_error_goes_to_its_caller_and_the_executor_stays_usable() -> None:
    executor = SerialExecutor("test-inline", inline_when_idle=True)

    def failing() -> None:
        raise ValueError("inline job failed")

    with pytest.raises(ValueError, match="inline job failed"):
        executor.run(failing)
    with pytest.raises(ValueError, match="inline job failed"):
        executor.run_then(lambda: (failing(), None))
    assert executor.run(lambda: executor.run(lambda: "nested")) == "nested"  # a job's own run is inline too
    assert executor.run(threading.current_thread) is threading.current_thread()
    executor.close()
    with pytest.raises(ExecutorClosedError):
        executor.run(lambda: None)
