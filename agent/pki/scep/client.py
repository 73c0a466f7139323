"""SCEP client flow (RFC 8894): GetCACaps, GetCACert, PKCSReq and CertPoll.

One :class:`ScepClient` per CA URL. Each public call finishes within the
client's ``timeout`` (every HTTP exchange it makes included, e.g. the
GetCACaps an :meth:`ScepClient.enroll` may need first), and never after the
client's overall ``deadline`` when one is given. Polling schedules (retry
period/count) belong to the caller, which keeps the transaction ID returned
by :meth:`ScepClient.enroll`.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from agent.clock import SYSTEM_CLOCK, Clock
from agent.pki import cms
from agent.pki.scep.cacerts import CaCertificates
from agent.pki.scep.capabilities import CaCaps, CapabilitiesCache
from agent.pki.scep.errors import ScepError, ScepHttpError, ScepProtocolError, ScepVerificationError
from agent.pki.scep.http import ScepTransport
from agent.pki.scep.messages import (
    CertRep,
    FailInfo,
    IssuerAndSubject,
    MessageType,
    PkiMessage,
    PkiRequest,
    PkiStatus,
    RequestBody,
    new_nonce,
)

__all__ = ["EnrollmentResponse", "ScepClient", "transaction_id_for"]

_SIGNER_VALIDITY = dt.timedelta(days=1)
_SIGNER_BACKDATE = dt.timedelta(hours=1)


def _serial_hex(serial: int) -> str:
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text


def transaction_id_for(public_key: rsa.RSAPublicKey, digest: cms.DigestAlgorithm = cms.DigestAlgorithm.SHA256) -> str:
    """The transactionID derived from a key: upper-case hex digest of its SubjectPublicKeyInfo.

    Deterministic, so a restarted agent polls with the same ID.
    """
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return digest.digest(spki).hex().upper()


def _same_key(cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bool:
    public = cert.public_key()
    return isinstance(public, rsa.RSAPublicKey) and public.public_numbers() == key.public_key().public_numbers()


@dataclass(frozen=True)
class EnrollmentResponse:
    """Outcome of a PKCSReq or CertPoll.

    ``certificate`` is the issued certificate for our key (SUCCESS only);
    ``ca_certificates`` any other certificates the CA sent with it.
    """

    status: PkiStatus
    transaction_id: str
    certificate: x509.Certificate | None
    fail_info: FailInfo | None
    message: str
    fail_info_text: str | None = None
    ca_certificates: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True)
class _Exchange:
    rep: CertRep
    transaction_id: str


class ScepClient:
    """Talks SCEP to one CA/RA at ``url`` (a path-less URL gets /cgi-bin/pkiclient.exe)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
        caps: CaCaps | None = None,
        deadline: float | None = None,
        caps_cache: CapabilitiesCache | None = None,
    ) -> None:
        """``timeout`` bounds each call; ``deadline`` (the clock's monotonic time) all of them.

        ``caps_cache``, when given, supplies capabilities a recent GetCACaps
        to the same URL answered, and receives this client's answers.
        Raises ScepUrlError for a non-HTTP URL, ValueError for a non-positive timeout.
        """
        self._transport = ScepTransport(url, timeout=timeout, clock=clock)
        self._clock = clock
        self._caps = caps
        self._timeout = timeout
        self._deadline = deadline
        self._cache = caps_cache
        self._caps_from_cache = False

    @property
    def url(self) -> str:
        """The effective SCEP URL."""
        return self._transport.url

    def _call_deadline(self) -> float:
        """The deadline of a call starting now: ``timeout`` from now, capped by the overall deadline."""
        deadline = self._clock.monotonic() + self._timeout
        return deadline if self._deadline is None else min(deadline, self._deadline)

    # ------------------------------------------------------------------ discovery

    def get_ca_caps(self) -> CaCaps:
        """GetCACaps. A CA that does not implement it (HTTP 4xx/5xx) has no capabilities.

        The result is cached and decides the algorithms of later requests.
        Raises ScepTransportError if the server cannot be reached, does not
        answer in time or redirects elsewhere (ScepRedirectError).
        """
        return self._get_ca_caps(self._call_deadline())

    def _get_ca_caps(self, deadline: float) -> CaCaps:
        try:
            reply = self._transport.get("GetCACaps", deadline=deadline)
            caps = CaCaps.from_text(reply.body.decode("ascii", "replace"))
        except ScepHttpError:
            caps = CaCaps()
        self._caps = caps
        self._caps_from_cache = False
        if self._cache is not None:
            self._cache.put(self.url, caps)
        return caps

    def get_ca_certificates(self, ca_identifier: str | None = None) -> CaCertificates:
        """GetCACert: the CA certificate and RA certificates, if any.

        The caller must check the CA fingerprint out of band before trusting it.
        Raises ScepTransportError/ScepHttpError on transport failure,
        ScepProtocolError if the answer holds no usable certificates.
        """
        reply = self._transport.get("GetCACert", ca_identifier, deadline=self._call_deadline())
        return CaCertificates.from_http(reply.content_type, reply.body)

    def _capabilities(self, deadline: float) -> CaCaps:
        if self._caps is None and self._cache is not None:
            self._caps = self._cache.get(self.url)
            self._caps_from_cache = self._caps is not None
        return self._caps if self._caps is not None else self._get_ca_caps(deadline)

    # ------------------------------------------------------------------ enrollment

    def enroll(
        self,
        csr: x509.CertificateSigningRequest,
        private_key: rsa.RSAPrivateKey,
        ca_certs: CaCertificates,
        transaction_id: str | None = None,
    ) -> EnrollmentResponse:
        """Send a PKCSReq for ``csr`` (signed with ``private_key``, its key).

        The request is signed with a transient self-signed certificate for the
        key; ``transaction_id`` defaults to :func:`transaction_id_for` the key.
        Returns SUCCESS with the certificate, PENDING (poll later with the
        same transaction ID) or FAILURE with the failInfo.
        Raises ValueError if the CSR is not for ``private_key``;
        ScepTransportError/ScepHttpError on transport failure;
        ScepVerificationError if the CertRep is not signed by the CA/RA or its
        nonce or transaction ID do not match; ScepProtocolError if it is malformed.
        """
        public = csr.public_key()
        if (
            not isinstance(public, rsa.RSAPublicKey)
            or public.public_numbers() != private_key.public_key().public_numbers()
        ):
            raise ValueError("the CSR is not for the given private key")
        deadline = self._call_deadline()
        caps = self._capabilities(deadline)
        txid = transaction_id or transaction_id_for(private_key.public_key(), caps.digest_algorithm())
        exchange = self._transact(MessageType.PKCS_REQ, txid, csr, csr.subject, private_key, ca_certs, deadline)
        return self._response(exchange, private_key, new_request=True)

    def poll(
        self,
        transaction_id: str,
        subject: x509.Name,
        private_key: rsa.RSAPrivateKey,
        ca_certs: CaCertificates,
    ) -> EnrollmentResponse:
        """Send a CertPoll (GetCertInitial) for a PENDING request.

        ``subject`` is the subject of the original CSR. Returns and raises as
        :meth:`enroll`.
        """
        body = IssuerAndSubject.from_names(ca_certs.ca.subject, subject)
        exchange = self._transact(
            MessageType.CERT_POLL, transaction_id, body, subject, private_key, ca_certs, self._call_deadline()
        )
        return self._response(exchange, private_key)

    # ------------------------------------------------------------------ internals

    def _signer_certificate(self, private_key: rsa.RSAPrivateKey, subject: x509.Name, txid: str) -> x509.Certificate:
        """A transient self-signed certificate for the request key (RFC 8894 section 2.3).

        Its own signature is always SHA-256: only its public key matters to the CA.
        """
        if not len(subject):
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, txid[:64])])
        now = self._clock.now()
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SIGNER_BACKDATE)
            .not_valid_after(now + _SIGNER_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(private_key, hashes.SHA256())
        )

    def _transact(
        self,
        message_type: MessageType,
        transaction_id: str,
        body: RequestBody,
        signer_subject: x509.Name,
        private_key: rsa.RSAPrivateKey,
        ca_certs: CaCertificates,
        deadline: float,
    ) -> _Exchange:
        caps = self._capabilities(deadline)
        digest = caps.digest_algorithm()
        signer_cert = self._signer_certificate(private_key, signer_subject, transaction_id)
        request = PkiRequest(
            message_type=message_type, transaction_id=transaction_id, sender_nonce=new_nonce(), body=body
        )
        der = request.to_der(
            signer_key=private_key,
            signer_cert=signer_cert,
            recipient=ca_certs.recipient,
            digest=digest,
            encryption=caps.content_encryption(),
            signing_time=self._clock.now(),
        )
        try:
            if caps.post:
                reply = self._transport.post("PKIOperation", der, deadline=deadline)
            else:
                reply = self._transport.get("PKIOperation", der, deadline=deadline)
            message = PkiMessage.from_der(reply.body)
            # Signature first (inside from_message): nothing in an unverified message is worth reporting.
            rep = CertRep.from_message(message, signers=ca_certs.signers, key=private_key, certificate=signer_cert)
        except ScepError:
            if self._caps_from_cache and self._cache is not None:
                self._cache.forget(self.url)  # the CA may have changed: ask again next time
            raise
        if rep.transaction_id != transaction_id:
            raise ScepVerificationError(
                f"the CertRep's transactionID {rep.transaction_id!r} is not ours ({transaction_id!r})"
            )
        if not secrets.compare_digest(rep.recipient_nonce, request.sender_nonce):
            raise ScepVerificationError("the CertRep's recipientNonce does not match our senderNonce")
        return _Exchange(rep=rep, transaction_id=transaction_id)

    def _response(
        self, exchange: _Exchange, private_key: rsa.RSAPrivateKey, new_request: bool = False
    ) -> EnrollmentResponse:
        rep = exchange.rep
        txid = exchange.transaction_id
        if rep.status is PkiStatus.SUCCESS:
            mine = next((c for c in rep.certificates if _same_key(c, private_key)), None)
            if mine is None:
                raise ScepProtocolError("the CA reported SUCCESS but sent no certificate for our key")
            others = tuple(c for c in rep.certificates if c is not mine)
            return EnrollmentResponse(
                status=rep.status,
                transaction_id=txid,
                certificate=mine,
                fail_info=None,
                message=f"certificate issued: serial {_serial_hex(mine.serial_number)}, "
                f"subject {mine.subject.rfc4514_string()}",
                ca_certificates=others,
            )
        if rep.status is PkiStatus.PENDING:
            return EnrollmentResponse(
                status=rep.status,
                transaction_id=txid,
                certificate=None,
                fail_info=None,
                message=f"request pending approval at the CA (transaction ID {txid})",
            )
        # The CA's own words (failInfoText) say why; failInfo's generic meaning only when it gave none.
        if rep.fail_info_text and rep.fail_info is not None:
            text = f"CA rejected the request ({rep.fail_info.keyword}): {rep.fail_info_text}"
        elif rep.fail_info_text:
            text = f"CA rejected the request: {rep.fail_info_text}"
        elif rep.fail_info is None:
            text = "CA rejected the request (no reason given)"
        else:
            text = f"CA rejected the request: {rep.fail_info.keyword} ({rep.fail_info.description})"
            if new_request and rep.fail_info is FailInfo.BAD_REQUEST:
                # What a CA refusing a new request without a word usually means (e.g. micromdm scepserver).
                text += "; a wrong or missing challenge password?"
        return EnrollmentResponse(
            status=rep.status,
            transaction_id=txid,
            certificate=None,
            fail_info=rep.fail_info,
            message=text,
            fail_info_text=rep.fail_info_text,
        )
