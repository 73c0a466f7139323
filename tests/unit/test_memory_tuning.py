"""The agent's memory settings (agent.memory_tuning), each checked in a fresh interpreter.

glibc's ``malloc_info`` lists one ``<heap>`` per arena; eight threads that
each allocate get an arena of their own unless the cap holds.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")

REPO = Path(__file__).resolve().parents[2]
MALLOC_SETTINGS = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")

COUNT_ARENAS = r"""
import ctypes, ctypes.util, sys, threading
from agent.memory_tuning import limit_malloc_arenas
took = limit_malloc_arenas() if sys.argv[1] == "cap" else None
libc = ctypes.CDLL(ctypes.util.find_library("c"))
gate = threading.Barrier(8)
keep = []
def allocate():
    gate.wait()
    keep.append([bytearray(200_000) for _ in range(4)])  # above pymalloc's limit: glibc malloc
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
sys.stdout.flush()
libc.malloc_info(0, ctypes.c_void_p.in_dll(libc, "stdout"))
libc.fflush(None)
print("took", took)
"""


def _run(script: str, mode: str, **env: str) -> str:
    """``script``'s output in a fresh interpreter, with no malloc setting from our environment but ``env``."""
    environment = {k: v for k, v in os.environ.items() if k not in MALLOC_SETTINGS}
    environment.update(env, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True,
                          env=environment).stdout


def _arenas(mode: str, **env: str) -> tuple[int, str]:
    out = _run(COUNT_ARENAS, mode, **env)
    return len(re.findall(r'<heap nr="\d+">', out)), out.strip().splitlines()[-1]


@glibc_only
def test_without_the_cap_each_thread_gets_an_arena() -> None:
    heaps, _ = _arenas("none")
    assert heaps >= 5


@glibc_only
def test_the_cap_keeps_two_arenas() -> None:
    heaps, took = _arenas("cap")
    assert took == "took True"
    assert heaps <= 2


@glibc_only
def test_the_environment_setting_wins() -> None:
    heaps, took = _arenas("cap", MALLOC_ARENA_MAX="3")
    assert took == "took False"
    assert heaps == 3


SETTLE = r"""
import gc
from agent.memory_tuning import FIRST_GENERATION, settle_garbage_collector
class Node:
    pass
kept = [Node() for _ in range(1000)]
cycle = Node(); cycle.me = cycle; del cycle  # start-up garbage: collected, not frozen
settle_garbage_collector()
print(gc.get_freeze_count() >= 1000, gc.get_threshold()[0] == FIRST_GENERATION,
      sum(type(o).__name__ == "Node" for o in gc.get_objects()))
later = Node(); later.me = later; del later  # a cycle made after start-up is still collected
print(gc.collect() >= 1)
"""


def test_start_up_objects_are_frozen_and_later_cycles_still_collected() -> None:
    out = subprocess.run([sys.executable, "-c", SETTLE], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.split()
    assert out == ["True", "True", "0", "True"]


HEAP_RETENTION = r"""
import sys
from agent.memory_tuning import fix_mmap_threshold
took = fix_mmap_threshold() if sys.argv[1] == "fix" else None
def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
first = bytearray(15 << 20)
del first  # unmapped; glibc then serves buffers up to 15 MiB from its heap, unless the threshold is fixed
before = rss()
held = []
for _ in range(4):
    big = bytearray(10 << 20)
    held.append(bytearray(1000))  # allocated after it: the freed buffer is not at the heap's top
    del big
print(took, (rss() - before) // 1024)
"""


def _retained_mib(mode: str, **env: str) -> list[str]:
    return _run(HEAP_RETENTION, mode, **env).split()


@glibc_only
def test_without_a_fixed_threshold_a_freed_large_buffer_stays_in_the_process() -> None:
    assert int(_retained_mib("none")[1]) >= 9


@glibc_only
def test_with_the_threshold_fixed_a_freed_large_buffer_is_returned() -> None:
    took, retained = _retained_mib("fix")
    assert took == "True"
    assert int(retained) <= 1


@glibc_only
def test_the_environment_threshold_wins() -> None:
    took, _ = _retained_mib("fix", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=4194304")
    assert took == "False"
