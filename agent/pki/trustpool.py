"""The trustpool (IOS XR 5.2+ ``crypto ca trustpool``): CA certificates trusted without a trustpoint.

Bundles come as PEM (any number of ``CERTIFICATE`` blocks, text around them
ignored: certifi's ``cacert.pem``, a distribution's ``ca-certificates.crt``)
or as a PKCS#7 "certs-only" bundle (DER or PEM), inline or from an HTTP(S)
URL. Each certificate is added unless it is unreadable, not a CA, expired, not
yet valid, already in the pool (or twice in the bundle), or the pool is
full; the result says how many were added and why the others were skipped.

On disk: ``<data>/trustpool/pool.pem``, the whole pool in one file replaced
atomically on every change. The pool is kept in memory; readers never touch
the disk. The network is used without any lock (:func:`fetch_bundle`),
the file is written under a lock that only orders writers.

``cabundle url`` is refreshed in the background by :class:`BundleUpdater`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import PkiError
from agent.files import atomic_write, ensure_private_dir
from agent.pki.certificate import CertificateInfo, format_name
from agent.pki.crlfetch import MAX_BUNDLE_BYTES, fetch_url
from agent.pki.polling import PollScheduler

__all__ = [
    "BundleUpdater",
    "ImportResult",
    "InvalidBundleError",
    "SkipReason",
    "Skipped",
    "TrustPool",
    "fetch_bundle",
    "parse_bundle",
]

_log = logging.getLogger(__name__)

MAX_POOL = 2000
_POOL_FILE = "pool.pem"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----(.*?)-----END \1-----", re.DOTALL)
_CERT_LABELS = (b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE")
_PKCS7_LABELS = (b"PKCS7", b"PKCS #7 SIGNED DATA", b"CMS")


class InvalidBundleError(PkiError):
    """Data that holds no certificate at all."""

    error_tag = "invalid-value"
    error_app_tag = "invalid-ca-bundle"


class SkipReason(enum.Enum):
    """Why a certificate of a bundle did not enter the pool."""

    DUPLICATE = "duplicate"
    NOT_A_CA = "not-a-ca"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    UNREADABLE = "unreadable"
    POOL_FULL = "pool-full"


@dataclass(frozen=True)
class Skipped:
    """One certificate left out, and why (subject and fingerprint empty when unreadable)."""

    reason: SkipReason
    subject: str
    fingerprint: str  # SHA-256, upper-case hex
    detail: str


@dataclass(frozen=True)
class ImportResult:
    """``ca-trustpool-import``: what was added, what was skipped and why, the pool size after."""

    added: tuple[CertificateInfo, ...]
    skipped: tuple[Skipped, ...]
    total: int
    removed: int = 0  # by 'clean'
    counts: dict[SkipReason, int] = field(default_factory=dict, hash=False)


def parse_bundle(data: bytes | str) -> tuple[list[x509.Certificate], list[Skipped]]:
    """The certificates of a PEM or PKCS#7 bundle, and the blocks that could not be read.

    Raises InvalidBundleError if ``data`` is too large or holds neither
    readable certificates nor certificate blocks.
    """
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_BUNDLE_BYTES:
        raise InvalidBundleError(f"the bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    certs: list[x509.Certificate] = []
    unreadable: list[Skipped] = []
    if b"-----BEGIN" not in raw:
        try:
            certs.extend(_der_bundle(raw))
        except ValueError:
            raise InvalidBundleError("the data is neither PEM nor a DER certificate or PKCS#7 bundle") from None
        return certs, unreadable
    for index, match in enumerate(_PEM_BLOCK.finditer(raw), start=1):
        label, body = match.group(1), match.group(2)
        if label not in _CERT_LABELS and label not in _PKCS7_LABELS:
            continue
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
            certs.extend(_der_bundle(der) if label in _PKCS7_LABELS else [x509.load_der_x509_certificate(der)])
        except (binascii.Error, ValueError, UnsupportedAlgorithm) as exc:
            unreadable.append(Skipped(SkipReason.UNREADABLE, "", "", f"PEM block {index}: {exc}"))
    if not certs and not unreadable:
        raise InvalidBundleError("the data holds no certificate")
    return certs, unreadable


def _der_bundle(der: bytes) -> list[x509.Certificate]:
    try:
        return [x509.load_der_x509_certificate(der)]
    except ValueError:
        pass
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("not a certificate nor a PKCS#7 bundle") from None
    if not certs:
        raise ValueError("the PKCS#7 bundle holds no certificate")
    return certs


def fetch_bundle(url: str, timeout: float) -> bytes:
    """Download a CA bundle over HTTP(S). Raises FetchError."""
    return fetch_url(url, timeout, MAX_BUNDLE_BYTES)


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex().upper()


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return cert.version is x509.Version.v1 and cert.issuer == cert.subject  # a v1 root
    except ValueError:
        return False


class TrustPool:
    """The pool of trusted CA certificates. Thread-safe."""

    def __init__(self, directory: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        """Open (creating, 0700) the trustpool directory and read the pool.

        An unreadable pool file is logged and the pool starts empty. Raises OSError.
        """
        self._dir = ensure_private_dir(directory)
        self._clock = clock
        self._lock = threading.Lock()  # guards _certs; never held across I/O
        self._write_lock = threading.Lock()  # orders pool file writes only
        self._certs: dict[str, x509.Certificate] = {}
        path = self._dir / _POOL_FILE
        if path.exists():
            try:
                certs, bad = parse_bundle(path.read_bytes())
            except InvalidBundleError as exc:
                _log.warning("trustpool file %s is unreadable (%s): starting empty", path, exc.message)
                certs, bad = [], []
            if bad:
                _log.warning("trustpool file %s: %d unreadable blocks ignored", path, len(bad))
            self._certs = {_fingerprint(c): c for c in certs}

    def certificates(self) -> list[x509.Certificate]:
        """The pool, in the order certificates were added. Raises nothing."""
        with self._lock:
            return list(self._certs.values())

    def import_bundle(self, data: bytes | str, *, clean: bool = False) -> ImportResult:
        """Add the CA certificates of a bundle (after emptying the pool when ``clean``).

        Raises InvalidBundleError (nothing readable in ``data``), OSError.
        """
        certs, skipped = parse_bundle(data)
        now = self._clock.now()
        with self._lock:
            removed = len(self._certs) if clean else 0
            pool = {} if clean else dict(self._certs)
            added: list[CertificateInfo] = []
            for cert in certs:
                reason, detail = self._refusal(cert, pool, now)
                if reason is not None:
                    skipped.append(Skipped(reason, format_name(cert.subject), _fingerprint(cert), detail))
                    continue
                pool[_fingerprint(cert)] = cert
                added.append(CertificateInfo.from_x509(cert))
            self._certs = pool
            total = len(pool)
        self._save()
        counts: dict[SkipReason, int] = {}
        for item in skipped:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        _log.info(
            "%%SECURITY-CEPKI-6-INFO: trustpool import: %d CA certificates added, %d skipped%s; %d in the pool",
            len(added),
            len(skipped),
            f" ({', '.join(f'{n} {r.value}' for r, n in counts.items())})" if counts else "",
            total,
        )
        return ImportResult(tuple(added), tuple(skipped), total, removed, counts)

    def clear(self) -> int:
        """Empty the pool; how many certificates it held. Raises OSError."""
        with self._lock:
            count = len(self._certs)
            self._certs = {}
        self._save()
        _log.info("%%SECURITY-CEPKI-6-INFO: trustpool cleared (%d CA certificates removed)", count)
        return count

    @staticmethod
    def _refusal(
        cert: x509.Certificate, pool: dict[str, x509.Certificate], now: dt.datetime
    ) -> tuple[SkipReason | None, str]:
        if _fingerprint(cert) in pool:
            return SkipReason.DUPLICATE, "already in the trustpool"
        if not _is_ca(cert):
            return SkipReason.NOT_A_CA, "not a CA certificate (basicConstraints cA is not set)"
        if cert.not_valid_after_utc < now:
            return SkipReason.EXPIRED, f"expired {cert.not_valid_after_utc:%Y-%m-%d}"
        if cert.not_valid_before_utc > now:
            return SkipReason.NOT_YET_VALID, f"valid from {cert.not_valid_before_utc:%Y-%m-%d}"
        if len(pool) >= MAX_POOL:
            return SkipReason.POOL_FULL, f"the trustpool holds {MAX_POOL} certificates already"
        return None, ""

    def _save(self) -> None:
        with self._write_lock:
            with self._lock:
                certs = list(self._certs.values())
            data = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
            atomic_write(self._dir / _POOL_FILE, data)


@dataclass(frozen=True)
class BundleStatus:
    """The background ``cabundle url`` refresh, as the state shows it."""

    url: str | None
    last_refresh: dt.datetime | None = None
    last_error: str | None = None
    added: int = 0


class BundleUpdater:
    """Imports ``cabundle url`` at once when configured, then every ``interval`` seconds (retry sooner on failure)."""

    def __init__(
        self,
        pool: TrustPool,
        *,
        clock: Clock = SYSTEM_CLOCK,
        interval: float = 86400.0,
        retry: float = 900.0,
        timeout: float = 30.0,
        fetch: Callable[[str, float], bytes] = fetch_bundle,
    ) -> None:
        """Raises ValueError for non-positive durations."""
        if interval <= 0 or retry <= 0 or timeout <= 0:
            raise ValueError("interval, retry and timeout must be positive")
        self._pool = pool
        self._clock = clock
        self._interval = float(interval)
        self._retry = min(float(retry), float(interval))
        self._timeout = float(timeout)
        self._fetch = fetch
        self._lock = threading.Lock()
        self._status = BundleStatus(None)
        self._scheduler: PollScheduler[str] = PollScheduler(self._run, clock=clock, name="pki-cabundle-refresh")

    def configure(self, url: str | None) -> None:
        """Use ``url`` from now on (None: stop refreshing); a new URL is fetched at once. Raises nothing."""
        with self._lock:
            if self._status.url == url:
                return
            self._status = BundleStatus(url)
        self._scheduler.cancel("bundle")
        if url is not None:
            self._scheduler.schedule("bundle", 0.0)

    def status(self) -> BundleStatus:
        """The URL and the outcome of the last refresh. Raises nothing."""
        with self._lock:
            return self._status

    def close(self, timeout: float = 5.0) -> None:
        """Stop refreshing. Raises nothing."""
        self._scheduler.close(timeout)

    def _run(self, key: str) -> None:
        with self._lock:
            url = self._status.url
        if url is None:
            return
        try:
            result = self._pool.import_bundle(self._fetch(url, self._timeout))
        except PkiError as exc:
            self._finish(url, BundleStatus(url, self._status.last_refresh, exc.message, 0), self._retry)
            _log.warning("cabundle url %s: refresh failed: %s", url, exc.message)
        except Exception as exc:  # noqa: BLE001 - the refresh thread must survive anything
            _log.exception("cabundle url %s: refresh failed unexpectedly", url)
            self._finish(url, BundleStatus(url, self._status.last_refresh, type(exc).__name__, 0), self._retry)
        else:
            self._finish(url, BundleStatus(url, self._clock.now(), None, len(result.added)), self._interval)

    def _finish(self, url: str, status: BundleStatus, delay: float) -> None:
        with self._lock:
            if self._status.url != url:
                return  # reconfigured meanwhile: the new URL has its own schedule
            self._status = status
        self._scheduler.schedule("bundle", delay)
