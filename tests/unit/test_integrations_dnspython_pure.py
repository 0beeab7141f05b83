"""DoTNameserver without a server (the Resolver against unbound:
tests/servers/test_integrations_dnspython.py)."""

from __future__ import annotations

import dns.asyncresolver
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.tsig


def test_plain_question() -> None:
    from dotclient.integrations.dnspython import _plain_question

    query = dns.message.make_query("a.example.test", "AAAA")
    assert _plain_question(query) == (query.question[0].name, dns.rdatatype.AAAA, 1, False)
    query.use_edns(0, dns.flags.DO, 1232)
    assert _plain_question(query) == (query.question[0].name, dns.rdatatype.AAAA, 1, True)
    for change in (
        lambda q: q.use_edns(0, 0, 4096),
        lambda q: q.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(65001, b"x")]),
        lambda q: setattr(q, "flags", dns.flags.RD | dns.flags.CD),
        lambda q: setattr(q, "flags", 0),
        lambda q: q.use_tsig(dns.tsig.Key("k.", b"0" * 16)),
    ):
        other = dns.message.make_query("a.example.test", "A")
        change(other)
        assert _plain_question(other) is None
