"""SCEP pkiMessages (RFC 8894 section 3): typed requests and CertRep.

Pure logic, no I/O. A pkiMessage is a CMS SignedData whose signed attributes
carry messageType, transactionID, nonces and (in CertRep) pkiStatus/failInfo,
and whose content is an EnvelopedData (pkcsPKIEnvelope) holding the request
body, or for a successful CertRep a degenerate certs-only SignedData.

Used by the client (build requests, parse and verify CertRep) and by the lab CA
(parse and open requests, build CertRep).
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from asn1crypto import cms as acms
from asn1crypto import core
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from agent.pki import cms
from agent.pki.scep.errors import ScepProtocolError, ScepVerificationError

__all__ = [
    "CertRep",
    "FailInfo",
    "IssuerAndSerial",
    "IssuerAndSubject",
    "MessageType",
    "PkiMessage",
    "PkiRequest",
    "PkiStatus",
    "RequestBody",
    "new_nonce",
]

OID_MESSAGE_TYPE = "2.16.840.1.113733.1.9.2"
OID_PKI_STATUS = "2.16.840.1.113733.1.9.3"
OID_FAIL_INFO = "2.16.840.1.113733.1.9.4"
OID_SENDER_NONCE = "2.16.840.1.113733.1.9.5"
OID_RECIPIENT_NONCE = "2.16.840.1.113733.1.9.6"
OID_TRANSACTION_ID = "2.16.840.1.113733.1.9.7"
OID_FAIL_INFO_TEXT = "1.3.6.1.5.5.7.24.1"

NONCE_SIZE = 16


class MessageType(enum.Enum):
    """SCEP messageType (a decimal PrintableString on the wire)."""

    CERT_REP = "3"
    RENEWAL_REQ = "17"
    UPDATE_REQ = "18"
    PKCS_REQ = "19"
    CERT_POLL = "20"
    GET_CERT = "21"
    GET_CRL = "22"


class PkiStatus(enum.Enum):
    """SCEP pkiStatus of a CertRep."""

    SUCCESS = "0"
    FAILURE = "2"
    PENDING = "3"


class FailInfo(enum.Enum):
    """SCEP failInfo of a CertRep with status FAILURE."""

    BAD_ALG = "0"
    BAD_MESSAGE_CHECK = "1"
    BAD_REQUEST = "2"
    BAD_TIME = "3"
    BAD_CERT_ID = "4"

    @property
    def keyword(self) -> str:
        """The RFC 8894 name, e.g. ``badRequest``."""
        return _FAIL_INFO_TEXT[self][0]

    @property
    def description(self) -> str:
        """What the failure means, for people."""
        return _FAIL_INFO_TEXT[self][1]


_FAIL_INFO_TEXT: dict[FailInfo, tuple[str, str]] = {
    FailInfo.BAD_ALG: ("badAlg", "unrecognized or unsupported algorithm"),
    FailInfo.BAD_MESSAGE_CHECK: ("badMessageCheck", "integrity check (signature verification) failed"),
    FailInfo.BAD_REQUEST: ("badRequest", "transaction not permitted or supported"),
    FailInfo.BAD_TIME: ("badTime", "signingTime was not close enough to the CA's clock"),
    FailInfo.BAD_CERT_ID: ("badCertId", "no certificate could be identified matching the request"),
}


def new_nonce() -> bytes:
    """A fresh 16-byte senderNonce."""
    return secrets.token_bytes(NONCE_SIZE)


# --------------------------------------------------------------------------- bodies


def _name_der(name: x509.Name) -> bytes:
    return name.public_bytes()


def _load_name(der: bytes) -> ax509.Name:
    return ax509.Name.load(der)


class _IssuerAndSubjectAsn1(core.Sequence):
    _fields = [("issuer", ax509.Name), ("subject", ax509.Name)]


@dataclass(frozen=True)
class IssuerAndSubject:
    """CertPoll body: the CA's name and the subject that was requested (DER Names)."""

    issuer: bytes
    subject: bytes

    @classmethod
    def from_names(cls, issuer: x509.Name, subject: x509.Name) -> IssuerAndSubject:
        """Build from ``cryptography`` names."""
        return cls(issuer=_name_der(issuer), subject=_name_der(subject))

    def to_der(self) -> bytes:
        """DER SEQUENCE { issuer Name, subject Name }."""
        value = _IssuerAndSubjectAsn1({"issuer": _load_name(self.issuer), "subject": _load_name(self.subject)})
        return bytes(value.dump())

    @classmethod
    def from_der(cls, data: bytes) -> IssuerAndSubject:
        """Parse the DER (or BER) body. Raises ScepProtocolError if malformed."""
        try:
            value = _IssuerAndSubjectAsn1.load(data)
            return cls(issuer=value["issuer"].dump(force=True), subject=value["subject"].dump(force=True))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise ScepProtocolError(f"malformed IssuerAndSubject: {exc}") from exc


