"""Verifying a peer's certificate, as IKE does on the router: path, purpose, revocation.

Path building and validation, and CRL processing, are pyhanko-certvalidator's
(:class:`~pyhanko_certvalidator.CertificateValidator` over a
:class:`~pyhanko_certvalidator.ValidationContext` whose trust roots are the
candidate anchors); this module chooses the anchors, the purpose and the
CRL, runs the library, and words its verdict for a person.

1. The path is validated without revocation (``NO_CHECK``) against every
   candidate anchor: each trustpoint with an authenticated CA certificate and
   each trustpool CA (the caller passes them as :class:`Anchor` values). The
   anchor that validated it names the trustpoint (or ``trustpool``).
2. The purpose is checked (key usage / extended key usage, see
   :class:`Purpose`).
3. The CRL of the CA that issued the peer certificate is taken from the
   cache while fresh, else fetched now (:class:`~agent.pki.revocation.CrlManager`:
   the anchor's ``query url`` first, then the certificate's CRL distribution
   points), and the path is validated again with that CRL mandatory for the
   peer certificate (``CRL_REQUIRED``); the library says good, revoked (with
   date and reason) or indeterminate. Without any CRL location the status is
   ``not-checked``; a CRL that cannot be obtained makes it ``unknown``, and
   the certificate is then accepted only with ``crl optional``.

Only the peer certificate's revocation is checked: the CAs above it are
trusted as configured (``crypto ca authenticate``, the trustpool).
No lock is held anywhere here; the CRL fetch runs in the caller's thread.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import enum
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko_certvalidator import CertificateValidator, ValidationContext, validate_usage
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    NotYetValidError,
    PathBuildingError,
    PathError,
    RevokedError,
    ValidationError,
)
from pyhanko_certvalidator.errors import InvalidCertificateError as UsageError
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy, RevocationCheckingRule

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import PkiError
from agent.pki.certificate import (
    CertificateInfo,
    InvalidCertificateError,
    format_name,
    format_router_date,
    load_certificates,
)
from agent.pki.certvalidator_adapter import is_bad_signature
from agent.pki.revocation import CrlError, CrlManager, NoCrlSourceError

__all__ = [
    "Anchor",
    "Failure",
    "NoAnchorError",
    "PeerVerifier",
    "Purpose",
    "RevocationStatus",
    "Verification",
    "TRUSTPOOL",
]

TRUSTPOOL = "trustpool"
"""The anchor name of trustpool CAs."""
MAX_CHAIN = 10
MAX_SAME_SUBJECT = 3
"""Certificates given with one subject name (a CA and its cross-signed copies). pyhanko-certvalidator
takes every certificate whose subject is a certificate's issuer name as a possible issuer, and walks
every path before it gives up: ten certificates of one name, each naming itself as issuer, took it
105 s of CPU. At most three per name, any ten take it under 0.1 s."""


class Purpose(enum.Enum):
    """What the peer certificate is used for, and what that requires of it.

    - ``ike``: IKE signature authentication (RFC 4945): keyUsage must allow
      digitalSignature; any extendedKeyUsage is accepted (RFC 4945 5.1.3.12
      leaves it to policy, and CAs put clientAuth/serverAuth there).
    - ``tls-client``: digitalSignature, and clientAuth when the certificate
      has an extendedKeyUsage.
    - ``tls-server``: digitalSignature (ECDHE / TLS 1.3), and serverAuth when
      the certificate has an extendedKeyUsage.
    - ``any``: no usage check.

    A certificate without a keyUsage extension passes the keyUsage part (RFC
    5280 4.2.1.3: no restriction).
    """

    IKE = "ike"
    TLS_CLIENT = "tls-client"
    TLS_SERVER = "tls-server"
    ANY = "any"

    @property
    def requirements(self) -> tuple[frozenset[str], frozenset[str]]:
        """(key usages, extended key usages) in pyhanko-certvalidator's names."""
        return _PURPOSES[self]


_PURPOSES: dict[Purpose, tuple[frozenset[str], frozenset[str]]] = {
    Purpose.IKE: (frozenset({"digital_signature"}), frozenset()),
    Purpose.TLS_CLIENT: (frozenset({"digital_signature"}), frozenset({"client_auth"})),
    Purpose.TLS_SERVER: (frozenset({"digital_signature"}), frozenset({"server_auth"})),
    Purpose.ANY: (frozenset(), frozenset()),
}


