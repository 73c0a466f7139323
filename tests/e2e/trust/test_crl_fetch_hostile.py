"""CRL and CA-bundle fetching against hostile servers on 127.0.0.1: one deadline per fetch.

A CRL distribution point, a ``query url`` and a ``cabundle url`` are servers
the agent does not control. Each test server here is real (a threaded
http.server, or a raw TCP server speaking just enough LDAP). Most trickle
their answer one byte at a time, forever: with a timeout per socket read, as
urllib and ldap3 give, the fetch never ends. The LDAP ones also flood, or
send what ldap3 would decode into far more memory than the bytes they cost. Each call runs in a worker
thread joined with a liveness bound, so a fetch without one overall deadline
fails the test instead of hanging it.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from ber import LDAP_SEARCH_DONE, LDAP_SUCCESS, ldap_entry, ldap_message, tlv
from hostile_http import PACE, Behaviour, HostileHandler, HostileServer, Seen, bounded, start_server
from lxml import etree
from ncclient.operations import RPCError
from trust_e2e_helpers import configure, enroll, rpc, text, tp_state

from agent.pki.crlfetch import MAX_CRL_BYTES, MAX_REDIRECTS, FetchError, ServerFailedError, fetch_crl, fetch_url
from agent.pki.ldap_watch import MAX_ELEMENTS, MAX_MESSAGES

from rawnetconf import status_value

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
    assert isinstance(result, ServerFailedError), result  # the server, not the path: not asked again in the fetch
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
    assert not isinstance(missing, ServerFailedError) and not isinstance(large, ServerFailedError)  # it answered
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    refused, _ = _bounded(lambda: fetch_crl(f"http://127.0.0.1:{port}/ca.crl", "CN=CA", DEADLINE))
    assert isinstance(refused, ServerFailedError) and "refused" in refused.message.lower()
    refused, _ = _bounded(lambda: fetch_crl(f"ldap://127.0.0.1:{port}/cn=CA", "CN=CA", DEADLINE))
    assert isinstance(refused, ServerFailedError) and "cannot reach the LDAP server" in refused.message


LdapBehaviour = Callable[[socket.socket, bytes, threading.Event], None]


class _HostileLdap:
    """Accepts LDAP connections on 127.0.0.1, reads the bind request, lets ``behaviour`` answer it."""

    def __init__(self, behaviour: LdapBehaviour) -> None:
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.url = f"ldap://127.0.0.1:{self.port}/cn=CA,o=Example"
        self.stop = threading.Event()
        self.closed_by_client = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.behaviour(conn, conn.recv(65536), self.stop)
            except OSError:
                self.closed_by_client.set()  # the client shut the connection while we sent

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def _message_id(request: bytes) -> bytes:
    """The messageID of an LDAPMessage (a SEQUENCE whose length may take several bytes), as sent."""
    at = 2 + (request[1] & 0x7F if request[1] & 0x80 else 0)
    return request[at + 2:at + 2 + request[at + 1]]


def _bind_and_search(conn: socket.socket, request: bytes) -> bytes:
    """Answer the bind ``request``, read the search request: its ID (``b"\\x02"`` in every answer replaced).

    ldap3 numbers its requests per process, so answers echo the IDs they are sent.
    """
    conn.sendall(ldap_message(tlv(0x61, LDAP_SUCCESS), _message_id(request)))
    return _message_id(conn.recv(65536))


def _as(message_id: bytes, answer: bytes) -> bytes:
    """``answer`` (messages built with ID 2) with ``message_id`` instead."""
    return answer.replace(tlv(0x02, b"\x02"), tlv(0x02, message_id))


def _trickle(conn: socket.socket, _bind: bytes, stop: threading.Event) -> None:
    conn.sendall(b"\x30\x84\x00\x01\x00\x00")  # a SEQUENCE of 65,536 bytes follows...
    while not stop.wait(PACE):
        conn.sendall(b"\x04")  # ...one byte at a time


def _answers(*parts: bytes, pace: float = 0.0) -> LdapBehaviour:
    """A behaviour sending ``parts`` in turn after the bind's answer (each one byte at a time if ``pace``)."""

    def send(conn: socket.socket, bind: bytes, stop: threading.Event) -> None:
        message_id = _bind_and_search(conn, bind)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a byte sent is a segment
        for part in (_as(message_id, part) for part in parts):
            if not pace:
                conn.sendall(part)
                continue
            for at in range(len(part)):
                conn.sendall(part[at:at + 1])
                stop.wait(pace)
        stop.wait(LIVENESS)

    return send


