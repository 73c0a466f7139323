"""On-disk state of the lab CA; every write is atomic, every mutation under one file lock.

Layout of the data directory (mode 0700)::

    ca.key ca.pem            CA key (0600) and self-signed certificate
    ra.key ra.pem            RA key and certificate (only with --ra)
    serial                   next serial number, decimal
    certs/<SERIAL>.pem       every certificate issued, by upper-case hex serial
    requests/<id>.json       one enrollment request per transaction ID
    revoked.json             revoked serials and the CRL number
    crl.der                  the current CRL
    .lock                    flock(2) taken for every read-modify-write

Several processes share it: the server and the ``approve``/``reject``/
``revoke`` commands, which is why nothing is cached in memory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import PkiError
from agent.files import atomic_write, ensure_private_dir
from agent.pki.keystore import check_private_key

__all__ = [
    "LabCaError",
    "LabCaNotFoundError",
    "LabCaStateError",
    "LabCaStore",
    "RequestRecord",
    "RequestState",
    "RevocationList",
    "parse_serial",
    "serial_hex",
]

LOCK_TIMEOUT = 10.0


class LabCaError(PkiError):
    """A lab CA operation failed."""

    error_app_tag = "lab-ca-error"


class LabCaNotFoundError(LabCaError):
    """No such CA, transaction or certificate."""

    error_tag = "data-missing"
    error_app_tag = "lab-ca-not-found"


class LabCaStateError(LabCaError):
    """The request or certificate is not in a state that allows the operation."""

    error_app_tag = "lab-ca-bad-state"


def serial_hex(serial: int) -> str:
    """A serial number as the router shows it: upper-case hex, even length (``6E``, ``01``)."""
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text


def parse_serial(text: str) -> int:
    """Parse ``6E``, ``6e``, ``0x6E`` or ``00:6E``. Raises ValueError if not hex."""
    cleaned = text.strip().replace(":", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    if not cleaned:
        raise ValueError("empty serial number")
    return int(cleaned, 16)


class RequestState(enum.Enum):
    """Life cycle of one enrollment request at the lab CA."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    ISSUED = "issued"


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


