"""GetCACert (RFC 8894 section 4.2): the CA certificate and optional RA certificates.

``application/x-x509-ca-cert`` is one DER certificate (the CA);
``application/x-x509-ca-ra-cert`` is a degenerate certs-only PKCS#7 with the CA,
possibly intermediate CAs, and one or two RA certificates: the one with
digitalSignature signs CertReps, the one with keyEncipherment receives our
requests (NDES ships separate ones; many RAs use one certificate for both).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from agent.pki import cms
from agent.pki.scep.errors import ScepProtocolError

__all__ = ["CA_CERT_CONTENT_TYPE", "CA_RA_CERT_CONTENT_TYPE", "CaCertificates"]

CA_CERT_CONTENT_TYPE = "application/x-x509-ca-cert"
CA_RA_CERT_CONTENT_TYPE = "application/x-x509-ca-ra-cert"


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return cert.issuer == cert.subject  # a v1 root


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _can_sign(cert: x509.Certificate) -> bool:
    usage = _key_usage(cert)
    return usage is None or usage.digital_signature


def _can_encrypt(cert: x509.Certificate) -> bool:
    usage = _key_usage(cert)
    return usage is None or usage.key_encipherment


@dataclass(frozen=True)
class CaCertificates:
    """The CA certificate, the RA certificates if any, and everything received."""

    ca: x509.Certificate
    ra_signing: x509.Certificate | None = None
    ra_encryption: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def has_ra(self) -> bool:
        """True if requests go through a registration authority."""
        return self.ra_signing is not None or self.ra_encryption is not None

    @property
    def recipient(self) -> x509.Certificate:
        """The certificate our requests are encrypted to (RA encryption cert, else the CA)."""
        return self.ra_encryption or self.ca

    @property
    def signers(self) -> tuple[x509.Certificate, ...]:
        """Certificates whose signature on a CertRep we accept (RA signing cert, then the CA)."""
        return tuple(c for c in (self.ra_signing, self.ca) if c is not None)

    @classmethod
    def from_certificates(cls, certificates: Sequence[x509.Certificate]) -> CaCertificates:
        """Classify a bag of certificates into CA and RA roles.

        Raises ScepProtocolError if there is no certificate, no CA can be
        identified, or the RA certificates cannot sign or encrypt.
        """
        certs = tuple(certificates)
        if not certs:
            raise ScepProtocolError("GetCACert returned no certificate")
        if len(certs) == 1:
            return cls(ca=certs[0], chain=certs)
        cas = [c for c in certs if _is_ca(c)]
        ras = [c for c in certs if not _is_ca(c)]
        if not cas:
            raise ScepProtocolError("GetCACert returned certificates but no CA certificate")
        if ras:
            issuers = {r.issuer for r in ras}
            candidates = [c for c in cas if c.subject in issuers]
            if not candidates:
                raise ScepProtocolError("GetCACert's RA certificates were not issued by the returned CA")
            ca = candidates[0]
        else:
            # A chain without RA: the CA is the one that issued no other CA in the bag (its own
            # self-signature aside). Issuer names counted once: comparing every pair was quadratic.
            issued = collections.Counter(o.issuer for o in cas)
            leaves = [c for c in cas if issued[c.subject] - (c.issuer == c.subject) == 0]
            ca = (leaves or cas)[0]
        ra_signing = next((r for r in ras if _can_sign(r)), None)
        ra_encryption = next((r for r in ras if _can_encrypt(r)), None)
        if ras and (ra_signing is None or ra_encryption is None):
            raise ScepProtocolError(
                "GetCACert's RA certificates lack a signing (digitalSignature) "
                "or an encryption (keyEncipherment) certificate"
            )
        return cls(ca=ca, ra_signing=ra_signing, ra_encryption=ra_encryption, chain=certs)

    @classmethod
    def from_http(cls, content_type: str, body: bytes) -> CaCertificates:
        """Parse a GetCACert HTTP response body.

        Raises ScepProtocolError for an unexpected content type or a body that
        is neither a certificate nor a certs-only PKCS#7.
        """
        media = content_type.split(";", 1)[0].strip().lower()
        if media not in (CA_CERT_CONTENT_TYPE, CA_RA_CERT_CONTENT_TYPE, "application/pkcs7-mime", ""):
            raise ScepProtocolError(f"GetCACert returned unexpected content type {content_type!r}")
        if not body:
            raise ScepProtocolError("GetCACert returned an empty body")
        try:
            if body.lstrip().startswith(b"-----BEGIN CERTIFICATE"):
                pem = x509.load_pem_x509_certificates(body)
                if len(pem) > cms.MAX_CERTS:  # as for a PKCS#7 bag
                    raise ScepProtocolError(f"GetCACert returned more than {cms.MAX_CERTS} certificates")
                return cls.from_certificates(pem)
            if media == CA_CERT_CONTENT_TYPE:
                return cls.from_certificates([x509.load_der_x509_certificate(body)])
        except ValueError:
            pass  # some servers send a PKCS#7 whatever the content type says
        try:
            certificates, _ = cms.parse_certs_only(body)
        except cms.CmsError as exc:
            raise ScepProtocolError(
                f"GetCACert returned neither a certificate nor a PKCS#7 certificate bag: {exc.message}"
            ) from exc
        return cls.from_certificates(certificates)

    def to_http(self) -> tuple[str, bytes]:
        """Content type and body for a GetCACert response."""
        if not self.has_ra and len(self.chain) <= 1:
            return CA_CERT_CONTENT_TYPE, self.ca.public_bytes(Encoding.DER)
        certs: list[x509.Certificate] = list(self.chain) or [self.ca]
        for cert in (self.ca, self.ra_signing, self.ra_encryption):
            if cert is not None and cert not in certs:
                certs.append(cert)
        return CA_RA_CERT_CONTENT_TYPE, cms.build_certs_only(certs)
