"""What the stub says to its plain-DNS clients, decided from bytes: no sockets, no clock.

:func:`read_query` sorts what arrived into a query to answer or a reply to send at once
(FORMERR, NOTIMP, BADVERS) or nothing at all; :func:`client_view` removes from an
upstream answer what only made sense on the encrypted hop; :func:`finish` fits the
answer to the one query it answers (ID, the question's letter case) and sets TC when it
is too big for the client's UDP buffer; :func:`servfail` says why nothing came back.
"""

from __future__ import annotations

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

from .._exceptions import (
    AllServersFailed,
    NetworkError,
    ProtocolError,
    Timeout,
    TLSError,
)

__all__ = [
    "EDE_NETWORK_ERROR",
    "EDE_NO_REACHABLE_AUTHORITY",
    "EDE_OTHER",
    "PAYLOAD",
    "Query",
    "client_view",
    "failure_cause",
    "finish",
    "formerr",
    "read_query",
    "refused",
    "servfail",
]

#: The UDP payload size the stub advertises and offers (DNS Flag Day 2020).
PAYLOAD = 1232
#: RFC 1035 section 4.2.1: without EDNS, UDP messages are at most 512 octets.
_CLASSIC_UDP = 512
_HEADER = 12
_QR = int(dns.flags.QR)
_TC = int(dns.flags.TC)
_RD = int(dns.flags.RD)
_CD = int(dns.flags.CD)
_DO = int(dns.flags.DO)
_EDE = int(dns.edns.OptionType.EDE)
# Extended DNS Error codes (RFC 8914 section 4).
EDE_OTHER = 0
EDE_NO_REACHABLE_AUTHORITY = 22
EDE_NETWORK_ERROR = 23
# EXTRA-TEXT is for humans; keep the SERVFAIL small enough for any UDP client.
_EDE_TEXT_MAX = 300

#: (QNAME in lower case as on the wire, type, class, RD|CD flags, DO): answers that may
#: stand for one another.
CacheKey = tuple[bytes, int, int, int, bool]

_AXFR, _IXFR, _OPT = 252, 251, 41


class Query:
    """A well-formed query from a client, ready to answer or forward.

    Most queries are read from their bytes alone (:func:`read_query`); the dnspython
    message is parsed only when the query has to go upstream or be answered SERVFAIL.
    """

    __slots__ = ("_message", "do", "edns", "key", "udp_limit", "wire")

    def __init__(
        self,
        wire: bytes,
        key: CacheKey,
        edns: bool,
        do: bool,
        udp_limit: int,
        message: dns.message.Message | None = None,
    ) -> None:
        #: The bytes received (the question's letter case is taken from them).
        self.wire = wire
        #: The cache key; answers to DO queries are kept apart (RFC 4035 section 3.2.1).
        self.key = key
        #: Whether the client sent an OPT record (and so may get one back).
        self.edns = edns
        #: Whether the client set the DO bit (RFC 3225).
        self.do = do
        #: The largest answer the client takes over UDP (RFC 6891 section 6.2.5).
        self.udp_limit = udp_limit
        self._message = message

    @property
    def message(self) -> dns.message.Message:
        """The query as dnspython parses it (parsed on first use)."""
        if self._message is None:
            self._message = dns.message.from_wire(self.wire)
        return self._message


def _header_reply(wire: bytes, rcode: int) -> bytes:
    """A reply carrying only a header: the query's ID, opcode and RD, and ``rcode``."""
    qid, flags = struct.unpack_from("!HH", wire)
    flags = _QR | (flags & (0x7800 | _RD)) | (rcode & 0xF)
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


