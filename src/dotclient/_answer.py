"""The lean read of a response: what users read on nearly every answer, from the bytes.

``dns.message.from_wire`` builds every record, option and section of a message; a caller
who wants the addresses of an answer needs a fraction of that. :func:`read_wire` walks the
message once with the structural walker of ``_wire.py`` (``_skim`` in strict mode, the
same check that accepts answers on receipt) and keeps where the answer and authority
records are; :class:`WireAnswer` then decodes only what is asked: the RCODE, flags and
question, the answer section's RRsets, the RRset answering the question (CNAMEs
followed), its addresses and the TTL an answer may be cached for.

The lean view is used only where it is certain to equal what dnspython gives for the same
bytes: strict mode accepts only messages dnspython parses, and only record types whose
dnspython parser it mirrors (A, AAAA, CNAME, DNAME, NS, PTR, MX, SRV, SOA, TXT in class
IN). For anything else :func:`read_wire` returns None and the caller parses the message
with dnspython. The RRsets it builds are dnspython's own objects, filled the way
``from_wire`` fills them: RRs of one owner (case-insensitively), class and type merged in
order of first appearance, duplicates dropped, the smallest TTL kept (one above 2**31 - 1
read as 0, RFC 2181 section 8), and for the singleton types CNAME, DNAME and SOA the last
RR only.
"""

from __future__ import annotations

import dns.flags
import dns.ipv4
import dns.ipv6
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.wire

from ._framing import DNS_HEADER_SIZE
from ._wire import (
    _A,
    _AAAA,
    _SOA,
    _U16,
    _U16U16,
    _name_labels,
    _rcode,
    _Record,
    _skim,
    _walk_name,
)

__all__ = ["MAX_CNAME_CHAIN", "WireAnswer", "read_wire"]

#: A CNAME chain longer than this is treated as a loop (BIND and Unbound use 8-16).
MAX_CNAME_CHAIN = 16
_CNAME = int(dns.rdatatype.CNAME)
_UPDATE = 5  # RFC 2136: dnspython reads UPDATE messages' sections differently
_MAX_TTL = 0x7FFFFFFF  # RFC 2181 section 8: a larger TTL is read as 0, as dnspython does
_SINGLETONS = frozenset(
    int(t) for t in (dns.rdatatype.CNAME, dns.rdatatype.DNAME, dns.rdatatype.SOA)
)


def read_wire(wire: bytes) -> WireAnswer | None:
    """The lean view of the DNS message ``wire``, or None unless it is certain that
    ``dns.message.from_wire(wire)`` parses it and that the view equals what it gives
    (more than one question, an UPDATE, a record type not mirrored, anything malformed:
    then ask dnspython)."""
    if len(wire) < DNS_HEADER_SIZE or (wire[2] >> 3) & 0x0F == _UPDATE:
        return None
    qdcount = wire[4] << 8 | wire[5]
    pos = DNS_HEADER_SIZE
    if qdcount == 1:
        pos = _walk_name(wire, pos, len(wire)) + 4
        if pos < 4 or pos > len(wire):
            return None
    elif qdcount:
        return None
    records: list[_Record] = []
    skim = _skim(wire, pos, True, records)
    if skim is None:
        return None
    return WireAnswer(wire, skim[0], pos if qdcount else 0, records)


