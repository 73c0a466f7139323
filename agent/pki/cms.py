"""CMS (PKCS#7) building and parsing for SCEP: SignedData, EnvelopedData, certs-only.

A thin typed layer over ``asn1crypto.cms`` (structure) and ``cryptography``
(keys, ciphers, and the AES EnvelopedData it builds itself). It knows nothing
about SCEP semantics: signed attributes are passed in and returned as raw DER
values keyed by OID, and :mod:`agent.pki.scep.messages` gives them meaning.
Both the SCEP client and the lab CA use it.

Parsing accepts BER (indefinite lengths, constructed OCTET STRINGs). Signatures
are verified here, not by a library: the messageDigest attribute must equal the
digest of the content, and the signature must verify over the DER of the
signed-attributes SET with the signer certificate's public key.
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from asn1crypto import algos, cms, core
from asn1crypto import crl as acrl
from asn1crypto import parser as asn1_parser
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, modes
from cryptography.hazmat.primitives.ciphers.algorithms import AES, AES128, AES256
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from agent.errors import PkiError

__all__ = [
    "MAX_CERTS",
    "CmsDecryptError",
    "CmsError",
    "CmsFormatError",
    "CmsSignatureError",
    "ContentEncryption",
    "DigestAlgorithm",
    "SignedMessage",
    "build_certs_only",
    "build_enveloped_data",
    "build_signed_data",
    "decrypt_enveloped_data",
    "enveloped_data_encryption",
    "parse_certs_only",
    "parse_signed_data",
]

OID_DATA = "1.2.840.113549.1.7.1"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SIGNING_TIME = "1.2.840.113549.1.9.5"

MAX_CERTS = 64
"""Certificates one CMS message (or a GetCACert answer in PEM) may carry."""


class CmsError(PkiError):
    """A CMS structure could not be built, parsed, verified or decrypted."""

    error_tag = "operation-failed"
    error_app_tag = "cms-error"


class CmsFormatError(CmsError):
    """The bytes are not the CMS structure that was expected."""

    error_tag = "invalid-value"
    error_app_tag = "cms-malformed"


class CmsSignatureError(CmsError):
    """A SignedData signature or its messageDigest does not verify."""

    error_app_tag = "cms-bad-signature"


class CmsDecryptError(CmsError):
    """An EnvelopedData cannot be decrypted with the given key."""

    error_app_tag = "cms-decrypt-failed"


class DigestAlgorithm(enum.Enum):
    """Digest algorithms for SignedData (value = asn1crypto algorithm name)."""

    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA512 = "sha512"

    def hash(self) -> hashes.HashAlgorithm:
        """The ``cryptography`` hash object for this algorithm."""
        return {
            DigestAlgorithm.SHA1: hashes.SHA1(),
            DigestAlgorithm.SHA256: hashes.SHA256(),
            DigestAlgorithm.SHA512: hashes.SHA512(),
        }[self]

    def digest(self, data: bytes) -> bytes:
        """Digest of ``data``."""
        ctx = hashes.Hash(self.hash())
        ctx.update(data)
        return ctx.finalize()


class ContentEncryption(enum.Enum):
    """Content-encryption algorithms for EnvelopedData (value = asn1crypto name).

    ``DES_CBC`` (single DES) is only ever decrypted, for old servers; it is
    never chosen for anything we send.
    """

    AES128_CBC = "aes128_cbc"
    AES192_CBC = "aes192_cbc"
    AES256_CBC = "aes256_cbc"
    DES3_CBC = "tripledes_3key"
    DES_CBC = "des"

    @property
    def key_size(self) -> int:
        """Key length in bytes."""
        return {
            ContentEncryption.AES128_CBC: 16,
            ContentEncryption.AES192_CBC: 24,
            ContentEncryption.AES256_CBC: 32,
            ContentEncryption.DES3_CBC: 24,
            ContentEncryption.DES_CBC: 8,
        }[self]

    @property
    def block_size(self) -> int:
        """Cipher block size (and IV length) in bytes."""
        return 8 if self in (ContentEncryption.DES3_CBC, ContentEncryption.DES_CBC) else 16

    def cipher(self, key: bytes) -> CipherAlgorithm:
        """The ``cryptography`` cipher algorithm keyed with ``key``."""
        if self is ContentEncryption.DES_CBC:
            return TripleDES(key * 3)  # K1 = K2 = K3 is single DES
        if self is ContentEncryption.DES3_CBC:
            return TripleDES(key)
        return AES(key)


_HASH_BY_NAME: dict[str, DigestAlgorithm] = {d.value: d for d in DigestAlgorithm}
_HASH_BY_SIGNATURE_ALGORITHM: dict[str, DigestAlgorithm] = {
    "sha1_rsa": DigestAlgorithm.SHA1,
    "sha256_rsa": DigestAlgorithm.SHA256,
    "sha512_rsa": DigestAlgorithm.SHA512,
    "sha1_ecdsa": DigestAlgorithm.SHA1,
    "sha256_ecdsa": DigestAlgorithm.SHA256,
    "sha512_ecdsa": DigestAlgorithm.SHA512,
}


# --------------------------------------------------------------------------- helpers


def _asn1_cert(cert: x509.Certificate) -> ax509.Certificate:
    return ax509.Certificate.load(cert.public_bytes(Encoding.DER))


_Built = TypeVar("_Built", bound=core.Asn1Value)


def _settled(value: _Built) -> _Built:
    """``value`` read back from its own DER: the same bytes, encoded once from now on.

    asn1crypto never clears the "changed" mark of a value built from Python values, so
    every read of its encoding encodes it again, and everything inside it. Built in one
    piece, a SignedData encoded its signed attributes a dozen times (0.3 of its 0.96 ms).
    """
    return type(value).load(value.dump())


def _issuer_and_serial(cert: x509.Certificate) -> cms.IssuerAndSerialNumber:
    parsed = _asn1_cert(cert)
    return cms.IssuerAndSerialNumber({"issuer": parsed.issuer, "serial_number": parsed.serial_number})


def _matches_sid(cert: x509.Certificate, sid: cms.SignerIdentifier | cms.RecipientIdentifier) -> bool:
    if sid.name == "issuer_and_serial_number":
        ias = sid.chosen
        return bool(
            ias["serial_number"].native == cert.serial_number and ias["issuer"].dump() == _asn1_cert(cert).issuer.dump()
        )
    if sid.name == "subject_key_identifier":
        try:
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            return False
        return bool(ski.value.digest == sid.chosen.native)
    return False


def _signed_bytes(value: core.Asn1Value, load: Callable[[bytes], object]) -> bytes:
    """The bytes a signature covers: as received when ``load`` (a DER loader) takes them, else re-encoded.

    ``dump(force=True)`` re-encodes from the parsed values, and asn1crypto
    normalises some of them (a URI with spaces, as in the seed's LDAP CRL
    distribution point, becomes %20), so the signature would no longer
    verify; re-encoding is only needed for BER (indefinite lengths).
    """
    raw = value.dump()
    try:
        load(raw)
    except ValueError:
        return value.dump(force=True)
    return raw


def _load_certificates(choices: cms.CertificateSet | None) -> tuple[x509.Certificate, ...]:
    if choices is None:
        return ()
    certs: list[x509.Certificate] = []
    for choice in choices:
        if choice.name != "certificate":
            continue  # attribute certificates etc. are of no use here
        try:
            certs.append(x509.load_der_x509_certificate(_signed_bytes(choice.chosen, x509.load_der_x509_certificate)))
        except ValueError as exc:
            raise CmsFormatError(f"a certificate inside the CMS message is invalid: {exc}") from exc
        if len(certs) > MAX_CERTS:
            raise CmsFormatError("the CMS message carries too many certificates")
    return tuple(certs)


def _content_info(data: bytes, expected: str, what: str) -> cms.ContentInfo:
    try:
        info = cms.ContentInfo.load(data)
        content_type = info["content_type"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise CmsFormatError(f"{what} is not a valid CMS ContentInfo: {exc}") from exc
    if content_type != expected:
        raise CmsFormatError(f"{what} is a CMS {content_type!r}, expected {expected!r}")
    return info


def _octets(value: core.Asn1Value) -> bytes:
    """Bytes of a (possibly BER constructed) OCTET STRING."""
    native = value.native
    if not isinstance(native, bytes):
        raise CmsFormatError("expected an OCTET STRING")
    return native


def _der_of_signed_attrs(signed_attrs: cms.CMSAttributes) -> Iterator[bytes]:
    """Candidate encodings of the SET OF attributes that the signature covers, in the order to try them.

    The sender signed the DER of the universal SET; first the received bytes
    with the [0] tag replaced (exactly what was signed when the sender sent
    DER), then, only if that one fails, a DER re-encoding (for BER senders):
    re-encoding costs most of a verification.
    """
    received = b"\x31" + signed_attrs.dump()[1:]
    yield received
    reencoded = cms.CMSAttributes.load(received).dump(force=True)
    if reencoded != received:
        yield reencoded


def _verify_raw(public_key: object, signature: bytes, data: bytes, digest: DigestAlgorithm) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, asym_padding.PKCS1v15(), digest.hash())
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(digest.hash()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


# --------------------------------------------------------------------------- SignedData


@dataclass(frozen=True)
class SignerInfo:
    """One parsed SignerInfo (not yet verified)."""

    digest_algorithm: DigestAlgorithm
    signature: bytes
    attributes: dict[str, tuple[bytes, ...]]
    """Signed attributes: dotted OID -> DER of each value."""
    _raw: cms.SignerInfo = field(repr=False, compare=False)

    def matches(self, cert: x509.Certificate) -> bool:
        """True if this SignerInfo names ``cert`` as its signer."""
        return _matches_sid(cert, self._raw["sid"])


@dataclass(frozen=True)
class SignedMessage:
    """A parsed CMS SignedData. Call :meth:`verify` before trusting anything."""

    content_type: str
    content: bytes | None
    certificates: tuple[x509.Certificate, ...]
    crls: tuple[bytes, ...]
    signer_infos: tuple[SignerInfo, ...]

    def attribute(self, oid: str) -> tuple[bytes, ...]:
        """DER of each value of the first signer's signed attribute ``oid`` (may be empty)."""
        if not self.signer_infos:
            return ()
        return self.signer_infos[0].attributes.get(oid, ())

    def verify(self, candidates: Sequence[x509.Certificate]) -> x509.Certificate:
        """Verify the first SignerInfo against the candidate named by its sid.

        Returns the signer certificate.
        Raises CmsSignatureError if there is no signer, no candidate matches
        the signer identifier, the messageDigest or contentType attributes are
        missing or wrong, or the signature does not verify.
        """
        if not self.signer_infos:
            raise CmsSignatureError("the CMS SignedData carries no signature")
        info = self.signer_infos[0]
        signer = next((c for c in candidates if info.matches(c)), None)
        if signer is None:
            raise CmsSignatureError(
                "the CMS SignedData is signed by a certificate that is not among the expected signers"
            )
        raw = info._raw
        signed_attrs = raw["signed_attrs"]
        if not signed_attrs:
            raise CmsSignatureError("the CMS SignedData has no signed attributes")
        digests = info.attributes.get(OID_MESSAGE_DIGEST, ())
        if len(digests) != 1:
            raise CmsSignatureError("the CMS signed attributes lack a single messageDigest")
        expected = info.digest_algorithm.digest(self.content or b"")
        try:
            received = core.OctetString.load(digests[0]).native
        except ValueError as exc:
            raise CmsSignatureError("the CMS messageDigest attribute is malformed") from exc
        if not secrets.compare_digest(received, expected):
            raise CmsSignatureError("the CMS messageDigest does not match the content")
        ctypes = info.attributes.get(OID_CONTENT_TYPE, ())
        if ctypes and core.ObjectIdentifier.load(ctypes[0]).dotted != self.content_type:
            raise CmsSignatureError("the CMS contentType attribute does not match the content")
        sig_alg = raw["signature_algorithm"]["algorithm"].native
        digest = _HASH_BY_SIGNATURE_ALGORITHM.get(sig_alg, info.digest_algorithm)
        for data in _der_of_signed_attrs(signed_attrs):
            if _verify_raw(signer.public_key(), info.signature, data, digest):
                return signer
        raise CmsSignatureError("the CMS signature does not verify with the signer's public key")