def _lean(wire: bytes) -> Query | None:
    """The common query read from its bytes: one question with an uncompressed name, no
    other records but an OPT (version 0) whose options are well framed, nothing after.
    None for anything else, which :func:`read_query` then hands to dnspython."""
    size = len(wire)
    if wire[2] & 0x78 or wire[4:10] != b"\x00\x01\x00\x00\x00\x00" or wire[10] or wire[11] > 1:
        return None
    offset = _HEADER
    while True:
        if offset >= size:
            return None
        length = wire[offset]
        if length == 0:
            break
        if length > 63:
            return None  # a compression pointer or a reserved label type
        offset += length + 1
    qend = offset + 1
    end = qend + 4
    if qend - _HEADER > 255 or end > size:
        return None
    qtype = (wire[qend] << 8) | wire[qend + 1]
    if qtype in (_AXFR, _IXFR, _OPT):
        return None
    qclass = (wire[qend + 2] << 8) | wire[qend + 3]
    do = False
    if wire[11] == 0:
        if end != size:
            return None
        edns, udp_limit = False, _CLASSIC_UDP
    else:
        # root name, TYPE OPT, CLASS payload, TTL (extended RCODE, version, flags), RDLEN
        if end + 11 > size or wire[end] != 0 or wire[end + 1 : end + 3] != b"\x00\x29":
            return None
        if wire[end + 5] or wire[end + 6]:
            return None  # an extended RCODE or EDNS version 1+: dnspython decides
        rdlen = (wire[end + 9] << 8) | wire[end + 10]
        offset = end + 11
        if offset + rdlen != size:
            return None
        while offset < size:
            if offset + 4 > size:
                return None
            offset += 4 + ((wire[offset + 2] << 8) | wire[offset + 3])
        if offset != size:
            return None
        do = bool(wire[end + 7] & 0x80)
        edns, udp_limit = True, max(_CLASSIC_UDP, (wire[end + 3] << 8) | wire[end + 4])
    key = (wire[_HEADER:qend].lower(), qtype, qclass, wire[2] << 8 & _RD | wire[3] & _CD, do)
    return Query(wire, key, edns, do, udp_limit)


def read_query(wire: bytes) -> Query | bytes | None:
    """Sort a received message: a :class:`Query` to answer, the bytes of an immediate
    reply (FORMERR for garbage with a readable header, NOTIMP for another opcode or a
    zone transfer, BADVERS for EDNS versions above 0), or None to drop it silently
    (shorter than a header, or a response: answering those could start a loop between
    two servers)."""
    if len(wire) < _HEADER or wire[2] & 0x80:
        return None
    lean = _lean(wire)
    if lean is not None:
        return lean
    try:
        message = dns.message.from_wire(wire, ignore_trailing=False)
    except Exception:  # dnspython raises many kinds for malformed input; all are FORMERR
        return _header_reply(wire, dns.rcode.FORMERR)
    if message.opcode() != dns.opcode.QUERY:
        return _header_reply(wire, dns.rcode.NOTIMP)
    if len(message.question) != 1:
        return _header_reply(wire, dns.rcode.FORMERR)
    if message.edns > 0:  # RFC 6891 section 6.1.3
        reply = dns.message.make_response(message)
        reply.use_edns(0, 0, PAYLOAD)
        reply.set_rcode(dns.rcode.BADVERS)
        return reply.to_wire()
    question = message.question[0]
    if question.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR, dns.rdatatype.OPT):
        return _header_reply(wire, dns.rcode.NOTIMP)
    edns = message.edns >= 0
    udp_limit = max(_CLASSIC_UDP, message.payload) if edns else _CLASSIC_UDP
    do = bool(message.ednsflags & _DO)
    qname = question.name.canonicalize().to_wire()
    assert qname is not None
    flags = message.flags & (_RD | _CD)
    key = (qname, int(question.rdtype), int(question.rdclass), flags, do)
    return Query(wire, key, edns, do, min(udp_limit, 65535), message)


def formerr(wire: bytes) -> bytes:
    """FORMERR for a query with a readable header (only a header)."""
    return _header_reply(wire, dns.rcode.FORMERR)


def refused(wire: bytes) -> bytes | None:
    """REFUSED for a source not allowed to query (only a header), or None to drop."""
    if len(wire) < _HEADER or wire[2] & 0x80:
        return None
    return _header_reply(wire, dns.rcode.REFUSED)