@dataclass(frozen=True)
class IssuerAndSerial:
    """GetCert/GetCRL body: issuer Name (DER) and serial number."""

    issuer: bytes
    serial: int

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> IssuerAndSerial:
        """The issuer and serial of ``cert``."""
        return cls(issuer=_name_der(cert.issuer), serial=cert.serial_number)

    def to_der(self) -> bytes:
        """DER IssuerAndSerialNumber."""
        ias = acms.IssuerAndSerialNumber({"issuer": _load_name(self.issuer), "serial_number": self.serial})
        return bytes(ias.dump())

    @classmethod
    def from_der(cls, data: bytes) -> IssuerAndSerial:
        """Parse the DER (or BER) body. Raises ScepProtocolError if malformed."""
        try:
            ias = acms.IssuerAndSerialNumber.load(data)
            return cls(issuer=ias["issuer"].dump(force=True), serial=int(ias["serial_number"].native))
        except (ValueError, TypeError, KeyError) as exc:
            raise ScepProtocolError(f"malformed IssuerAndSerialNumber: {exc}") from exc


RequestBody = x509.CertificateSigningRequest | IssuerAndSubject | IssuerAndSerial

_CSR_TYPES = (MessageType.PKCS_REQ, MessageType.RENEWAL_REQ, MessageType.UPDATE_REQ)


# --------------------------------------------------------------------------- attributes


def _printable(value: str) -> core.PrintableString:
    return core.PrintableString(value)


def _decode_string(values: tuple[bytes, ...], what: str) -> str | None:
    if not values:
        return None
    try:
        native = core.load(values[0]).native
    except ValueError as exc:
        raise ScepProtocolError(f"the {what} attribute is malformed") from exc
    if isinstance(native, bytes):
        native = native.decode("ascii", "replace")
    if not isinstance(native, str):
        raise ScepProtocolError(f"the {what} attribute is not a string")
    return native


def _decode_octets(values: tuple[bytes, ...], what: str) -> bytes | None:
    if not values:
        return None
    try:
        native = core.OctetString.load(values[0]).native
    except ValueError as exc:
        raise ScepProtocolError(f"the {what} attribute is not an OCTET STRING") from exc
    return bytes(native)


# --------------------------------------------------------------------------- PkiMessage