def _hostile_ldap_fetch(behaviour: LdapBehaviour, timeout: float = DEADLINE) -> tuple[object, float, _HostileLdap]:
    server = _HostileLdap(behaviour)
    try:
        result, took = _bounded(lambda: fetch_crl(server.url, "", timeout))
    finally:
        server.close()
    return result, took, server


def test_a_trickling_ldap_server_fails_at_the_deadline() -> None:
    server = _HostileLdap(_trickle)
    try:
        _fails_at_the_deadline(lambda: fetch_crl(server.url, "", DEADLINE))
    finally:
        server.close()


def test_an_ldap_answer_sent_a_byte_at_a_time_in_time_is_read() -> None:
    """Every message boundary and BER header falls between two reads somewhere: all are followed."""
    result, _, _ = _hostile_ldap_fetch(_answers(ldap_entry([CRL]) + LDAP_SEARCH_DONE, pace=0.001), timeout=10.0)
    assert result == CRL, result


def test_a_crl_as_large_as_allowed_is_read_whole_over_ldap() -> None:
    """The limits leave room for the largest CRL accepted over HTTP (ldap3 once took 1.7 s for it here)."""
    crl = b"0" + bytes(range(256)) * ((MAX_CRL_BYTES - 1024) // 256)
    result, _, _ = _hostile_ldap_fetch(_answers(ldap_entry([crl]) + LDAP_SEARCH_DONE), timeout=10.0)
    assert result == crl


def test_an_ldap_server_flooding_search_entries_is_cut_off_at_once() -> None:
    """Before: ldap3 kept and decoded every entry until the deadline (717 MiB in 10 s, measured)."""
    flood = ldap_entry([CRL]) * 2000

    def send(conn: socket.socket, bind: bytes, stop: threading.Event) -> None:
        message_id = _bind_and_search(conn, bind)
        while True:  # until the client closes the connection
            conn.sendall(_as(message_id, flood))

    result, took, server = _hostile_ldap_fetch(send)
    assert isinstance(result, FetchError), result
    assert f"the LDAP server's answer holds more than {MAX_MESSAGES} messages" in result.message
    assert took < DEADLINE, took
    assert server.closed_by_client.wait(5.0)


def test_an_ldap_entry_of_too_many_values_is_refused_before_it_is_decoded() -> None:
    """A small message can hold millions of one-byte values, each a Python object once decoded (370 MiB for
    9 MB, measured): the message is refused on its element count."""
    result, took, _ = _hostile_ldap_fetch(_answers(ldap_entry([b"x"] * (MAX_ELEMENTS + 1)) + LDAP_SEARCH_DONE))
    assert isinstance(result, FetchError), result
    assert f"holds a message of more than {MAX_ELEMENTS} elements" in result.message
    assert took < DEADLINE, took
    within, _, _ = _hostile_ldap_fetch(_answers(ldap_entry([CRL] + [b"x"] * 100) + LDAP_SEARCH_DONE))
    assert within == CRL, within


def test_an_ldap_answer_larger_than_a_crl_may_be_is_refused_as_it_arrives() -> None:
    announced = b"\x30\x84\x7f\xff\xff\xff"  # a message of 2 GiB

    def send(conn: socket.socket, bind: bytes, stop: threading.Event) -> None:
        _bind_and_search(conn, bind)
        conn.sendall(announced)
        chunk = b"\x00" * (1 << 20)
        while not stop.is_set():
            conn.sendall(chunk)

    result, took, _ = _hostile_ldap_fetch(send)
    assert isinstance(result, FetchError), result
    assert f"is larger than {MAX_CRL_BYTES + 64 * 1024} bytes" in result.message, result.message
    assert took < DEADLINE, took


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b"\x30\x80" + b"\x00" * 64, "is malformed"),  # an indefinite length, which RFC 4511 forbids
        (ldap_message(tlv(0x64, b"\x04\x7f" + b"x" * 8)), "is malformed"),  # a string running past its entry
        (b"\x04\x03abc", "is not an LDAP message"),
    ],
    ids=["indefinite-length", "string-past-its-entry", "not-a-message"],
)
def test_malformed_ldap_answers_are_named(answer: bytes, why: str) -> None:
    result, took, _ = _hostile_ldap_fetch(_answers(answer))
    assert isinstance(result, FetchError), result
    assert f"the LDAP server's answer {why}" in result.message, result.message
    assert took < DEADLINE, took


