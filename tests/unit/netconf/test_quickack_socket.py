"""The accepted-socket wrapper of the SSH server reads like the socket and passes everything else through."""

from __future__ import annotations

import socket

from agent.netconf.ssh import QuickAckSocket


def test_reads_and_delegates_like_the_socket() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        wrapped = QuickAckSocket(accepted)
        try:
            client.sendall(b"hello")
            assert wrapped.recv(16) == b"hello"
            wrapped.sendall(b"back")  # delegated
            assert client.recv(16) == b"back"
            assert wrapped.fileno() == accepted.fileno()
            wrapped.settimeout(0.5)
            assert accepted.gettimeout() == 0.5
            client.close()
            assert wrapped.recv(16) == b""  # EOF, as from the socket itself
        finally:
            accepted.close()
