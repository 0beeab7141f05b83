"""The sans-I/O DoT protocol core: framing, query IDs, response matching, validation.

Nothing here touches a socket, a clock or an event loop. Bytes to send come out of
:meth:`DoTProtocol.send_query`; bytes read from the connection go into
:meth:`DoTProtocol.receive_data` (``b""`` means the peer closed it); the outcome of each
query is collected with :meth:`DoTProtocol.result`. Responses may arrive in any order
(RFC 7766 section 6.2.1.1): each one is filed under its query ID, so the I/O shells only
move bytes and wait.
"""

from __future__ import annotations

import copy
import secrets
import struct

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from ._exceptions import ConnectionLost, ProtocolError

__all__ = [
    "DEFAULT_PADDING_BLOCK",
    "DNS_HEADER_SIZE",
    "MAX_PADDING_BLOCK",
    "DoTProtocol",
    "FrameDecoder",
    "encode_frame",
    "make_query",
    "render_query",
]

#: RFC 8467 section 4.1: clients pad queries to the closest multiple of 128 octets.
DEFAULT_PADDING_BLOCK = 128
#: The largest padding block accepted (RFC 8467 suggests 128 for queries).
MAX_PADDING_BLOCK = 512
#: A DNS message is never shorter than its 12-octet header (RFC 1035 section 4.1.1).
DNS_HEADER_SIZE = 12
_MAX_MESSAGE = 65535
_U16 = struct.Struct("!H")
# Responses that may come back without a question section (dnspython's is_response rule).
_QUESTIONLESS_RCODES = frozenset(
    {dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NOTIMP, dns.rcode.REFUSED}
)


def encode_frame(message: bytes) -> bytes:
    """Prefix a DNS message with its two-octet length (RFC 7858 section 3.3, RFC 1035
    section 4.2.2). The caller writes the result in one go (RFC 7766 section 8)."""
    if not DNS_HEADER_SIZE <= len(message) <= _MAX_MESSAGE:
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


def make_query(
    qname: dns.name.Name | str,
    rdtype: dns.rdatatype.RdataType | str | int = dns.rdatatype.A,
    rdclass: dns.rdataclass.RdataClass | str | int = dns.rdataclass.IN,
    *,
    dnssec: bool = False,
    padding: int = 0,
) -> dns.message.QueryMessage:
    """Build a recursive query with EDNS(0), the way a stub resolver asks.

    ``dnssec=True`` sets the DO bit (RFC 3225); ``padding`` > 0 pads it to that block
    size when rendered (RFC 8467). Bad names or types raise ``ValueError``.
    """
    try:
        if isinstance(qname, str):
            qname = dns.name.from_text(qname)
        rdtype = dns.rdatatype.RdataType.make(rdtype)
        rdclass = dns.rdataclass.RdataClass.make(rdclass)
    except dns.exception.DNSException as exc:
        raise ValueError(f"invalid query: {exc}") from exc
    if dns.rdatatype.is_metatype(rdtype) and rdtype != dns.rdatatype.ANY:
        raise ValueError(f"cannot query for meta-type {rdtype.name}")
    return dns.message.make_query(
        qname, rdtype, rdclass, use_edns=0, want_dnssec=dnssec, payload=1232, pad=padding
    )


def render_query(message: dns.message.Message, query_id: int, padding: int) -> bytes:
    """Render ``message`` to wire format with ``query_id``, leaving the caller's object
    untouched. With ``padding`` > 0, add an EDNS(0) Padding option (RFC 7830) so the
    message length is a multiple of ``padding`` (RFC 8467 block-length padding)."""
    return _render(message, query_id, padding)[0]


def _render(
    message: dns.message.Message, query_id: int, padding: int
) -> tuple[bytes, bytes | None]:
    msg = copy.copy(message)
    msg.id = query_id
    if msg.tsig is not None:
        # to_wire() rewrites the TSIG RRset in place; keep the caller's intact.
        msg.tsig = copy.copy(msg.tsig)
    already_padded = (
        msg.edns >= 0
        and msg.pad == padding
        and not any(o.otype == dns.edns.OptionType.PADDING for o in msg.options)
    )
    if padding and not already_padded:
        if msg.edns < 0:
            msg.use_edns(0, pad=padding)
        else:
            options = [o for o in msg.options if o.otype != dns.edns.OptionType.PADDING]
            msg.use_edns(msg.edns, msg.ednsflags, msg.payload, options=options, pad=padding)
    try:
        wire = msg.to_wire()
    except dns.exception.DNSException as exc:
        raise ValueError(f"cannot render query: {exc}") from exc
    # A TSIG-signed query: the response's TSIG is checked against this MAC (RFC 8945).
    return wire, getattr(msg, "mac", None) if msg.keyring is not None else None


