"""DNS over TCP and TLS framing: the two-octet length prefix (RFC 1035 section 4.2.2,
RFC 7858 section 3.3), any chunking of the stream (RFC 7766 section 8).

Sans-I/O, like the rest of the core: :func:`encode_frame` returns the bytes to write and
:class:`FrameDecoder` turns bytes read into whole messages.
"""

from __future__ import annotations

import struct

from ._exceptions import ProtocolError

__all__ = ["DNS_HEADER_SIZE", "MAX_MESSAGE", "FrameDecoder", "encode_frame"]

#: A DNS message is never shorter than its 12-octet header (RFC 1035 section 4.1.1).
DNS_HEADER_SIZE = 12
#: The longest message a two-octet length prefix can carry.
MAX_MESSAGE = 65535
_U16 = struct.Struct("!H")


def encode_frame(message: bytes) -> bytes:
    """Prefix a DNS message with its two-octet length (RFC 7858 section 3.3, RFC 1035
    section 4.2.2). The caller writes the result in one go (RFC 7766 section 8)."""
    if not DNS_HEADER_SIZE <= len(message) <= MAX_MESSAGE:
        raise ValueError(f"a DNS message is 12 to 65535 octets, not {len(message)}")
    return _U16.pack(len(message)) + message


class FrameDecoder:
    """Split a TCP/TLS byte stream into DNS messages, whatever the chunking.

    Feed bytes with :meth:`feed`; each call returns the complete messages found so far
    (possibly none, possibly several). A frame shorter than a DNS header (including a
    zero length prefix) breaks the stream and raises :class:`ProtocolError`; if complete
    messages came before it in the same call, they are returned first and the error is
    raised by the next call (it is in :attr:`error` at once). So no message is lost to
    the way the bytes were chunked.
    """

    __slots__ = ("_buffer", "_offset", "error")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._offset = 0
        #: The framing error that ended the stream, if any.
        self.error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Octets received that do not yet make a whole frame."""
        return len(self._buffer) - self._offset

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` and return the complete messages, in stream order."""
        if self.error is not None:
            raise self.error
        buffer = self._buffer
        buffer += data
        messages: list[bytes] = []
        offset = self._offset
        end = len(buffer)
        while end - offset >= 2:
            (length,) = _U16.unpack_from(buffer, offset)
            if length < DNS_HEADER_SIZE:
                self.error = ProtocolError(
                    f"the server sent a {length}-octet frame; a DNS message needs at least "
                    f"{DNS_HEADER_SIZE} octets"
                )
                break
            if end - offset - 2 < length:
                break
            messages.append(bytes(buffer[offset + 2 : offset + 2 + length]))
            offset += 2 + length
        if offset == end:
            buffer.clear()
            offset = 0
        elif offset > 65536:
            del buffer[:offset]
            offset = 0
        self._offset = offset
        if self.error is not None and not messages:
            raise self.error
        return messages

    def describe_partial(self) -> str | None:
        """Say where the stream stopped if it ended inside a frame, else None."""
        left = self.buffered
        if left == 0:
            return None
        if left == 1:
            return "inside a length prefix (1 of 2 octets)"
        (length,) = _U16.unpack_from(self._buffer, self._offset)
        return f"inside a message ({left - 2} of {length} octets)"
