"""The stub's answer cache: no I/O and no clock (``now`` is passed in, in seconds).

What may be kept, and for how long:

- NOERROR with answer records: the smallest TTL of the answer and authority records.
- NXDOMAIN, and NOERROR without answer records (NODATA): negative answers, kept for the
  smaller of the SOA record's TTL and its MINIMUM field (RFC 2308 section 5); without a
  SOA in the authority section they are not kept (RFC 2308 section 5, SHOULD NOT).
- Nothing else: SERVFAIL, REFUSED, truncated answers, TTL 0.

Every TTL is capped at ``max_ttl``. Answers are served with their TTLs decreased by the
whole seconds they spent in the cache (RFC 1035 section 6.2), and expire when that
reaches their TTL. Answers to DO queries are kept apart from the others (the key carries
the DO bit, and RD and CD), so a client that did not ask for DNSSEC records does not get
them. At most ``size`` answers are kept, and at most ``max_bytes`` octets of them in
wire format; the least recently used go first.
"""

from __future__ import annotations

import collections
import dataclasses

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from ._message import PAYLOAD, CacheKey

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_TTL", "DEFAULT_SIZE", "Cache", "cache_ttl", "render"]

#: Answers kept by default.
DEFAULT_SIZE = 10_000
#: Octets of answers kept (in wire format; the parsed answers take a few times more).
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
#: No answer is kept longer than a day, whatever its TTL says.
DEFAULT_MAX_TTL = 86_400


def cache_ttl(message: dns.message.Message, max_ttl: int = DEFAULT_MAX_TTL) -> int:
    """Seconds ``message`` may be cached: 0 when it must not be (see the module doc)."""
    if message.flags & dns.flags.TC:
        return 0
    rcode = message.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return 0
    answer_ttls = [rrset.ttl for rrset in message.answer]
    negative = rcode == dns.rcode.NXDOMAIN or not message.answer
    if negative:
        soa = next((r for r in message.authority if r.rdtype == dns.rdatatype.SOA), None)
        if soa is None or not soa:
            return 0
        ttls = [*answer_ttls, soa.ttl, soa[0].minimum]
    else:
        ttls = answer_ttls + [rrset.ttl for rrset in message.authority]
    return max(0, min(int(min(ttls)), max_ttl))


def _aged(sections: list[dns.rrset.RRset], age: int) -> list[dns.rrset.RRset]:
    aged = []
    for rrset in sections:
        copy = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
        copy.items = rrset.items  # shared, never changed: only the TTL differs
        copy.ttl = max(rrset.ttl - age, 0)
        aged.append(copy)
    return aged


def render(message: dns.message.Message, age: int, edns: bool) -> bytes:
    """``message`` in wire format with every TTL decreased by ``age`` seconds, its ID 0,
    and its OPT record left out when ``edns`` is false (a client that sent none must not
    get one, RFC 6891 section 7)."""
    out = dns.message.Message(id=0)
    out.flags = message.flags
    out.question = message.question
    if age:
        out.answer = _aged(message.answer, age)
        out.authority = _aged(message.authority, age)
        out.additional = _aged(message.additional, age)
    else:
        out.answer, out.authority, out.additional = (
            message.answer,
            message.authority,
            message.additional,
        )
    if edns and message.edns >= 0:
        out.use_edns(
            message.edns, message.ednsflags, message.payload, options=list(message.options)
        )
    elif edns:  # the upstream answer had no OPT record; this client still gets one
        out.use_edns(0, 0, PAYLOAD)
        out.set_rcode(message.rcode())
    else:
        out.set_rcode(dns.rcode.Rcode(message.rcode() & 0xF))
    wire: bytes = out.to_wire(max_size=65535)
    return wire


@dataclasses.dataclass
class _Entry:
    message: dns.message.Message
    stored: float
    ttl: int
    size: int
    # (edns, age) -> bytes: rendered once per second of age, not once per hit.
    rendered: dict[bool, tuple[int, bytes]] = dataclasses.field(default_factory=dict)


class Cache:
    """Answers by :data:`~._message.CacheKey`: at most ``size`` of them, and at most
    ``max_bytes`` octets of them in wire format; the least recently used go first."""

    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        max_ttl: int = DEFAULT_MAX_TTL,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if size < 1:
            raise ValueError(f"cache size must be at least 1, not {size}")
        self.size = size
        self.max_ttl = max_ttl
        self.max_bytes = max_bytes
        #: Octets of the answers kept, in wire format.
        self.bytes = 0
        self._entries: collections.OrderedDict[CacheKey, _Entry] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(
        self,
        key: CacheKey,
        message: dns.message.Message,
        now: float,
        wire: bytes | None = None,
        edns: bool = True,
    ) -> bool:
        """Keep ``message`` (as :func:`~._message.client_view` made it) if it may be
        cached; say whether it was. ``wire`` is ``render(message, 0, edns)``, or the
        same reply made from the answer's bytes (``_plain.plain_reply``), when the
        caller has it already (it is then served until the first second has passed)."""
        ttl = cache_ttl(message, self.max_ttl)
        if ttl <= 0:
            return False
        if wire is None:
            wire = render(message, 0, edns)
        if len(wire) > self.max_bytes:
            return False
        entries = self._entries
        old = entries.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        entry = _Entry(message, now, ttl, len(wire))
        entry.rendered[edns] = (0, wire)
        entries[key] = entry
        self.bytes += entry.size
        while len(entries) > self.size or self.bytes > self.max_bytes:
            _, evicted = entries.popitem(last=False)
            self.bytes -= evicted.size
        return True

    def get(self, key: CacheKey, now: float, edns: bool) -> bytes | None:
        """The cached answer for ``key`` rendered for a client with or without EDNS
        (ID 0, TTLs decreased), or None when there is none or it has expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        age = int(now - entry.stored)
        if age >= entry.ttl or age < 0:
            del self._entries[key]
            self.bytes -= entry.size
            return None
        self._entries.move_to_end(key)
        kept = entry.rendered.get(edns)
        if kept is not None and kept[0] == age:
            return kept[1]
        wire = render(entry.message, age, edns)
        entry.rendered[edns] = (age, wire)
        return wire
