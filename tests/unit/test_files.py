"""agent.files: atomic writes, and directory syncs deferred to the end of a single-writer step."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent import files
from agent.serial import SerialExecutor


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The directories actually fsynced, in order (the real sync still runs)."""
    calls: list[str] = []
    real = files._sync_dir

    def spy(directory: str | Path) -> None:
        calls.append(str(directory))
        real(directory)

    monkeypatch.setattr(files, "_sync_dir", spy)
    return calls


def test_atomic_write_syncs_its_directory_at_once(tmp_path: Path, synced: list[str]) -> None:
    files.atomic_write(tmp_path / "a", b"1")
    assert synced == [str(tmp_path)]
    assert (tmp_path / "a").read_bytes() == b"1"


def test_deferred_block_syncs_each_directory_once_at_its_end(tmp_path: Path, synced: list[str]) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with files.deferred_directory_syncs():
        files.atomic_write(tmp_path / "cert.pem", b"cert")
        files.atomic_write(tmp_path / "record.json", b"record")
        files.atomic_write(other / "x", b"x")
        with files.deferred_directory_syncs():  # nested: still the outer block's
            files.atomic_write(tmp_path / "again", b"again")
        assert synced == []
        assert (tmp_path / "cert.pem").read_bytes() == b"cert"  # renamed at once, durable at the end
    assert synced == [str(tmp_path), str(other)]


def test_deferred_block_left_by_an_exception_still_syncs(tmp_path: Path, synced: list[str]) -> None:
    with pytest.raises(RuntimeError), files.deferred_directory_syncs():
        files.atomic_write(tmp_path / "a", b"1")
        raise RuntimeError("a later step failed")
    assert synced == [str(tmp_path)]
    files.atomic_write(tmp_path / "b", b"2")  # outside any block again: synced at once
    assert synced == [str(tmp_path), str(tmp_path)]


def test_deferral_is_per_thread(tmp_path: Path, synced: list[str]) -> None:
    with files.deferred_directory_syncs():
        worker = threading.Thread(target=files.atomic_write, args=(tmp_path / "t", b"t"))
        worker.start()
        worker.join()
        assert synced == [str(tmp_path)]  # the other thread's write was synced at once
    assert synced == [str(tmp_path)]  # and this thread's block had nothing to sync


def test_serial_executor_job_is_durable_when_run_returns(tmp_path: Path, synced: list[str]) -> None:
    writer = SerialExecutor("test-writer", around=files.deferred_directory_syncs)
    try:

        def step() -> int:
            files.atomic_write(tmp_path / "1", b"1")
            files.atomic_write(tmp_path / "2", b"2")
            return len(synced)

        assert writer.run(step) == 0  # nothing synced inside the step
        assert synced == [str(tmp_path)]  # once, before run() returned
    finally:
        writer.close()


def test_when_durable_runs_after_the_blocks_syncs(tmp_path: Path, synced: list[str]) -> None:
    seen: list[object] = []
    files.when_durable(lambda: seen.append("outside: at once"))
    assert seen == ["outside: at once"]
    with files.deferred_directory_syncs():
        files.atomic_write(tmp_path / "cert.pem", b"cert")
        files.when_durable(lambda: seen.append(list(synced)))
        assert len(seen) == 1  # not yet: the rename is not durable
    assert seen[1] == [str(tmp_path)]  # called after the directory was synced
