"""``dotclient serve``'s lean miss path, bytes in and out: which queries are plain, and
that the reply made from the answer's bytes is the reply the message path makes from the
same answer (the parsed message, word for word: header, every record and TTL, the OPT).
"""

from __future__ import annotations

import random

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest

from dotclient._serve._cache import render
from dotclient._serve._message import PAYLOAD, Query, client_view, finish, read_query
from dotclient._serve._plain import plain_question, plain_reply

TXT_BIG = 'a.example.test. 300 IN TXT "' + '" "'.join(["x" * 200] * 7) + '"'


def stub_query(wire: bytes) -> Query:
    parsed = read_query(wire)
    assert isinstance(parsed, Query)
    return parsed


def query(name: str = "a.example.test", rdtype: str = "A", **kwargs: object) -> Query:
    message = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
    return stub_query(message.to_wire())


def upstream_answer(
    q: Query,
    *rrsets: str,
    options: tuple[dns.edns.Option, ...] = (),
    rcode: int = 0,
    edns: bool = True,
    ednsflags: int = 0,
) -> bytes:
    """An answer as an upstream gives it to resolve()'s query for ``q``: EDNS with the
    DO bit echoed, padded to 468 octets (RFC 8467), under another ID."""
    rdtype, rdclass = q.key[1], q.key[2]
    upstream = dns.message.make_query(
        dns.name.from_wire(q.wire, 12)[0], rdtype, rdclass, use_edns=0, want_dnssec=q.do
    )
    upstream.id = 4321
    response = dns.message.make_response(upstream)
    for text in rrsets:
        response.answer.append(dns.rrset.from_text(*text.split(maxsplit=4)))
    if edns:
        flags = (dns.flags.DO if q.do else 0) | ednsflags
        response.use_edns(0, flags, 1232, options=list(options), pad=468)
    else:
        response.use_edns(False)
    response.set_rcode(dns.rcode.Rcode(rcode))
    return response.to_wire(max_size=65535)


def message_path(answer: bytes, q: Query, udp: bool) -> bytes:
    """What ``Stub._forward`` makes of ``answer`` without the lean path."""
    message = client_view(dns.message.from_wire(answer, one_rr_per_rrset=False))
    return finish(render(message, 0, q.edns), q, udp=udp)


def lean_path(answer: bytes, q: Query, udp: bool) -> bytes:
    wire = plain_reply(answer, q.edns)
    assert wire is not None
    return finish(wire, q, udp=udp)


def same_reply(answer: bytes, q: Query, udp: bool = True) -> dns.message.Message:
    lean, full = lean_path(answer, q, udp), message_path(answer, q, udp)
    parsed_lean, parsed_full = dns.message.from_wire(lean), dns.message.from_wire(full)
    assert parsed_lean.to_text() == parsed_full.to_text()
    assert parsed_lean == parsed_full
    assert (parsed_lean.edns, parsed_lean.ednsflags, parsed_lean.payload) == (
        parsed_full.edns,
        parsed_full.ednsflags,
        parsed_full.payload,
    )
    assert parsed_lean.options == parsed_full.options
    assert len(lean) == len(full)
    assert q.message.is_response(parsed_lean)
    return parsed_lean


# -- which queries are plain ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "do"),
    [
        ({"use_edns": False}, False),
        ({"use_edns": 0}, False),
        ({"use_edns": 0, "want_dnssec": True}, True),
    ],
)
def test_plain_queries_are_asked_as_questions(kwargs: dict[str, object], do: bool) -> None:
    q = query("WwW.Example.TEST", "AAAA", **kwargs)
    question = plain_question(q)
    assert question is not None
    name, rdtype, rdclass = question
    assert str(name) == "WwW.Example.TEST." and (rdtype, rdclass) == (28, 1)
    assert q.do is do
    assert plain_question(query("any.example.test", "ANY")) is not None


def test_names_with_any_octets_go_upstream_as_the_client_wrote_them() -> None:
    for labels in [(b"a.b", b"\xff\x00 x", b"TEST", b""), (b"\\", b"@", b"")]:
        q = stub_query(dns.message.make_query(dns.name.Name(labels), "A").to_wire())
        question = plain_question(q)
        assert question is not None
        name = question[0]
        parsed = dns.name.from_text(name) if isinstance(name, str) else name
        assert parsed.labels == labels  # byte for byte, letter case included


def _with(q: Query, **changes: object) -> Query:
    message = dns.message.from_wire(q.wire)
    for key, value in changes.items():
        setattr(message, key, value)
    return stub_query(message.to_wire())


def test_queries_with_other_bits_or_options_take_the_message_path() -> None:
    base = query(use_edns=0)
    cookie = dns.edns.CookieOption(b"\x01" * 8, b"")
    ecs = dns.edns.ECSOption("192.0.2.0", 24)
    not_plain = [
        _with(base, flags=dns.flags.RD | dns.flags.CD),
        _with(base, flags=dns.flags.RD | dns.flags.AD),  # dig sets AD by default
        _with(base, flags=0),  # not recursive
        _with(base, flags=dns.flags.RD | dns.flags.AA),
        query(use_edns=0, options=[cookie]),
        query(use_edns=0, options=[ecs]),
        query(use_edns=0, ednsflags=0x4000),  # a flag other than DO
        query(use_edns=0, payload=4096),  # passed on upstream, which resolve() cannot
        query("a.example.test", "MAILB"),  # a meta-type resolve() refuses
    ]
    for q in not_plain:
        assert plain_question(q) is None, q.message
    with_answer = dns.message.from_wire(base.wire)
    with_answer.answer.append(dns.rrset.from_text("a.example.test.", 1, "IN", "A", "192.0.2.1"))
    assert plain_question(stub_query(with_answer.to_wire())) is None


