"""The sans-I/O parts of ``dotclient serve``: bytes and a clock in, decisions out.

The cache (TTL aging with time passed in, RFC 2308 negative answers, DO kept apart, the
size bound), reading queries (FORMERR, NOTIMP, BADVERS, drops), fitting answers to a
query (ID, letter case, TC), SERVFAIL with an Extended DNS Error, the access list and
the config file.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest

import dotclient
from dotclient._serve._access import AccessList
from dotclient._serve._cache import Cache, cache_ttl
from dotclient._serve._message import (
    EDE_NETWORK_ERROR,
    EDE_NO_REACHABLE_AUTHORITY,
    Query,
    client_view,
    failure_cause,
    finish,
    read_query,
    servfail,
)
from dotclient._serve._settings import load_config, parse_listen

SOA = "example.test. 3600 IN SOA ns.example.test. host.example.test. 1 3600 900 604800 60"


def query(name: str = "a.example.test", rdtype: str = "A", **kwargs: object) -> Query:
    kwargs.setdefault("use_edns", 0)
    message = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
    parsed = read_query(message.to_wire())
    assert isinstance(parsed, Query)
    return parsed


def answer_to(
    q: Query, *rrsets: str, authority: tuple[str, ...] = (), rcode: int = 0
) -> dns.message.Message:
    response = dns.message.make_response(q.message)
    for text in rrsets:
        response.answer.append(dns.rrset.from_text(*text.split(maxsplit=4)))
    for text in authority:
        response.authority.append(dns.rrset.from_text(*text.split(maxsplit=4)))
    response.set_rcode(dns.rcode.Rcode(rcode))
    return dns.message.from_wire(response.to_wire(max_size=65535))


def reply(wire: bytes) -> dns.message.Message:
    return dns.message.from_wire(wire)


# -- the cache ---------------------------------------------------------------------------


def test_cached_answer_ttls_count_down_and_expire() -> None:
    q = query()
    cache = Cache(10)
    assert cache.put(q.key, answer_to(q, "a.example.test. 300 IN A 192.0.2.1"), now=1000.0)
    for now, ttl in ((1000.0, 300), (1000.9, 300), (1100.0, 200), (1299.5, 1)):
        wire = cache.get(q.key, now, edns=True)
        assert wire is not None
        assert reply(wire).answer[0].ttl == ttl
    assert cache.get(q.key, 1300.0, edns=True) is None
    assert len(cache) == 0  # the expired answer is gone, not just hidden


def test_the_smallest_ttl_of_answer_and_authority_rules_and_max_ttl_caps() -> None:
    q = query("www.example.test")
    message = answer_to(
        q,
        "www.example.test. 600 IN CNAME a.example.test.",
        "a.example.test. 30 IN A 192.0.2.1",
        authority=("example.test. 3600 IN NS ns.example.test.",),
    )
    assert cache_ttl(message) == 30
    assert cache_ttl(answer_to(q, "www.example.test. 999999 IN A 192.0.2.1")) == 86_400


def test_negative_answers_live_min_of_soa_ttl_and_minimum_rfc2308() -> None:
    q = query("nx.example.test")
    nxdomain = answer_to(q, authority=(SOA,), rcode=dns.rcode.NXDOMAIN)
    assert cache_ttl(nxdomain) == 60  # SOA MINIMUM 60 < SOA TTL 3600
    short_soa = SOA.replace(" 3600 IN SOA", " 20 IN SOA")
    nodata = answer_to(query("a.example.test", "MX"), authority=(short_soa,))
    assert cache_ttl(nodata) == 20  # the SOA's own TTL 20 < MINIMUM 60
    cache = Cache(10)
    assert cache.put(q.key, nxdomain, now=0.0)
    wire = cache.get(q.key, 59.0, edns=False)
    assert wire is not None and reply(wire).rcode() == dns.rcode.NXDOMAIN
    assert reply(wire).authority[0].ttl == 3600 - 59  # records age, whatever keeps them
    assert cache.get(q.key, 60.0, edns=False) is None


@pytest.mark.parametrize(
    "rcode, authority",
    [
        (dns.rcode.NXDOMAIN, ()),  # negative without a SOA: SHOULD NOT be cached
        (dns.rcode.NOERROR, ()),  # NODATA without a SOA
        (dns.rcode.SERVFAIL, (SOA,)),
        (dns.rcode.REFUSED, ()),
    ],
)
def test_what_is_never_cached(rcode: int, authority: tuple[str, ...]) -> None:
    q = query("nx.example.test")
    cache = Cache(10)
    assert not cache.put(q.key, answer_to(q, authority=authority, rcode=rcode), now=0.0)
    assert cache.get(q.key, 0.0, edns=True) is None


def test_truncated_and_zero_ttl_answers_are_not_cached() -> None:
    q = query()
    zero = answer_to(q, "a.example.test. 0 IN A 192.0.2.1")
    truncated = answer_to(q, "a.example.test. 300 IN A 192.0.2.1")
    truncated.flags |= dns.flags.TC
    assert cache_ttl(zero) == 0 and cache_ttl(truncated) == 0


def test_do_queries_are_cached_apart_and_case_does_not_matter() -> None:
    plain, do = query(), query(want_dnssec=True)
    upper = query("A.EXAMPLE.test")
    assert plain.key != do.key
    assert plain.key == upper.key
    cache = Cache(10)
    cache.put(plain.key, answer_to(plain, "a.example.test. 300 IN A 192.0.2.1"), now=0.0)
    assert cache.get(do.key, 1.0, edns=True) is None
    assert cache.get(upper.key, 1.0, edns=True) is not None


def test_the_cache_keeps_at_most_size_answers_least_recently_used_first_out() -> None:
    cache = Cache(3)
    queries = [query(f"n{i}.example.test") for i in range(5)]
    for i, q in enumerate(queries[:3]):
        cache.put(q.key, answer_to(q, f"n{i}.example.test. 300 IN A 192.0.2.{i}"), now=0.0)
    assert cache.get(queries[0].key, 1.0, edns=True) is not None  # n0 is now the freshest
    for i in (3, 4):
        q = queries[i]
        cache.put(q.key, answer_to(q, f"n{i}.example.test. 300 IN A 192.0.2.{i}"), now=1.0)
    assert len(cache) == 3
    kept = [i for i, q in enumerate(queries) if cache.get(q.key, 2.0, edns=True) is not None]
    assert kept == [0, 3, 4]
    with pytest.raises(ValueError, match="at least 1"):
        Cache(0)


def test_the_cache_keeps_at_most_max_bytes_of_answers() -> None:
    cache = Cache(100, max_bytes=1000)
    queries = [query(f"n{i}.example.test", "TXT") for i in range(5)]
    sizes = []
    for i, q in enumerate(queries):
        text = f'n{i}.example.test. 300 IN TXT "{"x" * 250}"'
        assert cache.put(q.key, client_view(answer_to(q, text)), now=0.0)
        sizes.append(cache.bytes)
    assert 250 < sizes[0] < 334  # one answer: its wire size
    assert len(cache) == 3 and cache.bytes == 3 * sizes[0] <= 1000
    kept = [i for i, q in enumerate(queries) if cache.get(q.key, 1.0, edns=True) is not None]
    assert kept == [2, 3, 4]
    huge = query("huge.example.test", "TXT")
    text = 'huge.example.test. 300 IN TXT "' + '" "'.join(["y" * 250] * 4) + '"'
    assert not cache.put(huge.key, client_view(answer_to(huge, text)), now=1.0)
    assert len(cache) == 3  # an answer bigger than the whole cache evicts nothing
    assert cache.get(queries[2].key, 400.0, edns=True) is None  # expired: bytes given back
    assert cache.bytes == 2 * sizes[0]


def test_a_client_without_edns_gets_no_opt_record() -> None:
    edns, plain = query(), query(use_edns=False)
    cache = Cache(10)
    cache.put(edns.key, client_view(answer_to(edns, "a.example.test. 300 IN A 192.0.2.1")), 0.0)
    with_opt, without = cache.get(edns.key, 0.0, True), cache.get(plain.key, 0.0, False)
    assert with_opt is not None and without is not None
    assert reply(with_opt).edns == 0 and reply(without).edns == -1


# -- reading queries ---------------------------------------------------------------------


def test_runts_and_responses_are_dropped_garbage_with_a_header_is_formerr() -> None:
    assert read_query(b"") is None
    assert read_query(b"\x12\x34\x01") is None
    response = dns.message.make_response(dns.message.make_query("a.example.test", "A"))
    assert read_query(response.to_wire()) is None  # never answer a response: no loops
    junk = b"\xab\xcd\x01\x00" + bytes(range(40))
    formerr = read_query(junk)
    assert isinstance(formerr, bytes)
    parsed = reply(formerr)
    assert parsed.id == 0xABCD and parsed.rcode() == dns.rcode.FORMERR
    assert parsed.flags & dns.flags.QR and parsed.flags & dns.flags.RD


def test_random_bytes_never_raise() -> None:
    rng = random.Random(18)
    for _ in range(2000):
        wire = bytes(rng.randrange(256) for _ in range(rng.randrange(60)))
        result = read_query(wire)
        assert result is None or isinstance(result, (bytes, Query))


def test_other_opcodes_two_questions_and_edns_version_1() -> None:
    notify = dns.message.make_query("example.test", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    wire = read_query(notify.to_wire())
    assert isinstance(wire, bytes) and reply(wire).rcode() == dns.rcode.NOTIMP
    two = dns.message.make_query("a.example.test", "A")
    two.question.append(dns.message.make_query("b.example.test", "A").question[0])
    wire = read_query(two.to_wire())
    assert isinstance(wire, bytes) and reply(wire).rcode() == dns.rcode.FORMERR
    v1 = dns.message.make_query("a.example.test", "A", use_edns=1)
    wire = read_query(v1.to_wire())
    assert isinstance(wire, bytes) and reply(wire).rcode() == dns.rcode.BADVERS


@pytest.mark.parametrize("edns", [-1, 0])
@pytest.mark.parametrize("dnssec", [False, True])
@pytest.mark.parametrize("flags", [dns.flags.RD, dns.flags.RD | dns.flags.CD, 0])
def test_queries_read_from_bytes_agree_with_dnspython(edns: int, dnssec: bool, flags: int) -> None:
    if dnssec and edns < 0:
        return
    options = [dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345678")]
    message = dns.message.make_query(
        "Mixed.Example.TEST",
        "AAAA",
        use_edns=edns,
        want_dnssec=dnssec,
        payload=4000,
        options=options if edns >= 0 else None,
    )
    message.flags = flags
    wire = message.to_wire()
    lean = read_query(wire)
    # The same query with a trailing byte only dnspython reads (and refuses): and
    # without, through the dnspython path, by way of a compressed question name.
    assert isinstance(lean, Query) and lean._message is None  # not parsed
    full = read_query(wire + b"\x00")
    assert isinstance(full, bytes) and reply(full).rcode() == dns.rcode.FORMERR
    parsed = Query(wire, lean.key, lean.edns, lean.do, lean.udp_limit)
    assert parsed.message.question == message.question
    expected_key = (b"\x05mixed\x07example\x04test\x00", 28, 1, int(flags) & 0x0110, dnssec)
    assert lean.key == expected_key
    assert (lean.edns, lean.do, lean.udp_limit) == (edns >= 0, dnssec, 4000 if edns >= 0 else 512)


def test_a_query_dnspython_reads_gets_the_same_key_as_from_bytes() -> None:
    message = dns.message.make_query("Mixed.Example.TEST", "A", use_edns=0, want_dnssec=True)
    lean = read_query(message.to_wire())
    message.question[0].name = dns.name.from_text("mixed.example.test")
    # A second, lower-case copy of the QNAME in the additional section is compressed
    # to a pointer, which the byte reader leaves to dnspython.
    message.additional.append(
        dns.rrset.from_text("mixed.example.test.", 0, "IN", "A", "192.0.2.1")
    )
    full = read_query(message.to_wire())
    assert isinstance(lean, Query) and isinstance(full, Query)
    assert full._message is not None  # parsed by dnspython
    assert full.key == lean.key


def test_udp_limit_is_the_edns_buffer_or_512() -> None:
    assert query(use_edns=False).udp_limit == 512
    assert query(payload=1232).udp_limit == 1232
    assert query(payload=100).udp_limit == 512  # RFC 6891: below 512 means 512


# -- fitting an answer to its query -------------------------------------------------------


def test_finish_gives_the_query_id_and_its_letter_case() -> None:
    first, second = query("a.example.test"), query("A.Example.TEST")
    rendered = client_view(answer_to(first, "a.example.test. 300 IN A 192.0.2.1")).to_wire()
    out = reply(finish(rendered, second, udp=True))
    assert out.id == second.message.id
    assert out.question[0].name.to_text() == "A.Example.TEST."
    assert second.message.is_response(out)


def test_too_big_for_the_udp_buffer_sets_tc_with_the_question_only() -> None:
    q = query("big.example.test", "TXT", payload=512)
    big = answer_to(q, 'big.example.test. 300 IN TXT "' + "x" * 250 + '" "' + "y" * 250 + '"')
    rendered = client_view(big).to_wire(max_size=65535)
    assert len(rendered) > 512
    tc = reply(finish(rendered, q, udp=True))
    assert tc.flags & dns.flags.TC and not tc.answer and tc.question == q.message.question
    assert tc.edns == 0  # the client sent EDNS, so the truncated reply keeps it
    assert not reply(finish(rendered, q, udp=False)).flags & dns.flags.TC  # TCP: whole
    roomy = query("big.example.test", "TXT", payload=4096)
    assert not reply(finish(rendered, roomy, udp=True)).flags & dns.flags.TC


def test_client_view_drops_padding_and_keeps_extended_errors() -> None:
    q = query()
    upstream = dns.message.make_response(q.message)
    upstream.use_edns(
        0,
        0,
        1232,
        options=[dns.edns.EDEOption(dns.edns.EDECode.STALE_ANSWER, "old")],
        pad=468,
    )
    parsed = dns.message.from_wire(upstream.to_wire())
    assert any(o.otype == dns.edns.OptionType.PADDING for o in parsed.options)
    view = client_view(parsed)
    assert [o.otype for o in view.options] == [dns.edns.OptionType.EDE]


def test_servfail_carries_an_extended_error_with_the_cause() -> None:
    q = query(want_dnssec=True)
    out = reply(servfail(q, EDE_NETWORK_ERROR, "upstream 127.0.0.1:853 refused"))
    assert out.rcode() == dns.rcode.SERVFAIL and out.id == q.message.id
    assert out.ednsflags & dns.flags.DO
    (ede,) = out.options
    assert isinstance(ede, dns.edns.EDEOption)
    assert (ede.code, ede.text) == (EDE_NETWORK_ERROR, "upstream 127.0.0.1:853 refused")
    plain = reply(servfail(query(use_edns=False), EDE_NETWORK_ERROR, "x"))
    assert plain.rcode() == dns.rcode.SERVFAIL and plain.edns == -1
    long = reply(servfail(q, 0, "z" * 5000))
    assert len(long.options[0].text) <= 300  # type: ignore[attr-defined]


def test_failure_cause_names_timeouts_and_network_errors() -> None:
    timeout = dotclient.Timeout("timed out")
    refused = dotclient.ConnectError("refused")
    assert failure_cause(timeout)[0] == EDE_NO_REACHABLE_AUTHORITY
    assert failure_cause(refused)[0] == EDE_NETWORK_ERROR
    both = dotclient.AllServersFailed("all failed", errors=(("a", refused), ("b", timeout)))
    code, text = failure_cause(both)
    assert code == EDE_NO_REACHABLE_AUTHORITY and "AllServersFailed: all failed" in text


# -- who may ask, and the settings -------------------------------------------------------


def test_loopback_only_by_default_and_allow_widens() -> None:
    default = AccessList()
    for host in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"):
        assert default.allows(host), host
    for host in ("192.0.2.1", "::ffff:192.0.2.1", "10.0.0.1", "2001:db8::1", "junk"):
        assert not default.allows(host), host
    wider = AccessList(["127.0.0.0/8", "::1", "192.0.2.0/24"])
    assert wider.allows("192.0.2.77") and not wider.allows("192.0.3.1")
    with pytest.raises(ValueError, match="not a network"):
        AccessList(["192.0.2.0/33"])


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:5300") == ("127.0.0.1", 5300)
    assert parse_listen("[::1]:53") == ("::1", 53)
    assert parse_listen("::1") == ("::1", 53)
    assert parse_listen("127.0.0.1") == ("127.0.0.1", 53)
    for bad in ("127.0.0.1:99999", "[::1", ":53", "127.0.0.1:x"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_config_file_keys_types_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        'listen = ["127.0.0.1:5300"]\nserver = "quad9"\ncache-size = 50\ntimeout = 2\n'
        'no_cache = true\nallow = "192.0.2.0/24"\n'
    )
    assert load_config(str(good)) == {
        "listen": ["127.0.0.1:5300"],
        "server": ["quad9"],
        "cache_size": 50,
        "timeout": 2.0,
        "no_cache": True,
        "allow": ["192.0.2.0/24"],
    }
    for text, message in (
        ("colour = 1\n", "unknown setting 'colour'"),
        ('cache_size = "big"\n', "cache_size must be int"),
        ("no_cache = 1\n", "no_cache must be bool"),
        ("listen = [1]\n", "listen must be a list of str"),
        ("listen = [\n", "bad.toml"),
    ):
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_config(str(bad))


def test_header_reply_keeps_only_id_opcode_and_rd() -> None:
    wire = struct.pack("!HHHHHH", 7, 0x0100 | 0x0020, 0, 0, 0, 0) + b"\xff"
    out = read_query(wire)
    assert isinstance(out, bytes)
    qid, flags = struct.unpack_from("!HH", out)
    assert qid == 7 and flags == 0x8000 | 0x0100 | dns.rcode.FORMERR


def test_config_file_carries_the_connection_options(tmp_path: Path) -> None:
    """The config file takes the connection flags serve shares with query, probe and
    bulk (issue 17): --bootstrap, --proxy, --client-cert, --client-key, --source."""
    import argparse

    from dotclient._cli.common import client_options
    from dotclient._cli.serve import _merge, add_arguments

    config = tmp_path / "serve.toml"
    config.write_text(
        'server = "127.0.0.1:8853#dot.test"\nbootstrap = ["127.0.0.1:8853#dot.test"]\n'
        'proxy = "socks5h://127.0.0.1:1080"\nsource = "127.0.0.2"\n'
        'client_cert = "client.pem"\nclient_key = "client.key"\n'
    )
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = client_options(_merge(parser.parse_args(["--config", str(config)])))
    assert options["bootstrap"] == ["127.0.0.1:8853#dot.test"]
    assert options["proxy"] == "socks5h://127.0.0.1:1080"
    assert options["source_address"] == "127.0.0.2"
    assert (options["client_cert"], options["client_key"]) == ("client.pem", "client.key")
    # The command line wins over the file.
    args = parser.parse_args(["--config", str(config), "--source", "127.0.0.3:5353"])
    assert client_options(_merge(args))["source_address"] == ("127.0.0.3", 5353)


def test_the_stub_retries_a_failed_upstream_within_half_a_minute(tmp_path: Path) -> None:
    """The library remembers a failed server for up to an hour (RFC 7858 section 3.1);
    a stub that came up while its network was down must not SERVFAIL that long."""
    import argparse

    from dotclient._cli.serve import SERVE_MAX_BACKOFF, _settings, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = _settings(parser.parse_args(["--server", "127.0.0.1:8853#dot.test"]))
    assert settings["client"]["max_backoff"] == SERVE_MAX_BACKOFF == 30.0
