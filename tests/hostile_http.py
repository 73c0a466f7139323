"""Hostile HTTP servers on 127.0.0.1 for the tests of the agent's HTTP clients (SCEP, CRLs, CA bundles).

Each server is a real threaded http.server in the test process whose
answers a behaviour function writes: trickling one byte at a time until the
test ends, redirecting, answering too much. :func:`bounded` runs a client
call in a worker thread joined with a liveness bound, so a client without
one overall deadline fails its test instead of hanging it.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PACE = 0.02  # seconds between two trickled bytes


@dataclass
class Seen:
    """One request as the server read it."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


Behaviour = Callable[["HostileHandler", Seen], None]


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True
    behaviour: Behaviour
    stop: threading.Event
    seen: list[Seen]


class HostileHandler(BaseHTTPRequestHandler):
    server: HostileServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base class signature
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._handle(b"")

    def do_POST(self) -> None:  # noqa: N802
        self._handle(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def _handle(self, body: bytes) -> None:
        seen = Seen(self.command, self.path, body, dict(self.headers.items()))
        self.server.seen.append(seen)
        try:
            self.server.behaviour(self, seen)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: that is the point

    def trickle(self, data: bytes) -> None:
        """Send ``data``, then one byte per :data:`PACE` until the server stops."""
        self.wfile.write(data)
        while not self.server.stop.wait(PACE):
            self.wfile.write(b"a")

    def answer(self, content_type: str, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str, status: int = 302) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


def start_server(
    behaviour: Behaviour, stop: threading.Event, handler: type[HostileHandler] = HostileHandler,
    tls: ssl.SSLContext | None = None,
) -> HostileServer:
    """A server on 127.0.0.1 (any port) serving ``behaviour`` until ``stop`` is set and it is shut down.

    With ``tls`` it speaks HTTPS (the handshake at accept).
    """
    server = HostileServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.behaviour = behaviour
    server.stop = stop
    server.seen = []
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server


def bounded(call: Callable[[], object], liveness: float) -> object:
    """``call``'s result or exception, from a worker thread; fails the test if it outlives ``liveness`` s."""
    result: list[object] = []

    def work() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(liveness)
    assert not worker.is_alive(), f"the call did not stop at its deadline (still running after {liveness} s)"
    return result[0]
