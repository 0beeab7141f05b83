"""Fuzzing the protocol core: streams of answers, broken streams, mutated answers, round trips.

Properties over DoTProtocol with real queries in flight (both the lean ``send_question``
path and the ``send_query`` path), and a run of the fuzz target in ``fuzz/``. The
decoder-only and lean-versus-dnspython properties on fixed answers are in
``test_protocol.py``; these add whole connections, structured damage and edge sizes.

``DOTCLIENT_FUZZ_SCALE=N`` multiplies every example budget here by N for a longer local
run (the defaults keep this file under 20 s in CI).
"""

from __future__ import annotations

import importlib.util
import os
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from dotclient import ConnectionLost, ProtocolError
from dotclient._framing import FrameDecoder, encode_frame
from dotclient._protocol import DoTProtocol
from dotclient._query import make_query
from dotclient._wire import wire_summary

SCALE = max(1, int(os.environ.get("DOTCLIENT_FUZZ_SCALE", "1")))


def budget(examples: int) -> settings:
    return settings(max_examples=examples * SCALE, deadline=None)


def _load_fuzz_target() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_protocol.py"
    spec = importlib.util.spec_from_file_location("fuzz_protocol", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


fuzz = _load_fuzz_target()
respond = fuzz.respond
check_answer = fuzz.check_answer
QUESTIONLESS = fuzz.QUESTIONLESS

A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, OPT = 1, 2, 5, 6, 12, 15, 16, 28, 41
GENERIC = 65280  # a private-use type: dnspython keeps its RDATA as opaque bytes
CHAIN_LIMIT = getattr(dns.name, "MAX_COMPRESSION_POINTER_CHAIN", None)
KEEPALIVE, PADDING, COOKIE = 11, 12, 10


# -- helpers ------------------------------------------------------------------------------


def read_frames(data: bytes) -> list[bytes]:
    """Split framed bytes with a length decoder of our own (not FrameDecoder)."""
    out = []
    while data:
        length = int.from_bytes(data[:2], "big")
        assert len(data) >= 2 + length
        out.append(data[2 : 2 + length])
        data = data[2 + length :]
    return out


def split(stream: bytes, cuts: Sequence[int]) -> list[tuple[int, bytes]]:
    """``stream`` cut at ``cuts``, as (offset, chunk) pairs."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(stream)}), len(stream)]
    return [(a, stream[a:b]) for a, b in pairwise(bounds) if b > a]


@st.composite
def cut_points(draw: st.DrawFn, length: int, bounds: Sequence[int]) -> list[int]:
    """Where to cut a stream of ``length`` octets whose frames start at ``bounds``: not
    at all, before every octet, at random, at the frame boundaries, or a few octets
    either side of them (reads that end inside one frame and start inside the next, or
    split a length prefix)."""
    mode = draw(st.sampled_from(["one", "octets", "random", "frames", "spanning"]))
    event(f"chunking: {mode}")
    if mode == "one" or length < 2:
        return []
    if mode == "octets":
        return list(range(1, length))
    if mode == "random":
        return draw(st.lists(st.integers(1, length - 1), max_size=24))
    if mode == "frames":
        return list(bounds)
    return [b + draw(st.integers(-3, 3)) for b in bounds]


def outcome(proto: DoTProtocol, qid: int) -> tuple[str, Any]:
    try:
        value = proto.result(qid)
    except ProtocolError as exc:
        return "protocol", str(exc)
    except ConnectionLost as exc:
        return "lost", str(exc)
    return ("pending", None) if value is None else ("ok", value)


def assert_same_message(value: object, wire: bytes, qid: int) -> None:
    """``value`` (from result()) is the answer ``wire``: the same bytes on the lean
    path, an equal message (sections, EDNS included) on the full path."""
    if isinstance(value, bytes):
        assert value == wire
        return
    assert isinstance(value, dns.message.Message)
    expected = dns.message.from_wire(wire)
    assert value.id == qid == expected.id
    assert value == expected  # ID, flags, question, answer, authority, additional
    assert (value.rcode(), value.edns, value.ednsflags, value.payload) == (
        expected.rcode(),
        expected.edns,
        expected.ednsflags,
        expected.payload,
    )
    assert [o.to_wire() for o in value.options] == [o.to_wire() for o in expected.options]


# -- whole connections: what the queries and the answers are -----------------------------

label = st.binary(min_size=1, max_size=20) | st.sampled_from([b"example", b"WWW", b"a" * 63])
random_names = (
    st.lists(label, max_size=5)
    .filter(lambda ls: sum(len(x) + 1 for x in ls) < 255)
    .map(lambda ls: dns.name.Name([*ls, b""]))
)
names = (
    st.sampled_from(
        [dns.name.from_text(n) for n in ("example.com.", "Example.COM.", ".", "a.b.c.example.")]
    )
    | random_names
)
query_types = st.sampled_from([A, AAAA, TXT, MX, NS, SOA, PTR, CNAME, GENERIC, 255])


@dataclass(frozen=True)
class Question:
    qname: dns.name.Name
    rdtype: int
    dnssec: bool
    lean: bool


@dataclass(frozen=True)
class Plan:
    """One connection: its settings, the queries sent, and how each is answered."""

    padding: int
    keepalive: bool
    questions: tuple[Question, ...]
    ids: tuple[int, ...]  # what the ID generator yields (repeats are skipped by the protocol)
    answers: tuple[dict[str, Any], ...]  # respond() arguments, one per question
    order: tuple[int, ...]  # the order the answers are sent in
    strays: tuple[tuple[int, int, dict[str, Any]], ...]  # (position, question, answer)
    duplicates: tuple[tuple[int, dict[str, Any]], ...]  # (question, second answer)

    def connect(self) -> tuple[DoTProtocol, list[Any]]:
        proto = DoTProtocol(padding=self.padding, keepalive=self.keepalive)
        sent = []
        with fuzz.fixed_ids(self.ids):
            for q in self.questions:
                if q.lean:
                    qid, data = proto.send_question(q.qname, q.rdtype, 1, dnssec=q.dnssec)
                else:
                    qid, data = proto.send_query(make_query(q.qname, q.rdtype, dnssec=q.dnssec))
                sent.append(fuzz.Sent(qid, q.lean, q.qname, q.rdtype, data))
        return proto, sent


@st.composite
def answer_shapes(draw: st.DrawFn) -> dict[str, Any]:
    """respond() arguments for a valid answer."""
    questionless = draw(st.integers(0, 5)) == 0
    rcodes = [2, 5] if questionless else [0, 0, 0, 2, 3, 5]  # SERVFAIL, REFUSED; NXDOMAIN
    return {
        "records": draw(st.integers(0, 3)),
        "rcode": draw(st.sampled_from(rcodes)),
        "cname": draw(st.booleans()),
        "questionless": questionless,
        "generic": draw(st.integers(0, 4)) == 0,
        "edns": draw(st.integers(0, 5)) > 0,
        "keepalive": draw(st.none() | st.integers(0, 65535)),
        "pad": draw(st.sampled_from([0, 0, 128, 468])),
    }


@st.composite
def plans(draw: st.DrawFn, max_queries: int = 8) -> Plan:
    count = draw(st.integers(1, max_queries))
    questions = tuple(
        Question(draw(names), draw(query_types), draw(st.booleans()), draw(st.booleans()))
        for _ in range(count)
    )
    return Plan(
        padding=draw(st.sampled_from([0, 1, 128, 468, 512])),
        keepalive=draw(st.booleans()),
        questions=questions,
        # Small IDs repeat often: the protocol must skip those in use.
        ids=tuple(draw(st.lists(st.integers(0, 65535) | st.integers(0, 3), max_size=2 * count))),
        answers=tuple(draw(answer_shapes()) for _ in range(count)),
        order=tuple(draw(st.permutations(range(count)))),
        strays=tuple(
            draw(
                st.lists(
                    st.tuples(st.integers(0, count), st.integers(0, count - 1), answer_shapes()),
                    max_size=2,
                )
            )
        ),
        duplicates=tuple(
            draw(st.lists(st.tuples(st.integers(0, count - 1), answer_shapes()), max_size=2))
        ),
    )


@dataclass
class Frame:
    """One frame of the server's stream and what it should do."""

    data: bytes  # framed
    qid: int
    first: bool  # the first answer with this ID: delivered to its query
    start: int = 0  # offset in the stream

    @property
    def end(self) -> int:
        return self.start + len(self.data)

    @property
    def wire(self) -> bytes:
        return self.data[2:]


@dataclass
class Stream:
    frames: list[Frame] = field(default_factory=list)

    def add(self, frame: Frame) -> None:
        frame.start = self.frames[-1].end if self.frames else 0
        self.frames.append(frame)

    @property
    def data(self) -> bytes:
        return b"".join(f.data for f in self.frames)

    @property
    def bounds(self) -> list[int]:
        return [f.start for f in self.frames]


def build_stream(plan: Plan, sent: list[Any], data: st.DataObject) -> Stream:
    """The answers in ``plan.order``, strays (valid answers under IDs not in flight) and
    second answers to already answered queries, each framed with encode_frame."""
    ids = {s.qid for s in sent}
    strays: dict[int, list[bytes]] = {}
    for position, index, shape in plan.strays:
        stray_id = data.draw(st.integers(0, 65535).filter(lambda i: i not in ids))
        strays.setdefault(position, []).append(respond(sent[index].data, qid=stray_id, **shape))
    stream = Stream()
    for position, index in enumerate(plan.order):
        for wire in strays.get(position, []):
            stream.add(Frame(encode_frame(wire), int.from_bytes(wire[:2], "big"), False))
        wire = respond(sent[index].data, **plan.answers[index])
        stream.add(Frame(encode_frame(wire), sent[index].qid, True))
    for wire in strays.get(len(plan.order), []):
        stream.add(Frame(encode_frame(wire), int.from_bytes(wire[:2], "big"), False))
    for index, shape in plan.duplicates:
        stream.add(Frame(encode_frame(respond(sent[index].data, **shape)), sent[index].qid, False))
    return stream


def expected_keepalive(frames: Sequence[Frame], offered: bool) -> float | None:
    """The keepalive timeout offered by the last delivered answer that offers one, or
    None after a delivered answer without the option when the queries offered it (RFC
    7828 section 3.2.2: the server does not support it, whatever came before)."""
    timeout = None
    for frame in frames:
        if not frame.first:
            continue
        data = None
        for option in dns.message.from_wire(frame.wire).options:
            if option.otype == KEEPALIVE:
                data = option.to_wire()
        if data is not None and len(data) == 2:
            timeout = int.from_bytes(data, "big") / 10
        elif data is None and offered:
            timeout = None
    return timeout


# -- whole connections: properties --------------------------------------------------------


@budget(50)
@given(plan=plans(), data=st.data())
def test_answers_in_any_order_and_any_chunking_reach_their_queries(
    plan: Plan, data: st.DataObject
) -> None:
    proto, sent = plan.connect()
    assert len({s.qid for s in sent}) == len(sent)
    for s in sent:  # an independent decoder reads each query back
        (wire,) = read_frames(s.data)
        assert int.from_bytes(wire[:2], "big") == s.qid
    stream = build_stream(plan, sent, data)
    by_id = {s.qid: s for s in sent}
    reads = split(stream.data, data.draw(cut_points(len(stream.data), stream.bounds)))
    for offset, chunk in reads:
        # Each read reports exactly the queries whose answer it completed, in order.
        done = [f.qid for f in stream.frames if f.first and offset < f.end <= offset + len(chunk)]
        assert proto.receive_data(chunk) == done
    assert proto.in_flight == 0
    assert proto.answered == len(sent)
    assert proto.unmatched == len(plan.strays) + len(plan.duplicates)
    assert proto.keepalive_timeout == expected_keepalive(stream.frames, plan.keepalive)
    for frame in stream.frames:
        if frame.first:
            value = proto.result(frame.qid)
            assert_same_message(value, frame.wire, frame.qid)
            check_answer(value, by_id[frame.qid])
    assert proto.receive_data(b"") == []
    assert proto.closed


CORRUPTIONS = ["flip", "truncate", "length", "short", "short-anywhere", "insert", "delete"]


@budget(100)
@given(plan=plans(max_queries=5), kind=st.sampled_from(CORRUPTIONS), data=st.data())
def test_a_corrupted_stream_answers_what_came_before_and_raises_only_protocol_error(
    plan: Plan, kind: str, data: st.DataObject
) -> None:
    proto, sent = plan.connect()
    by_id = {s.qid: s for s in sent}
    stream = build_stream(plan, sent, data)
    good = stream.data
    frame = data.draw(st.sampled_from(stream.frames))
    at = data.draw(st.integers(0, len(good) - 1))  # where the damage starts
    if kind == "flip":
        bad = bytearray(good)
        bad[at] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        bad = bytearray(good[:at])
    elif kind == "length":  # a length prefix that lies
        at = frame.start
        real = len(frame.data) - 2
        lie = data.draw(st.integers(0, 65535).filter(lambda n: n != real))
        bad = bytearray(good)
        struct.pack_into("!H", bad, at, lie)
    elif kind == "short":  # a frame too short for a DNS header, between two frames
        at = data.draw(st.sampled_from([*stream.bounds, len(good)]))
        length = data.draw(st.integers(0, 11))
        bad = bytearray(good[:at] + struct.pack("!H", length) + b"\x00" * length + good[at:])
    elif kind == "short-anywhere":
        bad = bytearray(good[:at] + b"\x00\x00" + good[at:])
    elif kind == "insert":
        bad = bytearray(good[:at] + data.draw(st.binary(min_size=1, max_size=30)) + good[at:])
    else:
        bad = bytearray(good[:at] + good[at + data.draw(st.integers(1, 40)) :])
    eof = kind == "truncate" or data.draw(st.booleans())

    raised: ProtocolError | None = None
    reported: list[int] = []
    unlisted = 0  # answers filed by the call that raised, which cannot list them
    for _, chunk in split(bytes(bad), data.draw(cut_points(len(bad), stream.bounds))):
        before = proto.answered
        try:
            ready = proto.receive_data(chunk)  # anything but ProtocolError fails the test
        except ProtocolError as exc:
            assert raised is None
            raised = exc
            assert proto.closed
            assert proto.in_flight == 0
            unlisted = proto.answered - before
            continue
        assert raised is None or ready == []
        reported += ready
    if eof:
        reported += proto.receive_data(b"")
    assert len(reported) == len(set(reported))
    assert set(reported) <= set(by_id)

    intact = {f.qid: f for f in stream.frames if f.first and f.end <= at}
    outcomes = {qid: outcome(proto, qid) for qid in by_id}
    for qid, (kind_, value) in outcomes.items():
        if qid in intact:
            # Everything before the damage was delivered exactly as sent.
            assert kind_ == "ok", value
            assert_same_message(value, intact[qid].wire, qid)
        if kind_ == "ok":
            check_answer(value, by_id[qid])
        elif kind_ == "lost":
            assert eof and raised is None
        elif kind_ == "pending":
            assert not eof and raised is None
    assert proto.answered == sum(k == "ok" for k, _ in outcomes.values())
    finished = {qid for qid, (k, _) in outcomes.items() if k != "pending"}
    assert set(reported) <= finished
    unreported = finished - set(reported)
    if raised is None:
        assert not unreported  # each query is listed by the call that finished it
    else:
        # The call that raised lists nothing: not the queries the broken frame failed,
        # nor those it answered (or failed for a bad answer) before that frame.
        assert sum(outcomes[qid][0] == "ok" for qid in unreported) == unlisted

    event(f"{kind}: {'ProtocolError' if raised else 'no framing error'}")
    if kind == "truncate":
        # A prefix of a valid stream: no framing error, and EOF says where it stopped.
        assert raised is None
        assert proto.answered == len(intact)
        inside = [f for f in stream.frames if f.start < at < f.end]
        if not inside:
            where = ""
        elif at == inside[0].start + 1:
            where = " inside a length prefix (1 of 2 octets)"
        else:
            f = inside[0]
            where = f" inside a message ({at - f.start - 2} of {len(f.data) - 2} octets)"
        for qid, (kind_, value) in outcomes.items():
            if qid not in intact:
                assert kind_ == "lost"
                assert value == (
                    f"the server closed the connection{where} before answering query {qid}"
                )
    elif kind == "short":
        # A frame shorter than a header is always a framing error, and every query not
        # answered before it fails with it.
        assert raised is not None
        assert "-octet frame" in str(raised)
        for qid, (kind_, value) in outcomes.items():
            if qid not in intact:
                assert kind_ == "protocol"
                assert f"(query {qid} was in flight)" in value


# -- answers built octet by octet, then damaged on purpose --------------------------------


@dataclass(frozen=True)
class Name:
    """A domain name to render: compressed against the question where a suffix matches."""

    labels: tuple[bytes, ...]  # without the root label
    compress: bool = True


# Owners that are not names but pointers placed relative to the record itself.
SELF, FORWARD, PAST_END, CHAIN_END = "self", "forward", "past-end", "chain-end"
Owner = Name | bytes | str


@dataclass(frozen=True)
class RR:
    owner: Owner
    rdtype: int
    rdata: tuple[bytes | Name, ...] = ()
    rdclass: int = 1
    ttl: int = 300
    rdlength_delta: int = 0  # a lying RDLENGTH
    chain: bool = False  # RDATA: a pointer to the previous chain record's, or the question


@dataclass(frozen=True)
class Raw:
    """A DNS message as sections of records, rendered by :meth:`to_wire` (not dnspython),
    so that it can be made wrong in every way a server could."""

    qid: int
    flags: int
    questions: tuple[tuple[Name | bytes, int, int], ...]
    sections: tuple[tuple[RR, ...], tuple[RR, ...], tuple[RR, ...]]
    count_delta: tuple[int, int, int, int] = (0, 0, 0, 0)

    def to_wire(self) -> bytes:
        out = bytearray(12)
        table: dict[tuple[bytes, ...], int] = {}  # name suffixes of the first question
        for i, (qname, rdtype, rdclass) in enumerate(self.questions):
            if i == 0 and isinstance(qname, Name):
                offset = len(out)
                for j, part in enumerate(qname.labels):
                    table.setdefault(qname.labels[j:], offset)
                    offset += 1 + len(part)
            out += self._name(qname, {}) + struct.pack("!HH", rdtype, rdclass)
        chain_end = 0x0C  # where the last chain record's RDATA is, at first the question
        for section in self.sections:
            for rr in section:
                here = len(out)
                if isinstance(rr.owner, str):
                    target = {
                        SELF: here,
                        FORWARD: here + 2,
                        PAST_END: 0x3FFF,
                        CHAIN_END: chain_end,
                    }[rr.owner]
                    out += struct.pack("!H", 0xC000 | target)
                else:
                    out += self._name(rr.owner, table)
                start = len(out) + 10
                if rr.chain:
                    rdata = struct.pack("!H", 0xC000 | chain_end)
                    chain_end = start
                else:
                    rdata = b"".join(self._name(p, table) for p in rr.rdata)
                rdlength = len(rdata) + rr.rdlength_delta
                out += struct.pack("!HHIH", rr.rdtype, rr.rdclass, rr.ttl, rdlength) + rdata
        counts = [len(self.questions), *map(len, self.sections)]
        counts = [max(0, c + d) for c, d in zip(counts, self.count_delta, strict=True)]
        struct.pack_into("!6H", out, 0, self.qid, self.flags, *counts)
        return bytes(out)

    @staticmethod
    def _name(name: Name | bytes, table: dict[tuple[bytes, ...], int]) -> bytes:
        if isinstance(name, bytes):
            return name
        labels = name.labels
        for i in range(len(labels)):
            if name.compress and labels[i:] in table:
                head = b"".join(bytes((len(x),)) + x for x in labels[:i])
                return head + struct.pack("!H", 0xC000 | table[labels[i:]])
        return b"".join(bytes((len(x),)) + x for x in labels) + b"\x00"

    def records(self) -> list[tuple[int, int, RR]]:
        return [
            (s, i, rr) for s, section in enumerate(self.sections) for i, rr in enumerate(section)
        ]

    def replace_rr(self, section: int, index: int, rr: RR | None) -> Raw:
        """A copy with record ``index`` of ``section`` replaced by ``rr`` (None: removed)."""
        rrs = list(self.sections[section])
        rrs[index : index + 1] = [rr] if rr is not None else []
        sections = list(self.sections)
        sections[section] = tuple(rrs)
        return replace(self, sections=tuple(sections))  # type: ignore[arg-type]

    def without_opt(self) -> Raw:
        raw = self
        for section, index, rr in reversed(self.records()):
            if rr.rdtype == OPT:
                raw = raw.replace_rr(section, index, None)
        return raw

    def add_rr(self, section: int, rr: RR, first: bool = False) -> Raw:
        rrs = (rr, *self.sections[section]) if first else (*self.sections[section], rr)
        sections = list(self.sections)
        sections[section] = rrs
        return replace(self, sections=tuple(sections))  # type: ignore[arg-type]


def opt_rr(options: Sequence[tuple[int, bytes]], do: bool = False, payload: int = 1232) -> RR:
    rdata = b"".join(struct.pack("!HH", code, len(v)) + v for code, v in options)
    return RR(b"\x00", OPT, (rdata,), rdclass=payload, ttl=0x8000 if do else 0)


def text_labels(text: str) -> tuple[bytes, ...]:
    return dns.name.from_text(text).labels[:-1]


@st.composite
def rdata_for(draw: st.DrawFn, rdtype: int) -> tuple[bytes | Name, ...]:
    """RDATA of ``rdtype`` that dnspython accepts, with names compressed or not."""
    compress = draw(st.booleans())
    some_name = st.sampled_from(
        [
            Name(text_labels(n), compress)
            for n in ("mx.example.", "ns1.example.com.", "example.com.")
        ]
    )
    if rdtype == A:
        return (draw(st.binary(min_size=4, max_size=4)),)
    if rdtype == AAAA:
        return (draw(st.binary(min_size=16, max_size=16)),)
    if rdtype == TXT:
        strings = draw(st.lists(st.binary(max_size=30), min_size=1, max_size=3))
        return (b"".join(bytes((len(x),)) + x for x in strings),)
    if rdtype == MX:
        return (struct.pack("!H", draw(st.integers(0, 65535))), draw(some_name))
    if rdtype in (NS, PTR, CNAME):
        return (draw(some_name),)
    if rdtype == SOA:
        return (draw(some_name), draw(some_name), draw(st.binary(min_size=20, max_size=20)))
    return (draw(st.binary(max_size=12)),)  # GENERIC: opaque


RCODE_CHOICES = [0, 0, 0, 3, 2, 5]  # NOERROR, NXDOMAIN, SERVFAIL, REFUSED


@st.composite
def raw_answers(draw: st.DrawFn, qname: dns.name.Name, rdtype: int) -> Raw:
    """A valid answer to (``qname``, ``rdtype``, IN), built octet by octet: records of the
    type asked (or a CNAME), an SOA, glue, and often an OPT RR with keepalive, padding
    or cookie options."""
    rcode = draw(st.sampled_from(RCODE_CHOICES))
    flags = 0x8000 | 0x0100 | 0x0080 | rcode | (0x0400 if draw(st.booleans()) else 0)
    owner = Name(qname.labels[:-1])
    answer: list[RR] = []
    answer_type = rdtype if rdtype in (A, AAAA, TXT, MX, NS, SOA, PTR, CNAME, GENERIC) else A
    if rcode == 0:
        if draw(st.booleans()) and rdtype != CNAME:
            target = Name(text_labels("www.example.net."))
            answer.append(RR(owner, CNAME, (target,)))
            owner = target
        for _ in range(draw(st.integers(0, 3))):
            answer.append(RR(owner, answer_type, draw(rdata_for(answer_type))))
        if draw(st.integers(0, 3)) == 0:  # a name sharing the question's suffix
            answer.append(RR(Name((b"www", *qname.labels[:-1])), A, (b"\xc0\x00\x02\x01",)))
    authority: list[RR] = []
    if rcode == 3 or draw(st.integers(0, 3)) == 0:
        authority.append(RR(Name(text_labels("example.")), SOA, draw(rdata_for(SOA))))
    additional: list[RR] = []
    if draw(st.integers(0, 3)) == 0:
        additional.append(RR(Name(text_labels("mx.example.")), AAAA, draw(rdata_for(AAAA))))
    if draw(st.integers(0, 4)) == 0:
        additional.append(RR(owner, GENERIC, draw(rdata_for(GENERIC))))
    if draw(st.integers(0, 3)) > 0:
        options = []
        if draw(st.booleans()):
            options.append((KEEPALIVE, draw(st.sampled_from([b"", b"\x00\x00", b"\x01\x2c"]))))
        if draw(st.integers(0, 3)) == 0:
            options.append((COOKIE, draw(st.binary(min_size=8, max_size=8)) * 2))
        if draw(st.booleans()):
            options.append((PADDING, bytes(draw(st.integers(0, 300)))))
        additional.append(opt_rr(options, do=draw(st.booleans())))
    return Raw(
        qid=0,
        flags=flags,
        questions=((Name(qname.labels[:-1]), rdtype, 1),),
        sections=(tuple(answer), tuple(authority), tuple(additional)),
    )


def swap_case(labels: tuple[bytes, ...]) -> tuple[bytes, ...]:
    return tuple(x.swapcase() for x in labels)


def other_labels(labels: tuple[bytes, ...]) -> tuple[bytes, ...]:
    return (b"other", *labels)


def long_labels(total: int) -> tuple[bytes, ...]:
    """Labels whose uncompressed name (root included) is ``total`` octets long."""
    labels = []
    left = total - 1
    while left > 0:
        size = min(63, left - 1)
        if left - (size + 1) == 1:  # never leave a lone octet: it cannot be a label
            size -= 1
        labels.append(b"x" * size)
        left -= size + 1
    return tuple(labels)


# Structured damage, and what each does to a valid answer on its own: "ok", "unmatched",
# "error:<text in the ProtocolError>", or None where only the two paths' agreement is
# checked (the verdict is dnspython's to give).
MUTATIONS: dict[str, str | None] = {
    "qr-cleared": "error:no QR bit",
    "other-id": "unmatched",
    "other-qname": "error:does not match: question",
    "qname-case": "ok",
    "other-qtype": "error:does not match: question",
    "other-qclass": "error:does not match: question",
    "no-question": None,  # decided by the RCODE, below
    "two-questions": "error:2 questions",
    "same-question-twice": None,  # dnspython decides (2.9 counts two questions)
    "qdcount-0": None,
    "qdcount-2": None,
    "opcode": "error:",
    "tc": "ok",
    "pointer-to-itself": "error:malformed",
    "pointer-forward": "error:malformed",
    "pointer-past-end": "error:malformed",
    "pointer-chain-16": "ok",
    # dnspython 2.7+ follows at most 16 pointers for a name, older ones any number
    "pointer-chain-17": "error:malformed" if CHAIN_LIMIT else "ok",
    "label-type": "error:malformed",
    "bad-rdata": "error:malformed",
    "name-255": "ok",
    "name-256": "error:malformed",
    "name-256-compressed": "error:malformed",
    "rdlength-last": "error:malformed",
    "rdlength-any": None,
    "count-up": "error:malformed",
    "count-down": "error:malformed",
    "opt-in-answer": "error:malformed",
    "opt-in-authority": "error:malformed",
    "opt-twice": "error:malformed",
    "opt-owner": "error:malformed",
    "keepalive-length": None,
}
BYTE_EDITS = ["flip", "set", "cut", "insert", "delete"]
BAD_RDATA = [
    (A, b"\x00" * 3),
    (A, b"\x00" * 5),
    (AAAA, b"\x00" * 15),
    (TXT, b""),  # no string at all
    (TXT, b"\x05abc"),  # a string longer than the RDATA
    (MX, b"\x00\x01"),  # no exchange
    (CNAME, b"\x03abc"),  # a name without its end
    (SOA, b"\x00\x00" + b"\x00" * 19),  # a field short
]


def mutate(raw: Raw, kind: str, data: st.DataObject, ids: set[int]) -> Raw:
    """Apply one structured mutation; ``ids`` are those another ID must avoid."""
    draw = data.draw
    qname, qtype, qclass = raw.questions[0] if raw.questions else (Name(()), A, 1)
    records = raw.records()
    if kind == "qr-cleared":
        return replace(raw, flags=raw.flags & ~0x8000)
    if kind == "other-id":
        return replace(raw, qid=draw(st.integers(0, 65535).filter(lambda i: i not in ids)))
    if kind in ("other-qname", "qname-case", "other-qtype", "other-qclass"):
        if not isinstance(qname, Name):  # no question, or one already made unreadable
            return raw
        if kind == "other-qname":
            qname = Name(other_labels(qname.labels))
        elif kind == "qname-case":
            qname = Name(swap_case(qname.labels))
        elif kind == "other-qtype":
            qtype = draw(st.integers(0, 65535).filter(lambda t: t != qtype))
        else:
            qclass = draw(st.integers(0, 65535).filter(lambda c: c != qclass))
        return replace(raw, questions=((qname, qtype, qclass), *raw.questions[1:]))
    if kind == "no-question":
        return replace(raw, questions=())
    if kind == "two-questions":
        return replace(raw, questions=(*raw.questions, (Name(text_labels("b.example.")), A, 1)))
    if kind == "same-question-twice" and raw.questions:
        return replace(raw, questions=(*raw.questions, raw.questions[0]))
    if kind in ("qdcount-0", "qdcount-2"):
        delta = -len(raw.questions) if kind == "qdcount-0" else 2 - len(raw.questions)
        return replace(raw, count_delta=(delta, 0, 0, 0))
    if kind == "opcode":
        opcode = draw(st.integers(1, 15))
        return replace(raw, flags=(raw.flags & ~0x7800) | opcode << 11)
    if kind == "tc":
        return replace(raw, flags=raw.flags | 0x0200)
    if kind.startswith("pointer-"):
        section = draw(st.integers(0, 2))
        if kind.startswith("pointer-chain"):
            # NS records, each naming the previous one's RDATA (a name that is a bare
            # pointer), then an owner that takes ``hops`` pointers to reach the question
            hops = int(kind.rsplit("-", 1)[1])
            for _ in range(hops - 1):
                raw = raw.add_rr(section, RR(qname, NS, chain=True))
            return raw.add_rr(section, RR(CHAIN_END, A, (b"\x00" * 4,)))
        owner = {"pointer-to-itself": SELF, "pointer-forward": FORWARD}.get(kind, PAST_END)
        return raw.add_rr(section, RR(owner, A, (b"\x00" * 4,)), first=draw(st.booleans()))
    if kind == "bad-rdata":  # RDATA its type's parser rejects
        rdtype, rdata = draw(st.sampled_from(BAD_RDATA))
        return raw.add_rr(draw(st.integers(0, 2)), RR(qname, rdtype, (rdata,)))
    if kind == "label-type":
        bad = bytes((draw(st.integers(64, 191)),)) + b"abc\x00"
        if raw.questions and draw(st.booleans()):
            return replace(raw, questions=((bad, qtype, qclass), *raw.questions[1:]))
        return raw.add_rr(draw(st.integers(0, 2)), RR(bad, A, (b"\x00" * 4,)))
    if kind in ("name-255", "name-256"):
        owner = Name(long_labels(int(kind[-3:])))
        return raw.add_rr(draw(st.integers(0, 2)), RR(owner, A, (b"\x00" * 4,)))
    if kind == "name-256-compressed" and isinstance(qname, Name) and raw.questions:
        tail = sum(len(x) + 1 for x in qname.labels) + 1
        head = long_labels(256 - tail + 1) if tail < 254 else (b"ab",)
        owner = Name((*head, *qname.labels))
        return raw.add_rr(draw(st.integers(0, 2)), RR(owner, A, (b"\x00" * 4,)))
    if kind.startswith("rdlength") and records:
        section, index, rr = (
            records[-1] if kind == "rdlength-last" else draw(st.sampled_from(records))
        )
        # RDATA is at least this long (a compressed name takes 2 octets or more)
        floor = 2 * rr.chain + sum(len(p) if isinstance(p, bytes) else 2 for p in rr.rdata)
        delta = draw(st.integers(1, 10)) * draw(st.sampled_from([1, -1]))
        delta = max(delta, -floor) or 1
        return raw.replace_rr(section, index, replace(rr, rdlength_delta=delta))
    if kind.startswith("count-") and records:
        section = draw(st.sampled_from(sorted({s for s, _, _ in records})))
        delta = [0, 0, 0, 0]
        delta[1 + section] = 1 if kind == "count-up" else -1
        return replace(raw, count_delta=tuple(delta))  # type: ignore[arg-type]
    if kind.startswith("opt-"):
        opt = next((rr for _, _, rr in records if rr.rdtype == OPT), None) or opt_rr([])
        without = raw.without_opt()
        if kind == "opt-in-answer":
            return without.add_rr(0, opt)
        if kind == "opt-in-authority":
            return without.add_rr(1, opt)
        if kind == "opt-twice":
            return without.add_rr(2, opt).add_rr(2, opt)
        return without.add_rr(2, replace(opt, owner=Name((b"x",))))
    if kind == "keepalive-length":  # RFC 7828 allows 0 or 2 octets
        size = draw(st.sampled_from([1, 3, 4]))
        return raw.without_opt().add_rr(2, opt_rr([(KEEPALIVE, b"\x01" * size)]))
    return raw  # a mutation that does not apply to this message


def edit(message: Raw | bytes, kind: str, data: st.DataObject) -> bytes:
    """An octet edit of the rendered message (never of its ID)."""
    draw = data.draw
    wire = bytearray(message.to_wire() if isinstance(message, Raw) else message)
    if len(wire) <= 12:
        return bytes(wire)
    if kind == "flip":
        wire[draw(st.integers(2, len(wire) - 1))] ^= 1 << draw(st.integers(0, 7))
    elif kind == "set":
        wire[draw(st.integers(2, len(wire) - 1))] = draw(
            st.sampled_from([0, 1, 2, 63, 64, 0xBF, 0xC0, 0xC1, 0xFF])
        )
    elif kind == "cut":
        del wire[draw(st.integers(12, len(wire))) :]
    elif kind == "insert":
        at = draw(st.integers(12, len(wire)))
        wire[at:at] = draw(st.binary(min_size=1, max_size=8))
    elif kind == "delete":
        at = draw(st.integers(12, len(wire) - 1))
        del wire[at : at + draw(st.integers(1, 8))]
    return bytes(wire)


def verdicts(qname: dns.name.Name, rdtype: int, body: bytes, qid: int) -> tuple[Any, Any]:
    """What the lean path and the full path make of the answer ``body`` (its ID already
    set) to a query for (``qname``, ``rdtype``, IN) sent with ID ``qid`` on each."""
    lean = DoTProtocol(padding=0, keepalive=True)
    full = DoTProtocol(padding=0, keepalive=True)
    with fuzz.fixed_ids([qid]):
        lean_id, _ = lean.send_question(qname, rdtype, 1)
    with fuzz.fixed_ids([qid]):
        full_id, _ = full.send_query(make_query(qname, rdtype))
    assert lean_id == full_id == qid
    results = []
    for proto in (lean, full):
        assert proto.receive_data(encode_frame(body)) in ([], [qid])
        kind, value = outcome(proto, qid)
        if kind == "pending":
            assert proto.unmatched == 1
            kind = "unmatched"
        results.append((kind, value, proto.keepalive_timeout))
    return results[0], results[1]


def judge(
    qname: dns.name.Name, rdtype: int, kinds: Sequence[str], data: st.DataObject
) -> tuple[Raw, bytes, Any, Any]:
    """Build an answer, damage it with ``kinds`` in turn, and have both paths judge it.
    Asserts that they agree; returns the answer, the damaged bytes and both verdicts."""
    qid = data.draw(st.integers(0, 65535))
    raw = replace(data.draw(raw_answers(qname, rdtype)), qid=qid)
    damaged: Raw | bytes = raw
    for kind in kinds:
        if kind in BYTE_EDITS:
            damaged = edit(damaged, kind, data)
        elif isinstance(damaged, Raw):  # structured damage, until the first octet edit
            damaged = mutate(damaged, kind, data, {qid})
    body = damaged.to_wire() if isinstance(damaged, Raw) else damaged
    body = body.ljust(12, b"\x00")  # the framing rejects anything shorter
    lean, full = verdicts(qname, rdtype, body, qid)
    # The lean check from the bytes gives dnspython's verdict, word for word.
    assert lean[0] == full[0], (lean, full)
    assert lean[2] == full[2]  # the keepalive timeout learnt
    if lean[0] == "ok":
        assert lean[1] == body
        assert_same_message(full[1], body, qid)
        sent = fuzz.Sent(qid, True, qname, rdtype, b"")
        check_answer(lean[1], sent)
        check_answer(full[1], replace(sent, lean=False))
    elif lean[0] == "protocol":
        assert lean[1] == full[1]
    check_summary(body)
    return raw, body, lean, full


@budget(150)
@given(
    qname=names,
    rdtype=query_types,
    kinds=st.lists(st.sampled_from([*MUTATIONS, *BYTE_EDITS]), max_size=4),
    data=st.data(),
)
def test_damaged_answers_get_the_same_verdict_on_both_paths(
    qname: dns.name.Name, rdtype: int, kinds: list[str], data: st.DataObject
) -> None:
    _, _, lean, _ = judge(qname, rdtype, kinds, data)
    event(f"{len(kinds)} kinds of damage: {lean[0]}")
    if not kinds:
        assert lean[0] == "ok", lean  # the undamaged answers are valid


KNOWN_OUTCOMES = [k for k, v in MUTATIONS.items() if v is not None or k == "no-question"]


@pytest.mark.parametrize("kind", KNOWN_OUTCOMES)
@budget(5)
@given(qname=names, rdtype=query_types, data=st.data())
def test_each_kind_of_damage_has_its_outcome(
    kind: str, qname: dns.name.Name, rdtype: int, data: st.DataObject
) -> None:
    raw, body, lean, full = judge(qname, rdtype, [kind], data)
    expected = MUTATIONS[kind]
    if kind == "no-question":
        expected = "ok" if raw.flags & 0xF in QUESTIONLESS else "error:no question section"
    # Only answers the damage applies to (one with a record to damage, say).
    assume(body != raw.to_wire() or kind == "qname-case")
    if expected == "ok":
        assert lean[0] == "ok", lean
        if kind == "tc":
            assert full[1].flags & dns.flags.TC  # delivered as it came, TC bit and all
    elif expected == "unmatched":
        assert lean[0] == "unmatched"
    else:
        assert expected is not None
        assert lean[0] == "protocol", lean
        assert expected.removeprefix("error:") in lean[1]


def check_summary(body: bytes) -> None:
    """Response.rcode and .question read the bytes with wire_summary(): where it is sure,
    it must say what dnspython says, for any message dnspython accepts."""
    try:
        message = dns.message.from_wire(body)
    except Exception:
        return
    summary = wire_summary(body)
    if summary is None:
        return
    rcode, question = summary
    assert rcode == message.rcode()
    if question is None:
        assert not message.question
    else:
        assert len(message.question) == 1
        assert question[0].labels == message.question[0].name.labels
        assert question[1] == message.question[0].rdtype


# -- round trips: what goes out reads back as asked ---------------------------------------

any_query_type = st.integers(0, 65535).filter(
    lambda t: not dns.rdatatype.is_metatype(t) or t == dns.rdatatype.ANY
)


def read_options(rdata: bytes) -> list[tuple[int, bytes]]:
    options = []
    while rdata:
        code, length = struct.unpack_from("!HH", rdata)
        assert len(rdata) >= 4 + length
        options.append((code, rdata[4 : 4 + length]))
        rdata = rdata[4 + length :]
    return options


@budget(100)
@given(
    qname=names,
    rdtype=any_query_type,
    rdclass=st.integers(0, 65535),
    dnssec=st.booleans(),
    padding=st.sampled_from([0, 1, 7, 128, 468, 512]),
    keepalive=st.booleans(),
    lean=st.booleans(),
)
def test_queries_read_back_as_asked(
    qname: dns.name.Name,
    rdtype: int,
    rdclass: int,
    dnssec: bool,
    padding: int,
    keepalive: bool,
    lean: bool,
) -> None:
    """Decoded octet by octet (not by dnspython): header, question, then one OPT RR with
    payload 1232, the DO bit as asked, an empty keepalive option if enabled, and padding
    to the next multiple of the block (RFC 8467), last."""
    proto = DoTProtocol(padding=padding, keepalive=keepalive)
    if lean:
        qid, data = proto.send_question(qname, rdtype, rdclass, dnssec=dnssec)
    else:
        qid, data = proto.send_query(make_query(qname, rdtype, rdclass, dnssec=dnssec))
    (wire,) = read_frames(data)
    assert struct.unpack_from("!6H", wire) == (qid, 0x0100, 1, 0, 0, 1)  # RD; 1 question, 1 RR
    name = b"".join(bytes((len(x),)) + x for x in qname.labels)  # uncompressed, case kept
    pos = 12 + len(name)
    assert wire[12:pos] == name
    assert struct.unpack_from("!HH", wire, pos) == (rdtype, rdclass)
    pos += 4
    assert wire[pos] == 0  # the OPT RR is owned by the root
    rrtype, payload, ttl, rdlength = struct.unpack_from("!HHIH", wire, pos + 1)
    assert (rrtype, payload, ttl) == (OPT, 1232, 0x8000 if dnssec else 0)
    assert pos + 11 + rdlength == len(wire)
    options = read_options(wire[pos + 11 :])
    codes = [code for code, _ in options]
    assert codes == [KEEPALIVE] * keepalive + [PADDING] * bool(padding)
    if keepalive:
        assert options[0][1] == b""
    if padding:
        fill = options[-1][1]
        assert fill == bytes(len(fill))
        assert len(wire) % padding == 0
        assert len(fill) < padding  # the closest multiple, not a larger one
    message = dns.message.from_wire(wire)  # and dnspython reads the same
    assert message.id == qid
    assert (message.question[0].name, message.question[0].rdtype) == (qname, rdtype)
    assert message.question[0].rdclass == rdclass
    assert message.edns == 0
    assert bool(message.ednsflags & dns.flags.DO) == dnssec


def _big_rrset(size: int) -> dns.rrset.RRset:
    """TXT records with about ``size`` octets of RDATA."""
    rrset = dns.rrset.RRset(dns.name.from_text("big.example."), 1, TXT)
    for i in range(size // 256 + 1):
        rrset.add(dns.rdata.from_wire(1, TXT, bytes((255,)) + bytes((i % 256,)) * 255, 0, 256))
    return rrset


@st.composite
def callers_queries(draw: st.DrawFn) -> dns.message.Message:
    """A query as a caller may build it: any flags, with or without EDNS, options of all
    kinds (a padding option of its own, a keepalive option), and sometimes big."""
    message = dns.message.make_query(draw(names), draw(query_types), use_edns=False)
    message.id = draw(st.integers(0, 65535))
    message.flags = dns.flags.Flag(
        draw(st.sampled_from([0, 0x0100, 0x0110, 0x0120, 0x0010, 0x0400 | 0x0100]))
    )
    if draw(st.booleans()):
        message.additional.append(_big_rrset(draw(st.sampled_from([1000, 3000, 20000]))))
    if draw(st.integers(0, 3)) > 0:
        option = st.sampled_from(
            [
                dns.edns.CookieOption(b"\x01" * 8, b""),
                dns.edns.ECSOption("192.0.2.0", 24),
                dns.edns.GenericOption(65001, b"private"),
                dns.edns.GenericOption(KEEPALIVE, b""),
                dns.edns.GenericOption(PADDING, b"\x00" * 3),
            ]
        )
        message.use_edns(
            0,
            draw(st.sampled_from([0, dns.flags.DO])),
            draw(st.sampled_from([1232, 4096, 65535])),
            options=draw(st.lists(option, max_size=3, unique_by=lambda o: o.otype)),
            pad=draw(st.sampled_from([0, 0, 128])),
        )
    return message


@budget(80)
@given(
    message=callers_queries(),
    padding=st.sampled_from([0, 128, 468]),
    keepalive=st.booleans(),
)
def test_send_query_sends_the_callers_message_with_our_options(
    message: dns.message.Message, padding: int, keepalive: bool
) -> None:
    """The caller's question, flags, EDNS flags and options go out unchanged, the ID
    replaced, a keepalive option added if enabled and missing, padding replaced by ours;
    the caller's object is not touched. Any query that fits a frame goes out, whatever
    its size (the EDNS payload is about answers over UDP, RFC 6891 section 6.2.3)."""
    before = message.to_wire(want_shuffle=False, max_size=65535)
    before_id, before_options = message.id, list(message.options)
    proto = DoTProtocol(padding=padding, keepalive=keepalive)
    qid, data = proto.send_query(message)
    assert message.id == before_id
    assert list(message.options) == before_options
    assert message.to_wire(want_shuffle=False, max_size=65535) == before

    (wire,) = read_frames(data)
    sent = dns.message.from_wire(wire)
    assert sent.id == qid
    assert sent.flags == message.flags
    assert sent.question == message.question
    assert sent.additional == message.additional
    caller_codes = [o.otype for o in message.options]
    if message.edns < 0 and not padding and not keepalive:
        assert sent.edns == -1
        return
    assert sent.edns == 0
    assert sent.ednsflags == (message.ednsflags if message.edns >= 0 else 0)
    assert sent.payload == (message.payload if message.edns >= 0 else 1232)
    expected = [c for c in caller_codes if c != PADDING or not padding]
    if keepalive and KEEPALIVE not in caller_codes:
        expected.append(KEEPALIVE)
    codes = [o.otype for o in sent.options]
    if padding:
        assert codes == [*expected, PADDING]
        assert len(wire) % padding == 0
    else:
        assert [c for c in codes if c != PADDING] == [c for c in expected if c != PADDING]
        assert codes.count(PADDING) == caller_codes.count(PADDING) + bool(message.pad)


def test_a_big_query_without_edns_goes_out_padded() -> None:
    """Regression: padding (or keepalive) gives a query without EDNS an OPT RR, and with
    it dnspython's limit of the EDNS payload (1232) on the message rendered, so a
    2,158-octet query that went out unpadded failed with ValueError when padded."""
    message = dns.message.make_query("example.com", "A", use_edns=False)
    message.additional.append(_big_rrset(2000))
    for padding, keepalive in ((0, False), (128, False), (0, True)):
        qid, data = DoTProtocol(padding=padding, keepalive=keepalive).send_query(message)
        (wire,) = read_frames(data)
        assert len(wire) > 2000
        assert dns.message.from_wire(wire).additional == message.additional


# -- sizes at the edges of the two-octet length prefix ------------------------------------

EDGE_SIZES = [12, 13, 255, 256, 257, 4095, 4096, 65279, 65280, 65534, 65535]


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_frames_at_the_edges_of_the_length_prefix(size: int) -> None:
    message = struct.pack("!H", size) + bytes(i % 251 for i in range(size - 2))
    framed = encode_frame(message)
    assert framed[:2] == size.to_bytes(2, "big")
    assert read_frames(framed) == [message]
    stream = framed + encode_frame(bytes(12))
    end = len(framed)
    # one read; the prefix split; reads ending just before, at and after the frame's end
    for cuts in ([], [1], [2], [1, 2, 3], [end - 1], [end], [end + 1], [end - 1, end + 1]):
        decoder = FrameDecoder()
        messages = []
        for _, chunk in split(stream, cuts):
            messages += decoder.feed(chunk)
        assert messages == [message, bytes(12)]
        assert decoder.buffered == 0
    decoder = FrameDecoder()  # one octet per read
    messages = []
    for i in range(len(stream)):
        messages += decoder.feed(stream[i : i + 1])
        if i == 0:
            assert decoder.describe_partial() == "inside a length prefix (1 of 2 octets)"
        elif i == end - 1:
            assert messages == [message]
    assert messages == [message, bytes(12)]


def padded_answer(data: bytes, size: int) -> bytes:
    """An answer to the framed query ``data`` padded to exactly ``size`` octets."""
    response = dns.message.make_response(dns.message.from_wire(data[2:]), pad=0)
    response.answer.append(
        dns.rrset.from_text(response.question[0].name, 300, "IN", "A", "192.0.2.1")
    )
    response.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(PADDING, b"")])
    fill = size - len(response.to_wire())
    response.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(PADDING, bytes(fill))])
    wire = response.to_wire(max_size=65535)
    assert len(wire) == size
    return wire


