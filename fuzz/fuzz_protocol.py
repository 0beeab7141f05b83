#!/usr/bin/env python3
"""A fuzz target for dotclient's sans-I/O core: bytes from a "server" into DoTProtocol.

Each input is one connection: a 3-octet header says how many queries are in flight (1 to
8, each sent with ``send_question`` or ``send_query``), the padding and keepalive
settings, how the stream is cut into reads and whether it ends with EOF; then come the
queries' IDs, then the bytes the server sent. :func:`TestOneInput` feeds them to the
protocol and checks that only :class:`ProtocolError` ever escapes ``receive_data``, that
every query ends with a valid answer to its own question, ``ProtocolError``,
``ConnectionLost`` or (before EOF) nothing yet, and that the counters add up.

Run it for as long as you like (see ``fuzz/README.md``)::

    python fuzz/fuzz_protocol.py --seconds 600        # atheris if installed, else Hypothesis
    python fuzz/fuzz_protocol.py --engine hypothesis --runs 100000 --seed 7
    python fuzz/fuzz_protocol.py --replay crash-1a2b3c  # re-run one failing input

Without atheris, Hypothesis' ``fuzz_one_input`` turns random bytes into structured
inputs (valid answers, mutated answers, stray IDs, broken frames, garbage), so random
bytes reach the validation code instead of dying in the framing.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import functools
import hashlib
import importlib.util
import random
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

if importlib.util.find_spec("dotclient") is None:  # a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import dns.edns  # noqa: E402
import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.opcode  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.rrset  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dotclient import ConnectionLost, ProtocolError, _protocol  # noqa: E402
from dotclient._framing import encode_frame  # noqa: E402
from dotclient._protocol import DoTProtocol  # noqa: E402
from dotclient._query import make_query  # noqa: E402
from dotclient._wire import wire_summary  # noqa: E402

__all__ = [
    "QUESTIONS",
    "Input",
    "Sent",
    "TestOneInput",
    "check_answer",
    "fixed_ids",
    "fuzz_inputs",
    "main",
    "respond",
    "seed_inputs",
    "send_all",
]

A, AAAA, NS, SOA, PTR, MX, TXT = (
    int(dns.rdatatype.A),
    int(dns.rdatatype.AAAA),
    int(dns.rdatatype.NS),
    int(dns.rdatatype.SOA),
    int(dns.rdatatype.PTR),
    int(dns.rdatatype.MX),
    int(dns.rdatatype.TXT),
)
#: Query i asks QUESTIONS[i]: (name, type, DO bit). The first and fifth are the same
#: question, so an answer can be right for two queries in flight.
QUESTIONS: tuple[tuple[str, int, bool], ...] = (
    ("example.com.", A, False),
    ("Example.NET.", AAAA, True),
    ("a.b.c.example.", TXT, False),
    ("mail.example.", MX, False),
    ("example.com.", A, False),
    (".", NS, True),
    ("x" * 63 + ".example.", SOA, False),
    ("4.3.2.1.in-addr.arpa.", PTR, False),
)
PADDINGS = (0, 128, 468, 1)
#: Responses that may come without a question (dnspython's is_response rule).
QUESTIONLESS = frozenset(
    {dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NOTIMP, dns.rcode.REFUSED}
)
# Record data in presentation format, by type; {i} numbers the records.
_RDATA = {
    A: "192.0.2.{i}",
    AAAA: "2001:db8::{i}",
    TXT: '"v={i}" ""',
    MX: "{i} mx{i}.example.",
    NS: "ns{i}.example.",
    SOA: "ns.example. host.example. {i} 7200 900 1209600 300",
    PTR: "host{i}.example.",
}
_HEADER = 3


# -- the queries ---------------------------------------------------------------------------


class _FixedSecrets:
    """Stands in for the ``secrets`` module so that query IDs come from the input: the
    protocol's own allocation (retrying IDs in use) runs, deterministically."""

    def __init__(self, ids: Sequence[int]) -> None:
        self._ids = list(ids)
        self._next = 0

    def token_bytes(self, n: int) -> bytes:
        """One ID a draw (the real draws give n // 2 at once), in the given order."""
        if self._ids:
            qid = self._ids.pop(0) & 0xFFFF
        else:
            self._next = (self._next + 1) % (1 << 16)
            qid = self._next
        return array.array("H", [qid]).tobytes()


