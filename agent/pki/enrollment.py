"""CA authentication, certificate enrollment (SCEP and cut-and-paste) and its polling.

:class:`Pki` is the plain-Python facade the services layer calls for
``crypto ca authenticate``, ``crypto ca enroll``, ``crypto ca import``,
``clear crypto ca certificates`` and the trustpoint state.

On disk, next to the certificate store's files of each trustpoint::

    <data>/trustpoints/<name>/enrollment-general.json
    <data>/trustpoints/<name>/enrollment-signature.json
    <data>/trustpoints/<name>/enrollment-encryption.json

one :class:`~agent.pki.trustpoint.EnrollmentRequest` per key pair (state,
transaction ID, subject, attempts, next poll, last error), written
atomically. The PKCS#10 request and the challenge password are never written
anywhere, logged, or put in an exception: the password lives only in the
``enroll`` call that uses it.

A PENDING SCEP request is polled (CertPoll) in the background every
``retry_period`` minutes (x ``retry_unit_seconds``) up to ``retry_count``
times, by a pool of pollers (a CA that does not answer holds one poller, not
the others); the requests survive the client's disconnect, and a new
:class:`Pki` over the same directories resumes them when
:meth:`Pki.configure` is called.

No lock is held across a CA exchange or any disk I/O: every change of state
(files of requests and certificates) runs on one state-writer thread, in
order; CA exchanges run in the caller's (or a poller's) thread between two
such steps, and their results are recorded only if nothing (a clear, a
cancel, a removal) overtook them. Listeners are called on their own thread.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from agent.clock import SYSTEM_CLOCK, Clock
from agent.files import deferred_directory_syncs, when_durable
from agent.pki.authentication import (
    check_ca_certificate,
    fetch_ca_certificates,
    fingerprint_of_same_kind,
    installed_ca_certificates,
    pasted_ca_certificates,
    ra_certificates,
    trusted_cas,
)
from agent.pki.certificate import (
    CertificateInfo,
    fingerprint_matches,
    format_fingerprint,
    normalize_fingerprint,
)
from agent.pki.certstore import (
    CaNotAuthenticatedError,
    CertificateStore,
    CertificateStoreCorruptError,
    validate_trustpoint_name,
)
from agent.pki.csr import build_csr, check_challenge_password, csr_to_pem, request_subject
from agent.pki.keystore import DEFAULT_LABEL, KeyPairInfo, KeyStore, KeyStoreError, KeyUsage
from agent.pki.polling import (
    Exchange,
    PollKey,
    PollScheduler,
    PreparedRequest,
    RequestEngine,
    RequestFiles,
    new_request,
    same_key,
    sha256_hex,
)
from agent.pki.scep import CaCertificates, ScepError
from agent.pki.scep.capabilities import CapabilitiesCache
from agent.pki.trustpoint import (
    AuthenticationResult,
    CaAlreadyAuthenticatedError,
    CaCertificateRequiredError,
    CancelledRequest,
    CertificateState,
    CertificateStatus,
    EnrollmentInProgressError,
    EnrollmentMethod,
    EnrollmentOutcome,
    EnrollmentRequest,
    FingerprintMismatchError,
    ImportedCertificate,
    KeyCertificate,
    NoEnrollmentInProgressError,
    RaCertificate,
    RequestOutcome,
    RequestState,
    TrustpointConfig,
    TrustpointState,
    UnexpectedCaCertificateError,
    request_outcome,
    summarize,
)
from agent.serial import SerialExecutor, SpareThreads

__all__ = ["EnrollmentListener", "Pki"]

_log = logging.getLogger(__name__)

_INFO = "%SECURITY-CEPKI-6-INFO"

EnrollmentListener = Callable[[EnrollmentRequest], None]
"""Called with a request that reached a final state (issued, rejected, timed out, failed)."""


@dataclass
class _EnrollmentPlan:
    """What an enrollment sends and polls, decided on the state writer before talking to the CA."""

    generation: int
    ca_certs: CaCertificates
    keys: KeyPairInfo
    to_request: list[tuple[KeyUsage, rsa.RSAPrivateKey]]
    """The key of each new request: their CSRs are signed by the caller, not on the writer."""
    to_poll: list[tuple[EnrollmentRequest, rsa.RSAPrivateKey]]
    outcomes: dict[KeyUsage, RequestOutcome] = field(default_factory=dict)


class Pki:
    """Authentication, enrollment, import, clearing and state of the trustpoints.

    Thread-safe. State changes are serialised on one writer thread (never
    while a CA is being asked); one enrollment or poll at a time per
    trustpoint; :meth:`state` reads the files as they are, so reading state
    never waits for a CA or for the writer.
    """

    def __init__(
        self,
        data_dir: Path,
        keystore: KeyStore,
        certstore: CertificateStore,
        clock: Clock = SYSTEM_CLOCK,
        retry_unit_seconds: float = 60.0,
        http_timeout: float = 30.0,
        pollers: int = 16,
    ) -> None:
        """Open the enrollment backend over ``certstore``'s trustpoint directories.

        ``data_dir`` is the agent's data directory; the certificate store must
        live in ``data_dir/trustpoints`` (enrollment state shares its
        per-trustpoint directories). ``retry_unit_seconds`` is the length of
        a retry-period "minute" (tests shorten it); ``pollers`` how many
        pending requests may be polled at the same time.
        Nothing is polled until :meth:`configure` is called.
        Raises ValueError for a certificate store elsewhere or non-positive durations.
        """
        expected = Path(data_dir) / "trustpoints"
        if Path(certstore.directory).resolve() != expected.resolve():
            raise ValueError(f"the certificate store must be {expected}, not {certstore.directory}")
        if retry_unit_seconds <= 0 or http_timeout <= 0:
            raise ValueError("retry_unit_seconds and http_timeout must be positive")
        self._data_dir = Path(data_dir)
        self._keystore = keystore
        self._certstore = certstore
        self._files = RequestFiles(certstore)
        self._clock = clock
        self._unit = float(retry_unit_seconds)
        self._http_timeout = float(http_timeout)
        self._lock = threading.Lock()  # in-memory state only, never held across I/O
        self._configs: dict[str, TrustpointConfig] = {}
        self._listeners: list[EnrollmentListener] = []
        self._closed = False
        # A trustpoint with an enrollment or poll talking to its CA, and each
        # trustpoint's generation: a clear, cancel or removal bumps it, so an
        # exchange that was overtaken records nothing.
        self._busy: set[PollKey] = set()
        self._generation: dict[str, int] = {}
        # Each state step's renames are made durable once, at its end (a certificate and its
        # request record: one directory sync instead of two).
        self._writer = SerialExecutor("pki-state", around=deferred_directory_syncs, inline_when_idle=True)
        self._events = SerialExecutor("pki-events", inline_when_idle=True)
        self._caps = CapabilitiesCache(clock=clock)
        # ca-authenticate asks GetCACaps here while its own thread asks GetCACert (~0.3 ms less each).
        self._discovery = SpareThreads("pki-scep-discovery", 4)
        # At most a quarter of the pollers per CA: a CA that never answers holds only those
        # (each poll until the HTTP timeout) while the other CAs' requests are polled.
        self._scheduler: PollScheduler[PollKey] = PollScheduler(
            self._run_poll, clock=clock, name="pki-enrollment-poller", workers=max(1, pollers),
            group=self._ca_of, per_group=max(1, pollers // 4),
        )
        self._engine = RequestEngine(
            keystore=keystore,
            certstore=certstore,
            scheduler=self._scheduler,
            save=self._save,
            notify=self._notify,
            clock=clock,
            retry_unit_seconds=self._unit,
            http_timeout=self._http_timeout,
            caps_cache=self._caps,
        )

    # ------------------------------------------------------------------ lifecycle

    def configure(self, trustpoints: Sequence[TrustpointConfig]) -> None:
        """Take the full list of configured trustpoints (at start and after every commit).

        Pending SCEP requests found on disk are (re)scheduled with the
        current retry settings: the next poll is due ``retry_period`` after the
        last attempt (at once if that is past, e.g. after a restart). A
        request whose trustpoint lost its enrollment URL fails; one that has
        used up a lowered retry count times out. Trustpoints missing from the
        list are forgotten (no more polling); their files stay until
        :meth:`trustpoints_removed`.
        Raises InvalidTrustpointNameError, OSError.
        """
        configs = {validate_trustpoint_name(tp.name): tp for tp in trustpoints}
        with self._lock:
            previous = self._configs
            forgotten = set(previous) - set(configs)
            self._configs = dict(configs)
        self._unschedule(forgotten)
        changed = [tp for tp in configs.values() if previous.get(tp.name) != tp]
        if changed:
            # On the writer, in order with every other change of state (it
            # never waits for a CA, so neither does the commit that calls this).
            self._writer.run(lambda: self._resume_pending(changed))

    def _ca_of(self, key: PollKey) -> str:
        """The CA a poll talks to (scheme, host and port of the enrollment URL); no lock, no I/O."""
        config = self._configs.get(key[0])  # a dict read: safe without the lock, which the caller may not take
        url = (config.enrollment_url if config is not None else None) or ""
        parts = urllib.parse.urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"

    def reconfigure(self, changed: Sequence[TrustpointConfig], removed: Sequence[str]) -> None:
        """:meth:`configure` for a commit that changed or removed only these trustpoints.

        The others stay as they are; the cost follows the size of the change,
        not the number of trustpoints. Pending requests of changed trustpoints
        are resumed on the state writer, not awaited (a failure there is
        logged). Raises InvalidTrustpointNameError.
        """
        configs = {validate_trustpoint_name(tp.name): tp for tp in changed}
        with self._lock:
            previous = {name: self._configs.get(name) for name in configs}
            forgotten = [name for name in removed if name not in configs and name in self._configs]
            for name in forgotten:
                del self._configs[name]
            self._configs.update(configs)
        self._unschedule(forgotten)
        # A trustpoint new to this Pki has no pending request to resume: start-up scanned every
        # trustpoint, and trustpoints_removed deletes a removed one's files.
        resumed = [tp for tp in configs.values() if previous.get(tp.name) not in (None, tp)]
        if resumed:
            # Queued, not awaited: a commit's listener must not wait for the writer thread (with many
            # sessions that hand-off alone took milliseconds, and requests wait for the listeners).
            # Whatever the writer does next for these trustpoints comes after it.
            self._writer.submit(lambda: self._resume_pending(resumed))

    def _resume_pending(self, trustpoints: Sequence[TrustpointConfig]) -> None:
        for tp in trustpoints:
            with self._lock:
                if self._configs.get(tp.name) != tp:
                    continue  # changed again since: the later configure resumes it
            for record in self._files.load(tp.name).values():
                if record.state is RequestState.PENDING:
                    self._engine.resume(tp, record)

    def close(self, timeout: float = 5.0) -> None:
        """Stop polling; waits at most ``timeout`` s for a poll in flight. Raises nothing.

        Pending requests stay on disk for the next :class:`Pki`.
        """
        with self._lock:
            self._closed = True
        if not self._scheduler.close(timeout):
            _log.warning("the enrollment poller did not stop within %g s", timeout)
        self._writer.close(timeout)
        self._events.close(timeout)
        self._discovery.close()

    def add_listener(self, listener: EnrollmentListener) -> None:
        """Call ``listener`` whenever a request reaches a final state.

        It runs in the thread that finished the request (the poller, or the
        caller of :meth:`enroll`) while the trustpoint is locked: it must be
        quick and must not call back into this object except :meth:`state`.
        Its exceptions are logged and ignored. Raises nothing.
        """
        with self._lock:
            self._listeners.append(listener)

    def trustpoints_removed(self, names: Sequence[str]) -> None:
        """A commit deleted these trustpoints: stop their polling, remove their certificates and state.

        All of them in one step of the state writer (a commit deleting 1,000
        trustpoints made 1,000 round trips to the writer thread, 90 ms).
        Raises InvalidTrustpointNameError (before anything is done), OSError
        (the trustpoints before the failing one are removed).
        """
        for name in names:
            validate_trustpoint_name(name)
        with self._lock:
            for name in names:
                self._configs.pop(name, None)
                self._generation[name] = self._generation.get(name, 0) + 1
        self._unschedule(names)

        def remove() -> None:
            # Most trustpoints of a bulk delete were never authenticated: one listing of the
            # directories instead of a look for each name (this runs on the writer, the only
            # thread that makes or removes them).
            present = set(self._certstore.trustpoints()) if len(names) > 8 else None
            for name in names:
                if present is not None and name not in present:
                    continue
                if self._certstore.remove_trustpoint(name):
                    _log.info("%s: trustpoint %s removed with its certificates", _INFO, name)

        # On the writer, in order with every other change of state (it never
        # waits for a CA, so neither does the commit that calls this).
        self._writer.run(remove)

    # ------------------------------------------------------------------ authenticate

    def authenticate(
        self,
        tp: TrustpointConfig,
        *,
        accept: bool = False,
        fingerprint: str | None = None,
        ca_pem: str | None = None,
    ) -> AuthenticationResult:
        """``crypto ca authenticate``: get the CA certificate, show it, install it when confirmed.

        SCEP trustpoints fetch it (GetCACaps and GetCACert, at once: CA alone
        or CA and RA certificates) from the enrollment URL; terminal trustpoints take
        ``ca_pem``. It is installed only with ``accept`` or when
        ``fingerprint`` (MD5, SHA-1 or SHA-256 hex; case, spaces and colons
        ignored) matches; with neither it is only shown ("Do you accept this
        certificate?" answered no). A CA certificate that is not self-signed
        or not valid now must be issued by a CA another trustpoint trusts.
        Authenticating again with the same CA certificate is harmless.

        Raises NoEnrollmentMethodError; CaCertificateRequiredError (terminal
        without ``ca_pem``); UnexpectedCaCertificateError (``ca_pem`` for a
        URL trustpoint); InvalidCertificateError (``ca_pem`` unreadable);
        CaUnreachableError (naming the URL); InvalidFingerprintError;
        FingerprintMismatchError (nothing installed); UntrustedCaError;
        CaAlreadyAuthenticatedError (another CA is installed: clear first);
        OSError.
        """
        name = validate_trustpoint_name(tp.name)
        method = tp.require_method()
        if fingerprint is not None:
            normalize_fingerprint(fingerprint)  # a malformed fingerprint fails before any network I/O
        if method is EnrollmentMethod.TERMINAL:
            if not ca_pem or not ca_pem.strip():
                raise CaCertificateRequiredError(
                    f"trustpoint {name} uses enrollment terminal: paste the CA certificate (ca-certificate)"
                )
            ca_certs = pasted_ca_certificates(ca_pem)
        else:
            if ca_pem is not None:
                raise UnexpectedCaCertificateError(
                    f"trustpoint {name} gets its CA certificate from {tp.enrollment_url}: "
                    "ca-certificate is only for enrollment terminal"
                )
            ca_certs = fetch_ca_certificates(
                tp, timeout=self._http_timeout, clock=self._clock, caps_cache=self._caps, spare=self._discovery
            )
        ca = ca_certs.ca
        info = CertificateInfo.from_x509(ca)
        ras = ra_certificates(ca_certs)
        shown = f"CA certificate of trustpoint {name}: {info.subject}, serial {info.serial_number}, " + (
            f"fingerprint {format_fingerprint(info.fingerprint_md5)}"
        )

        def install() -> str | None:
            """On the state writer: check and install; the issuing trustpoint if not self-signed."""
            self._remember(tp)
            issuer = check_ca_certificate(
                name, ca, lambda: trusted_cas(self._certstore, name), self._clock.now()
            )
            if fingerprint is not None and not fingerprint_matches(ca, fingerprint):
                algorithm, actual = fingerprint_of_same_kind(info, fingerprint)
                raise FingerprintMismatchError(
                    f"fingerprint mismatch: the CA certificate's fingerprint is {actual} ({algorithm}); "
                    "nothing was installed"
                )
            if not (accept or fingerprint is not None):
                return issuer
            current = self._certstore.ca(name)
            if current is not None and current != ca:
                raise CaAlreadyAuthenticatedError(
                    f"trustpoint {name} already trusts the CA certificate of "
                    f"{CertificateInfo.from_x509(current).subject}: clear it first "
                    f"(ca-clear-certificates {name})"
                )
            ra_list = [c for c in (ca_certs.ra_signing, ca_certs.ra_encryption) if c is not None]
            self._certstore.set_ca(name, ca, ra_list)
            return issuer

        issuer_tp = self._writer.run(install)
        if not (accept or fingerprint is not None):
            return AuthenticationResult(
                name, info, ras, False, f"{shown}; not installed: accept it or give its fingerprint"
            )
        via = f", issued by trustpoint {issuer_tp}'s CA" if issuer_tp else ""
        _log.info(
            "%s: CA certificate of trustpoint %s installed, serial %s, fingerprint %s%s",
            _INFO,
            name,
            info.serial_number,
            format_fingerprint(info.fingerprint_md5),
            via,
        )
        return AuthenticationResult(name, info, ras, True, f"{shown}; installed{via}")

    # ------------------------------------------------------------------ enroll

    def enroll(
        self, tp: TrustpointConfig, challenge_password: str | None = None, fqdn: str = ""
    ) -> EnrollmentOutcome:
        """``crypto ca enroll``: request one certificate per key pair of the trustpoint's label.

        SCEP: each request's outcome comes back at once (issued and
        installed, pending and polled in the background, or rejected). While
        a request is pending, enrolling again polls it at once with the same
        transaction ID instead of sending a new request. Terminal: the PEM
        PKCS#10 requests are returned to be signed by the CA and imported.
        ``challenge_password`` goes into the requests only; ``fqdn`` (the
        router's ``hostname.domain``) is the default subject.

        Raises NoEnrollmentMethodError; CaNotAuthenticatedError;
        KeyNotFoundError (no keys under the label); InvalidSubjectNameError;
        InvalidChallengePasswordError; EnrollmentInProgressError (another
        enrollment or poll of this trustpoint is talking to the CA);
        ScepUrlError; OSError. A CA that cannot be reached or refuses is not
        an exception: the outcome says FAILED.
        """
        name = validate_trustpoint_name(tp.name)
        method = tp.require_method()
        plan = self._writer.run(lambda: self._plan_enrollment(tp, method, challenge_password, fqdn))
        if isinstance(plan, EnrollmentOutcome):
            return plan
        try:
            # The CSRs and the CA exchanges: no lock held, the writer free for everyone else. Signing here,
            # where the request is also signed and the answer decrypted, also spares OpenSSL setting the key
            # up for a second thread (~0.2 ms).
            prepared = self._build_requests(tp, plan.to_request, challenge_password, fqdn)
            sent = self._engine.exchange_send(tp, plan.keys, plan.ca_certs, prepared)
            polled = [self._engine.exchange_poll(tp, record, key, plan.ca_certs) for record, key in plan.to_poll]
            outcomes = self._writer.run(lambda: self._record_enrollment(tp, plan, sent, polled))
        finally:
            self._release(name, plan.keys.key_type.usages)
        self._events.run(lambda: None)  # the listeners have seen what this enrollment finished
        return summarize(tp, {u: outcomes[u] for u in plan.keys.key_type.usages if u in outcomes}, {})

    def _plan_enrollment(
        self, tp: TrustpointConfig, method: EnrollmentMethod, challenge_password: str | None, fqdn: str
    ) -> _EnrollmentPlan | EnrollmentOutcome:
        """On the state writer: what to send and poll (a terminal enrollment is done here)."""
        name = tp.name
        self._remember(tp)
        ca_certs = self._require_ca(name)
        keys = self._keystore.get_rsa(tp.key_label)
        records = self._files.load(name)
        for usage, record in list(records.items()):  # requests for keys that no longer exist are moot
            if usage not in keys.key_type.usages or not same_key(record, keys):
                self._forget_request(name, usage)
                records.pop(usage)
        resume = method is EnrollmentMethod.URL and any(r.state is RequestState.PENDING for r in records.values())
        outcomes: dict[KeyUsage, RequestOutcome] = {}
        to_poll: list[tuple[EnrollmentRequest, rsa.RSAPrivateKey]] = []
        if resume:
            # enroll while a request is pending: poll pending ones now, report the others
            missing = [u for u in keys.key_type.usages if u not in records]
            for usage, record in records.items():
                if record.state is not RequestState.PENDING:
                    outcomes[usage] = request_outcome(record)
                    continue
                key_or_outcome = self._engine.poll_key(tp, record)
                if isinstance(key_or_outcome, RequestOutcome):
                    outcomes[usage] = key_or_outcome
                else:
                    to_poll.append((record, key_or_outcome))
        else:
            for usage in records:
                self._forget_request(name, usage)
            if method is EnrollmentMethod.TERMINAL:
                return self._terminal_enroll(tp, keys, challenge_password, fqdn)
            missing = list(keys.key_type.usages)
        if missing:  # the caller signs their CSRs after this step; their input is checked here, as it was
            request_subject(_request_fqdn(tp, fqdn), tp.subject_name)
            check_challenge_password(challenge_password)
        to_request = self._request_keys(tp, missing)
        busy = {(name, usage) for usage in keys.key_type.usages}
        with self._lock:
            if busy & self._busy:
                raise EnrollmentInProgressError(
                    f"an enrollment of trustpoint {name} is already talking to the CA; wait for it to finish"
                )
            self._busy |= busy
            generation = self._generation.get(name, 0)
        for record, _ in to_poll:
            self._scheduler.cancel((name, record.key_usage))
        return _EnrollmentPlan(generation, ca_certs, keys, to_request, to_poll, outcomes)

    def _record_enrollment(
        self, tp: TrustpointConfig, plan: _EnrollmentPlan, sent: list[Exchange], polled: list[Exchange]
    ) -> dict[KeyUsage, RequestOutcome]:
        """On the state writer: record what the CA answered, unless a clear, cancel or removal came first."""
        outcomes = dict(plan.outcomes)
        if self._overtaken(tp.name, plan.generation):
            for exchange in [*sent, *polled]:
                stopped = exchange.record.evolve(
                    state=RequestState.FAILED, last_error="cancelled while the CA was answering"
                )
                outcomes[exchange.record.key_usage] = request_outcome(stopped)
            return outcomes
        for exchange in sent:
            outcomes[exchange.record.key_usage] = self._engine.record_sent(tp, exchange, plan.ca_certs)
        for exchange in polled:
            outcomes[exchange.record.key_usage] = self._engine.record_poll(tp, exchange, plan.ca_certs)
        return outcomes

    def cancel_enrollment(self, name: str) -> list[CancelledRequest]:
        """Stop a pending (or awaiting-import) enrollment and forget its transaction.

        Returns the requests cancelled. Raises InvalidTrustpointNameError,
        NoEnrollmentInProgressError, OSError.
        """
        validate_trustpoint_name(name)

        def cancel() -> list[EnrollmentRequest]:
            active = [
                record
                for record in self._files.load(name).values()
                if record.state in (RequestState.PENDING, RequestState.AWAITING_IMPORT)
            ]
            if not active and not self._is_busy(name):
                raise NoEnrollmentInProgressError(f"no enrollment in progress for {name}")
            self._bump(name)  # an exchange in flight records nothing
            for record in active:
                self._forget_request(name, record.key_usage)
            return active

        active = self._writer.run(cancel)
        cancelled = [CancelledRequest(r.key_usage, r.transaction_id) for r in active]
        _log.info(
            "%s: certificate enrollment for trustpoint %s cancelled (%s)",
            _INFO,
            name,
            ", ".join(f"{r.key_usage.display}" + (f" transaction ID {r.transaction_id}" if r.transaction_id else "")
                      for r in cancelled),
        )
        return cancelled

    def certificates_of_keys(self, public_keys: Collection[bytes], *, remove: bool = False) -> list[KeyCertificate]:
        """The router certificates, of every trustpoint, that certify one of ``public_keys`` (DER
        SubjectPublicKeyInfo); with ``remove``, they are removed too (``crypto key zeroize rsa``:
        "All router certs issued using these keys will also be removed").

        A trustpoint whose certificates cannot be read is skipped (logged).
        Raises OSError.
        """
        wanted = set(public_keys)
        found: list[KeyCertificate] = []
        if not wanted:
            return found

        def scan() -> None:
            for name in sorted(self._certstore.trustpoints()):
                try:
                    installed = self._certstore.certificates(name)
                except CertificateStoreCorruptError as exc:
                    _log.warning("trustpoint %s: certificates unreadable, not checked: %s", name, exc.message)
                    continue
                for usage, cert in installed.items():
                    info = CertificateInfo.from_x509(cert)
                    if info.public_key_der not in wanted:
                        continue
                    if remove:
                        self._certstore.remove_certificate(name, usage)
                    found.append(KeyCertificate(name, usage, info.serial_number))

        self._writer.run(scan)
        if remove:
            for removed in found:
                _log.info(
                    "%s: router certificate of trustpoint %s (%s key), serial %s, removed with its key pair",
                    _INFO,
                    removed.trustpoint,
                    removed.key_usage.display,
                    removed.serial_number,
                )
        return found

    # ------------------------------------------------------------------ import, clear

    def import_certificate(self, tp: TrustpointConfig, pem: str) -> ImportedCertificate:
        """``crypto ca import NAME certificate``: install a pasted router certificate.

        The certificate store checks it (issued by the trustpoint's CA, for
        one of the label's key pairs, valid now); the request of that key
        usage, if any, becomes ISSUED. For usage keys, import twice in any order.
        Raises InvalidTrustpointNameError and the errors of
        :meth:`CertificateStore.import_certificate` (InvalidCertificateError,
        CaNotAuthenticatedError, WrongIssuerError, KeyNotFoundError,
        KeyMismatchError, CertificateExpiredError...), OSError.
        """
        name = validate_trustpoint_name(tp.name)

        def install() -> tuple[KeyUsage, CertificateInfo]:
            self._remember(tp)
            usage = self._certstore.import_certificate(name, pem, self._keystore, tp.key_label)
            cert = self._certstore.certificates(name)[usage]
            info = CertificateInfo.from_x509(cert)
            keys = self._keystore.get_rsa(tp.key_label)
            for other, record in self._files.load(name).items():
                if other not in keys.key_type.usages:
                    self._forget_request(name, other)
                elif other is usage:
                    self._scheduler.cancel((name, usage))
                    now = self._clock.now()
                    done = record.evolve(
                        state=RequestState.ISSUED,
                        serial_number=info.serial_number,
                        public_key_sha256=sha256_hex(keys.public_keys[usage]),
                        next_poll=None,
                        last_error=None,
                        updated=now,
                    )
                    self._save(done)
                    self._notify(done)
            return usage, info

        usage, info = self._writer.run(install)
        self._events.run(lambda: None)  # the listeners have seen the request this import finished
        _log.info(
            "%s: certificate import for trustpoint %s: %s certificate installed, serial %s",
            _INFO,
            name,
            usage.display,
            info.serial_number,
        )
        return ImportedCertificate(name, usage, info)

    def clear_certificates(self, name: str | None = None) -> list[str]:
        """``clear crypto ca certificates [NAME]``: remove router, CA and RA certificates.

        Pending enrollments of those trustpoints stop and their requests are
        forgotten. Returns the names of the trustpoints that had anything to
        clear, sorted. Raises InvalidTrustpointNameError, OSError.
        """
        if name is not None:
            names = [validate_trustpoint_name(name)]
        else:
            with self._lock:
                names = sorted(set(self._certstore.trustpoints()) | set(self._configs))
        cleared: list[str] = []

        def clear() -> None:
            for tp_name in names:
                self._bump(tp_name)  # an exchange in flight records nothing
                folder = self._certstore.trustpoint_dir(tp_name, create=False)
                if not folder.is_dir():
                    continue
                try:
                    had = bool(self._files.load(tp_name)) or self._certstore.ca(tp_name) is not None
                    had = had or bool(self._certstore.certificates(tp_name))
                except CertificateStoreCorruptError:
                    had = True  # unreadable certificates are cleared too
                for usage in KeyUsage:
                    self._forget_request(tp_name, usage)
                self._certstore.clear(tp_name)
                if had:
                    cleared.append(tp_name)
                    _log.info("%s: certificates of trustpoint %s cleared", _INFO, tp_name)

        self._writer.run(clear)
        return cleared

    # ------------------------------------------------------------------ state

    def trustpoints_using(self, labels: Collection[str]) -> frozenset[str] | None:
        """The configured trustpoints whose key pair is one of ``labels``.

        None when that cannot be told from the configuration: the default
        label is among them (a trustpoint without ``rsakeypair``, or one
        whose directory outlived its configuration, uses it). Raises nothing.
        """
        if DEFAULT_LABEL in labels:
            return None
        with self._lock:
            return frozenset(name for name, tp in self._configs.items() if tp.key_label in labels)

    def state(self, name: str) -> TrustpointState:
        """What the state tree shows under trustpoint ``name`` (empty if it has nothing yet).

        A router certificate is KEY_MISSING when the trustpoint's key label
        holds no key pair of its usage, KEY_MISMATCH when the label holds
        another key pair (regenerated: re-enroll), and PENDING (without
        certificate data) while its request is pending at the CA or awaits
        import.
        Raises InvalidTrustpointNameError, CertificateStoreCorruptError.
        """
        if not self._certstore.has_directory(name):
            # Never authenticated nor enrolled: one stat instead of eight files not found
            # (a filtered <get> of such a trustpoint spent a fifth of its time on them).
            return TrustpointState(name=name, ca=None, ra=(), certificates={}, requests={})
        ca = self._certstore.ca(name)
        ras: tuple[RaCertificate, ...] = ()
        if ca is not None:
            ra_certs = self._certstore.ra(name)
            if ra_certs:
                try:
                    ras = ra_certificates(CaCertificates.from_certificates([ca, *ra_certs]))
                except ScepError:
                    ras = tuple(RaCertificate(CertificateInfo.from_x509(c), ()) for c in ra_certs)
        with self._lock:
            tp = self._configs.get(name)
        label = tp.key_label if tp is not None else DEFAULT_LABEL
        try:
            keys: KeyPairInfo | None = self._keystore.get_rsa(label)
        except KeyStoreError:
            keys = None
        records = self._files.load(name)
        certificates: dict[KeyUsage, CertificateState] = {}
        installed = self._certstore.certificates(name)
        for usage in KeyUsage:
            cert = installed.get(usage)
            if cert is not None:
                info = CertificateInfo.from_x509(cert)
                current = None if keys is None else keys.public_keys.get(usage)
                if current is None:
                    status = CertificateStatus.KEY_MISSING
                elif current != info.public_key_der:
                    status = CertificateStatus.KEY_MISMATCH
                else:
                    status = CertificateStatus.AVAILABLE
                certificates[usage] = CertificateState(usage, status, info)
            elif usage in records and records[usage].state in (RequestState.PENDING, RequestState.AWAITING_IMPORT):
                certificates[usage] = CertificateState(usage, CertificateStatus.PENDING, None)
        return TrustpointState(
            name=name,
            ca=CertificateInfo.from_x509(ca) if ca is not None else None,
            ra=ras,
            certificates=certificates,
            requests=records,
        )

    def scheduled_polls(self) -> dict[PollKey, float]:
        """Seconds until the poller's next CertPoll of each pending request (trustpoint, usage).

        What the background thread will actually do, as opposed to the
        ``next_poll`` written in each request's file. Raises nothing.
        """
        return self._scheduler.scheduled()

    # ------------------------------------------------------------------ enrollment internals

    def _request_keys(
        self, tp: TrustpointConfig, usages: Sequence[KeyUsage]
    ) -> list[tuple[KeyUsage, rsa.RSAPrivateKey]]:
        """The private key of ``tp``'s key pair for each usage a request is made for. Raises KeyStoreError."""
        return [(usage, self._keystore.private_key(tp.key_label, usage)) for usage in usages]

    @staticmethod
    def _build_requests(
        tp: TrustpointConfig,
        keys: Sequence[tuple[KeyUsage, rsa.RSAPrivateKey]],
        challenge_password: str | None,
        fqdn: str,
    ) -> list[PreparedRequest]:
        """One CSR per key, all built before anything is sent (bad input fails first)."""
        return [
            (
                usage,
                key,
                build_csr(
                    key,
                    fqdn=_request_fqdn(tp, fqdn),
                    subject_name=tp.subject_name,
                    challenge_password=challenge_password,
                    key_usage=usage,
                ),
            )
            for usage, key in keys
        ]

    def _terminal_enroll(
        self, tp: TrustpointConfig, keys: KeyPairInfo, challenge_password: str | None, fqdn: str
    ) -> EnrollmentOutcome:
        outcomes: dict[KeyUsage, RequestOutcome] = {}
        pems: dict[KeyUsage, str] = {}
        request_keys = self._request_keys(tp, keys.key_type.usages)
        for usage, _, csr in self._build_requests(tp, request_keys, challenge_password, fqdn):
            record = new_request(tp, keys, usage, csr, RequestState.AWAITING_IMPORT, self._clock.now())
            self._save(record)
            pems[usage] = csr_to_pem(csr)
            outcomes[usage] = request_outcome(record)
            _log.info(
                "%s: certificate enrollment for trustpoint %s: %s request produced for cut-and-paste, "
                "Fingerprint: %s",
                _INFO,
                tp.name,
                usage.display,
                format_fingerprint(record.fingerprint, group=8),
            )
        return summarize(tp, outcomes, pems)

    def _run_poll(self, key: PollKey) -> None:
        """A poller's job for one pending request: prepare on the writer, ask the CA, record on the writer."""
        name = key[0]
        prepared = self._writer.run(lambda: self._prepare_poll(key))
        if prepared is None:
            return
        tp, record, private_key, ca_certs, generation = prepared
        try:
            exchange = self._engine.exchange_poll(tp, record, private_key, ca_certs)
            self._writer.run(lambda: self._record_poll(tp, exchange, ca_certs, generation))
        finally:
            self._release(name, (record.key_usage,))

    def _prepare_poll(
        self, key: PollKey
    ) -> tuple[TrustpointConfig, EnrollmentRequest, rsa.RSAPrivateKey, CaCertificates, int] | None:
        """On the state writer: whether (and how) to poll; None when there is nothing to do now."""
        name, usage = key
        with self._lock:
            tp = self._configs.get(name)
            if tp is None or self._closed:
                return None
            if key in self._busy:
                # An enrollment is talking to the CA right now; it polls this
                # request itself or schedules the next poll.
                return None
        if self._scheduler.is_scheduled(key):
            return None  # rescheduled meanwhile (an enrollment polled already)
        record = self._files.load(name).get(usage)
        if record is None or record.state is not RequestState.PENDING:
            return None
        ca_certs = installed_ca_certificates(self._certstore, name)
        if ca_certs is None:
            self._engine.finish(tp, record, RequestState.FAILED, "the CA certificate was cleared while pending")
            return None
        key_or_outcome = self._engine.poll_key(tp, record)
        if isinstance(key_or_outcome, RequestOutcome):
            return None
        with self._lock:
            if key in self._busy:
                return None
            self._busy.add(key)
            generation = self._generation.get(name, 0)
        return tp, record, key_or_outcome, ca_certs, generation

    def _record_poll(
        self, tp: TrustpointConfig, exchange: Exchange, ca_certs: CaCertificates, generation: int
    ) -> None:
        """On the state writer: record a poll's answer if the request is still the one polled."""
        current = self._files.load(tp.name).get(exchange.record.key_usage)
        if (
            self._overtaken(tp.name, generation)
            or current is None
            or current.state is not RequestState.PENDING
            or current.transaction_id != exchange.record.transaction_id
        ):
            return
        try:
            self._engine.record_poll(tp, exchange, ca_certs)
        except Exception as exc:  # noqa: BLE001 - keep the request alive: retry at the next period
            _log.exception("poll of trustpoint %s (%s) failed unexpectedly", tp.name, exchange.record.key_usage.value)
            if exchange.record.polls >= tp.retry_count:
                self._engine.finish(tp, exchange.record, RequestState.FAILED, f"polling failed: {type(exc).__name__}")
            else:
                self._scheduler.schedule((tp.name, exchange.record.key_usage), tp.retry_period * self._unit)

    def _unschedule(self, names: Iterable[str]) -> None:
        self._scheduler.cancel_many((name, usage) for name in names for usage in KeyUsage)

    # ------------------------------------------------------------------ helpers

    def _release(self, name: str, usages: Collection[KeyUsage]) -> None:
        with self._lock:
            self._busy -= {(name, usage) for usage in usages}

    def _is_busy(self, name: str) -> bool:
        with self._lock:
            return any(busy_name == name for busy_name, _ in self._busy)

    def _bump(self, name: str) -> None:
        """Whatever CA exchange of ``name`` is in flight now records nothing when it ends."""
        with self._lock:
            self._generation[name] = self._generation.get(name, 0) + 1

    def _overtaken(self, name: str, generation: int) -> bool:
        with self._lock:
            return self._generation.get(name, 0) != generation or name not in self._configs

    def _remember(self, tp: TrustpointConfig) -> None:
        """Use the configuration the caller passed for later polls of this trustpoint."""
        with self._lock:
            self._configs[tp.name] = tp

    def _notify(self, record: EnrollmentRequest) -> None:
        """Hand a final request to the listeners, on their own thread, in order (never on the writer)."""
        if not record.state.is_final:
            return
        with self._lock:
            listeners = list(self._listeners)

        def deliver() -> None:
            for listener in listeners:
                try:
                    listener(record)
                except Exception:  # noqa: BLE001 - a listener must not break enrollment
                    _log.exception("enrollment listener failed")

        # Announced once the request's record and certificate are durable (the writer step's end).
        when_durable(lambda: self._events.submit(deliver))

    def _require_ca(self, name: str) -> CaCertificates:
        ca_certs = installed_ca_certificates(self._certstore, name)
        if ca_certs is None:
            raise CaNotAuthenticatedError(f"CA not authenticated: run ca-authenticate {name} first")
        return ca_certs

    def _save(self, record: EnrollmentRequest) -> None:
        with self._lock:
            if self._closed:
                return  # a poll finishing after close(): the next Pki owns the files now
        self._files.save(record)

    def _forget_request(self, name: str, usage: KeyUsage) -> None:
        self._scheduler.cancel((name, usage))
        self._files.delete(name, usage)


def _request_fqdn(tp: TrustpointConfig, fqdn: str) -> str:
    """The FQDN a request's subject falls back to: none when the trustpoint names a subject."""
    return fqdn if tp.subject_name is None else ""
