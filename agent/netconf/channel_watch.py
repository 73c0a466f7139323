"""The one adapter to paramiko internals: hear at once that an SSH channel closed, how
much it can send without waiting, and refuse channel data nobody may hold.

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

:func:`guard_input` exists because paramiko buffers every CHANNEL_DATA it
receives (``Channel._feed``) without checking it against the window it
granted, and keeps it until someone reads the channel. A client that ignores
the window (RFC 4254 5.2) could so make the agent hold any amount: 300 MiB
in 2 s on a channel that never asked for a subsystem, which nobody reads.
The transport's dispatch table of channel messages (``_channel_handler_table``,
a class attribute looked up on the instance) gets, for this transport only,
data handlers that check each message first: data on a channel that runs no
session, and data beyond the window, are dropped (RFC 4254 allows ignoring
data past the window; OpenSSH ends such a connection) and reported.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable

import paramiko

log = logging.getLogger(__name__)

_SUPPORTED_MAJOR = 3
if paramiko.__version_info__[0] != _SUPPORTED_MAJOR:  # pragma: no cover - guarded by setup.cfg's pin
    raise ImportError(
        f"agent.netconf.channel_watch relies on paramiko {_SUPPORTED_MAJOR}.x internals "
        f"(Channel._set_closed sets status_event, Channel.out_window_size, Transport._channel_handler_table, "
        f"Channel.in_buffer and in_window_*); found {paramiko.__version__}"
    )


_DATA = paramiko.common.MSG_CHANNEL_DATA
_EXTENDED_DATA = paramiko.common.MSG_CHANNEL_EXTENDED_DATA


class InputRefusal(enum.Enum):
    """Why :func:`guard_input` dropped a channel's data."""

    NO_SESSION = "data on a channel that runs no NETCONF session"
    OVER_WINDOW = "data beyond the SSH window the agent granted"


def guard_input(
    transport: paramiko.Transport,
    accepts: Callable[[paramiko.Channel], bool],
    refused: Callable[[paramiko.Channel, InputRefusal], None],
) -> None:
    """Drop channel data on ``transport`` that ``accepts(channel)`` refuses or that overflows the window.

    ``refused(channel, why)`` is told of each dropped message (it may be
    called many times for one channel). Both run on the transport's thread,
    which must not block: ``refused`` should hand any closing to another
    thread. Data within the window on an accepted channel is fed as before.
    """
    table = dict(type(transport)._channel_handler_table)
    for kind in (_DATA, _EXTENDED_DATA):
        table[kind] = _checked(table[kind], kind, accepts, refused)
    transport._channel_handler_table = table


def _checked(
    feed: Callable[[paramiko.Channel, paramiko.Message], None], kind: int,
    accepts: Callable[[paramiko.Channel], bool],
    refused: Callable[[paramiko.Channel, InputRefusal], None],
) -> Callable[[paramiko.Channel, paramiko.Message], None]:
    """paramiko's handler ``feed`` of a ``kind`` of data message, called only for data :func:`_refusal` admits."""

    def checked(channel: paramiko.Channel, message: paramiko.Message) -> None:
        why = _refusal(channel, message, kind, accepts)
        if why is None:
            feed(channel, message)
        else:
            _call(lambda: refused(channel, why))

    return checked


def _refusal(
    channel: paramiko.Channel, message: paramiko.Message, kind: int,
    accepts: Callable[[paramiko.Channel], bool],
) -> InputRefusal | None:
    if not accepts(channel):
        return InputRefusal.NO_SESSION
    # The data's length, read without consuming the message: [uint32 code,] uint32 length, bytes.
    start = message.packet.tell()
    if kind == _EXTENDED_DATA:
        message.get_int()
    size = message.get_int()
    message.packet.seek(start)
    # What the client has sent and paramiko has not yet given back as window: what is buffered, plus what
    # was read and not yet acknowledged (in_window_sofar). A client within its window never exceeds it.
    held = len(channel.in_buffer) + len(channel.in_stderr_buffer) + channel.in_window_sofar
    if held + size > channel.in_window_size:
        return InputRefusal.OVER_WINDOW
    return None


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