def _describe(question: dns.rrset.RRset) -> str:
    return (
        f"{question.name} {dns.rdataclass.to_text(question.rdclass)} "
        f"{dns.rdatatype.to_text(question.rdtype)}"
    )


class _Pending:
    """What the response to one query in flight is checked against."""

    __slots__ = ("keyring", "mac", "opcode", "question")

    def __init__(self, message: dns.message.Message, mac: bytes | None) -> None:
        self.question = message.question[0]  # send_query requires exactly one
        self.opcode = message.opcode()
        self.keyring = message.keyring
        self.mac = mac


class DoTProtocol:
    """The state of one DoT connection, without the connection.

    Typical use by an I/O shell::

        proto = DoTProtocol()
        qid, data = proto.send_query(query)
        write(data)
        while (response := proto.result(qid)) is None:
            proto.receive_data(read())    # read() returns b"" when the peer closed

    :meth:`result` raises :class:`ProtocolError` when the response to that query was
    malformed or did not match it, and :class:`ConnectionLost` when the connection ended
    before it came. Responses that match no query in flight (a stray ID, a second
    answer to the same query, an answer to an abandoned query) are dropped and counted
    in :attr:`unmatched`.
    """

    def __init__(self, *, padding: int = DEFAULT_PADDING_BLOCK, keepalive: bool = False) -> None:
        if not 0 <= padding <= MAX_PADDING_BLOCK:
            raise ValueError(
                f"padding block must be 0 (off) to {MAX_PADDING_BLOCK} octets, not {padding}"
            )
        self.padding = padding
        self._decoder = FrameDecoder()
        self._pending: dict[int, _Pending] = {}
        self._results: dict[int, dns.message.Message | Exception] = {}
        # IDs of queries given up on (timed out, cancelled): not reused on this
        # connection, so a late answer can never be taken for a newer query's.
        self._abandoned: set[int] = set()
        self._error: ProtocolError | None = None
        self._eof = False
        #: Count of responses dropped because they matched no query in flight.
        self.unmatched = 0
        #: Count of responses delivered (matched and valid).
        self.answered = 0

    # -- sending -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the peer closed the connection or broke the framing."""
        return self._eof or self._error is not None

    @property
    def in_flight(self) -> int:
        """Queries sent and not yet answered, failed or abandoned."""
        return len(self._pending)

    def _allocate_id(self) -> int:
        in_use = (self._pending, self._results, self._abandoned)
        if sum(len(ids) for ids in in_use) >= 65536:
            raise RuntimeError("all 65,536 query IDs are in use on this connection")
        while True:
            # RFC 5452 section 9.2: IDs must be unpredictable; secrets uses the OS CSPRNG.
            qid = secrets.randbits(16)
            if not any(qid in ids for ids in in_use):
                return qid

    def send_query(self, message: dns.message.Message) -> tuple[int, bytes]:
        """Register ``message`` as a query in flight under a fresh random ID.

        Returns the ID and the framed bytes to write. The ``message`` object itself is
        not modified. Raises :class:`ConnectionLost` once the connection has ended.
        """
        if self.closed:
            raise ConnectionLost("the connection has already ended")
        if len(message.question) != 1:
            raise ValueError(f"a query needs exactly one question, not {len(message.question)}")
        qid = self._allocate_id()
        wire, mac = _render(message, qid, self.padding)
        self._pending[qid] = _Pending(message, mac)
        return qid, encode_frame(wire)

    def send_question(
        self, qname: dns.name.Name, rdtype: int, rdclass: int, *, dnssec: bool = False
    ) -> tuple[int, bytes]:
        """TEMPORARY shim until the lean path lands."""
        return self.send_query(make_query(qname, rdtype, rdclass, dnssec=dnssec))

    @property
    def abandoned(self) -> int:
        """TEMPORARY shim."""
        return len(self._abandoned)

    keepalive_timeout: float | None = None

    def abandon(self, query_id: int) -> None:
        """Stop waiting for ``query_id``; a late answer to it will be dropped."""
        if self._pending.pop(query_id, None) is not None:
            self._abandoned.add(query_id)
        self._results.pop(query_id, None)

    # -- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[int]:
        """Process bytes read from the connection; ``b""`` means the peer closed it.

        Returns the IDs of the queries whose outcome (a response or an error) is now
        ready for :meth:`result`, so a shell can wake just their waiters. Raises
        :class:`ProtocolError` if the byte stream is not valid DNS-over-TCP framing;
        every query in flight then fails with that error too.
        """
        if self._error is not None or self._eof:
            return []
        if not data:
            self._eof = True
            where = self._decoder.describe_partial()
            reason = "the server closed the connection"
            if where:
                reason += f" {where}"
            ready = list(self._pending)
            for qid in ready:
                self._fail(qid, ConnectionLost(f"{reason} before answering query {qid}"))
            return ready
        try:
            frames = self._decoder.feed(data)
        except ProtocolError:
            frames = []
        ready = []
        for frame in frames:
            done = self._receive_message(frame)
            if done is not None:
                ready.append(done)
        exc = self._decoder.error
        if exc is not None:
            self._error = exc
            for qid in list(self._pending):
                self._fail(qid, ProtocolError(f"{exc} (query {qid} was in flight)"))
            raise exc
        return ready

    def _fail(self, qid: int, error: Exception) -> None:
        del self._pending[qid]
        self._results[qid] = error

    def _receive_message(self, wire: bytes) -> int | None:
        qid: int = _U16.unpack_from(wire, 0)[0]
        pending = self._pending.get(qid)
        if pending is None:
            self.unmatched += 1
            return None
        if not wire[2] & 0x80:
            self._fail(
                qid, ProtocolError(f"the message for query {qid} has no QR bit: not a response")
            )
            return qid
        try:
            response = dns.message.from_wire(
                wire,
                keyring=pending.keyring,
                request_mac=pending.mac or b"",
                one_rr_per_rrset=False,
            )
        except Exception as exc:  # dnspython raises many types for bad input
            self._fail(
                qid,
                ProtocolError(f"malformed response to query {qid}: {type(exc).__name__}: {exc}"),
            )
            return qid
        if pending.keyring is not None and not response.had_tsig:
            # RFC 8945 section 5.3.1: an unsigned answer to a signed query is rejected
            # (not every dnspython version does this in from_wire).
            self._fail(qid, ProtocolError(f"unsigned response to TSIG-signed query {qid}"))
            return qid
        problem = self._mismatch(pending, response)
        if problem is not None:
            self._fail(qid, ProtocolError(f"response to query {qid} does not match: {problem}"))
            return qid
        del self._pending[qid]
        self._results[qid] = response
        self.answered += 1
        return qid

    @staticmethod
    def _mismatch(pending: _Pending, response: dns.message.Message) -> str | None:
        if response.opcode() != pending.opcode:
            return f"opcode {response.opcode().name}, expected {pending.opcode.name}"
        if not response.question:
            if response.rcode() in _QUESTIONLESS_RCODES:
                return None
            return "no question section"
        if len(response.question) != 1:
            return f"{len(response.question)} questions"
        got, asked = response.question[0], pending.question
        # dns.name.Name compares case-insensitively (RFC 4343).
        if (got.name, got.rdtype, got.rdclass) != (asked.name, asked.rdtype, asked.rdclass):
            return f"question {_describe(got)}, expected {_describe(asked)}"
        return None

    def result(self, query_id: int) -> dns.message.Message | None:
        """The response to ``query_id`` if it has come (then forgotten), else None.

        Raises the query's error if it failed (:class:`ProtocolError`,
        :class:`ConnectionLost`); raises ``KeyError`` for an ID never sent or already
        collected, which is a bug in the caller.
        """
        outcome = self._results.pop(query_id, None)
        if outcome is None:
            if query_id in self._pending:
                return None
            raise KeyError(query_id)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def check_question(
    qname: dns.name.Name | str,
    rdtype: dns.rdatatype.RdataType | str | int,
    rdclass: dns.rdataclass.RdataClass | str | int,
) -> tuple[dns.name.Name, dns.rdatatype.RdataType, dns.rdataclass.RdataClass]:
    """Parse a question's name, type and class; raise ``ValueError`` for bad ones
    (unknown mnemonics, names too long, meta-types other than ANY)."""
    try:
        if isinstance(qname, str):
            qname = dns.name.from_text(qname)
        rdtype = dns.rdatatype.RdataType.make(rdtype)
        rdclass = dns.rdataclass.RdataClass.make(rdclass)
    except dns.exception.DNSException as exc:
        raise ValueError(f"invalid query: {exc}") from exc
    if dns.rdatatype.is_metatype(rdtype) and rdtype != dns.rdatatype.ANY:
        raise ValueError(f"cannot query for meta-type {rdtype.name}")
    return qname, rdtype, rdclass
