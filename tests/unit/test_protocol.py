"""The sans-I/O protocol core: framing, IDs, matching and validation (no sockets)."""

from __future__ import annotations

import array
import secrets
import struct
from collections.abc import Iterator
from itertools import pairwise

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import dotclient
from dotclient import ConnectionLost, ProtocolError
from dotclient._framing import FrameDecoder, encode_frame
from dotclient._protocol import DoTProtocol
from dotclient._query import DEFAULT_PADDING_BLOCK, make_query, render_query

FAST = settings(max_examples=200, deadline=None)


# -- helpers ------------------------------------------------------------------------------


def unframe(data: bytes) -> dns.message.Message:
    """Parse the single frame in ``data`` (as a server would read it)."""
    (length,) = struct.unpack("!H", data[:2])
    assert length == len(data) - 2
    return dns.message.from_wire(data[2:])


def answer(data: bytes, address: str = "192.0.2.1") -> dns.message.Message:
    """A NOERROR response to the framed query ``data`` with one A record."""
    response = dns.message.make_response(unframe(data))
    question = response.question[0]
    if question.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text(question.name, 300, "IN", "A", address))
    return response


def frame(message: dns.message.Message | bytes) -> bytes:
    wire = message if isinstance(message, bytes) else message.to_wire()
    return encode_frame(wire)


def byte_by_byte(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def padding_options(message: dns.message.Message) -> list[dns.edns.Option]:
    return [o for o in message.options if o.otype == dns.edns.OptionType.PADDING]


# -- encode_frame / FrameDecoder ----------------------------------------------------------


def test_encode_frame_prefixes_the_length() -> None:
    message = bytes(range(20))
    assert encode_frame(message) == b"\x00\x14" + message
    big = b"\xab" * 65535
    assert encode_frame(big)[:2] == b"\xff\xff"
    assert len(encode_frame(big)) == 65537


@pytest.mark.parametrize("size", [0, 1, 11, 65536])
def test_encode_frame_rejects_impossible_sizes(size: int) -> None:
    with pytest.raises(ValueError, match=f"not {size}"):
        encode_frame(b"\x00" * size)


def test_round_trip_one_message() -> None:
    message = make_query("example.com", "A").to_wire()
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(message)) == [message]
    assert decoder.buffered == 0
    assert decoder.describe_partial() is None


def test_several_messages_in_one_chunk_and_a_split_one() -> None:
    messages = [bytes([i]) * (12 + i) for i in range(5)]
    stream = b"".join(encode_frame(m) for m in messages)
    decoder = FrameDecoder()
    assert decoder.feed(stream[:-3]) == messages[:4]
    assert decoder.buffered == 2 + 16 - 3
    assert decoder.feed(b"") == []
    assert decoder.feed(stream[-3:]) == messages[4:]
    assert decoder.buffered == 0


def test_decoder_handles_more_than_64k_in_one_feed() -> None:
    # More than 65536 octets consumed in one feed with a partial frame left over.
    messages = [bytes([i % 256]) * 600 for i in range(150)]
    stream = b"".join(encode_frame(m) for m in messages)
    decoder = FrameDecoder()
    first = decoder.feed(stream[:-100])
    assert first == messages[:-1]
    assert decoder.buffered == 602 - 100
    assert decoder.feed(stream[-100:]) == messages[-1:]
    assert decoder.buffered == 0


@FAST
@given(
    messages=st.lists(st.binary(min_size=12, max_size=600), max_size=12),
    data=st.data(),
)
def test_decoder_any_chunking_gives_the_same_messages(
    messages: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    bounds = [0, *cuts, len(stream)]
    decoder = FrameDecoder()
    decoded: list[bytes] = []
    for start, end in pairwise(bounds):
        decoded.extend(decoder.feed(stream[start:end]))
    assert decoded == messages
    assert decoder.buffered == 0
    assert decoder.describe_partial() is None


@FAST
@given(stream=st.binary(max_size=2000), data=st.data())
def test_decoder_arbitrary_bytes_decode_or_raise_protocol_error(
    stream: bytes, data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    bounds = [0, *cuts, len(stream)]
    decoder = FrameDecoder()
    decoded: list[bytes] = []
    try:
        for start, end in pairwise(bounds):
            decoded.extend(decoder.feed(stream[start:end]))
    except ProtocolError as exc:
        assert "octet frame" in str(exc)
        return
    assert all(len(m) >= 12 for m in decoded)
    rebuilt = b"".join(encode_frame(m) for m in decoded)
    assert stream.startswith(rebuilt)
    assert len(rebuilt) + decoder.buffered == len(stream)


@pytest.mark.parametrize("length", [0, 1, 11])
def test_short_frames_raise(length: int) -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError, match=f"a {length}-octet frame"):
        decoder.feed(struct.pack("!H", length) + b"\x00" * length)


def test_zero_length_frame_split_across_feeds() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00") == []
    with pytest.raises(ProtocolError, match="0-octet frame"):
        decoder.feed(b"\x00")


def test_short_frame_after_a_good_one() -> None:
    decoder = FrameDecoder()
    good = encode_frame(b"\x00" * 12)
    assert decoder.feed(good) == [b"\x00" * 12]
    with pytest.raises(ProtocolError, match="5-octet frame"):
        decoder.feed(b"\x00\x05abcde")


def test_describe_partial() -> None:
    decoder = FrameDecoder()
    assert decoder.describe_partial() is None
    decoder.feed(b"\x00")
    assert decoder.buffered == 1
    assert decoder.describe_partial() == "inside a length prefix (1 of 2 octets)"
    decoder.feed(b"\x14")
    assert decoder.describe_partial() == "inside a message (0 of 20 octets)"
    decoder.feed(b"x" * 5)
    assert decoder.describe_partial() == "inside a message (5 of 20 octets)"
    assert decoder.feed(b"y" * 15) == [b"x" * 5 + b"y" * 15]
    assert decoder.describe_partial() is None


def test_describe_partial_after_complete_frames() -> None:
    decoder = FrameDecoder()
    out = decoder.feed(encode_frame(b"a" * 12) + b"\x00\x30" + b"b" * 7)
    assert out == [b"a" * 12]
    assert decoder.describe_partial() == "inside a message (7 of 48 octets)"


# -- make_query / render_query ------------------------------------------------------------


def test_make_query_defaults() -> None:
    query = make_query("Example.COM")
    assert query.question[0].name == dns.name.from_text("example.com.")
    assert query.question[0].rdtype == dns.rdatatype.A
    assert query.question[0].rdclass == dns.rdataclass.IN
    assert query.flags & dns.flags.RD
    assert query.edns == 0
    assert query.payload == 1232
    assert not query.ednsflags & dns.flags.DO


def test_make_query_dnssec_sets_do() -> None:
    query = make_query("example.com", "AAAA", dnssec=True)
    assert query.ednsflags & dns.flags.DO
    assert query.question[0].rdtype == dns.rdatatype.AAAA


@pytest.mark.parametrize(
    ("rdtype", "rdclass", "expected"),
    [
        ("MX", "IN", (dns.rdatatype.MX, dns.rdataclass.IN)),
        (28, 1, (dns.rdatatype.AAAA, dns.rdataclass.IN)),
        (dns.rdatatype.TXT, "CH", (dns.rdatatype.TXT, dns.rdataclass.CH)),
        ("ANY", "IN", (dns.rdatatype.ANY, dns.rdataclass.IN)),
        ("TYPE65280", "IN", (65280, dns.rdataclass.IN)),
    ],
)
def test_make_query_types_and_classes(rdtype: object, rdclass: object, expected: tuple) -> None:
    question = make_query(dns.name.from_text("example.com."), rdtype, rdclass).question[0]  # type: ignore[arg-type]
    assert (question.rdtype, question.rdclass) == expected


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("bad..name",), "invalid query"),
        (("a" * 64 + ".example",), "invalid query"),
        (("example.com", "NOTATYPE"), "invalid query"),
        (("example.com", 70000), "65535"),
        (("example.com", "A", "NOTACLASS"), "invalid query"),
        (("example.com", "OPT"), "meta-type OPT"),
        (("example.com", "AXFR"), "meta-type AXFR"),
        (("example.com", "IXFR"), "meta-type IXFR"),
        (("example.com", "TSIG"), "meta-type TSIG"),
    ],
)
def test_make_query_bad_input_raises_value_error(args: tuple, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        make_query(*args)


def test_render_query_sets_the_id_and_leaves_the_message() -> None:
    query = make_query("example.com")
    query.id = 1234
    wire = render_query(query, 4321, 0)
    assert struct.unpack("!H", wire[:2])[0] == 4321
    assert query.id == 1234
    assert dns.message.from_wire(wire).question == query.question


# -- DoTProtocol: IDs ---------------------------------------------------------------------


def test_ids_are_random() -> None:
    proto = DoTProtocol()
    ids = [proto.send_query(make_query(f"q{i}.example"))[0] for i in range(200)]
    assert len(set(ids)) == 200
    assert all(0 <= i <= 0xFFFF for i in ids)
    steps = sum(1 for a, b in pairwise(ids) if b - a == 1)
    assert steps < 10, "IDs look sequential"
    assert ids != sorted(ids)
    assert max(ids) - min(ids) > 30000
    # Fresh connections do not all start from the same ID.
    firsts = {DoTProtocol().send_query(make_query("a.example"))[0] for _ in range(20)}
    assert len(firsts) > 1


def test_id_goes_into_the_wire() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("example.com"))
    assert unframe(data).id == qid
    assert proto.in_flight == 1
    assert proto.result(qid) is None