def client_view(message: dns.message.Message) -> dns.message.Message:
    """The upstream answer as a plain-DNS client should see it, changed in place: EDNS
    options of the encrypted hop (padding, keepalive, cookies) are dropped, Extended DNS
    Errors kept, and the payload size offered is the stub's own."""
    if message.edns >= 0:
        options = [o for o in message.options if o.otype == _EDE]
        message.use_edns(0, message.ednsflags, PAYLOAD, options=options)
    message.tsig = None
    return message


def _question_end(wire: bytes) -> int:
    """Offset just past the first question's QNAME (uncompressed: nothing precedes it)."""
    offset = _HEADER
    while True:
        length = wire[offset]
        if length == 0 or length & 0xC0:
            return offset + (1 if length == 0 else 2)
        offset += length + 1


def finish(answer: bytes, query: Query, *, udp: bool) -> bytes:
    """``answer`` (rendered for a query like this one) made this query's reply: its ID,
    its QNAME as the client wrote it (letter case, RFC 1034 section 3.1), and over UDP,
    when it exceeds the client's buffer, only the header and question with TC set, so
    that the client retries over TCP (RFC 7766 section 5; RFC 6891 section 7)."""
    end = _question_end(query.wire)
    reply = bytearray(answer)
    reply[0:2] = query.wire[0:2]
    if reply[_HEADER:end].lower() == query.wire[_HEADER:end].lower():
        reply[_HEADER:end] = query.wire[_HEADER:end]
    if udp and len(reply) > query.udp_limit:
        reply = _truncated(reply, end + 4, query)
    return bytes(reply)


def _truncated(reply: bytearray, question_end: int, query: Query) -> bytearray:
    flags = struct.unpack_from("!H", reply, 2)[0] | _TC
    head = bytearray(struct.pack("!HHHHHH", 0, flags, 1, 0, 0, 1 if query.edns else 0))
    head[0:2] = reply[0:2]
    head += reply[_HEADER:question_end]
    if query.edns:  # root name, OPT, payload, extended RCODE 0, version 0, DO, no RDATA
        head += struct.pack("!BHHBBHH", 0, 41, PAYLOAD, 0, 0, _DO if query.do else 0, 0)
    return head


def servfail(query: Query, code: int, text: str) -> bytes:
    """SERVFAIL for ``query`` with an Extended DNS Error (RFC 8914) ``code`` and
    EXTRA-TEXT ``text`` when the client speaks EDNS; a plain SERVFAIL otherwise."""
    reply = dns.message.make_response(query.message, our_payload=PAYLOAD)
    reply.flags |= dns.flags.RA
    if reply.edns >= 0:
        if len(text) > _EDE_TEXT_MAX:
            text = text[: _EDE_TEXT_MAX - 3] + "..."
        flags = query.message.ednsflags & _DO  # RFC 3225 section 3: DO is copied back
        reply.use_edns(
            0, flags, PAYLOAD, options=[dns.edns.EDEOption(dns.edns.EDECode(code), text)]
        )
    reply.set_rcode(dns.rcode.SERVFAIL)
    reply.id = query.message.id
    return reply.to_wire()


def failure_cause(exc: BaseException) -> tuple[int, str]:
    """The Extended DNS Error code and text for an upstream failure: 22 (No Reachable
    Authority) when time ran out, 23 (Network Error) when a connection, TLS or the
    protocol failed, 0 (Other) otherwise; the text names the class and the message."""
    last = exc
    if isinstance(exc, AllServersFailed) and exc.errors:
        last = exc.errors[-1][1]
    if isinstance(last, Timeout):
        code = EDE_NO_REACHABLE_AUTHORITY
    elif isinstance(last, (NetworkError, TLSError, ProtocolError)):
        code = EDE_NETWORK_ERROR
    else:
        code = EDE_OTHER
    return code, f"upstream DoT failed: {type(exc).__name__}: {exc}"
