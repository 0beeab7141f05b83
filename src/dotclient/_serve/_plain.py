"""The lean miss path: a plain query forwarded as a question, its answer made the reply
from bytes. No sockets, no clock.

Many queries a stub sees have one shape: one question, RD set, nothing else in the
header, and no EDNS or an OPT record (version 0) with no options and at most the DO bit.
:func:`plain_question` recognises that shape from the query's bytes and gives what
``AsyncClient.resolve()`` needs to ask it upstream: the client's pre-rendered, padded
query and its byte-level answer check, with no dnspython message on either side. What
goes upstream is exactly what ``query()`` would send for that query (the flags, the DO
bit, a buffer size of 1232, padding): a client's other buffer size is passed on, so
such a query takes the message path.

:func:`plain_reply` makes the validated answer the client's reply by changing only its
OPT record, which must be the last record: removed for a client that sent no EDNS (RFC
6891 section 7), or, for one that did, replaced by the stub's own (payload
:data:`~._message.PAYLOAD`, the answer's extended RCODE and flags, version 0, no
options) when the answer's options are only those of the encrypted hop (padding,
keepalive). That is what :func:`~._message.client_view` and :func:`~._cache.render` give
for the same answer; anything else (an Extended DNS Error to keep, the OPT elsewhere, a
question-less answer) gives None, and the caller takes that message path.
"""

from __future__ import annotations

import struct

import dns.exception
import dns.name

from .._wire import last_opt, name_end
from ._message import PAYLOAD, Query

__all__ = ["plain_question", "plain_reply"]

_HEADER = 12
_OPT = 41
_ANY = 255
#: The buffer size resolve() asks with (``make_query``'s), the only one it can pass on.
_RESOLVE_PAYLOAD = 1232
# RFC 7828 edns-tcp-keepalive and RFC 7830 padding: options of the encrypted hop only.
_HOP_OPTIONS = frozenset((11, 12))
_U16 = struct.Struct("!H")
# An OPT record with no options, from its TYPE on (after the root name): TYPE, CLASS
# (the payload size), TTL (extended RCODE, version, flags) and RDLENGTH.
_OPT_FIXED = struct.Struct("!HHBBHH")
# QNAMEs as received -> what resolve() is given, so a repeated question costs no parse.
_NAMES: dict[bytes, dns.name.Name | str] = {}
_MAX_NAMES = 4096

#: (name, type, class) as ``resolve()`` takes them; the name as text where exact.
Question = tuple[dns.name.Name | str, int, int]


def plain_question(query: Query) -> Question | None:
    """(name, type, class) of ``query`` when it may be asked with ``resolve()``: opcode
    QUERY with only RD set among the flags (no CD, no AD: ``resolve()`` sends neither),
    one question of a type that is not a meta-type (ANY aside), no answer or authority
    records, and either no additional record or an OPT of 11 octets (root name, payload
    1232 as ``resolve()`` asks, version 0, extended RCODE 0, no flag but DO, no options)
    ending the message. None otherwise."""
    wire = query.wire
    if wire[2:10] != b"\x01\x00\x00\x01\x00\x00\x00\x00" or wire[10]:
        return None
    end = name_end(wire, _HEADER, pointers=False)
    if end < 0 or end + 4 > len(wire):
        return None
    rdtype, rdclass = struct.unpack_from("!HH", wire, end)
    if 128 <= rdtype < _ANY or rdtype == _OPT:  # meta-types, which resolve() refuses
        return None
    qend = end + 4
    if wire[11] == 0:
        if qend != len(wire):
            return None
    elif wire[11] != 1 or len(wire) != qend + 11 or wire[qend] != 0:
        return None
    else:
        opt_type, payload, rcode, version, flags, rdlength = _OPT_FIXED.unpack_from(wire, qend + 1)
        if opt_type != _OPT or payload != _RESOLVE_PAYLOAD:
            return None  # another buffer size: query() passes it on as the client gave it
        if rcode or version or flags & 0x7FFF or rdlength:
            return None
    name = _name(wire, end)
    return None if name is None else (name, rdtype, rdclass)


def _name(wire: bytes, end: int) -> dns.name.Name | str | None:
    """The QNAME ending at ``end``, or None where dnspython refuses it (the message
    path then answers FORMERR, as before). As text where that reads back to the same
    labels (letter case included), since the client keeps the questions it has checked
    by their text: checking a Name again costs more than the rest of this module."""
    raw = wire[_HEADER:end]
    name = _NAMES.get(raw)
    if name is None:
        try:
            parsed = dns.name.from_wire(wire, _HEADER)[0]
        except dns.exception.DNSException:
            return None
        text = parsed.to_text()
        name = text if dns.name.from_text(text).labels == parsed.labels else parsed
        if len(_NAMES) >= _MAX_NAMES:
            _NAMES.clear()
        _NAMES[raw] = name
    return name


def _hop_options_only(wire: bytes, opt: int) -> bool:
    """Whether the OPT at ``opt`` (root name, so its RDATA starts 11 octets in) carries
    no option but padding and keepalive."""
    pos, size = opt + 11, len(wire)
    while pos < size:
        if pos + 4 > size or _U16.unpack_from(wire, pos)[0] not in _HOP_OPTIONS:
            return False
        pos += 4 + _U16.unpack_from(wire, pos + 2)[0]
    return pos == size


def plain_reply(answer: bytes, edns: bool) -> bytes | None:
    """The validated upstream ``answer`` as the reply to a plain query (see the module
    doc), before :func:`~._message.finish`; None where the message path must decide."""
    opt = last_opt(answer)
    if opt is None:
        return None
    arcount = _U16.unpack_from(answer, 10)[0]
    if opt == len(answer):  # no OPT upstream: the client with EDNS still gets one
        if not edns:
            return answer
        tail = _OPT_FIXED.pack(_OPT, PAYLOAD, 0, 0, 0, 0)
        return answer[:10] + _U16.pack(arcount + 1) + answer[12:] + b"\x00" + tail
    head = answer[:10] + _U16.pack(arcount - (0 if edns else 1)) + answer[12:opt]
    if not edns:
        return head
    if not _hop_options_only(answer, opt):
        return None  # an Extended DNS Error (or another option) is the message path's
    rcode, flags = answer[opt + 5], _U16.unpack_from(answer, opt + 7)[0]
    return head + b"\x00" + _OPT_FIXED.pack(_OPT, PAYLOAD, rcode, 0, flags, 0)
