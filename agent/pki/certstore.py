"""Certificates of each trustpoint: the CA's, its RAs', and the router's own.

On disk (``directory`` is ``<data>/trustpoints``, every directory 0700 and
every file 0600, each written atomically)::

    <directory>/<trustpoint>/ca.pem              the CA certificate
    <directory>/<trustpoint>/ra-<fp16>.pem       RA certificates (SCEP), if any
    <directory>/<trustpoint>/cert-general.pem    router certificate per key usage
    <directory>/<trustpoint>/cert-signature.pem
    <directory>/<trustpoint>/cert-encryption.pem

``ca.pem`` is the commit point of :meth:`CertificateStore.set_ca`: comment
lines before its PEM block (``# ra: <fp16>``) list the RA files that belong to
it, so a crash while the CA and RA files are replaced leaves either the old
or the new CA+RA set visible, never a mix. Other files in a trustpoint
directory (e.g. pending enrollment state) are left alone, except by
:meth:`CertificateStore.remove_trustpoint`.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import PkiError
from agent.files import atomic_write, ensure_private_dir, fsync_dir
from agent.pki.certificate import (
    InvalidCertificateError,
    format_name,
    format_router_date,
    load_certificate,
    load_certificates,
    verify_issued_by,
)
from agent.pki.keystore import LABEL_PATTERN, KeyPairInfo, KeyStore, KeyUsage

_CA_FILE = "ca.pem"
_RA_FILE = re.compile(r"ra-[0-9a-f]{16}\.pem")
_RA_LINE = re.compile(r"# ra: ([0-9a-f]{16})")
_REMOVED_PREFIX = ".removed-"

# Stored certificates are parsed once per content: authenticating a CA reads every other
# trustpoint's CA certificate (is the new CA issued by one of them?), and `show` reads them all.
_load_stored = functools.lru_cache(maxsize=2048)(load_certificate)


class CertificateStoreError(PkiError):
    """Root of the certificate store's errors."""

    error_app_tag = "certificate-store-error"


class InvalidTrustpointNameError(CertificateStoreError):
    """A trustpoint name that is not a safe, valid name."""

    error_tag = "invalid-value"
    error_app_tag = "invalid-trustpoint-name"


class CaNotAuthenticatedError(CertificateStoreError):
    """The trustpoint has no CA certificate yet (``crypto ca authenticate`` first)."""

    error_tag = "operation-failed"
    error_app_tag = "ca-not-authenticated"


class WrongIssuerError(CertificateStoreError):
    """The certificate was not issued by the trustpoint's CA."""

    error_tag = "invalid-value"
    error_app_tag = "wrong-issuer"


class KeyMismatchError(CertificateStoreError):
    """The certificate's public key is none of the key label's pairs."""

    error_tag = "invalid-value"
    error_app_tag = "key-mismatch"


class CertificateExpiredError(CertificateStoreError):
    """The certificate's validity ended."""

    error_tag = "invalid-value"
    error_app_tag = "certificate-expired"


class CertificateNotYetValidError(CertificateStoreError):
    """The certificate's validity has not started."""

    error_tag = "invalid-value"
    error_app_tag = "certificate-not-yet-valid"


class CertificateStoreCorruptError(CertificateStoreError):
    """A stored certificate file that cannot be read back."""

    error_tag = "operation-failed"
    error_app_tag = "certificate-store-corrupt"


