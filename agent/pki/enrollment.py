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

A PENDING SCEP request is polled (CertPoll) by one background thread every
``retry_period`` minutes (x ``retry_unit_seconds``) up to ``retry_count``
times; the requests survive the client's disconnect, and a new :class:`Pki`
over the same directories resumes them when :meth:`Pki.configure` is called.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.clock import SYSTEM_CLOCK, Clock
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
from agent.pki.csr import build_csr, csr_to_pem
from agent.pki.keystore import DEFAULT_LABEL, KeyPairInfo, KeyStore, KeyStoreError, KeyUsage
from agent.pki.polling import (
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
from agent.pki.trustpoint import (
    AuthenticationResult,
    CaAlreadyAuthenticatedError,
    CaCertificateRequiredError,
    CertificateState,
    CertificateStatus,
    EnrollmentMethod,
    EnrollmentOutcome,
    EnrollmentRequest,
    FingerprintMismatchError,
    ImportedCertificate,
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

__all__ = ["EnrollmentListener", "Pki"]

_log = logging.getLogger(__name__)

_INFO = "%SECURITY-CEPKI-6-INFO"

EnrollmentListener = Callable[[EnrollmentRequest], None]
"""Called with a request that reached a final state (issued, rejected, timed out, failed)."""


class Pki:
    """Authentication, enrollment, import, clearing and state of the trustpoints.

    Thread-safe. Each trustpoint has its own lock, held for the whole of an
    operation on it (including the SCEP exchange, bounded by ``http_timeout``);
    :meth:`state` takes no such lock, so reading state never waits for a CA.
    """

    def __init__(
        self,
        data_dir: Path,
        keystore: KeyStore,
        certstore: CertificateStore,
        fqdn: Callable[[], str],
        clock: Clock = SYSTEM_CLOCK,
        retry_unit_seconds: float = 60.0,
        http_timeout: float = 30.0,
    ) -> None:
        """Open the enrollment backend over ``certstore``'s trustpoint directories.

        ``data_dir`` is the agent's data directory; the certificate store must
        live in ``data_dir/trustpoints`` (enrollment state shares its
        per-trustpoint directories). ``fqdn`` gives the current
        ``hostname.domain`` for default subjects. ``retry_unit_seconds`` is
        the length of a retry-period "minute" (tests shorten it).
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
        self._fqdn = fqdn
        self._clock = clock
        self._unit = float(retry_unit_seconds)
        self._http_timeout = float(http_timeout)
        self._lock = threading.Lock()
        self._tp_locks: dict[str, threading.RLock] = {}
        self._configs: dict[str, TrustpointConfig] = {}
        self._listeners: list[EnrollmentListener] = []
        self._closed = False
        self._scheduler: PollScheduler[PollKey] = PollScheduler(
            self._run_poll, clock=clock, name="pki-enrollment-poller"
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
        :meth:`trustpoint_removed`.
        Raises InvalidTrustpointNameError, OSError.
        """
        configs = {validate_trustpoint_name(tp.name): tp for tp in trustpoints}
        with self._lock:
            previous = self._configs
            forgotten = set(previous) - set(configs)
            self._configs = dict(configs)
        for name in forgotten:
            self._unschedule(name)
        for tp in configs.values():
            if previous.get(tp.name) == tp:
                continue  # unchanged: its pending requests are scheduled already
            with self._tp_lock(tp.name):
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

    def add_listener(self, listener: EnrollmentListener) -> None:
        """Call ``listener`` whenever a request reaches a final state.

        It runs in the thread that finished the request (the poller, or the
        caller of :meth:`enroll`) while the trustpoint is locked: it must be
        quick and must not call back into this object except :meth:`state`.
        Its exceptions are logged and ignored. Raises nothing.
        """
        with self._lock:
            self._listeners.append(listener)

    def trustpoint_removed(self, name: str) -> None:
        """A commit deleted trustpoint ``name``: stop its polling, remove its certificates and state.

        Raises InvalidTrustpointNameError, OSError.
        """
        validate_trustpoint_name(name)
        with self._tp_lock(name):
            with self._lock:
                self._configs.pop(name, None)
            self._unschedule(name)
            self._certstore.remove_trustpoint(name)
        _log.info("%s: trustpoint %s removed with its certificates", _INFO, name)

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

        SCEP trustpoints fetch it (GetCACaps, GetCACert: CA alone or CA and
        RA certificates) from the enrollment URL; terminal trustpoints take
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
            ca_certs = fetch_ca_certificates(tp, timeout=self._http_timeout, clock=self._clock)
        ca = ca_certs.ca
        info = CertificateInfo.from_x509(ca)
        ras = ra_certificates(ca_certs)
        with self._tp_lock(name):
            self._remember(tp)
            issuer_tp = check_ca_certificate(name, ca, trusted_cas(self._certstore, name), self._clock.now())
            if fingerprint is not None and not fingerprint_matches(ca, fingerprint):
                algorithm, actual = fingerprint_of_same_kind(info, fingerprint)
                raise FingerprintMismatchError(
                    f"fingerprint mismatch: the CA certificate's fingerprint is {actual} ({algorithm}); "
                    "nothing was installed"
                )
            installed = accept or fingerprint is not None
            shown = f"CA certificate of trustpoint {name}: {info.subject}, serial {info.serial_number}, " + (
                f"fingerprint {format_fingerprint(info.fingerprint_md5)}"
            )
            if not installed:
                return AuthenticationResult(
                    name, info, ras, False, f"{shown}; not installed: accept it or give its fingerprint"
                )
            current = self._certstore.ca(name)
            if current is not None and current != ca:
                raise CaAlreadyAuthenticatedError(
                    f"trustpoint {name} already trusts the CA certificate of "
                    f"{CertificateInfo.from_x509(current).subject}: clear it first "
                    f"(ca-clear-certificates {name})"
                )
            ra_list = [c for c in (ca_certs.ra_signing, ca_certs.ra_encryption) if c is not None]
            self._certstore.set_ca(name, ca, ra_list)
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

    def enroll(self, tp: TrustpointConfig, challenge_password: str | None = None) -> EnrollmentOutcome:
        """``crypto ca enroll``: request one certificate per key pair of the trustpoint's label.

        SCEP: each request's outcome comes back at once (issued and
        installed, pending and polled in the background, or rejected). While
        a request is pending, enrolling again polls it at once with the same
        transaction ID instead of sending a new request. Terminal: the PEM
        PKCS#10 requests are returned to be signed by the CA and imported.
        ``challenge_password`` goes into the requests only.

        Raises NoEnrollmentMethodError; CaNotAuthenticatedError;
        KeyNotFoundError (no keys under the label); InvalidSubjectNameError;
        InvalidChallengePasswordError; ScepUrlError; OSError. A CA that cannot
        be reached or refuses is not an exception: the outcome says FAILED.
        """
        name = validate_trustpoint_name(tp.name)
        method = tp.require_method()
        with self._tp_lock(name):
            self._remember(tp)
            ca_certs = self._require_ca(name)
            keys = self._keystore.get_rsa(tp.key_label)
            records = self._files.load(name)
            for usage, record in list(records.items()):  # requests for keys that no longer exist are moot
                if usage not in keys.key_type.usages or not same_key(record, keys):
                    self._forget_request(name, usage)
                    records.pop(usage)
            resume = method is EnrollmentMethod.URL and any(
                r.state is RequestState.PENDING for r in records.values()
            )
            if resume:
                outcomes = self._resume_enrollment(tp, records, keys, ca_certs, challenge_password)
                return summarize(tp, outcomes, {})
            for usage in records:
                self._forget_request(name, usage)
            if method is EnrollmentMethod.TERMINAL:
                return self._terminal_enroll(tp, keys, challenge_password)
            prepared = self._prepare(tp, keys.key_type.usages, challenge_password)
            return summarize(tp, self._engine.send(tp, keys, ca_certs, prepared), {})

    def cancel_enrollment(self, name: str) -> None:
        """Stop a pending (or awaiting-import) enrollment and forget its transaction.

        Raises InvalidTrustpointNameError, NoEnrollmentInProgressError, OSError.
        """
        validate_trustpoint_name(name)
        with self._tp_lock(name):
            active = [
                usage
                for usage, record in self._files.load(name).items()
                if record.state in (RequestState.PENDING, RequestState.AWAITING_IMPORT)
            ]
            if not active:
                raise NoEnrollmentInProgressError(f"no enrollment in progress for {name}")
            for usage in active:
                self._forget_request(name, usage)
        _log.info("%s: certificate enrollment for trustpoint %s cancelled", _INFO, name)

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
        with self._tp_lock(name):
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
        for tp_name in names:
            with self._tp_lock(tp_name):
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
        return cleared

    # ------------------------------------------------------------------ state

    def state(self, name: str) -> TrustpointState:
        """What the state tree shows under trustpoint ``name`` (empty if it has nothing yet).

        A router certificate is KEY_MISSING when the trustpoint's key label
        no longer holds the key pair it certifies (zeroized or replaced), and
        PENDING (without certificate data) while its request is pending at
        the CA or awaits import.
        Raises InvalidTrustpointNameError, CertificateStoreCorruptError.
        """
        validate_trustpoint_name(name)
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
                usable = keys is not None and keys.public_keys.get(usage) == info.public_key_der
                status = CertificateStatus.AVAILABLE if usable else CertificateStatus.KEY_MISSING
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

    def _prepare(
        self,
        tp: TrustpointConfig,
        usages: Sequence[KeyUsage],
        challenge_password: str | None,
    ) -> list[PreparedRequest]:
        """One CSR per key usage, all built before anything is sent (bad input fails first)."""
        prepared: list[PreparedRequest] = []
        for usage in usages:
            key = self._keystore.private_key(tp.key_label, usage)
            csr = build_csr(
                key,
                fqdn=self._fqdn() if tp.subject_name is None else "",
                subject_name=tp.subject_name,
                challenge_password=challenge_password,
                key_usage=usage,
            )
            prepared.append((usage, key, csr))
        return prepared

    def _resume_enrollment(
        self,
        tp: TrustpointConfig,
        records: dict[KeyUsage, EnrollmentRequest],
        keys: KeyPairInfo,
        ca_certs: CaCertificates,
        challenge_password: str | None,
    ) -> dict[KeyUsage, RequestOutcome]:
        """``enroll`` while a request is pending: poll pending ones now, report the others."""
        missing = [u for u in keys.key_type.usages if u not in records]
        prepared = self._prepare(tp, missing, challenge_password)
        outcomes: dict[KeyUsage, RequestOutcome] = {}
        for usage, record in records.items():
            if record.state is RequestState.PENDING:
                self._scheduler.cancel((tp.name, usage))
                outcomes[usage] = self._engine.poll(tp, record, ca_certs)
            else:
                outcomes[usage] = request_outcome(record)
        outcomes.update(self._engine.send(tp, keys, ca_certs, prepared))
        return {u: outcomes[u] for u in keys.key_type.usages if u in outcomes}

    def _terminal_enroll(
        self, tp: TrustpointConfig, keys: KeyPairInfo, challenge_password: str | None
    ) -> EnrollmentOutcome:
        outcomes: dict[KeyUsage, RequestOutcome] = {}
        pems: dict[KeyUsage, str] = {}
        for usage, _, csr in self._prepare(tp, keys.key_type.usages, challenge_password):
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
        """The poller's job for one pending request."""
        name, usage = key
        with self._tp_lock(name):
            with self._lock:
                tp = self._configs.get(name)
                closed = self._closed
            if tp is None or closed:
                return
            if self._scheduler.is_scheduled(key):
                return  # rescheduled while this run waited for the lock (enroll polled meanwhile)
            record = self._files.load(name).get(usage)
            if record is None or record.state is not RequestState.PENDING:
                return
            try:
                ca_certs = installed_ca_certificates(self._certstore, name)
                if ca_certs is None:
                    self._engine.finish(tp, record, RequestState.FAILED, "the CA certificate was cleared while pending")
                    return
                self._engine.poll(tp, record, ca_certs)
            except Exception as exc:  # noqa: BLE001 - keep the request alive: retry at the next period
                _log.exception("poll of trustpoint %s (%s) failed unexpectedly", name, usage.value)
                if record.polls + 1 >= tp.retry_count:
                    self._engine.finish(tp, record, RequestState.FAILED, f"polling failed: {type(exc).__name__}")
                else:
                    self._scheduler.schedule(key, tp.retry_period * self._unit)

    def _unschedule(self, name: str) -> None:
        for usage in KeyUsage:
            self._scheduler.cancel((name, usage))

    # ------------------------------------------------------------------ helpers

    def _tp_lock(self, name: str) -> threading.RLock:
        with self._lock:
            lock = self._tp_locks.get(name)
            if lock is None:
                lock = self._tp_locks[name] = threading.RLock()
            return lock

    def _remember(self, tp: TrustpointConfig) -> None:
        """Use the configuration the caller passed for later polls of this trustpoint."""
        with self._lock:
            self._configs[tp.name] = tp

    def _notify(self, record: EnrollmentRequest) -> None:
        if not record.state.is_final:
            return
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(record)
            except Exception:  # noqa: BLE001 - a listener must not break enrollment
                _log.exception("enrollment listener failed")

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
