"""The sans-I/O DoT protocol core: framing, query IDs, response matching, validation.

Nothing here touches a socket, a clock or an event loop. Bytes to send come out of
:meth:`DoTProtocol.send_question` (the lean path for the common query shape) or
:meth:`DoTProtocol.send_query` (any dnspython message); bytes read from the connection go into
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
    "check_question",
    "encode_frame",
    "make_query",
    "render_query",
    "wire_summary",
]

#: RFC 8467 section 4.1: clients pad queries to the closest multiple of 128 octets.
DEFAULT_PADDING_BLOCK = 128
#: The largest padding block accepted (RFC 8467 suggests 128 for queries).
MAX_PADDING_BLOCK = 512
#: A DNS message is never shorter than its 12-octet header (RFC 1035 section 4.1.1).
DNS_HEADER_SIZE = 12
_MAX_MESSAGE = 65535
_U16 = struct.Struct("!H")
_U16U16 = struct.Struct("!HH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, RDLENGTH (RFC 1035 section 4.1.3)
_COUNTS = struct.Struct("!HHH")  # ANCOUNT, NSCOUNT, ARCOUNT
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


_CheckedQuestion = tuple[dns.name.Name, dns.rdatatype.RdataType, dns.rdataclass.RdataClass]
# Questions asked as strings, parsed: dns.name.from_text is the dearest step of sending a
# query. Keyed by the exact str and the type and class as given (exact types only, so
# that 1.0 or True never stand for 1); emptied when full, like _TEMPLATES.
_QUESTIONS: dict[tuple[str, object, object], _CheckedQuestion] = {}
_MAX_QUESTIONS = 4096
_CACHEABLE = frozenset({str, int, dns.rdatatype.RdataType, dns.rdataclass.RdataClass})
# The longest text a DNS name can have: 255 octets on the wire, each at most 4
# characters (\DDD) in text.
_MAX_NAME_TEXT = 4 * 255


def check_question(
    qname: dns.name.Name | str,
    rdtype: dns.rdatatype.RdataType | str | int,
    rdclass: dns.rdataclass.RdataClass | str | int,
) -> _CheckedQuestion:
    """Parse a question's name, type and class; raise ``ValueError`` for bad ones
    (unknown mnemonics, names too long, meta-types other than ANY) and ``TypeError``
    for a type or class that is neither a str nor an int."""
    if type(qname) is str and type(rdtype) in _CACHEABLE and type(rdclass) in _CACHEABLE:
        key = (qname, rdtype, rdclass)
        checked = _QUESTIONS.get(key)
        if checked is None:
            checked = _check_question(qname, rdtype, rdclass)
            if len(_QUESTIONS) >= _MAX_QUESTIONS:
                _QUESTIONS.clear()
            _QUESTIONS[key] = checked
        return checked
    return _check_question(qname, rdtype, rdclass)


def _check_question(
    qname: dns.name.Name | str,
    rdtype: dns.rdatatype.RdataType | str | int,
    rdclass: dns.rdataclass.RdataClass | str | int,
) -> _CheckedQuestion:
    for what, value in (("rdtype", rdtype), ("rdclass", rdclass)):
        if isinstance(value, bool) or not isinstance(value, (str, int)):  # True is not A
            raise TypeError(f"{what} must be a str or an int, not {value!r}")
    if isinstance(qname, str) and len(qname) > _MAX_NAME_TEXT:  # before parsing it
        raise ValueError(f"invalid query: a name of {len(qname)} characters is too long")
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
    qname, rdtype, rdclass = check_question(qname, rdtype, rdclass)
    return dns.message.make_query(
        qname, rdtype, rdclass, use_edns=0, want_dnssec=dnssec, payload=1232, pad=padding
    )


def render_query(
    message: dns.message.Message, query_id: int, padding: int, *, keepalive: bool = False
) -> bytes:
    """Render ``message`` to wire format with ``query_id``, leaving the caller's object
    untouched. With ``padding`` > 0, add an EDNS(0) Padding option (RFC 7830) so the
    message length is a multiple of ``padding`` (RFC 8467 block-length padding). With
    ``keepalive``, add an empty edns-tcp-keepalive option (RFC 7828 section 3.1) unless
    the message has one; it comes before the padding option. A keepalive option of the
    caller's is sent empty: RFC 7828 section 3.2.1 has clients send no TIMEOUT."""
    return _render(message, query_id, padding, keepalive)[0]


