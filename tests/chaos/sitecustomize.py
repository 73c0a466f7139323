"""Random delays at the agent's hand-offs between threads, to find tests that depend on timing.

Put this directory first on PYTHONPATH and name the delays in
``CA_AGENT_CHAOS`` (comma-separated, each ``point`` or ``point=seconds``, the
longest delay; a delay is drawn uniformly up to it)::

    CA_AGENT_CHAOS=hello,after,deliver PYTHONPATH=tests/chaos bash tests/netns_run.sh \\
        .venv/bin/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder tests/e2e

Only agents started as ``python -m agent`` (as the tests start them) are
touched; pytest itself is not. The points:

- ``hello`` (0.25 s): before a session that has read the client's <hello> is
  opened. ncclient's connect returns once it has the agent's hello, so the
  agent may open that session (and publish its session-start) after the
  client's next steps elsewhere; stop 48's CI failed on a test that assumed
  otherwise.
- ``after`` (0.05 s): before the work a single-writer thread (committer, PKI
  state writer) runs after answering its caller, and before each job given to
  it without waiting.
- ``deliver`` (0.05 s): before a commit's listeners run.

A test that fails only with these delays assumes an order the agent does not
promise. This module leans on the agent's private names on purpose (it is a
test tool); a name it cannot find is reported on stderr, not ignored.
"""

from __future__ import annotations

import os
import sys

_SPEC = os.environ.get("CA_AGENT_CHAOS", "")
_DEFAULTS = {"hello": 0.25, "after": 0.05, "deliver": 0.05}


def _delays(spec: str) -> dict[str, float]:
    delays: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        point, _, seconds = item.partition("=")
        if point not in _DEFAULTS:
            raise ValueError(f"CA_AGENT_CHAOS: unknown point {point!r} (known: {', '.join(_DEFAULTS)})")
        delays[point] = float(seconds) if seconds else _DEFAULTS[point]
    return delays


def _delayed(real, longest: float):  # type: ignore[no-untyped-def]
    import functools
    import random
    import time

    @functools.wraps(real)
    def call(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(random.uniform(0.0, longest))
        return real(*args, **kwargs)

    return call


def _install(delays: dict[str, float]) -> None:
    import importlib

    targets = {  # point: (module, class or None, function)
        "hello": ("agent.netconf.dispatch", "NetconfAgent", "open_session"),
        "after": ("agent.serial", None, "_logged"),
        "deliver": ("agent.datastore.store", "Datastores", "_deliver"),
    }
    for point, longest in delays.items():
        module_name, class_name, function = targets[point]
        module = importlib.import_module(module_name)
        owner = getattr(module, class_name) if class_name else module
        setattr(owner, function, _delayed(getattr(owner, function), longest))


if _SPEC and sys.orig_argv[1:3] == ["-m", "agent"]:
    try:
        _install(_delays(_SPEC))
    except Exception as error:  # the agent still starts; the run shows why it was not delayed
        print(f"tests/chaos: not installed: {error!r}", file=sys.stderr)
