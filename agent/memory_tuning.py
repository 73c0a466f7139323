"""How the agent process uses memory: glibc's malloc arenas and Python's garbage collector.

**Malloc arenas.** glibc gives a thread that allocates while another holds an arena a new arena,
up to eight per CPU; each one keeps the memory it once held. The agent runs a
few threads per NETCONF session (paramiko's transport, the session, the
writer), and lxml parses and serialises with the C allocator on those
threads, so 20 sessions reading a 1,000-entry datastore held ~27 MiB more in
arenas than with two arenas (measured with ``bench/profile_agent.py rss``:
peak 139 → 112 MiB). The GIL serialises most allocations anyway, so fewer
arenas cost no measurable throughput.

``M_ARENA_MAX`` is read when the second arena is first needed, so this must
run before the agent starts any thread; ``MALLOC_ARENA_MAX`` in the
environment (glibc's own knob) wins if set. Elsewhere than glibc it does
nothing.

**Large buffers.** glibc serves a request above its *mmap threshold* (128 KiB
at start) with a mapping of its own, and unmaps it when freed. But each time
it unmaps one, it raises the threshold to that size (up to 32 MiB): after one
client sent a 15 MiB request, later buffers of up to 15 MiB come from the heap,
and what they free stays in the process for good unless it lies at the heap's
top. Six ended sessions that each left 15 MiB of an unfinished request grew the
agent by 1–43 MiB (varying from run to run); with the threshold fixed at 1 MiB, by
−1 to 1 MiB. Fixing the threshold (``M_MMAP_THRESHOLD``) turns the raising off.
``MALLOC_MMAP_THRESHOLD_`` (or ``glibc.malloc.mmap_threshold`` in ``GLIBC_TUNABLES``) wins if set.

**Garbage collector.** Python's full collections walk every container object
alive; once the agent has loaded its YANG schema and started, ~85,000 of them
are there for good. Freezing them when start-up is done keeps them out of every
later walk, and a first generation of 10,000 instead of 700 objects makes the
full walks rarer: a bulk edit of 1,000 trustpoints allocates millions of
objects. Measured (``bench/profile_agent.py bulk_running``, collector time by
``gc.callbacks``): 17–20 → 3–4 ms of collection per bulk create+delete.
Reference cycles are still collected, only less often.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import platform

M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter number for the arena cap (``malloc.h``)."""
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number for the mmap threshold (``malloc.h``)."""

DEFAULT_ARENAS = 2
MMAP_THRESHOLD = 1024 * 1024


def _mallopt(parameter: int, value: int, variable: str, tunable: str) -> bool:
    """glibc's ``mallopt``, unless the environment sets it (``variable``, or ``tunable`` in GLIBC_TUNABLES);
    True if it took."""
    if os.environ.get(variable) or f"{tunable}=" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    mallopt = ctypes.CDLL(name).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(parameter, value))


def limit_malloc_arenas(count: int = DEFAULT_ARENAS) -> bool:
    """Ask glibc for at most ``count`` arenas; True if it took the setting."""
    return _mallopt(M_ARENA_MAX, count, "MALLOC_ARENA_MAX", "glibc.malloc.arena_max")


def fix_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Have glibc map every buffer of ``size`` or more on its own, for good; True if it took the setting."""
    return _mallopt(M_MMAP_THRESHOLD, size, "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold")


FIRST_GENERATION = 10_000


def settle_garbage_collector() -> None:
    """Call once start-up is done: collect, freeze what is left, and collect young objects less often."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(FIRST_GENERATION, second, third)