def _render(
    message: dns.message.Message, query_id: int, padding: int, keepalive: bool = False
) -> tuple[bytes, bytes | None]:
    msg = copy.copy(message)
    msg.id = query_id
    if msg.tsig is not None:
        # to_wire() rewrites the TSIG RRset in place; keep the caller's intact.
        msg.tsig = copy.copy(msg.tsig)
    options = list(msg.options) if msg.edns >= 0 else []
    # RFC 7828 section 3.2.1: a client MUST send the option with length 0, no TIMEOUT.
    strip = any(o.otype == _KEEPALIVE and o.to_wire() for o in options)
    if strip:
        options = [
            dns.edns.GenericOption(_KEEPALIVE, b"") if o.otype == _KEEPALIVE else o
            for o in options
        ]
    add_keepalive = keepalive and not any(o.otype == _KEEPALIVE for o in options)
    if add_keepalive:
        options.append(dns.edns.GenericOption(_KEEPALIVE, b""))
    repad = bool(padding) and (
        msg.edns < 0
        or msg.pad != padding
        or any(o.otype == dns.edns.OptionType.PADDING for o in options)
    )
    if repad:
        options = [o for o in options if o.otype != dns.edns.OptionType.PADDING]
    if add_keepalive or repad or strip:
        pad = padding or msg.pad
        if msg.edns < 0:
            msg.use_edns(0, options=options, pad=pad)
        else:
            msg.use_edns(msg.edns, msg.ednsflags, msg.payload, options=options, pad=pad)
    try:
        # Over TCP and TLS only the length prefix limits a message (RFC 1035 4.2.2).
        # By default dnspython stops at the EDNS payload size, which is about answers
        # over UDP (RFC 6891 section 6.2.3), so adding EDNS for padding or keepalive made
        # queries of more than 1232 octets fail that went out without it.
        wire = msg.to_wire(max_size=_MAX_MESSAGE)
    except dns.exception.DNSException as exc:
        raise ValueError(f"cannot render query: {exc}") from exc
    # A TSIG-signed query: the response's TSIG is checked against this MAC (RFC 8945).
    return wire, getattr(msg, "mac", None) if msg.keyring is not None else None


# -- the lean path: queries rendered from bytes, responses checked from bytes ---------------

_KEEPALIVE = dns.edns.OptionType.KEEPALIVE  # RFC 7828, option code 11
_PADDING = dns.edns.OptionType.PADDING  # RFC 7830, option code 12
_EDNS_PAYLOAD = 1232  # what make_query asks for (the DNS Flag Day 2020 value)
_OPT = int(dns.rdatatype.OPT)
_A = int(dns.rdatatype.A)
_AAAA = int(dns.rdatatype.AAAA)
_SOA = int(dns.rdatatype.SOA)
_MX = int(dns.rdatatype.MX)
_TXT = int(dns.rdatatype.TXT)
# RDATA that is exactly one (compressible) domain name (RFC 1035 section 3.3).
_NAME_RDATA = frozenset(int(t) for t in (dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.PTR))
_SRV = int(dns.rdatatype.SRV)
_DNAME = int(dns.rdatatype.DNAME)
_IN = int(dns.rdataclass.IN)
_QUERY = dns.opcode.QUERY
# dnspython's limit on compression pointers followed for one name.
_MAX_POINTER_HOPS = 16


