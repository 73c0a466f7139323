"""ca-authenticate's discovery: GetCACaps and GetCACert asked at once, a GetCACaps failure still reported first.

A real HTTP server on 127.0.0.1 answers with what micromdm scepserver answered
(the known-answer capture), and writes down when each request arrives.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from agent.clock import SYSTEM_CLOCK
from agent.pki.authentication import fetch_ca_certificates
from agent.pki.scep import CaCertificates
from agent.pki.scep.capabilities import CapabilitiesCache
from agent.pki.trustpoint import CaUnreachableError, TrustpointConfig
from agent.serial import SpareThreads

CAPTURE = Path(__file__).resolve().parents[2] / "fixtures" / "scep" / "scepserver"
WAIT = 5.0  # how long GetCACaps waits for GetCACert to arrive beside it


class RecordingCa:
    """GetCACaps waits (up to WAIT s) for a GetCACert to arrive; both then answer as scepserver did."""

    def __init__(self, caps_status: int = 200, cert_status: int = 200, wait: bool = True) -> None:
        self.arrivals: list[str] = []
        self.overlapped = False  # GetCACert arrived while GetCACaps was being answered
        self._cert_arrived = threading.Event()
        stub = self
        caps = (CAPTURE / "getcacaps.txt").read_bytes()
        cert = (CAPTURE / "getcacert.der").read_bytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                headers = {"Content-Type": content_type}
                if status in (301, 302):  # to another host: refused by the agent
                    headers, body = {"Location": "http://elsewhere.invalid/scep"}, b""
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if "GetCACaps" in self.path:
                    stub.arrivals.append("GetCACaps")
                    if wait:
                        stub.overlapped = stub._cert_arrived.wait(WAIT)
                    self._answer(caps_status, caps, "text/plain")
                elif "GetCACert" in self.path:
                    stub.arrivals.append("GetCACert")
                    stub._cert_arrived.set()
                    self._answer(cert_status, cert, "application/x-x509-ca-cert")
                else:
                    self.send_error(404)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/scep"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.certificate = x509.load_der_x509_certificate(cert)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def spare() -> Iterator[SpareThreads]:
    threads = SpareThreads("test-discovery", 2)
    yield threads
    threads.close()


def _fetch(ca: RecordingCa, spare: SpareThreads | None, cache: CapabilitiesCache | None = None) -> CaCertificates:
    tp = TrustpointConfig("myca", enrollment_url=ca.url)
    return fetch_ca_certificates(tp, timeout=10.0, clock=SYSTEM_CLOCK, caps_cache=cache, spare=spare)


def test_getcacaps_is_asked_beside_getcacert(spare: SpareThreads) -> None:
    ca = RecordingCa()
    cache = CapabilitiesCache()
    try:
        found = _fetch(ca, spare, cache)
    finally:
        ca.close()
    assert ca.overlapped  # asked in turn, GetCACert would only come after GetCACaps' answer
    assert sorted(ca.arrivals) == ["GetCACaps", "GetCACert"]
    assert found.ca == ca.certificate
    caps = cache.get(ca.url)
    assert caps is not None and caps.post  # the answer is kept for the enrollment that follows


def test_without_an_idle_spare_thread_they_are_asked_in_turn() -> None:
    busy = SpareThreads("test-busy", 1)
    release = threading.Event()
    hold = busy.beside(lambda: release.wait(WAIT))
    assert hold is not None
    ca = RecordingCa(wait=False)
    try:
        found = _fetch(ca, busy)
    finally:
        release.set()
        hold()
        busy.close()
        ca.close()
    assert ca.arrivals == ["GetCACaps", "GetCACert"]
    assert found.ca == ca.certificate


@pytest.mark.parametrize("threads", [True, False], ids=["beside", "in-turn"])
def test_a_getcacaps_failure_is_the_one_reported(threads: bool, spare: SpareThreads) -> None:
    ca = RecordingCa(caps_status=302, cert_status=500, wait=False)  # GetCACaps redirected to another host
    try:
        with pytest.raises(CaUnreachableError) as caught:
            _fetch(ca, spare if threads else None)
    finally:
        ca.close()
    assert "GetCACaps" in caught.value.message and "redirected" in caught.value.message


def test_a_getcacert_failure_after_a_good_getcacaps(spare: SpareThreads) -> None:
    ca = RecordingCa(cert_status=500)
    try:
        with pytest.raises(CaUnreachableError) as caught:
            _fetch(ca, spare)
    finally:
        ca.close()
    assert "GetCACert with HTTP 500" in caught.value.message