@pytest.mark.parametrize("lean", [True, False])
@pytest.mark.parametrize("size", [255, 256, 65534, 65535])
def test_answers_at_the_largest_sizes_reach_both_paths(lean: bool, size: int) -> None:
    proto = DoTProtocol()
    qname = dns.name.from_text("example.com.")
    qid, data = (
        proto.send_question(qname, A, 1) if lean else proto.send_query(make_query(qname, A))
    )
    wire = padded_answer(data, size)
    stream = encode_frame(wire)
    assert stream[:2] == size.to_bytes(2, "big")
    for offset, chunk in split(stream, [1, 2, *range(3, len(stream), 4096)]):
        ready = proto.receive_data(chunk)
        assert ready == ([qid] if offset + len(chunk) == len(stream) else [])
    assert_same_message(proto.result(qid), wire, qid)


@pytest.mark.parametrize("lean", [True, False])
@pytest.mark.parametrize("rcode", [dns.rcode.REFUSED, dns.rcode.NOERROR])
def test_a_header_alone_is_the_smallest_answer(lean: bool, rcode: int) -> None:
    proto = DoTProtocol()
    qname = dns.name.from_text("example.com.")
    qid, _ = proto.send_question(qname, A, 1) if lean else proto.send_query(make_query(qname))
    wire = struct.pack("!6H", qid, 0x8180 | rcode, 0, 0, 0, 0)
    assert proto.receive_data(encode_frame(wire)) == [qid]
    if rcode == dns.rcode.REFUSED:
        assert_same_message(proto.result(qid), wire, qid)
    else:
        with pytest.raises(ProtocolError, match="no question section"):
            proto.result(qid)


