"""The agent's stderr log: a log call never waits for the reader; what is dropped is said."""

from __future__ import annotations

import io
import logging
import re
import threading
import time

from agent.stderr_log import StderrLog


class HeldStream(io.StringIO):
    """A stream whose writes block until released (a reader that stopped reading)."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()
        self.blocked = threading.Event()

    def write(self, text: str) -> int:
        self.blocked.set()
        self.released.wait()
        return super().write(text)


def _logger(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(f"test-stderr-log.{name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


def test_lines_are_written_in_order() -> None:
    stream = io.StringIO()
    handler = StderrLog(stream)
    logger = _logger(handler, "order")
    for i in range(500):
        logger.info("line %d", i)
    assert handler.drain(5)
    assert stream.getvalue().splitlines() == [f"line {i}" for i in range(500)]
    handler.close()


def test_a_stalled_reader_costs_a_log_call_nothing_and_drops_are_reported() -> None:
    stream = HeldStream()
    handler = StderrLog(stream, limit=10_000)
    logger = _logger(handler, "stalled")
    logger.info("first")
    assert stream.blocked.wait(5)  # the writer thread is stuck in the stream
    started = time.monotonic()
    for i in range(2_000):  # 100-character lines: 100 fit in the limit, the rest are dropped
        logger.info("%03d%s", i, "x" * 97)
    assert time.monotonic() - started < 2.0
    assert 1_800 <= handler.dropped < 2_000
    stream.released.set()
    assert handler.drain(5)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "first"
    assert lines[1] == f"ca-agent: {handler.dropped} log lines dropped: standard error was not being read"
    kept = lines[2:]
    assert len(kept) == 2_000 - handler.dropped
    assert kept == sorted(kept) and kept[0].startswith("000")  # the first ones, in order
    logger.info("after")
    assert handler.drain(5)
    assert stream.getvalue().splitlines()[-1] == "after"  # reported once
    handler.close()


def test_close_gives_up_on_a_reader_that_never_comes_back() -> None:
    stream = HeldStream()
    handler = StderrLog(stream)
    logger = _logger(handler, "gone")
    logger.info("stuck")
    assert stream.blocked.wait(5)
    started = time.monotonic()
    handler.close(timeout=0.5)
    assert time.monotonic() - started < 2.0
    logger.info("after close")  # ignored, does not raise or block
    stream.released.set()


def test_short_lines_into_a_pipe_nobody_reads_never_block() -> None:
    # Short lines are written by the logging thread itself while the pipe has room; once it is
    # full, they wait in the queue and then are dropped, and the log call never blocks.
    import os

    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w", encoding="utf-8")
    handler = StderrLog(stream, limit=100_000)
    logger = _logger(handler, "pipe")
    started = time.monotonic()
    for i in range(20_000):  # 60-character lines: 1.2 MB, the pipe holds 64 KiB
        logger.info("%05d %s", i, "y" * 54)
    assert time.monotonic() - started < 10.0
    assert handler.dropped > 0
    received = bytearray()

    def read_all() -> None:
        while chunk := os.read(read_end, 65536):
            received.extend(chunk)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    logger.info("last")
    assert handler.drain(10)
    handler.close()
    stream.close()
    reader.join(10)
    os.close(read_end)
    lines = received.decode().splitlines()
    numbered = [line for line in lines if not line.startswith("ca-agent:") and line != "last"]
    assert numbered == sorted(numbered) and numbered[0].startswith("00000 ")  # in order, from the first
    assert len(numbered) == 20_000 - handler.dropped
    # each notice tells how many were dropped since the one before
    notices = [re.fullmatch(r"ca-agent: (\d+) log lines dropped: standard error was not being read", line)
               for line in lines if line.startswith("ca-agent:")]
    assert notices and all(notices)
    assert sum(int(notice.group(1)) for notice in notices if notice) == handler.dropped
    assert lines[-1] == "last"


def test_a_long_message_is_cut_and_its_traceback_kept() -> None:
    stream = io.StringIO()
    handler = StderrLog(stream)
    logger = _logger(handler, "long")
    logger.warning("failed for user %r", "u" * 200_000)
    try:
        raise ValueError("the error itself")
    except ValueError:
        logger.exception("and %s", "x" * 10_000)
    logger.info("short %s", "one")
    assert handler.drain(5)
    text = stream.getvalue()
    first, rest = text.split("\n", 1)
    message = "failed for user %r" % ("u" * 200_000)
    assert first == f"{message[:4096]} ... ({len(message) - 4096} more characters)"
    assert "x" * 4000 in rest and f"({len('and ') + 10_000 - 4096} more characters)" in rest
    assert "Traceback (most recent call last)" in rest and "ValueError: the error itself" in rest
    assert text.endswith("short one\n")
