"""CRL and CA-bundle fetching against hostile servers on 127.0.0.1: one deadline per fetch.

A CRL distribution point, a ``query url`` and a ``cabundle url`` are servers
the agent does not control. Each test server here is real (a threaded
http.server, or a raw TCP server speaking just enough LDAP) and trickles its
answer one byte at a time, forever: with a timeout per socket read, as
urllib and ldap3 give, the fetch never ends. Each call runs in a worker
thread joined with a liveness bound, so a fetch without one overall deadline
fails the test instead of hanging it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hostile_http import PACE, Behaviour, HostileHandler, HostileServer, Seen, bounded, start_server
from lxml import etree
from ncclient.operations import RPCError
from trust_e2e_helpers import configure, rpc, text, tp_state

from agent.pki.crlfetch import MAX_REDIRECTS, FetchError, fetch_crl, fetch_url

DEADLINE = 1.0  # the fetch's timeout in these tests
LIVENESS = 30.0  # a fetch still running by then ignored its deadline
CRL = b"0\x82\x01\x00" + b"\x00" * 256  # any body: fetching does not parse it
CRL_TYPE = "application/pkix-crl"


@pytest.fixture
def http_server() -> Iterator[Callable[[Behaviour], str]]:
    """Start HTTP servers on 127.0.0.1 with a behaviour; yields a function returning the base URL."""
    servers: list[HostileServer] = []
    stop = threading.Event()

    def start(behaviour: Behaviour) -> str:
        server = start_server(behaviour, stop)
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    stop.set()
    for server in servers:
        server.shutdown()
        server.server_close()


def _bounded(call: Callable[[], object]) -> tuple[object, float]:
    """(result or exception, seconds) of ``call``; fails if it outlives LIVENESS."""
    start = time.monotonic()
    result = bounded(call, LIVENESS)
    return result, time.monotonic() - start


def _fails_at_the_deadline(call: Callable[[], object]) -> FetchError:
    result, took = _bounded(call)
    assert isinstance(result, FetchError), result
    assert f"no complete answer within {DEADLINE:g} s" in result.message
    assert DEADLINE * 0.9 <= took < DEADLINE + 2.0, took
    return result


def test_a_trickled_crl_body_fails_at_the_deadline(http_server) -> None:
    url = http_server(lambda h, seen: h.trickle(f"HTTP/1.0 200 OK\r\nContent-Type: {CRL_TYPE}\r\n\r\n0".encode()))
    url += "/ca.crl"
    _fails_at_the_deadline(lambda: fetch_crl(url, "CN=CA", DEADLINE))


def test_a_trickled_status_line_fails_at_the_deadline_and_so_does_a_bundle(http_server) -> None:
    url = http_server(lambda h, seen: h.trickle(b"HTTP/1.0 2")) + "/x"
    _fails_at_the_deadline(lambda: fetch_crl(url, "CN=CA", DEADLINE))
    _fails_at_the_deadline(lambda: fetch_url(url, DEADLINE, 1024))  # a cabundle url


def test_a_slow_but_timely_answer_is_read(http_server) -> None:
    def slow(h: HostileHandler, seen: Seen) -> None:
        time.sleep(DEADLINE / 3)
        h.answer(CRL_TYPE, CRL)

    url = http_server(slow) + "/ca.crl"
    result, took = _bounded(lambda: fetch_crl(url, "CN=CA", DEADLINE))
    assert result == CRL and took < DEADLINE


def test_redirects_are_followed_to_http_within_one_deadline_and_nowhere_else(http_server) -> None:
    cdn = http_server(lambda h, seen: h.answer(CRL_TYPE, CRL))
    moved = http_server(lambda h, seen: h.redirect(f"{cdn}/ca.crl"))
    result, _ = _bounded(lambda: fetch_crl(f"{moved}/ca.crl", "CN=CA", DEADLINE))
    assert result == CRL  # another origin: a CDP may move behind a CDN

    for target in ("file:///etc/passwd", "ftp://127.0.0.1/ca.crl", "ldap://127.0.0.1/cn=x"):
        elsewhere = http_server(lambda h, seen, t=target: h.redirect(t, 301))
        refused, _ = _bounded(lambda u=elsewhere: fetch_crl(f"{u}/ca.crl", "CN=CA", DEADLINE))
        assert isinstance(refused, FetchError) and "not an http or https URL" in refused.message, target

    hits: list[int] = []

    def loop(h: HostileHandler, seen: Seen) -> None:
        hits.append(1)
        h.redirect(h.path)

    looping = http_server(loop)
    refused, _ = _bounded(lambda: fetch_crl(f"{looping}/ca.crl", "CN=CA", DEADLINE))
    assert isinstance(refused, FetchError) and f"more than {MAX_REDIRECTS} times" in refused.message
    assert len(hits) == MAX_REDIRECTS + 1

    def slow_hop(h: HostileHandler, seen: Seen) -> None:  # each hop in time, all of them not
        time.sleep(DEADLINE / 3)
        h.redirect(h.path + "x")

    slow = http_server(slow_hop)
    _fails_at_the_deadline(lambda: fetch_crl(f"{slow}/ca.crl", "CN=CA", DEADLINE))


def test_errors_name_the_url_and_what_went_wrong(http_server) -> None:
    base = http_server(
        lambda h, seen: h.answer("text/plain", b"no", 404) if h.path == "/missing" else h.answer(CRL_TYPE, b"x" * 2048))
    missing, _ = _bounded(lambda: fetch_crl(f"{base}/missing", "CN=CA", DEADLINE))
    assert isinstance(missing, FetchError) and missing.message == f"{base}/missing: HTTP 404 Not Found"
    large, _ = _bounded(lambda: fetch_url(f"{base}/big", DEADLINE, 1024))
    assert isinstance(large, FetchError) and "larger than 1024 bytes" in large.message
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    refused, _ = _bounded(lambda: fetch_crl(f"http://127.0.0.1:{port}/ca.crl", "CN=CA", DEADLINE))
    assert isinstance(refused, FetchError) and "refused" in refused.message.lower()


class _TricklingLdap:
    """Accepts LDAP connections, reads the bind request, then announces a long message and trickles it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"\x30\x84\x00\x01\x00\x00")  # a SEQUENCE of 65,536 bytes follows...
                while not self.stop.wait(PACE):
                    conn.sendall(b"\x04")  # ...one byte at a time
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_a_trickling_ldap_server_fails_at_the_deadline() -> None:
    server = _TricklingLdap()
    try:
        _fails_at_the_deadline(lambda: fetch_crl(f"ldap://127.0.0.1:{server.port}/cn=CA,o=Example", "", DEADLINE))
    finally:
        server.close()


