"""One process per data directory: the lock names its holder and is free again after release."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.runlock import LOCK_FILE, DataDirInUse, RunLock


def test_second_holder_is_refused_until_release(tmp_path: Path) -> None:
    first = RunLock.acquire(tmp_path)
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    with pytest.raises(DataDirInUse) as refused:
        RunLock.acquire(tmp_path)
    assert str(os.getpid()) in str(refused.value)
    first.release()
    RunLock.acquire(tmp_path).release()
