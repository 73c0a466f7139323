"""Enrollment requests: their files on disk, the thread that polls them, the SCEP exchanges.

:class:`RequestFiles` keeps one :class:`~agent.pki.trustpoint.EnrollmentRequest`
per key pair in the trustpoint's directory of the certificate store
(``trustpoints/<name>/enrollment-<usage>.json``), written atomically; the
certificate store's ``clear`` leaves these files alone.

:class:`PollScheduler` is one background thread that runs jobs when they fall
due. A heap of due times (from the injected clock's ``monotonic``) and one
``threading.Condition``: the thread sleeps exactly until the earliest job is
due, or until a job is scheduled/cancelled or the scheduler closes. No
fixed-tick loop. Jobs run one at a time, outside the scheduler's lock; an
exception in a job is logged and never kills the thread.

:class:`RequestEngine` sends PKCSReq and CertPoll messages and turns the
answers into recorded state: installed certificate, next poll, or a final
state with the reason.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime as dt
import hashlib
import heapq
import itertools
import logging
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import PkiError
from agent.files import atomic_write, fsync_dir
from agent.pki.certificate import CertificateInfo, format_fingerprint, verify_issued_by
from agent.pki.certstore import CertificateStore
from agent.pki.csr import csr_to_der
from agent.pki.keystore import KeyPairInfo, KeyStore, KeyStoreError, KeyUsage
from agent.pki.scep import CaCertificates, PkiStatus, ScepClient
from agent.pki.scep.capabilities import CapabilitiesCache
from agent.pki.scep.client import EnrollmentResponse
from agent.pki.trustpoint import EnrollmentRequest, RequestOutcome, RequestState, TrustpointConfig, request_outcome
from agent.serial import ExecutorClosedError

_log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

_RECORD_PREFIX = "enrollment-"
_RECORD_SUFFIX = ".json"


class RequestFiles:
    """The enrollment request files of every trustpoint, in the certificate store's directories.

    Not locked: callers serialise changes per trustpoint. Each file is
    replaced atomically, so a reader always sees a whole record.
    """

    def __init__(self, certstore: CertificateStore) -> None:
        self._certstore = certstore

    def path(self, name: str, usage: KeyUsage, create: bool = False) -> Path:
        """The file of ``name``'s request for ``usage`` (its directory is created if ``create``).

        Raises InvalidTrustpointNameError, OSError.
        """
        folder = self._certstore.trustpoint_dir(name, create=create)
        return folder / f"{_RECORD_PREFIX}{usage.value}{_RECORD_SUFFIX}"

    def load(self, name: str) -> dict[KeyUsage, EnrollmentRequest]:
        """``name``'s requests by key usage; unreadable files are skipped with a warning.

        Raises InvalidTrustpointNameError, OSError.
        """
        records: dict[KeyUsage, EnrollmentRequest] = {}
        for usage in KeyUsage:
            path = self.path(name, usage)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            try:
                records[usage] = EnrollmentRequest.from_json(data, name, usage)
            except ValueError as exc:
                _log.warning("ignoring unreadable enrollment state %s: %s", path, exc)
        return records

    def save(self, record: EnrollmentRequest) -> None:
        """Write ``record`` atomically. Raises InvalidTrustpointNameError, OSError."""
        atomic_write(self.path(record.trustpoint, record.key_usage, create=True), record.to_json())

    def delete(self, name: str, usage: KeyUsage) -> bool:
        """Remove ``name``'s request for ``usage``; whether there was one.

        Raises InvalidTrustpointNameError, OSError.
        """
        path = self.path(name, usage)
        if not path.is_file():
            return False
        path.unlink()
        fsync_dir(path.parent)
        return True


class PollScheduler(Generic[K]):
    """Runs ``run(key)`` once per :meth:`schedule` call, when its delay has passed.

    Scheduling a key again replaces its previous due time. The thread is a
    daemon started on first use; :meth:`close` stops it (bounded join).
    Thread-safe.
    """

    def __init__(
        self, run: Callable[[K], None], *, clock: Clock = SYSTEM_CLOCK, name: str = "pki-poller", workers: int = 1,
        group: Callable[[K], Hashable] | None = None, per_group: int = 0,
    ) -> None:
        """``workers`` > 1 runs due jobs on a pool of that many threads, so one slow job (a CA
        that does not answer) does not delay the others; 1 runs them on the scheduler's thread.

        ``group`` (e.g. the CA a poll talks to) and ``per_group`` > 0 let at most that many jobs
        of one group run at once: the due jobs of a group at its limit wait, in order, while
        other groups' jobs take the free threads. Without it, many jobs of a CA that never
        answers would hold every thread until their timeouts and delay every other CA's.
        """
        self._run = run
        self._pool = (
            concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{name}-worker")
            if workers > 1 else None
        )
        self._group = group if self._pool is not None and per_group > 0 else None
        self._per_group = per_group
        self._running: dict[Hashable, int] = {}  # group -> jobs running
        self._waiting: dict[Hashable, collections.deque[K]] = {}  # group -> due jobs held back, in order
        self._clock = clock
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, K]] = []
        self._entries: dict[K, tuple[float, int]] = {}  # key -> (due, sequence) of its live heap entry
        self._sequence = itertools.count()
        self._closed = False
        self._thread: threading.Thread | None = None

    def schedule(self, key: K, delay: float) -> None:
        """Run ``key``'s job ``delay`` seconds from now (replacing any earlier schedule).

        Ignored after :meth:`close`. Raises nothing.
        """
        with self._cond:
            if self._closed:
                return
            due = self._clock.monotonic() + max(delay, 0.0)
            sequence = next(self._sequence)
            self._unwait(key)
            self._entries[key] = (due, sequence)
            heapq.heappush(self._heap, (due, sequence, key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def cancel(self, key: K) -> bool:
        """Forget ``key``'s pending job; whether there was one. Raises nothing.

        A job already running is not interrupted.
        """
        return self.cancel_many((key,)) == 1

    def cancel_many(self, keys: Iterable[K]) -> int:
        """:meth:`cancel` for each of ``keys``, under one lock (a commit deleting 1,000 trustpoints
        cancels 3,000 keys); how many had a job. Raises nothing."""
        with self._cond:
            found = 0
            for key in keys:
                if self._entries.pop(key, None) is not None or (self._waiting and self._unwait(key)):
                    found += 1
            if found:
                self._cond.notify_all()
            return found

    def is_scheduled(self, key: K) -> bool:
        """Whether ``key`` has a job waiting to run. Raises nothing."""
        with self._cond:
            return key in self._entries or any(key in waiting for waiting in self._waiting.values())

    def scheduled(self) -> dict[K, float]:
        """Seconds until each scheduled key is due (negative: overdue; 0: due, held back by its group).

        Raises nothing.
        """
        with self._cond:
            now = self._clock.monotonic()
            due = {key: 0.0 for waiting in self._waiting.values() for key in waiting}
            due.update({key: at - now for key, (at, _) in self._entries.items()})
            return due

    def _unwait(self, key: K) -> bool:
        """Drop ``key`` from the jobs its group holds back. Caller holds the lock."""
        for waiting in self._waiting.values():
            if key in waiting:
                waiting.remove(key)
                return True
        return False

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the thread: no job starts after this. Waits up to ``timeout`` s for a running job.

        With a pool (``workers`` > 1) it waits for the scheduler's thread only:
        a job already running on the pool ends on its own (and logs then).
        Returns True if the thread has ended. Raises nothing.
        """
        with self._cond:
            self._closed = True
            self._entries.clear()
            self._heap.clear()
            self._waiting.clear()
            self._cond.notify_all()
            thread = self._thread
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    # ------------------------------------------------------------ thread

    def _next_due(self) -> K | None:
        """Wait for the earliest live job to fall due and pop it; None once closed. Caller holds the lock."""
        while not self._closed:
            while self._heap:
                due, sequence, key = self._heap[0]
                if self._entries.get(key) == (due, sequence):
                    break
                heapq.heappop(self._heap)  # replaced or cancelled
            if not self._heap:
                self._cond.wait()  # woken by schedule() or close()
                continue
            due, sequence, key = self._heap[0]
            remaining = due - self._clock.monotonic()
            if remaining <= 0:
                heapq.heappop(self._heap)
                del self._entries[key]
                return key
            self._cond.wait(remaining)
        return None

    def _loop(self) -> None:
        while True:
            group: Hashable = None
            with self._cond:
                key = self._next_due()
                if key is not None and self._group is not None:
                    group = self._group(key)
                    if self._running.get(group, 0) >= self._per_group:
                        self._waiting.setdefault(group, collections.deque()).append(key)
                        continue  # held back until one of its group's jobs ends
                    self._running[group] = self._running.get(group, 0) + 1
            if key is None:
                return
            if not self._submit(key, group):
                return

    def _submit(self, key: K, group: Hashable) -> bool:
        """Run ``key``'s job (on the pool if there is one); False once the pool is shut down."""
        if self._pool is None:
            self._run_logged(key, group)
            return True
        try:
            self._pool.submit(self._run_logged, key, group)
        except RuntimeError:  # the pool was shut down by close()
            return False
        return True

    def _run_logged(self, key: K, group: Hashable = None) -> None:
        try:
            self._run(key)
        except ExecutorClosedError:  # the job ended after the executor it records on stopped: the agent shuts down
            _log.info("background job %r stopped: the agent is shutting down", key)
        except Exception:  # noqa: BLE001 - one failing job must not stop the others
            _log.exception("background job %r failed", key)
        finally:
            if self._group is not None:
                self._group_done(group)

    def _group_done(self, group: Hashable) -> None:
        """A job of ``group`` ended: start the next one the group held back, if any."""
        with self._cond:
            waiting = self._waiting.get(group)
            following = waiting.popleft() if waiting else None
            if waiting is not None and not waiting:
                del self._waiting[group]
            if following is None:
                self._running[group] = self._running.get(group, 1) - 1
                if self._running[group] <= 0:
                    del self._running[group]
            closed = self._closed
        if following is not None and not closed:
            self._submit(following, group)


