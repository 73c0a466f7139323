"""HTTP front end of the lab CA: SCEP at any path, the CRL at ``/crl`` and ``/ca.crl``.

SCEP is recognised by its ``operation=`` query whatever the path (``/scep``,
``/cgi-bin/pkiclient.exe``...): GetCACaps, GetCACert, PKIOperation (GET with a
URL-encoded base64 ``message``, or POST with the DER body).
"""

from __future__ import annotations

import base64
import binascii
import logging
import socket
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from agent.labca.ca import LabCa, LabCaRequestError
from agent.labca.store import LabCaError

__all__ = ["LabCaServer"]

log = logging.getLogger("agent.labca.http")

MAX_REQUEST = 1024 * 1024
PKI_MESSAGE_TYPE = "application/x-pki-message"
CRL_TYPE = "application/pkix-crl"
SHUTDOWN_TIMEOUT = 10.0
CLIENT_TIMEOUT = 30.0
MAX_CONNECTIONS = 64
"""Connections served at once, a thread each; further ones wait in the listen backlog."""
_SLOT_WAIT = 0.5  # how often a full server looks whether it is stopping


class _HttpServer(ThreadingHTTPServer):
    """Serves until :meth:`stop`, which wakes the accept loop at once (no polling tick while not full).

    At most :data:`MAX_CONNECTIONS` connections are served at once: without
    a cap, every connection got a thread, and clients that connect and send
    nothing held one each for CLIENT_TIMEOUT (200 such connections, 200
    threads). When all are taken, the accept loop waits for one to end.
    """

    daemon_threads = True
    timeout = None  # handle_request() blocks until a connection arrives
    request_queue_size = 2 * MAX_CONNECTIONS  # the listen backlog that waits meanwhile (socketserver's default: 5)
    ca: LabCa

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the connection to a thread once one of the MAX_CONNECTIONS slots is free."""
        while not self._slots.acquire(timeout=_SLOT_WAIT):
            if self.stopping.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread was started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def serve_until_stopped(self) -> None:
        """Accept and dispatch connections until :meth:`stop`."""
        while not self.stopping.is_set():
            self.handle_request()

    def stop(self) -> None:
        """Make :meth:`serve_until_stopped` return: set the flag, then wake it with a connection."""
        self.stopping.set()
        host, port = str(self.server_address[0]), int(self.server_address[1])
        if host in ("", "0.0.0.0", "::"):
            host = "::1" if ":" in host else "127.0.0.1"
        try:
            with socket.create_connection((host, port), timeout=SHUTDOWN_TIMEOUT):
                pass
        except OSError:
            pass  # nothing to wake: the loop is not waiting


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    server_version = "ca-agent-lab-ca/1"
    timeout = CLIENT_TIMEOUT  # per-connection socket deadline: a stalled client cannot pin a thread

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base class signature
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._handle(None)

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, "text/plain", b"bad Content-Length\n")
            return
        if length < 0 or length > MAX_REQUEST:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "text/plain", b"request too large\n")
            return
        self._handle(self.rfile.read(length))

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self, body: bytes | None) -> None:
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        operation = query.get("operation", [""])[0]
        ca = self.server.ca
        try:
            if not operation and parts.path.rstrip("/").lower().endswith(("/crl", ".crl")):
                self._send(HTTPStatus.OK, CRL_TYPE, ca.crl().public_bytes(Encoding.DER))
            elif operation.lower() == "getcacaps":
                self._send(HTTPStatus.OK, "text/plain", ca.ca_caps().to_text().encode())
            elif operation.lower() == "getcacert":
                content_type, payload = ca.ca_certificates().to_http()
                self._send(HTTPStatus.OK, content_type, payload)
            elif operation.lower() == "pkioperation":
                message = body if body is not None else _query_message(query)
                self._send(HTTPStatus.OK, PKI_MESSAGE_TYPE, ca.handle_pki_operation(_der(message)))
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", f"unsupported operation {operation!r}\n".encode())
        except LabCaRequestError as exc:
            log.info("bad SCEP request from %s: %s", self.address_string(), exc.message)
            self._send(HTTPStatus.BAD_REQUEST, "text/plain", f"{exc.message}\n".encode())
        except LabCaError as exc:
            log.error("lab CA failure: %s", exc.message)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", f"{exc.message}\n".encode())
        except Exception:  # noqa: BLE001 - one bad request must not kill the CA
            log.exception("unexpected lab CA failure")
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", b"internal error\n")


def _query_message(query: dict[str, list[str]]) -> bytes:
    values = query.get("message")
    if not values or not values[0]:
        raise LabCaRequestError("PKIOperation without a message")
    # An unencoded '+' arrives as a space: put it back before decoding.
    text = values[0].replace(" ", "+").strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise LabCaRequestError("the PKIOperation message is not base64") from exc


def _der(message: bytes) -> bytes:
    """The DER of a POSTed message; some clients POST base64 instead."""
    if message[:1] == b"\x30":
        return message
    try:
        return base64.b64decode(b"".join(message.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise LabCaRequestError("the PKIOperation body is neither DER nor base64") from exc


class LabCaServer:
    """Serves one :class:`LabCa` over HTTP on ``host:port`` (port 0: any free port).

    If the CA has no ``crl_url`` yet, it is set to this server's ``/crl`` URL so
    issued certificates point at it.
    """

    def __init__(self, ca: LabCa, *, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind the socket. Raises OSError if the address is unavailable."""
        self.ca = ca
        self._httpd = _HttpServer((host, port), _Handler)
        self._httpd.ca = ca
        self.host = host
        self.port = int(self._httpd.server_address[1])
        if ca.crl_url is None:
            ca.crl_url = self.crl_url
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The SCEP URL clients use."""
        return f"{self.base_url}/scep"

    @property
    def crl_url(self) -> str:
        """Where the CRL is served."""
        return f"{self.base_url}/crl"

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`close` is called from another."""
        self._httpd.serve_until_stopped()

    def start(self) -> None:
        """Serve in a background (daemon) thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._httpd.serve_until_stopped, name="lab-ca-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the socket (waits at most SHUTDOWN_TIMEOUT s for the thread)."""
        self._httpd.stop()
        if self._thread is not None:
            self._thread.join(SHUTDOWN_TIMEOUT)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> LabCaServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
