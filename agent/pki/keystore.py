"""RSA key pairs of the host and imported authentication public keys.

What the router does with ``crypto key generate rsa``, ``crypto key zeroize
rsa``, ``show crypto key mypubkey rsa`` and ``crypto key import
authentication rsa``, as a plain-Python key store.

On disk (``directory`` is mode 0700, every file 0600)::

    <directory>/<label>.rsa.json              one file per label, the whole pair set
    <directory>/authentication/<label>.json   imported authentication public keys

A key-pair file is JSON holding the metadata and one PKCS#1 PEM private key per
usage (``general``, or ``signature`` + ``encryption``), so generating,
replacing (both usage-key pairs at once) and zeroizing a label is always one
atomic rename or one unlink. Private key bytes never leave this module except
through :meth:`KeyStore.private_key` (in-process signing) and
:meth:`KeyStore.ssh_host_key`; nothing here logs key material.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import PkiError
from agent.files import atomic_write, ensure_private_dir, secure_delete

_log = logging.getLogger(__name__)

DEFAULT_LABEL = "the_default"
"""IOS XR's name for the general-purpose key it generates at first boot."""

LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
"""Key labels and trustpoint names: no path separators, no leading dot."""

_USER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")  # ca-agent-system /aaa/user/name

# The router offers 512..4096 bits (older images 360..2048). pyca/cryptography
# (>= 43; 48 here) refuses to generate RSA keys below 1024 bits
# ("key_size must be at least 1024-bits"), and such keys are breakable anyway,
# so the floor is 1024. 4096 stays the ceiling, as on the router.
MIN_MODULUS = 1024
MAX_MODULUS = 4096
DEFAULT_MODULUS = 2048
_PUBLIC_EXPONENT = 65537

# Imported authentication keys: refuse weak keys and absurd sizes.
_MIN_AUTH_BITS = 1024
_MAX_AUTH_BITS = 16384
_MAX_AUTH_INPUT = 64 * 1024

_KEY_SUFFIX = ".rsa.json"
_AUTH_SUFFIX = ".json"
_KEY_FORMAT = "ca-agent-rsa-keypair/1"
_AUTH_FORMAT = "ca-agent-auth-rsa/1"
_TMP_FILE = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")  # agent.files.atomic_write's temp names


class KeyPairType(enum.Enum):
    """``general-keys`` (one pair) or ``usage keys`` (signature + encryption)."""

    GENERAL_PURPOSE = "general-purpose"
    USAGE_KEYS = "usage-keys"

    @property
    def usages(self) -> tuple[KeyUsage, ...]:
        """The key usages a pair set of this type holds, in display order."""
        if self is KeyPairType.GENERAL_PURPOSE:
            return (KeyUsage.GENERAL,)
        return (KeyUsage.SIGNATURE, KeyUsage.ENCRYPTION)

    @property
    def display(self) -> str:
        """The router's ``Type`` line in ``show crypto key mypubkey rsa``."""
        return "RSA General purpose" if self is KeyPairType.GENERAL_PURPOSE else "RSA Usage keys"


class KeyUsage(enum.Enum):
    """Which key of a pair set: the general one, or one of two usage keys."""

    GENERAL = "general"
    SIGNATURE = "signature"
    ENCRYPTION = "encryption"

    @property
    def display(self) -> str:
        """The router's ``Key usage`` wording (``General Purpose``...)."""
        return _USAGE_DISPLAY[self.value]


_USAGE_DISPLAY = {"general": "General Purpose", "signature": "Signature", "encryption": "Encryption"}


# --------------------------------------------------------------------------- errors


class KeyStoreError(PkiError):
    """Root of the key store's errors."""

    error_app_tag = "key-store-error"


class InvalidLabelError(KeyStoreError):
    """A key label (or trustpoint name) that is not a safe, valid name."""

    error_tag = "invalid-value"
    error_app_tag = "invalid-key-label"


class InvalidModulusError(KeyStoreError):
    """An RSA modulus size outside the supported range."""

    error_tag = "invalid-value"
    error_app_tag = "invalid-modulus"


class KeyExistsError(KeyStoreError):
    """Keys already exist under the label and ``replace`` was not given."""

    error_tag = "data-exists"
    error_app_tag = "key-exists"


class KeyNotFoundError(KeyStoreError):
    """No key pair (or no key of the asked usage) under the label."""

    error_tag = "data-missing"
    error_app_tag = "key-not-found"