class _Template:
    """One query shape rendered once: everything but the ID, and what its answer must
    echo. Shared (read-only) by every query of that shape, and filed as its pending."""

    __slots__ = ("length", "qname", "qname_lower", "rdclass", "rdtype", "tail", "typeclass")

    def __init__(
        self,
        qname: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        rdclass: dns.rdataclass.RdataClass,
        name: bytes,
        tail: bytes,
    ) -> None:
        self.qname = qname
        self.rdtype = rdtype
        self.rdclass = rdclass
        #: The message after its 2-octet ID.
        self.tail = tail
        #: The message length, ID included.
        self.length = 2 + len(tail)
        # ASCII-only lower case, as dns.name compares (RFC 4343). Length octets are < 64
        # and so unchanged, while any octet >= 64 stays >= 64: a lowered response name
        # equals this only if its length octets are exactly ours.
        self.qname_lower = name.lower()
        self.typeclass = _U16U16.pack(rdtype, rdclass)

    def question(self) -> dns.rrset.RRset:
        return dns.rrset.RRset(self.qname, self.rdclass, self.rdtype)


# Rendered query shapes, keyed by (labels, rdtype, rdclass, dnssec, padding, keepalive).
# Labels, not the Name: Name hashes in Python and compares case-insensitively, while the
# bytes keep the case given. Shared by all connections; emptied when full.
_TEMPLATES: dict[tuple[tuple[bytes, ...], int, int, bool, int, bool], _Template] = {}
_MAX_TEMPLATES = 4096


def _template(
    qname: dns.name.Name,
    rdtype: int,
    rdclass: int,
    dnssec: bool,
    padding: int,
    keepalive: bool,
) -> _Template:
    """Render what make_query(...) + render_query(...) would, without dnspython's renderer:
    header (RD, one question, one additional), question, then the OPT RR with payload
    1232, the DO bit if ``dnssec`` (RFC 3225), an empty keepalive option if asked (RFC
    7828) and a padding option filling the message to a multiple of ``padding`` (RFC
    8467; none when 0)."""
    if not qname.is_absolute():
        raise ValueError(f"invalid query: the name {qname} is not absolute")
    try:
        rdtype = dns.rdatatype.RdataType.make(rdtype)
        rdclass = dns.rdataclass.RdataClass.make(rdclass)
    except (dns.exception.DNSException, ValueError) as exc:
        raise ValueError(f"invalid query: {exc}") from exc
    if dns.rdatatype.is_metatype(rdtype) and rdtype != dns.rdatatype.ANY:
        raise ValueError(f"cannot query for meta-type {rdtype.name}")
    # ID follows; flags RD; QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 1.
    header = struct.pack("!HHHHH", dns.flags.RD, 1, 0, 0, 1)
    name = b"".join(bytes((len(label),)) + label for label in qname.labels)  # uncompressed
    question = name + _U16U16.pack(rdtype, rdclass)
    options = _U16U16.pack(_KEEPALIVE, 0) if keepalive else b""
    if padding:
        # 2 (ID) + header + question + OPT RR fixed part (11) + options + padding header (4)
        unpadded = 2 + len(header) + len(question) + 11 + len(options) + 4
        fill = -unpadded % padding
        options += _U16U16.pack(_PADDING, fill) + bytes(fill)
    ttl = dns.flags.DO if dnssec else 0  # extended RCODE 0, version 0, flags
    opt = b"\x00" + struct.pack("!HHIH", _OPT, _EDNS_PAYLOAD, ttl, len(options)) + options
    return _Template(qname, rdtype, rdclass, name, header + question + opt)


def _skip_name(wire: bytes, pos: int, end: int, good: set[int]) -> int:
    """The offset just past the (possibly compressed) name at ``pos``, or -1 unless
    dnspython's from_wire would accept it: labels of at most 63 octets (no other label
    types), at most 255 octets in all, every pointer to an offset before both the name
    and the previous target, each segment ending before the one that pointed to it, no
    more than 16 hops, all within ``end``. RFC 1035 sections 3.1 and 4.1.4.

    ``good`` holds the names that are a bare pointer found valid earlier in the message.
    Such a name stays valid further on (its checks only get looser as ``pos`` grows), so
    the usual owner name, a pointer to the question, is checked once per message."""
    if pos + 2 <= end and wire[pos] >= 192:
        pointer = (wire[pos] << 8) | wire[pos + 1]
        if pointer in good:
            return pos + 2
        after = _walk_name(wire, pos, end)
        if after == pos + 2:
            good.add(pointer)
        return after
    return _walk_name(wire, pos, end)