def query_of_size(size: int) -> dns.message.Message:
    """A query without EDNS of exactly ``size`` octets (TXT records in additional)."""
    message = dns.message.make_query("example.com", "A", use_edns=False)
    rrset = dns.rrset.RRset(dns.name.from_text("big.example."), 1, TXT)
    message.additional.append(rrset)

    def txt(i: int, length: int) -> dns.rdata.Rdata:
        return dns.rdata.from_wire(1, TXT, bytes((length,)) + bytes((i,)) * length, 0, length + 1)

    rrset.add(txt(0, 0))
    # every further record costs a 2-octet owner (compressed), 10 octets, 1 + its string
    room = size - len(message.to_wire()) - 13
    while room > 255:
        length = min(255, room - 13)
        rrset.add(txt(len(rrset), length))
        room -= 13 + length
    rrset.add(txt(len(rrset), room))
    assert len(message.to_wire()) == size
    return message


def test_a_query_of_65535_octets_goes_out_and_a_bigger_one_does_not() -> None:
    message = query_of_size(65535)
    proto = DoTProtocol(padding=0)
    with fuzz.fixed_ids([7, 8, 8, 9]):
        qid, data = proto.send_query(message)
        assert qid == 7
        assert data[:2] == b"\xff\xff"
        (wire,) = read_frames(data)
        assert dns.message.from_wire(wire).additional == message.additional
        message.additional[0].add(dns.rdata.from_wire(1, TXT, b"\x01z", 0, 2))
        with pytest.raises(ValueError, match="too big"):
            proto.send_query(message)
        # The ID drawn for the query that failed is free again.
        assert proto.send_query(make_query("example.com"))[0] == 8
    assert proto.in_flight == 2


