"""PKI events as the YANG notifications of ca-agent-crypto.

:func:`notification_element` gives the notification's content element
(``<certificate-expiring xmlns="urn:ca-agent:yang:crypto">...``); the NETCONF
layer wraps it in RFC 5277's ``<notification><eventTime>`` and delivers it.
Events without a YANG notification (a certificate installed: an SNMP trap
only) give None.
"""

from __future__ import annotations

from lxml import etree

from agent.pki.events import (
    CertificateExpiring,
    CertificateRevoked,
    EnrollmentCompleted,
    EnrollmentFailed,
    PkiEvent,
)
from agent.services.keys import USAGE_NAMES
from agent.services.yangio import container, leaf

__all__ = ["notification_element"]


def notification_element(event: PkiEvent) -> etree._Element | None:
    """The YANG notification for ``event`` (None if it has none). Raises nothing."""
    if isinstance(event, CertificateExpiring):
        cert = event.certificate
        element = container("certificate-expiring")
        leaf(element, "trustpoint", cert.trustpoint)
        leaf(element, "certificate-type", cert.cert_type.value.lower())
        if cert.key_usage is not None:
            leaf(element, "key-usage", USAGE_NAMES[cert.key_usage])
        leaf(element, "serial-number", cert.serial_number)
        leaf(element, "issuer", cert.issuer)
        leaf(element, "subject", cert.subject)
        leaf(element, "not-after", cert.not_after)
        leaf(element, "seconds-left", min(event.seconds_left, 2**32 - 1))
        leaf(element, "mode", event.mode.value)
        return element
    if isinstance(event, EnrollmentCompleted):
        element = container("enrollment-complete")
        leaf(element, "trustpoint", event.trustpoint)
        leaf(element, "key-usage", USAGE_NAMES[event.key_usage])
        if event.transaction_id:
            leaf(element, "transaction-id", event.transaction_id)
        if event.serial_number:
            leaf(element, "serial-number", event.serial_number)
        return element
    if isinstance(event, EnrollmentFailed):
        element = container("enrollment-failed")
        leaf(element, "trustpoint", event.trustpoint)
        leaf(element, "key-usage", USAGE_NAMES[event.key_usage])
        if event.transaction_id:
            leaf(element, "transaction-id", event.transaction_id)
        leaf(element, "state", event.state.value)
        leaf(element, "reason", event.reason)
        return element
    if isinstance(event, CertificateRevoked):
        element = container("certificate-revoked")
        leaf(element, "trustpoint", event.trustpoint)
        leaf(element, "key-usage", USAGE_NAMES[event.key_usage])
        leaf(element, "serial-number", event.serial_number)
        if event.revocation_date is not None:
            leaf(element, "revocation-date", event.revocation_date)
        if event.reason:
            leaf(element, "reason", event.reason)
        return element
    return None