class _FakeSecrets:
    """Hands out the given IDs one per draw (the real draws give 128 at once)."""

    def __init__(self, values: list[int]) -> None:
        self.values = list(values)
        self.asked: list[int] = []

    def token_bytes(self, n: int) -> bytes:
        self.asked.append(n)
        return array.array("H", [self.values.pop(0)]).tobytes()


def test_ids_are_drawn_from_the_os_128_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: list[int] = []
    real = secrets.token_bytes

    def counted(n: int) -> bytes:
        draws.append(n)
        return real(n)

    monkeypatch.setattr("dotclient._protocol.secrets.token_bytes", counted)
    proto = DoTProtocol()
    ids = {proto.send_query(make_query(f"n{i}.example"))[0] for i in range(300)}
    assert len(ids) == 300  # unique among the queries in flight
    assert draws == [256, 256, 256]  # 128 IDs a draw: three draws for 300 queries


def test_ids_unique_among_queries_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeSecrets([7, 7, 7, 9, 7, 9, 11])
    monkeypatch.setattr("dotclient._protocol.secrets", fake)
    proto = DoTProtocol()
    assert proto.send_query(make_query("a.example"))[0] == 7
    assert fake.asked == [256]
    assert proto.send_query(make_query("b.example"))[0] == 9
    assert proto.send_query(make_query("c.example"))[0] == 11
    assert fake.values == []


def test_ids_not_reused_while_uncollected_or_abandoned(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeSecrets([1, 2, 1, 2, 3, 1, 2, 3, 4])
    monkeypatch.setattr("dotclient._protocol.secrets", fake)
    proto = DoTProtocol()
    q1, d1 = proto.send_query(make_query("a.example"))
    q2, _ = proto.send_query(make_query("b.example"))
    assert (q1, q2) == (1, 2)
    proto.receive_data(frame(answer(d1)))  # answered, not yet collected
    proto.abandon(q2)
    assert proto.send_query(make_query("c.example"))[0] == 3
    assert proto.send_query(make_query("d.example"))[0] == 4
    assert fake.values == []


# -- DoTProtocol: matching ----------------------------------------------------------------


def test_responses_in_any_order_byte_by_byte() -> None:
    proto = DoTProtocol()
    sent = [proto.send_query(make_query(f"n{i}.example")) for i in range(3)]
    assert proto.in_flight == 3
    stream = b"".join(
        frame(answer(data, f"192.0.2.{i}")) for i, (_, data) in reversed(list(enumerate(sent)))
    )
    for chunk in byte_by_byte(stream):
        proto.receive_data(chunk)
    assert proto.in_flight == 0
    assert proto.answered == 3
    assert proto.unmatched == 0
    for i, (qid, _) in enumerate(sent):
        response = proto.result(qid)
        assert response is not None
        assert response.id == qid
        assert str(response.question[0].name) == f"n{i}.example."
        assert response.answer[0][0].address == f"192.0.2.{i}"


def test_result_is_collected_once() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("example.com"))
    proto.receive_data(frame(answer(data)))
    assert proto.result(qid) is not None
    with pytest.raises(KeyError):
        proto.result(qid)
    with pytest.raises(KeyError):
        proto.result((qid + 1) % 65536)


