"""The lean read of a response (``_answer.py``) against dnspython, word for word.

``Response`` built from bytes decodes rcode, flags, question, answer, rrset, addresses()
and ttl without ``dns.message.from_wire`` where it can; built from the parsed message it
reads them from dnspython's objects. These tests build answers octet by octet (the
``Raw`` builder of ``test_fuzz.py``: compression pointers, escapes in labels, case
changes, merged and repeated RRs, CNAME chains, huge TTLs), damage some of them, and
check that both give the same text, the same types and the same TTLs, or the same
error class.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from dotclient import ProtocolError, Response
from dotclient._answer import read_wire

from support.responses import SERVER, TLS
from test_fuzz import BYTE_EDITS, MUTATIONS, RR, SCALE, Name, Raw, edit, mutate, opt_rr

A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, DNAME, CAA = 1, 2, 5, 6, 12, 15, 16, 28, 33, 39, 257
GENERIC = 65280
# Labels with what text form escapes (dots, backslashes, spaces, quotes, non-ASCII, NUL)
# and case variants, so owners match only case-insensitively.
LABELS = [b"www", b"WWW", b"example", b"Example", b"a.b", b"\\", b"x y", b'"', b"\xff\x00", b"t"]
TYPES = [A, AAAA, CNAME, MX, TXT, NS, PTR, SRV, SOA, DNAME, GENERIC, CAA]
TTLS = [0, 1, 60, 300, 3600, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def respond(wire_or_message: bytes | dns.message.Message) -> Response:
    return Response(wire_or_message, SERVER, 0.001, TLS)


@st.composite
def names(draw: st.DrawFn) -> Name:
    labels = tuple(draw(st.lists(st.sampled_from(LABELS), min_size=0, max_size=3)))
    return Name(labels, compress=draw(st.booleans()))


def case_of(name: Name, draw: st.DrawFn) -> Name:
    """The same name, its case maybe changed, compressed or not."""
    labels = tuple(x.swapcase() if draw(st.booleans()) else x for x in name.labels)
    return Name(labels, compress=draw(st.booleans()))


@st.composite
def rdata(draw: st.DrawFn, rdtype: int, target: Name | None = None) -> tuple[bytes | Name, ...]:
    """RDATA of ``rdtype``: valid for its type except now and then."""
    name = target if target is not None else draw(names())
    if rdtype == A:
        return (draw(st.sampled_from([b"\xc0\x00\x02\x01", b"\xc0\x00\x02\x02", b"\x0a\0\0\1"])),)
    if rdtype == AAAA:
        return (
            draw(
                st.sampled_from(
                    [bytes(16), bytes(15) + b"\x01", bytes(10) + b"\xff\xff\x01\x02\x03\x04"]
                    + [b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01"]
                )
            ),
        )
    if rdtype in (CNAME, NS, PTR, DNAME):
        return (name,)
    if rdtype == MX:
        return (struct.pack("!H", draw(st.integers(0, 20))), name)
    if rdtype == SRV:
        return (struct.pack("!HHH", *draw(st.tuples(*[st.integers(0, 3)] * 3))), name)
    if rdtype == SOA:
        serial = struct.pack("!5I", 1, 7200, 3600, 1209600, draw(st.sampled_from(TTLS)))
        return (draw(names()), name, serial)
    if rdtype == TXT:
        strings = draw(st.lists(st.sampled_from([b"", b"v=spf1", b"a b", b'"q"']), max_size=2))
        return (b"".join(bytes((len(x),)) + x for x in strings),)  # b"": malformed
    if rdtype == CAA:
        return (b"\x00\x05issueca.test",)
    return (draw(st.binary(max_size=6)),)


@st.composite
def lean_messages(draw: st.DrawFn) -> Raw:
    """An answer as servers send them, and as they should not: a question, a CNAME
    chain (repeated, looping or cut), the RRset asked (merged from scattered RRs,
    repeated RRs, owners in other case), unrelated records, an SOA for negative answers,
    and an OPT RR now and then (extended RCODE, padding)."""
    qname = draw(names())
    qtype = draw(st.sampled_from([A, A, A, AAAA, *TYPES]))  # addresses() most of all
    rcode = draw(st.sampled_from([0, 0, 0, 3, 3, 2, 5]))
    flags = 0x8000 | 0x0100 | rcode | draw(st.sampled_from([0, 0x0080, 0x0400, 0x0020]))
    answer: list[RR] = []
    owner = qname
    for _ in range(draw(st.integers(0, 3))):
        target = draw(st.one_of(names(), st.just(qname)))  # st.just: a loop
        for _ in range(draw(st.integers(1, 2))):  # a second CNAME for one owner
            answer.append(
                RR(case_of(owner, draw), CNAME, (target,), ttl=draw(st.sampled_from(TTLS)))
            )
        owner = target
    for _ in range(draw(st.integers(0, 4))):
        rdtype = draw(st.sampled_from([qtype, qtype, qtype, *TYPES]))
        who = case_of(owner, draw) if draw(st.integers(0, 3)) else draw(names())
        rdclass = 1 if draw(st.integers(0, 9)) else draw(st.sampled_from([3, 255]))
        answer.append(RR(who, rdtype, draw(rdata(rdtype)), rdclass, draw(st.sampled_from(TTLS))))
    answer = draw(st.permutations(answer))
    authority: list[RR] = []
    for _ in range(draw(st.integers(0, 2))):
        rdtype = draw(st.sampled_from([SOA, SOA, SOA, NS]))
        who = case_of(Name((b"example",)), draw) if draw(st.integers(0, 3)) else draw(names())
        authority.append(RR(who, rdtype, draw(rdata(rdtype)), ttl=draw(st.sampled_from(TTLS))))
    additional: list[RR] = []
    if draw(st.booleans()):
        padding = [(12, bytes(draw(st.integers(0, 40))))] if draw(st.booleans()) else []
        opt = opt_rr(padding)
        additional.append(replace(opt, ttl=draw(st.sampled_from([0, 0, 1 << 24, 0x8000]))))
    return Raw(
        qid=draw(st.integers(0, 65535)),
        flags=flags,
        questions=((qname, qtype, 1),),
        sections=(tuple(answer), tuple(authority), tuple(additional)),
    )


def outcome(get: Any) -> tuple[str, Any]:
    try:
        return "ok", get()
    except ProtocolError:
        return "error", None


def text(value: object) -> object:
    """What must match word for word: RRsets as text and as types, TTLs and owner case."""
    if isinstance(value, list):
        return [text(v) for v in value]
    if isinstance(value, dns.rrset.RRset):
        return (
            value.to_text(),
            value.name.labels,
            value.ttl,
            type(value.rdclass),
            type(value.rdtype),
            [(type(rd), rd.to_text()) for rd in value],
        )
    return (type(value), value)


def compare(wire: bytes) -> None:
    """Assert that what Response reads from ``wire`` is what dnspython gives."""
    lean = respond(wire)
    event("lean" if read_wire(wire) is not None else "dnspython")
    try:
        message = dns.message.from_wire(wire, one_rr_per_rrset=False)
    except Exception:
        for get in (
            lambda: lean.answer,
            lambda: lean.rrset,
            lean.addresses,
            lambda: lean.ttl,
            lambda: lean.flags,
        ):
            assert outcome(get) == ("error", None)
        return
    full = respond(message)
    assert lean.rcode == full.rcode and type(lean.rcode) is type(full.rcode)
    assert lean.flags == full.flags and type(lean.flags) is type(full.flags)
    assert lean.question == full.question
    if full.question is not None:
        assert lean.question is not None and lean.question[0].labels == full.question[0].labels
    assert text(lean.answer) == text(full.answer)
    assert text(lean.rrset) == text(full.rrset)
    assert text(lean.addresses()) == text(full.addresses())
    assert text(lean.ttl) == text(full.ttl)
    assert lean.message.answer == message.answer  # and the lazily built message agrees


@settings(max_examples=400 * SCALE, deadline=None)
@given(raw=lean_messages())
def test_lean_reads_what_dnspython_reads(raw: Raw) -> None:
    compare(raw.to_wire())


@settings(max_examples=300 * SCALE, deadline=None)
@given(raw=lean_messages(), kind=st.sampled_from(sorted(MUTATIONS)), data=st.data())
def test_damaged_answers_read_the_same_or_fail_the_same(
    raw: Raw, kind: str, data: st.DataObject
) -> None:
    damaged = mutate(raw, kind, data, {raw.qid})
    try:
        wire = damaged.to_wire()
    except struct.error:  # "rdlength-any" took more than a root-name RDATA has
        assume(False)
    compare(wire)


@settings(max_examples=300 * SCALE, deadline=None)
@given(raw=lean_messages(), kind=st.sampled_from(BYTE_EDITS), data=st.data())
def test_edited_bytes_read_the_same_or_fail_the_same(
    raw: Raw, kind: str, data: st.DataObject
) -> None:
    compare(edit(raw, kind, data))


@settings(max_examples=200 * SCALE, deadline=None)
@given(wire=st.binary(max_size=80))
def test_any_bytes_read_the_same_or_fail_the_same(wire: bytes) -> None:
    compare(wire)


# -- fixed cases: that the lean path is taken, and the TTL rules ----------------------


def wire_of(*records: str, rcode: int = 0, authority: tuple[str, ...] = ()) -> bytes:
    msg = dns.message.make_response(dns.message.make_query("www.example.test.", "A"))
    msg.set_rcode(dns.rcode.Rcode.make(rcode))
    for section, texts in ((msg.answer, records), (msg.authority, authority)):
        for record in texts:
            section.append(dns.rrset.from_text(*record.split(" ", 4)))
    msg.use_edns(0, 0, 1232, pad=468)
    return msg.to_wire()


CHAIN = ("www.example.test. 300 IN CNAME a.example.test.", "a.example.test. 60 IN A 192.0.2.1")
SOA_TEXT = "example.test. 900 IN SOA ns.example.test. host.example.test. 1 2 3 4 30"


@pytest.mark.parametrize(
    ("wire", "ttl"),
    [
        (wire_of(*CHAIN), 60),  # the smallest TTL on the chain
        (wire_of("www.example.test. 20 IN CNAME a.example.test.", CHAIN[1]), 20),
        (wire_of(rcode=3, authority=(SOA_TEXT,)), 30),  # NXDOMAIN: SOA MINIMUM < TTL
        (wire_of(authority=(SOA_TEXT.replace(" 900 ", " 10 "),)), 10),  # NODATA: SOA TTL
        (wire_of(CHAIN[0], rcode=3, authority=(SOA_TEXT,)), 30),  # CNAME, then NXDOMAIN
        (wire_of(CHAIN[0].replace("300", "5"), rcode=3, authority=(SOA_TEXT,)), 5),
        # SOA is a singleton type: of two SOA RRs, dnspython keeps the last one
        (wire_of(authority=(SOA_TEXT, SOA_TEXT.replace(" 4 30", " 4 10"))), 10),
        (wire_of(), None),  # NODATA without an SOA: not to be cached (RFC 2308 section 5)
        (wire_of(*CHAIN, rcode=2), None),  # SERVFAIL
        (wire_of("www.example.test. 4294967295 IN A 192.0.2.1"), 0),  # > 2**31 - 1: 0
    ],
)
def test_ttl_of_answers_and_negative_answers(wire: bytes, ttl: int | None) -> None:
    assert read_wire(wire) is not None  # these are all read from the bytes
    assert respond(wire).ttl == ttl
    assert respond(dns.message.from_wire(wire)).ttl == ttl


def test_common_answers_take_the_lean_path() -> None:
    mx = "www.example.test. 300 IN MX 10 mail.example.test."
    srv = "www.example.test. 300 IN SRV 1 2 853 dot.example.test."
    dname = "www.example.test. 300 IN DNAME example.net."
    txt = 'www.example.test. 300 IN TXT "v=spf1 -all"'
    aaaa = "a.example.test. 60 IN AAAA 2001:db8::1"
    for records in (CHAIN, (mx,), (srv,), (dname,), (txt,), (CHAIN[0], aaaa)):
        assert read_wire(wire_of(*records)) is not None, records
    assert respond(wire_of(*CHAIN)).addresses() == ["192.0.2.1"]
    # A type the reader does not mirror: the message answers instead.
    rrsig = "www.example.test. 300 IN RRSIG A 13 3 300 20300101000000 20200101000000 1 x. AAAA"
    assert read_wire(wire_of(*CHAIN, rrsig)) is None
    assert respond(wire_of(*CHAIN, rrsig)).addresses() == ["192.0.2.1"]


def test_answer_is_one_list_as_the_message_gives() -> None:
    response = respond(wire_of(*CHAIN))
    assert response.answer is response.answer
    parsed = respond(wire_of(*CHAIN))
    assert parsed.message.answer is parsed.answer


def test_flags_from_the_header() -> None:
    response = respond(wire_of(*CHAIN))
    assert response.flags == dns.flags.QR | dns.flags.RD
    assert isinstance(response.flags, dns.flags.Flag)


def test_qtype_read_from_the_bytes_is_an_rdatatype() -> None:
    question = respond(wire_of(*CHAIN)).question
    assert question == (dns.name.from_text("www.example.test."), dns.rdatatype.A)
    assert isinstance(question[1], dns.rdatatype.RdataType)
