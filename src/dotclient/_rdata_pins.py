"""Pin dnspython's RDATA classes for class IN before any answer is parsed.

dnspython looks an RDATA class up per (class, type) and caches what it finds, but a
type first met in class ANY (255) is cached as ``GenericRdata`` for ANY, and a later
lookup for class IN of that type falls back to the ANY entry
(``dns.rdata.get_rdata_class``). So one record of class ANY from a server, parsed
before any IN record of its type, made every later IN record of that type generic in
the whole process: an AAAA without ``.address``, an ``AttributeError`` out of
``Response.addresses()``. Looking the IN classes up first caches them under IN, which
the lookup finds first. Importing this module does it (about 5 ms, once).
"""

from __future__ import annotations

import dns.rdata
import dns.rdataclass
import dns.rdatatype

__all__ = ["PINNED"]

#: The types whose IN class is looked up at import: those the lean reader mirrors,
#: and the others a resolver commonly returns.
PINNED = tuple(
    dns.rdatatype.RdataType.make(name)
    for name in (
        "A AAAA CNAME DNAME NS PTR MX SRV SOA TXT CAA HTTPS SVCB NAPTR TLSA SSHFP "
        "DS DNSKEY RRSIG NSEC NSEC3 NSEC3PARAM HINFO URI LOC"
    ).split()
)

for _rdtype in PINNED:
    dns.rdata.get_rdata_class(dns.rdataclass.IN, _rdtype)  # type: ignore[no-untyped-call]