class RevocationStatus(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    NOT_CHECKED = "not-checked"


class Failure(enum.Enum):
    """Why a certificate was refused."""

    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    UNKNOWN_CA = "unknown-ca"
    BAD_SIGNATURE = "bad-signature"
    WRONG_PURPOSE = "wrong-purpose"
    REVOKED = "revoked"
    CRL_UNREACHABLE = "crl-unreachable"
    INVALID_PATH = "invalid-path"


class NoAnchorError(PkiError):
    """There is nothing to verify against (no authenticated trustpoint, empty trustpool)."""

    error_tag = "operation-failed"
    error_app_tag = "no-trust-anchor"


@dataclass(frozen=True)
class Anchor:
    """A candidate trust anchor: a trustpoint's CA certificate, or a trustpool CA (name ``trustpool``)."""

    name: str
    certificate: x509.Certificate
    crl_optional: bool = False
    query_url: str | None = None


@dataclass(frozen=True)
class Verification:
    """The verdict on a peer certificate (the ``ca-verify-certificate`` output)."""

    valid: bool
    trustpoint: str | None
    chain: tuple[CertificateInfo, ...]  # the peer certificate first, up to the anchor
    revocation: RevocationStatus
    message: str
    failure: Failure | None = None
    revocation_date: dt.datetime | None = None
    revocation_reason: str | None = None  # RFC 5280 name
    crl_source: str | None = None


# asn1crypto's CRLReason names -> RFC 5280's (as in the YANG enumeration).
_REASONS = {
    "unspecified": "unspecified",
    "key_compromise": "keyCompromise",
    "ca_compromise": "cACompromise",
    "affiliation_changed": "affiliationChanged",
    "superseded": "superseded",
    "cessation_of_operation": "cessationOfOperation",
    "certificate_hold": "certificateHold",
    "remove_from_crl": "removeFromCRL",
    "privilege_withdrawn": "privilegeWithdrawn",
    "aa_compromise": "aACompromise",
}


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


# Two kinds of certificates pass here. Anchors (up to MAX_POOL in the trustpool, plus one per authenticated
# trustpoint) are looked at on every call, but only by subject name, which is all _anchor_key keeps of them.
# Certificates to verify, and the few anchors that can end their paths, are converted in full: a parsed
# certificate kept ~24 KiB once validated, and one cache of 4,096 for both kinds held ~100 MB after as many
# distinct peers, and recomputed every anchor's name on every call beyond 4,096 anchors (0.44 s at 4,200).
@functools.lru_cache(maxsize=256)
def _asn1(cert: x509.Certificate) -> ax509.Certificate:
    """The asn1crypto form the library takes (cached a little: a peer is often verified again soon)."""
    return ax509.Certificate.load(_der(cert))


@functools.lru_cache(maxsize=256)
def _subject_key(cert: x509.Certificate) -> str:
    """A certificate's subject as the library compares names (RFC 5280 7.1: case and spaces folded); cached."""
    return str(_asn1(cert).subject.hashable)


@functools.lru_cache(maxsize=65536)
def _anchor_key(cert: x509.Certificate) -> str:
    """:func:`_subject_key` of an anchor, from its subject alone (a few hundred bytes kept per anchor)."""
    return str(ax509.Name.load(cert.subject.public_bytes()).hashable)


def _candidates(certs: Sequence[x509.Certificate], anchors: Sequence[Anchor]) -> list[Anchor]:
    """The anchors that can end a path of ``certs``: those named as the issuer (or subject) of one of them.

    The library ends a path at the first anchor it meets, and it meets only anchors whose subject is a
    certificate's issuer name; it also indexes every anchor it is given, on every call (the names of
    certifi's 117 CAs, in the trustpool, took 9 of a verification's 10 ms). In order, so the same
    CA in a trustpoint and in the trustpool anchors on the trustpoint as before.
    """
    names = {_subject_key(c) for c in certs} | {str(_asn1(c).issuer.hashable) for c in certs}
    return [a for a in anchors if _anchor_key(a.certificate) in names]


class PeerVerifier:
    """Verifies peer certificates against given anchors, with CRLs from a :class:`CrlManager`. Thread-safe."""

    def __init__(self, crls: CrlManager, clock: Clock = SYSTEM_CLOCK) -> None:
        self._crls = crls
        self._clock = clock

    def verify(self, pem: str | bytes, anchors: Sequence[Anchor], purpose: Purpose = Purpose.ANY) -> Verification:
        """Verify the certificate in ``pem`` (the peer's first, then any intermediates it sent).

        Refusals are not exceptions: the result says why (expired, not yet
        valid, unknown CA, bad signature, wrong purpose, revoked, CRL
        unreachable). Raises InvalidCertificateError (unreadable input, more
        than MAX_CHAIN certificates, or more than MAX_SAME_SUBJECT with one
        subject name), NoAnchorError (``anchors`` empty).
        """
        certs = load_certificates(pem)
        if len(certs) > MAX_CHAIN:
            raise InvalidCertificateError(f"give at most {MAX_CHAIN} certificates (the peer's and its chain)")
        # Counted as the library compares names (case and spaces folded): 'Loop', 'LOOP', 'loop'... are one.
        by_name = collections.Counter(_subject_key(c) for c in certs)
        crowded, count = by_name.most_common(1)[0]
        if count > MAX_SAME_SUBJECT:
            example = next(c for c in certs if _subject_key(c) == crowded)
            raise InvalidCertificateError(
                f"give at most {MAX_SAME_SUBJECT} certificates with one subject name (a CA and its cross-signed "
                f"copies); {count} name {format_name(example.subject)}"
            )
        if not anchors:
            raise NoAnchorError(
                "there is nothing to verify against: authenticate a CA (crypto ca authenticate) "
                "or import CA certificates into the trustpool"
            )
        peer, sent = certs[0], certs[1:]
        given = tuple(CertificateInfo.from_x509(c) for c in certs)
        subject = format_name(peer.subject)
        now = self._clock.now()
        candidates = _candidates(certs, anchors)
        try:
            path = self._validate(peer, sent, candidates, now, None)
        except (ValidationError, PathError) as error:
            failure, message = self._explain(error, certs, anchors)
            return Verification(False, None, given, RevocationStatus.NOT_CHECKED, message, failure)
        anchor = self._anchor_of(path, candidates)
        chain_certs = [x509.load_der_x509_certificate(c.dump()) for c in path.iter_certs(include_root=True)]
        chain_certs.reverse()  # the peer first
        chain = tuple(CertificateInfo.from_x509(c) for c in chain_certs)
        key_usage, extended = purpose.requirements
        try:
            has_key_usage = _asn1(peer).key_usage_value is not None
            validate_usage(_asn1(peer), set(key_usage) if has_key_usage else set(), set(extended), True)
        except UsageError as error:
            return Verification(
                False,
                anchor.name,
                chain,
                RevocationStatus.NOT_CHECKED,
                f"wrong purpose: {subject} may not be used for {purpose.value} ({error.failure_msg})",
                Failure.WRONG_PURPOSE,
            )
        if len(chain_certs) < 2:
            return Verification(
                True, anchor.name, chain, RevocationStatus.NOT_CHECKED,
                f"{subject} is itself the trusted CA certificate of {_anchor_words(anchor)}",
            )
        return self._check_revocation(peer, sent, chain_certs[1], anchor, candidates, chain, now)

    # ------------------------------------------------------------------ revocation

    def _check_revocation(
        self,
        peer: x509.Certificate,
        sent: Sequence[x509.Certificate],
        issuer: x509.Certificate,
        anchor: Anchor,
        anchors: Sequence[Anchor],
        chain: tuple[CertificateInfo, ...],
        now: dt.datetime,
    ) -> Verification:
        subject = format_name(peer.subject)
        trusted = f"{subject} is trusted by {_anchor_words(anchor)}"
        sources = ([anchor.query_url] if anchor.query_url else []) + list(chain[0].crl_distribution_points)
        try:
            record = self._crls.obtain(issuer, sources)
        except NoCrlSourceError:
            return Verification(
                True, anchor.name, chain, RevocationStatus.NOT_CHECKED,
                f"{trusted}; revocation not checked: no query url and no CRL distribution point",
            )
        except CrlError as error:
            return self._unknown(anchor, chain, trusted, error.message, None)
        assert record.der is not None  # obtain() returns a record with a fresh CRL
        try:
            self._validate(peer, sent, anchors, now, record.der)
        except RevokedError as error:
            reason = _REASONS.get(str(error.reason.native), str(error.reason.native))
            when = error.revocation_dt
            return Verification(
                False, anchor.name, chain, RevocationStatus.REVOKED,
                f"revoked: {subject} was revoked at {format_router_date(when)} ({reason}), "
                f"according to the CRL from {record.source}",
                Failure.REVOKED, when, reason, record.source,
            )
        except InsufficientRevinfoError as error:
            return self._unknown(anchor, chain, trusted, error.failure_msg, record.source)
        except (ValidationError, PathError) as error:  # passed without the CRL: only the CRL can be at fault
            return self._unknown(anchor, chain, trusted, str(error), record.source)
        return Verification(
            True, anchor.name, chain, RevocationStatus.GOOD,
            f"{trusted}; not revoked (CRL from {record.source})", crl_source=record.source,
        )

    @staticmethod
    def _unknown(
        anchor: Anchor, chain: tuple[CertificateInfo, ...], trusted: str, why: str, source: str | None
    ) -> Verification:
        if anchor.crl_optional:
            return Verification(
                True, anchor.name, chain, RevocationStatus.UNKNOWN,
                f"{trusted}; revocation status unknown ({why}); accepted because crl optional is set",
                crl_source=source,
            )
        return Verification(
            False, anchor.name, chain, RevocationStatus.UNKNOWN,
            f"CRL unreachable: the revocation status of {chain[0].subject} is unknown ({why}); refused "
            f"(set 'crl optional' on {_anchor_words(anchor)} to accept certificates whose CRL cannot be obtained)",
            Failure.CRL_UNREACHABLE, crl_source=source,
        )

    # ------------------------------------------------------------------ the library

    @staticmethod
    def _validate(
        peer: x509.Certificate,
        sent: Sequence[x509.Certificate],
        anchors: Sequence[Anchor],
        now: dt.datetime,
        crl: bytes | None,
    ) -> ValidationPath:
        """One pyhanko-certvalidator run: with ``crl``, revocation checking of the peer certificate is mandatory."""
        ee_rule = RevocationCheckingRule.NO_CHECK if crl is None else RevocationCheckingRule.CRL_REQUIRED
        policy = CertRevTrustPolicy(RevocationCheckingPolicy(ee_rule, RevocationCheckingRule.NO_CHECK))
        others = [_asn1(c) for c in sent]
        context = ValidationContext(
            trust_roots=[_asn1(a.certificate) for a in anchors],
            other_certs=others,
            crls=None if crl is None else [crl],
            revinfo_policy=policy,
            moment=now,
            allow_fetching=False,
        )
        validator = CertificateValidator(_asn1(peer), intermediate_certs=others, validation_context=context)
        return asyncio.run(validator.async_validate_path())

    @staticmethod
    def _anchor_of(path: ValidationPath, anchors: Sequence[Anchor]) -> Anchor:
        root = hashlib.sha256(path.first.dump()).digest()
        for anchor in anchors:
            if hashlib.sha256(_der(anchor.certificate)).digest() == root:
                return anchor
        return anchors[0]  # unreachable: the library only anchors on what it was given

    @staticmethod
    def _explain(
        error: Exception, certs: Sequence[x509.Certificate], anchors: Sequence[Anchor]
    ) -> tuple[Failure, str]:
        """The failure kind and a sentence for a person."""
        known = [*certs, *(a.certificate for a in anchors)]
        if isinstance(error, ExpiredError):
            who = next((c for c in known if c.not_valid_after_utc == error.expired_dt), certs[0])
            return Failure.EXPIRED, (
                f"expired: the certificate {format_name(who.subject)} expired at "
                f"{format_router_date(error.expired_dt)}"
            )
        if isinstance(error, NotYetValidError):
            who = next((c for c in known if c.not_valid_before_utc == error.valid_from), certs[0])
            return Failure.NOT_YET_VALID, (
                f"not yet valid: the certificate {format_name(who.subject)} is valid from "
                f"{format_router_date(error.valid_from)}"
            )
        if is_bad_signature(error):
            which = "the peer certificate" if getattr(error, "is_ee_cert", True) else "a CA certificate of the chain"
            return Failure.BAD_SIGNATURE, (
                f"bad signature: the signature of {which} does not verify with its issuer's key "
                f"(the certificate was altered or forged, or is signed by another key of {format_name(certs[0].issuer)})"
            )
        if isinstance(error, (PathBuildingError, UsageError)):
            top = certs[-1]
            return Failure.UNKNOWN_CA, (
                f"unknown CA: no authenticated trustpoint or trustpool CA issued {format_name(top.subject)} "
                f"(issuer {format_name(top.issuer)}); authenticate that CA on a trustpoint "
                "(crypto ca authenticate) or import it into the trustpool"
            )
        detail = error.failure_msg if isinstance(error, ValidationError) else str(error)
        return Failure.INVALID_PATH, f"the certificate chain does not validate: {detail}"


def _anchor_words(anchor: Anchor) -> str:
    return "the trustpool" if anchor.name == TRUSTPOOL else f"trustpoint {anchor.name}"