def parse_signed_data(data: bytes) -> SignedMessage:
    """Parse a DER or BER ContentInfo holding a SignedData (no verification).

    Raises CmsFormatError if it is not one, or uses an unsupported digest.
    """
    try:
        return _parse_signed_data(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise CmsFormatError(f"the message is not a valid CMS SignedData: {exc}") from exc


def _parse_signed_data(data: bytes) -> SignedMessage:
    info = _content_info(data, "signed_data", "the message")
    sd: cms.SignedData = info["content"]
    encap = sd["encap_content_info"]
    content_value = encap["content"]
    content = None if isinstance(content_value, core.Void) or content_value.native is None else _octets(content_value)
    signers: list[SignerInfo] = []
    for si in sd["signer_infos"]:
        name = si["digest_algorithm"]["algorithm"].native
        digest = _HASH_BY_NAME.get(name)
        if digest is None:
            raise CmsFormatError(f"the CMS SignedData uses an unsupported digest {name!r}")
        attributes: dict[str, tuple[bytes, ...]] = {}
        signed_attrs = si["signed_attrs"]
        if signed_attrs:
            for attr in signed_attrs:
                oid = attr["type"].dotted
                if oid not in attributes:
                    attributes[oid] = tuple(v.dump(force=True) for v in attr["values"])
        signers.append(
            SignerInfo(
                digest_algorithm=digest,
                signature=si["signature"].native,
                attributes=attributes,
                _raw=si,
            )
        )
    crls: tuple[bytes, ...] = ()
    if sd["crls"]:
        crls = tuple(_signed_bytes(c.chosen, x509.load_der_x509_crl) for c in sd["crls"] if c.name == "crl")
    return SignedMessage(
        content_type=encap["content_type"].dotted,
        content=content,
        certificates=_load_certificates(sd["certificates"]),
        crls=crls,
        signer_infos=tuple(signers),
    )


def build_signed_data(
    content: bytes | None,
    *,
    signer_key: rsa.RSAPrivateKey,
    signer_cert: x509.Certificate,
    digest: DigestAlgorithm,
    signing_time: dt.datetime,
    attributes: Sequence[tuple[str, core.Asn1Value]] = (),
    certificates: Sequence[x509.Certificate] = (),
) -> bytes:
    """A DER ContentInfo/SignedData over ``content`` (id-data), RSA PKCS#1 v1.5.

    ``content=None`` gives a SignedData without eContent whose messageDigest is
    the digest of the empty string (SCEP CertRep FAILURE/PENDING).
    ``attributes`` are extra signed attributes (dotted OID, one ASN.1 value);
    contentType, messageDigest and signingTime are always added.
    Raises CmsError if the key does not match the certificate.
    """
    if signer_key.public_key().public_numbers() != _rsa_public_numbers(signer_cert):
        raise CmsError("the signing key does not belong to the signer certificate")
    attrs = [
        _settled(cms.CMSAttribute({"type": "content_type", "values": ["data"]})),
        _settled(cms.CMSAttribute({"type": "message_digest", "values": [digest.digest(content or b"")]})),
        _settled(cms.CMSAttribute(
            {"type": "signing_time", "values": [cms.Time({"utc_time": signing_time.astimezone(dt.UTC)})]}
        )),
    ]
    for oid, value in attributes:
        attrs.append(_settled(cms.CMSAttribute({"type": oid, "values": [value]})))
    signed_attrs = _settled(cms.CMSAttributes(attrs))
    signature = signer_key.sign(signed_attrs.dump(), asym_padding.PKCS1v15(), digest.hash())
    signer_info = _settled(cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier({"issuer_and_serial_number": _issuer_and_serial(signer_cert)}),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": digest.value}),
            "signed_attrs": signed_attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}),
            "signature": signature,
        }
    ))
    encap: dict[str, object] = {"content_type": "data"}
    if content is not None:
        encap["content"] = content
    all_certs = [signer_cert, *[c for c in certificates if c != signer_cert]]
    signed_data = _settled(cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": digest.value})],
            "encap_content_info": cms.ContentInfo(encap),
            "certificates": [cms.CertificateChoices({"certificate": _asn1_cert(c)}) for c in all_certs],
            "signer_infos": [signer_info],
        }
    ))
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump())


