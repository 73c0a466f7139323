"""agent/pki/ldap_watch.py: following a stream of LDAP messages, wherever the reads split it.

The ldap3 behaviour it relies on (every read through ``Connection.socket``,
a refusal reported from the operation, a shutdown ending a read) is shown
against the installed ldap3 by tests/e2e/trust/test_crl_fetch_hostile.py.
"""

from __future__ import annotations

import pytest
from ber import LDAP_BIND_OK, LDAP_SEARCH_DONE, LDAP_SUCCESS, ldap_entry, tlv

from agent.pki.ldap_watch import MAX_ELEMENTS, MAX_MESSAGES, _AnswerLimits


def _feed(stream: bytes, cuts: list[int], max_bytes: int = 1 << 20) -> tuple[_AnswerLimits, int | None]:
    """Feed ``stream`` in pieces ending at ``cuts``: (limits, the end of the piece refused, or None)."""
    limits = _AnswerLimits(max_bytes)
    start = 0
    for end in [*cuts, len(stream)]:
        try:
            limits.take(stream[start:end])
        except OSError:
            return limits, end
        start = end
    return limits, None


def test_a_valid_answer_passes_however_it_is_split() -> None:
    stream = LDAP_BIND_OK + ldap_entry([b"0" + b"\xff" * 300, b"second"]) + LDAP_SEARCH_DONE  # long and short lengths, two values
    for cut in range(1, len(stream)):
        limits, refused = _feed(stream, [cut])
        assert refused is None and limits.refused is None, cut
    limits, refused = _feed(stream, list(range(1, len(stream))))  # a byte per read
    assert refused is None and limits.refused is None


def test_a_message_of_too_many_elements_is_refused_on_its_last_byte_and_not_before() -> None:
    hostile = ldap_entry([b"x"] * MAX_ELEMENTS)
    stream = LDAP_BIND_OK + hostile
    for cut in (len(LDAP_BIND_OK), len(stream) - 1):
        limits, refused = _feed(stream, [cut])
        assert refused == len(stream), cut
        assert limits.refused == f"holds a message of more than {MAX_ELEMENTS} elements"
    assert _feed(LDAP_BIND_OK + ldap_entry([b"x"] * (MAX_ELEMENTS - 20)), [])[1] is None


def test_messages_beyond_the_limit_are_refused() -> None:
    assert _feed(LDAP_BIND_OK + ldap_entry([b"x"]) * (MAX_MESSAGES - 2) + LDAP_SEARCH_DONE, [])[1] is None
    limits, refused = _feed(LDAP_BIND_OK + ldap_entry([b"x"]) * MAX_MESSAGES, [])
    assert refused is not None and limits.refused == f"holds more than {MAX_MESSAGES} messages"


def test_bytes_beyond_the_limit_are_refused_before_the_message_ends() -> None:
    stream = LDAP_BIND_OK + ldap_entry([b"x" * 5000])
    limits, refused = _feed(stream, [len(LDAP_BIND_OK) + 100, len(LDAP_BIND_OK) + 4100], max_bytes=4096)
    assert refused == len(LDAP_BIND_OK) + 4100 < len(stream)
    assert limits.refused == "is larger than 4096 bytes"


def test_once_refused_every_later_read_is_refused_too() -> None:
    limits = _AnswerLimits(1 << 20)
    with pytest.raises(OSError):
        limits.take(b"\x04\x01x")
    with pytest.raises(OSError):
        limits.take(LDAP_BIND_OK)
    assert limits.refused == "is not an LDAP message"


@pytest.mark.parametrize(
    ("stream", "why"),
    [
        (b"\x30\x80\x00\x00", "is malformed (indefinite or oversized BER length)"),
        (b"\x30\x85\x00\x00\x00\x00\x01", "is malformed (indefinite or oversized BER length)"),
        (tlv(0x30, tlv(0x02, b"\x01") + b"\x64\x7f" + b"x" * 4), "is malformed (an element runs past its container)"),
    ],
    ids=["indefinite", "five-length-bytes", "past-its-container"],
)
def test_malformed_answers_are_refused(stream: bytes, why: str) -> None:
    limits, refused = _feed(stream, [])
    assert refused is not None and limits.refused == why


def test_a_tag_of_several_bytes_is_read_whole() -> None:
    control = tlv(0xA0, tlv(0x30, tlv(0x04, b"1.2.3")))  # controls [0], inside a constructed element
    multi_byte_tag = b"\x9f\x81\x00" + b"\x02ok"  # a context tag numbered 128, primitive
    stream = tlv(0x30, tlv(0x02, b"\x03") + tlv(0x65, LDAP_SUCCESS) + control + multi_byte_tag)
    for cut in range(1, len(stream)):
        assert _feed(stream, [cut])[1] is None, cut
