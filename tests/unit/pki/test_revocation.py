"""agent.pki.revocation: CRL checks before use, the per-issuer disk cache, refresh scheduling."""

from __future__ import annotations

import datetime as dt
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

sys.path.insert(0, str(Path(__file__).parent))

from fakeclock import SetClock  # noqa: E402
from trust_helpers import NOW, MiniCa, Served, http_server, name  # noqa: E402

from agent.pki.revocation import (  # noqa: E402
    MAX_SOURCES,
    CrlInvalidError,
    CrlManager,
    CrlUnavailableError,
    NoCrlSourceError,
    check_crl,
    issuer_key,
)


@pytest.fixture
def served() -> Iterator[Served]:
    with http_server() as served:
        yield served


def test_check_crl_refuses_what_the_ca_did_not_sign() -> None:
    ca = MiniCa.root("CRL CA")
    crl = check_crl(ca.crl(), ca.cert)
    assert crl.issuer == ca.cert.subject
    with pytest.raises(CrlInvalidError, match="signature does not verify"):
        check_crl(ca.crl(sign_with=MiniCa.root("other").key), ca.cert)
    with pytest.raises(CrlInvalidError, match="is issued by cn=Someone"):
        check_crl(ca.crl(issuer=name("Someone")), ca.cert)
    with pytest.raises(CrlInvalidError, match="not a DER"):
        check_crl(b"garbage", ca.cert)
    newer = check_crl(ca.crl(number=5), ca.cert)
    with pytest.raises(CrlInvalidError, match="older than the cached"):
        check_crl(ca.crl(number=1), ca.cert, current=newer)
    no_crl_sign = MiniCa.root("No cRLSign", crl_sign=False)
    with pytest.raises(CrlInvalidError, match="cRLSign"):
        check_crl(no_crl_sign.crl(), no_crl_sign.cert)


def test_fetch_caches_on_disk_and_survives_a_restart(tmp_path: Path, served: Served) -> None:
    ca = MiniCa.root("Cached CA")
    peer, _ = ca.issue("peer")
    ca.revoke(peer.serial_number, x509.ReasonFlags.cessation_of_operation)
    url = served.put("/c.crl", ca.crl())
    crls = CrlManager(tmp_path / "crls", timeout=2.0)
    try:
        record = crls.fetch(ca.cert, [url])
        assert record.source == url and record.revoked_count == 1 and record.last_error is None
        assert crls.revoked_entry(ca.cert, peer.serial_number).reason == "cessationOfOperation"
        assert crls.revoked_entry(ca.cert, peer.serial_number + 1) is None
        assert issuer_key(ca.cert) in crls.refresh_due()  # refreshed in the background before nextUpdate
        assert 0 < crls.refresh_due()[issuer_key(ca.cert)] < 7 * 86400
    finally:
        crls.close()
    stored = json.loads((tmp_path / "crls" / f"{issuer_key(ca.cert)}.json").read_bytes())
    assert stored["source"] == url and stored["sources"] == [url]
    again = CrlManager(tmp_path / "crls", timeout=2.0)
    try:
        record = again.record(ca.cert)
        assert record is not None and record.revoked_count == 1 and record.sources == (url,)
        assert again.obtain(ca.cert, []).source == url  # fresh: no fetch
        assert served.hits["/c.crl"] == 1
    finally:
        again.close()


def test_failed_fetch_keeps_the_old_crl_and_records_the_error(tmp_path: Path, served: Served) -> None:
    ca = MiniCa.root("Flaky CA")
    url = served.put("/f.crl", ca.crl())
    crls = CrlManager(tmp_path / "crls", timeout=2.0, retry_seconds=120)
    try:
        first = crls.fetch(ca.cert, [url])
        served.put("/f.crl", b"gone", status=503)
        with pytest.raises(CrlUnavailableError, match="HTTP 503"):
            crls.fetch(ca.cert, [])  # the remembered source is used
        record = crls.record(ca.cert)
        assert record.der == first.der and "HTTP 503" in (record.last_error or "")
        assert 100 < crls.refresh_due()[issuer_key(ca.cert)] <= 120  # retried later
        served.put("/f.crl", ca.crl(sign_with=MiniCa.root("x").key))
        with pytest.raises(CrlInvalidError):
            crls.fetch(ca.cert, [])
        served.put("/f.crl", ca.crl(number=0))  # a replayed older CRL
        with pytest.raises(CrlInvalidError, match="older"):
            crls.fetch(ca.cert, [])
    finally:
        crls.close()


@pytest.fixture
def clock() -> SetClock:
    return SetClock(dt.datetime.now(dt.UTC))


def _on_clock(directory: Path, clock: SetClock) -> CrlManager:
    """A CRL manager on the test's clock: 2 s per fetch, a failed one retried 300 s later."""
    return CrlManager(directory / "crls", clock=clock, timeout=2.0, retry_seconds=300)