CRYPTO = "urn:ca-agent:yang:crypto"


def _trustpoint_querying(m, ca_url: str, server: _HostileLdap) -> None:
    """Trustpoint T, its CA authenticated, with the seed's ``query url ldap://host`` at ``server``."""
    configure(m, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>T</name><enrollment><url>{ca_url}</url>'
                 f"</enrollment><query-url>ldap://127.0.0.1:{server.port}</query-url></trustpoint></ca>"
                 "</crypto>")
    assert text(rpc(m, "ca-authenticate", "<trustpoint>T</trustpoint><accept/>"), "c:installed") == "true"


def test_ca_crl_request_from_a_flooding_query_url_fails_at_once_and_costs_no_memory(agent, lab_cas) -> None:
    """Over NETCONF: before, the agent decoded the flood until the deadline (~700 MiB more in 10 s)."""
    flood = ldap_entry([CRL]) * 2000

    def send(conn: socket.socket, bind: bytes, stop: threading.Event) -> None:
        message_id = _bind_and_search(conn, bind)
        while True:  # until the client closes the connection
            conn.sendall(_as(message_id, flood))

    server = _HostileLdap(send)
    ca = lab_cas("ca")
    try:
        with agent.connect() as m:
            _trustpoint_querying(m, ca.url, server)
            peak_before = status_value(agent.proc.pid, "VmHWM")
            start = time.monotonic()
            with pytest.raises(RPCError) as failed:
                rpc(m, "ca-crl-request", "<trustpoint>T</trustpoint>")
            took = time.monotonic() - start
            assert failed.value.tag == "operation-failed"
            assert f"holds more than {MAX_MESSAGES} messages" in failed.value.message, failed.value.message
            assert took < 5.0, took
            grown = status_value(agent.proc.pid, "VmHWM") - peak_before
            assert grown < 50 * 1024, f"peak RSS grew by {grown} KiB"
    finally:
        server.close()


def test_ca_crl_request_from_a_trickling_query_url_fails_and_other_sessions_go_on(agent, lab_cas) -> None:
    """Over NETCONF, with the seed's ``query url ldap://...``: the RPC ends with operation-failed at the
    agent's CRL deadline (10 s), and meanwhile another session is answered as usual."""
    server = _HostileLdap(_trickle)
    ca = lab_cas("ca")
    crypto = CRYPTO
    try:
        with agent.connect() as m, agent.connect() as other:
            _trustpoint_querying(m, ca.url, server)
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


def test_a_cdp_that_never_answers_costs_one_verification_its_deadline_not_every_one(agent, lab_cas) -> None:
    """A firewalled CDP (connections accepted, never answered) is common from a router. Before, every
    ca-verify-certificate against its CA waited the CRL deadline (10 s per source) for the same unknown, even with
    crl optional; now the failure is remembered until the background retry, and said so. The seed's query url
    (ldap://host) and the CDP (ldap://host/CN=...) are one server here: it is asked once per fetch (before, the
    first verification waited for each, 20 s)."""
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead.listen(64)  # connections complete in the backlog and are never answered
    server = f"ldap://127.0.0.1:{dead.getsockname()[1]}"
    cdp = f"{server}/cn=Lab CA,o=Example"
    ca = lab_cas("ca", "--crl-url", cdp)
    try:
        with agent.connect() as m:
            mine = enroll(m, "T", ca.url, "router-t", f"<query-url>{server}</query-url><crl-optional/>")
            assert text(mine, "c:crl-distribution-point") == cdp
            pem = text(mine, "c:pem")
            took = []
            for _ in range(3):
                start = time.monotonic()
                out = rpc(m, "ca-verify-certificate", f"<certificate>{pem}</certificate>")
                took.append(time.monotonic() - start)
                assert text(out, "c:valid") == "true" and text(out, "c:revocation") == "unknown"
            assert 9.0 <= took[0] < 15.0, took  # the first one asks the server, once
            assert max(took[1:]) < 1.0, took
            message = text(out, "c:message")
            assert "tried again in the background" in message and f"{cdp}: not tried ({server}" in message, message
            crl = tp_state(m, "T").find("c:crl", {"c": CRYPTO})
            assert "no complete answer within 10 s" in (text(crl, "c:last-error") or "")
            attempt, again = (dt.datetime.fromisoformat(text(crl, f"c:{leaf}")) for leaf in ("last-attempt", "next-fetch"))
            assert 295 <= (again - attempt).total_seconds() <= 305, (attempt, again)  # the background retry
    finally:
        dead.close()