def _rsa_public_numbers(cert: x509.Certificate) -> rsa.RSAPublicNumbers:
    public_key = cert.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CmsError("only RSA signer certificates are supported")
    return public_key.public_numbers()


# --------------------------------------------------------------------------- certs-only


def build_certs_only(
    certificates: Sequence[x509.Certificate], crls: Sequence[x509.CertificateRevocationList] = ()
) -> bytes:
    """A degenerate certs-only SignedData (DER ContentInfo) with ``certificates``/``crls``."""
    body: dict[str, object] = {
        "version": "v1",
        "digest_algorithms": [],
        "encap_content_info": cms.ContentInfo({"content_type": "data"}),
        "certificates": [cms.CertificateChoices({"certificate": _asn1_cert(c)}) for c in certificates],
        "signer_infos": [],
    }
    if crls:
        body["crls"] = [cms.RevocationInfoChoice({"crl": _load_crl(c.public_bytes(Encoding.DER))}) for c in crls]
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(body)}).dump())


def _load_crl(der: bytes) -> acrl.CertificateList:
    return acrl.CertificateList.load(der)


def parse_certs_only(data: bytes) -> tuple[tuple[x509.Certificate, ...], tuple[bytes, ...]]:
    """Certificates and CRLs (DER) of a degenerate (or any) SignedData, DER or BER.

    Raises CmsFormatError if ``data`` is not a SignedData.
    """
    message = parse_signed_data(data)
    return message.certificates, message.crls