def test_name_compared_case_insensitively() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("MiXeD.Example.TEST"))
    response = answer(data)
    response.question[0].name = dns.name.from_text("mixed.EXAMPLE.test.")
    response.answer[0].name = dns.name.from_text("mixed.EXAMPLE.test.")
    wire = response.to_wire()
    assert b"mixed" in wire and b"EXAMPLE" in wire
    proto.receive_data(frame(wire))
    result = proto.result(qid)
    assert result is not None
    assert result.answer[0][0].address == "192.0.2.1"


def _response_wire(data: bytes, **changes: object) -> bytes:
    response = dns.message.make_response(unframe(data))
    question = response.question[0]
    if "name" in changes:
        question.name = dns.name.from_text(str(changes["name"]))
    if "rdtype" in changes:
        question.rdtype = dns.rdatatype.RdataType.make(changes["rdtype"])  # type: ignore[arg-type]
    if "rdclass" in changes:
        question.rdclass = dns.rdataclass.RdataClass.make(changes["rdclass"])  # type: ignore[arg-type]
    if "opcode" in changes:
        response.set_opcode(dns.opcode.Opcode.make(changes["opcode"]))  # type: ignore[arg-type]
    return response.to_wire()


# A query for example.com A answered with one thing changed, and the mismatch reported.
MISMATCHES = [
    ({"rdtype": "AAAA"}, "question example.com. IN AAAA, expected example.com. IN A"),
    ({"rdclass": "CH"}, "question example.com. CH A, expected example.com. IN A"),
    ({"name": "other.example."}, "question other.example. IN A, expected example.com. IN A"),
    ({"opcode": "NOTIFY"}, "opcode NOTIFY, expected QUERY"),
]


@pytest.mark.parametrize(("changes", "detail"), MISMATCHES)
def test_mismatched_question_or_opcode(changes: dict[str, object], detail: str) -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("example.com", "A"))
    proto.receive_data(frame(_response_wire(data, **changes)))
    assert proto.in_flight == 0
    assert proto.answered == 0
    with pytest.raises(ProtocolError) as info:
        proto.result(qid)
    assert str(info.value) == f"response to query {qid} does not match: {detail}"


def test_missing_qr_bit() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("example.com"))
    wire = bytearray(answer(data).to_wire())
    wire[2] &= 0x7F
    proto.receive_data(frame(bytes(wire)))
    with pytest.raises(ProtocolError, match="no QR bit"):
        proto.result(qid)


def test_echoed_query_is_not_a_response() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("example.com"))
    proto.receive_data(data)  # the query itself, reflected back
    with pytest.raises(ProtocolError, match="not a response"):
        proto.result(qid)


@pytest.mark.parametrize(
    "tail",
    [
        b"\x00\x01\x00\x00\x00\x00\x00\x00",  # claims one question, has none
        b"\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com",  # truncated question
        b"\x00\x00\x00\x00\x00\x00\x00\x00junk",  # trailing junk
    ],
)
def test_malformed_response(tail: bytes) -> None:
    proto = DoTProtocol()
    qid, _ = proto.send_query(make_query("example.com"))
    wire = struct.pack("!HH", qid, 0x8180) + tail
    proto.receive_data(frame(wire))
    with pytest.raises(ProtocolError, match=f"malformed response to query {qid}"):
        proto.result(qid)


def test_two_questions_rejected() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("example.com"))
    response = dns.message.make_response(unframe(data))
    response.question.append(
        dns.rrset.RRset(dns.name.from_text("example.net."), dns.rdataclass.IN, dns.rdatatype.A)
    )
    proto.receive_data(frame(response))
    with pytest.raises(ProtocolError, match="2 questions"):
        proto.result(qid)


@pytest.mark.parametrize(
    "rcode", [dns.rcode.REFUSED, dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NOTIMP]
)
def test_questionless_error_responses_accepted(rcode: dns.rcode.Rcode) -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("example.com"))
    response = dns.message.make_response(unframe(data))
    response.question = []
    response.set_rcode(rcode)
    proto.receive_data(frame(response))
    result = proto.result(qid)
    assert result is not None
    assert result.rcode() == rcode
    assert result.question == []


@pytest.mark.parametrize("rcode", [dns.rcode.NOERROR, dns.rcode.NXDOMAIN])
def test_questionless_other_responses_rejected(rcode: dns.rcode.Rcode) -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("example.com"))
    response = dns.message.make_response(unframe(data))
    response.question = []
    response.set_rcode(rcode)
    proto.receive_data(frame(response))
    with pytest.raises(ProtocolError, match="no question section"):
        proto.result(qid)


def test_unmatched_id_is_dropped_and_counted() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("example.com"))
    stray = answer(data)
    stray.id = (qid + 1) % 65536
    proto.receive_data(frame(stray))
    assert proto.unmatched == 1
    assert proto.in_flight == 1
    assert proto.result(qid) is None
    proto.receive_data(frame(answer(data)))
    assert proto.result(qid) is not None
    assert proto.unmatched == 1


def test_second_answer_to_the_same_id_is_unmatched() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("example.com"))
    proto.receive_data(frame(answer(data, "192.0.2.1")) + frame(answer(data, "192.0.2.66")))
    assert proto.unmatched == 1
    assert proto.answered == 1
    result = proto.result(qid)
    assert result is not None
    assert result.answer[0][0].address == "192.0.2.1"


def test_late_answer_after_abandon_is_dropped() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("example.com"))
    other, other_data = proto.send_query(make_query("example.net"))
    proto.abandon(qid)
    assert proto.in_flight == 1
    proto.receive_data(frame(answer(data)))
    assert proto.unmatched == 1
    assert proto.answered == 0
    with pytest.raises(KeyError):
        proto.result(qid)
    proto.receive_data(frame(answer(other_data)))
    assert proto.result(other) is not None


def test_abandon_drops_an_uncollected_result() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("example.com"))
    proto.receive_data(frame(answer(data)))
    proto.abandon(qid)
    with pytest.raises(KeyError):
        proto.result(qid)
    proto.abandon(12345)  # unknown IDs are ignored


# -- DoTProtocol: end of stream and framing errors ----------------------------------------


def test_eof_with_queries_in_flight() -> None:
    proto = DoTProtocol()
    q1, d1 = proto.send_query(make_query("a.example"))
    q2, _ = proto.send_query(make_query("b.example"))
    proto.receive_data(frame(answer(d1)))
    proto.receive_data(b"")
    assert proto.closed
    assert proto.in_flight == 0
    assert proto.result(q1) is not None
    with pytest.raises(ConnectionLost, match=f"closed the connection before answering query {q2}"):
        proto.result(q2)