@contextlib.contextmanager
def fixed_ids(ids: Sequence[int]) -> Iterator[None]:
    """Make the DoTProtocol IDs drawn inside the block ``ids``, in order (then 1, 2...)."""
    module = vars(_protocol)
    saved = module["secrets"]
    module["secrets"] = _FixedSecrets(ids)
    try:
        yield
    finally:
        module["secrets"] = saved


@dataclass(frozen=True)
class Sent:
    """One query in flight: its ID, the path it took, its question and its framed bytes."""

    qid: int
    lean: bool
    qname: dns.name.Name
    rdtype: int
    data: bytes


def send_all(
    proto: DoTProtocol,
    questions: Sequence[tuple[str, int, bool]],
    lean: Sequence[bool],
    ids: Sequence[int],
) -> list[Sent]:
    """Send ``questions`` on ``proto`` with IDs drawn from ``ids``."""
    sent = []
    with fixed_ids(ids):
        for (name, rdtype, dnssec), use_lean in zip(questions, lean, strict=True):
            qname = dns.name.from_text(name)
            if use_lean:
                qid, data = proto.send_question(qname, rdtype, 1, dnssec=dnssec)
            else:
                query = make_query(qname, rdtype, dnssec=dnssec)
                qid, data = proto.send_query(query)
            sent.append(Sent(qid, use_lean, qname, rdtype, data))
    return sent


# -- responses -----------------------------------------------------------------------------


def respond(
    query: bytes,
    *,
    records: int = 1,
    rcode: int = dns.rcode.NOERROR,
    cname: bool = False,
    questionless: bool = False,
    generic: bool = False,
    edns: bool = True,
    keepalive: int | None = None,
    pad: int = 0,
    qid: int | None = None,
) -> bytes:
    """A response (wire format, rendered by dnspython) to the framed ``query``.

    ``records`` answers of the question's type (a CNAME first with ``cname``), an SOA in
    the authority section for NXDOMAIN, no question with ``questionless``, a record of
    an unknown type (which the lean path leaves to dnspython) with ``generic``, EDNS
    with an edns-tcp-keepalive timeout of ``keepalive`` (in 100 ms units) and padding
    to a multiple of ``pad``; ``qid`` replaces the ID.
    """
    message = dns.message.from_wire(query[2:])
    response = dns.message.make_response(message, pad=0)
    if qid is not None:
        response.id = qid
    response.set_rcode(dns.rcode.Rcode.make(rcode))
    question = message.question[0]
    owner = question.name
    if cname:
        target = dns.name.from_text("target.example.")
        response.answer.append(dns.rrset.from_text(owner, 60, "IN", "CNAME", str(target)))
        owner = target
    text = _RDATA.get(question.rdtype)
    if text is not None and records:
        rrset = dns.rrset.from_text(
            owner, 300, "IN", question.rdtype, *(text.format(i=i) for i in range(records))
        )
        response.answer.append(rrset)
    if rcode == dns.rcode.NXDOMAIN:
        response.authority.append(
            dns.rrset.from_text("example.", 60, "IN", "SOA", _RDATA[SOA].format(i=1))
        )
    if generic:
        response.additional.append(
            dns.rrset.from_text(owner, 60, "IN", "TYPE65280", r"\# 3 abcdef")
        )
    if questionless:
        response.question = []
    if edns:
        options: list[dns.edns.Option] = []
        if keepalive is not None:
            options.append(
                dns.edns.GenericOption(dns.edns.KEEPALIVE, struct.pack("!H", keepalive))
            )
        response.use_edns(0, 0, 1232, options=options, pad=pad)
    else:
        response.use_edns(False)
    # No shuffling: rdatasets are shuffled with the global random module otherwise.
    return response.to_wire(want_shuffle=False)


