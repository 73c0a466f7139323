"""The SCEP client against hostile HTTP servers on 127.0.0.1: trickling answers and redirects (issue 11).

Each server is a real threaded http.server in this process
(tests/hostile_http.py). A trickling server sends one byte at a time,
forever (until the client leaves or the test ends): a client without one
overall deadline per exchange never returns, and the worker-thread join of
``bounded`` turns that into a failure instead of a hang.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hostile_http import Behaviour, HostileHandler, HostileServer, Seen, bounded, start_server

from agent.labca import LabCa
from agent.pki.authentication import fetch_ca_certificates
from agent.pki.scep import (
    CA_CERT_CONTENT_TYPE,
    CaCaps,
    Capability,
    PkiMessage,
    PkiRequest,
    PkiStatus,
    ScepClient,
    ScepHttpError,
    ScepProtocolError,
    ScepRedirectError,
    ScepTransportError,
)
from agent.pki.scep.http import ScepTransport
from agent.pki.trustpoint import CaUnreachableError, TrustpointConfig

LIVENESS = 60.0  # a call that has not returned by then ignored its deadline (of 0.5 s)


class _Handler(HostileHandler):
    @property
    def operation(self) -> str:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("operation", [""])[0]


@dataclass
class Hostile:
    url: str
    port: int
    seen: list[Seen] = field(default_factory=list)


@pytest.fixture
def hostile() -> Iterator[Callable[[Behaviour], Hostile]]:
    servers: list[HostileServer] = []
    stop = threading.Event()

    def start(behaviour: Behaviour) -> Hostile:
        server = start_server(behaviour, stop, _Handler)
        servers.append(server)
        port = int(server.server_address[1])
        return Hostile(url=f"http://127.0.0.1:{port}/scep", port=port, seen=server.seen)

    yield start
    stop.set()
    for server in servers:
        server.shutdown()
        server.server_close()


def _outcome(call: Callable[[], object]) -> BaseException | object:
    """Run ``call`` in a worker; its exception or result. Fails if it outlives LIVENESS."""
    return bounded(call, LIVENESS)


# --------------------------------------------------------------------------- one deadline per exchange


def test_trickled_status_and_headers_fail_at_the_deadline(hostile) -> None:
    server = hostile(lambda h, seen: h.trickle(b"HTTP/1.0 200 OK\r\nX-Slow: "))
    error = _outcome(lambda: ScepClient(server.url, timeout=0.5).get_ca_caps())
    assert isinstance(error, ScepTransportError), error
    assert error.message == f"SCEP server {server.url} did not answer GetCACaps within 0.5 s"
    assert error.error_app_tag == "scep-unreachable" and error.info["url"] == server.url


def test_trickled_body_fails_at_the_deadline(hostile) -> None:
    head = f"HTTP/1.0 200 OK\r\nContent-Type: {CA_CERT_CONTENT_TYPE}\r\nContent-Length: 1000000\r\n\r\n"
    server = hostile(lambda h, seen: h.trickle(head.encode()))
    error = _outcome(lambda: ScepClient(server.url, timeout=0.5).get_ca_certificates())
    assert isinstance(error, ScepTransportError), error
    assert error.message == f"SCEP server {server.url} did not answer GetCACert within 0.5 s"


def test_trickled_pki_operation_fails_at_the_deadline(hostile, rsa_key, make_csr, tmp_path) -> None:
    ca = LabCa(tmp_path / "ca", key_size=1024)

    def behaviour(h: _Handler, seen: Seen) -> None:
        if h.operation == "GetCACaps":
            h.answer("text/plain", b"POSTPKIOperation\nSHA-256\nAES")
        else:
            h.trickle(b"HTTP/1.0 200 OK\r\nContent-Type: application/x-pki-message\r\n")

    server = hostile(behaviour)
    client = ScepClient(server.url, timeout=0.5)
    error = _outcome(lambda: client.enroll(make_csr(rsa_key, cn="slow"), rsa_key, ca.ca_certificates()))
    assert isinstance(error, ScepTransportError), error
    assert "did not answer PKIOperation within 0.5 s" in error.message
    assert [s.method for s in server.seen] == ["GET", "POST"]


def test_a_slow_but_timely_answer_is_accepted(hostile) -> None:
    def behaviour(h: _Handler, seen: Seen) -> None:
        for byte in b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nSHA-256\nAES":
            h.wfile.write(bytes([byte]))  # one byte per write; no pause: well inside 30 s

    server = hostile(behaviour)
    caps = ScepClient(server.url, timeout=30).get_ca_caps()
    assert caps.sha256 and caps.aes


class SteppedClock:
    """A clock the test server moves: each request 'takes' ``step`` seconds."""

    def __init__(self, step: float) -> None:
        self.step = step
        self._now = 0.0
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=self.monotonic())

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def take(self) -> None:
        with self._lock:
            self._now += self.step


@pytest.mark.parametrize(("step", "succeeds"), [(10.0, True), (20.0, False)])
def test_ca_authentication_has_one_deadline_for_all_its_exchanges(
    hostile, tmp_path, step: float, succeeds: bool
) -> None:
    """GetCACaps and GetCACert together get ``timeout`` seconds (here 30), not 30 each."""
    ca = LabCa(tmp_path / "ca", key_size=1024)
    clock = SteppedClock(step)

    def behaviour(h: _Handler, seen: Seen) -> None:
        clock.take()
        if h.operation == "GetCACaps":
            h.answer("text/plain", b"POSTPKIOperation\nSHA-256\nAES")
        else:
            h.answer(CA_CERT_CONTENT_TYPE, ca.ca_certificate.public_bytes(Encoding.DER))

    server = hostile(behaviour)
    tp = TrustpointConfig("myca", enrollment_url=server.url)
    if succeeds:
        assert fetch_ca_certificates(tp, timeout=30, clock=clock).ca == ca.ca_certificate
    else:
        with pytest.raises(CaUnreachableError) as caught:
            fetch_ca_certificates(tp, timeout=30, clock=clock)
        assert caught.value.message == (
            f"cannot get the CA certificate of trustpoint myca: SCEP server {server.url} "
            "did not answer GetCACert within 30 s"
        )
    assert [urllib.parse.parse_qs(urllib.parse.urlsplit(s.path).query)["operation"] for s in server.seen] == [
        ["GetCACaps"],
        ["GetCACert"],
    ]


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize(
    "location",
    [
        "ftp://127.0.0.1/pub/ca.der",
        "https://127.0.0.1:{port}/scep",
        "http://localhost:{port}/scep",
        "http://127.0.0.1:{other}/scep",
        "//127.0.0.1:{other}/scep",
    ],
    ids=["ftp", "https-same-port", "other-host", "other-port", "scheme-relative-other-port"],
)
def test_redirect_elsewhere_is_refused(hostile, location: str) -> None:
    elsewhere = hostile(lambda h, seen: h.answer("text/plain", b"SHA-256"))
    holder: dict[str, int] = {}
    server = hostile(
        lambda h, seen: h.redirect(location.format(port=holder["port"], other=elsewhere.port) + "?operation=GetCACert")
    )
    holder["port"] = server.port
    with pytest.raises(ScepRedirectError) as caught:
        ScepClient(server.url, timeout=10).get_ca_certificates()
    error = caught.value
    assert error.message.startswith(f"SCEP server {server.url} redirected GetCACert to ")
    assert error.message.endswith("refused, the SCEP exchange stays on the configured scheme, host and port")
    assert location.format(port=server.port, other=elsewhere.port).split("//", 1)[1] in error.message
    assert error.error_app_tag == "scep-redirect-refused" and error.error_tag == "operation-failed"
    assert len(server.seen) == 1 and elsewhere.seen == []  # never followed


def test_getcacaps_redirected_elsewhere_is_an_error_not_a_legacy_ca(hostile) -> None:
    server = hostile(lambda h, seen: h.redirect("ftp://127.0.0.1/caps"))
    with pytest.raises(ScepRedirectError):
        ScepClient(server.url, timeout=10).get_ca_caps()


def test_same_origin_redirects_are_followed_for_get_and_post(hostile, tmp_path, rsa_key, make_csr) -> None:
    """A CA that moved its SCEP path: 302 for GETs, 307 (method and body kept) for the POST."""
    ca = LabCa(tmp_path / "ca", challenge="pw", key_size=1024)

    def behaviour(h: _Handler, seen: Seen) -> None:
        parts = urllib.parse.urlsplit(h.path)
        if parts.path == "/scep":
            h.redirect(f"/moved/pkiclient.exe?{parts.query}", 307 if h.command == "POST" else 302)
        elif h.operation == "GetCACaps":
            h.answer("text/plain", ca.ca_caps().to_text().encode())
        elif h.operation == "GetCACert":
            h.answer(*ca.ca_certificates().to_http())
        else:
            h.answer("application/x-pki-message", ca.handle_pki_operation(seen.body))

    server = hostile(behaviour)
    client = ScepClient(server.url, timeout=10)
    assert client.get_ca_caps().post
    ca_certs = client.get_ca_certificates()
    response = client.enroll(make_csr(rsa_key, cn="moved", challenge="pw"), rsa_key, ca_certs)
    assert response.status is PkiStatus.SUCCESS, response.message
    posts = [s for s in server.seen if s.method == "POST"]
    assert [urllib.parse.urlsplit(s.path).path for s in posts] == ["/scep", "/moved/pkiclient.exe"]
    assert posts[0].body == posts[1].body and posts[1].body  # the same pkiMessage, re-sent


def test_redirect_to_a_path_with_control_characters_is_refused(hostile) -> None:
    def behaviour(h: _Handler, seen: Seen) -> None:
        h.redirect("/moved/\x01x")  # same origin, but no valid request line can carry it

    server = hostile(behaviour)
    with pytest.raises(ScepRedirectError, match="unusable URL"):
        ScepClient(server.url, timeout=10).get_ca_certificates()


def test_redirect_loop_is_bounded(hostile) -> None:
    server = hostile(lambda h, seen: h.redirect(h.path))
    with pytest.raises(ScepRedirectError) as caught:
        ScepClient(server.url, timeout=10).get_ca_certificates()
    assert caught.value.message == f"SCEP server {server.url} redirected GetCACert more than 5 times"
    assert len(server.seen) == 6


def test_post_answered_with_see_other_is_refused(hostile, tmp_path, rsa_key, make_csr) -> None:
    ca = LabCa(tmp_path / "ca", key_size=1024)

    def behaviour(h: _Handler, seen: Seen) -> None:
        if h.operation == "GetCACaps":
            h.answer("text/plain", b"POSTPKIOperation\nSHA-256\nAES")
        else:
            h.redirect(h.path, 303)

    server = hostile(behaviour)
    with pytest.raises(ScepRedirectError, match="HTTP 303"):
        ScepClient(server.url, timeout=10).enroll(make_csr(rsa_key, cn="x"), rsa_key, ca.ca_certificates())


# --------------------------------------------------------------------------- other broken answers


def test_oversized_answer_is_refused(hostile) -> None:
    body = b"\0" * (4 * 1024 * 1024 + 1)
    server = hostile(lambda h, seen: h.answer(CA_CERT_CONTENT_TYPE, body))
    with pytest.raises(ScepTransportError) as caught:
        ScepClient(server.url, timeout=30).get_ca_certificates()
    assert caught.value.message == f"SCEP server {server.url} sent more than 4194304 bytes for GetCACert"
    assert caught.value.url == server.url


def test_redirect_without_location_is_an_http_error(hostile) -> None:
    def behaviour(h: _Handler, seen: Seen) -> None:
        h.send_response(302)
        h.send_header("Content-Length", "0")
        h.end_headers()

    server = hostile(behaviour)
    with pytest.raises(ScepHttpError) as caught:
        ScepClient(server.url, timeout=10).get_ca_certificates()
    assert caught.value.status == 302 and caught.value.info["http-status"] == "302"
    assert caught.value.message == f"SCEP server {server.url} answered GetCACert with HTTP 302 but no Location"


def test_server_error_is_an_http_error_with_url_and_status(hostile) -> None:
    server = hostile(lambda h, seen: h.answer("text/plain", b"boom", status=503))
    with pytest.raises(ScepHttpError) as caught:
        ScepClient(server.url, timeout=10).get_ca_certificates()
    error = caught.value
    assert error.message == f"SCEP server {server.url} answered GetCACert with HTTP 503 Service Unavailable"
    assert (error.status, error.url, error.info) == (503, server.url, {"url": server.url, "http-status": "503"})
    assert error.error_app_tag == "scep-http-error"


def test_malformed_http_answer(hostile) -> None:
    server = hostile(lambda h, seen: h.wfile.write(b"SCEP/9 OK-ish\r\n\r\n"))
    with pytest.raises(ScepTransportError) as caught:
        ScepClient(server.url, timeout=10).get_ca_caps()
    assert caught.value.message.startswith(f"SCEP server {server.url} answered GetCACaps with malformed HTTP: ")
    assert caught.value.url == server.url


# --------------------------------------------------------------------------- what the client sends


def test_what_the_client_sends(hostile, rsa_key, make_csr, tmp_path) -> None:
    """GET PKIOperation: standard base64, URL-encoded; POST: octet-stream; a fit self-signed signer."""
    ca = LabCa(tmp_path / "ca", key_size=1024)

    def behaviour(h: _Handler, seen: Seen) -> None:
        h.answer("application/x-pki-message", b"not a CertRep")

    server = hostile(behaviour)
    csr = make_csr(rsa_key, cn="sender")
    for caps in (CaCaps.of(Capability.AES, Capability.SHA256), CaCaps.of(Capability.POST_PKI_OPERATION)):
        with pytest.raises(ScepProtocolError):
            ScepClient(server.url, timeout=10, caps=caps).enroll(csr, rsa_key, ca.ca_certificates())
    get, post = server.seen
    raw_query = urllib.parse.urlsplit(get.path).query
    assert "+" not in raw_query and "/" not in raw_query.split("message=", 1)[1]  # URL-encoded
    query = urllib.parse.parse_qs(raw_query)
    assert query["operation"] == ["PKIOperation"] and get.method == "GET"
    assert post.method == "POST" and post.headers["Content-Type"] == "application/octet-stream"
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(post.path).query) == {"operation": ["PKIOperation"]}
    for der in (base64.b64decode(query["message"][0], validate=True), post.body):
        message = PkiMessage.from_der(der)
        signer = message.verify(message.certificates)
        assert signer.subject == csr.subject == signer.issuer
        now = dt.datetime.now(dt.UTC)
        assert signer.not_valid_before_utc <= now <= signer.not_valid_after_utc  # valid when sent
        constraints = signer.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and not constraints.value.ca
        request, _ = PkiRequest.from_message(message, key=ca.ca_key, certificate=ca.ca_certificate)
        assert request.body == csr
    assert get.headers["User-Agent"] == post.headers["User-Agent"] == "ca-agent-scep/1"


def test_signer_of_a_request_without_subject_is_named_after_the_transaction(hostile, rsa_key, tmp_path) -> None:
    ca = LabCa(tmp_path / "ca", key_size=1024)
    server = hostile(lambda h, seen: h.answer("application/x-pki-message", b"x"))
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(rsa_key, hashes.SHA256())
    with pytest.raises(ScepProtocolError):
        ScepClient(server.url, timeout=10, caps=CaCaps.of(Capability.POST_PKI_OPERATION)).enroll(
            csr, rsa_key, ca.ca_certificates()
        )
    message = PkiMessage.from_der(server.seen[0].body)
    signer = message.verify(message.certificates)
    assert signer.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, message.transaction_id[:64])])


@pytest.mark.parametrize(("step", "succeeds"), [(10.0, True), (20.0, False)])
def test_enroll_has_one_deadline_for_getcacaps_and_pkcsreq(
    hostile, rsa_key, make_csr, tmp_path, step: float, succeeds: bool
) -> None:
    ca = LabCa(tmp_path / "ca", challenge="pw", key_size=1024)
    clock = SteppedClock(step)

    def behaviour(h: _Handler, seen: Seen) -> None:
        clock.take()
        if h.operation == "GetCACaps":
            h.answer("text/plain", ca.ca_caps().to_text().encode())
        else:
            h.answer("application/x-pki-message", ca.handle_pki_operation(seen.body))

    server = hostile(behaviour)
    client = ScepClient(server.url, timeout=30, clock=clock)
    csr = make_csr(rsa_key, cn="deadline", challenge="pw")
    if succeeds:
        assert client.enroll(csr, rsa_key, ca.ca_certificates()).status is PkiStatus.SUCCESS
    else:
        with pytest.raises(ScepTransportError, match="did not answer PKIOperation within 30 s"):
            client.enroll(csr, rsa_key, ca.ca_certificates())


# --------------------------------------------------------------------------- sending, TLS, sockets


@pytest.fixture
def unaccepting_port() -> Iterator[int]:
    """A listening socket nobody accepts or reads: connections succeed, nothing moves after that."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def test_sending_to_a_server_that_does_not_read_fails_at_the_deadline(unaccepting_port: int) -> None:
    transport = ScepTransport(f"http://127.0.0.1:{unaccepting_port}/scep", timeout=0.5)
    error = _outcome(lambda: transport.post("PKIOperation", b"\0" * (32 * 1024 * 1024)))
    assert isinstance(error, ScepTransportError), error
    assert error.message.endswith("did not answer PKIOperation within 0.5 s")


