"""agent.pki.polling's scheduler and the persisted enrollment request records."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import threading

import pytest
from asn1crypto import core
from asn1crypto import x509 as ax509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agent.pki.csr import build_csr
from agent.pki.keystore import KeyPairInfo, KeyPairType, KeyUsage
from agent.pki.polling import PollScheduler, new_request
from agent.pki.trustpoint import EnrollmentRequest, RequestState, TrustpointConfig, name_from_der
from agent.serial import SerialExecutor

from agentproc import wait_until

WAIT = 10.0


class Recorder:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.cond = threading.Condition()
        self.ran: list[str] = []
        self.fail = fail or set()

    def __call__(self, key: str) -> None:
        with self.cond:
            self.ran.append(key)
            self.cond.notify_all()
        if key in self.fail:
            raise RuntimeError(f"job {key} fails")

    def wait(self, count: int) -> list[str]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.ran) >= count, WAIT), self.ran
            return list(self.ran)


class FakeClock:
    """A monotonic clock that only moves when the test says so.

    PollScheduler compares due times with this clock, so which jobs run is
    decided by the test's ``advance`` calls alone, never by how fast the
    machine is. Its thread re-reads the clock at least every ``delay`` real
    seconds it waits for, so keep the fake delays small.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = 0.0

    def now(self) -> dt.datetime:
        return dt.datetime(2024, 5, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=self.monotonic())

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def test_jobs_run_in_due_order_and_rescheduling_replaces() -> None:
    recorder = Recorder()
    clock = FakeClock()
    scheduler: PollScheduler[str] = PollScheduler(recorder, clock=clock)
    try:
        scheduler.schedule("late", 0.20)
        scheduler.schedule("early", 0.02)
        scheduler.schedule("middle", 0.10)
        scheduler.schedule("middle", 0.05)  # replaces the 0.10 s schedule: runs once
        assert scheduler.scheduled() == pytest.approx({"late": 0.20, "early": 0.02, "middle": 0.05})
        clock.advance(0.03)
        assert recorder.wait(1) == ["early"]
        assert scheduler.scheduled() == pytest.approx({"late": 0.17, "middle": 0.02})
        clock.advance(0.10)  # past middle's first (replaced) due time too
        assert recorder.wait(2) == ["early", "middle"]
        assert scheduler.scheduled() == pytest.approx({"late": 0.07})
        clock.advance(0.10)
        assert recorder.wait(3) == ["early", "middle", "late"]
        assert scheduler.scheduled() == {}
        scheduler.schedule("sentinel", 0.0)  # due after every stale entry: a second "middle" would run first
        assert recorder.wait(4) == ["early", "middle", "late", "sentinel"]
    finally:
        assert scheduler.close()


def test_nothing_runs_before_its_due_time() -> None:
    recorder = Recorder()
    clock = FakeClock()
    scheduler: PollScheduler[str] = PollScheduler(recorder, clock=clock)
    try:
        scheduler.schedule("later", 0.0625)  # binary fractions: the sums below are exact
        scheduler.schedule("now", 0.0)
        assert recorder.wait(1) == ["now"]
        clock.advance(0.046875)
        scheduler.schedule("now-again", 0.0)  # "later" is still 1/64 s away: this one runs first
        assert recorder.wait(2) == ["now", "now-again"]
        assert scheduler.is_scheduled("later")
        assert scheduler.scheduled() == {"later": 0.015625}
        clock.advance(0.015625)
        assert recorder.wait(3) == ["now", "now-again", "later"]
    finally:
        assert scheduler.close()


def test_cancel_and_a_failing_job_do_not_stop_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(fail={"bad"})
    clock = FakeClock()
    scheduler: PollScheduler[str] = PollScheduler(recorder, clock=clock)
    try:
        scheduler.schedule("cancelled", 0.01)
        assert scheduler.is_scheduled("cancelled") and scheduler.cancel("cancelled")
        assert not scheduler.cancel("cancelled")
        scheduler.schedule("bad", 0.0)
        scheduler.schedule("good", 0.03)
        assert recorder.wait(1) == ["bad"]
        clock.advance(0.05)  # past "cancelled" (0.01) and "good" (0.03): only "good" may run
        assert recorder.wait(2) == ["bad", "good"]
        assert "background job 'bad' failed" in caplog.text
        assert not scheduler.is_scheduled("cancelled")
    finally:
        assert scheduler.close()