def check_answer(value: object, sent: Sent) -> dns.message.Message:
    """Assert that ``value``, what ``result()`` returned for ``sent``, is a valid answer
    to it: bytes for the lean path (which dnspython must parse), a message otherwise;
    its ID, QR, opcode QUERY, and its question or an RCODE that may come without one.
    Returns the parsed message."""
    if sent.lean:
        assert isinstance(value, bytes), type(value)
        message = dns.message.from_wire(value, one_rr_per_rrset=False)
        summary = wire_summary(value)
        if summary is not None:
            rcode, question = summary
            assert rcode == message.rcode(), (rcode, message.rcode())
            if question is None:
                assert not message.question
            else:
                assert question[0].labels == message.question[0].name.labels
                assert question[1] == message.question[0].rdtype
    else:
        assert isinstance(value, dns.message.Message), type(value)
        message = value
    assert message.id == sent.qid
    assert message.flags & dns.flags.QR
    assert message.opcode() == dns.opcode.QUERY
    if message.question:
        assert len(message.question) == 1
        got = message.question[0]
        assert (got.name, got.rdtype, got.rdclass) == (sent.qname, sent.rdtype, 1)
    else:
        assert message.rcode() in QUESTIONLESS, message.rcode()
    return message


# -- the input format and the target -------------------------------------------------------


@dataclass(frozen=True)
class Input:
    """A decoded fuzz input."""

    count: int
    keepalive: bool
    eof: bool
    padding: int
    lean: tuple[bool, ...]
    chunking: int
    ids: tuple[int, ...]
    stream: bytes

    @classmethod
    def decode(cls, data: bytes) -> Input:
        head = data[:_HEADER].ljust(_HEADER, b"\x00")
        count = 1 + (head[0] & 7)
        raw_ids = data[_HEADER : _HEADER + 2 * count].ljust(2 * count, b"\x00")
        return cls(
            count=count,
            keepalive=bool(head[0] & 8),
            eof=bool(head[0] & 16),
            padding=PADDINGS[(head[0] >> 5) & 3],
            lean=tuple(bool(head[1] >> i & 1) for i in range(count)),
            chunking=head[2],
            ids=struct.unpack(f"!{count}H", raw_ids),
            stream=data[_HEADER + 2 * count :],
        )

    def encode(self) -> bytes:
        flags = (self.count - 1) | self.keepalive << 3 | self.eof << 4
        flags |= PADDINGS.index(self.padding) << 5
        lean = sum(1 << i for i, b in enumerate(self.lean))
        ids = struct.pack(f"!{self.count}H", *self.ids)
        return bytes((flags, lean, self.chunking)) + ids + self.stream

    def chunks(self) -> Iterator[bytes]:
        """The stream as the reads that deliver it: one read (0), one octet per read
        (255), or reads of sizes cycling through three values derived from the byte."""
        stream = self.stream
        if self.chunking == 0:
            if stream:  # an empty read would mean EOF
                yield stream
            return
        if self.chunking == 255:
            sizes: tuple[int, ...] = (1,)
        else:
            c = self.chunking
            sizes = (c % 7 + 1, c, c * 37 % 509 + 1)
        pos = 0
        i = 0
        while pos < len(stream):
            size = sizes[i % len(sizes)]
            yield stream[pos : pos + size]
            pos += size
            i += 1

    def connect(self) -> tuple[DoTProtocol, list[Sent]]:
        """A protocol with this input's queries in flight."""
        proto = DoTProtocol(padding=self.padding, keepalive=self.keepalive)
        return proto, send_all(proto, QUESTIONS[: self.count], self.lean, self.ids)


