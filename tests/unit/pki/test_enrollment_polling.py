"""agent.pki.polling's scheduler and the persisted enrollment request records."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from agent.pki.keystore import KeyUsage
from agent.pki.polling import PollScheduler
from agent.pki.trustpoint import EnrollmentRequest, RequestState, name_from_der

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


def test_jobs_run_in_due_order_and_rescheduling_replaces() -> None:
    recorder = Recorder()
    scheduler: PollScheduler[str] = PollScheduler(recorder)
    try:
        scheduler.schedule("late", 0.20)
        scheduler.schedule("early", 0.02)
        scheduler.schedule("middle", 0.10)
        scheduler.schedule("middle", 0.05)  # replaces the 0.10 s schedule: runs once
        assert recorder.wait(3) == ["early", "middle", "late"]
        assert scheduler.scheduled() == {}
    finally:
        assert scheduler.close()


def test_cancel_and_a_failing_job_do_not_stop_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(fail={"bad"})
    scheduler: PollScheduler[str] = PollScheduler(recorder)
    try:
        scheduler.schedule("cancelled", 0.01)
        assert scheduler.is_scheduled("cancelled") and scheduler.cancel("cancelled")
        assert not scheduler.cancel("cancelled")
        scheduler.schedule("bad", 0.0)
        scheduler.schedule("good", 0.03)
        assert recorder.wait(2) == ["bad", "good"]
        assert "background job 'bad' failed" in caplog.text
    finally:
        assert scheduler.close()


def test_close_is_bounded_and_stops_future_jobs() -> None:
    started = threading.Event()
    release = threading.Event()

    def slow(key: str) -> None:
        started.set()
        release.wait(WAIT)

    scheduler: PollScheduler[str] = PollScheduler(slow)
    scheduler.schedule("slow", 0.0)
    scheduler.schedule("never", 0.05)
    assert started.wait(WAIT)
    begin = time.monotonic()
    assert not scheduler.close(timeout=0.05)  # the running job holds the thread: bounded wait
    assert time.monotonic() - begin < 1.0
    release.set()
    assert scheduler.close(timeout=WAIT)
    scheduler.schedule("ignored", 0.0)  # after close: ignored
    assert scheduler.scheduled() == {}


def test_idle_scheduler_has_no_thread_until_used() -> None:
    scheduler: PollScheduler[str] = PollScheduler(lambda key: None)
    assert scheduler.close() and scheduler.closed


def test_request_record_round_trip_without_secrets() -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US", _type=_ASN1Type.PrintableString),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example", _type=_ASN1Type.PrintableString),
            x509.NameAttribute(NameOID.COMMON_NAME, "r1 é"),
            x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, "r1.example.com"),
        ]
    )
    now = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    record = EnrollmentRequest(
        trustpoint="myca",
        key_usage=KeyUsage.SIGNATURE,
        key_label="mykey",
        public_key_sha256="AB" * 32,
        state=RequestState.PENDING,
        fingerprint="17D8B38DED2BDF2EDF8ADB7FA7DBE35A",
        subject_der=subject.public_bytes(),
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
    assert back.subject_name.public_bytes() == subject.public_bytes()  # string types kept, byte for byte
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
        release.set()
        done = recorder.wait(15)
        assert sorted(k for k in done if k.startswith("dead")) == [f"dead-{i}" for i in range(5)]
        assert peak["dead"] == 2
    finally:
        release.set()
        assert scheduler.close(timeout=WAIT)