def test_eof_inside_a_message() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(make_query("example.com"))
    wire = frame(answer(data))
    proto.receive_data(wire[:10])
    assert proto.result(qid) is None
    proto.receive_data(b"")
    with pytest.raises(ConnectionLost) as info:
        proto.result(qid)
    assert f"inside a message (8 of {len(wire) - 2} octets)" in str(info.value)


def test_eof_inside_a_length_prefix() -> None:
    proto = DoTProtocol()
    qid, _ = proto.send_query(make_query("example.com"))
    proto.receive_data(b"\x00")
    proto.receive_data(b"")
    with pytest.raises(ConnectionLost, match=r"inside a length prefix \(1 of 2 octets\)"):
        proto.result(qid)


def test_eof_between_messages_does_not_say_inside() -> None:
    proto = DoTProtocol()
    qid, _ = proto.send_query(make_query("example.com"))
    proto.receive_data(b"")
    with pytest.raises(ConnectionLost) as info:
        proto.result(qid)
    assert "inside" not in str(info.value)


def test_eof_is_final() -> None:
    proto = DoTProtocol()
    proto.receive_data(b"")
    assert proto.closed
    with pytest.raises(ConnectionLost, match="already ended"):
        proto.send_query(make_query("example.com"))
    proto.receive_data(b"\x00\x00")  # ignored after EOF, no framing error
    proto.receive_data(b"")


def test_framing_error_fails_every_query_in_flight() -> None:
    proto = DoTProtocol()
    q1, _ = proto.send_query(make_query("a.example"))
    q2, _ = proto.send_query(make_query("b.example"))
    with pytest.raises(ProtocolError, match="0-octet frame"):
        proto.receive_data(b"\x00\x00")
    assert proto.closed
    assert proto.in_flight == 0
    for qid in (q1, q2):
        with pytest.raises(ProtocolError, match=f"0-octet frame.*query {qid} was in flight"):
            proto.result(qid)
    with pytest.raises(ConnectionLost):
        proto.send_query(make_query("c.example"))
    proto.receive_data(b"more bytes")  # ignored once the stream is broken


def test_valid_response_before_a_framing_error_is_delivered_whatever_the_chunking() -> None:
    proto = DoTProtocol()
    q1, d1 = proto.send_query(make_query("a.example"))
    q2, _ = proto.send_query(make_query("b.example"))
    with pytest.raises(ProtocolError):
        proto.receive_data(frame(answer(d1)) + b"\x00\x00")
    assert proto.result(q1) is not None
    with pytest.raises(ProtocolError):
        proto.result(q2)


def test_valid_response_in_an_earlier_read_survives_a_framing_error() -> None:
    proto = DoTProtocol()
    q1, d1 = proto.send_query(make_query("a.example"))
    q2, _ = proto.send_query(make_query("b.example"))
    proto.receive_data(frame(answer(d1)))
    with pytest.raises(ProtocolError):
        proto.receive_data(b"\x00\x00")
    assert proto.result(q1) is not None
    with pytest.raises(ProtocolError):
        proto.result(q2)


@FAST
@given(data=st.data())
def test_arbitrary_input_only_ever_raises_protocol_errors(data: st.DataObject) -> None:
    proto = DoTProtocol()
    lean = data.draw(st.booleans())  # the lean path checks answers from their bytes
    if lean:
        qid, _ = proto.send_question(dns.name.from_text("example.com."), 1, 1)
    else:
        qid, _ = proto.send_query(make_query("example.com"))
    # Frames carrying our ID (and often the QR bit) reach the DNS parser; raw bytes
    # exercise the framing.
    bodies = st.binary(min_size=10, max_size=300).map(
        lambda b: struct.pack("!H", qid) + bytes([b[0] | 0x80]) + b[1:]
    )
    pieces = data.draw(
        st.lists(
            st.one_of(bodies.map(encode_frame), st.binary(max_size=40)),
            min_size=1,
            max_size=5,
        )
    )
    try:
        for piece in pieces:
            proto.receive_data(piece)
        if data.draw(st.booleans()):
            proto.receive_data(b"")
    except ProtocolError:
        assert proto.closed
    try:
        outcome = proto.result(qid)
    except (ProtocolError, ConnectionLost):
        return
    if lean and outcome is not None:
        assert isinstance(outcome, bytes)
        outcome = dns.message.from_wire(outcome)  # what the lean path accepts parses
    assert outcome is None or isinstance(outcome, dns.message.Message)


# -- DoTProtocol: sending -----------------------------------------------------------------


def test_send_query_needs_exactly_one_question() -> None:
    proto = DoTProtocol()
    empty = dns.message.Message()
    with pytest.raises(ValueError, match="not 0"):
        proto.send_query(empty)
    two = make_query("a.example")
    two.question.append(
        dns.rrset.RRset(dns.name.from_text("b.example."), dns.rdataclass.IN, dns.rdatatype.A)
    )
    with pytest.raises(ValueError, match="not 2"):
        proto.send_query(two)
    assert proto.in_flight == 0


@pytest.mark.parametrize("padding", [-1, 513, 1000])
def test_padding_block_bounds(padding: int) -> None:
    with pytest.raises(ValueError, match="padding block"):
        DoTProtocol(padding=padding)


NAMES = [
    "a.",
    "example.com",
    "www.example.org",
    "x" * 60 + ".example",
    ".".join(["abcdefghij"] * 12) + ".test",
    ".".join(["y" * 50] * 4) + ".test",
] + [("n" * n) + ".example" for n in range(1, 64, 5)]


@pytest.mark.parametrize("dnssec", [False, True])
def test_default_padding_is_a_multiple_of_128(dnssec: bool) -> None:
    assert DEFAULT_PADDING_BLOCK == 128
    proto = DoTProtocol()
    lengths = set()
    for name in NAMES:
        _, data = proto.send_query(make_query(name, "AAAA", dnssec=dnssec))
        size = len(data) - 2
        assert size % 128 == 0, (name, size)
        lengths.add(size)
        assert len(padding_options(unframe(data))) == 1
    assert len(lengths) > 1  # long names really do need more blocks


@pytest.mark.parametrize("block", [1, 64, 256, 468, 512])
def test_other_padding_blocks(block: int) -> None:
    proto = DoTProtocol(padding=block)
    for name in NAMES:
        _, data = proto.send_query(make_query(name))
        assert (len(data) - 2) % block == 0


