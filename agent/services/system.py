"""The host's identity as configured: hostname and IP domain name."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

SYS_NS = "urn:ca-agent:yang:system"
DEFAULT_HOSTNAME = "router"


class SystemIdentity:
    """Reads /hostname and /domain/name from running, as the backend needs them."""

    def __init__(self, running: Callable[[], etree._Element]) -> None:
        self._running = running

    @property
    def hostname(self) -> str:
        return self._running().findtext(f"{{{SYS_NS}}}hostname") or DEFAULT_HOSTNAME

    @property
    def domain_name(self) -> str | None:
        return self._running().findtext(f"{{{SYS_NS}}}domain/{{{SYS_NS}}}name")

    @property
    def fqdn(self) -> str:
        """hostname.domain-name, or the hostname alone without a domain (as on the router)."""
        domain = self.domain_name
        return f"{self.hostname}.{domain}" if domain else self.hostname