class InvalidKeyDataError(KeyStoreError):
    """Public key data to import that is malformed or not an RSA key."""

    error_tag = "invalid-value"
    error_app_tag = "invalid-key-data"


class InvalidUserNameError(KeyStoreError):
    """A user name for an authentication key that is not a valid login name."""

    error_tag = "invalid-value"
    error_app_tag = "invalid-user-name"


class KeyStoreCorruptError(KeyStoreError):
    """A key file on disk that cannot be read back."""

    error_tag = "operation-failed"
    error_app_tag = "key-store-corrupt"


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class KeyPairInfo:
    """Public facts about one label's key pair set (``show crypto key mypubkey rsa``).

    ``public_keys`` maps each usage to its DER SubjectPublicKeyInfo: GENERAL
    for general-purpose keys, SIGNATURE and ENCRYPTION for usage keys.
    """

    label: str
    key_type: KeyPairType
    size: int
    created: dt.datetime
    public_keys: dict[KeyUsage, bytes] = field(hash=False)

    @property
    def usages(self) -> tuple[KeyUsage, ...]:
        """The usages present, in display order."""
        return tuple(self.public_keys)


@dataclass(frozen=True)
class AuthKeyInfo:
    """An imported authentication public key (``crypto key import authentication rsa``)."""

    label: str
    user: str
    size: int
    created: dt.datetime
    public_key: bytes  # DER SubjectPublicKeyInfo


@dataclass
class _PairSet:
    """One label's key pairs: their public facts at once, the private keys checked on first use.

    Listing or showing keys needs only the public halves, so a file read
    from disk is parsed unchecked (``pems``), and :func:`check_private_key`
    runs once, when a private key is first used (:meth:`private_keys`).
    """

    info: KeyPairInfo
    pems: dict[KeyUsage, bytes]
    checked: dict[KeyUsage, rsa.RSAPrivateKey] | None = None

    def private_keys(self) -> dict[KeyUsage, rsa.RSAPrivateKey]:
        """The private keys, checked. Raises KeyStoreCorruptError. Two threads may both check: same result."""
        if self.checked is None:
            keys: dict[KeyUsage, rsa.RSAPrivateKey] = {}
            for usage, pem in self.pems.items():
                try:
                    key = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
                    assert isinstance(key, rsa.RSAPrivateKey)  # the unchecked parse at load already made sure
                    check_private_key(key)
                except (ValueError, TypeError) as exc:
                    # Never put the exception text in the message: it could quote key bytes.
                    raise KeyStoreCorruptError(
                        f"The key file for {self.info.label} is unreadable ({type(exc).__name__})"
                    ) from None
                keys[usage] = key
            self.checked = keys
        return self.checked


_PROBE = b"ca-agent key check"


