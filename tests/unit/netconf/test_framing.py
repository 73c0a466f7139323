"""RFC 6242 framing decoder: both framings, split reads, limits, malformed chunk headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.netconf.framing import EOM, MAX_CHUNKS, FrameDecoder, FramingError, encode_message


def _all(decoder: FrameDecoder) -> list[bytes]:
    out = []
    while (message := decoder.next_message()) is not None:
        out.append(message)
    return out


def test_eom_messages_split_anywhere_including_inside_the_marker() -> None:
    stream = b"<a/>" + EOM + b"<b>x</b>" + EOM
    for cut in range(1, len(stream)):
        decoder = FrameDecoder()
        decoder.feed(stream[:cut])
        got = _all(decoder)
        decoder.feed(stream[cut:])
        got += _all(decoder)
        assert got == [b"<a/>", b"<b>x</b>"], cut


def test_chunked_messages_split_anywhere() -> None:
    stream = b"\n#4\n<a/>\n#3\n<b>\n##\n" + b"\n#1\nx\n##\n"
    for cut in range(1, len(stream)):
        decoder = FrameDecoder()
        decoder.chunked = True
        decoder.feed(stream[:cut])
        got = _all(decoder)
        decoder.feed(stream[cut:])
        got += _all(decoder)
        assert got == [b"<a/><b>", b"x"], cut


@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=8), st.integers(1, 50))
def test_round_trip_of_encode_message_in_both_framings(messages: list[bytes], step: int) -> None:
    for chunked in (False, True):
        # A base:1.0 message cannot contain the marker; "]" is enough to rule it out.
        payloads = [m.replace(b"]", b"_") for m in messages] if not chunked else messages
        stream = b"".join(encode_message(m, chunked) for m in payloads)
        decoder = FrameDecoder()
        decoder.chunked = chunked
        got: list[bytes] = []
        for start in range(0, len(stream), step):
            decoder.feed(stream[start : start + step])
            got += _all(decoder)
        assert got == payloads


def test_framing_switch_between_messages_keeps_the_buffered_bytes() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"<hello/>" + EOM + b"\n#4\n<a/>\n##\n")
    assert decoder.next_message() == b"<hello/>"
    decoder.chunked = True
    assert decoder.next_message() == b"<a/>"


@pytest.mark.parametrize(
    "header",
    [
        b"\n#0\n",  # zero
        b"\n#007\n",  # leading zeros
        b"\n#4294967296\n",  # above the RFC 6242 maximum
        b"\n#12345678901\n",  # too many digits
        b"\n#4x",  # missing LF
        b"\n#-1\n",
        b"#4\n",  # missing leading LF
        b"\n\n",
        b"\n##\n",  # end-of-chunks before any chunk
        b"\n##x",
    ],
)
def test_bad_chunk_headers_are_framing_errors(header: bytes) -> None:
    decoder = FrameDecoder()
    decoder.chunked = True
    decoder.feed(header + b"abcdefgh")
    with pytest.raises(FramingError):
        _all(decoder)


def test_a_huge_chunk_header_fails_at_once_without_waiting_for_data() -> None:
    decoder = FrameDecoder(max_message_size=16 * 1024 * 1024)
    decoder.chunked = True
    decoder.feed(b"\n#4294967295\n")
    with pytest.raises(FramingError, match="larger than"):
        decoder.next_message()


def test_chunks_adding_up_past_the_cap_fail() -> None:
    decoder = FrameDecoder(max_message_size=10)
    decoder.chunked = True
    decoder.feed(b"\n#6\nabcdef\n#5\n")
    with pytest.raises(FramingError):
        _all(decoder)


def test_a_message_of_too_many_chunks_fails_and_the_count_starts_again_for_the_next() -> None:
    decoder = FrameDecoder()
    decoder.chunked = True
    decoder.feed(b"\n#1\na" * MAX_CHUNKS + b"\n##\n")
    assert _all(decoder) == [b"a" * MAX_CHUNKS]  # at the limit: accepted
    decoder.feed(b"\n#1\na" * MAX_CHUNKS)
    assert _all(decoder) == []
    decoder.feed(b"\n#1\na")  # one more: refused before the end of the message
    with pytest.raises(FramingError, match=f"more than {MAX_CHUNKS} chunks"):
        _all(decoder)


def test_eom_message_past_the_cap_fails_before_its_end_arrives() -> None:
    decoder = FrameDecoder(max_message_size=100)
    decoder.feed(b"x" * 60)
    assert decoder.next_message() is None
    decoder.feed(b"x" * 60)
    with pytest.raises(FramingError):
        decoder.next_message()


def test_message_exactly_at_the_cap_is_accepted() -> None:
    for chunked in (False, True):
        decoder = FrameDecoder(max_message_size=100)
        decoder.chunked = chunked
        decoder.feed(encode_message(b"y" * 100, chunked))
        assert decoder.next_message() == b"y" * 100


def test_many_small_messages_in_one_read_are_all_returned_and_the_buffer_shrinks() -> None:
    decoder = FrameDecoder()
    decoder.feed((b"<m/>" + EOM) * 50_000)
    assert len(_all(decoder)) == 50_000
    decoder.feed(b"<n/>" + EOM)  # compaction happens on feed
    assert decoder.next_message() == b"<n/>"
    assert decoder.buffered == 0


def test_starts_chunked_detects_a_chunked_hello() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\n#5\n<x/>")
    assert decoder.starts_chunked()
    other = FrameDecoder()
    other.feed(b"\n<?xml")
    assert not other.starts_chunked()
