"""Hand-made BER/DER elements for tests that need bytes no library would produce (hostile LDAP, odd CMS)."""

from __future__ import annotations


def tlv(tag: int, body: bytes) -> bytes:
    """One element: ``tag`` (a single byte), its definite length in the shortest form, then ``body``."""
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


# LDAP (RFC 4511) answers, enough for a CRL search: a message, a search entry, a result.
LDAP_SUCCESS = b"\x0a\x01\x00\x04\x00\x04\x00"
"""An LDAPResult's fields: resultCode success, no matchedDN, no diagnostic message."""


def ldap_message(operation: bytes, message_id: bytes = b"\x02") -> bytes:
    """An LDAPMessage carrying ``operation`` (an answer echoes its request's ID)."""
    return tlv(0x30, tlv(0x02, message_id) + operation)


def ldap_entry(values: list[bytes], attribute: bytes = b"certificateRevocationList;binary") -> bytes:
    """A SearchResultEntry for cn=CA,o=Example with one attribute of ``values``."""
    attributes = tlv(0x30, tlv(0x30, tlv(0x04, attribute) + tlv(0x31, b"".join(tlv(0x04, v) for v in values))))
    return ldap_message(tlv(0x64, tlv(0x04, b"cn=CA,o=Example") + attributes))


LDAP_BIND_OK = ldap_message(tlv(0x61, LDAP_SUCCESS), b"\x01")
LDAP_SEARCH_DONE = ldap_message(tlv(0x65, LDAP_SUCCESS))
