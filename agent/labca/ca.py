"""A small real SCEP certification authority for demos and tests.

:class:`LabCa` issues certificates from CSRs, keeps pending requests for
manual approval, revokes and publishes a CRL, and answers SCEP pkiMessages
(PKCSReq, RenewalReq, CertPoll, GetCert, GetCRL) using the same CMS and
message code as the client. With ``ra=True`` a registration authority
certificate receives requests and signs CertReps, as NDES does.

Extension points (for deliberately misbehaving CAs in tests) are methods with
safe defaults: :meth:`LabCa.response_signer`, :meth:`LabCa.response_recipient_nonce`
and :meth:`LabCa.response_transaction_id`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets

from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AttributeOID, NameOID

from agent.clock import SYSTEM_CLOCK, Clock
from agent.labca.store import (
    LabCaError,
    LabCaNotFoundError,
    LabCaStateError,
    LabCaStore,
    RequestRecord,
    RequestState,
    RevocationList,
    serial_hex,
)
from agent.pki import cms
from agent.pki.certificate import key_usage
from agent.pki.scep.cacerts import CaCertificates
from agent.pki.scep.capabilities import CaCaps, Capability
from agent.pki.scep.errors import ScepProtocolError, ScepVerificationError
from agent.pki.scep.messages import (
    CertRep,
    FailInfo,
    IssuerAndSerial,
    IssuerAndSubject,
    MessageType,
    PkiMessage,
    PkiRequest,
    PkiStatus,
)

__all__ = ["LAB_CA_CAPS", "LabCa", "LabCaRequestError"]

log = logging.getLogger("agent.labca")

LAB_CA_CAPS = CaCaps.of(
    Capability.POST_PKI_OPERATION,
    Capability.SHA256,
    Capability.SHA1,
    Capability.AES,
    Capability.DES3,
    Capability.SCEP_STANDARD,
    Capability.RENEWAL,
)
CA_VALIDITY = dt.timedelta(days=3650)
CRL_VALIDITY = dt.timedelta(days=7)
CRL_REFRESH_MARGIN = dt.timedelta(hours=1)
DEFAULT_CA_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ca-agent"),
        x509.NameAttribute(NameOID.COMMON_NAME, "ca-agent Lab CA"),
    ]
)


class LabCaRequestError(LabCaError):
    """The bytes received are not a SCEP request the CA can even answer (HTTP 400)."""

    error_tag = "invalid-value"
    error_app_tag = "lab-ca-bad-request"


def _ski(public_key: rsa.RSAPublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def _same_public_key(a: object, b: object) -> bool:
    return (
        isinstance(a, rsa.RSAPublicKey) and isinstance(b, rsa.RSAPublicKey) and a.public_numbers() == b.public_numbers()
    )


def _challenge_of(csr: x509.CertificateSigningRequest) -> str | None:
    try:
        raw = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
    except x509.AttributeNotFound:
        return None
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _requested_extension(
    csr: x509.CertificateSigningRequest, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return csr.extensions.get_extension_for_class(kind)
    except (x509.ExtensionNotFound, ValueError):
        return None


class LabCa:
    """A persistent lab CA in ``data_dir`` (created on first use unless ``create=False``)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        challenge: str | None = None,
        manual_approval: bool = False,
        ra: bool = False,
        validity_days: int = 365,
        crl_url: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        create: bool = True,
        ca_subject: x509.Name = DEFAULT_CA_SUBJECT,
        key_size: int = 2048,
    ) -> None:
        """Open (or create) the CA.

        Raises LabCaNotFoundError if there is no CA and ``create`` is false,
        ValueError for a non-positive validity, OSError if the directory is
        not writable.
        """
        if validity_days <= 0:
            raise ValueError("validity_days must be positive")
        self.store = LabCaStore(data_dir, clock=clock)
        self.challenge = challenge
        self.manual_approval = manual_approval
        self.validity = dt.timedelta(days=validity_days)
        self.crl_url = crl_url
        """URL put in the CRL distribution point of issued certificates (None: no extension)."""
        self._clock = clock
        self._key_size = key_size
        if not self.store.exists() and not create:
            raise LabCaNotFoundError(f"there is no lab CA in {self.store.root}")
        with self.store.lock():
            if not self.store.exists():
                self._create_ca(ca_subject)
            if ra and not self.store.ra_cert_path.exists():
                self._create_ra()
        self.ca_key, self.ca_certificate = self.store.read_identity(self.store.ca_key_path, self.store.ca_cert_path)
        self.ra_key: rsa.RSAPrivateKey | None = None
        self.ra_certificate: x509.Certificate | None = None
        if ra:
            self.ra_key, self.ra_certificate = self.store.read_identity(self.store.ra_key_path, self.store.ra_cert_path)

    # ------------------------------------------------------------------ creation

    def _now(self) -> dt.datetime:
        return self._clock.now().replace(microsecond=0)

    def _create_ca(self, subject: x509.Name) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=self._key_size)
        now = self._now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(self.store.next_serial())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                key_usage(sign=True, ca=True),
                critical=True,
            )
            .add_extension(_ski(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        self.store.write_identity(self.store.ca_key_path, self.store.ca_cert_path, key, cert)
        log.info("lab CA created: %s", subject.rfc4514_string())

    def _create_ra(self) -> None:
        ca_key, ca_cert = self.store.read_identity(self.store.ca_key_path, self.store.ca_cert_path)
        key = rsa.generate_private_key(public_exponent=65537, key_size=self._key_size)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ca-agent"),
                x509.NameAttribute(NameOID.COMMON_NAME, "ca-agent Lab RA"),
            ]
        )
        now = self._now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(self.store.next_serial())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(ca_cert.not_valid_after_utc)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                key_usage(sign=True, encipher=True),
                critical=True,
            )
            .add_extension(_ski(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.store.write_identity(self.store.ra_key_path, self.store.ra_cert_path, key, cert)
        log.info("lab RA created: %s", subject.rfc4514_string())

    # ------------------------------------------------------------------ SCEP discovery

    @property
    def has_ra(self) -> bool:
        """True if requests go through the RA certificate."""
        return self.ra_certificate is not None

    def ca_caps(self) -> CaCaps:
        """What GetCACaps advertises."""
        return LAB_CA_CAPS

    def ca_certificates(self) -> CaCertificates:
        """What GetCACert returns (CA alone, or CA and RA)."""
        if self.ra_certificate is None:
            return CaCertificates(ca=self.ca_certificate, chain=(self.ca_certificate,))
        return CaCertificates(
            ca=self.ca_certificate,
            ra_signing=self.ra_certificate,
            ra_encryption=self.ra_certificate,
            chain=(self.ca_certificate, self.ra_certificate),
        )

    # ------------------------------------------------------------------ extension points

    def exchange_identity(self) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        """Key and certificate that requests are encrypted to (RA if any, else CA)."""
        if self.ra_key is not None and self.ra_certificate is not None:
            return self.ra_key, self.ra_certificate
        return self.ca_key, self.ca_certificate

    def response_signer(self) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        """Key and certificate that sign CertReps (RA if any, else CA)."""
        return self.exchange_identity()

    def response_recipient_nonce(self, message: PkiMessage) -> bytes:
        """The recipientNonce of the reply to ``message``: its senderNonce."""
        return message.sender_nonce or b""

    def response_transaction_id(self, message: PkiMessage) -> str:
        """The transactionID of the reply to ``message``: its own."""
        return message.transaction_id

    # ------------------------------------------------------------------ issuing

    def issue(self, csr: x509.CertificateSigningRequest) -> x509.Certificate:
        """Issue a certificate for ``csr`` now (takes the data directory lock).

        Raises LabCaError if the CSR key is not RSA/EC or the lock cannot be taken.
        """
        with self.store.lock():
            return self._issue_locked(csr)

    def _issue_locked(self, csr: x509.CertificateSigningRequest) -> x509.Certificate:
        public_key = csr.public_key()
        if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            raise LabCaError("the lab CA only certifies RSA and EC keys")
        now = self._now()
        serial = self.store.next_serial()
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.ca_certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now)
            .not_valid_after(min(now + self.validity, self.ca_certificate.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(self._key_usage_for(csr), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False)
        )
        for kind in (x509.ExtendedKeyUsage, x509.SubjectAlternativeName):
            requested = _requested_extension(csr, kind)
            if requested is not None:
                builder = builder.add_extension(requested.value, critical=requested.critical)
        if self.crl_url:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[x509.UniformResourceIdentifier(self.crl_url)],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(self.ca_key, hashes.SHA256())
        self.store.write_certificate(cert)
        log.info("issued serial %s to %s", serial_hex(serial), csr.subject.rfc4514_string())
        return cert

    @staticmethod
    def _key_usage_for(csr: x509.CertificateSigningRequest) -> x509.KeyUsage:
        requested = _requested_extension(csr, x509.KeyUsage)
        if requested is not None:
            usage = requested.value
            assert isinstance(usage, x509.KeyUsage)
            if not usage.key_cert_sign and not usage.crl_sign:
                return usage
        return key_usage(sign=True, encipher=True)

    # ------------------------------------------------------------------ administration

    def requests(self, state: RequestState | None = None) -> list[RequestRecord]:
        """Requests on disk (all, or only those in ``state``), oldest first."""
        return [r for r in self.store.list_requests() if state is None or r.state is state]

    def pending(self) -> list[RequestRecord]:
        """Requests waiting for :meth:`approve` or :meth:`reject`."""
        return self.requests(RequestState.PENDING)

    def approve(self, transaction_id: str) -> RequestRecord:
        """Approve a pending request; the certificate is issued at the next poll.

        Raises LabCaNotFoundError for an unknown transaction, LabCaStateError
        if it is not pending.
        """
        with self.store.lock():
            record = self._pending_record(transaction_id)
            record = record.with_state(RequestState.APPROVED, self._now())
            self.store.write_request(record)
        log.info("approved %s (%s)", transaction_id, record.subject)
        return record

    def reject(self, transaction_id: str, reason: str | None = None) -> RequestRecord:
        """Reject a pending request; its next poll gets FAILURE badRequest.

        Raises LabCaNotFoundError for an unknown transaction, LabCaStateError
        if it is not pending.
        """
        with self.store.lock():
            record = self._pending_record(transaction_id)
            record = record.with_state(RequestState.REJECTED, self._now(), reason=reason or "rejected by the CA administrator")
            self.store.write_request(record)
        log.info("rejected %s (%s)", transaction_id, record.subject)
        return record

    def _pending_record(self, transaction_id: str) -> RequestRecord:
        record = self.store.read_request(transaction_id)
        if record is None:
            raise LabCaNotFoundError(f"no request with transaction ID {transaction_id}")
        if record.state is not RequestState.PENDING:
            raise LabCaStateError(f"request {transaction_id} is {record.state.value}, not pending")
        return record

    def certificate(self, serial: int) -> x509.Certificate | None:
        """The certificate issued with ``serial`` (None if unknown)."""
        return self.store.read_certificate(serial)

    def revoke(self, serial: int, reason: x509.ReasonFlags | None = None) -> x509.CertificateRevocationList:
        """Revoke an issued certificate and publish a new CRL (returned).

        ``reason`` goes into the CRL entry's reasonCode extension (none when None).
        Raises LabCaNotFoundError if this CA issued no such serial,
        LabCaStateError if it is already revoked.
        """
        with self.store.lock():
            if self.store.read_certificate(serial) is None:
                raise LabCaNotFoundError(f"the lab CA issued no certificate with serial {serial_hex(serial)}")
            revocations = self.store.read_revocations()
            if revocations.is_revoked(serial):
                raise LabCaStateError(f"serial {serial_hex(serial)} is already revoked")
            revocations = RevocationList(
                revoked=(*revocations.revoked, (serial, self._now())),
                crl_number=revocations.crl_number,
                reasons=(*revocations.reasons, *(((serial, reason.value),) if reason is not None else ())),
            )
            crl = self._publish_crl_locked(revocations)
        log.info("revoked serial %s", serial_hex(serial))
        return crl

    def crl(self) -> x509.CertificateRevocationList:
        """The current CRL, re-signed when missing or close to its nextUpdate."""
        current = self.store.read_crl()
        if current is not None and self._crl_fresh(current):
            return current
        with self.store.lock():
            current = self.store.read_crl()
            if current is not None and self._crl_fresh(current):
                return current
            return self._publish_crl_locked(self.store.read_revocations())

    def _crl_fresh(self, crl: x509.CertificateRevocationList) -> bool:
        next_update = crl.next_update_utc
        return next_update is not None and next_update - CRL_REFRESH_MARGIN > self._clock.now()

    def _publish_crl_locked(self, revocations: RevocationList) -> x509.CertificateRevocationList:
        now = self._now()
        number = revocations.crl_number + 1
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca_certificate.subject)
            .last_update(now)
            .next_update(now + CRL_VALIDITY)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False)
        )
        for serial, when in revocations.revoked:
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            reason = revocations.reason(serial)
            if reason is not None:
                entry = entry.add_extension(x509.CRLReason(x509.ReasonFlags(reason)), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        crl = builder.sign(self.ca_key, hashes.SHA256())
        self.store.write_revocations(
            RevocationList(revoked=revocations.revoked, crl_number=number, reasons=revocations.reasons)
        )
        self.store.write_crl(crl)
        return crl

    # ------------------------------------------------------------------ SCEP PKIOperation

    def handle_pki_operation(self, data: bytes) -> bytes:
        """Answer one SCEP pkiMessage with a signed CertRep (DER).

        Raises LabCaRequestError if ``data`` is not a request that can be
        answered at all (not a pkiMessage, a CertRep, or no senderNonce).
        """
        try:
            message = PkiMessage.from_der(data)
        except ScepProtocolError as exc:
            raise LabCaRequestError(exc.message) from exc
        if message.message_type is MessageType.CERT_REP:
            raise LabCaRequestError("a CertRep is not a request")
        if not message.sender_nonce:
            raise LabCaRequestError("the request has no senderNonce")
        key, cert = self.exchange_identity()
        requester: x509.Certificate | None = None
        try:
            request, requester = PkiRequest.from_message(message, key=key, certificate=cert)
        except ScepVerificationError as exc:
            rep = self._failure(message, FailInfo.BAD_MESSAGE_CHECK, exc.message)
        except ScepProtocolError as exc:
            rep = self._failure(message, FailInfo.BAD_MESSAGE_CHECK, exc.message)
        else:
            rep = self._dispatch(message, request, requester)
        if rep.status is not PkiStatus.SUCCESS:
            requester = None
        signer_key, signer_cert = self.response_signer()
        return rep.to_der(
            signer_key=signer_key,
            signer_cert=signer_cert,
            recipient=requester,
            digest=message.digest,
            encryption=self._reply_encryption(message),
            signing_time=self._clock.now(),
        )

    @staticmethod
    def _reply_encryption(message: PkiMessage) -> cms.ContentEncryption:
        used = message.envelope_encryption
        if used is None or used is cms.ContentEncryption.DES_CBC:
            return cms.ContentEncryption.AES128_CBC
        return used

    def _reply(self, message: PkiMessage, status: PkiStatus, **kwargs: object) -> CertRep:
        return CertRep(
            transaction_id=self.response_transaction_id(message),
            recipient_nonce=self.response_recipient_nonce(message),
            status=status,
            **kwargs,  # type: ignore[arg-type]
        )

    def _failure(self, message: PkiMessage, fail_info: FailInfo, text: str) -> CertRep:
        log.info("%s %s: FAILURE %s (%s)", message.message_type.name, message.transaction_id, fail_info.keyword, text)
        return self._reply(message, PkiStatus.FAILURE, fail_info=fail_info, fail_info_text=text)

    def _dispatch(self, message: PkiMessage, request: PkiRequest, requester: x509.Certificate) -> CertRep:
        body = request.body
        if isinstance(body, x509.CertificateSigningRequest):
            return self._enroll(message, request.message_type, body, requester)
        if isinstance(body, IssuerAndSubject):
            return self._poll(message, body, requester)
        if request.message_type is MessageType.GET_CERT:
            return self._get_cert(message, body)
        return self._get_crl(message, body)

    def _enroll(
        self,
        message: PkiMessage,
        message_type: MessageType,
        csr: x509.CertificateSigningRequest,
        requester: x509.Certificate,
    ) -> CertRep:
        if not csr.is_signature_valid:
            return self._failure(message, FailInfo.BAD_MESSAGE_CHECK, "the CSR signature does not verify")
        if message_type is MessageType.PKCS_REQ:
            if not _same_public_key(requester.public_key(), csr.public_key()):
                return self._failure(
                    message, FailInfo.BAD_MESSAGE_CHECK, "the PKCSReq is not signed with the CSR's key"
                )
            if self.challenge is not None:
                given = _challenge_of(csr)
                if given is None or not secrets.compare_digest(given.encode(), self.challenge.encode()):
                    return self._failure(message, FailInfo.BAD_REQUEST, "wrong or missing challenge password")
        else:
            problem = self._renewal_problem(requester)
            if problem:
                return self._failure(message, FailInfo.BAD_REQUEST, problem)
        txid = message.transaction_id
        with self.store.lock():
            existing = self.store.read_request(txid)
            if existing is not None and not _same_public_key(existing.csr.public_key(), csr.public_key()):
                return self._failure(message, FailInfo.BAD_REQUEST, "transaction ID already used for another key")
            if existing is not None and existing.state in (RequestState.PENDING, RequestState.APPROVED):
                return self._answer_locked(message, existing)
            if (
                existing is not None
                and existing.state is RequestState.ISSUED
                and existing.csr.public_bytes(Encoding.DER) == csr.public_bytes(Encoding.DER)
                and existing.serial is not None
                and not self.store.read_revocations().is_revoked(existing.serial)
            ):
                return self._answer_locked(message, existing)  # a resent request: same certificate
            now = self._now()
            record = RequestRecord(transaction_id=txid, state=RequestState.PENDING, csr=csr, created=now, updated=now)
            if self.manual_approval and message_type is MessageType.PKCS_REQ:
                self.store.write_request(record)
                log.info("request %s from %s is pending approval", txid, csr.subject.rfc4514_string())
                return self._reply(message, PkiStatus.PENDING)
            return self._answer_locked(message, record.with_state(RequestState.APPROVED, now))

    def _renewal_problem(self, requester: x509.Certificate) -> str | None:
        try:
            requester.verify_directly_issued_by(self.ca_certificate)
        except (ValueError, TypeError, InvalidSignature):
            return "a RenewalReq must be signed with a certificate this CA issued"
        if self.store.read_revocations().is_revoked(requester.serial_number):
            return "the certificate signing the RenewalReq is revoked"
        if requester.not_valid_after_utc < self._clock.now():
            return "the certificate signing the RenewalReq has expired"
        return None

    def _answer_locked(self, message: PkiMessage, record: RequestRecord) -> CertRep:
        """The reply for a known request, issuing it if approved (caller holds the lock)."""
        if record.state is RequestState.PENDING:
            return self._reply(message, PkiStatus.PENDING)
        if record.state is RequestState.REJECTED:
            return self._failure(message, FailInfo.BAD_REQUEST, record.reason or "rejected by the CA")
        if record.state is RequestState.APPROVED:
            cert = self._issue_locked(record.csr)
            self.store.write_request(record.with_state(RequestState.ISSUED, self._now(), serial=cert.serial_number))
            return self._reply(message, PkiStatus.SUCCESS, certificates=(cert,))
        stored = self.store.read_certificate(record.serial) if record.serial is not None else None
        if stored is None:
            return self._failure(message, FailInfo.BAD_CERT_ID, "the issued certificate is missing")
        return self._reply(message, PkiStatus.SUCCESS, certificates=(stored,))

    def _poll(self, message: PkiMessage, body: IssuerAndSubject, requester: x509.Certificate) -> CertRep:
        with self.store.lock():
            record = self.store.read_request(message.transaction_id)
            if record is None:
                return self._failure(message, FailInfo.BAD_CERT_ID, "no request with this transaction ID")
            if not _same_public_key(requester.public_key(), record.csr.public_key()):
                return self._failure(
                    message, FailInfo.BAD_MESSAGE_CHECK, "the CertPoll is not signed with the request's key"
                )
            if body.subject != record.csr.subject.public_bytes() and not _same_name(body.subject, record.csr.subject):
                return self._failure(message, FailInfo.BAD_CERT_ID, "the subject does not match the request")
            return self._answer_locked(message, record)

    def _get_cert(self, message: PkiMessage, body: IssuerAndSerial) -> CertRep:
        cert = self.store.read_certificate(body.serial)
        if cert is None or body.issuer != self.ca_certificate.subject.public_bytes():
            return self._failure(message, FailInfo.BAD_CERT_ID, f"no certificate with serial {serial_hex(body.serial)}")
        return self._reply(message, PkiStatus.SUCCESS, certificates=(cert,))

    def _get_crl(self, message: PkiMessage, body: IssuerAndSerial) -> CertRep:
        if body.issuer != self.ca_certificate.subject.public_bytes():
            return self._failure(message, FailInfo.BAD_CERT_ID, "not a certificate of this CA")
        return self._reply(message, PkiStatus.SUCCESS, crls=(self.crl(),))


def _same_name(der: bytes, name: x509.Name) -> bool:
    """Compare a DER Name with a parsed one by its text form (tolerates string-type differences)."""
    try:
        other = ax509.Name.load(der)
    except ValueError:
        return False
    return bool(other.human_friendly == ax509.Name.load(name.public_bytes()).human_friendly)
