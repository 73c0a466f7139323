"""GetCACaps (RFC 8894 section 3.5.2): the CA's capability keywords, typed."""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass

from agent.clock import SYSTEM_CLOCK, Clock
from agent.pki.cms import ContentEncryption, DigestAlgorithm

__all__ = ["CaCaps", "Capability", "CapabilitiesCache"]

CAPS_TTL_SECONDS = 60.0
"""How long a CA's GetCACaps answer is reused for its later requests (see CapabilitiesCache)."""


class Capability(enum.Enum):
    """GetCACaps keywords (value = the keyword on the wire)."""

    AES = "AES"
    DES3 = "DES3"
    GET_NEXT_CA_CERT = "GetNextCACert"
    POST_PKI_OPERATION = "POSTPKIOperation"
    RENEWAL = "Renewal"
    SHA1 = "SHA-1"
    SHA256 = "SHA-256"
    SHA512 = "SHA-512"
    SCEP_STANDARD = "SCEPStandard"
    UPDATE = "Update"


_BY_LOWER = {c.value.lower(): c for c in Capability}


@dataclass(frozen=True)
class CaCaps:
    """What a SCEP CA says it supports, plus any keywords we do not know."""

    capabilities: frozenset[Capability] = frozenset()
    unknown: tuple[str, ...] = ()

    @classmethod
    def from_text(cls, text: str) -> CaCaps:
        """Parse a GetCACaps body (keywords separated by any whitespace, any case)."""
        found: set[Capability] = set()
        unknown: list[str] = []
        for word in text.split():
            cap = _BY_LOWER.get(word.lower())
            if cap is None:
                if word not in unknown:
                    unknown.append(word)
            else:
                found.add(cap)
        return cls(capabilities=frozenset(found), unknown=tuple(unknown))

    @classmethod
    def of(cls, *capabilities: Capability) -> CaCaps:
        """A CaCaps with exactly ``capabilities``."""
        return cls(capabilities=frozenset(capabilities))

    def to_text(self) -> str:
        """The GetCACaps body: one keyword per line, in a stable order."""
        ordered = [c.value for c in Capability if c in self.capabilities]
        return "\n".join([*ordered, *self.unknown])

    def has(self, capability: Capability) -> bool:
        """True if the CA advertises ``capability`` (SCEPStandard implies AES, SHA-256, POST)."""
        if capability in self.capabilities:
            return True
        implied = {Capability.AES, Capability.SHA256, Capability.POST_PKI_OPERATION}
        return Capability.SCEP_STANDARD in self.capabilities and capability in implied

    @property
    def post(self) -> bool:
        """PKIOperation may be sent with HTTP POST."""
        return self.has(Capability.POST_PKI_OPERATION)

    @property
    def sha256(self) -> bool:
        """SHA-256 signatures are accepted."""
        return self.has(Capability.SHA256)

    @property
    def sha512(self) -> bool:
        """SHA-512 signatures are accepted."""
        return self.has(Capability.SHA512)

    @property
    def sha1(self) -> bool:
        """SHA-1 signatures are accepted."""
        return self.has(Capability.SHA1)

    @property
    def aes(self) -> bool:
        """AES-128-CBC content encryption is accepted."""
        return self.has(Capability.AES)

    @property
    def des3(self) -> bool:
        """Triple-DES-CBC content encryption is accepted."""
        return self.has(Capability.DES3)

    @property
    def renewal(self) -> bool:
        """RenewalReq is supported."""
        return self.has(Capability.RENEWAL)

    @property
    def get_next_ca_cert(self) -> bool:
        """GetNextCACert (CA rollover) is supported."""
        return self.has(Capability.GET_NEXT_CA_CERT)

    @property
    def scep_standard(self) -> bool:
        """The CA claims the RFC 8894 baseline."""
        return self.has(Capability.SCEP_STANDARD)

    def digest_algorithm(self) -> DigestAlgorithm:
        """Strongest advertised digest; SHA-1 when nothing is advertised (legacy CAs)."""
        if self.sha256:
            return DigestAlgorithm.SHA256
        if self.sha512:
            return DigestAlgorithm.SHA512
        return DigestAlgorithm.SHA1

    def content_encryption(self) -> ContentEncryption:
        """AES-128-CBC if advertised, else Triple-DES (the legacy default)."""
        return ContentEncryption.AES128_CBC if self.aes else ContentEncryption.DES3_CBC


class CapabilitiesCache:
    """The GetCACaps answers of the CAs we talk to, by SCEP URL, each reused for ``ttl`` seconds.

    ``crypto ca authenticate`` always asks (and refreshes the entry); an
    enrollment or poll right after it uses the answer instead of asking again
    before every PKIOperation, as scepclient and the router do within one
    exchange. A CA changing its capabilities is seen within ``ttl``, and at
    once after any failed exchange (the client forgets the entry).
    """

    def __init__(self, ttl: float = CAPS_TTL_SECONDS, clock: Clock = SYSTEM_CLOCK) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, CaCaps]] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> CaCaps | None:
        """The capabilities ``url`` answered less than ``ttl`` seconds ago, or None."""
        with self._lock:
            entry = self._entries.get(url)
        if entry is None or self._clock.monotonic() - entry[0] >= self._ttl:
            return None
        return entry[1]

    def put(self, url: str, caps: CaCaps) -> None:
        with self._lock:
            self._entries[url] = (self._clock.monotonic(), caps)

    def forget(self, url: str) -> None:
        with self._lock:
            self._entries.pop(url, None)