class WireAnswer:
    """The parts of one response users read, decoded from its bytes on demand.

    Built by :func:`read_wire` only for messages it is sure of; every method then gives
    exactly what the same expression on ``dns.message.from_wire(wire)`` gives (see
    ``Response`` for the expressions)."""

    __slots__ = ("_keys", "_opt_ttl", "_qend", "_question", "_records", "_wire")

    def __init__(self, wire: bytes, opt_ttl: int, qend: int, records: list[_Record]):
        self._wire = wire
        self._opt_ttl = opt_ttl
        self._qend = qend  # where the question ends, or 0 for none
        self._records = records
        self._keys: dict[int, bytes] = {}
        self._question: tuple[dns.name.Name, dns.rdatatype.RdataType] | None = None

    @property
    def rcode(self) -> dns.rcode.Rcode:
        """The RCODE, extended bits included (RFC 6891 section 6.1.3)."""
        return dns.rcode.Rcode.make(_rcode(self._wire, self._opt_ttl))

    @property
    def question(self) -> tuple[dns.name.Name, dns.rdatatype.RdataType] | None:
        """The (name, type) asked, or None for a question-less response."""
        if self._question is None and self._qend:
            self._question = (
                dns.name.Name(_name_labels(self._wire, DNS_HEADER_SIZE)),
                dns.rdatatype.RdataType.make(_U16.unpack_from(self._wire, self._qend - 4)[0]),
            )
        return self._question

    @property
    def _qclass(self) -> int:
        return int(_U16.unpack_from(self._wire, self._qend - 2)[0])

    @property
    def flags(self) -> dns.flags.Flag:
        """The header flags (QR, AA, TC, RD, RA, AD, CD), as ``Message.flags``."""
        return dns.flags.Flag(self._wire[2] << 8 | self._wire[3])

    def _key(self, pos: int) -> bytes:
        """The name at ``pos`` as a key: uncompressed, in ASCII lower case (RFC 4343),
        so that names are equal as dns.name compares them exactly when keys are."""
        keys = self._keys
        key = keys.get(pos)
        if key is None:
            wire = self._wire
            end = pos
            while 0 < wire[end] < 64:
                end += 1 + wire[end]
            if wire[end]:  # a pointer: the rest is the name it points at
                tail = self._key(((wire[end] & 0x3F) << 8) | wire[end + 1])
                key = wire[pos:end].lower() + tail
            else:
                key = wire[pos : end + 1].lower()
            keys[pos] = key
        return key

    def _rrset(self, records: list[_Record]) -> dns.rrset.RRset:
        """One RRset from its records (same owner, class and type), as from_wire fills it."""
        wire = self._wire
        first = records[0]
        rrset = dns.rrset.RRset(
            dns.name.Name(_name_labels(wire, first[1])),
            dns.rdataclass.RdataClass.make(first[3]),
            dns.rdatatype.RdataType.make(first[2]),
        )
        parser = dns.wire.Parser(wire)
        for _, _, rdtype, rdclass, ttl, start, end in records:
            parser.seek(start)
            with parser.restrict_to(end - start):
                # dnspython takes the ints as from_wire passes them (typed as enums).
                rdata = dns.rdata.from_wire_parser(rdclass, rdtype, parser, None)  # type: ignore[arg-type]
            rrset.add(rdata, ttl if ttl <= _MAX_TTL else 0)
        return rrset

    def _groups(self, section: int) -> list[list[_Record]]:
        """The section's records grouped as its RRsets, in order of first appearance."""
        groups: dict[tuple[bytes, int, int], list[_Record]] = {}
        for record in self._records:
            if record[0] == section:
                key = (self._key(record[1]), record[3], record[2])
                group = groups.get(key)
                if group is None:
                    groups[key] = [record]
                else:
                    group.append(record)
        return list(groups.values())

    @property
    def answer(self) -> list[dns.rrset.RRset]:
        """The answer section, as ``Message.answer`` (a new list each time)."""
        return [self._rrset(group) for group in self._groups(1)]

    def _find(self, section: int, key: bytes | None, rdclass: int, rdtype: int) -> list[_Record]:
        """The records of the RRset (``key`` or any owner, class, type) in ``section``."""
        found = []
        for record in self._records:
            if (
                record[0] == section
                and record[2] == rdtype
                and record[3] == rdclass
                and (key is None or self._key(record[1]) == key)
            ):
                if key is None:
                    key = self._key(record[1])
                found.append(record)
        return found

    def chain(self) -> tuple[list[_Record], int | None]:
        """The records of the RRset answering the question, CNAMEs followed ([] if
        none), and the smallest TTL of the CNAME RRsets followed (None if none)."""
        if not self._qend:
            return [], None
        rdtype, rdclass = _U16U16.unpack_from(self._wire, self._qend - 4)
        key = self._key(DNS_HEADER_SIZE)
        ttl: int | None = None
        for _ in range(MAX_CNAME_CHAIN):
            found = self._find(1, key, rdclass, rdtype)
            if found:
                return found, ttl
            cnames = self._find(1, key, rdclass, _CNAME)
            if not cnames:
                break
            low = _ttl(cnames)
            ttl = low if ttl is None else min(ttl, low)
            key = self._key(cnames[-1][5])  # a singleton: the last CNAME RR is the RRset's
        return [], ttl

    @property
    def rrset(self) -> dns.rrset.RRset | None:
        """The RRset answering the question, CNAMEs followed, or None."""
        found = self.chain()[0]
        return self._rrset(found) if found else None

    def addresses(self) -> list[str]:
        """The addresses of the A or AAAA RRset answering the question, in its order."""
        found = self.chain()[0]
        if not found or found[0][2] not in (_A, _AAAA):
            return []
        wire = self._wire
        ntoa = dns.ipv4.inet_ntoa if found[0][2] == _A else dns.ipv6.inet_ntoa
        seen = set()
        addresses = []
        for record in found:
            data = wire[record[5] : record[6]]
            if data not in seen:  # an RRset is a set: a repeated RR counts once
                seen.add(data)
                addresses.append(ntoa(data))
        return addresses

    @property
    def ttl(self) -> int | None:
        """See ``Response.ttl``."""
        rcode = _rcode(self._wire, self._opt_ttl)
        if not self._qend or rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None
        found, ttl = self.chain()
        if found and rcode == dns.rcode.NOERROR:
            low = _ttl(found)
        else:
            soa = self._find(2, None, self._qclass, _SOA)
            if not soa:
                return None
            end = soa[-1][6]  # a singleton: the last SOA RR is the RRset's
            minimum = int.from_bytes(self._wire[end - 4 : end], "big")
            low = min(_ttl(soa), minimum)
        return low if ttl is None else min(ttl, low)


def _ttl(records: list[_Record]) -> int:
    """The TTL from_wire gives the RRset of ``records``: the smallest, as read."""
    return min(ttl if ttl <= _MAX_TTL else 0 for *_, ttl, _, _ in records)
