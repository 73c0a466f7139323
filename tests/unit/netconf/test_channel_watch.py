"""The paramiko behaviour agent/netconf/channel_watch.py relies on, on the installed paramiko.

A real paramiko server and client over a socket pair: the close callback
fires when the client closes the channel, when the TCP connection dies
under SSH, and when the server closes the channel itself; an exit-status
request from the client does not fire it. send_window is what a send of
that many bytes can take without blocking: it shrinks as the server sends
while the client does not read, grows back when the client reads, and is 0
once the channel is closed. guard_input feeds a channel's data only when the
channel is accepted and the data is within the window granted: a client that
ignores the window, or sends on a refused channel, has its data dropped and
reported, and a client within its window loses nothing.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import paramiko
import pytest

from agent.netconf.channel_watch import InputRefusal, guard_input, on_close, send_window

from rawnetconf import flood, ignore_window

HOST_KEY = paramiko.RSAKey.generate(1024)


class _Server(paramiko.ServerInterface):
    def check_auth_none(self, username: str) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def get_allowed_auths(self, username: str) -> str:
        return "none"

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED


class Pair:
    """A server-side channel, the client-side one, and the close callback's record.

    With ``accepts``, the server transport is guarded (:func:`guard_input`) and
    ``refusals`` records what it dropped.
    """

    def __init__(self, accepts: Callable[[paramiko.Channel], bool] | None = None) -> None:
        server_sock, client_sock = socket.socketpair()
        self.client_sock = client_sock
        self.server = paramiko.Transport(server_sock)
        self.refusals: list[InputRefusal] = []
        if accepts is not None:
            guard_input(self.server, accepts, lambda channel, why: self.refusals.append(why))
        self.server.add_server_key(HOST_KEY)
        self.server.start_server(event=threading.Event(), server=_Server())
        self.client = paramiko.Transport(client_sock)
        self.client.connect()
        self.client.auth_none("user")
        self.client_channel = self.client.open_session()
        channel = self.server.accept(10)
        assert channel is not None
        self.channel = channel
        self.closed = threading.Event()
        on_close(self.channel, self.closed.set)

    def close(self) -> None:
        self.client.close()
        self.server.close()


@pytest.fixture
def pair() -> Iterator[Pair]:
    made = Pair()
    yield made
    made.close()


def test_the_client_closing_the_channel_calls_back(pair: Pair) -> None:
    assert not pair.closed.is_set()
    pair.client_channel.close()
    assert pair.closed.wait(10)


def test_the_connection_dying_calls_back(pair: Pair) -> None:
    pair.client_sock.shutdown(socket.SHUT_RDWR)
    assert pair.closed.wait(10)


def test_our_own_close_calls_back(pair: Pair) -> None:
    pair.channel.close()
    assert pair.closed.wait(10)


def test_an_exit_status_request_is_not_a_close(pair: Pair) -> None:
    pair.client_channel.send_exit_status(0)
    assert pair.channel.status_event.wait(10)  # processed: paramiko's own use of the event still works
    assert not pair.closed.is_set()
    pair.client_channel.close()
    assert pair.closed.wait(10)


def test_a_channel_closed_before_the_watch_calls_back_at_once() -> None:
    made = Pair()
    try:
        made.client_channel.close()
        assert made.closed.wait(10)
        late = threading.Event()
        on_close(made.channel, late.set)
        assert late.is_set()
    finally:
        made.close()


def test_send_window_is_what_can_be_sent_without_blocking(pair: Pair) -> None:
    window = send_window(pair.channel)
    assert window > 0
    pair.channel.settimeout(0.0)  # a send that would wait for the window raises instead
    pair.channel.sendall(b"x" * 1000)
    assert send_window(pair.channel) == window - 1000
    rest = send_window(pair.channel)
    pair.channel.sendall(b"y" * rest)  # exactly the window: no wait
    assert send_window(pair.channel) == 0
    with pytest.raises(socket.timeout):
        pair.channel.sendall(b"z")
    received = 0
    while received < window:  # the client reads: its window adjustments reopen ours
        received += len(pair.client_channel.recv(65536))
    deadline = threading.Event()
    for _ in range(100):
        if send_window(pair.channel) > 0:
            break
        deadline.wait(0.05)
    assert send_window(pair.channel) > 0


def test_send_window_of_a_closed_channel_is_zero(pair: Pair) -> None:
    pair.client_channel.close()
    assert pair.closed.wait(10)
    assert send_window(pair.channel) == 0


def test_guarded_data_within_the_window_is_all_delivered() -> None:
    made = Pair(accepts=lambda channel: True)
    try:
        total = 3 * made.channel.in_window_size  # the window must reopen twice
        received = bytearray()

        def read() -> None:
            made.channel.settimeout(10)
            while len(received) < total:
                received.extend(made.channel.recv(65536))

        reader = threading.Thread(target=read)
        reader.start()
        made.client_channel.sendall(b"y" * total)
        reader.join(20)
        assert bytes(received) == b"y" * total
        assert made.refusals == []
    finally:
        made.close()


def test_guarded_data_beyond_the_window_is_dropped_and_reported() -> None:
    made = Pair(accepts=lambda channel: True)
    try:
        window = made.channel.in_window_size
        ignore_window(made.client_channel)
        sent = flood(made.client_channel, 4 * window)  # nobody reads on the server
        assert sent > window
        for _ in range(200):
            if made.refusals:
                break
            threading.Event().wait(0.05)
        assert InputRefusal.OVER_WINDOW in made.refusals
        assert set(made.refusals) == {InputRefusal.OVER_WINDOW}
        assert len(made.channel.in_buffer) <= window
    finally:
        made.close()


def test_unguarded_paramiko_buffers_data_beyond_the_window() -> None:
    """Why the guard exists: without it, the installed paramiko keeps what a client sends past the window."""
    made = Pair()
    try:
        window = made.channel.in_window_size
        ignore_window(made.client_channel)
        made.client_channel.sendall(b"x" * (2 * window))
        for _ in range(200):
            if len(made.channel.in_buffer) >= 2 * window:
                break
            threading.Event().wait(0.05)
        assert len(made.channel.in_buffer) == 2 * window
    finally:
        made.close()


def test_data_on_a_channel_that_is_not_accepted_is_dropped_and_reported() -> None:
    made = Pair(accepts=lambda channel: False)
    try:
        made.client_channel.sendall(b"hello")
        for _ in range(200):
            if made.refusals:
                break
            threading.Event().wait(0.05)
        assert made.refusals == [InputRefusal.NO_SESSION]
        assert len(made.channel.in_buffer) == 0
        made.client_channel.sendall(b"more")  # still dropped, still reported; the transport goes on
        for _ in range(200):
            if len(made.refusals) == 2:
                break
            threading.Event().wait(0.05)
        assert made.refusals == [InputRefusal.NO_SESSION] * 2
        assert len(made.channel.in_buffer) == 0
        assert made.server.is_active()
    finally:
        made.close()
