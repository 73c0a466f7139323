"""What the PKI backend tells the rest of the agent: plain, immutable event objects.

The backend raises these (the expiry monitor, the enrollment listener, later
the CRL checker); the services layer translates each into a syslog line, an
SNMP trap and a YANG notification (see agent/services/events.py). Nothing
here knows NETCONF, YANG or any transport.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from agent.pki.certificate import format_name, format_serial
from agent.pki.keystore import KeyUsage
from agent.pki.trustpoint import EnrollmentRequest, RequestState

__all__ = [
    "AlertMode",
    "CertificateType",
    "CertificateRef",
    "CertificateExpiring",
    "CertificateInstalled",
    "EnrollmentCompleted",
    "EnrollmentFailed",
    "CertificateRevoked",
    "PkiEvent",
    "enrollment_event",
    "format_time_left",
    "colon_serial",
    "ALERT_THRESHOLD",
]

ALERT_THRESHOLD = dt.timedelta(days=7)
"""With this much validity left or less, expiry notifications are alerts ("WITHIN A WEEK")."""


class AlertMode(enum.Enum):
    """The two modes of the seed's expiry notifications."""

    WARNING = "warning"  # more than a week left
    ALERT = "alert"  # the last week

    @classmethod
    def for_time_left(cls, left: dt.timedelta) -> AlertMode:
        """ALERT with a week or less left, else WARNING. Raises nothing."""
        return cls.ALERT if left <= ALERT_THRESHOLD else cls.WARNING


class CertificateType(enum.Enum):
    """What a certificate is to its trustpoint; values are CISCO-PKI-MIB's certType words."""

    ID = "ID"
    CA = "CA"
    RA = "RA"


@dataclass(frozen=True)
class CertificateRef:
    """The certificate an event is about, with the fields the alerts print.

    ``subject`` and ``issuer`` are in the router's syslog form (upper-case
    short names, most specific first: ``CN=cacert,OU=SPBU,O=CSCO,C=IN``);
    ``serial_number`` is upper-case hex (``02EC``).
    """

    trustpoint: str
    cert_type: CertificateType
    key_usage: KeyUsage | None  # None for CA and RA certificates
    serial_number: str
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint_sha256: str  # upper-case hex

    @classmethod
    def from_x509(
        cls, trustpoint: str, cert_type: CertificateType, key_usage: KeyUsage | None, cert: x509.Certificate
    ) -> CertificateRef:
        """Describe ``cert`` of ``trustpoint``. Raises nothing."""
        return cls(
            trustpoint=trustpoint,
            cert_type=cert_type,
            key_usage=key_usage,
            serial_number=format_serial(cert.serial_number),
            subject=format_name(cert.subject, upper=True),
            issuer=format_name(cert.issuer, upper=True),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex().upper(),
        )


@dataclass(frozen=True)
class CertificateExpiring:
    """One notification of the expiry schedule (seed: "Expiry Notification for PKI Certificate")."""

    certificate: CertificateRef
    mode: AlertMode
    time_left: dt.timedelta
    time: dt.datetime  # when it was raised

    @property
    def seconds_left(self) -> int:
        """Whole seconds of validity left (never negative)."""
        return max(int(self.time_left.total_seconds()), 0)


@dataclass(frozen=True)
class CertificateInstalled:
    """A certificate appeared in a trustpoint (authenticate, enroll, import)."""

    certificate: CertificateRef
    time: dt.datetime


@dataclass(frozen=True)
class EnrollmentCompleted:
    """A certificate request was issued and its certificate installed."""

    trustpoint: str
    key_usage: KeyUsage
    transaction_id: str | None  # None for cut-and-paste
    serial_number: str | None
    time: dt.datetime


@dataclass(frozen=True)
class EnrollmentFailed:
    """A certificate request ended without a certificate (rejected, timed out, failed)."""

    trustpoint: str
    key_usage: KeyUsage
    transaction_id: str | None
    state: RequestState
    reason: str
    time: dt.datetime


@dataclass(frozen=True)
class CertificateRevoked:
    """A CRL of the trustpoint's CA lists one of the router's certificates (raised by the CRL checker)."""

    trustpoint: str
    key_usage: KeyUsage
    serial_number: str
    revocation_date: dt.datetime | None
    reason: str | None
    time: dt.datetime


PkiEvent = CertificateExpiring | CertificateInstalled | EnrollmentCompleted | EnrollmentFailed | CertificateRevoked


def enrollment_event(record: EnrollmentRequest, now: dt.datetime) -> EnrollmentCompleted | EnrollmentFailed | None:
    """The event of a request that reached a final state (None while it is not final). Raises nothing."""
    if record.state is RequestState.ISSUED:
        return EnrollmentCompleted(
            record.trustpoint, record.key_usage, record.transaction_id, record.serial_number, now
        )
    if record.state.is_final:
        reason = record.last_error or record.state.value
        return EnrollmentFailed(record.trustpoint, record.key_usage, record.transaction_id, record.state, reason, now)
    return None


def format_time_left(left: dt.timedelta) -> str:
    """``1 days, 23 hours, 59 minutes, 41 seconds``, as the seed's syslog line prints it. Raises nothing."""
    seconds = max(int(left.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{days} days, {hours} hours, {minutes} minutes, {seconds} seconds"


def colon_serial(serial_number: str) -> str:
    """``02EC`` -> ``02:EC`` (the seed's syslog form). Raises nothing."""
    sign = "-" if serial_number.startswith("-") else ""
    digits = serial_number.lstrip("-")
    return sign + ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))