# --------------------------------------------------------------------------- EnvelopedData


def _read_encrypted_content_info(raw: bytes) -> tuple[algos.EncryptionAlgorithm, bytes]:
    """Algorithm and ciphertext of an EncryptedContentInfo, read leniently.

    The [0] IMPLICIT OCTET STRING may be constructed with a definite length
    (Go's pkcs7, i.e. micromdm scepserver, sends it so): legal BER that
    asn1crypto only accepts with indefinite lengths, so it is read by hand.
    """
    _cls, _method, _tag, _header, body, _trailer = asn1_parser.parse(raw, strict=False)
    elements: list[tuple[int, int, int, bytes, bytes, bytes]] = []
    while body and len(elements) < 3:
        size = asn1_parser.peek(body)
        elements.append(asn1_parser.parse(body[:size], strict=False))
        body = body[size:]
    if len(elements) < 2:
        raise CmsFormatError("the envelope's EncryptedContentInfo is truncated")
    _c, _m, _t, alg_header, alg_contents, alg_trailer = elements[1]
    algorithm = algos.EncryptionAlgorithm.load(alg_header + alg_contents + alg_trailer)
    if len(elements) < 3:
        return algorithm, b""  # detached content: nothing to decrypt
    cls_, method, tag, _h, contents, _tr = elements[2]
    if cls_ != 2 or tag != 0:
        raise CmsFormatError("the envelope's encryptedContent is not tagged [0]")
    if method == 0:
        return algorithm, bytes(contents)
    # Constructed: re-wrap the chunks as a universal indefinite-length OCTET STRING.
    return algorithm, _octets(core.OctetString.load(b"\x24\x80" + contents + b"\x00\x00"))


