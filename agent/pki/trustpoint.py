"""Trustpoints as the services layer sees them: configuration, state, results, errors.

Pure values and checks, no I/O (``agent.pki.enrollment`` does the work):

- :class:`TrustpointConfig` is what the running configuration says about one
  ``crypto ca trustpoint`` (enrollment URL or terminal, retry period/count,
  key label, subject name);
- :class:`AuthenticationResult`, :class:`EnrollmentOutcome`,
  :class:`ImportedCertificate` are what the RPCs return;
- :class:`TrustpointState` is what ``show crypto ca certificates`` and the
  enrollment status show;
- :class:`EnrollmentRequest` is one key pair's certificate request, as it is
  persisted (``trustpoints/<name>/enrollment-<usage>.json``) and shown. It
  never holds the PKCS#10 request nor the challenge password.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import json
from dataclasses import dataclass, field, replace
from typing import Any

from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.x509.name import _ASN1Type

from agent.errors import PkiError
from agent.pki.certificate import CertificateInfo, format_name
from agent.pki.certstore import validate_trustpoint_name
from agent.pki.keystore import DEFAULT_LABEL, KeyUsage, validate_label

MIN_RETRY_PERIOD = 1
MAX_RETRY_PERIOD = 60
DEFAULT_RETRY_PERIOD = 1
MIN_RETRY_COUNT = 1
MAX_RETRY_COUNT = 100
DEFAULT_RETRY_COUNT = 10

_RECORD_FORMAT = "ca-agent-enrollment/1"


# --------------------------------------------------------------------------- enums


class EnrollmentMethod(enum.Enum):
    """How certificates are requested: SCEP to ``enrollment url`` or cut-and-paste."""

    URL = "url"
    TERMINAL = "terminal"


class CertificateStatus(enum.Enum):
    """Status of a router certificate (``show crypto ca certificates``' ``Status``)."""

    AVAILABLE = "available"
    PENDING = "pending"
    KEY_MISSING = "key-missing"
    """The key label holds no key pair of the certificate's usage (any more)."""
    KEY_MISMATCH = "key-mismatch"
    """The key label holds a different key pair (regenerated): re-enroll."""


class RequestState(enum.Enum):
    """Where one key pair's certificate request stands."""

    PENDING = "pending"
    ISSUED = "issued"
    REJECTED = "rejected"
    TIMED_OUT = "timed-out"
    FAILED = "failed"
    AWAITING_IMPORT = "awaiting-import"

    @property
    def is_final(self) -> bool:
        """True once nothing more will happen to the request by itself."""
        return self in (RequestState.ISSUED, RequestState.REJECTED, RequestState.TIMED_OUT, RequestState.FAILED)


class EnrollmentStatus(enum.Enum):
    """Outcome of ``ca-enroll``, overall and per key pair."""

    ISSUED = "issued"
    PENDING = "pending"
    FAILED = "failed"
    REQUESTED = "requested"

    @classmethod
    def of(cls, state: RequestState) -> EnrollmentStatus:
        """The outcome a request in ``state`` reports."""
        if state is RequestState.ISSUED:
            return cls.ISSUED
        if state is RequestState.PENDING:
            return cls.PENDING
        if state is RequestState.AWAITING_IMPORT:
            return cls.REQUESTED
        return cls.FAILED


class RaUsage(enum.Enum):
    """What a registration authority certificate is used for in SCEP."""

    SIGNING = "signing"
    ENCRYPTION = "encryption"


# --------------------------------------------------------------------------- errors


class TrustpointError(PkiError):
    """Root of the trustpoint/enrollment errors."""

    error_app_tag = "trustpoint-error"


class InvalidTrustpointConfigError(TrustpointError):
    """A trustpoint configuration the backend cannot use (bad retry values, URL and terminal)."""

    error_tag = "invalid-value"
    error_app_tag = "invalid-trustpoint-config"


class NoEnrollmentMethodError(TrustpointError):
    """Neither ``enrollment url`` nor ``enrollment terminal`` is configured."""

    error_tag = "operation-failed"
    error_app_tag = "no-enrollment-method"


class CaCertificateRequiredError(TrustpointError):
    """A terminal trustpoint is authenticated with a pasted CA certificate, and none was given."""

    error_tag = "invalid-value"
    error_app_tag = "ca-certificate-required"


class UnexpectedCaCertificateError(TrustpointError):
    """A CA certificate was pasted for a trustpoint that fetches it over SCEP."""

    error_tag = "invalid-value"
    error_app_tag = "unexpected-ca-certificate"


class CaUnreachableError(TrustpointError):
    """The CA's SCEP URL did not give its certificate (unreachable, HTTP error, bad answer)."""

    error_tag = "operation-failed"
    error_app_tag = "ca-unreachable"


class FingerprintMismatchError(TrustpointError):
    """The CA certificate does not have the fingerprint the operator verified."""

    error_tag = "invalid-value"
    error_app_tag = "fingerprint-mismatch"


class UntrustedCaError(TrustpointError):
    """A CA certificate that is not a CA, not self-signed, or expired, and chains to nothing trusted."""

    error_tag = "invalid-value"
    error_app_tag = "untrusted-ca-certificate"


class CaAlreadyAuthenticatedError(TrustpointError):
    """The trustpoint already trusts another CA certificate (clear it first)."""

    error_tag = "data-exists"
    error_app_tag = "ca-already-authenticated"


class NoEnrollmentInProgressError(TrustpointError):
    """``ca-cancel-enroll`` with nothing pending."""

    error_tag = "data-missing"
    error_app_tag = "no-enrollment-in-progress"


class EnrollmentInProgressError(TrustpointError):
    """``ca-enroll`` while another enrollment or poll of the trustpoint is talking to its CA."""

    error_tag = "in-use"
    error_app_tag = "enrollment-in-progress"


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class TrustpointConfig:
    """One ``crypto ca trustpoint`` of the running configuration.

    ``rsakeypair`` None means the default key pair (``the_default``), as the
    seed says: "Not setting this key pair means that the trustpoint uses the
    default RSA key". ``retry_period`` is in minutes (1..60), ``retry_count``
    the number of polls (1..100) after the request.

    Raises InvalidTrustpointConfigError (out-of-range retry values, both a URL
    and terminal, bad key label) and InvalidTrustpointNameError when built.
    """

    name: str
    enrollment_url: str | None = None
    terminal: bool = False
    retry_period: int = DEFAULT_RETRY_PERIOD
    retry_count: int = DEFAULT_RETRY_COUNT
    query_url: str | None = None
    rsakeypair: str | None = None
    subject_name: str | None = None

    def __post_init__(self) -> None:
        validate_trustpoint_name(self.name)
        for what, value, low, high in (
            ("retry period", self.retry_period, MIN_RETRY_PERIOD, MAX_RETRY_PERIOD),
            ("retry count", self.retry_count, MIN_RETRY_COUNT, MAX_RETRY_COUNT),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidTrustpointConfigError(
                    f"trustpoint {self.name}: enrollment {what} {value!r} is outside {low}..{high}"
                )
        if self.enrollment_url is not None and self.terminal:
            raise InvalidTrustpointConfigError(
                f"trustpoint {self.name}: configure either enrollment url or enrollment terminal, not both"
            )
        if self.rsakeypair is not None:
            try:
                validate_label(self.rsakeypair)
            except PkiError as exc:
                raise InvalidTrustpointConfigError(f"trustpoint {self.name}: {exc.message}") from None

    @property
    def key_label(self) -> str:
        """The key label whose pairs get certificates (``rsakeypair``, else the default)."""
        return self.rsakeypair or DEFAULT_LABEL

    @property
    def method(self) -> EnrollmentMethod | None:
        """The configured enrollment method, None if there is none."""
        if self.enrollment_url:
            return EnrollmentMethod.URL
        if self.terminal:
            return EnrollmentMethod.TERMINAL
        return None

    def require_method(self) -> EnrollmentMethod:
        """The enrollment method. Raises NoEnrollmentMethodError if none is configured."""
        method = self.method
        if method is None:
            raise NoEnrollmentMethodError(
                f"trustpoint {self.name} has no enrollment method: configure enrollment url "
                "CA-URL (SCEP) or enrollment terminal (cut-and-paste)"
            )
        return method


# --------------------------------------------------------------------------- results and state


@dataclass(frozen=True)
class RaCertificate:
    """A registration authority certificate that acts for the CA, and its roles."""

    info: CertificateInfo
    usages: tuple[RaUsage, ...]


@dataclass(frozen=True)
class AuthenticationResult:
    """``ca-authenticate``: the CA certificate (as the router shows it) and whether it is now trusted."""

    trustpoint: str
    ca: CertificateInfo
    ra: tuple[RaCertificate, ...]
    installed: bool
    message: str


@dataclass(frozen=True)
class EnrollmentRequest:
    """One key pair's certificate request: persisted state and what the state tree shows.

    ``attempts`` counts the request and every poll sent; ``fingerprint`` is the
    MD5 of the PKCS#10 request (the router prints it); ``subject_der`` is the
    request's subject (CertPoll needs it); ``public_key_sha256`` identifies the
    key pair the request was made for, so a replaced key is noticed.
    """

    trustpoint: str
    key_usage: KeyUsage
    key_label: str
    public_key_sha256: str
    state: RequestState
    fingerprint: str
    subject_der: bytes
    created: dt.datetime
    updated: dt.datetime
    transaction_id: str | None = None
    attempts: int = 0
    last_attempt: dt.datetime | None = None
    next_poll: dt.datetime | None = None
    last_error: str | None = None
    serial_number: str | None = None

    @property
    def subject(self) -> str:
        """The request's subject as the router prints names."""
        try:
            return format_name(name_from_der(self.subject_der))
        except ValueError:
            return ""

    @property
    def subject_name(self) -> x509.Name:
        """The request's subject. Raises ValueError if the stored DER is unreadable."""
        return name_from_der(self.subject_der)

    @property
    def polls(self) -> int:
        """Polls sent after the request itself."""
        return max(self.attempts - 1, 0)

    def evolve(self, **changes: Any) -> EnrollmentRequest:
        """A copy with ``changes`` applied (fields as keywords)."""
        return replace(self, **changes)

    def to_json(self) -> bytes:
        """The persisted form (JSON, no secrets). Raises nothing."""
        record = {
            "format": _RECORD_FORMAT,
            "trustpoint": self.trustpoint,
            "key_usage": self.key_usage.value,
            "key_label": self.key_label,
            "public_key_sha256": self.public_key_sha256,
            "state": self.state.value,
            "fingerprint": self.fingerprint,
            "subject": base64.b64encode(self.subject_der).decode("ascii"),
            "created": self.created.isoformat(),
            "updated": self.updated.isoformat(),
            "transaction_id": self.transaction_id,
            "attempts": self.attempts,
            "last_attempt": _iso(self.last_attempt),
            "next_poll": _iso(self.next_poll),
            "last_error": self.last_error,
            "serial_number": self.serial_number,
        }
        return json.dumps(record, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, trustpoint: str, key_usage: KeyUsage) -> EnrollmentRequest:
        """Read a persisted request back.

        Raises ValueError if the data is not a request of ``trustpoint`` for ``key_usage``.
        """
        try:
            record = json.loads(data)
            if record.get("format") != _RECORD_FORMAT:
                raise ValueError("not an enrollment record")
            if record["trustpoint"] != trustpoint or record["key_usage"] != key_usage.value:
                raise ValueError("the record belongs to another trustpoint or key usage")
            result = cls(
                trustpoint=trustpoint,
                key_usage=key_usage,
                key_label=str(record["key_label"]),
                public_key_sha256=str(record["public_key_sha256"]),
                state=RequestState(record["state"]),
                fingerprint=str(record["fingerprint"]),
                subject_der=base64.b64decode(record["subject"], validate=True),
                created=_aware(record["created"]),
                updated=_aware(record["updated"]),
                transaction_id=_opt_str(record.get("transaction_id")),
                attempts=int(record.get("attempts", 0)),
                last_attempt=_opt_time(record.get("last_attempt")),
                next_poll=_opt_time(record.get("next_poll")),
                last_error=_opt_str(record.get("last_error")),
                serial_number=_opt_str(record.get("serial_number")),
            )
        except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise ValueError(f"malformed enrollment record ({type(exc).__name__})") from None
        return result


@dataclass(frozen=True)
class CertificateState:
    """A router certificate entry: installed (with its info) or pending (info None)."""

    key_usage: KeyUsage
    status: CertificateStatus
    info: CertificateInfo | None


@dataclass(frozen=True)
class TrustpointState:
    """Everything the state tree shows under one trustpoint."""

    name: str
    ca: CertificateInfo | None
    ra: tuple[RaCertificate, ...]
    certificates: dict[KeyUsage, CertificateState] = field(hash=False)
    requests: dict[KeyUsage, EnrollmentRequest] = field(hash=False)

    @property
    def authenticated(self) -> bool:
        """True if a CA certificate is installed."""
        return self.ca is not None

    @property
    def empty(self) -> bool:
        """True if there is nothing to show: no CA or RA certificate, no certificate, no request."""
        return self.ca is None and not (self.ra or self.certificates or self.requests)


@dataclass(frozen=True)
class RequestOutcome:
    """``ca-enroll`` output for one key pair."""

    key_usage: KeyUsage
    status: EnrollmentStatus
    state: RequestState
    transaction_id: str | None
    message: str
    fingerprint: str  # MD5 of the PKCS#10 request, upper-case hex
    serial_number: str | None = None
    certificate: CertificateInfo | None = None


@dataclass(frozen=True)
class EnrollmentOutcome:
    """``ca-enroll`` output: overall status and message, one record per key pair.

    ``certificate_requests`` holds the PEM requests of a cut-and-paste
    (terminal) enrollment, empty for SCEP.
    """

    trustpoint: str
    status: EnrollmentStatus
    message: str
    requests: dict[KeyUsage, RequestOutcome] = field(hash=False)
    certificate_requests: dict[KeyUsage, str] = field(hash=False, default_factory=dict)

    @property
    def transaction_id(self) -> str | None:
        """The SCEP transaction ID of the first request (None for terminal enrollment)."""
        return next((r.transaction_id for r in self.requests.values() if r.transaction_id), None)


@dataclass(frozen=True)
class KeyCertificate:
    """A router certificate found for (and removed with) a key pair: ``crypto key zeroize rsa``."""

    trustpoint: str
    key_usage: KeyUsage
    serial_number: str


@dataclass(frozen=True)
class CancelledRequest:
    """``ca-cancel-enroll`` output for one key pair."""

    key_usage: KeyUsage
    transaction_id: str | None


@dataclass(frozen=True)
class ImportedCertificate:
    """``ca-import-certificate`` output: the key pair the certificate landed on, and the certificate."""

    trustpoint: str
    key_usage: KeyUsage
    certificate: CertificateInfo


# --------------------------------------------------------------------------- outcome wording


def request_outcome(record: EnrollmentRequest, info: CertificateInfo | None = None) -> RequestOutcome:
    """``ca-enroll``'s per-key-pair output for ``record`` (``info``: the certificate just issued). Raises nothing."""
    usage = record.key_usage.display
    state = record.state
    if state is RequestState.ISSUED:
        message = f"{usage} certificate issued, serial {record.serial_number}"
    elif state is RequestState.PENDING:
        message = f"{usage} request pending at the CA (transaction ID {record.transaction_id}); the agent polls"
        if record.last_error:
            message += f"; last poll failed: {record.last_error}"
    elif state is RequestState.AWAITING_IMPORT:
        message = f"{usage} request ready: have the CA sign it, then import the certificate"
    else:
        message = f"{usage} request {state.value}: {record.last_error}"
    return RequestOutcome(
        key_usage=record.key_usage,
        status=EnrollmentStatus.of(state),
        state=state,
        transaction_id=record.transaction_id,
        message=message,
        fingerprint=record.fingerprint,
        serial_number=record.serial_number if state is RequestState.ISSUED else None,
        certificate=info,
    )


def summarize(
    tp: TrustpointConfig, outcomes: dict[KeyUsage, RequestOutcome], pems: dict[KeyUsage, str]
) -> EnrollmentOutcome:
    """``ca-enroll``'s output: REQUESTED (terminal), else FAILED if any failed, else PENDING if any
    is pending, else ISSUED; with a message in words. Raises nothing."""
    statuses = {o.status for o in outcomes.values()}
    if EnrollmentStatus.REQUESTED in statuses:
        status = EnrollmentStatus.REQUESTED
        count = "the certificate request" if len(outcomes) == 1 else f"the {len(outcomes)} certificate requests"
        message = (
            f"trustpoint {tp.name}: have the CA sign {count}, then import each certificate "
            f"(ca-import-certificate {tp.name})"
        )
    elif EnrollmentStatus.FAILED in statuses:
        status = EnrollmentStatus.FAILED
        failed = "; ".join(o.message for o in outcomes.values() if o.status is EnrollmentStatus.FAILED)
        message = f"certificate enrollment for trustpoint {tp.name} failed: {failed}"
    elif EnrollmentStatus.PENDING in statuses:
        status = EnrollmentStatus.PENDING
        pending = [o.transaction_id or "?" for o in outcomes.values() if o.status is EnrollmentStatus.PENDING]
        message = (
            f"certificate enrollment for trustpoint {tp.name} is pending at the CA (transaction ID "
            f"{', '.join(pending)}); polling every {tp.retry_period} minute(s), up to {tp.retry_count} times"
        )
    else:
        status = EnrollmentStatus.ISSUED
        serials = ", ".join(o.serial_number or "?" for o in outcomes.values())
        noun = "certificate" if len(outcomes) == 1 else "certificates"
        message = f"certificate enrollment for trustpoint {tp.name}: {noun} issued and installed, serial {serials}"
    return EnrollmentOutcome(tp.name, status, message, outcomes, pems)


# --------------------------------------------------------------------------- helpers


def name_from_der(der: bytes) -> x509.Name:
    """A ``cryptography`` Name from its DER, keeping every attribute's string type.

    ``cryptography`` has no public loader for a bare Name; asn1crypto parses it
    and the string tags are carried over, so ``public_bytes()`` gives ``der``
    back (SCEP servers may compare CertPoll's subject byte for byte).
    Raises ValueError if ``der`` is not a DER Name of string attributes.
    """
    try:
        parsed = ax509.Name.load(der)
        rdns = []
        for rdn in parsed.chosen:
            attrs = []
            for atv in rdn:
                value = atv["value"]
                native = value.native
                if not isinstance(native, str):
                    raise ValueError("a subject attribute is not a string")
                tag = _ASN1Type(value.dump()[0] & 0x1F)
                attrs.append(x509.NameAttribute(x509.ObjectIdentifier(atv["type"].dotted), native, _type=tag))
            rdns.append(x509.RelativeDistinguishedName(attrs))
        name = x509.Name(rdns)
    except (TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(f"unreadable subject name ({type(exc).__name__})") from None
    if name.public_bytes() != der:
        raise ValueError("the subject name is not in DER")
    return name


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _aware(text: object) -> dt.datetime:
    when = dt.datetime.fromisoformat(str(text))
    if when.tzinfo is None:
        raise ValueError("naive time in enrollment record")
    return when


def _opt_time(text: object) -> dt.datetime | None:
    return None if text is None else _aware(text)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