def test_close_waits_a_bounded_time_and_stops_future_jobs() -> None:
    started = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    def slow(key: str) -> None:
        ran.append(key)
        started.set()
        release.wait(WAIT)

    clock = FakeClock()
    scheduler: PollScheduler[str] = PollScheduler(slow, clock=clock)
    scheduler.schedule("slow", 0.0)
    scheduler.schedule("never", 0.05)
    assert started.wait(WAIT)
    assert not scheduler.close(timeout=0.05)  # the running job holds the thread: close gives up, says so
    assert scheduler.closed and scheduler.scheduled() == {}
    clock.advance(1.0)  # "never" would be due now, had close() not dropped it
    release.set()
    assert scheduler.close(timeout=WAIT)
    scheduler.schedule("ignored", 0.0)  # after close: ignored
    assert scheduler.scheduled() == {}
    assert ran == ["slow"]


def test_idle_scheduler_has_no_thread_until_used() -> None:
    scheduler: PollScheduler[str] = PollScheduler(lambda key: None)
    assert scheduler.close() and scheduler.closed


def _subject_der() -> bytes:
    """C and O as PrintableString, CN and unstructuredName as UTF8String (as a CA may echo them)."""

    def rdn(kind: str, value: core.Asn1Value) -> ax509.RelativeDistinguishedName:
        return ax509.RelativeDistinguishedName([ax509.NameTypeAndValue({"type": kind, "value": value})])

    sequence = ax509.RDNSequence(
        [
            rdn("country_name", core.PrintableString("US")),
            rdn("organization_name", ax509.DirectoryString(name="printable_string", value="Example")),
            rdn("common_name", ax509.DirectoryString(name="utf8_string", value="r1 é")),
            rdn("1.2.840.113549.1.9.2", core.UTF8String("r1.example.com")),  # unstructuredName
        ]
    )
    return bytes(ax509.Name(name="", value=sequence).dump())


def test_request_record_round_trip_keeps_subject_bytes() -> None:
    subject_der = _subject_der()
    now = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    record = EnrollmentRequest(
        trustpoint="myca",
        key_usage=KeyUsage.SIGNATURE,
        key_label="mykey",
        public_key_sha256="AB" * 32,
        state=RequestState.PENDING,
        fingerprint="17D8B38DED2BDF2EDF8ADB7FA7DBE35A",
        subject_der=subject_der,
        created=now,
        updated=now,
        transaction_id="TX1",
        attempts=3,
        last_attempt=now,
        next_poll=now + dt.timedelta(minutes=2),
        last_error="cannot reach SCEP server",
    )
    data = record.to_json()
    back = EnrollmentRequest.from_json(data, "myca", KeyUsage.SIGNATURE)
    assert back == record and back.polls == 2
    assert back.subject_name.public_bytes() == subject_der  # string types kept, byte for byte
    assert back.subject == "unstructuredName=r1.example.com,cn=r1 é,o=Example,c=US"
    with pytest.raises(ValueError):
        EnrollmentRequest.from_json(data, "other", KeyUsage.SIGNATURE)
    with pytest.raises(ValueError):
        EnrollmentRequest.from_json(data, "myca", KeyUsage.GENERAL)
    with pytest.raises(ValueError):
        EnrollmentRequest.from_json(b'{"format": "ca-agent-enrollment/1"}', "myca", KeyUsage.SIGNATURE)
    with pytest.raises(ValueError):
        name_from_der(b"\x30\x03\x02\x01\x01")