# --------------------------------------------------------------------------- SCEP requests and polls

PollKey = tuple[str, KeyUsage]
"""A scheduled poll: trustpoint name and key usage."""

_INFO = "%SECURITY-CEPKI-6-INFO"
_ERROR = "%SECURITY-CEPKI-3-ERROR"

PreparedRequest = tuple[KeyUsage, rsa.RSAPrivateKey, x509.CertificateSigningRequest]


@dataclass(frozen=True)
class Exchange:
    """One request sent to (or polled at) a CA: the record as sent, and the answer or the error."""

    record: EnrollmentRequest
    response: EnrollmentResponse | None
    error: str | None


def md5_hex(data: bytes) -> str:
    """Upper-case hex MD5 (the request fingerprint the router prints). Raises nothing."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest().upper()


def sha256_hex(data: bytes) -> str:
    """Upper-case hex SHA-256. Raises nothing."""
    return hashlib.sha256(data).hexdigest().upper()


def still_pending(polls: int) -> str:
    """Why a request timed out although the CA answered every poll (PENDING). Raises nothing."""
    return (
        f"the CA still held the request pending after {polls} polls (the retry count): "
        "have the CA administrator approve it, then enroll again"
    )


def same_key(record: EnrollmentRequest, keys: KeyPairInfo) -> bool:
    """Whether ``keys`` still holds the key pair ``record`` was made for. Raises nothing."""
    der = keys.public_keys.get(record.key_usage)
    return der is not None and sha256_hex(der) == record.public_key_sha256


def new_request(
    tp: TrustpointConfig,
    keys: KeyPairInfo,
    usage: KeyUsage,
    csr: x509.CertificateSigningRequest,
    state: RequestState,
    now: dt.datetime,
) -> EnrollmentRequest:
    """The record of a request just built (nothing of the CSR but its subject and fingerprint). Raises nothing."""
    sent = state is RequestState.PENDING
    return EnrollmentRequest(
        trustpoint=tp.name,
        key_usage=usage,
        key_label=tp.key_label,
        public_key_sha256=sha256_hex(keys.public_keys[usage]),
        state=state,
        fingerprint=md5_hex(csr_to_der(csr)),
        subject_der=csr.subject.public_bytes(),
        created=now,
        updated=now,
        attempts=1 if sent else 0,
        last_attempt=now if sent else None,
    )


class RequestEngine:
    """Sends SCEP requests and polls, then records, installs and schedules by the answers.

    The ``exchange_*`` methods only talk to the CA (no state touched, safe to
    run concurrently); every other method changes state and expects the
    caller to serialise it (Pki's state writer). Records
    are written through ``save`` (which may drop writes after shutdown);
    requests that reach a final state are passed to ``notify``.
    """

    def __init__(
        self,
        *,
        keystore: KeyStore,
        certstore: CertificateStore,
        scheduler: PollScheduler[PollKey],
        save: Callable[[EnrollmentRequest], None],
        notify: Callable[[EnrollmentRequest], None],
        clock: Clock,
        retry_unit_seconds: float,
        http_timeout: float,
        caps_cache: CapabilitiesCache | None = None,
    ) -> None:
        self._keystore = keystore
        self._certstore = certstore
        self._scheduler = scheduler
        self._save = save
        self._notify = notify
        self._clock = clock
        self._unit = retry_unit_seconds
        self._http_timeout = http_timeout
        self._caps_cache = caps_cache

    def client(self, url: str) -> ScepClient:
        """A SCEP client for ``url`` (reusing the CA's recent GetCACaps answer). Raises ScepUrlError."""
        return ScepClient(url, timeout=self._http_timeout, clock=self._clock, caps_cache=self._caps_cache)

    def exchange_send(
        self,
        tp: TrustpointConfig,
        keys: KeyPairInfo,
        ca_certs: CaCertificates,
        prepared: list[PreparedRequest],
    ) -> list[Exchange]:
        """Send a PKCSReq per prepared request (network only: nothing is recorded).

        Each prepared request is consumed: its CSR holds the challenge
        password. Transport and protocol failures are returned as the
        exchange's error. Raises ScepUrlError.
        """
        assert tp.enrollment_url is not None
        client = self.client(tp.enrollment_url)
        exchanges: list[Exchange] = []
        while prepared:
            usage, key, csr = prepared.pop(0)
            record = new_request(tp, keys, usage, csr, RequestState.PENDING, self._clock.now())
            _log.info(
                "%s: certificate enrollment for trustpoint %s: %s request for %s sent to %s, Fingerprint: %s",
                _INFO,
                tp.name,
                usage.display,
                tp.key_label,
                client.url,
                format_fingerprint(record.fingerprint, group=8),
            )
            try:
                response = client.enroll(csr, key, ca_certs)
            except PkiError as exc:  # unreachable CA, HTTP error, unverifiable or malformed answer
                exchanges.append(Exchange(record, None, exc.message))
                continue
            finally:
                del csr  # it carries the challenge password: drop it as soon as it is sent
            exchanges.append(Exchange(record.evolve(transaction_id=response.transaction_id), response, None))
        return exchanges

    def record_sent(self, tp: TrustpointConfig, exchange: Exchange, ca_certs: CaCertificates) -> RequestOutcome:
        """Record the answer to a PKCSReq (or its failure). Raises OSError."""
        if exchange.response is None:
            return self.finish(tp, exchange.record, RequestState.FAILED, exchange.error)
        return self.apply(tp, exchange.record, exchange.response, ca_certs)

    def poll_key(self, tp: TrustpointConfig, record: EnrollmentRequest) -> rsa.RSAPrivateKey | RequestOutcome:
        """The private key to poll ``record`` with, or the final outcome when it cannot be polled.

        Reads the keystore (the caller serialises state changes). Raises OSError.
        """
        if not tp.enrollment_url:
            return self.finish(tp, record, RequestState.FAILED, "the trustpoint no longer has an enrollment url")
        try:
            key = self._keystore.private_key(record.key_label, record.key_usage)
            keys = self._keystore.get_rsa(record.key_label)
        except KeyStoreError:
            return self.finish(
                tp, record, RequestState.FAILED, f"the key pair {record.key_label} was zeroized while pending"
            )
        if not same_key(record, keys):
            return self.finish(
                tp, record, RequestState.FAILED, f"the key pair {record.key_label} was replaced while pending"
            )
        return key

    def exchange_poll(
        self, tp: TrustpointConfig, record: EnrollmentRequest, key: rsa.RSAPrivateKey, ca_certs: CaCertificates
    ) -> Exchange:
        """Send one CertPoll for a pending request (network only: nothing is recorded). Raises nothing."""
        txid = record.transaction_id
        assert txid is not None and tp.enrollment_url is not None
        now = self._clock.now()
        record = record.evolve(attempts=record.attempts + 1, last_attempt=now, updated=now)
        try:
            response = self.client(tp.enrollment_url).poll(txid, record.subject_name, key, ca_certs)
        except Exception as exc:  # noqa: BLE001 - any failure of one poll is recorded and retried
            error = exc.message if isinstance(exc, PkiError) else f"{type(exc).__name__}: {exc}"
            return Exchange(record, None, error)
        return Exchange(record, response, None)

    def record_poll(self, tp: TrustpointConfig, exchange: Exchange, ca_certs: CaCertificates) -> RequestOutcome:
        """Record the answer to a CertPoll: a failed poll is retried at the next period until the
        retry count is used up (TIMED_OUT). Raises OSError."""
        record = exchange.record
        if exchange.response is not None:
            return self.apply(tp, record, exchange.response, ca_certs)
        error = exchange.error or "no answer"
        if record.polls >= tp.retry_count:
            timed_out = f"no answer from the CA after {record.polls} polls: {error}"
            return self.finish(tp, record, RequestState.TIMED_OUT, timed_out)
        _log.warning(
            "%s: certificate enrollment for trustpoint %s: poll %d of %d failed: %s",
            _ERROR,
            tp.name,
            record.polls,
            tp.retry_count,
            error,
        )
        return self.keep_pending(tp, record.evolve(last_error=error))

    def apply(
        self,
        tp: TrustpointConfig,
        record: EnrollmentRequest,
        response: EnrollmentResponse,
        ca_certs: CaCertificates,
    ) -> RequestOutcome:
        """Record (and install, or schedule) the answer to a PKCSReq or CertPoll. Raises OSError."""
        if response.status is PkiStatus.SUCCESS:
            cert = response.certificate
            assert cert is not None
            if not verify_issued_by(cert, ca_certs.ca):
                error = "the CA sent a certificate that its CA certificate does not verify"
                return self.finish(tp, record, RequestState.FAILED, error)
            self._certstore.set_certificate(tp.name, record.key_usage, cert)
            keys = self._keystore.get_rsa(record.key_label)
            for other in KeyUsage:  # certificates of the label's former key-pair type are stale
                if other not in keys.key_type.usages:
                    self._certstore.remove_certificate(tp.name, other)
            info = CertificateInfo.from_x509(cert)
            return self.finish(tp, record.evolve(serial_number=info.serial_number), RequestState.ISSUED, None, info)
        if response.status is PkiStatus.PENDING:
            if record.polls >= tp.retry_count:
                return self.finish(tp, record, RequestState.TIMED_OUT, still_pending(record.polls))
            return self.keep_pending(tp, record.evolve(last_error=None))
        return self.finish(tp, record, RequestState.REJECTED, response.message)

    def keep_pending(self, tp: TrustpointConfig, record: EnrollmentRequest) -> RequestOutcome:
        """Record a request as pending and schedule its next poll one retry period from now. Raises OSError."""
        delay = tp.retry_period * self._unit
        now = self._clock.now()
        record = record.evolve(state=RequestState.PENDING, next_poll=now + dt.timedelta(seconds=delay), updated=now)
        self._save(record)
        self._scheduler.schedule((tp.name, record.key_usage), delay)
        _log.info(
            "%s: certificate enrollment for trustpoint %s: %s request pending, transaction ID %s, attempt %d, "
            "next poll in %d minute(s)",
            _INFO,
            tp.name,
            record.key_usage.display,
            record.transaction_id,
            record.attempts,
            tp.retry_period,
        )
        return request_outcome(record)

    def finish(
        self,
        tp: TrustpointConfig,
        record: EnrollmentRequest,
        state: RequestState,
        error: str | None,
        info: CertificateInfo | None = None,
    ) -> RequestOutcome:
        """Record a request's final state, stop its polling, log it and notify. Raises OSError."""
        now = self._clock.now()
        record = record.evolve(state=state, last_error=error, next_poll=None, updated=now)
        self._save(record)
        self._scheduler.cancel((tp.name, record.key_usage))
        which = "" if record.key_usage is KeyUsage.GENERAL else f" ({record.key_usage.display} key)"
        if state is RequestState.ISSUED:
            _log.info(
                "%s: certificate enrollment for trustpoint %s: issued, serial %s%s",
                _INFO,
                tp.name,
                record.serial_number,
                which,
            )
        else:
            _log.error(
                "%s: certificate enrollment for trustpoint %s: %s%s: %s", _ERROR, tp.name, state.value, which, error
            )
        self._notify(record)
        return request_outcome(record, info)

    def resume(self, tp: TrustpointConfig, record: EnrollmentRequest) -> None:
        """(Re)schedule a pending request found on disk with ``tp``'s retry settings.

        The next poll is due one retry period after the last attempt (at
        once if that is past). Raises OSError.
        """
        if not tp.enrollment_url:
            self.finish(tp, record, RequestState.FAILED, "the trustpoint no longer has an enrollment url")
            return
        if record.polls >= tp.retry_count:
            self.finish(tp, record, RequestState.TIMED_OUT, still_pending(record.polls))
            return
        period = tp.retry_period * self._unit
        now = self._clock.now()
        due = (record.last_attempt or now) + dt.timedelta(seconds=period)
        delay = min(max((due - now).total_seconds(), 0.0), period)  # clamp: the wall clock may have jumped
        next_poll = now + dt.timedelta(seconds=delay)
        if record.next_poll is None or abs((record.next_poll - next_poll).total_seconds()) > 1.0:
            self._save(record.evolve(next_poll=next_poll))
        self._scheduler.schedule((tp.name, record.key_usage), delay)