def TestOneInput(data: bytes) -> None:  # noqa: N802 (the name atheris and libFuzzer use)
    """Feed one input to a DoTProtocol; fail (raise) if the protocol misbehaves."""
    given_input = Input.decode(data)
    proto, sent = given_input.connect()
    by_id = {s.qid: s for s in sent}
    assert len(by_id) == len(sent), "the protocol handed out an ID twice"
    reported: set[int] = set()
    broken = False
    # Answers filed by the call that raised ProtocolError: result() returns them, but the
    # call could not list them (the shell wakes every waiter on that error).
    unlisted = 0

    def note(ready: list[int]) -> None:
        for qid in ready:
            assert qid in by_id, f"receive_data reported an ID never sent: {qid}"
            assert qid not in reported, f"receive_data reported {qid} twice"
            reported.add(qid)

    for chunk in given_input.chunks():
        answered_before = proto.answered
        try:
            ready = proto.receive_data(chunk)
        except ProtocolError:
            # A broken framing is final: the connection is closed, nothing more comes.
            assert not broken, "receive_data raised twice"
            assert proto.closed
            assert proto.in_flight == 0
            broken = True
            unlisted = proto.answered - answered_before
            continue
        assert not broken or ready == []
        note(ready)
    if given_input.eof:
        note(proto.receive_data(b""))
        assert proto.closed
        assert proto.receive_data(b"") == []
        assert proto.in_flight == 0

    answered = pending = 0
    for qid, query in by_id.items():
        try:
            value = proto.result(qid)
        except (ProtocolError, ConnectionLost) as exc:
            assert isinstance(exc, ProtocolError) or given_input.eof
            # listed by the call that decided it, unless that call raised
            assert qid in reported or broken, f"query {qid} failed but was not reported"
            continue
        if value is None:
            assert not proto.closed
            pending += 1
            continue
        if qid not in reported:
            unlisted -= 1
            assert unlisted >= 0, f"query {qid} was answered but not reported ready"
        check_answer(value, query)
        answered += 1
    assert unlisted == 0, "answers filed by a raising call were lost"
    assert proto.answered == answered, (proto.answered, answered)
    assert proto.in_flight == pending


# -- Hypothesis: structured inputs from random bytes ---------------------------------------


_KINDS = ("answer",) * 6 + ("mutated", "stray", "garbage", "short", "lying", "duplicate")
_RCODES = (0, 2, 3, 5)  # NOERROR, SERVFAIL, NXDOMAIN, REFUSED
_PADS = (0, 0, 128, 468)
_KEEPALIVES = (None, None, 0, 300)
_EDIT_BYTES = (0, 1, 63, 64, 0xC0, 0xC1, 0xFF)
# Strategies built once: building them per draw costs more than the target itself.
_U8 = st.integers(0, 255)
_U16 = st.integers(0, 65535)
_U32 = st.integers(0, 2**32 - 1)
_SHORT = st.integers(0, 11)
_GARBAGE = st.binary(min_size=1, max_size=40)
_INSERT = st.binary(min_size=1, max_size=4)


def _piece(draw: st.DrawFn, sent: list[Sent]) -> bytes:
    """Something a server might send: mostly answers, some broken. One 32-bit draw
    picks the kind and the answer's shape (cheap to draw, which keeps runs fast)."""
    recipe = draw(_U32)
    kind = _KINDS[recipe % len(_KINDS)]
    if kind == "garbage":
        return draw(_GARBAGE)
    if kind == "short":
        length = draw(_SHORT)
        return struct.pack("!H", length) + bytes(range(length))
    index = (recipe >> 4) % len(sent)
    qid = draw(_U16) if kind == "stray" else sent[index].qid
    wire = struct.pack("!H", qid) + _canned(index, recipe >> 8 & 0xFFFFF)[2:]
    if kind == "mutated":
        edited = bytearray(wire)
        for _ in range(1 + (recipe >> 23) % 3):
            pos = 2 + draw(_U16) % (len(edited) - 2)
            how = draw(_U8)
            if how < 80:
                edited[pos] ^= 1 << (how & 7)
            elif how < 140:
                edited[pos] = _EDIT_BYTES[how % len(_EDIT_BYTES)]
            elif how < 170:
                del edited[max(pos, 12) :]
            elif how < 210:
                edited[pos:pos] = draw(_INSERT)
            elif len(edited) > 13:
                del edited[pos : pos + 1 + how % 4]
            if len(edited) < 12:
                break
        wire = bytes(edited) if len(edited) >= 12 else wire[:12]
    framed = encode_frame(wire)
    if kind == "lying":
        return struct.pack("!H", 12 + draw(_U16) % 65524) + framed[2:]
    if kind == "duplicate":
        return framed + framed
    return framed