def _walk_name(wire: bytes, pos: int, end: int) -> int:
    total = 0
    hops = 0
    after = -1
    start = lowest = pos
    limit = end
    while pos < limit:
        count = wire[pos]
        if count == 0:
            if total >= 255:  # the root label adds 1 to ``total``
                return -1
            return pos + 1 if after < 0 else after
        if count < 64:
            pos += 1 + count
            total += 1 + count
        elif count >= 192:
            if pos + 2 > limit:
                return -1
            target = ((count & 0x3F) << 8) | wire[pos + 1]
            if target >= lowest:
                return -1
            hops += 1
            if hops > _MAX_POINTER_HOPS:
                return -1
            if after < 0:
                after = pos + 2
            limit = start
            pos = start = lowest = target
        else:
            return -1
    return -1


def _name_labels(wire: bytes, pos: int) -> tuple[bytes, ...]:
    """The labels of the name at ``pos``, which :func:`_walk_name` accepted."""
    labels = []
    while count := wire[pos]:
        if count >= 192:
            pos = ((count & 0x3F) << 8) | wire[pos + 1]
        else:
            labels.append(wire[pos + 1 : pos + 1 + count])
            pos += 1 + count
    labels.append(b"")
    return tuple(labels)


# One record as _skim files it: (section, owner offset, type, class, TTL, RDATA start,
# RDATA end); sections are numbered 1 (answer) and 2 (authority).
_Record = tuple[int, int, int, int, int, int, int]


def _skim(
    wire: bytes, pos: int, strict: bool, records: list[_Record] | None = None
) -> tuple[int, bytes | None] | None:
    """Walk the answer, authority and additional RRs from ``pos`` to the end of ``wire``.

    Returns (the OPT RR's TTL field or -1, the edns-tcp-keepalive option's data or None)
    if the structure is sound: names as :func:`_skip_name` wants, fixed fields and RDATA
    within the message, no trailing octets, at most one OPT, in the additional section,
    owned by the root (RFC 6891 section 6.1.1). Returns None when not sure. With
    ``strict``, also None unless each RDATA is of a type whose dnspython parser this
    mirrors exactly (class IN A, AAAA, CNAME, DNAME, NS, PTR, MX, SRV, SOA, TXT; an OPT
    with only keepalive and padding options), so that ``dns.message.from_wire`` is
    certain to accept the message too. Anything else (TSIG, SIG(0), DNSSEC records...)
    is left to dnspython. With ``records``, each answer and authority RR is appended to
    it as a :data:`_Record` (the lean reader in ``_answer.py`` decodes from these)."""
    end = len(wire)
    if end < DNS_HEADER_SIZE:
        return None
    opt_ttl = -1
    keepalive: bytes | None = None
    good: set[int] = set()
    counts = _COUNTS.unpack_from(wire, 6)
    for section, count in enumerate(counts, 1):
        for _ in range(count):
            owner = pos
            pos = _skip_name(wire, pos, end, good)
            if pos < 0 or pos + 10 > end:
                return None
            rdtype, rdclass, ttl, rdlength = _RR_FIXED.unpack_from(wire, pos)
            pos += 10
            rdend = pos + rdlength
            if rdend > end:
                return None
            if records is not None and section < 3:
                records.append((section, owner, rdtype, rdclass, ttl, pos, rdend))
            if rdtype == _OPT:
                # dnspython: BadEDNS unless the first OPT, in additional, owned by root.
                if section != 3 or opt_ttl >= 0 or wire[owner] != 0:
                    return None
                opt_ttl = ttl
                while pos < rdend:
                    if pos + 4 > rdend:
                        return None
                    code, length = _U16U16.unpack_from(wire, pos)
                    pos += 4
                    if pos + length > rdend:
                        return None
                    if code == _KEEPALIVE:
                        if length not in (0, 2):  # RFC 7828 section 3.1
                            return None
                        keepalive = wire[pos : pos + length]
                    elif code != _PADDING and strict:
                        return None
                    pos += length
            elif strict:
                if rdtype == _A and rdclass == _IN:  # the usual case, inline
                    if rdlength != 4:
                        return None
                elif not _rdata_ok(wire, pos, rdend, rdtype, rdclass, good):
                    return None
            pos = rdend
    if pos != end:
        return None
    return opt_ttl, keepalive


