"""The one adapter to paramiko internals: hear at once that an SSH channel closed, and how
much it can send without waiting.

A session's reader thread is busy while it answers a request, so it cannot
notice that its client left; yet work done for a client that is gone (a
filter evaluation) should stop. paramiko offers no close callback, but every
way a channel closes — the client's CHANNEL_CLOSE, the transport dying (TCP
reset or EOF), our own ``close()`` — goes through ``Channel._set_closed``,
which sets ``closed`` and then the channel's public ``status_event``. That
event is replaced here by one that also calls back. The behaviour relied on
is tested in tests/unit/netconf/test_channel_watch.py against the installed
paramiko; the version is checked at import.

:func:`send_window` reads ``Channel.out_window_size`` (public in the code,
absent from the documentation and the type stubs): the bytes the peer's SSH
window still takes, so a reply that fits is sent without blocking.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paramiko

log = logging.getLogger(__name__)

_SUPPORTED_MAJOR = 3
if paramiko.__version_info__[0] != _SUPPORTED_MAJOR:  # pragma: no cover - guarded by setup.cfg's pin
    raise ImportError(
        f"agent.netconf.channel_watch relies on paramiko {_SUPPORTED_MAJOR}.x internals "
        f"(Channel._set_closed sets status_event, Channel.out_window_size); found {paramiko.__version__}"
    )


class _SignallingEvent(threading.Event):
    """paramiko's status_event, which also reports the channel's closing."""

    def __init__(self, channel: paramiko.Channel, callback: Callable[[], None]) -> None:
        super().__init__()
        self._channel = channel
        self._callback = callback

    def set(self) -> None:
        super().set()
        # A client may also set it with an "exit-status" request: only a close counts.
        if self._channel.closed:
            _call(self._callback)


def on_close(channel: paramiko.Channel, callback: Callable[[], None]) -> None:
    """Call ``callback()`` once ``channel`` is closed, however it closes (maybe twice: make it idempotent).

    It runs on paramiko's transport thread, with the channel's lock held: it
    must be short and must not touch the channel (e.g. set a flag).
    """
    previous = channel.status_event
    event = _SignallingEvent(channel, callback)
    if previous.is_set():
        threading.Event.set(event)
    channel.status_event = event
    if channel.closed:  # closed before the new event was in place
        _call(callback)


def _call(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # paramiko's transport thread must survive a bad callback
        log.exception("channel close callback failed")


def send_window(channel: paramiko.Channel) -> int:
    """How many bytes ``channel`` can send now without waiting for the peer's window (0 if closed)."""
    if channel.closed:
        return 0
    window: int = getattr(channel, "out_window_size")  # noqa: B009 - not in the type stubs
    return window