def _canned(index: int, shape: int) -> bytes:
    """An answer (ID 0) to QUESTIONS[index], shaped by the low 17 bits of ``shape``."""
    return _render_canned(
        index,
        records=shape & 3,
        rcode=_RCODES[(shape >> 2) & 3],
        cname=bool(shape >> 5 & 1),
        questionless=(shape >> 6) & 7 == 0,
        generic=(shape >> 9) & 7 == 0,
        keepalive=_KEEPALIVES[(shape >> 12) & 3],
        pad=_PADS[(shape >> 15) & 3],
    )


@functools.cache
def _render_canned(index: int, **shape: Any) -> bytes:
    # Cached: rendering with dnspython costs more than a run of the target, and there
    # are only about 9,000 shapes.
    name, rdtype, dnssec = QUESTIONS[index]
    query = make_query(name, rdtype, dnssec=dnssec)
    query.id = 0
    return respond(encode_frame(query.to_wire()), **shape)


@st.composite
def fuzz_inputs(draw: st.DrawFn) -> bytes:
    """An encoded input whose stream is made of answers to its own queries (in any
    order), broken ones, strays and garbage: what TestOneInput is fed."""
    flags = draw(_U32)
    count = 1 + flags % len(QUESTIONS)
    chunking = (flags >> 3) & 0xFF
    shape = Input(
        count=count,
        keepalive=bool(flags >> 11 & 1),
        eof=bool(flags >> 12 & 1),
        padding=PADDINGS[(flags >> 13) & 3],
        lean=tuple(bool(flags >> (15 + i) & 1) for i in range(count)),
        # one read, one octet per read, or cycling sizes: each about a third of the time
        chunking=(0, 255, chunking)[(flags >> 23) % 3],
        ids=tuple(draw(_U16) for _ in range(count)),
        stream=b"",
    )
    _, sent = shape.connect()
    pieces = [_piece(draw, sent) for _ in range(draw(_U8) % 13)]
    stream = b"".join(pieces)
    if flags >> 25 & 1:  # the stream stops somewhere
        stream = stream[: draw(_U16) % (len(stream) + 1)]
    return replace(shape, stream=stream).encode()


def seed_inputs() -> list[bytes]:
    """A few valid inputs (every query answered, in several orders and chunkings): a
    seed corpus for atheris, and a sanity check for the target itself."""
    seeds = []
    for count, chunking, lean_mask in ((1, 0, 1), (3, 255, 5), (8, 13, 0xA5), (8, 0, 0xFF)):
        shape = Input(
            count=count,
            keepalive=count > 1,
            eof=count % 2 == 0,
            padding=PADDINGS[count % 4],
            lean=tuple(bool(lean_mask >> i & 1) for i in range(count)),
            chunking=chunking,
            ids=tuple(range(4660, 4660 + 7 * count, 7)),
            stream=b"",
        )
        _, sent = shape.connect()
        answers = [encode_frame(respond(s.data, records=2, keepalive=300)) for s in sent]
        stream = b"".join(answers[::-1] if count > 2 else answers)
        seeds.append(replace(shape, stream=stream).encode())
    return seeds