def test_tls_handshake_that_never_completes_fails_at_the_deadline(unaccepting_port: int) -> None:
    url = f"https://127.0.0.1:{unaccepting_port}/scep"
    error = _outcome(lambda: ScepClient(url, timeout=0.5).get_ca_caps())
    assert isinstance(error, ScepTransportError), error
    assert error.message == f"SCEP server {url} did not answer GetCACaps within 0.5 s"


@pytest.fixture
def tls_files(tmp_path, rsa_key) -> tuple[str, str]:
    """A self-signed server certificate for 127.0.0.1 and its key (PEM files)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(rsa_key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        rsa_key.private_bytes(Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")


@pytest.fixture
def https_server(tls_files) -> Iterator[Callable[[Behaviour], Hostile]]:
    servers: list[HostileServer] = []

    def start(behaviour: Behaviour) -> Hostile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls_files)
        server = start_server(behaviour, threading.Event(), _Handler, tls=context)
        servers.append(server)
        port = int(server.server_address[1])
        return Hostile(url=f"https://127.0.0.1:{port}/scep", port=port, seen=server.seen)

    yield start
    for server in servers:
        server.stop.set()
        server.shutdown()
        server.server_close()


def test_tls_server_with_an_untrusted_certificate_is_refused(https_server) -> None:
    server = https_server(lambda h, seen: h.answer("text/plain", b"SHA-256"))
    with pytest.raises(ScepTransportError) as caught:
        ScepClient(server.url, timeout=10).get_ca_caps()
    assert caught.value.message.startswith(f"connection to SCEP server {server.url} failed: ")
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    assert server.seen == []  # not a byte of HTTP went to it


def test_https_with_a_trusted_certificate(https_server, tls_files, monkeypatch) -> None:
    """The system trust store decides (here pointed at the test certificate); redirects stay on https."""
    monkeypatch.setenv("SSL_CERT_FILE", tls_files[0])

    def behaviour(h: _Handler, seen: Seen) -> None:
        if urllib.parse.urlsplit(h.path).path == "/scep":
            h.redirect(h.path.replace("/scep", "/moved"))
        else:
            h.answer("text/plain", b"POSTPKIOperation\nSHA-256\nAES")

    server = https_server(behaviour)
    caps = ScepClient(server.url, timeout=10).get_ca_caps()
    assert caps.post and caps.sha256 and caps.aes
    assert [urllib.parse.urlsplit(s.path).path for s in server.seen] == ["/scep", "/moved"]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_exchanges_leave_no_socket_open(hostile) -> None:
    server = hostile(lambda h, seen: h.answer("text/plain", b"SHA-256"))
    redirecting = hostile(
        lambda h, seen: (
            h.redirect(h.path.replace("/scep", "/moved")) if "/scep" in h.path else h.answer("text/plain", b"AES")
        )
    )
    client, moved = ScepClient(server.url, timeout=10), ScepClient(redirecting.url, timeout=10)
    client.get_ca_caps(), moved.get_ca_caps()  # warm up (imports, thread pools)
    before = _open_fds()
    for _ in range(20):
        assert client.get_ca_caps().sha256 and moved.get_ca_caps().aes
    deadline = time.monotonic() + 10  # the servers' handler threads close their ends a moment later
    while _open_fds() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _open_fds() <= before
