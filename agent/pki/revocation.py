"""CRLs: fetched from their sources, verified, cached on disk per issuer, refreshed in the background.

One record per issuing CA (the CA's name *and* key: ``issuer_key``), in
``<data>/crls/<issuer_key>.json``: the CA certificate, the CRL (DER, base64),
where it came from, the sources known for that CA, the last fetch and the
last error. A CRL is only stored after it was checked against the CA that
issued it (:func:`check_crl`: issuer name, signature with the CA's key, the
CA's cRLSign usage, not older than the CRL it replaces), so everything in the
cache may be handed to path validation as is.

A cached CRL is used until its ``nextUpdate``; a background job
(:class:`~agent.pki.polling.PollScheduler`, one fetch per CA at a time) fetches it again shortly
before then, and retries a failed fetch every ``retry_seconds``; until that
retry, a verification gets the failure again at once instead of waiting for
the same sources (``ca-crl-request`` always fetches). One fetch tries the
sources in order, those on servers that failed lately last, each for at most
``timeout`` and all of them for at most ``fetch_limit``. No lock is
held across a fetch: the record is read under the lock, the network is used
without it, and the result is stored under it. A second lock orders only the
file writes, so readers (state, verification) never wait for the disk.

Deciding whether a *peer* certificate is revoked is pyhanko-certvalidator's
job (:mod:`agent.pki.verify`); :meth:`CrlManager.revoked_entry` only looks a
serial up in a verified CRL, to mark the router's own certificates.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import PkiError
from agent.files import atomic_write, ensure_private_dir
from agent.pki.certificate import certificate_to_pem, format_name, format_router_date, load_certificate
from agent.pki.crlfetch import FetchError, ServerFailedError, fetch_crl, is_supported_crl_url, server_of
from agent.pki.polling import PollScheduler

__all__ = [
    "CrlError",
    "CrlInvalidError",
    "CrlListener",
    "CrlManager",
    "CrlRecord",
    "CrlUnavailableError",
    "NoCrlSourceError",
    "RevokedEntry",
    "check_crl",
    "issuer_key",
]

_log = logging.getLogger(__name__)

_RECORD_FORMAT = "ca-agent-crl/1"
MAX_SOURCES = 8
REFRESH_WORKERS = 4  # background CRL fetches at once, of different CAs
NO_NEXT_UPDATE_VALIDITY = dt.timedelta(hours=1)
"""How long a CRL without nextUpdate is used before it is fetched again."""
MAX_REFRESH_MARGIN = dt.timedelta(hours=1)

CrlFetcher = Callable[[str, str, float], bytes]
"""``fetch(url, default_dn, timeout) -> DER``; raises FetchError."""

_Server = tuple[str, str, int]  # (scheme, host, port): crlfetch.server_of
_MAX_FAILED_SERVERS = 1024  # servers remembered as failed (the oldest half is forgotten beyond)

CrlListener = Callable[
    [x509.Certificate, "x509.CertificateRevocationList | None", x509.CertificateRevocationList], None
]
"""``listener(ca, previous_crl, new_crl)`` after a fetched CRL replaced the cached one (no lock held)."""


class CrlError(PkiError):
    """Root of the CRL errors."""

    error_app_tag = "crl-error"


class CrlInvalidError(CrlError):
    """A fetched CRL that is refused: unreadable, another issuer, bad signature, older than the cached one."""

    error_tag = "operation-failed"
    error_app_tag = "crl-invalid"


class CrlUnavailableError(CrlError):
    """No source gave a valid CRL; the message lists what each source did."""

    error_tag = "operation-failed"
    error_app_tag = "crl-unreachable"


class NoCrlSourceError(CrlError):
    """The CA has no known CRL location (no query url, no CRL distribution point)."""

    error_tag = "operation-failed"
    error_app_tag = "no-crl-source"


@dataclass(frozen=True)
class RevokedEntry:
    """One certificate listed in a CRL."""

    serial: int
    date: dt.datetime
    reason: str | None  # RFC 5280 name (keyCompromise...), None without a reasonCode


@dataclass(frozen=True)
class CrlRecord:
    """What the agent knows about one CA's CRL (``show crypto ca crls``)."""

    issuer_key: str
    issuer: str  # display form of the CA's subject
    issuer_pem: str
    sources: tuple[str, ...] = ()
    source: str | None = None
    der: bytes | None = None
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    crl_number: int | None = None
    revoked_count: int = 0
    last_fetch: dt.datetime | None = None
    last_attempt: dt.datetime | None = None
    last_error: str | None = None

    def expires(self) -> dt.datetime | None:
        """Until when the CRL is used without fetching again (None: there is no CRL)."""
        if self.der is None:
            return None
        if self.next_update is not None:
            return self.next_update
        base = self.last_fetch or self.this_update
        return None if base is None else base + NO_NEXT_UPDATE_VALIDITY

    def is_fresh(self, now: dt.datetime) -> bool:
        """True if there is a CRL and it is not past its nextUpdate."""
        until = self.expires()
        return until is not None and now < until

    def to_json(self) -> bytes:
        """The persisted form. Raises nothing."""
        body = {
            "format": _RECORD_FORMAT,
            "issuer_key": self.issuer_key,
            "issuer": self.issuer,
            "issuer_pem": self.issuer_pem,
            "sources": list(self.sources),
            "source": self.source,
            "crl": None if self.der is None else base64.b64encode(self.der).decode("ascii"),
            "last_fetch": _iso(self.last_fetch),
            "last_attempt": _iso(self.last_attempt),
            "last_error": self.last_error,
        }
        return json.dumps(body, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> tuple[CrlRecord, x509.CertificateRevocationList | None]:
        """Read a persisted record back (the CRL's fields are taken from the CRL itself).

        Raises ValueError if the data is not a CRL record.
        """
        try:
            body = json.loads(data)
            if body.get("format") != _RECORD_FORMAT:
                raise ValueError("not a CRL record")
            der = None if body.get("crl") is None else base64.b64decode(body["crl"], validate=True)
            crl = None if der is None else x509.load_der_x509_crl(der)
            record = cls(
                issuer_key=str(body["issuer_key"]),
                issuer=str(body["issuer"]),
                issuer_pem=str(body["issuer_pem"]),
                sources=tuple(str(s) for s in body.get("sources") or ()),
                source=None if body.get("source") is None else str(body["source"]),
                last_fetch=_opt_time(body.get("last_fetch")),
                last_attempt=_opt_time(body.get("last_attempt")),
                last_error=None if body.get("last_error") is None else str(body["last_error"]),
            )
        except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise ValueError(f"malformed CRL record ({type(exc).__name__})") from None
        return (record.with_crl(der, crl) if crl is not None and der is not None else record), crl

    def with_crl(self, der: bytes, crl: x509.CertificateRevocationList) -> CrlRecord:
        """A copy describing ``crl``. Raises nothing."""
        return replace(
            self,
            der=der,
            this_update=crl.last_update_utc,
            next_update=crl.next_update_utc,
            crl_number=_crl_number(crl),
            revoked_count=len(crl),
        )


def issuer_key(ca: x509.Certificate) -> str:
    """The cache key of a CA: a hash of its subject and public key (a new key is a new issuer). Raises nothing."""
    spki = ca.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(ca.subject.public_bytes() + b"\x00" + spki).hexdigest()[:32]


def check_crl(
    der: bytes, ca: x509.Certificate, current: x509.CertificateRevocationList | None = None
) -> x509.CertificateRevocationList:
    """Parse ``der`` and check it may be used as ``ca``'s CRL.

    The CRL must be issued by ``ca`` (issuer name), its signature must verify
    with ``ca``'s key, ``ca`` must be allowed to sign CRLs (cRLSign, when it
    has a KeyUsage), and it must not be older than ``current`` (CRL number,
    else thisUpdate): an old CRL replayed from a cache or mirror is refused.
    Raises CrlInvalidError saying which check failed.
    """
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError:
        raise CrlInvalidError("the data is not a DER X.509 CRL") from None
    if crl.issuer != ca.subject:
        raise CrlInvalidError(
            f"the CRL is issued by {format_name(crl.issuer)}, not by the CA {format_name(ca.subject)}"
        )
    try:
        usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.crl_sign:
        raise CrlInvalidError(f"the CA {format_name(ca.subject)} may not sign CRLs (no cRLSign key usage)")
    try:
        valid = crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise CrlInvalidError(
            f"the CRL's signature does not verify with the key of the CA {format_name(ca.subject)}"
        )
    if current is not None:
        new_number, old_number = _crl_number(crl), _crl_number(current)
        if new_number is not None and old_number is not None:
            if new_number < old_number:
                raise CrlInvalidError(f"the CRL (number {new_number}) is older than the cached one ({old_number})")
        elif crl.last_update_utc < current.last_update_utc:
            raise CrlInvalidError("the CRL is older than the cached one (thisUpdate)")
    return crl


class CrlManager:
    """The CRL cache of the agent, its fetching and its background refresh. Thread-safe."""

    def __init__(
        self,
        directory: Path,
        *,
        clock: Clock = SYSTEM_CLOCK,
        timeout: float = 10.0,
        fetch_limit: float | None = None,
        retry_seconds: float = 300.0,
        fetcher: CrlFetcher = fetch_crl,
    ) -> None:
        """Open (creating, 0700) the cache directory and schedule the refresh of every cached CRL.

        ``timeout`` bounds one source, ``fetch_limit`` (default: twice
        ``timeout``) one fetch, all its sources together. Unreadable record
        files are logged and ignored. Raises OSError, ValueError for
        non-positive durations.
        """
        if timeout <= 0 or retry_seconds <= 0 or (fetch_limit is not None and fetch_limit <= 0):
            raise ValueError("timeout, fetch_limit and retry_seconds must be positive")
        self._dir = ensure_private_dir(directory)
        self._clock = clock
        self._timeout = float(timeout)
        # Up to MAX_SOURCES dead servers, each costing the timeout, kept a verification waiting 80 s: longer than
        # a NETCONF client waits for its reply (ncclient: 30 s by default), so the answer was lost.
        self._fetch_limit = float(fetch_limit) if fetch_limit is not None else 2 * self._timeout
        # Servers that failed (monotonic time of the failure), any CA's fetch: their URLs are tried last until
        # retry_seconds have passed, so a fetch's time goes to servers that may answer first.
        self._failed_servers: dict[_Server, float] = {}
        self._retry = float(retry_seconds)
        self._fetcher = fetcher
        self._lock = threading.Lock()  # guards the three dicts; never held across I/O
        self._write_lock = threading.Lock()  # orders file writes only; readers never take it
        self._records: dict[str, CrlRecord] = {}
        self._crls: dict[str, x509.CertificateRevocationList] = {}
        # A CA whose sources never answer costs up to MAX_SOURCES timeouts per attempt, every retry: on one
        # thread it delayed every other CA's refresh by that much, each. One job per CA at a time.
        self._scheduler: PollScheduler[str] = PollScheduler(
            self._refresh, clock=clock, name="pki-crl-refresh", workers=REFRESH_WORKERS, group=lambda key: key,
            per_group=1,
        )
        self._listeners: list[CrlListener] = []
        for path in sorted(self._dir.glob("*.json")):
            try:
                record, crl = CrlRecord.from_json(path.read_bytes())
            except (OSError, ValueError) as exc:
                _log.warning("ignoring unreadable CRL cache file %s: %s", path.name, exc)
                continue
            self._records[record.issuer_key] = record
            if crl is not None:
                self._crls[record.issuer_key] = crl
            self._schedule_refresh(record)

    def add_listener(self, listener: CrlListener) -> None:
        """Call ``listener(ca, previous, new)`` after every fetched CRL is stored. Raises nothing."""
        self._listeners.append(listener)

    # ------------------------------------------------------------------ reading (memory only)

    def record(self, ca: x509.Certificate) -> CrlRecord | None:
        """What is known of ``ca``'s CRL (None: nothing yet). No I/O. Raises nothing."""
        with self._lock:
            return self._records.get(issuer_key(ca))

    def revoked_entry(self, ca: x509.Certificate, serial: int) -> RevokedEntry | None:
        """``serial``'s entry in ``ca``'s cached (verified) CRL, None if not listed or no CRL. No I/O. Raises nothing."""
        with self._lock:
            crl = self._crls.get(issuer_key(ca))
        if crl is None:
            return None
        entry = crl.get_revoked_certificate_by_serial_number(serial)
        if entry is None:
            return None
        return RevokedEntry(serial, entry.revocation_date_utc, _reason(entry))

    # ------------------------------------------------------------------ fetching

    def obtain(self, ca: x509.Certificate, sources: Sequence[str]) -> CrlRecord:
        """``ca``'s CRL: the cached one while it is fresh, else fetched now (see :meth:`fetch`).

        A fetch that failed is not tried again here until its background retry
        is due (``retry_seconds`` after it), unless ``sources`` names a source
        it did not try: the failure is raised again at once. Unreachable CDPs
        are common, and each source costs up to the timeout: every
        verification against such a CA waited 10 s per source for the same
        answer. ``fetch`` (``ca-crl-request``) always tries.
        Raises NoCrlSourceError, CrlUnavailableError.
        """
        current = self.record(ca)
        now = self._clock.now()
        if current is not None and current.is_fresh(now):
            self._remember_sources(ca, current, sources)
            return current
        if current is not None and self._failed_recently(current, sources, now):
            retry_at = self._retry_at(current)
            assert current.last_attempt is not None and retry_at is not None
            raise CrlUnavailableError(
                f"the CRL of {current.issuer} could not be obtained at {format_router_date(current.last_attempt)}: "
                f"{current.last_error} (tried again in the background at {format_router_date(retry_at)}, "
                "or now by ca-crl-request)"
            )
        return self.fetch(ca, sources)

    def fetch(self, ca: x509.Certificate, sources: Sequence[str]) -> CrlRecord:
        """Fetch ``ca``'s CRL now from ``sources`` then the sources known for it, first valid one wins.

        The CRL is checked (:func:`check_crl`) before it replaces the cached
        one; the record keeps the outcome (last fetch or last error) either way.
        Raises NoCrlSourceError (nowhere to look), CrlUnavailableError (every
        source failed or gave an invalid CRL; the message says what each did).
        """
        key = issuer_key(ca)
        with self._lock:
            current = self._records.get(key)
            current_crl = self._crls.get(key)
        base = current or CrlRecord(key, format_name(ca.subject), certificate_to_pem(ca))
        urls = _merge_sources(sources, base.sources)
        if not urls:
            raise NoCrlSourceError(
                f"no CRL location is known for {base.issuer}: configure 'query url' on its trustpoint, "
                "or verify a certificate that carries a CRL distribution point"
            )
        default_dn = ca.subject.rfc4514_string()
        failures: list[str] = []
        invalid_only = True
        # A server that failed (unreachable, no answer in time) is not asked again for another URL in this
        # fetch: the seed's query url (ldap://host) and the CDPs it publishes (ldap://host/CN=...) are often one
        # server, and each ask of a dead one costs the whole timeout.
        failed_servers: dict[_Server, str] = {}
        give_up_at = time.monotonic() + self._fetch_limit
        for url in self._answering_first(urls):
            server = server_of(url)
            if server is not None and server in failed_servers:
                failures.append(f"{url}: not tried ({failed_servers[server]} failed on the same server)")
                invalid_only = False
                continue
            left = give_up_at - time.monotonic()
            if left <= 0:
                failures.append(f"{url}: not tried (this fetch's {self._fetch_limit:g} s were spent)")
                invalid_only = False
                continue
            try:
                der = self._fetcher(url, default_dn, min(self._timeout, left))
                crl = check_crl(der, ca, current_crl)
            except FetchError as exc:
                failures.append(exc.message)
                invalid_only = False
                if isinstance(exc, ServerFailedError) and server is not None:
                    failed_servers[server] = url
                    self._server_failed(server)
                continue
            except CrlInvalidError as exc:
                failures.append(f"{url}: {exc.message}")
                continue
            if server is not None:
                with self._lock:
                    self._failed_servers.pop(server, None)
            now = self._clock.now()
            record = replace(base, sources=urls, source=url, last_fetch=now, last_attempt=now, last_error=None)
            record = record.with_crl(der, crl)
            self._store(record, crl)
            _log.info(
                "%%SECURITY-CEPKI-6-INFO: CRL of %s fetched from %s: %d revoked, next update %s",
                record.issuer,
                url,
                record.revoked_count,
                format_router_date(record.next_update) if record.next_update else "none",
            )
            for listener in self._listeners:
                try:
                    listener(ca, current_crl, crl)
                except Exception:  # noqa: BLE001 - a consumer's failure must not fail the fetch
                    _log.exception("CRL listener failed")
            return record
        message = "; ".join(failures)
        record = replace(base, sources=urls, last_attempt=self._clock.now(), last_error=message)
        self._store(record, current_crl)
        _log.warning("%%SECURITY-CEPKI-3-CRL_FETCH_FAIL: CRL of %s could not be obtained: %s", record.issuer, message)
        error = CrlInvalidError if invalid_only else CrlUnavailableError
        raise error(f"the CRL of {record.issuer} could not be obtained: {message}")

    def _answering_first(self, urls: Sequence[str]) -> list[str]:
        """``urls`` with those of servers that failed in the last ``retry_seconds`` moved last (order kept)."""
        since = time.monotonic() - self._retry
        with self._lock:
            failed = {server for server, when in self._failed_servers.items() if when > since}
        return sorted(urls, key=lambda url: server_of(url) in failed)

    def _server_failed(self, server: _Server) -> None:
        now = time.monotonic()
        with self._lock:
            self._failed_servers[server] = now
            if len(self._failed_servers) > _MAX_FAILED_SERVERS:  # forget the oldest half
                keep = sorted(self._failed_servers.items(), key=lambda item: item[1])[_MAX_FAILED_SERVERS // 2:]
                self._failed_servers = dict(keep)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the background refresh (waits at most ``timeout`` s for a fetch in flight). Raises nothing."""
        if not self._scheduler.close(timeout):
            _log.warning("the CRL refresh thread did not stop within %g s", timeout)

    def refresh_due(self) -> dict[str, float]:
        """Seconds until each CA's CRL is fetched again in the background, by issuer key. Raises nothing."""
        return self._scheduler.scheduled()

    # ------------------------------------------------------------------ internals

    def _retry_at(self, record: CrlRecord) -> dt.datetime | None:
        """When a failed fetch is tried again: ``retry_seconds`` after it, restart or not (None: it did not fail)."""
        if record.last_error is None or record.last_attempt is None:
            return None
        return record.last_attempt + dt.timedelta(seconds=self._retry)

    def _failed_recently(self, record: CrlRecord, sources: Sequence[str], now: dt.datetime) -> bool:
        """The last fetch failed, its retry is not due yet, and ``sources`` adds nothing it did not try."""
        retry_at = self._retry_at(record)
        if retry_at is None or record.last_attempt is None:
            return False
        if not record.last_attempt <= now < retry_at:
            return False  # due (or the clock went back): try again
        return set(_merge_sources(sources, ())) <= set(record.sources)

    def _remember_sources(self, ca: x509.Certificate, record: CrlRecord, sources: Sequence[str]) -> None:
        """A verification named sources the record does not list yet: keep them for later refreshes."""
        merged = _merge_sources(record.sources, sources)
        if merged != record.sources:
            with self._lock:
                crl = self._crls.get(record.issuer_key)
            self._store(replace(record, sources=merged), crl)

    def _store(self, record: CrlRecord, crl: x509.CertificateRevocationList | None) -> None:
        with self._lock:
            self._records[record.issuer_key] = record
            if crl is not None:
                self._crls[record.issuer_key] = crl
        with self._write_lock:
            with self._lock:
                latest = self._records.get(record.issuer_key)
            if latest is not None:  # write what is current now, whichever writer gets here last
                atomic_write(self._dir / f"{record.issuer_key}.json", latest.to_json())
        self._schedule_refresh(record)

    def _schedule_refresh(self, record: CrlRecord) -> None:
        if not record.sources:
            return
        now = self._clock.now()
        until = record.expires()
        if record.last_error is not None or until is None or until <= now:
            delay = self._retry
            retry_at = self._retry_at(record)
            if record.last_attempt is None:
                delay = 0.0
            elif retry_at is not None:  # as obtain() says
                delay = min(max((retry_at - now).total_seconds(), 0.0), self._retry)
        else:
            start = record.this_update or record.last_fetch or now
            margin = min(MAX_REFRESH_MARGIN, max((until - start) / 10, dt.timedelta(0)))
            delay = max((until - margin - now).total_seconds(), 1.0)
        self._scheduler.schedule(record.issuer_key, delay)

    def _refresh(self, key: str) -> None:
        """The background job: fetch one CA's CRL again (outside every lock)."""
        with self._lock:
            record = self._records.get(key)
        if record is None:
            return
        try:
            ca = load_certificate(record.issuer_pem)
            self.fetch(ca, record.sources)
        except CrlError as exc:
            _log.info("background CRL refresh for %s failed: %s", record.issuer, exc.message)
        except Exception:  # noqa: BLE001 - the refresh thread must survive anything
            _log.exception("background CRL refresh for %s failed unexpectedly", record.issuer)
            self._scheduler.schedule(key, self._retry)


def _merge_sources(first: Sequence[str], then: Sequence[str]) -> tuple[str, ...]:
    merged: list[str] = []
    for url in (*first, *then):
        url = url.strip()
        if url and is_supported_crl_url(url) and url not in merged:
            merged.append(url)
    return tuple(merged[:MAX_SOURCES])


def _crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except (x509.ExtensionNotFound, ValueError):
        return None


def _reason(entry: x509.RevokedCertificate) -> str | None:
    try:
        return str(entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value)
    except (x509.ExtensionNotFound, ValueError):
        return None


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _opt_time(text: object) -> dt.datetime | None:
    if text is None:
        return None
    when = dt.datetime.fromisoformat(str(text))
    if when.tzinfo is None:
        raise ValueError("naive time in CRL record")
    return when