# -- drivers -------------------------------------------------------------------------------


def _report_failure(data: bytes, artifacts: Path) -> None:
    artifacts.mkdir(parents=True, exist_ok=True)
    path = artifacts / f"crash-{hashlib.sha1(data).hexdigest()[:12]}"
    path.write_bytes(data)
    traceback.print_exc()
    print(f"FAILED on a {len(data)}-octet input, saved to {path}", file=sys.stderr)
    print(f"replay: python {sys.argv[0]} --replay {path}", file=sys.stderr)


def run_hypothesis(
    seconds: float | None,
    runs: int | None,
    seed: int | None,
    artifacts: Path,
    log: Callable[[str], None] = print,
) -> int:
    """Drive :func:`TestOneInput` with Hypothesis' fuzz entry point and random bytes
    until ``seconds`` or ``runs`` is reached. Returns 0, or 1 on the first failure."""
    last: list[bytes] = [b""]

    @settings(database=None, deadline=None)
    @given(fuzz_inputs())
    def target(data: bytes) -> None:
        last[0] = data
        TestOneInput(data)

    fuzz_one_input = target.hypothesis.fuzz_one_input  # type: ignore[attr-defined]
    rng = random.Random(seed)
    for data in seed_inputs():
        last[0] = data
        try:
            TestOneInput(data)
        except Exception:
            _report_failure(data, artifacts)
            return 1
    start = now = time.monotonic()
    next_report = start + 30
    executions = valid = 0
    while (runs is None or executions < runs) and (seconds is None or now - start < seconds):
        buffer = rng.randbytes(rng.choice((256, 1024, 4096, 16384)))
        try:
            if fuzz_one_input(buffer) is not None:
                valid += 1
        except Exception:
            _report_failure(last[0], artifacts)
            return 1
        executions += 1
        now = time.monotonic()
        if now >= next_report:
            log(f"  {executions} runs, {executions / (now - start):.0f}/s")
            next_report += 30
    elapsed = max(time.monotonic() - start, 1e-9)
    log(
        f"hypothesis: {executions} runs ({valid} complete inputs) in {elapsed:.1f} s, "
        f"{executions / elapsed:.0f} runs/s, no failure"
    )
    return 0


def run_atheris(seconds: float | None, runs: int | None, extra: list[str]) -> int:
    import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]

    argv = [sys.argv[0], *extra]
    if seconds is not None:
        argv.append(f"-max_total_time={int(seconds)}")
    if runs is not None:
        argv.append(f"-runs={runs}")
    atheris.instrument_all()
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()  # exits the process
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, help="stop after this long")
    parser.add_argument("--runs", type=int, help="stop after this many inputs")
    parser.add_argument("--seed", type=int, help="random seed (hypothesis engine)")
    parser.add_argument(
        "--engine", choices=["auto", "atheris", "hypothesis"], default="auto",
        help="auto: atheris if installed, else hypothesis",
    )  # fmt: skip
    parser.add_argument("--artifacts", type=Path, default=Path("."), help="where crashes go")
    parser.add_argument("--replay", type=Path, metavar="FILE", help="run one saved input")
    parser.add_argument("--make-corpus", type=Path, metavar="DIR", help="write seed inputs")
    args, extra = parser.parse_known_args(argv)
    if args.replay is not None:
        TestOneInput(args.replay.read_bytes())
        print(f"{args.replay}: passed")
        return 0
    if args.make_corpus is not None:
        args.make_corpus.mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(seed_inputs()):
            (args.make_corpus / f"seed-{i}").write_bytes(data)
        return 0
    if args.seconds is None and args.runs is None:
        args.seconds = 60.0
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if importlib.util.find_spec("atheris") else "hypothesis"
    if engine == "atheris":
        return run_atheris(args.seconds, args.runs, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return run_hypothesis(args.seconds, args.runs, args.seed, args.artifacts)


if __name__ == "__main__":
    sys.exit(main())
