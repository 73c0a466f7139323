"""RFC 6242 message framing, as a pure decoder/encoder with no I/O.

Two framings share one byte stream: end-of-message (``]]>]]>``, base:1.0,
always used for the hellos) and chunked (``\\n#LEN\\n...\\n##\\n``, base:1.1,
once both peers announced it). The decoder is fed whatever the transport read
and hands out whole messages; the caller switches :attr:`FrameDecoder.chunked`
between messages, which is why messages are taken one at a time.

Every byte is looked at a bounded number of times (reading is linear in the
input), and a message larger than ``max_message_size`` is refused as soon as
that is known: for chunked framing, from the chunk header alone, so a header
announcing a 4 GB chunk fails at once instead of waiting for the data.

A chunked message may have at most :data:`MAX_CHUNKS` chunks. RFC 6242 allows
chunks of one byte, and each chunk costs a header's parsing and an object:
2 MiB sent one byte per chunk took the agent 2.4 s of CPU and 120 MiB, so a
message of the 16 MiB limit would have taken ~20 s and ~1 GB. Clients send a
message in one chunk or in chunks of kilobytes (16 MiB in 4 KiB chunks is
4,096 of them).
"""

from __future__ import annotations

EOM = b"]]>]]>"
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024  # libnetconf2's cap on a chunked message
MAX_CHUNK_SIZE = 4294967295  # RFC 6242 4.2: chunk-size is at most 4294967295
_MAX_CHUNK_DIGITS = len(str(MAX_CHUNK_SIZE))
_COMPACT_AT = 64 * 1024  # drop consumed bytes from the buffer's front past this
MAX_CHUNKS = 65536  # chunks in one message (see the module docstring)


class FramingError(Exception):
    """The peer broke RFC 6242 framing or a size limit; the session must end (RFC 6242 4.2)."""


class FrameDecoder:
    """Splits a NETCONF byte stream into messages (bytes, framing removed)."""

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < 1:
            raise ValueError("max_message_size must be positive")
        self.max_message_size = max_message_size
        self.chunked = False
        self._buffer = bytearray()
        self._start = 0  # first unconsumed byte of _buffer
        self._scan = 0  # EOM framing: where the next search for ]]>]]> starts
        # chunked framing: the chunks of the message being assembled
        self._parts: list[bytes] = []
        self._size = 0
        self._chunks = 0  # chunks of the message being assembled
        self._chunk_left = 0  # bytes still due for the current chunk

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out (including a partial message)."""
        return len(self._buffer) - self._start + self._size

    def feed(self, data: bytes) -> None:
        """Append bytes read from the transport."""
        if self._start >= _COMPACT_AT and self._start * 2 >= len(self._buffer):
            del self._buffer[: self._start]
            self._scan -= self._start
            self._start = 0
        self._buffer += data

    def discard(self) -> None:
        """Drop whatever is held (the session ended): its memory goes now, not when the session object does."""
        self._buffer = bytearray()
        self._start = self._scan = 0
        self._parts = []
        self._size = self._chunks = self._chunk_left = 0

    def starts_chunked(self) -> bool:
        """True when the unread input begins like a chunked message (``\\n#``)."""
        return bytes(self._buffer[self._start : self._start + 2]) == b"\n#"

    def next_message(self) -> bytes | None:
        """The next complete message, or None until more input is fed.

        Raises FramingError for bad framing or an oversized message.
        """
        if self.chunked:
            return self._next_chunked()
        return self._next_eom()

    # -- end-of-message framing (base:1.0) --------------------------------------
    def _next_eom(self) -> bytes | None:
        buffer = self._buffer
        index = buffer.find(EOM, max(self._scan, self._start))
        if index < 0:
            if len(buffer) - self._start > self.max_message_size + len(EOM):
                raise FramingError(f"message larger than {self.max_message_size} bytes")
            # The marker may straddle two reads: rescan its length minus one.
            self._scan = max(self._start, len(buffer) - len(EOM) + 1)
            return None
        if index - self._start > self.max_message_size:
            raise FramingError(f"message larger than {self.max_message_size} bytes")
        message = bytes(buffer[self._start : index])
        self._start = index + len(EOM)
        self._scan = self._start
        return message

    # -- chunked framing (base:1.1) -------------------------------------------------
    def _next_chunked(self) -> bytes | None:
        buffer = self._buffer
        while True:
            if self._chunk_left:
                available = len(buffer) - self._start
                if not available:
                    return None
                take = min(available, self._chunk_left)
                self._parts.append(bytes(buffer[self._start : self._start + take]))
                self._start += take
                self._chunk_left -= take
                continue
            header = self._chunk_header()
            if header is None:
                return None
            if header == 0:  # end-of-chunks
                if not self._parts:
                    raise FramingError("end-of-chunks marker before any chunk")
                message = b"".join(self._parts)
                self._parts = []
                self._size = self._chunks = 0
                return message
            if self._size + header > self.max_message_size:
                raise FramingError(
                    f"chunk of {header} bytes would make the message larger than {self.max_message_size} bytes"
                )
            self._chunks += 1
            if self._chunks > MAX_CHUNKS:
                raise FramingError(f"more than {MAX_CHUNKS} chunks in one message")
            self._size += header
            self._chunk_left = header

    def _chunk_header(self) -> int | None:
        """Parse ``\\n#LEN\\n`` (returns LEN) or ``\\n##\\n`` (returns 0); None if incomplete."""
        buffer, start = self._buffer, self._start
        available = len(buffer) - start
        if available < 1:
            return None
        if buffer[start] != 0x0A:
            raise FramingError(f"expected a chunk header, got {bytes(buffer[start:start + 8])!r}")
        if available < 2:
            return None
        if buffer[start + 1] != 0x23:  # '#'
            raise FramingError(f"expected '#' in a chunk header, got {bytes(buffer[start:start + 8])!r}")
        if available < 3:
            return None
        first = buffer[start + 2]
        if first == 0x23:  # '\n##\n'
            if available < 4:
                return None
            if buffer[start + 3] != 0x0A:
                raise FramingError("end-of-chunks marker not followed by a newline")
            self._start = start + 4
            return 0
        if not 0x31 <= first <= 0x39:  # chunk-size starts with 1-9 (no leading zero, no zero)
            raise FramingError(f"bad chunk size in {bytes(buffer[start:start + 16])!r}")
        end = start + 3
        limit = min(len(buffer), start + 2 + _MAX_CHUNK_DIGITS)
        while end < limit and 0x30 <= buffer[end] <= 0x39:
            end += 1
        if end == len(buffer):
            if end - (start + 2) >= _MAX_CHUNK_DIGITS:
                raise FramingError("chunk size has too many digits")
            return None  # the header continues in the next read
        if buffer[end] != 0x0A:
            raise FramingError(f"chunk size not followed by a newline in {bytes(buffer[start:start + 16])!r}")
        size = int(buffer[start + 2 : end])
        if size > MAX_CHUNK_SIZE:
            raise FramingError(f"chunk size {size} exceeds {MAX_CHUNK_SIZE}")
        self._start = end + 1
        return size


def encode_message(message: bytes, chunked: bool) -> bytes:
    """Frame one message for sending (one chunk in base:1.1)."""
    if chunked:
        return b"\n#%d\n%s\n##\n" % (len(message), message)
    return message + EOM
