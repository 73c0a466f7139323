"""Hand-made BER/DER elements for tests that need bytes no library would produce (hostile LDAP, odd CMS)."""

from __future__ import annotations


def tlv(tag: int, body: bytes) -> bytes:
    """One element: ``tag`` (a single byte), its definite length in the shortest form, then ``body``."""
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body