@dataclass(frozen=True)
class RequestRecord:
    """One enrollment request, keyed by its SCEP transactionID."""

    transaction_id: str
    state: RequestState
    csr: x509.CertificateSigningRequest
    created: dt.datetime
    updated: dt.datetime
    serial: int | None = None
    reason: str | None = None

    @property
    def subject(self) -> str:
        """The requested subject, RFC 4514."""
        return self.csr.subject.rfc4514_string()

    def with_state(
        self, state: RequestState, now: dt.datetime, *, serial: int | None = None, reason: str | None = None
    ) -> RequestRecord:
        """A copy in ``state``."""
        return replace(self, state=state, updated=now, serial=serial, reason=reason)

    def to_json(self) -> bytes:
        """Serialized form."""
        return json.dumps(
            {
                "transaction_id": self.transaction_id,
                "state": self.state.value,
                "csr": self.csr.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                "created": _time(self.created),
                "updated": _time(self.updated),
                "serial": self.serial,
                "reason": self.reason,
            },
            indent=1,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RequestRecord:
        """Parse the serialized form. Raises LabCaError if it is corrupt."""
        try:
            raw = json.loads(data)
            return cls(
                transaction_id=str(raw["transaction_id"]),
                state=RequestState(raw["state"]),
                csr=x509.load_pem_x509_csr(raw["csr"].encode("ascii")),
                created=dt.datetime.fromisoformat(raw["created"]),
                updated=dt.datetime.fromisoformat(raw["updated"]),
                serial=None if raw.get("serial") is None else int(raw["serial"]),
                reason=raw.get("reason"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LabCaError(f"corrupt lab CA request record: {exc}") from exc


@dataclass(frozen=True)
class RevocationList:
    """Revoked serials with their revocation time, and the last CRL number used."""

    revoked: tuple[tuple[int, dt.datetime], ...] = ()
    crl_number: int = 0
    reasons: tuple[tuple[int, str], ...] = ()
    """RFC 5280 reason code names (``keyCompromise``...) of the serials revoked with one."""

    def reason(self, serial: int) -> str | None:
        """The reason ``serial`` was revoked with, None if none was given."""
        return next((r for s, r in self.reasons if s == serial), None)

    def is_revoked(self, serial: int) -> bool:
        """True if ``serial`` is revoked."""
        return any(s == serial for s, _ in self.revoked)


class LabCaStore:
    """File-level access to one lab CA data directory."""

    def __init__(self, data_dir: str | os.PathLike[str], *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.root = Path(data_dir)
        self._clock = clock

    # ------------------------------------------------------------------ layout

    @property
    def ca_key_path(self) -> Path:
        """Path of the CA private key."""
        return self.root / "ca.key"

    @property
    def ca_cert_path(self) -> Path:
        """Path of the CA certificate (PEM)."""
        return self.root / "ca.pem"

    @property
    def ra_key_path(self) -> Path:
        """Path of the RA private key."""
        return self.root / "ra.key"

    @property
    def ra_cert_path(self) -> Path:
        """Path of the RA certificate (PEM)."""
        return self.root / "ra.pem"

    @property
    def crl_path(self) -> Path:
        """Path of the current CRL (DER)."""
        return self.root / "crl.der"

    def exists(self) -> bool:
        """True if a CA has been created here."""
        return self.ca_key_path.exists() and self.ca_cert_path.exists()

    def initialize(self) -> None:
        """Create the directory tree (mode 0700). Raises OSError if impossible."""
        ensure_private_dir(self.root)
        ensure_private_dir(self.root / "certs")
        ensure_private_dir(self.root / "requests")

    # ------------------------------------------------------------------ locking

    @contextlib.contextmanager
    def lock(self, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """Hold the data directory's exclusive lock (across processes and threads).

        Raises LabCaError if it cannot be taken within ``timeout`` seconds.
        """
        self.initialize()
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = self._clock.monotonic() + timeout
            delay = 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    remaining = deadline - self._clock.monotonic()
                    if remaining <= 0:
                        raise LabCaError(
                            f"the lab CA data directory {self.root} stayed locked for {timeout:g} s"
                        ) from None
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, 0.05)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    # ------------------------------------------------------------------ keys and certificates

    def write_identity(self, key_path: Path, cert_path: Path, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
        """Persist a key (0600) and its certificate."""
        atomic_write(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)

    def read_identity(self, key_path: Path, cert_path: Path) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        """Load a key and its certificate, and check that they belong together.

        The key is checked as the agent's key store checks its keys (numbers
        and a signature, ~1 ms), not by OpenSSL's primality test at parse time
        (~36 ms for 2048 bits, twice per start with an RA, and once more per
        ``approve``/``reject``/``revoke`` command).

        Raises LabCaError if either is missing or damaged, the key is not RSA,
        or it is not the key of the certificate.
        """
        try:
            key = serialization.load_pem_private_key(
                key_path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise LabCaError(f"cannot load {key_path.name}/{cert_path.name} from {self.root}: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise LabCaError(f"{key_path} is not an RSA key")
        try:
            check_private_key(key)
        except ValueError as exc:
            raise LabCaError(f"{key_path} is damaged: {exc}") from exc
        if key.public_key() != cert.public_key():
            raise LabCaError(f"{key_path} is not the key of {cert_path}")
        return key, cert

    def next_serial(self) -> int:
        """Allocate the next serial number (call under :meth:`lock`)."""
        path = self.root / "serial"
        try:
            serial = int(path.read_text().strip())
        except FileNotFoundError:
            serial = 1
        except ValueError as exc:
            raise LabCaError(f"corrupt serial counter {path}") from exc
        atomic_write(path, f"{serial + 1}\n".encode(), mode=0o644)
        return serial

    def _cert_path(self, serial: int) -> Path:
        return self.root / "certs" / f"{serial_hex(serial)}.pem"

    def write_certificate(self, cert: x509.Certificate) -> None:
        """Record an issued certificate."""
        atomic_write(self._cert_path(cert.serial_number), cert.public_bytes(serialization.Encoding.PEM), mode=0o644)

    def read_certificate(self, serial: int) -> x509.Certificate | None:
        """The issued certificate with ``serial``, or None."""
        try:
            return x509.load_pem_x509_certificate(self._cert_path(serial).read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise LabCaError(f"corrupt certificate file for serial {serial_hex(serial)}") from exc

    # ------------------------------------------------------------------ requests

    def _request_path(self, transaction_id: str) -> Path:
        digest = hashlib.sha256(transaction_id.encode()).hexdigest()[:40]
        return self.root / "requests" / f"{digest}.json"

    def read_request(self, transaction_id: str) -> RequestRecord | None:
        """The request with ``transaction_id`` as currently on disk, or None."""
        try:
            record = RequestRecord.from_json(self._request_path(transaction_id).read_bytes())
        except FileNotFoundError:
            return None
        return record if record.transaction_id == transaction_id else None

    def write_request(self, record: RequestRecord) -> None:
        """Persist ``record`` (replacing any previous state)."""
        atomic_write(self._request_path(record.transaction_id), record.to_json())

    def list_requests(self) -> list[RequestRecord]:
        """Every request on disk, oldest first."""
        records: list[RequestRecord] = []
        directory = self.root / "requests"
        if not directory.is_dir():
            return records
        for path in directory.glob("*.json"):
            try:
                records.append(RequestRecord.from_json(path.read_bytes()))
            except FileNotFoundError:
                continue  # replaced while we listed
        return sorted(records, key=lambda r: r.created)

    # ------------------------------------------------------------------ revocation

    def read_revocations(self) -> RevocationList:
        """Revoked serials and CRL number. Raises LabCaError if the file is corrupt."""
        path = self.root / "revoked.json"
        try:
            raw = json.loads(path.read_bytes())
            return RevocationList(
                revoked=tuple(
                    (int(item["serial"]), dt.datetime.fromisoformat(item["revoked_at"])) for item in raw["revoked"]
                ),
                crl_number=int(raw["crl_number"]),
                reasons=tuple(
                    (int(item["serial"]), str(item["reason"])) for item in raw["revoked"] if item.get("reason")
                ),
            )
        except FileNotFoundError:
            return RevocationList()
        except (ValueError, KeyError, TypeError) as exc:
            raise LabCaError(f"corrupt revocation file {path}: {exc}") from exc

    def write_revocations(self, revocations: RevocationList) -> None:
        """Persist the revocation list."""
        body = {
            "crl_number": revocations.crl_number,
            "revoked": [
                {"serial": s, "revoked_at": _time(t), **({"reason": r} if (r := revocations.reason(s)) else {})}
                for s, t in revocations.revoked
            ],
        }
        atomic_write(self.root / "revoked.json", json.dumps(body, indent=1).encode(), mode=0o644)

    def read_crl(self) -> x509.CertificateRevocationList | None:
        """The stored CRL, or None."""
        try:
            return x509.load_der_x509_crl(self.crl_path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # regenerated by the caller

    def write_crl(self, crl: x509.CertificateRevocationList) -> None:
        """Persist the CRL (DER)."""
        atomic_write(self.crl_path, crl.public_bytes(serialization.Encoding.DER), mode=0o644)