# cryptography (45 and later) builds the same EnvelopedData (RSA PKCS#1 v1.5 key transport to the
# recipient's issuer and serial, CBC content, DER) for these ciphers in 0.03 ms, where building it
# with asn1crypto takes 0.3 ms; the other ciphers, and older versions, are built with asn1crypto.
_LIBRARY_ENVELOPE_CIPHERS: dict[ContentEncryption, type[AES128] | type[AES256]] = (
    {ContentEncryption.AES128_CBC: AES128, ContentEncryption.AES256_CBC: AES256}
    if hasattr(getattr(pkcs7, "PKCS7EnvelopeBuilder", None), "set_content_encryption_algorithm")
    else {}
)


def build_enveloped_data(content: bytes, recipient: x509.Certificate, encryption: ContentEncryption) -> bytes:
    """A DER ContentInfo/EnvelopedData of ``content`` for ``recipient`` (RSA key transport).

    Raises CmsError if the recipient key is not RSA or ``encryption`` is DES_CBC
    (never used for sending).
    """
    if encryption is ContentEncryption.DES_CBC:
        raise CmsError("single DES is too weak to encrypt with")
    public_key = recipient.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CmsError("the recipient certificate does not carry an RSA key")
    library_cipher = _LIBRARY_ENVELOPE_CIPHERS.get(encryption)
    if library_cipher is not None:
        return pkcs7.PKCS7EnvelopeBuilder().set_data(content).add_recipient(recipient).set_content_encryption_algorithm(
            library_cipher
        ).encrypt(Encoding.DER, [pkcs7.PKCS7Options.Binary])  # Binary: the bytes as they are, no MIME
    key = secrets.token_bytes(encryption.key_size)
    iv = secrets.token_bytes(encryption.block_size)
    padder = padding.PKCS7(encryption.block_size * 8).padder()
    padded = padder.update(content) + padder.finalize()
    encryptor = Cipher(encryption.cipher(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    recipient_info = cms.RecipientInfo(
        {
            "ktri": cms.KeyTransRecipientInfo(
                {
                    "version": "v0",
                    "rid": cms.RecipientIdentifier({"issuer_and_serial_number": _issuer_and_serial(recipient)}),
                    "key_encryption_algorithm": cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_pkcs1v15"}),
                    "encrypted_key": public_key.encrypt(key, asym_padding.PKCS1v15()),
                }
            )
        }
    )
    enveloped = cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": [recipient_info],
            "encrypted_content_info": cms.EncryptedContentInfo(
                {
                    "content_type": "data",
                    "content_encryption_algorithm": algos.EncryptionAlgorithm(
                        {"algorithm": encryption.value, "parameters": iv}
                    ),
                    "encrypted_content": ciphertext,
                }
            ),
        }
    )
    return bytes(cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump())