def validate_trustpoint_name(name: object) -> str:
    """Return ``name`` if it is a valid trustpoint name (same rule as key labels).

    Raises InvalidTrustpointNameError otherwise.
    """
    if not isinstance(name, str) or not LABEL_PATTERN.fullmatch(name):
        raise InvalidTrustpointNameError(
            f"Invalid trustpoint name {name!r}: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _fp16(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()[:16]


def _cert_file(usage: KeyUsage) -> str:
    return f"cert-{usage.value}.pem"


def _same_key(cert: x509.Certificate, info: KeyPairInfo) -> KeyUsage | None:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for usage, der in info.public_keys.items():
        if der == spki:
            return usage
    return None


ChangeListener = Callable[[str], None]
"""Called with a trustpoint's name after its certificates changed."""


class CertificateStore:
    """Per-trustpoint certificate files under one directory.

    Readers take no lock and never wait for a write: every file is replaced
    by a rename, and ``ca.pem``, which lists its RA files, is written after
    them and before the stale ones go (a reader that finds a listed RA file
    gone reads ``ca.pem`` again). Writes hold no lock across their disk I/O
    either, and are not serialised here: in the agent they all run on the
    PKI state writer, one at a time; other callers make them one at a time.
    Change listeners (:meth:`add_listener`) run after the change is made.

    The CA certificate of each trustpoint (or that it has none) is kept in
    memory once read: a verification looks at every configured trustpoint's
    CA, and reading 10,000 ``ca.pem`` files that are not there took 80 ms
    each time. This store is the only writer of its files (one agent per
    data directory): each change of a trustpoint's CA forgets it, and a read
    that raced with a change is not kept (a generation count per trustpoint).
    """

    def __init__(self, directory: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        """Open (creating, mode 0700) the trustpoints directory.

        Leftovers of an interrupted :meth:`remove_trustpoint` are deleted.
        Raises OSError.
        """
        self._dir = ensure_private_dir(directory)
        self._clock = clock
        self._listeners_lock = threading.Lock()  # guards the listener list only
        self._listeners: list[ChangeListener] = []
        self._cas_lock = threading.Lock()  # guards the two dicts below; never held across I/O
        self._cas: dict[str, x509.Certificate | None] = {}
        self._ca_generation: dict[str, int] = {}
        for leftover in self._dir.iterdir():
            if leftover.name.startswith(_REMOVED_PREFIX) and leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)

    @property
    def directory(self) -> Path:
        """The trustpoints directory."""
        return self._dir

    def add_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(trustpoint)`` after every change of a trustpoint's certificates.

        It runs in the thread that made the change, once the change is made
        (the caller may still hold its own locks, e.g. the enrollment's
        per-trustpoint lock): it must only take note and return. Its
        exceptions are ignored. Raises nothing.
        """
        with self._listeners_lock:
            self._listeners.append(listener)

    def _changed(self, names: Iterable[str]) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for name in names:
            for listener in listeners:
                try:
                    listener(name)
                except Exception:  # noqa: BLE001 - a listener must not undo a durable change
                    pass

    def trustpoint_dir(self, tp: str, create: bool = True) -> Path:
        """The directory of trustpoint ``tp`` (created, mode 0700, unless ``create`` is False).

        Other parts of the agent keep per-trustpoint state (pending enrollment) here.
        Raises InvalidTrustpointNameError, OSError.
        """
        path = self._dir / validate_trustpoint_name(tp)
        if create and not path.is_dir():
            ensure_private_dir(path)
            fsync_dir(self._dir)  # the new directory entry is durable too
        return path

    def has_directory(self, tp: str) -> bool:
        """Whether ``tp`` has a directory: without one it has no certificate and no request.

        Raises InvalidTrustpointNameError.
        """
        # A string path: this runs for every trustpoint a <get> names, and pathlib's joins cost more than the stat.
        return os.path.isdir(os.path.join(self._dir, validate_trustpoint_name(tp)))

    def trustpoints(self) -> list[str]:
        """Names of the trustpoints that have a directory, sorted. Raises OSError."""
        with os.scandir(self._dir) as entries:  # the entry types come with the listing: no stat each
            return sorted(
                e.name for e in entries if e.is_dir(follow_symlinks=False) and LABEL_PATTERN.fullmatch(e.name)
            )

    # ------------------------------------------------------------ CA and RA

    def set_ca(self, tp: str, ca_cert: x509.Certificate, ra_certs: Iterable[x509.Certificate] = ()) -> None:
        """Install the CA certificate (and RA certificates) of ``tp``, replacing any.

        New RA files are written first, then ``ca.pem`` (the commit point,
        listing them), then stale RA files are removed.
        Raises InvalidTrustpointNameError, OSError.
        """
        ras = {_fp16(ra): ra for ra in ra_certs}  # duplicates collapse, order kept
        folder = self.trustpoint_dir(tp)
        for fp, ra in ras.items():
            atomic_write(folder / f"ra-{fp}.pem", _pem(ra))
        names = list(ras)
        header = "".join(f"# ra: {fp}\n" for fp in names).encode("ascii")
        try:
            atomic_write(folder / _CA_FILE, header + _pem(ca_cert))
        finally:  # written, or perhaps written (a failed fsync after the rename): read it again
            self._forget_cas([tp])
        self._remove_stale_ras(folder, set(names))
        self._changed([tp])

    def ca(self, tp: str) -> x509.Certificate | None:
        """The CA certificate of ``tp``, or None if not authenticated.

        Raises InvalidTrustpointNameError, CertificateStoreCorruptError.
        """
        with self._cas_lock:  # only valid names are kept: a name found needs no checking again
            if tp in self._cas:
                return self._cas[tp]
        name = validate_trustpoint_name(tp)
        with self._cas_lock:
            generation = self._ca_generation.get(name, 0)
        path = self._dir / name / _CA_FILE
        data = self._read(path)
        ca = None if data is None else self._parse(path, data)
        with self._cas_lock:
            if self._ca_generation.get(name, 0) == generation:  # no change since the read began
                self._cas[name] = ca
        return ca

    def _forget_cas(self, names: Iterable[str]) -> None:
        """The CA certificates of ``names`` changed (or may have): read them again next time."""
        with self._cas_lock:
            for name in names:
                self._cas.pop(name, None)
                self._ca_generation[name] = self._ca_generation.get(name, 0) + 1

    def ra(self, tp: str) -> list[x509.Certificate]:
        """The RA certificates installed with ``tp``'s CA certificate (maybe none).

        Raises InvalidTrustpointNameError, CertificateStoreCorruptError.
        """
        folder = self._dir / validate_trustpoint_name(tp)
        data = self._read(folder / _CA_FILE)
        unchanged = 0
        while data is not None:
            result: list[x509.Certificate] = []
            for fp in self._listed_ras(data):
                path = folder / f"ra-{fp}.pem"
                ra_data = self._read(path)
                if ra_data is None:
                    break
                result.append(self._parse(path, ra_data))
            else:
                return result
            # A listed RA file is gone: a new CA+RA set replaced this one meanwhile (its ca.pem is
            # in place before the old set's RA files go), or the store is damaged. The same ca.pem
            # read again does not prove damage: the set may have been replaced and put back in
            # between (a CA's RA files are written again before its ca.pem), so only a file missing
            # at three looks, with ca.pem the same each time, is.
            again = self._read(folder / _CA_FILE)
            if again == data:
                unchanged += 1
                if unchanged == 3:
                    raise CertificateStoreCorruptError(f"RA certificate file {path.name} of {tp} is missing")
            data = again
        return []

    # ------------------------------------------------------------ router certificates

    def set_certificate(self, tp: str, usage: KeyUsage, cert: x509.Certificate) -> None:
        """Install the router certificate of ``tp`` for ``usage``, replacing any.

        No checks; see :meth:`import_certificate` for the checked path.
        Raises InvalidTrustpointNameError, OSError.
        """
        atomic_write(self.trustpoint_dir(tp) / _cert_file(usage), _pem(cert))
        self._changed([tp])

    def remove_certificate(self, tp: str, usage: KeyUsage) -> bool:
        """Remove ``tp``'s router certificate for ``usage``; whether there was one.

        Raises InvalidTrustpointNameError, OSError.
        """
        removed = self._remove_certificate(tp, usage)
        if removed:
            self._changed([tp])
        return removed

    def _remove_certificate(self, tp: str, usage: KeyUsage) -> bool:
        folder = self._dir / validate_trustpoint_name(tp)
        path = folder / _cert_file(usage)
        if not path.is_file():
            return False
        path.unlink()
        fsync_dir(folder)
        return True

    def certificates(self, tp: str) -> dict[KeyUsage, x509.Certificate]:
        """``tp``'s router certificates by key usage (general, signature, encryption order).

        Raises InvalidTrustpointNameError, CertificateStoreCorruptError.
        """
        result: dict[KeyUsage, x509.Certificate] = {}
        folder = self._dir / validate_trustpoint_name(tp)
        for usage in KeyUsage:
            path = folder / _cert_file(usage)
            data = self._read(path)
            if data is not None:
                result[usage] = self._parse(path, data)
        return result

    def import_certificate(self, tp: str, cert_text: str | bytes, keystore: KeyStore, key_label: str) -> KeyUsage:
        """Cut-and-paste import of a router certificate (``crypto ca import TP certificate``).

        The certificate is installed, on the usage of the key pair it belongs
        to, only if it was issued by ``tp``'s CA (issuer name and signature),
        its public key is one of ``key_label``'s pairs, and it is valid now.
        For usage keys call this twice, in either order. If several
        certificates are pasted (e.g. with the chain), the one holding one of
        ``key_label``'s public keys is taken. Router certificates of the other
        key-pair type (left over from before a regenerate) are removed.

        Returns the key usage the certificate was installed for.
        Raises InvalidTrustpointNameError; InvalidCertificateError (not a
        certificate); CaNotAuthenticatedError (no CA certificate: authenticate
        first); WrongIssuerError (issued by another CA); KeyNotFoundError (no
        such key label); KeyMismatchError (public key matches none of the
        label's pairs); CertificateExpiredError / CertificateNotYetValidError
        (with the validity dates); OSError.
        """
        validate_trustpoint_name(tp)
        certs = load_certificates(cert_text)
        ca = self.ca(tp)
        if ca is None:
            raise CaNotAuthenticatedError(
                f"Trustpoint {tp} has no CA certificate: authenticate the CA first "
                f"(crypto ca authenticate {tp})"
            )
        info: KeyPairInfo | None = None
        if len(certs) == 1:
            cert = certs[0]
        else:
            info = keystore.get_rsa(key_label)
            matching = [c for c in certs if _same_key(c, info) is not None]
            if not matching:
                raise self._mismatch(key_label)
            if len(matching) > 1:
                raise InvalidCertificateError(
                    f"{len(matching)} of the pasted certificates hold {key_label}'s keys; give one at a time"
                )
            cert = matching[0]
        if not verify_issued_by(cert, ca):
            raise self._wrong_issuer(tp, cert, ca)
        if info is None:
            info = keystore.get_rsa(key_label)
        usage = _same_key(cert, info)
        if usage is None:
            raise self._mismatch(key_label)
        self._check_validity(cert)
        atomic_write(self.trustpoint_dir(tp) / _cert_file(usage), _pem(cert))
        for other in KeyUsage:
            if other not in info.key_type.usages:
                self._remove_certificate(tp, other)
        self._changed([tp])
        return usage

    # ------------------------------------------------------------ clearing

    def clear(self, tp: str | None = None) -> None:
        """Remove router, CA and RA certificates of ``tp``, or of every trustpoint.

        ``clear crypto ca certificates [name]``. Router certificates go first,
        so a crash never leaves a router certificate without its CA. The
        trustpoint directory and other state in it stay.
        Raises InvalidTrustpointNameError, OSError.
        """
        names = self.trustpoints() if tp is None else [validate_trustpoint_name(tp)]
        for name in names:
            folder = self._dir / name
            if not folder.is_dir():
                continue
            for usage in KeyUsage:
                (folder / _cert_file(usage)).unlink(missing_ok=True)
            fsync_dir(folder)
            try:
                (folder / _CA_FILE).unlink(missing_ok=True)
                fsync_dir(folder)
            finally:
                self._forget_cas([name])
            self._remove_stale_ras(folder, set())
        self._changed(names)

    def remove_trustpoint(self, tp: str) -> bool:
        """Delete trustpoint ``tp``'s directory and everything in it; False if there was none (no error).

        One rename makes it disappear; the renamed directory is then deleted.
        Raises InvalidTrustpointNameError, OSError.
        """
        folder = self._dir / validate_trustpoint_name(tp)
        if not folder.is_dir():
            return False
        doomed = self._dir / f"{_REMOVED_PREFIX}{tp}-{secrets.token_hex(4)}"
        try:
            os.rename(folder, doomed)
            fsync_dir(self._dir)
        finally:
            self._forget_cas([tp])
        shutil.rmtree(doomed)
        self._changed([tp])
        return True

    # ------------------------------------------------------------ internals

    def _check_validity(self, cert: x509.Certificate) -> None:
        now = self._clock.now()
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        dates = f"valid from {format_router_date(start)} to {format_router_date(end)}"
        if now < start:
            raise CertificateNotYetValidError(f"The certificate is not yet valid: {dates}")
        if now > end:
            raise CertificateExpiredError(f"The certificate has expired: {dates}")

    @staticmethod
    def _mismatch(key_label: str) -> KeyMismatchError:
        return KeyMismatchError(f"The certificate's public key matches none of {key_label}'s key pairs")

    @staticmethod
    def _wrong_issuer(tp: str, cert: x509.Certificate, ca: x509.Certificate) -> WrongIssuerError:
        if cert.issuer == ca.subject:
            detail = "its signature does not verify with the CA certificate's key"
        else:
            detail = f"it is issued by {format_name(cert.issuer)}, not by {format_name(ca.subject)}"
        return WrongIssuerError(f"The certificate was not issued by trustpoint {tp}'s CA: {detail}")

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    @staticmethod
    def _parse(path: Path, data: bytes) -> x509.Certificate:
        try:
            return _load_stored(data)
        except InvalidCertificateError:
            raise CertificateStoreCorruptError(f"Certificate file {path} is unreadable") from None

    @staticmethod
    def _listed_ras(ca_data: bytes) -> list[str]:
        text = ca_data.decode("ascii", "replace")
        return [m.group(1) for line in text.splitlines() if (m := _RA_LINE.fullmatch(line.strip()))]

    @staticmethod
    def _remove_stale_ras(folder: Path, keep: set[str]) -> None:
        removed = False
        for path in folder.iterdir():
            if _RA_FILE.fullmatch(path.name) and path.name[3:19] not in keep:
                path.unlink(missing_ok=True)
                removed = True
        if removed:
            fsync_dir(folder)