@dataclass(frozen=True)
class PkiMessage:
    """A parsed, not yet verified, SCEP pkiMessage (request or CertRep).

    The attributes are read without verification so that a CA can still answer
    a request whose signature fails; call :meth:`verify` before trusting them.
    """

    message_type: MessageType
    transaction_id: str
    sender_nonce: bytes | None
    recipient_nonce: bytes | None
    status: PkiStatus | None
    fail_info: FailInfo | None
    fail_info_text: str | None
    digest: cms.DigestAlgorithm
    signed: cms.SignedMessage = field(repr=False)

    @classmethod
    def from_der(cls, data: bytes) -> PkiMessage:
        """Parse a DER/BER pkiMessage.

        Raises ScepProtocolError if it is not a SignedData or lacks a valid
        messageType or transactionID.
        """
        try:
            signed = cms.parse_signed_data(data)
        except cms.CmsError as exc:
            raise ScepProtocolError(f"not a SCEP pkiMessage: {exc.message}") from exc
        if not signed.signer_infos:
            raise ScepProtocolError("the SCEP pkiMessage is not signed")
        raw_type = _decode_string(signed.attribute(OID_MESSAGE_TYPE), "messageType")
        if raw_type is None:
            raise ScepProtocolError("the SCEP pkiMessage has no messageType")
        try:
            message_type = MessageType(raw_type.strip())
        except ValueError:
            raise ScepProtocolError(f"unknown SCEP messageType {raw_type!r}") from None
        transaction_id = _decode_string(signed.attribute(OID_TRANSACTION_ID), "transactionID")
        if not transaction_id:
            raise ScepProtocolError("the SCEP pkiMessage has no transactionID")
        status: PkiStatus | None = None
        raw_status = _decode_string(signed.attribute(OID_PKI_STATUS), "pkiStatus")
        if raw_status is not None:
            try:
                status = PkiStatus(raw_status.strip())
            except ValueError:
                raise ScepProtocolError(f"unknown SCEP pkiStatus {raw_status!r}") from None
        fail_info: FailInfo | None = None
        raw_fail = _decode_string(signed.attribute(OID_FAIL_INFO), "failInfo")
        if raw_fail is not None:
            try:
                fail_info = FailInfo(raw_fail.strip())
            except ValueError:
                fail_info = None  # unknown failInfo: still a failure, reported without a reason
        return cls(
            message_type=message_type,
            transaction_id=transaction_id,
            sender_nonce=_decode_octets(signed.attribute(OID_SENDER_NONCE), "senderNonce"),
            recipient_nonce=_decode_octets(signed.attribute(OID_RECIPIENT_NONCE), "recipientNonce"),
            status=status,
            fail_info=fail_info,
            fail_info_text=_decode_string(signed.attribute(OID_FAIL_INFO_TEXT), "failInfoText"),
            digest=signed.signer_infos[0].digest_algorithm,
            signed=signed,
        )

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        """Certificates carried in the SignedData (e.g. a requester's self-signed cert)."""
        return self.signed.certificates

    @property
    def envelope_encryption(self) -> cms.ContentEncryption | None:
        """Content-encryption algorithm of the pkcsPKIEnvelope, if there is one it names."""
        if not self.signed.content:
            return None
        try:
            return cms.enveloped_data_encryption(self.signed.content)
        except cms.CmsError:
            return None

    def verify(self, candidates: Sequence[x509.Certificate]) -> x509.Certificate:
        """Verify the signature with the candidate the signer identifier names.

        Returns the signer certificate. Raises ScepVerificationError otherwise.
        """
        try:
            return self.signed.verify(candidates)
        except cms.CmsError as exc:
            raise ScepVerificationError(exc.message) from exc

    def open_envelope(self, key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> bytes:
        """Decrypt the pkcsPKIEnvelope addressed to ``certificate``.

        Raises ScepProtocolError if there is no envelope or it cannot be decrypted.
        """
        if not self.signed.content:
            raise ScepProtocolError("the SCEP pkiMessage carries no pkcsPKIEnvelope")
        try:
            return cms.decrypt_enveloped_data(self.signed.content, key, certificate)
        except cms.CmsError as exc:
            raise ScepProtocolError(f"cannot open the pkcsPKIEnvelope: {exc.message}") from exc


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class PkiRequest:
    """A client-to-CA pkiMessage: PKCSReq/RenewalReq (CSR), CertPoll, GetCert, GetCRL."""

    message_type: MessageType
    transaction_id: str
    sender_nonce: bytes
    body: RequestBody

    def __post_init__(self) -> None:
        expected: type | tuple[type, ...]
        if self.message_type in _CSR_TYPES:
            expected = x509.CertificateSigningRequest
        elif self.message_type is MessageType.CERT_POLL:
            expected = IssuerAndSubject
        elif self.message_type in (MessageType.GET_CERT, MessageType.GET_CRL):
            expected = IssuerAndSerial
        else:
            raise ValueError(f"{self.message_type.name} is not a request message type")
        if not isinstance(self.body, expected):
            raise TypeError(f"a {self.message_type.name} body must be {expected}")
        if not self.transaction_id.isprintable() or not self.transaction_id:
            raise ValueError("transactionID must be a non-empty printable string")

    def body_der(self) -> bytes:
        """DER of the body that goes inside the pkcsPKIEnvelope."""
        if isinstance(self.body, x509.CertificateSigningRequest):
            return self.body.public_bytes(Encoding.DER)
        return self.body.to_der()

    def to_der(
        self,
        *,
        signer_key: rsa.RSAPrivateKey,
        signer_cert: x509.Certificate,
        recipient: x509.Certificate,
        digest: cms.DigestAlgorithm,
        encryption: cms.ContentEncryption,
        signing_time: dt.datetime,
    ) -> bytes:
        """The signed and enveloped pkiMessage (DER).

        Raises CmsError if the key and signer certificate do not match or the
        recipient has no RSA key.
        """
        envelope = cms.build_enveloped_data(self.body_der(), recipient, encryption)
        return cms.build_signed_data(
            envelope,
            signer_key=signer_key,
            signer_cert=signer_cert,
            digest=digest,
            signing_time=signing_time,
            attributes=[
                (OID_MESSAGE_TYPE, _printable(self.message_type.value)),
                (OID_TRANSACTION_ID, _printable(self.transaction_id)),
                (OID_SENDER_NONCE, core.OctetString(self.sender_nonce)),
            ],
        )

    @classmethod
    def from_message(
        cls, message: PkiMessage, *, key: rsa.RSAPrivateKey, certificate: x509.Certificate
    ) -> tuple[PkiRequest, x509.Certificate]:
        """Verify a received request against its own embedded signer certificate,
        decrypt it with the CA/RA ``key`` and parse the body.

        Returns the request and the requester's signer certificate.
        Raises ScepVerificationError if the signature does not verify,
        ScepProtocolError if the message is not a request or is malformed.
        """
        if message.message_type is MessageType.CERT_REP:
            raise ScepProtocolError("expected a SCEP request, got a CertRep")
        if not message.sender_nonce:
            raise ScepProtocolError("the SCEP request has no senderNonce")
        signer = message.verify(message.certificates)
        body_der = message.open_envelope(key, certificate)
        body: RequestBody
        if message.message_type in _CSR_TYPES:
            try:
                body = x509.load_der_x509_csr(body_der)
            except ValueError as exc:
                raise ScepProtocolError(f"the SCEP request does not carry a valid CSR: {exc}") from exc
        elif message.message_type is MessageType.CERT_POLL:
            body = IssuerAndSubject.from_der(body_der)
        else:
            body = IssuerAndSerial.from_der(body_der)
        request = cls(
            message_type=message.message_type,
            transaction_id=message.transaction_id,
            sender_nonce=message.sender_nonce,
            body=body,
        )
        return request, signer


# --------------------------------------------------------------------------- CertRep


@dataclass(frozen=True)
class CertRep:
    """A CA-to-client CertRep.

    ``certificates``/``crls`` are the content of the degenerate SignedData in
    the pkcsPKIEnvelope (SUCCESS only).
    """

    transaction_id: str
    recipient_nonce: bytes
    status: PkiStatus
    sender_nonce: bytes = field(default_factory=new_nonce)
    fail_info: FailInfo | None = None
    fail_info_text: str | None = None
    certificates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()

    def __post_init__(self) -> None:
        if self.status is not PkiStatus.FAILURE and self.fail_info is not None:
            raise ValueError("only a FAILURE CertRep carries a failInfo")

    def to_der(
        self,
        *,
        signer_key: rsa.RSAPrivateKey,
        signer_cert: x509.Certificate,
        recipient: x509.Certificate | None,
        digest: cms.DigestAlgorithm,
        encryption: cms.ContentEncryption,
        signing_time: dt.datetime,
        extra_certificates: Sequence[x509.Certificate] = (),
    ) -> bytes:
        """The signed CertRep (DER); SUCCESS content is enveloped for ``recipient``.

        Raises ValueError if a SUCCESS has no recipient or a FAILURE no
        failInfo; CmsError if the key and signer certificate do not match.
        """
        if self.status is PkiStatus.FAILURE and self.fail_info is None:
            raise ValueError("a FAILURE CertRep needs a failInfo")
        content: bytes | None = None
        if self.status is PkiStatus.SUCCESS:
            if recipient is None:
                raise ValueError("a SUCCESS CertRep must be encrypted to the requester")
            degenerate = cms.build_certs_only(self.certificates, self.crls)
            content = cms.build_enveloped_data(degenerate, recipient, encryption)
        attributes: list[tuple[str, core.Asn1Value]] = [
            (OID_MESSAGE_TYPE, _printable(MessageType.CERT_REP.value)),
            (OID_TRANSACTION_ID, _printable(self.transaction_id)),
            (OID_PKI_STATUS, _printable(self.status.value)),
            (OID_SENDER_NONCE, core.OctetString(self.sender_nonce)),
            (OID_RECIPIENT_NONCE, core.OctetString(self.recipient_nonce)),
        ]
        if self.fail_info is not None:
            attributes.append((OID_FAIL_INFO, _printable(self.fail_info.value)))
        if self.fail_info_text:
            attributes.append((OID_FAIL_INFO_TEXT, core.UTF8String(self.fail_info_text)))
        return cms.build_signed_data(
            content,
            signer_key=signer_key,
            signer_cert=signer_cert,
            digest=digest,
            signing_time=signing_time,
            attributes=attributes,
            certificates=extra_certificates,
        )

    @classmethod
    def from_message(
        cls,
        message: PkiMessage,
        *,
        signers: Sequence[x509.Certificate],
        key: rsa.RSAPrivateKey,
        certificate: x509.Certificate,
    ) -> CertRep:
        """Verify a received CertRep against the CA/RA ``signers``, then open it.

        ``key``/``certificate`` are the requester's, to decrypt a SUCCESS.
        Raises ScepVerificationError if no signer verifies it; ScepProtocolError
        if it is not a CertRep, lacks status or nonces, or a SUCCESS content
        cannot be decrypted or parsed.
        """
        if message.message_type is not MessageType.CERT_REP:
            raise ScepProtocolError(f"expected a CertRep, got {message.message_type.name}")
        message.verify(signers)
        if message.status is None:
            raise ScepProtocolError("the CertRep has no pkiStatus")
        if message.recipient_nonce is None:
            raise ScepVerificationError("the CertRep has no recipientNonce")
        certificates: tuple[x509.Certificate, ...] = ()
        crls: tuple[x509.CertificateRevocationList, ...] = ()
        if message.status is PkiStatus.SUCCESS:
            inner = message.open_envelope(key, certificate)
            try:
                certificates, crl_ders = cms.parse_certs_only(inner)
                crls = tuple(x509.load_der_x509_crl(c) for c in crl_ders)
            except (cms.CmsError, ValueError) as exc:
                raise ScepProtocolError(f"the CertRep's certificate bag is malformed: {exc}") from exc
        return cls(
            transaction_id=message.transaction_id,
            recipient_nonce=message.recipient_nonce,
            status=message.status,
            sender_nonce=message.sender_nonce or b"",
            fail_info=message.fail_info if message.status is PkiStatus.FAILURE else None,
            fail_info_text=message.fail_info_text,
            certificates=certificates,
            crls=crls,
        )