def _fail_once(crls: CrlManager, ca: MiniCa, served: Served, path: str) -> str:
    """Serve ``path`` as HTTP 503 and let one ``obtain`` of ``ca``'s CRL from it fail; its URL."""
    url = served.put(path, b"down", status=503)
    with pytest.raises(CrlUnavailableError, match="HTTP 503"):
        crls.obtain(ca.cert, [url])
    return url


def test_a_failed_fetch_is_not_tried_again_until_its_retry_is_due(
    tmp_path: Path, served: Served, clock: SetClock
) -> None:
    """Before: every verification against a CA whose CRL could not be obtained tried every source again, each
    costing up to the timeout (10 s per unreachable CDP, on every ca-verify-certificate, even with crl optional)."""
    ca = MiniCa.root("Unreachable CDP CA")
    crls = _on_clock(tmp_path, clock)
    try:
        url = _fail_once(crls, ca, served, "/u.crl")
        assert served.hits["/u.crl"] == 1
        served.put("/u.crl", ca.crl())  # back, but the failure is remembered until its retry
        clock.current += dt.timedelta(seconds=299)
        with pytest.raises(CrlUnavailableError, match=r"could not be obtained at .*HTTP 503.*ca-crl-request"):
            crls.obtain(ca.cert, [url])
        with pytest.raises(CrlUnavailableError, match="HTTP 503"):
            crls.obtain(ca.cert, [])  # no source named: the ones it tried
        assert served.hits["/u.crl"] == 1
        clock.current += dt.timedelta(seconds=1)  # the retry is due
        record = crls.obtain(ca.cert, [url])
        assert record.source == url and record.last_error is None and served.hits["/u.crl"] >= 2
    finally:
        crls.close()


def test_a_source_not_tried_yet_and_an_explicit_request_are_fetched_at_once(
    tmp_path: Path, served: Served, clock: SetClock
) -> None:
    ca = MiniCa.root("Moved CDP CA")
    crls = _on_clock(tmp_path, clock)
    try:
        _fail_once(crls, ca, served, "/old.crl")
        new = served.put("/new.crl", ca.crl())  # e.g. a changed query url, or a peer with another CDP
        assert crls.obtain(ca.cert, [new]).source == new
        assert served.hits["/new.crl"] == 1

        other = MiniCa.root("Requested CA")
        url = _fail_once(crls, other, served, "/r.crl")
        served.put("/r.crl", other.crl())
        assert crls.fetch(other.cert, []).source == url  # ca-crl-request does not wait for the retry
        assert crls.obtain(other.cert, []).source == url and served.hits["/r.crl"] == 2
    finally:
        crls.close()


def test_the_failure_is_remembered_across_a_restart(tmp_path: Path, served: Served, clock: SetClock) -> None:
    ca = MiniCa.root("Restarted CA")
    crls = _on_clock(tmp_path, clock)
    try:
        url = _fail_once(crls, ca, served, "/x.crl")
    finally:
        crls.close()
    clock.current += dt.timedelta(seconds=100)
    again = _on_clock(tmp_path, clock)
    try:
        with pytest.raises(CrlUnavailableError, match="could not be obtained at"):
            again.obtain(ca.cert, [url])
        assert served.hits["/x.crl"] == 1
        assert 199 < again.refresh_due()[issuer_key(ca.cert)] <= 200  # retried 300 s after the failure, as said
    finally:
        again.close()


class _SilentServer:
    """Accepts connections, counts them and never answers (a firewalled or hung CDP)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def test_a_server_that_failed_is_not_asked_again_for_another_url_in_the_same_fetch(
    tmp_path: Path, served: Served
) -> None:
    """Before: the seed's query url (ldap://host) and the CDPs on the same server each waited the whole timeout."""
    silent = _SilentServer()
    crls = CrlManager(tmp_path / "crls", timeout=0.5)
    try:
        ca = MiniCa.root("Silent CDP CA")
        first, second = (f"http://127.0.0.1:{silent.port}/{n}.crl" for n in ("a", "b"))
        served.put("/missing.crl", b"no", status=404)
        good = served.put("/good.crl", ca.crl())
        record = crls.fetch(ca.cert, [first, second, served.url("/missing.crl"), good])
        assert record.source == good
        assert len(silent.accepted) == 1  # the second URL on the silent server was not tried
        assert served.hits["/missing.crl"] == 1 and served.hits["/good.crl"] == 1  # a 404 is an answer
        with pytest.raises(CrlUnavailableError) as failed:
            crls.fetch(MiniCa.root("Refused CA").cert, [first, second])
        assert f"{second}: not tried ({first} failed on the same server)" in failed.value.message
    finally:
        crls.close()
        silent.close()


