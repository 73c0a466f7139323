"""A slow CA must not stall anyone else; enrollment and commit must not deadlock (issue 10, "Concurrency").

A CA stub answers GetCACaps and GetCACert at once (with a real lab CA's
certificate) and holds every PKIOperation for HOLD seconds. While one session
waits in ca-enroll, other sessions read, edit and commit (including edits of
the very trustpoint being enrolled and its deletion/re-creation, which used to
cross the trustpoint lock with the datastore lock), and log in.
"""

from __future__ import annotations

import http.server
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

from agentproc import AgentProcess
from labcaproc import LabCaProcess

SYS = "urn:ca-agent:yang:system"
CRYPTO = "urn:ca-agent:yang:crypto"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
HOLD = 8.0  # how long the stub CA sits on an enrollment
STALL = 2.0  # no other operation may take this long (they take milliseconds; a stall takes HOLD)


class SlowCa:
    """An HTTP SCEP endpoint that is quick for the CA certificate and slow for everything else."""

    def __init__(self, caps: bytes, ca_cert: tuple[bytes, str]) -> None:
        self.held = threading.Event()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, body: bytes, content_type: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if "GetCACaps" in self.path:
                    self._answer(caps, "text/plain")
                elif "GetCACert" in self.path:
                    self._answer(*ca_cert)
                else:
                    self._hold()

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._hold()

            def _hold(self) -> None:
                stub.held.set()
                time.sleep(HOLD)
                self.send_error(503, "busy")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/scep"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def slow_ca(tmp_path: Path) -> Iterator[SlowCa]:
    lab = LabCaProcess(tmp_path / "lab").start()
    try:
        with urllib.request.urlopen(f"{lab.url}?operation=GetCACaps", timeout=10) as reply:
            caps = reply.read()
        with urllib.request.urlopen(f"{lab.url}?operation=GetCACert", timeout=10) as reply:
            ca_cert = (reply.read(), reply.headers.get("Content-Type", "application/x-x509-ca-cert"))
    finally:
        lab.stop()
    stub = SlowCa(caps, ca_cert)
    yield stub
    stub.close()


def trustpoint(name: str, url: str, extra: str = "", operation: str = "") -> str:
    op = f' xmlns:nc="{NC}" nc:operation="{operation}"' if operation else ""
    return (f'<config xmlns="{NC}"><crypto xmlns="{CRYPTO}"><ca><trustpoint{op}><name>{name}</name>'
            f"<enrollment><url>{url}</url>{extra}</enrollment></trustpoint></ca></crypto></config>")


def timed(what: str, action, timings: dict[str, float]) -> None:
    started = time.monotonic()
    action()
    timings[what] = time.monotonic() - started


def test_a_slow_ca_delays_nobody_else_and_enroll_never_deadlocks_with_commit(
    agent: AgentProcess, slow_ca: SlowCa
) -> None:
    with agent.connect() as admin:
        admin.edit_config(target="running", config=trustpoint("slow", slow_ca.url))
        admin.edit_config(target="running", config=trustpoint("other", slow_ca.url))
        admin.dispatch(to_ele(f'<ca-authenticate xmlns="{CRYPTO}"><trustpoint>slow</trustpoint><accept/>'
                              "</ca-authenticate>"))
        result: dict[str, object] = {}

        def enroll() -> None:
            with agent.connect(timeout=120) as enroller:
                try:
                    result["reply"] = enroller.dispatch(to_ele(
                        f'<ca-enroll xmlns="{CRYPTO}"><trustpoint>slow</trustpoint>'
                        "<challenge-password>pw</challenge-password></ca-enroll>"))
                except RPCError as error:
                    result["error"] = error

        worker = threading.Thread(target=enroll)
        started = time.monotonic()
        worker.start()
        assert slow_ca.held.wait(30), "the enrollment never reached the CA"
        timings: dict[str, float] = {}
        timed("get-config", lambda: admin.get_config("running"), timings)
        timed("get (state of the enrolling trustpoint)", lambda: admin.get(
            filter=("subtree", f'<crypto xmlns="{CRYPTO}"/>')), timings)
        timed("edit+commit hostname", lambda: (admin.edit_config(
            target="candidate", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">busy</hostname></config>'),
            admin.commit()), timings)
        # the enrolling trustpoint itself: the commit listener reconfigures it while the CA holds the request
        timed("edit the enrolling trustpoint", lambda: admin.edit_config(
            target="running", config=trustpoint("slow", slow_ca.url, "<retry><count>20</count></retry>")), timings)
        timed("delete another trustpoint", lambda: admin.edit_config(
            target="running", config=trustpoint("other", slow_ca.url, operation="delete")), timings)
        timed("lock/unlock running", lambda: (admin.lock("running"), admin.unlock("running")), timings)

        def login() -> None:
            with agent.connect(timeout=30) as other:
                other.get_config("running")

        timed("password login + get-config", login, timings)
        still_waiting = worker.is_alive()
        worker.join(HOLD + 60)
        enroll_took = time.monotonic() - started
    print("\n".join(f"{what}: {seconds * 1000:.1f} ms" for what, seconds in timings.items()))
    assert still_waiting, "the CA answered too early for this test to mean anything"
    slow = {what: seconds for what, seconds in timings.items() if seconds >= STALL}
    assert not slow, f"stalled behind the CA: {slow}"
    assert not worker.is_alive() and enroll_took >= HOLD
    reply = result.get("reply")
    assert reply is not None, result  # the CA's failure is the outcome, not an rpc-error
    assert "failed" in reply.xml