def test_padding_zero_adds_no_padding_option() -> None:
    proto = DoTProtocol(padding=0)
    query = make_query("example.com")
    _, data = proto.send_query(query)
    sent = unframe(data)
    assert padding_options(sent) == []
    assert sent.edns == 0
    assert len(data) - 2 == len(query.to_wire())


def test_padding_zero_keeps_a_query_without_edns_without_edns() -> None:
    proto = DoTProtocol(padding=0)
    _, data = proto.send_query(dns.message.make_query("example.com", "A", use_edns=False))
    assert unframe(data).edns == -1


def test_padding_adds_edns_to_a_query_without_it_without_touching_the_query() -> None:
    proto = DoTProtocol()
    query = dns.message.make_query("example.com", "A", use_edns=False)
    _, data = proto.send_query(query)
    sent = unframe(data)
    assert sent.edns == 0
    assert len(padding_options(sent)) == 1
    assert (len(data) - 2) % 128 == 0
    assert query.edns == -1
    assert query.opt is None


def test_callers_message_is_not_mutated_and_options_are_kept() -> None:
    query = make_query("example.com", "A", dnssec=True)
    ecs = dns.edns.ECSOption("192.0.2.0", 24)
    cookie = dns.edns.CookieOption(b"\x01\x02\x03\x04\x05\x06\x07\x08", b"")
    query.use_edns(0, query.ednsflags, 1232, options=[ecs, cookie])
    query.id = 4242
    before_wire = query.to_wire()
    before_options = list(query.options)

    proto = DoTProtocol()
    qid, data = proto.send_query(query)

    assert query.id == 4242
    assert query.edns == 0
    assert query.ednsflags & dns.flags.DO
    assert list(query.options) == before_options
    assert padding_options(query) == []
    assert query.to_wire() == before_wire

    sent = unframe(data)
    assert sent.id == qid
    assert sent.ednsflags & dns.flags.DO
    assert sent.payload == 1232
    kinds = [o.otype for o in sent.options]
    assert dns.edns.OptionType.ECS in kinds
    assert dns.edns.OptionType.COOKIE in kinds
    assert kinds.count(dns.edns.OptionType.PADDING) == 1
    sent_ecs = next(o for o in sent.options if o.otype == dns.edns.OptionType.ECS)
    assert sent_ecs.address == "192.0.2.0"
    assert sent_ecs.srclen == 24
    sent_cookie = next(o for o in sent.options if o.otype == dns.edns.OptionType.COOKIE)
    assert sent_cookie.client == b"\x01\x02\x03\x04\x05\x06\x07\x08"
    assert (len(data) - 2) % 128 == 0


def test_callers_own_padding_option_is_replaced_not_doubled() -> None:
    query = make_query("example.com")
    query.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(dns.edns.OptionType.PADDING, b"")])
    _, data = DoTProtocol().send_query(query)
    sent = unframe(data)
    assert len(padding_options(sent)) == 1
    assert (len(data) - 2) % 128 == 0
    assert len(padding_options(query)) == 1


def test_same_message_sent_twice_gets_two_ids() -> None:
    proto = DoTProtocol()
    query = make_query("example.com")
    q1, d1 = proto.send_query(query)
    q2, d2 = proto.send_query(query)
    assert q1 != q2
    proto.receive_data(frame(answer(d2)) + frame(answer(d1)))
    assert proto.result(q1) is not None
    assert proto.result(q2) is not None


# -- TSIG ---------------------------------------------------------------------------------

