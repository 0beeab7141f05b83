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
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from dotclient import ConnectionLost, ProtocolError
from dotclient._protocol import DoTProtocol, encode_frame, make_query

SCALE = max(1, int(os.environ.get("DOTCLIENT_FUZZ_SCALE", "1")))


def budget(examples: int) -> settings:
    return settings(max_examples=examples * SCALE, deadline=None)


def _load_fuzz_target() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "fuzz" / "fuzz_protocol.py"
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


def expected_keepalive(frames: Sequence[Frame]) -> float | None:
    """The keepalive timeout offered by the last delivered answer that offers one."""
    timeout = None
    for frame in frames:
        if not frame.first:
            continue
        for option in dns.message.from_wire(frame.wire).options:
            if option.otype == KEEPALIVE and len(option.to_wire()) == 2:
                timeout = int.from_bytes(option.to_wire(), "big") / 10
    return timeout


# -- whole connections: properties --------------------------------------------------------


@budget(80)
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
    assert proto.keepalive_timeout == expected_keepalive(stream.frames)
    for frame in stream.frames:
        if frame.first:
            value = proto.result(frame.qid)
            assert_same_message(value, frame.wire, frame.qid)
            check_answer(value, by_id[frame.qid])
    assert proto.receive_data(b"") == []
    assert proto.closed


CORRUPTIONS = ["flip", "truncate", "length", "short", "short-anywhere", "insert", "delete"]


@budget(150)
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