def enveloped_data_encryption(data: bytes) -> ContentEncryption:
    """The content-encryption algorithm an EnvelopedData (DER/BER ContentInfo) uses.

    Raises CmsFormatError if ``data`` is not an EnvelopedData, CmsDecryptError
    if the algorithm is not one we support.
    """
    try:
        info = _content_info(data, "enveloped_data", "the envelope")
        name = info["content"]["encrypted_content_info"]["content_encryption_algorithm"]["algorithm"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise CmsFormatError(f"the envelope is not a valid CMS EnvelopedData: {exc}") from exc
    try:
        return ContentEncryption(name)
    except ValueError:
        raise CmsDecryptError(f"unsupported content encryption algorithm {name!r}") from None


def decrypt_enveloped_data(data: bytes, key: rsa.RSAPrivateKey, certificate: x509.Certificate | None = None) -> bytes:
    """Decrypt a DER/BER ContentInfo/EnvelopedData with RSA ``key``.

    With ``certificate``, only the KeyTransRecipientInfo naming it is used;
    without, every key-transport recipient is tried.
    Raises CmsFormatError if ``data`` is not an EnvelopedData, CmsDecryptError
    if no recipient matches, the key cannot unwrap the content key, or the
    content algorithm is unsupported.
    """
    try:
        return _decrypt_enveloped_data(data, key, certificate)
    except (ValueError, TypeError, KeyError) as exc:
        raise CmsFormatError(f"the envelope is not a valid CMS EnvelopedData: {exc}") from exc


def _decrypt_enveloped_data(data: bytes, key: rsa.RSAPrivateKey, certificate: x509.Certificate | None) -> bytes:
    info = _content_info(data, "enveloped_data", "the envelope")
    enveloped: cms.EnvelopedData = info["content"]
    algorithm, ciphertext = _read_encrypted_content_info(enveloped["encrypted_content_info"].dump())
    alg_name = algorithm["algorithm"].native
    try:
        encryption = ContentEncryption(alg_name)
    except ValueError:
        raise CmsDecryptError(f"unsupported content encryption algorithm {alg_name!r}") from None
    iv = algorithm["parameters"].native
    if not isinstance(iv, bytes) or len(iv) != encryption.block_size:
        raise CmsFormatError("the envelope's content-encryption IV is missing or malformed")
    content_key: bytes | None = None
    matched = False
    for recipient in enveloped["recipient_infos"]:
        if recipient.name != "ktri":
            continue
        ktri = recipient.chosen
        if certificate is not None and not _matches_sid(certificate, ktri["rid"]):
            continue
        matched = True
        content_key = _unwrap_key(ktri, key, encryption)
        if content_key is not None:
            break
    if not matched:
        raise CmsDecryptError("the envelope is not addressed to our certificate")
    if content_key is None:
        raise CmsDecryptError("the envelope's content key cannot be decrypted with our private key")
    if len(ciphertext) % encryption.block_size:
        raise CmsDecryptError("the envelope's ciphertext length is not a whole number of blocks")
    decryptor = Cipher(encryption.cipher(content_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(encryption.block_size * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise CmsDecryptError("the envelope's content does not decrypt (bad padding)") from None


def _unwrap_key(ktri: cms.KeyTransRecipientInfo, key: rsa.RSAPrivateKey, encryption: ContentEncryption) -> bytes | None:
    alg = ktri["key_encryption_algorithm"]["algorithm"].native
    encrypted_key = ktri["encrypted_key"].native
    pad: asym_padding.AsymmetricPadding
    if alg == "rsaes_pkcs1v15":
        pad = asym_padding.PKCS1v15()
    elif alg == "rsaes_oaep":
        pad = asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    else:
        raise CmsDecryptError(f"unsupported key transport algorithm {alg!r}")
    try:
        content_key = key.decrypt(encrypted_key, pad)
    except ValueError:
        return None
    if len(content_key) != encryption.key_size:
        return None  # OpenSSL's implicit rejection yields random bytes of the wrong size
    return content_key
