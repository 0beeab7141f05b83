"""The zone every test server answers: :data:`DEFAULT_ZONE`, at :data:`DEFAULT_ZONE_ORIGIN`."""

from __future__ import annotations


def _big_txt_strings() -> list[str]:
    # Five 250-character strings: 5 * (1 + 250) = 1255 bytes of TXT RDATA.
    return [(f"big-txt-string-{i}-" + "abcdefghij" * 25)[:250] for i in range(5)]


#: The origin of :data:`DEFAULT_ZONE`.
DEFAULT_ZONE_ORIGIN = "example.test."

DEFAULT_ZONE: str = (
    "$ORIGIN example.test.\n"
    "$TTL 300\n"
    "@ 3600 IN SOA ns hostmaster 1 3600 900 604800 300\n"
    "@ 3600 IN NS ns\n"
    "@ 3600 IN MX 10 mail\n"
    "ns 3600 IN A 192.0.2.53\n"
    "mail 3600 IN A 192.0.2.25\n"
    "a 300 IN A 192.0.2.1\n"
    "a 300 IN A 192.0.2.2\n"
    "a 300 IN AAAA 2001:db8::1\n"
    "mixed 300 IN A 192.0.2.1\n"
    "mixed 300 IN A 192.0.2.2\n"
    "mixed 300 IN AAAA 2001:db8::1\n"
    "www 300 IN CNAME alias\n"
    "alias 300 IN CNAME a\n"
    "big 300 IN TXT " + " ".join(f'"{s}"' for s in _big_txt_strings()) + "\n"
)
"""The test zone, in RFC 1035 master-file format.

Unbound serves it authoritatively (an ``auth-zone``), so names without data are
NXDOMAIN with the SOA in the authority section, and CNAMEs inside the zone are
followed in the answer as an authoritative server does (RFC 1034 section 4.3.2):

- ``example.test.``: SOA, NS ``ns.example.test.``, MX 10 ``mail.example.test.``
- ``ns.example.test.`` A 192.0.2.53; ``mail.example.test.`` A 192.0.2.25
- ``a.example.test.``: A 192.0.2.1, A 192.0.2.2, AAAA 2001:db8::1
- ``mixed.example.test.``: the same data as ``a.example.test.``; query it as
  ``Mixed.Example.Test.`` to check case-insensitive matching (unbound echoes the
  query's case in the answer's owner names)
- ``www.example.test.`` CNAME ``alias.example.test.``, which is a CNAME to
  ``a.example.test.``: a query for ``www.example.test. A`` is answered with both
  CNAMEs and the A RRset.
- ``big.example.test.``: one TXT record of five 250-byte strings (1255 bytes of RDATA)

Any other name under ``example.test.`` (e.g. ``nx.example.test.``) is NXDOMAIN;
names outside it are REFUSED, except in unbound's built-in local zones (RFC 6761
and RFC 6303 names such as ``localhost.``, ``test.``, ``invalid.``, ``onion.`` and
private-address reverse zones), which unbound answers itself: e.g.
``other.test.`` is NXDOMAIN, not REFUSED.
"""