def check_private_key(key: rsa.RSAPrivateKey) -> None:
    """Check that ``key``'s private numbers fit together and that it signs what its public key verifies.

    It replaces OpenSSL's check at parse time, which also tests p and q for
    primality and takes ~36 ms for 2048 bits (after a restart, every key's
    first signature paid it, on the PKI state writer: each background poll
    of a pending request too). This one takes ~1 ms, of which most is the
    key's first signature, which the caller would pay anyway. A damaged key
    file breaks the arithmetic below; a key whose arithmetic holds but whose
    p or q is not prime fails the signature (a test builds one). What it
    does not catch, a key crafted with weak factors, takes write access to
    the key directory, which is already everything.

    Raises ValueError.
    """
    numbers = key.private_numbers()
    n, e = numbers.public_numbers.n, numbers.public_numbers.e
    p, q, d = numbers.p, numbers.q, numbers.d
    if not (
        p > 1
        and q > 1
        and p * q == n
        and (e * d - 1) % (p - 1) == 0
        and (e * d - 1) % (q - 1) == 0
        and numbers.dmp1 == rsa.rsa_crt_dmp1(d, p)
        and numbers.dmq1 == rsa.rsa_crt_dmq1(d, q)
        and numbers.iqmp == rsa.rsa_crt_iqmp(p, q)
    ):
        raise ValueError("inconsistent RSA private numbers")
    signature = key.sign(_PROBE, padding.PKCS1v15(), hashes.SHA256())
    try:
        key.public_key().verify(signature, _PROBE, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise ValueError("the RSA key does not verify its own signature") from None


def validate_label(label: object, what: str = "key label") -> str:
    """Return ``label`` if it is a valid key label / trustpoint name.

    Valid names match ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``: never a path
    separator, never ``.``/``..``, never a leading dot (temporary files).

    Raises InvalidLabelError otherwise.
    """
    if not isinstance(label, str) or not LABEL_PATTERN.fullmatch(label):
        raise InvalidLabelError(
            f"Invalid {what} {label!r}: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return label


MAX_LABEL = 64
_NOT_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


def label_for_fqdn(fqdn: str) -> str:
    """The default key label for a host named ``fqdn`` (``crypto key generate rsa`` without a label).

    The FQDN itself when it is a valid label. An FQDN may be far longer than
    the 64 characters of a label (a 200-character domain name is valid):
    then its first characters, ``-`` and the first 8 hex digits of its
    SHA-256, so the label stays the same for the same FQDN and differs for
    FQDNs that only differ at the end. Characters a label cannot hold become
    ``-``. Raises nothing.
    """
    text = _NOT_LABEL_CHARS.sub("-", fqdn.rstrip("."))
    if LABEL_PATTERN.fullmatch(text):
        return text
    digest = hashlib.sha256(fqdn.encode("utf-8")).hexdigest()[:8]
    room = MAX_LABEL - len(digest) - 1
    head = text[:room].rstrip("_.-")
    if not (head[:1].isascii() and head[:1].isalnum()):  # a label starts with a letter or digit
        head = ("key" + head)[:room].rstrip("_.-")
    return f"{head}-{digest}"


def _validate_user(user: object) -> str:
    if not isinstance(user, str) or not _USER_PATTERN.fullmatch(user):
        raise InvalidUserNameError(
            f"Invalid user name {user!r}: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or '_'"
        )
    return user


def _spki_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pair_info(
    label: str,
    key_type: KeyPairType,
    size: int,
    created: dt.datetime,
    keys: dict[KeyUsage, rsa.RSAPrivateKey],
) -> KeyPairInfo:
    public_keys = {usage: _spki_der(key.public_key()) for usage, key in keys.items()}
    return KeyPairInfo(label, key_type, size, created, public_keys)


def _no_key_of_usage(info: KeyPairInfo, usage: KeyUsage) -> KeyNotFoundError:
    return KeyNotFoundError(f"Key pair {info.label} is {info.key_type.value}; it has no {usage.value} key")


def _scrub_fd(fd: int) -> None:
    """Overwrite the whole file behind ``fd`` with random bytes and fsync it."""
    size = os.fstat(fd).st_size
    os.pwrite(fd, secrets.token_bytes(max(size, 1)), 0)
    os.fsync(fd)


# --------------------------------------------------------------------------- key store


class KeyStore:
    """The host's RSA key pairs and imported authentication keys, on disk.

    Thread-safe: one lock serialises every read and write of the directory
    (key generation itself runs outside it). A new ``KeyStore`` on the same
    directory sees everything a previous one wrote (restart).
    """

    def __init__(self, directory: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        """Open (creating, mode 0700) the key directory.

        Leftover temporary files of an interrupted write are securely deleted.
        Raises OSError if the directory cannot be created.
        """
        self._dir = ensure_private_dir(directory)
        self._auth_dir = ensure_private_dir(self._dir / "authentication")
        self._clock = clock
        self._lock = threading.RLock()
        self._cache: dict[str, tuple[tuple[int, int, int], _PairSet]] = {}
        for folder in (self._dir, self._auth_dir):
            for leftover in folder.iterdir():
                if leftover.is_file() and _TMP_FILE.fullmatch(leftover.name):
                    secure_delete(leftover)

    @property
    def directory(self) -> Path:
        """The private key directory."""
        return self._dir

    # ------------------------------------------------------------ generate / zeroize

    def generate_rsa(
        self,
        label: str,
        key_type: KeyPairType = KeyPairType.GENERAL_PURPOSE,
        modulus: int = DEFAULT_MODULUS,
        replace: bool = False,
    ) -> KeyPairInfo:
        """Generate RSA key pair(s) under ``label`` (``crypto key generate rsa``).

        Usage keys get two pairs of ``modulus`` bits, general-purpose keys one.
        With ``replace`` an existing set under the label (of either type) is
        overwritten in one atomic rename; the old file's content is then
        overwritten with random bytes.

        Raises InvalidLabelError, InvalidModulusError (outside 1024..4096),
        KeyExistsError (label in use and not ``replace``), OSError.
        """
        validate_label(label)
        if isinstance(modulus, bool) or not isinstance(modulus, int) or not MIN_MODULUS <= modulus <= MAX_MODULUS:
            raise InvalidModulusError(
                f"Invalid key modulus {modulus!r}: choose a size in the range of "
                f"{MIN_MODULUS} to {MAX_MODULUS} bits"
            )
        if not replace and self._exists(label):
            raise self._exists_error(label)
        keys = {
            usage: rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=modulus)
            for usage in key_type.usages
        }
        with self._lock:
            if not replace and self._exists(label):  # lost a race with another generate
                raise self._exists_error(label)
            return self._write_pair_set(label, key_type, modulus, keys)

    def ensure_default(self) -> KeyPairInfo:
        """Return the default key pair, generating RSA 2048 general keys if missing.

        This is the first-start step of IOS XR 7.0.1+ (``the_default``).
        Raises KeyStoreCorruptError, OSError.
        """
        with self._lock:
            existing = self._load(DEFAULT_LABEL)
            if existing is not None:
                return existing.info
            key = rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=DEFAULT_MODULUS)
            return self._write_pair_set(
                DEFAULT_LABEL, KeyPairType.GENERAL_PURPOSE, DEFAULT_MODULUS, {KeyUsage.GENERAL: key}
            )

    def zeroize_rsa(self, label: str | None = None) -> list[str]:
        """Delete one label's key pairs, or all of them (``crypto key zeroize rsa``).

        Every file is overwritten with random bytes before it is unlinked.
        Returns the labels removed, sorted (empty if there were none).
        Raises InvalidLabelError, KeyNotFoundError (unknown ``label``), OSError.
        """
        with self._lock:
            if label is None:
                labels = self._labels()
            else:
                validate_label(label)
                if not self._exists(label):
                    raise KeyNotFoundError(f"No RSA keys are defined for {label}")
                labels = [label]
            for name in labels:
                secure_delete(self._pair_path(name))
                self._cache.pop(name, None)
            return labels

    # ------------------------------------------------------------ reads

    def list_rsa(self) -> list[KeyPairInfo]:
        """All key pair sets, sorted by label.

        Unreadable files are skipped with a warning (their label only).
        Raises OSError.
        """
        result: list[KeyPairInfo] = []
        with self._lock:
            for name in self._labels():
                try:
                    pair_set = self._load(name)
                except KeyStoreCorruptError:
                    _log.warning("skipping unreadable RSA key file for label %s", name)
                    continue
                if pair_set is not None:
                    result.append(pair_set.info)
        return result

    def get_rsa(self, label: str) -> KeyPairInfo:
        """Public facts about ``label``'s key pairs.

        Raises InvalidLabelError, KeyNotFoundError, KeyStoreCorruptError.
        """
        return self._require(label).info

    def private_key(self, label: str, usage: KeyUsage) -> rsa.RSAPrivateKey:
        """The private key of ``label`` for ``usage``, for in-process signing only.

        Raises InvalidLabelError, KeyNotFoundError (no such label, or the set
        has no key of that usage), KeyStoreCorruptError.
        """
        pair_set = self._require(label)
        if usage not in pair_set.info.public_keys:
            raise _no_key_of_usage(pair_set.info, usage)
        return pair_set.private_keys()[usage]

    def public_key(self, label: str, usage: KeyUsage) -> rsa.RSAPublicKey:
        """The public key of ``label`` for ``usage``.

        Raises InvalidLabelError, KeyNotFoundError, KeyStoreCorruptError.
        """
        info = self._require(label).info
        der = info.public_keys.get(usage)
        if der is None:
            raise _no_key_of_usage(info, usage)
        key = serialization.load_der_public_key(der)
        assert isinstance(key, rsa.RSAPublicKey)
        return key

    def ssh_host_key(self) -> rsa.RSAPrivateKey:
        """The SSH host key: ``the_default``'s general key.

        If ``the_default`` was replaced by usage keys, its signature key is
        used. The agent calls :meth:`ensure_default` at start; this method
        never generates.

        Raises KeyNotFoundError (no default key, e.g. after zeroize),
        KeyStoreCorruptError.
        """
        pair_set = self._load(DEFAULT_LABEL)
        if pair_set is None:
            raise KeyNotFoundError(
                f"No RSA keys are defined for {DEFAULT_LABEL}; the SSH host key is missing"
            )
        keys = pair_set.private_keys()
        return keys.get(KeyUsage.GENERAL) or keys[KeyUsage.SIGNATURE]

    # ------------------------------------------------------------ authentication keys

    def import_authentication_rsa(
        self, label: str, public_key: str | bytes, user: str
    ) -> AuthKeyInfo:
        """Import an RSA public key for ``user``'s SSH login (``crypto key import authentication rsa``).

        Accepted: PEM (``PUBLIC KEY`` or PKCS#1 ``RSA PUBLIC KEY``), an
        RFC 4716 ``SSH2 PUBLIC KEY`` block, an OpenSSH ``ssh-rsa AAAA... comment``
        line, DER as hex (whitespace and colons ignored, as ``show crypto key
        mypubkey rsa`` prints it), DER as base64, or raw DER bytes.
        Importing under an existing label replaces that key (and its user and
        creation time), like re-running the router's import: the operation is
        idempotent, so a client can re-push its key safely.

        Raises InvalidLabelError, InvalidUserNameError, InvalidKeyDataError
        (malformed, not RSA, or outside 1024..16384 bits), OSError.
        """
        validate_label(label)
        _validate_user(user)
        key = parse_rsa_public_key(public_key)
        created = self._clock.now()
        record = {
            "format": _AUTH_FORMAT,
            "label": label,
            "user": user,
            "created": created.isoformat(),
            "public_key": base64.b64encode(_spki_der(key)).decode("ascii"),
        }
        with self._lock:
            atomic_write(self._auth_path(label), json.dumps(record, indent=1).encode(), 0o600)
        return AuthKeyInfo(label, user, key.key_size, created, _spki_der(key))

    def list_authentication_rsa(self) -> list[AuthKeyInfo]:
        """All imported authentication keys, sorted by label.

        Unreadable files are skipped with a warning. Raises OSError.
        """
        result: list[AuthKeyInfo] = []
        with self._lock:
            for path in sorted(self._auth_dir.iterdir()):
                label = path.name.removesuffix(_AUTH_SUFFIX)
                if label == path.name or not LABEL_PATTERN.fullmatch(label):
                    continue
                try:
                    result.append(self._load_auth(path, label))
                except KeyStoreCorruptError:
                    _log.warning("skipping unreadable authentication key file for label %s", label)
        return result

    def authorized_keys(self, user: str, labels: Collection[str] | None = None) -> list[rsa.RSAPublicKey]:
        """The RSA public keys imported for ``user`` (only those under ``labels``, if given).

        An unknown (or invalid) user simply has none. Raises OSError.
        """
        result: list[rsa.RSAPublicKey] = []
        for info in self.list_authentication_rsa():
            if info.user == user and (labels is None or info.label in labels):
                key = serialization.load_der_public_key(info.public_key)
                assert isinstance(key, rsa.RSAPublicKey)
                result.append(key)
        return result

    # ------------------------------------------------------------ internals

    def _pair_path(self, label: str) -> Path:
        return self._dir / f"{label}{_KEY_SUFFIX}"

    def _auth_path(self, label: str) -> Path:
        return self._auth_dir / f"{label}{_AUTH_SUFFIX}"

    def _exists(self, label: str) -> bool:
        return self._pair_path(label).is_file()

    @staticmethod
    def _exists_error(label: str) -> KeyExistsError:
        return KeyExistsError(f"You already have keys defined for {label} (generate with replace to overwrite them)")

    def _labels(self) -> list[str]:
        labels = []
        for path in self._dir.iterdir():
            label = path.name.removesuffix(_KEY_SUFFIX)
            if label != path.name and LABEL_PATTERN.fullmatch(label) and path.is_file():
                labels.append(label)
        return sorted(labels)

    def _require(self, label: str) -> _PairSet:
        validate_label(label)
        pair_set = self._load(label)
        if pair_set is None:
            raise KeyNotFoundError(f"No RSA keys are defined for {label}")
        return pair_set

    def _write_pair_set(
        self,
        label: str,
        key_type: KeyPairType,
        size: int,
        keys: dict[KeyUsage, rsa.RSAPrivateKey],
    ) -> KeyPairInfo:
        """Write the set in one atomic rename, then scrub the replaced file. Caller holds the lock."""
        created = self._clock.now()
        record: dict[str, Any] = {
            "format": _KEY_FORMAT,
            "label": label,
            "type": key_type.value,
            "size": size,
            "created": created.isoformat(),
            "keys": {
                usage.value: key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS#1
                    serialization.NoEncryption(),
                ).decode("ascii")
                for usage, key in keys.items()
            },
        }
        path = self._pair_path(label)
        old_fd: int | None = None
        try:
            old_fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            pass
        try:
            atomic_write(path, json.dumps(record, indent=1).encode("ascii"), 0o600)
            if old_fd is not None:
                _scrub_fd(old_fd)
        finally:
            if old_fd is not None:
                os.close(old_fd)
        info = _pair_info(label, key_type, size, created, keys)
        # Cache what was just written: reloading it would re-run OpenSSL's RSA
        # consistency check (~35 ms for 2048 bits) on the next enrollment.
        st = path.stat()
        self._cache[label] = ((st.st_ino, st.st_mtime_ns, st.st_size), _PairSet(info, {}, keys))
        return info

    def _load(self, label: str) -> _PairSet | None:
        path = self._pair_path(label)
        with self._lock:
            try:
                st = path.stat()
            except FileNotFoundError:
                self._cache.pop(label, None)
                return None
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            cached = self._cache.get(label)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            pair_set = self._parse_pair_file(path.read_bytes(), label)
            self._cache[label] = (stamp, pair_set)
            return pair_set

    @staticmethod
    def _parse_pair_file(data: bytes, label: str) -> _PairSet:
        try:
            record = json.loads(data)
            if record.get("format") != _KEY_FORMAT or record.get("label") != label:
                raise ValueError("wrong format or label")
            key_type = KeyPairType(record["type"])
            created = dt.datetime.fromisoformat(record["created"])
            if created.tzinfo is None:
                raise ValueError("naive creation time")
            pems: dict[KeyUsage, bytes] = {}
            unchecked: dict[KeyUsage, rsa.RSAPrivateKey] = {}
            for usage in key_type.usages:
                pem = record["keys"][usage.value].encode("ascii")
                # Unchecked: only its public half is used here; _PairSet checks it before any signing.
                key = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
                if not isinstance(key, rsa.RSAPrivateKey):
                    raise ValueError("not an RSA key")
                pems[usage] = pem
                unchecked[usage] = key
            info = _pair_info(label, key_type, int(record["size"]), created, unchecked)  # the unchecked keys go
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Never put the exception text in the message: it could quote key bytes.
            raise KeyStoreCorruptError(
                f"The key file for {label} is unreadable ({type(exc).__name__})"
            ) from None
        return _PairSet(info, pems)

    @staticmethod
    def _load_auth(path: Path, label: str) -> AuthKeyInfo:
        try:
            record = json.loads(path.read_bytes())
            if record.get("format") != _AUTH_FORMAT or record.get("label") != label:
                raise ValueError("wrong format or label")
            der = base64.b64decode(record["public_key"], validate=True)
            key = serialization.load_der_public_key(der)
            if not isinstance(key, rsa.RSAPublicKey):
                raise ValueError("not an RSA key")
            created = dt.datetime.fromisoformat(record["created"])
            user = str(record["user"])
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise KeyStoreCorruptError(
                f"The authentication key file for {label} is unreadable ({type(exc).__name__})"
            ) from None
        return AuthKeyInfo(label, user, key.key_size, created, der)