def test_one_fetch_across_dead_servers_is_bounded(tmp_path: Path) -> None:
    """Before: each of up to MAX_SOURCES distinct dead servers cost the whole timeout (80 s at the defaults),
    longer than a NETCONF client waits for the reply of the verification that asked."""
    silent = [_SilentServer() for _ in range(4)]
    crls = CrlManager(tmp_path / "crls", timeout=1.0, fetch_limit=2.0)
    try:
        urls = [f"http://127.0.0.1:{server.port}/ca.crl" for server in silent]
        began = time.monotonic()
        with pytest.raises(CrlUnavailableError) as failed:
            crls.fetch(MiniCa.root("Dead CDPs CA").cert, urls)
        assert time.monotonic() - began < 3.0
        for url in urls[2:]:
            assert f"{url}: not tried (this fetch's 2 s were spent)" in failed.value.message
        assert [len(server.accepted) for server in silent] == [1, 1, 0, 0]
    finally:
        crls.close()
        for server in silent:
            server.close()


def test_servers_that_failed_are_tried_last(tmp_path: Path, served: Served) -> None:
    dead = [_SilentServer() for _ in range(2)]
    crls = CrlManager(tmp_path / "crls", timeout=0.5, fetch_limit=0.8)
    try:
        ca = MiniCa.root("Mirrored CA")
        good = served.put("/ca.crl", ca.crl())
        urls = [*(f"http://127.0.0.1:{server.port}/ca.crl" for server in dead), good]
        with pytest.raises(CrlUnavailableError, match="were spent"):  # both dead servers took the fetch's time
            crls.fetch(ca.cert, urls)
        began = time.monotonic()
        record = crls.fetch(ca.cert, urls)  # the dead servers go last now: the mirror answers at once
        assert record.source == good and time.monotonic() - began < 0.5  # under one dead server's timeout
        assert [len(server.accepted) for server in dead] == [1, 1]
        assert record.sources == tuple(urls)  # the order kept for the state is the configured one
    finally:
        crls.close()
        for server in dead:
            server.close()


def test_no_source(tmp_path: Path) -> None:
    crls = CrlManager(tmp_path / "crls")
    try:
        with pytest.raises(NoCrlSourceError):
            crls.fetch(MiniCa.root("Lonely").cert, ["file:///etc/passwd"])  # unsupported schemes are ignored
    finally:
        crls.close()


def test_background_refresh_fetches_again(tmp_path: Path, served: Served) -> None:
    ca = MiniCa.root("Short CA")
    in_two_seconds = dt.datetime.now(dt.UTC) - NOW + dt.timedelta(seconds=2)  # NOW is the helpers' import time
    url = served.put("/s.crl", ca.crl(next_update=in_two_seconds))
    crls = CrlManager(tmp_path / "crls", timeout=2.0)
    try:
        crls.fetch(ca.cert, [url])
        served.put("/s.crl", ca.crl())
        deadline = time.monotonic() + 20
        while crls.record(ca.cert).crl_number != ca.crl_number:  # the newer CRL, fetched by the refresh thread
            assert time.monotonic() < deadline, "the CRL was not refreshed in the background"
            time.sleep(0.05)
        assert served.hits["/s.crl"] == 2
    finally:
        crls.close()


def test_a_ca_whose_crl_sources_never_answer_does_not_hold_back_another_cas_refresh(
    tmp_path: Path, served: Served
) -> None:
    """Before: one refresh thread fetched every CA's CRL in turn, so each CA whose sources never answer (a
    firewalled CDP: each of up to MAX_SOURCES sources costs the timeout) delayed every other CA's refresh."""
    dead_server = socket.socket()
    dead_server.bind(("127.0.0.1", 0))
    dead_server.listen(64)  # connections complete in the backlog and are never answered
    dead_port = dead_server.getsockname()[1]
    timeout = 0.5
    crls = CrlManager(tmp_path / "crls", timeout=timeout, retry_seconds=0.5)
    try:
        dead_cas = [MiniCa.root(f"Dead CA {n}") for n in range(3)]
        sources = [f"http://127.0.0.1:{dead_port}/{n}.crl" for n in range(MAX_SOURCES)]

        def fail_once(ca: MiniCa) -> None:  # a first fetch, which schedules the retries
            with pytest.raises(CrlUnavailableError):
                crls.fetch(ca.cert, sources)

        first = [threading.Thread(target=fail_once, args=(ca,)) for ca in dead_cas]
        for thread in first:
            thread.start()
        for thread in first:
            thread.join()
        healthy = MiniCa.root("Healthy CA")
        in_two_seconds = dt.datetime.now(dt.UTC) - NOW + dt.timedelta(seconds=2)
        url = served.put("/h.crl", healthy.crl(next_update=in_two_seconds))
        crls.fetch(healthy.cert, [url])
        due = time.monotonic() + crls.refresh_due()[issuer_key(healthy.cert)]
        served.put("/h.crl", healthy.crl())
        while crls.record(healthy.cert).crl_number != healthy.crl_number:
            late = time.monotonic() - due
            assert late < 3.0, f"the refresh is {late:.1f} s late (each dead CA costs {MAX_SOURCES * timeout:g} s)"
            time.sleep(0.05)
    finally:
        crls.close()
        dead_server.close()