def test_a_group_at_its_limit_leaves_the_threads_to_the_others() -> None:
    """Jobs of a CA that hangs hold at most ``per_group`` threads; other CAs' jobs run meanwhile."""
    release = threading.Event()
    lock = threading.Lock()
    running: dict[str, int] = {"dead": 0}
    peak = {"dead": 0}
    recorder = Recorder()

    def run(key: str) -> None:
        if key.startswith("dead"):
            with lock:
                running["dead"] += 1
                peak["dead"] = max(peak["dead"], running["dead"])
            release.wait(WAIT)
            with lock:
                running["dead"] -= 1
        recorder(key)

    scheduler: PollScheduler[str] = PollScheduler(run, workers=4, group=lambda key: key.split("-")[0], per_group=2)
    try:
        for i in range(6):
            scheduler.schedule(f"dead-{i}", 0.0)
        for i in range(10):
            scheduler.schedule(f"good-{i}", 0.01)
        assert sorted(recorder.wait(10)) == sorted(f"good-{i}" for i in range(10))  # while the dead ones hang
        assert peak["dead"] == 2
        assert scheduler.is_scheduled("dead-5") and scheduler.cancel("dead-5")  # held back, still cancellable
        # several at once (a commit deleting trustpoints): held back, scheduled and unknown keys
        scheduler.schedule("late-0", 60.0)
        assert scheduler.cancel_many(["dead-4", "late-0", "nosuch", "dead-5"]) == 2
        assert not scheduler.is_scheduled("dead-4") and not scheduler.is_scheduled("late-0")
        release.set()
        done = recorder.wait(14)
        assert sorted(k for k in done if k.startswith("dead")) == [f"dead-{i}" for i in range(4)]
        assert peak["dead"] == 2
    finally:
        release.set()
        assert scheduler.close(timeout=WAIT)


def test_request_record_holds_no_secrets() -> None:
    """The file written for a sent request: no challenge password, no CSR, no private key."""
    challenge = "Chall3nge-Only-Once-7f3a"
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    keys = KeyPairInfo("mykey", KeyPairType.GENERAL_PURPOSE, 1024, now, {KeyUsage.GENERAL: spki})
    tp = TrustpointConfig("myca", enrollment_url="http://ca.example.com", rsakeypair="mykey")
    csr = build_csr(key, fqdn="r1.example.com", challenge_password=challenge)
    record = new_request(tp, keys, KeyUsage.GENERAL, csr, RequestState.PENDING, now)
    text = record.evolve(transaction_id="TX1").to_json().decode()
    csr_der = csr.public_bytes(serialization.Encoding.DER)
    numbers = key.private_numbers()
    secrets_forms = [
        challenge,
        challenge.encode().hex(),
        base64.b64encode(challenge.encode()).decode(),
        base64.b64encode(csr_der).decode()[:40],  # the CSR holds the password
        csr_der.hex()[:40],
        format(numbers.d, "x")[:32],
        format(numbers.p, "x")[:32],
    ]
    for secret in secrets_forms:
        assert secret.lower() not in text.lower()
    assert set(json.loads(text)) == {
        "format", "trustpoint", "key_usage", "key_label", "public_key_sha256", "state", "fingerprint",
        "subject", "created", "updated", "transaction_id", "attempts", "last_attempt", "next_poll",
        "last_error", "serial_number",
    }  # fmt: skip
    back = EnrollmentRequest.from_json(text.encode(), "myca", KeyUsage.GENERAL)
    assert back.subject == "unstructuredName=r1.example.com"
    assert back.fingerprint == hashlib.md5(csr_der, usedforsecurity=False).hexdigest().upper()


def test_a_job_ending_after_its_executor_stopped_is_logged_as_shutdown_not_as_a_failure(caplog) -> None:
    """A poll whose answer comes while the agent stops cannot record it: that is shutdown, not an error."""
    writer = SerialExecutor("closed-writer")
    writer.close()
    done = threading.Event()

    def job(key: str) -> None:
        try:
            writer.run(lambda: None)
        finally:
            done.set()

    scheduler: PollScheduler[str] = PollScheduler(job, workers=2)
    try:
        with caplog.at_level(logging.INFO, logger="agent.pki.polling"):
            scheduler.schedule("late", 0.0)
            assert done.wait(5)
            assert scheduler.close()
            # The job's pool thread logs once the job has raised, after ``done``; close() does not wait for
            # the pool (it failed so once in CI, the record not yet there).
            wait_until(lambda: bool(caplog.records), 5, "the pool thread's log record")
        assert [r.levelno for r in caplog.records] == [logging.INFO]
        assert "stopped: the agent is shutting down" in caplog.records[0].getMessage()
    finally:
        scheduler.close()