def test_padding_up_to_the_largest_block_multiple_that_fits() -> None:
    """65,408 is the largest multiple of 128 that fits a frame: a query padded to it
    goes out; one that would need 65,536 does not (it cannot be padded)."""
    proto = DoTProtocol(padding=128)
    _, data = proto.send_query(query_of_size(65393))  # + 11 (OPT) + 4 (option) = 65408
    assert len(data) - 2 == 65408
    with pytest.raises(ValueError, match="too big"):
        proto.send_query(query_of_size(65394))
    assert proto.in_flight == 1


# -- the fuzz target ----------------------------------------------------------------------


def test_fuzz_target_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CI run: two seconds of the Hypothesis engine (atheris is not needed)."""
    argv = ["--engine", "hypothesis", "--seconds", "2", "--seed", "0"]
    assert fuzz.main([*argv, "--artifacts", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no failure" in out
    assert int(out.split("hypothesis: ", 1)[1].split(" runs", 1)[0]) >= 20
    assert list(tmp_path.iterdir()) == []


def test_fuzz_target_seed_corpus_and_replay(tmp_path: Path) -> None:
    assert fuzz.main(["--make-corpus", str(tmp_path)]) == 0
    seeds = sorted(tmp_path.iterdir())
    assert len(seeds) == len(fuzz.seed_inputs()) > 0
    for seed in seeds:
        assert fuzz.main(["--replay", str(seed)]) == 0
        given_input = fuzz.Input.decode(seed.read_bytes())
        assert fuzz.Input.decode(given_input.encode()) == given_input
        # the seeds answer every query: a fuzzer starts from inputs that go deep
        proto, sent = given_input.connect()
        for chunk in given_input.chunks():
            proto.receive_data(chunk)
        assert proto.answered == len(sent) == given_input.count


@pytest.mark.parametrize("bug", ["escaping-error", "unreported-answer", "accepts-anything"])
def test_fuzz_target_finds_planted_bugs(
    bug: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The target's checks can fail: each planted bug is found within seconds, saved,
    and its input replays the failure."""
    if bug == "escaping-error":
        skim = fuzz._protocol._skim

        def leaky_skim(wire: bytes, pos: int, strict: bool) -> Any:
            if len(wire) % 5 == 0:
                raise IndexError("planted")
            return skim(wire, pos, strict)

        monkeypatch.setattr(fuzz._protocol, "_skim", leaky_skim)
    elif bug == "unreported-answer":
        receive = DoTProtocol.receive_data

        def forgetful(self: DoTProtocol, data: bytes) -> list[int]:
            return receive(self, data)[1:]

        monkeypatch.setattr(DoTProtocol, "receive_data", forgetful)
    else:
        monkeypatch.setattr(DoTProtocol, "_lean_accept", lambda self, wire, template: True)
    argv = ["--engine", "hypothesis", "--seconds", "20", "--seed", "3"]
    assert fuzz.main([*argv, "--artifacts", str(tmp_path)]) == 1
    (crash,) = tmp_path.iterdir()
    assert "FAILED" in capsys.readouterr().err
    with pytest.raises((IndexError, AssertionError, dns.exception.DNSException)):
        fuzz.TestOneInput(crash.read_bytes())