KEYRING = dns.tsigkeyring.from_text({"tsig-key.": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"})
OTHER_KEYRING = dns.tsigkeyring.from_text({"tsig-key.": "b3RoZXJrZXlvdGhlcmtleW90aGVya2V5"})


def _signed_query() -> dns.message.Message:
    query = make_query("example.com", "A")
    query.use_tsig(KEYRING, keyname="tsig-key.")
    return query


def test_tsig_signed_round_trip() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(_signed_query())
    received = dns.message.from_wire(data[2:], keyring=KEYRING)  # the server verifies it
    assert received.had_tsig
    response = dns.message.make_response(received)  # signed with the same key
    response.answer.append(dns.rrset.from_text("example.com.", 60, "IN", "A", "192.0.2.9"))
    proto.receive_data(frame(response))
    result = proto.result(qid)
    assert result is not None
    assert result.had_tsig
    assert result.answer[0][0].address == "192.0.2.9"


def test_tsig_unsigned_response_rejected() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(_signed_query())
    received = dns.message.from_wire(data[2:], keyring=KEYRING)
    response = dns.message.make_response(received)
    response.keyring = None
    response.tsig = None
    proto.receive_data(frame(response))
    with pytest.raises(ProtocolError, match="TSIG"):
        proto.result(qid)


def test_tsig_response_signed_with_another_key_rejected() -> None:
    proto = DoTProtocol()
    qid, data = proto.send_query(_signed_query())
    received = dns.message.from_wire(data[2:], keyring=KEYRING)
    response = dns.message.make_response(received)
    response.use_tsig(OTHER_KEYRING, keyname="tsig-key.")
    proto.receive_data(frame(response))
    with pytest.raises(ProtocolError, match="malformed response"):
        proto.result(qid)


def test_tsig_response_to_another_query_rejected() -> None:
    # The response MAC covers the request MAC: a response signed for another query fails.
    proto = DoTProtocol()
    q1, d1 = proto.send_query(_signed_query())
    _, d2 = proto.send_query(_signed_query())
    other = dns.message.make_response(dns.message.from_wire(d2[2:], keyring=KEYRING))
    other.id = q1
    proto.receive_data(frame(other))
    with pytest.raises(ProtocolError, match="malformed response"):
        proto.result(q1)


def test_tsig_signed_callers_message_is_not_mutated() -> None:
    query = _signed_query()
    before = query.tsig[0]
    DoTProtocol().send_query(query)
    assert query.tsig[0] is before
    assert query.tsig[0].mac == before.mac
    assert query.tsig[0].time_signed == before.time_signed


def test_protocol_error_is_a_dot_error() -> None:
    assert issubclass(ProtocolError, dotclient.DoTError)


# -- the lean path: send_question ---------------------------------------------------------

KEEPALIVE = dns.edns.OptionType.KEEPALIVE


def reference_query(
    qname: dns.name.Name,
    rdtype: int,
    rdclass: int,
    qid: int,
    *,
    dnssec: bool = False,
    padding: int = DEFAULT_PADDING_BLOCK,
    keepalive: bool = False,
) -> bytes:
    """What the general path renders for this question, framed."""
    query = make_query(qname, rdtype, rdclass, dnssec=dnssec, padding=padding)
    if keepalive:
        query.use_edns(
            0, query.ednsflags, 1232, options=[dns.edns.GenericOption(KEEPALIVE, b"")], pad=padding
        )
    return encode_frame(render_query(query, qid, padding))


labels = st.binary(min_size=1, max_size=63)
names = (
    st.lists(labels, min_size=0, max_size=8)
    .filter(lambda ls: sum(len(label) + 1 for label in ls) < 255)
    .map(lambda ls: dns.name.Name([*ls, b""]))
)
query_types = st.integers(0, 65535).filter(
    lambda t: not dns.rdatatype.is_metatype(t) or t == dns.rdatatype.ANY
)


@FAST
@given(
    qname=names,
    rdtype=query_types,
    rdclass=st.integers(0, 65535),
    dnssec=st.booleans(),
    padding=st.sampled_from([0, 1, 7, 64, 128, 468, 512]),
    keepalive=st.booleans(),
)
def test_send_question_renders_what_make_query_renders(
    qname: dns.name.Name,
    rdtype: int,
    rdclass: int,
    dnssec: bool,
    padding: int,
    keepalive: bool,
) -> None:
    proto = DoTProtocol(padding=padding, keepalive=keepalive)
    qid, data = proto.send_question(qname, rdtype, rdclass, dnssec=dnssec)
    expected = reference_query(
        qname, rdtype, rdclass, qid, dnssec=dnssec, padding=padding, keepalive=keepalive
    )
    assert data == expected
    # and the same through send_query, which adds the keepalive option itself
    qid2, data2 = proto.send_query(make_query(qname, rdtype, rdclass, dnssec=dnssec))
    assert data2 == reference_query(
        qname, rdtype, rdclass, qid2, dnssec=dnssec, padding=padding, keepalive=keepalive
    )


def test_send_question_keepalive_option_comes_before_padding() -> None:
    proto = DoTProtocol(keepalive=True)
    _, data = proto.send_question(dns.name.from_text("example.com."), 1, 1)
    kinds = [o.otype for o in unframe(data).options]
    assert kinds == [KEEPALIVE, dns.edns.OptionType.PADDING]
    assert unframe(data).options[0].to_wire() == b""


def test_send_query_keepalive_is_not_doubled_and_needs_no_padding() -> None:
    proto = DoTProtocol(padding=0, keepalive=True)
    query = make_query("example.com")
    query.use_edns(0, 0, 1232, options=[dns.edns.GenericOption(KEEPALIVE, b"")])
    _, data = proto.send_query(query)
    assert [o.otype for o in unframe(data).options] == [KEEPALIVE]
    no_edns = dns.message.make_query("example.com", "A", use_edns=False)
    _, data = proto.send_query(no_edns)
    sent = unframe(data)
    assert sent.edns == 0
    assert [o.otype for o in sent.options] == [KEEPALIVE]
    assert no_edns.edns == -1


def test_send_question_registers_the_query() -> None:
    proto = DoTProtocol()
    qname = dns.name.from_text("Example.COM.")
    qid, data = proto.send_question(qname, dns.rdatatype.A, dns.rdataclass.IN)
    sent = unframe(data)
    assert sent.id == qid
    assert sent.question[0].name.labels == qname.labels  # case as given
    assert proto.in_flight == 1
    assert proto.result(qid) is None
    response = answer(data)
    proto.receive_data(frame(response))
    wire = proto.result(qid)
    assert wire == response.to_wire()
    assert proto.answered == 1
    assert proto.in_flight == 0


def test_send_question_ids_are_random_and_unique() -> None:
    proto = DoTProtocol()
    qname = dns.name.from_text("example.com.")
    ids = [proto.send_question(qname, 1, 1)[0] for _ in range(300)]
    assert len(set(ids)) == 300
    assert max(ids) - min(ids) > 30000


@pytest.mark.parametrize(
    ("qname", "rdtype", "rdclass", "error", "fragment"),
    [
        (dns.name.from_text("rel", origin=None), 1, 1, ValueError, "not absolute"),
        (dns.name.from_text("example.com."), 41, 1, ValueError, "meta-type OPT"),
        (dns.name.from_text("example.com."), 252, 1, ValueError, "meta-type AXFR"),
        (dns.name.from_text("example.com."), 70000, 1, ValueError, "invalid query"),
        (dns.name.from_text("example.com."), 1, -1, ValueError, "invalid query"),
        ("example.com.", 1, 1, TypeError, "dns.name.Name"),
    ],
)
def test_send_question_bad_input(
    qname: object, rdtype: int, rdclass: int, error: type[Exception], fragment: str
) -> None:
    proto = DoTProtocol()
    with pytest.raises(error, match=fragment):
        proto.send_question(qname, rdtype, rdclass)  # type: ignore[arg-type]
    assert proto.in_flight == 0
    assert proto.send_question(dns.name.from_text("ok.example."), 1, 1)[0] >= 0


def test_send_question_after_eof() -> None:
    proto = DoTProtocol()
    proto.receive_data(b"")
    with pytest.raises(ConnectionLost, match="already ended"):
        proto.send_question(dns.name.from_text("example.com."), 1, 1)


# -- the lean path: checking responses from their bytes -----------------------------------


class _CountParses:
    """Counts dns.message.from_wire calls (patched into dnspython)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = dns.message.from_wire

        def counting(*args: object, **kwargs: object) -> dns.message.Message:
            self.calls += 1
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(dns.message, "from_wire", counting)


def _lean(name: str = "example.com", rdtype: str = "A", **kwargs: bool) -> tuple:
    proto = DoTProtocol(**kwargs)
    qname = dns.name.from_text(name)
    qid, data = proto.send_question(qname, dns.rdatatype.from_text(rdtype), 1)
    return proto, qid, data


def _respond(data: bytes, *records: str, pad: int = 468, **options: bytes) -> dns.message.Message:
    """A response to framed query ``data`` with ``records`` ("owner TTL TYPE rdata") in the
    answer, padded like unbound pads, plus generic EDNS options code=data."""
    response = dns.message.make_response(unframe(data))
    for record in records:
        owner, ttl, rdtype, rdata = record.split(" ", 3)
        response.answer.append(dns.rrset.from_text(owner, int(ttl), "IN", rdtype, rdata))
    opts = [dns.edns.GenericOption(int(code[1:]), value) for code, value in options.items()]
    response.use_edns(0, 0, 1232, options=opts, pad=pad)
    return response


@pytest.mark.parametrize(
    ("rdtype", "records"),
    [
        ("A", ["example.com. 300 A 192.0.2.1", "example.com. 300 A 192.0.2.2"]),
        ("AAAA", ["example.com. 300 AAAA 2001:db8::1"]),
        ("A", ["example.com. 60 CNAME www.example.net.", "www.example.net. 60 A 192.0.2.7"]),
        ("MX", ["example.com. 60 MX 10 mail.example.com."]),
        ("TXT", ['example.com. 60 TXT "v=spf1 -all" ""']),
        ("NS", ["example.com. 60 NS ns1.example.com.", "example.com. 60 NS ns2.example.com."]),
        ("SOA", ["example.com. 60 SOA ns1.example.com. h.example.com. 1 2 3 4 5"]),
        ("PTR", ["example.com. 60 PTR host.example."]),
    ],
)
def test_lean_accepts_common_answers_without_parsing(
    monkeypatch: pytest.MonkeyPatch, rdtype: str, records: list[str]
) -> None:
    proto, qid, data = _lean("example.com", rdtype)
    response = _respond(data, *records)
    wire = response.to_wire()
    parses = _CountParses(monkeypatch)
    proto.receive_data(frame(wire))
    assert proto.result(qid) == wire
    assert parses.calls == 0


def test_lean_falls_back_to_dnspython_for_other_records(monkeypatch: pytest.MonkeyPatch) -> None:
    proto, qid, data = _lean("example.com", "A")
    response = _respond(data, "example.com. 300 A 192.0.2.1")
    response.answer.append(
        dns.rrset.from_text(
            "example.com.", 300, "IN", "RRSIG",
            "A 13 2 300 20300101000000 20200101000000 12345 example.com. AAAA",
        )
    )  # fmt: skip
    wire = response.to_wire()
    parses = _CountParses(monkeypatch)
    proto.receive_data(frame(wire))
    assert proto.result(qid) == wire  # still bytes
    assert parses.calls == 1


def test_lean_name_compared_case_insensitively() -> None:
    proto, qid, data = _lean("MiXeD.Example.TEST")
    response = _respond(data, "mixed.EXAMPLE.test. 300 A 192.0.2.1")
    response.question[0].name = dns.name.from_text("mixed.EXAMPLE.test.")
    wire = response.to_wire()
    assert b"mixed" in wire
    proto.receive_data(frame(wire))
    assert proto.result(qid) == wire


@pytest.mark.parametrize(("changes", "detail"), MISMATCHES)
def test_lean_mismatched_question_or_opcode(changes: dict[str, object], detail: str) -> None:
    proto, qid, data = _lean("example.com", "A")
    proto.receive_data(frame(_response_wire(data, **changes)))
    assert proto.answered == 0
    with pytest.raises(ProtocolError) as info:
        proto.result(qid)
    assert str(info.value) == f"response to query {qid} does not match: {detail}"


def test_lean_missing_qr_bit_and_echo() -> None:
    proto, qid, data = _lean()
    proto.receive_data(data)
    with pytest.raises(ProtocolError, match="no QR bit"):
        proto.result(qid)


@pytest.mark.parametrize(
    "tail",
    [
        b"\x00\x01\x00\x00\x00\x00\x00\x00",
        b"\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com",
        b"\x00\x00\x00\x00\x00\x00\x00\x00junk",
        b"\xff" * 30,
    ],
)
def test_lean_malformed_response(tail: bytes) -> None:
    proto, qid, _ = _lean()
    proto.receive_data(frame(struct.pack("!HH", qid, 0x8180) + tail))
    with pytest.raises(ProtocolError, match=f"malformed response to query {qid}"):
        proto.result(qid)


@pytest.mark.parametrize(
    ("rcode", "ok"),
    [
        (dns.rcode.REFUSED, True),
        (dns.rcode.SERVFAIL, True),
        (dns.rcode.FORMERR, True),
        (dns.rcode.NOTIMP, True),
        (dns.rcode.NOERROR, False),
        (dns.rcode.NXDOMAIN, False),
        (dns.rcode.BADVERS, False),  # 16: REFUSED's low bits, plus extended bits in the OPT
    ],
)
def test_lean_questionless_responses(
    monkeypatch: pytest.MonkeyPatch, rcode: dns.rcode.Rcode, ok: bool
) -> None:
    proto, qid, data = _lean()
    response = _respond(data)
    response.question = []
    response.set_rcode(rcode)
    wire = response.to_wire()
    parses = _CountParses(monkeypatch)
    proto.receive_data(frame(wire))
    if ok:
        assert proto.result(qid) == wire
        assert parses.calls == 0
    else:
        with pytest.raises(ProtocolError, match="no question section"):
            proto.result(qid)


def test_lean_tsig_signed_response_is_rejected() -> None:
    proto, qid, data = _lean()
    response = _respond(data, "example.com. 300 A 192.0.2.1")
    response.use_tsig(KEYRING, keyname="tsig-key.")
    proto.receive_data(frame(response))
    with pytest.raises(ProtocolError, match="malformed response"):
        proto.result(qid)


def test_keepalive_timeout_from_lean_and_full_responses() -> None:
    proto, qid, data = _lean(keepalive=True)
    assert proto.keepalive_timeout is None
    proto.receive_data(frame(_respond(data, o11=b"")))  # an empty option offers nothing
    assert isinstance(proto.result(qid), bytes)
    assert proto.keepalive_timeout is None
    qid, data = proto.send_question(dns.name.from_text("example.com."), 1, 1)
    proto.receive_data(frame(_respond(data, o11=b"\x01\x2c")))  # 300 x 100 ms
    assert proto.result(qid) is not None
    assert proto.keepalive_timeout == 30.0
    qid, data = proto.send_query(make_query("example.com"))
    proto.receive_data(frame(_respond(data, o11=b"\x00\x05")))
    assert isinstance(proto.result(qid), dns.message.Message)
    assert proto.keepalive_timeout == 0.5


def test_lean_and_full_results_can_be_mixed() -> None:
    proto = DoTProtocol()
    q1, d1 = proto.send_question(dns.name.from_text("a.example."), 1, 1)
    q2, d2 = proto.send_query(make_query("b.example"))
    proto.receive_data(frame(answer(d2)) + frame(answer(d1)))
    assert isinstance(proto.result(q1), bytes)
    assert isinstance(proto.result(q2), dns.message.Message)


# -- the lean path never accepts what dnspython would not ---------------------------------


def _base_responses() -> list[bytes]:
    """Real responses (ID 0) to questions for example.com. A, rendered by dnspython."""
    query = make_query("example.com", "A")
    query.id = 0
    data = encode_frame(query.to_wire())
    out = []
    for records in (
        ["example.com. 300 A 192.0.2.1", "example.com. 300 A 192.0.2.2"],
        ["example.com. 60 CNAME www.example.net.", "www.example.net. 60 A 192.0.2.7"],
        ["example.com. 60 CNAME a.example.com.", "a.example.com. 60 A 192.0.2.7"],
        [],
    ):
        for pad in (0, 128):
            out.append(_respond(data, *records, pad=pad, o11=b"\x00\x10").to_wire())
    nx = _respond(data, pad=0)
    nx.set_rcode(dns.rcode.NXDOMAIN)
    nx.authority.append(
        dns.rrset.from_text("com.", 60, "IN", "SOA", "a.nic.com. n.com. 1 2 3 4 5")
    )
    nx.authority.append(dns.rrset.from_text("com.", 60, "IN", "NS", "a.nic.com."))
    nx.additional.append(dns.rrset.from_text("a.nic.com.", 60, "IN", "AAAA", "2001:db8::53"))
    nx.additional.append(dns.rrset.from_text("a.nic.com.", 60, "IN", "TXT", '"x" "yz"'))
    nx.additional.append(dns.rrset.from_text("a.nic.com.", 60, "IN", "MX", "5 b.nic.com."))
    out.append(nx.to_wire())
    refused = _respond(data, pad=0)
    refused.question = []
    refused.set_rcode(dns.rcode.REFUSED)
    out.append(refused.to_wire())
    return out


BASES = _base_responses()


@st.composite
def mutated_responses(draw: st.DrawFn) -> bytes:
    wire = bytearray(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "byte", "count", "cut", "tail", "insert", "drop"]))
        if kind == "flip" and len(wire) > 2:
            pos = draw(st.integers(2, len(wire) - 1))
            wire[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte" and len(wire) > 2:
            wire[draw(st.integers(2, len(wire) - 1))] = draw(
                st.sampled_from([0, 1, 2, 4, 16, 63, 64, 0xC0, 0xC1, 0xFF])
            )
        elif kind == "count":
            field = draw(st.sampled_from([4, 6, 8, 10]))
            struct.pack_into("!H", wire, field, draw(st.integers(0, 5)))
        elif kind == "cut":
            del wire[draw(st.integers(12, len(wire))) :]
        elif kind == "tail":
            wire += draw(st.binary(min_size=1, max_size=30))
        elif kind == "insert":
            pos = draw(st.integers(12, len(wire)))
            wire[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "drop" and len(wire) > 13:
            pos = draw(st.integers(12, len(wire) - 1))
            del wire[pos : pos + draw(st.integers(1, 8))]
    return bytes(wire)


def _random_messages() -> st.SearchStrategy[bytes]:
    # header with QR and opcode QUERY (and sometimes sane counts), then random bytes
    return st.tuples(
        st.integers(0, 0xFFFF).map(lambda f: (f | 0x8000) & ~0x7800),
        st.tuples(*[st.integers(0, 3)] * 4),
        st.binary(max_size=120),
    ).map(lambda t: struct.pack("!HHHHHH", 0, t[0], *t[1]) + t[2])


def _outcome(proto: DoTProtocol, qid: int) -> tuple[str, object]:
    try:
        return "ok", proto.result(qid)
    except ProtocolError as exc:
        return "error", str(exc)


@settings(max_examples=1500, deadline=None)
@given(body=st.one_of(mutated_responses(), _random_messages()))
def test_lean_check_agrees_with_dnspython(body: bytes) -> None:
    qname = dns.name.from_text("example.com.")
    lean = DoTProtocol(padding=0)
    full = DoTProtocol(padding=0)
    lean_id, _ = lean.send_question(qname, dns.rdatatype.A, dns.rdataclass.IN)
    # The same ID on both: a compression pointer may point into it.
    full._allocate_id = lambda: lean_id  # type: ignore[method-assign]
    full_id, _ = full.send_query(make_query(qname, "A"))
    lean_wire = struct.pack("!H", lean_id) + body[2:]
    template = lean._pending[lean_id]
    # The QR bit is checked before, for both paths.
    accepted = bool(body[2] & 0x80) and lean._lean_accept(lean_wire, template)  # type: ignore[arg-type]
    if accepted:
        dns.message.from_wire(lean_wire, one_rr_per_rrset=False)  # must not raise
    lean.receive_data(frame(lean_wire))
    full.receive_data(frame(lean_wire))
    lean_kind, lean_value = _outcome(lean, lean_id)
    full_kind, full_value = _outcome(full, full_id)
    assert lean_kind == full_kind, (lean_value, full_value)
    if lean_kind == "ok":
        assert lean_value == lean_wire
    else:
        assert lean_value == full_value
    assert not accepted or lean_kind == "ok"
    event(f"lean path {'accepts' if accepted else 'defers'}, outcome {lean_kind}")


@pytest.mark.parametrize("base", range(len(BASES)))
def test_lean_accepts_every_unmutated_base(base: int) -> None:
    proto = DoTProtocol(padding=0)
    qid, _ = proto.send_question(dns.name.from_text("example.com."), 1, 1)
    wire = struct.pack("!H", qid) + BASES[base][2:]
    assert proto._lean_accept(wire, proto._pending[qid])  # type: ignore[arg-type]


# -- IDs: the reserved set ----------------------------------------------------------------


def test_abandoned_count_and_ids_freed_on_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeSecrets([1, 2, 1, 2, 1, 3])
    monkeypatch.setattr("dotclient._protocol.secrets", fake)
    proto = DoTProtocol()
    qname = dns.name.from_text("a.example.")
    q1, d1 = proto.send_question(qname, 1, 1)
    q2, _ = proto.send_question(qname, 1, 1)
    assert (q1, q2) == (1, 2)
    proto.abandon(q2)
    assert proto.abandoned == 1
    proto.receive_data(frame(answer(d1)))
    assert proto.result(q1) is not None  # collected: 1 is free again, 2 is not
    assert proto.send_question(qname, 1, 1)[0] == 1
    with pytest.raises(ConnectionLost):
        proto.receive_data(b"")
        proto.result(1)
    assert proto.send_query is not None
    assert proto.abandoned == 1


def test_all_ids_in_use_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    proto = DoTProtocol()
    proto._reserved.update(range(65536))
    with pytest.raises(RuntimeError, match="65,536"):
        proto.send_question(dns.name.from_text("a.example."), 1, 1)