def _rdata_ok(wire: bytes, pos: int, end: int, rdtype: int, rdclass: int, good: set[int]) -> bool:
    """True if dnspython's parser for this RDATA is sure to accept it."""
    if rdclass != _IN:
        return False
    if rdtype == _A:
        return end - pos == 4
    if rdtype == _AAAA:
        return end - pos == 16
    if rdtype in _NAME_RDATA:
        return _skip_name(wire, pos, end, good) == end
    if rdtype == _MX:
        return end - pos > 2 and _skip_name(wire, pos + 2, end, good) == end
    if rdtype == _SRV:  # priority, weight, port, then the target (RFC 2782)
        return end - pos > 6 and _skip_name(wire, pos + 6, end, good) == end
    if rdtype == _DNAME:  # one name, never compressed (RFC 6672 section 2.5; dnspython)
        if _skip_name(wire, pos, end, good) != end:
            return False
        while 0 < wire[pos] < 64:
            pos += 1 + wire[pos]
        return wire[pos] == 0
    if rdtype == _SOA:  # MNAME, RNAME, then five 32-bit fields
        rname = _skip_name(wire, pos, end, good)
        if rname < 0:
            return False
        serial = _skip_name(wire, rname, end, good)
        return serial >= 0 and serial + 20 == end
    if rdtype == _TXT:
        if pos == end:  # dnspython: "the list of strings must not be empty"
            return False
        while pos < end:
            pos += 1 + wire[pos]
        return pos == end
    return False


def wire_summary(
    wire: bytes,
) -> tuple[int, tuple[dns.name.Name, dns.rdatatype.RdataType] | None] | None:
    """The RCODE (extended bits from the OPT RR included, RFC 6891 section 6.1.3) and the
    question (name, type) of the DNS message ``wire``, or None for no question, read from
    the bytes without parsing the message; None if the bytes do not make that certain
    (more than one question, anything malformed): then ask dnspython."""
    if len(wire) < DNS_HEADER_SIZE:
        return None
    qdcount = _U16.unpack_from(wire, 4)[0]
    if qdcount > 1:
        return None
    question = None
    pos = DNS_HEADER_SIZE
    if qdcount:
        after = _walk_name(wire, pos, len(wire))
        if after < 0 or after + 4 > len(wire):
            return None
        rdtype = dns.rdatatype.RdataType.make(_U16.unpack_from(wire, after)[0])
        question = (dns.name.Name(_name_labels(wire, pos)), rdtype)
        pos = after + 4
    skim = _skim(wire, pos, strict=False)
    if skim is None:
        return None
    return _rcode(wire, skim[0]), question


def _rcode(wire: bytes, opt_ttl: int) -> int:
    # The OPT TTL's top octet holds the upper 8 bits of a 12-bit RCODE (RFC 6891 6.1.3).
    rcode = wire[3] & 0x0F
    if opt_ttl >= 0:
        rcode |= (opt_ttl >> 20) & 0xFF0
    return rcode


def _describe(question: dns.rrset.RRset) -> str:
    return (
        f"{question.name} {dns.rdataclass.to_text(question.rdclass)} "
        f"{dns.rdatatype.to_text(question.rdtype)}"
    )