def test_ca_crl_request_from_a_trickling_query_url_fails_and_other_sessions_go_on(agent, lab_cas) -> None:
    """Over NETCONF, with the seed's ``query url ldap://...``: the RPC ends with operation-failed at the
    agent's CRL deadline (10 s), and meanwhile another session is answered as usual."""
    server = _TricklingLdap()
    ca = lab_cas("ca")
    crypto = "urn:ca-agent:yang:crypto"
    try:
        with agent.connect() as m, agent.connect() as other:
            configure(m, f'<crypto xmlns="{crypto}"><ca><trustpoint><name>T</name><enrollment><url>{ca.url}</url>'
                         f"</enrollment><query-url>ldap://127.0.0.1:{server.port}</query-url></trustpoint></ca>"
                         "</crypto>")
            assert text(rpc(m, "ca-authenticate", "<trustpoint>T</trustpoint><accept/>"), "c:installed") == "true"
            answered: list[float] = []

            def meanwhile() -> None:
                time.sleep(1.0)
                start = time.monotonic()
                other.get_config(source="running")
                answered.append(time.monotonic() - start)

            side = threading.Thread(target=meanwhile, daemon=True)
            side.start()
            start = time.monotonic()
            with pytest.raises(RPCError) as failed:
                rpc(m, "ca-crl-request", "<trustpoint>T</trustpoint>")
            took = time.monotonic() - start
            side.join(LIVENESS)
            assert failed.value.tag == "operation-failed"
            assert "no complete answer within 10 s" in failed.value.message, failed.value.message
            assert 9.0 <= took < 15.0, took
            assert answered and answered[0] < 2.0, answered
            crl = tp_state(m, "T").find("c:crl", {"c": crypto})
            assert crl is not None, etree.tostring(tp_state(m, "T")).decode()
            assert "no complete answer within 10 s" in (text(crl, "c:last-error") or "")
    finally:
        server.close()
