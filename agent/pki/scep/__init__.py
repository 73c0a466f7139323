"""SCEP (RFC 8894): typed messages, capabilities, CA certificates, HTTP and client flow."""

from agent.pki.scep.cacerts import CA_CERT_CONTENT_TYPE, CA_RA_CERT_CONTENT_TYPE, CaCertificates
from agent.pki.scep.capabilities import CaCaps, Capability
from agent.pki.scep.client import EnrollmentResponse, ScepClient, transaction_id_for
from agent.pki.scep.errors import (
    ScepError,
    ScepHttpError,
    ScepProtocolError,
    ScepRedirectError,
    ScepTransportError,
    ScepUrlError,
    ScepVerificationError,
)
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

__all__ = [
    "CA_CERT_CONTENT_TYPE",
    "CA_RA_CERT_CONTENT_TYPE",
    "CaCaps",
    "CaCertificates",
    "Capability",
    "CertRep",
    "EnrollmentResponse",
    "FailInfo",
    "IssuerAndSerial",
    "IssuerAndSubject",
    "MessageType",
    "PkiMessage",
    "PkiRequest",
    "PkiStatus",
    "ScepClient",
    "ScepError",
    "ScepHttpError",
    "ScepProtocolError",
    "ScepRedirectError",
    "ScepTransportError",
    "ScepUrlError",
    "ScepVerificationError",
    "transaction_id_for",
]
