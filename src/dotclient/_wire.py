"""Walking a DNS message's bytes without parsing it: names and compression pointers,
resource records, the OPT RR, the RCODE (RFC 1035 sections 3.1, 4.1 and 4.1.4; RFC 6891).

:func:`_skim` is the one strict walk behind both the check of a lean answer on receipt
(``DoTProtocol``) and the lean read of an answer (``_answer.py``): where it says the
structure is sound, ``dns.message.from_wire`` is certain to agree. It is on the hot path
of every lean query, so it works on offsets into the bytes and allocates little.
"""

from __future__ import annotations

import struct
from typing import Literal

import dns.edns
import dns.name
import dns.rdataclass
import dns.rdatatype

from ._framing import DNS_HEADER_SIZE

__all__ = ["last_opt", "name_end", "wire_summary"]

_U16 = struct.Struct("!H")
_U16U16 = struct.Struct("!HH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, RDLENGTH (RFC 1035 section 4.1.3)
_COUNTS = struct.Struct("!HHH")  # ANCOUNT, NSCOUNT, ARCOUNT
_KEEPALIVE = dns.edns.OptionType.KEEPALIVE  # RFC 7828, option code 11
_PADDING = dns.edns.OptionType.PADDING  # RFC 7830, option code 12
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
# dnspython's limit on compression pointers followed for one name.
_MAX_POINTER_HOPS = 16


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
                options = _opt_options(wire, pos, rdend, strict)
                if options is False:
                    return None
                keepalive = options
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


def _opt_options(wire: bytes, pos: int, end: int, strict: bool) -> bytes | None | Literal[False]:
    """Walk the options of an OPT RR, its RDATA from ``pos`` to ``end`` (RFC 6891 section
    6.1.2). Returns the data of its (last) edns-tcp-keepalive option, or None without one;
    False unless every option lies within the RDATA and a keepalive option is 0 or 2
    octets long (RFC 7828 section 3.1), and, with ``strict``, unless every other option
    is padding (RFC 7830)."""
    keepalive = None
    while pos < end:
        if pos + 4 > end:
            return False
        code, length = _U16U16.unpack_from(wire, pos)
        pos += 4
        if pos + length > end:
            return False
        if code == _KEEPALIVE:
            if length not in (0, 2):
                return False
            keepalive = wire[pos : pos + length]
        elif code != _PADDING and strict:
            return False
        pos += length
    return keepalive


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


def name_end(wire: bytes, pos: int, pointers: bool = True) -> int:
    """The offset after the name at ``pos`` (a pointer ends it, not followed), or -1 if
    it runs out, uses a reserved label type, or holds a pointer where ``pointers`` is
    false. A light walk, for messages already checked (:func:`_walk_name` checks)."""
    size = len(wire)
    while pos < size:
        length = wire[pos]
        if length == 0:
            return pos + 1
        if length >= 0xC0:
            return pos + 2 if pointers and pos + 2 <= size else -1
        if length > 63:
            return -1
        pos += length + 1
    return -1


def last_opt(wire: bytes) -> int | None:
    """Where the OPT record of a checked message with one question starts when it is
    the last record (owned by the root), ``len(wire)`` when there is none, and None
    when the message has another question count, an OPT elsewhere, or does not walk to
    its end. Cutting the message there moves nothing a compression pointer could point
    at; the OPT's extended RCODE octet is at ``start + 5``."""
    try:
        qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHH", wire, 4)
        if qdcount != 1:
            return None
        pos = name_end(wire, DNS_HEADER_SIZE) + 4
        if pos < 4:
            return None
        size = len(wire)
        opt = size
        for _ in range(ancount + nscount + arcount):
            start = pos
            # Most owners are one pointer to the question (RFC 1035 section 4.1.4).
            pos = (pos + 2 if wire[pos] >= 0xC0 else name_end(wire, pos)) + 10
            if pos < 10 or pos > size:
                return None
            rdtype, _, _, rdlength = _RR_FIXED.unpack_from(wire, pos - 10)
            pos += rdlength
            if rdtype == _OPT:
                if pos != size or wire[start] != 0:
                    return None  # not the last record, or not the root's
                opt = start
    except (IndexError, struct.error):
        return None
    return opt if pos == size else None