# --------------------------------------------------------------------------- public key parsing

_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL
)
_SSH2_BLOCK = re.compile(
    r"---- BEGIN SSH2 PUBLIC KEY ----\s*(.*?)\s*---- END SSH2 PUBLIC KEY ----", re.DOTALL
)
_OPENSSH_TYPE = re.compile(r"(ssh-[a-z0-9@.\-]+|ecdsa-sha2-[a-z0-9@.\-]+|sk-[a-z0-9@.\-]+)")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_PRINTABLE = re.compile(r"[\x20-\x7e\t\r\n]*")
_NOT_RECOGNISED = "not PEM, hex DER, base64 DER or an ssh-rsa line"


def _key_kind(key: PublicKeyTypes) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC ({key.curve.name})"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "an Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "an Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return "a DSA"
    return f"a {type(key).__name__}"


def _checked_rsa(key: PublicKeyTypes) -> rsa.RSAPublicKey:
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidKeyDataError(f"{_key_kind(key)} key is not an RSA key")
    if not _MIN_AUTH_BITS <= key.key_size <= _MAX_AUTH_BITS:
        raise InvalidKeyDataError(
            f"An RSA key of {key.key_size} bits is not accepted: use "
            f"{_MIN_AUTH_BITS} to {_MAX_AUTH_BITS} bits"
        )
    return key


