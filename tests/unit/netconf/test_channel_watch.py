"""The paramiko behaviour agent/netconf/channel_watch.py relies on, on the installed paramiko.

A real paramiko server and client over a socket pair: the close callback
fires when the client closes the channel, when the TCP connection dies
under SSH, and when the server closes the channel itself; an exit-status
request from the client does not fire it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import paramiko
import pytest

from agent.netconf.channel_watch import on_close

HOST_KEY = paramiko.RSAKey.generate(1024)


class _Server(paramiko.ServerInterface):
    def check_auth_none(self, username: str) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def get_allowed_auths(self, username: str) -> str:
        return "none"

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED


class Pair:
    """A server-side channel, the client-side one, and the close callback's record."""

    def __init__(self) -> None:
        server_sock, client_sock = socket.socketpair()
        self.client_sock = client_sock
        self.server = paramiko.Transport(server_sock)
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