class _Pending:
    """What the response to one query in flight is checked against."""

    __slots__ = ("keepalive", "keyring", "mac", "opcode", "question")

    def __init__(self, message: dns.message.Message, mac: bytes | None, keepalive: bool) -> None:
        self.question = message.question[0]  # send_query requires exactly one
        self.opcode = message.opcode()
        self.keyring = message.keyring
        self.mac = mac
        #: The query offered edns-tcp-keepalive (RFC 7828 section 3.2.2 then applies).
        self.keepalive = keepalive


class DoTProtocol:
    """The state of one DoT connection, without the connection.

    Typical use by an I/O shell::

        proto = DoTProtocol()
        qid, data = proto.send_question(dns.name.from_text("example.com."), 1, 1)
        write(data)
        while (wire := proto.result(qid)) is None:
            proto.receive_data(read())    # read() returns b"" when the peer closed

    :meth:`result` raises :class:`ProtocolError` when the response to that query was
    malformed or did not match it, and :class:`ConnectionLost` when the connection ended
    before it came. Responses that match no query in flight (a stray ID, a second
    answer to the same query, an answer to an abandoned query) are dropped and counted
    in :attr:`unmatched`.

    ``padding`` is the RFC 8467 block size queries are padded to (0: no padding);
    ``keepalive=True`` adds an empty edns-tcp-keepalive option to every query (RFC 7828
    section 3.2.1), and :attr:`keepalive_timeout` tells what the server offered.
    """

    #: Query IDs a connection has (16 bits): those of queries in flight and abandoned
    #: ones together may not exceed it. A shell must not send when they would.
    QUERY_IDS = 65536

    def __init__(self, *, padding: int = DEFAULT_PADDING_BLOCK, keepalive: bool = False) -> None:
        if not 0 <= padding <= MAX_PADDING_BLOCK:
            raise ValueError(
                f"padding block must be 0 (off) to {MAX_PADDING_BLOCK} octets, not {padding}"
            )
        self.padding = padding
        self.keepalive = keepalive
        self._decoder = FrameDecoder()
        self._pending: dict[int, _Pending | _Template] = {}
        self._results: dict[int, dns.message.Message | bytes | Exception] = {}
        # IDs of queries given up on (timed out, cancelled): not reused on this
        # connection, so a late answer can never be taken for a newer query's.
        self._abandoned: set[int] = set()
        # Every ID in _pending, _results or _abandoned: the IDs not to hand out.
        self._reserved: set[int] = set()
        self._error: ProtocolError | None = None
        self._eof = False
        #: Count of responses dropped because they matched no query in flight.
        self.unmatched = 0
        #: Count of responses delivered (matched and valid).
        self.answered = 0
        #: The idle timeout in seconds the server last offered in an edns-tcp-keepalive
        #: option (RFC 7828 section 3.2.2; the option counts units of 100 ms), or None.
        self.keepalive_timeout: float | None = None

    # -- sending -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the peer closed the connection or broke the framing."""
        return self._eof or self._error is not None

    @property
    def partial(self) -> str | None:
        """Where the stream stands if it stopped inside a frame (``"inside a message
        (38 of 468 octets)"``), else None."""
        return self._decoder.describe_partial()

    @property
    def in_flight(self) -> int:
        """Queries sent and not yet answered, failed or abandoned."""
        return len(self._pending)

    @property
    def abandoned(self) -> int:
        """Count of abandoned query IDs, kept out of use for the rest of the connection."""
        return len(self._abandoned)

    def _allocate_id(self) -> int:
        reserved = self._reserved
        if len(reserved) >= self.QUERY_IDS:  # the shell's bug: see QUERY_IDS
            raise RuntimeError("all 65,536 query IDs are in use on this connection")
        while True:
            # RFC 5452 section 9.2: IDs must be unpredictable; secrets uses the OS CSPRNG.
            qid = secrets.randbits(16)
            if qid not in reserved:
                reserved.add(qid)
                return qid

    def send_question(
        self,
        qname: dns.name.Name,
        rdtype: int,
        rdclass: int,
        *,
        dnssec: bool = False,
    ) -> tuple[int, bytes]:
        """Register a query for (``qname``, ``rdtype``, ``rdclass``) under a fresh random
        ID; return the ID and the framed bytes to write.

        The bytes are exactly those of :func:`make_query` with the same arguments and
        this connection's padding, rendered by :func:`render_query` (plus the keepalive
        option if enabled), without dnspython's per-query cost. The response is checked
        from its bytes where that is certain (see :meth:`result`). Bad names or types
        raise ``ValueError``; :class:`ConnectionLost` once the connection has ended.
        """
        if self.closed:
            raise ConnectionLost("the connection has already ended")
        if not isinstance(qname, dns.name.Name):
            raise TypeError(f"qname must be a dns.name.Name, not {type(qname).__name__}")
        key = (qname.labels, rdtype, rdclass, dnssec, self.padding, self.keepalive)
        template = _TEMPLATES.get(key)
        if template is None:
            template = _template(qname, rdtype, rdclass, dnssec, self.padding, self.keepalive)
            if len(_TEMPLATES) >= _MAX_TEMPLATES:
                _TEMPLATES.clear()
            _TEMPLATES[key] = template
        qid = self._allocate_id()
        self._pending[qid] = template
        return qid, _U16U16.pack(template.length, qid) + template.tail

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
        try:
            wire, mac = _render(message, qid, self.padding, self.keepalive)
        except BaseException:
            self._reserved.discard(qid)
            raise
        offered = self.keepalive or (
            message.edns >= 0 and any(o.otype == _KEEPALIVE for o in message.options)
        )
        self._pending[qid] = _Pending(message, mac, offered)
        return qid, encode_frame(wire)

    def abandon(self, query_id: int) -> None:
        """Stop waiting for ``query_id``; a late answer to it will be dropped."""
        if self._pending.pop(query_id, None) is not None:
            self._abandoned.add(query_id)
        elif self._results.pop(query_id, None) is not None:
            self._reserved.discard(query_id)

    # -- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[int]:
        """Process bytes read from the connection; ``b""`` means the peer closed it.

        Returns the IDs of the queries whose outcome (a response or an error) is now
        ready for :meth:`result`, so a shell can wake just their waiters. Raises
        :class:`ProtocolError` if the byte stream is not valid DNS-over-TCP framing;
        every query in flight then fails with that error too. Answers that came in
        ``data`` before the broken frame are still filed, and :meth:`result` returns
        them, but a call that raises lists no IDs: on this error, wake every waiter.
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

    def _deliver(self, qid: int, outcome: dns.message.Message | bytes) -> None:
        del self._pending[qid]
        self._results[qid] = outcome
        self.answered += 1

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
        if isinstance(pending, _Template):
            if self._lean_accept(wire, pending):
                self._deliver(qid, wire)
                return qid
            # Not certain from the bytes: dnspython decides, and words any error.
            response = self._parse(
                qid, wire, None, None, _QUERY, pending.question(), self.keepalive
            )
            if response is not None:
                self._deliver(qid, wire)
            return qid
        response = self._parse(
            qid,
            wire,
            pending.keyring,
            pending.mac,
            pending.opcode,
            pending.question,
            pending.keepalive,
        )
        if response is not None:
            self._deliver(qid, response)
        return qid

    def _lean_accept(self, wire: bytes, template: _Template) -> bool:
        """True if ``wire`` is certainly a valid response to ``template``'s question, and
        certainly one ``dns.message.from_wire`` parses: the same verdict as the full path,
        from the bytes. False means "not certain", not "invalid"."""
        if (wire[2] >> 3) & 0x0F != _QUERY:
            return False
        qdcount = wire[4:6]
        if qdcount == b"\x00\x01":
            name_end = DNS_HEADER_SIZE + len(template.qname_lower)
            pos = name_end + 4
            # The question echoes ours, name case aside (RFC 4343), uncompressed.
            if (
                wire[DNS_HEADER_SIZE:name_end].lower() != template.qname_lower
                or wire[name_end:pos] != template.typeclass
            ):
                return False
        elif qdcount == b"\x00\x00":
            pos = DNS_HEADER_SIZE
        else:
            return False
        skim = _skim(wire, pos, strict=True)
        if skim is None:
            return False
        opt_ttl, keepalive = skim
        if pos == DNS_HEADER_SIZE and _rcode(wire, opt_ttl) not in _QUESTIONLESS_RCODES:
            return False
        self._keepalive_seen(self.keepalive, keepalive)
        return True

    def _keepalive_seen(self, offered: bool, data: bytes | None) -> None:
        """RFC 7828 section 3.2.2: honour the TIMEOUT of a response's keepalive option
        (overriding any earlier one); a response without the option to a query that
        offered it means the server does not support it, "even if a previous
        edns-keepalive-option exchange occurred": back to the client's own idle
        timeout (RFC 7766 section 6.2.3)."""
        if data is not None and len(data) == 2:
            self.keepalive_timeout = _U16.unpack(data)[0] / 10
        elif data is None and offered:
            self.keepalive_timeout = None

    def _parse(
        self,
        qid: int,
        wire: bytes,
        keyring: object,
        mac: bytes | None,
        opcode: dns.opcode.Opcode,
        question: dns.rrset.RRset,
        offered: bool,
    ) -> dns.message.Message | None:
        """Parse and check ``wire`` with dnspython; on failure, fail ``qid`` and return
        None."""
        try:
            response = dns.message.from_wire(
                wire,
                keyring=keyring,
                request_mac=mac or b"",
                one_rr_per_rrset=False,
            )
        except Exception as exc:  # dnspython raises many types for bad input
            self._fail(
                qid,
                ProtocolError(f"malformed response to query {qid}: {type(exc).__name__}: {exc}"),
            )
            return None
        if keyring is not None and not response.had_tsig:
            # RFC 8945 section 5.3.1: an unsigned answer to a signed query is rejected
            # (not every dnspython version does this in from_wire).
            self._fail(qid, ProtocolError(f"unsigned response to TSIG-signed query {qid}"))
            return None
        problem = self._mismatch(opcode, question, response)
        if problem is not None:
            self._fail(qid, ProtocolError(f"response to query {qid} does not match: {problem}"))
            return None
        data = None
        for option in response.options:
            if option.otype == _KEEPALIVE:
                data = option.to_wire() or b""
        self._keepalive_seen(offered, data)
        return response

    @staticmethod
    def _mismatch(
        opcode: dns.opcode.Opcode, asked: dns.rrset.RRset, response: dns.message.Message
    ) -> str | None:
        if response.opcode() != opcode:
            return f"opcode {response.opcode().name}, expected {opcode.name}"
        if not response.question:
            if response.rcode() in _QUESTIONLESS_RCODES:
                return None
            return "no question section"
        if len(response.question) != 1:
            return f"{len(response.question)} questions"
        got = response.question[0]
        # dns.name.Name compares case-insensitively (RFC 4343).
        if (got.name, got.rdtype, got.rdclass) != (asked.name, asked.rdtype, asked.rdclass):
            return f"question {_describe(got)}, expected {_describe(asked)}"
        return None

    def result(self, query_id: int) -> dns.message.Message | bytes | None:
        """The response to ``query_id`` if it has come (then forgotten), else None.

        For a query sent with :meth:`send_question` the response is its validated wire
        format, ``bytes`` (with the ID as on the wire; wrap it in a :class:`Response`,
        which parses it only when asked); for one sent with :meth:`send_query` it is the
        parsed :class:`dns.message.Message`. Raises the query's error if it failed
        (:class:`ProtocolError`, :class:`ConnectionLost`); raises ``KeyError`` for an ID
        never sent or already collected, which is a bug in the caller.
        """
        outcome = self._results.pop(query_id, None)
        if outcome is None:
            if query_id in self._pending:
                return None
            raise KeyError(query_id)
        self._reserved.discard(query_id)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