def _from_der(der: bytes, source: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_der_public_key(der)  # SPKI, or PKCS#1 RSAPublicKey
    except (ValueError, TypeError):
        raise InvalidKeyDataError(
            f"The {source} data is not a DER SubjectPublicKeyInfo or PKCS#1 RSAPublicKey"
        ) from None
    except Exception:  # UnsupportedAlgorithm and friends
        raise InvalidKeyDataError(f"The {source} data holds an unsupported key type") from None
    return _checked_rsa(key)


def _from_openssh(line: str) -> rsa.RSAPublicKey:
    fields = line.split()
    key_type = fields[0]
    if key_type != "ssh-rsa":
        raise InvalidKeyDataError(f"an {key_type} key is not an RSA key")
    if len(fields) < 2:
        raise InvalidKeyDataError("The ssh-rsa line has no key data")
    try:
        key = serialization.load_ssh_public_key(f"ssh-rsa {fields[1]}".encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        raise InvalidKeyDataError("The ssh-rsa line's key data is malformed") from None
    return _checked_rsa(key)


def _from_ssh2(body: str) -> rsa.RSAPublicKey:
    lines: list[str] = []
    continued = False
    for raw in body.splitlines():
        line = raw.strip()
        if continued or ":" in line:  # RFC 4716 header line (may continue with '\')
            continued = line.endswith("\\")
            continue
        lines.append(line)
    try:
        blob = base64.b64decode("".join(lines), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKeyDataError("The SSH2 PUBLIC KEY block is not valid base64") from None
    name_len = int.from_bytes(blob[:4], "big")
    key_type = blob[4 : 4 + name_len].decode("ascii", "replace") or "unknown"
    return _from_openssh(f"{key_type} " + base64.b64encode(blob).decode("ascii"))


def parse_rsa_public_key(data: str | bytes) -> rsa.RSAPublicKey:
    """Parse an RSA public key given in any of the import formats.

    See :meth:`KeyStore.import_authentication_rsa` for the formats.
    Raises InvalidKeyDataError saying what was wrong.
    """
    if isinstance(data, bytes):
        if len(data) > _MAX_AUTH_INPUT:
            raise InvalidKeyDataError("The key data is too long")
        text = data.decode("latin-1")
        if not _PRINTABLE.fullmatch(text):  # binary: raw DER
            return _from_der(data, "DER")
    elif isinstance(data, str):
        text = data
    else:
        raise InvalidKeyDataError("The key data must be text or bytes")
    if len(text) > _MAX_AUTH_INPUT:
        raise InvalidKeyDataError("The key data is too long")
    text = text.strip()
    if not text:
        raise InvalidKeyDataError("The key data is empty")
    ssh2 = _SSH2_BLOCK.search(text)
    if ssh2:
        return _from_ssh2(ssh2.group(1))
    if "-----BEGIN" in text:
        block = _PEM_BLOCK.search(text)
        if block is None:
            raise InvalidKeyDataError("The PEM data has no matching BEGIN/END lines")
        kind = block.group(1)
        if kind not in ("PUBLIC KEY", "RSA PUBLIC KEY"):
            raise InvalidKeyDataError(
                f"A PEM '{kind}' block is not a public key (expected 'PUBLIC KEY' "
                "or 'RSA PUBLIC KEY')"
            )
        body = "".join(block.group(2).split())
        try:
            der = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidKeyDataError(f"The PEM '{kind}' block is not valid base64") from None
        return _from_der(der, f"PEM '{kind}'")
    first = text.split(None, 1)[0]
    if _OPENSSH_TYPE.fullmatch(first):
        return _from_openssh(text)
    compact = re.sub(r"[\s:]", "", text)
    if _HEX.fullmatch(compact):
        return _from_der(bytes.fromhex(compact), "hex")
    compact = "".join(text.split())
    if _BASE64.fullmatch(compact) and len(compact) % 4 == 0:
        return _from_der(base64.b64decode(compact), "base64")
    raise InvalidKeyDataError(f"The key data is {_NOT_RECOGNISED}")