# -- replies from bytes, against the message path -----------------------------------------


def test_no_edns_asked_the_answer_loses_its_opt() -> None:
    q = query(use_edns=False)
    answer = upstream_answer(q, "a.example.test. 300 IN A 192.0.2.1")
    reply = same_reply(answer, q)
    assert reply.edns == -1 and reply.answer


def test_edns_with_do_gets_the_stubs_opt_with_the_answers_flags() -> None:
    q = query("A.example.TEST", use_edns=0, want_dnssec=True)
    keepalive = dns.edns.GenericOption(dns.edns.OptionType.KEEPALIVE, b"\x00\x64")
    answer = upstream_answer(q, "a.example.test. 300 IN A 192.0.2.1", options=(keepalive,))
    reply = same_reply(answer, q)
    assert reply.ednsflags & dns.flags.DO and reply.payload == PAYLOAD and not reply.options
    assert reply.question[0].name.to_text() == "A.example.TEST."
    # A flag that is not DO, set upstream, stays as the message path keeps it.
    same_reply(upstream_answer(q, "a.example.test. 300 IN A 192.0.2.1", ednsflags=0x10), q)


def test_an_extended_dns_error_takes_the_message_path() -> None:
    q = query(use_edns=0)
    ede = dns.edns.EDEOption(dns.edns.EDECode.STALE_ANSWER, "old")
    answer = upstream_answer(q, "a.example.test. 300 IN A 192.0.2.1", options=(ede,))
    assert plain_reply(answer, True) is None
    # A client without EDNS gets no OPT at all, so nothing is lost by dropping it.
    same_reply(answer, query(use_edns=False))


@pytest.mark.parametrize("edns", [True, False])
def test_an_extended_rcode_is_kept_for_edns_and_cut_to_four_bits_without(edns: bool) -> None:
    q = query(use_edns=0 if edns else False)
    answer = upstream_answer(q, rcode=dns.rcode.BADCOOKIE)
    assert dns.message.from_wire(answer).ednsflags >> 24  # the upper bits are in the OPT
    reply = same_reply(answer, q)
    expected = dns.rcode.BADCOOKIE if edns else dns.rcode.BADCOOKIE & 0xF
    assert reply.rcode() == expected


@pytest.mark.parametrize("edns", [True, False])
def test_an_answer_without_opt(edns: bool) -> None:
    q = query(use_edns=0 if edns else False)
    answer = upstream_answer(q, "a.example.test. 300 IN A 192.0.2.1", edns=False, rcode=3)
    reply = same_reply(answer, q)
    assert reply.edns == (0 if edns else -1) and reply.rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("edns", [True, False])
def test_tc_over_udp_as_the_message_path_sets_it(edns: bool) -> None:
    q = query(use_edns=0 if edns else False)
    big = upstream_answer(q, TXT_BIG)
    assert same_reply(big, q, udp=True).flags & dns.flags.TC
    assert not same_reply(big, q, udp=False).flags & dns.flags.TC
    small = upstream_answer(q, 'a.example.test. 300 IN TXT "' + '" "'.join(["x" * 200] * 3) + '"')
    assert bool(same_reply(small, q, udp=True).flags & dns.flags.TC) is not edns


def test_an_opt_that_is_not_last_or_two_questions_take_the_message_path() -> None:
    q = query(use_edns=0)
    answer = dns.message.from_wire(upstream_answer(q, "a.example.test. 300 IN A 192.0.2.1"))
    assert answer.opt is not None
    opt = answer.opt
    answer.use_edns(False)
    answer.additional = [opt, dns.rrset.from_text("ns.example.test.", 300, "IN", "A", "192.0.2.9")]
    assert plain_reply(answer.to_wire(), True) is None
    assert plain_reply(answer.to_wire(), False) is None
    two = bytearray(upstream_answer(q))
    two[5] = 2
    assert plain_reply(bytes(two), True) is None


def test_random_and_cut_answers_never_raise() -> None:
    rng = random.Random(18)
    q = query(use_edns=0)
    answer = upstream_answer(q, "a.example.test. 300 IN A 192.0.2.1")
    for cut in range(len(answer)):
        assert plain_reply(answer[:cut], True) is None
        assert plain_reply(answer[:cut], False) is None
    for _ in range(500):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(12, 120)))
        plain_reply(junk, rng.random() < 0.5)


def test_a_compressed_qname_is_not_plain() -> None:
    # A pointer into the ID: dnspython reads a name from it, different for each ID.
    wire = b"\x01\x61\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x00\x00\x01\x00\x01"
    parsed = read_query(wire)  # dnspython takes it (the byte-level read does not)
    assert isinstance(parsed, Query) and plain_question(parsed) is None


def test_a_name_dnspython_refuses_is_not_plain() -> None:
    # read_query() refuses this name itself (FORMERR); a Query made by hand reaches the
    # guard, which leaves it to the message path rather than raise in the server.
    labels = b"".join(b"\x3f" + b"x" * 63 for _ in range(3)) + b"\x3e" + b"y" * 62 + b"\x00"
    wire = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + b"\x00\x01\x00\x01"
    assert isinstance(read_query(wire), bytes)
    assert plain_question(Query(wire, (labels, 1, 1, 0x100, False), False, False, 512)) is None
