"""The notification replay log on disk: reopened, bounded, and intact after kill -9 or a torn write."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakeclock import SetClock

from agent.netconf.replaylog import CREATED_FILE, CURRENT_FILE, OLD_FILE, ReplayLog

T0 = dt.datetime(2026, 11, 6, 7, 8, 9, tzinfo=dt.UTC)


def xml(n: int) -> bytes:
    return f'<notification xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><n>{n}</n></notification>'.encode()


def fill(log: ReplayLog, first: int, last: int) -> None:
    for n in range(first, last + 1):
        log.append(n, T0 + dt.timedelta(seconds=n), xml(n))


def lines_on_disk(directory: Path) -> int:
    return sum(
        len((directory / name).read_bytes().splitlines()) for name in (OLD_FILE, CURRENT_FILE)
        if (directory / name).exists()
    )


def test_reopened_log_holds_the_same_notifications_and_creation_time(tmp_path: Path) -> None:
    log = ReplayLog(tmp_path, clock=SetClock(T0))
    fill(log, 1, 5)
    log.close()
    again = ReplayLog(tmp_path, clock=SetClock(T0 + dt.timedelta(days=3)))
    assert [(e.sequence, e.event_time, e.xml) for e in again.entries()] == [
        (n, T0 + dt.timedelta(seconds=n), xml(n)) for n in range(1, 6)
    ]
    assert again.last_sequence == 5
    assert again.created == T0  # from the first start, not the second
    assert oct((tmp_path / CURRENT_FILE).stat().st_mode & 0o777) == "0o600"


def test_bound_by_count_in_memory_on_disk_and_after_reopening(tmp_path: Path) -> None:
    log = ReplayLog(tmp_path, max_entries=6, clock=SetClock(T0))
    fill(log, 1, 20)
    kept = [e.sequence for e in log.entries()]
    assert len(kept) <= 6 and kept[-1] == 20 and kept == sorted(kept)
    assert lines_on_disk(tmp_path) <= 6
    log.close()
    assert [e.sequence for e in ReplayLog(tmp_path, max_entries=6).entries()] == kept


def test_bound_by_size(tmp_path: Path) -> None:
    log = ReplayLog(tmp_path, max_entries=1000, max_bytes=2000, clock=SetClock(T0))
    fill(log, 1, 100)
    size = sum((tmp_path / n).stat().st_size for n in (OLD_FILE, CURRENT_FILE))
    line = len((tmp_path / CURRENT_FILE).read_bytes().splitlines()[0]) + 1
    assert size <= 2000 + line
    assert log.entries()[-1].sequence == 100
    assert [e.sequence for e in log.entries()] == [e.sequence for e in ReplayLog(tmp_path).entries()]


def test_torn_last_line_is_cut_and_the_log_goes_on(tmp_path: Path) -> None:
    log = ReplayLog(tmp_path, clock=SetClock(T0))
    fill(log, 1, 3)
    log.close()
    with open(tmp_path / CURRENT_FILE, "ab") as handle:
        handle.write(b'{"seq":4,"time":"2026-11-06T07:08:13+00:00","xml":"<notif')  # a write cut short
    again = ReplayLog(tmp_path)
    assert [e.sequence for e in again.entries()] == [1, 2, 3]
    fill(again, 4, 4)
    again.close()
    assert [e.sequence for e in ReplayLog(tmp_path).entries()] == [1, 2, 3, 4]


def test_unreadable_line_is_skipped(tmp_path: Path) -> None:
    log = ReplayLog(tmp_path, clock=SetClock(T0))
    fill(log, 1, 2)
    log.close()
    with open(tmp_path / CURRENT_FILE, "ab") as handle:
        handle.write(b"\x00\x00\x00 not json\n")
        handle.write(json.dumps({"seq": 3, "time": T0.isoformat(), "xml": xml(3).decode()}).encode() + b"\n")
    assert [e.sequence for e in ReplayLog(tmp_path).entries()] == [1, 2, 3]


def test_log_without_creation_time_starts_afresh(tmp_path: Path) -> None:
    log = ReplayLog(tmp_path, clock=SetClock(T0))
    fill(log, 1, 2)
    log.close()
    (tmp_path / CREATED_FILE).unlink()
    later = T0 + dt.timedelta(hours=1)
    again = ReplayLog(tmp_path, clock=SetClock(later))
    assert again.entries() == [] and again.created == later


def test_bounds_below_two_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ReplayLog(tmp_path, max_entries=1)


_WRITER = """
import datetime as dt, sys
from pathlib import Path
from agent.netconf.replaylog import ReplayLog
log = ReplayLog(Path(sys.argv[1]), max_entries=200, max_bytes=64 * 1024)
n = log.last_sequence
print("ready", flush=True)
while True:
    n += 1
    log.append(n, dt.datetime.now(dt.UTC), ('<notification xmlns="urn:x"><big>' + 'x' * (n % 700) + '</big></notification>').encode())
"""


def newest_on_disk(directory: Path) -> int:
    """The highest sequence number of a complete line, read without opening the log (a writer is running)."""
    try:
        data = (directory / CURRENT_FILE).read_bytes()
    except FileNotFoundError:  # between a rotation's rename and the new segment
        return 0
    complete = data[: data.rfind(b"\n") + 1].splitlines()
    return int(json.loads(complete[-1])["seq"]) if complete else 0


def test_kill_9_while_appending_leaves_a_readable_log(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    for _ in range(3):  # killed three times mid-stream, rotations included
        before = newest_on_disk(tmp_path)
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 20
        while newest_on_disk(tmp_path) < before + 300 and time.monotonic() < deadline:
            time.sleep(0.01)  # awaited: 300 more notifications written (bounded by the deadline)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        entries = ReplayLog(tmp_path, max_entries=200, max_bytes=64 * 1024).entries()
        sequences = [e.sequence for e in entries]
        assert sequences and sequences == list(range(sequences[0], sequences[-1] + 1))  # no gap, no garbage
        assert all(e.xml.startswith(b"<notification") and e.xml.endswith(b"</notification>") for e in entries)
