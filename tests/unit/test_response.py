"""Response: CNAME chasing, addresses, rcode handling and repr, on hand-built messages."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable

import dns.edns
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dotclient
from dotclient import RcodeError, Response, TLSInfo
from dotclient._wire import wire_summary

from support.responses import SERVER, TLS

UNAUTHENTICATED = TLSInfo(
    version="TLSv1.2",
    cipher="ECDHE-ECDSA-AES128-GCM-SHA256",
    alpn=None,
    authenticated=False,
    auth_error="certificate verify failed",
    peer_pins=(),
)


def message(
    qname: str, qtype: str, *records: str, rcode: dns.rcode.Rcode = dns.rcode.NOERROR
) -> dns.message.Message:
    """A response to (qname, qtype) whose answer holds ``records`` ("owner TYPE rdata")."""
    query = dns.message.make_query(qname, qtype)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    for record in records:
        owner, rdtype, rdata = record.split(" ", 2)
        rrset = response.find_rrset(
            response.answer,
            dns.name.from_text(owner),
            dns.rdataclass.IN,
            dns.rdatatype.from_text(rdtype),
            create=True,
        )
        rrset.update_ttl(300)
        rrset.add(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), rdata))
    return response


def respond(
    msg: dns.message.Message | bytes, tls: TLSInfo = TLS, elapsed: float = 0.0123
) -> Response:
    return Response(msg, SERVER, elapsed, tls)


CHAIN = (
    "www.example.test. CNAME alias.example.test.",
    "alias.example.test. CNAME a.example.test.",
    "a.example.test. A 192.0.2.1",
    "a.example.test. A 192.0.2.2",
)


def test_basic_properties() -> None:
    msg = message("a.example.test.", "A", "a.example.test. A 192.0.2.1")
    response = respond(msg)
    assert response.message is msg
    assert response.server is SERVER
    assert response.rcode == dns.rcode.NOERROR
    assert response.answer is msg.answer
    assert response.question == (dns.name.from_text("a.example.test."), dns.rdatatype.A)
    assert response.authenticated is True
    assert response.tls_version == "TLSv1.3"
    assert response.tls is TLS
    assert response.elapsed == pytest.approx(0.0123)


def test_rrset_follows_a_cname_chain() -> None:
    response = respond(message("www.example.test.", "A", *CHAIN))
    rrset = response.rrset
    assert rrset is not None
    assert rrset.name == dns.name.from_text("a.example.test.")
    assert rrset.rdtype == dns.rdatatype.A
    assert sorted(r.address for r in rrset) == ["192.0.2.1", "192.0.2.2"]
    assert response.addresses() == [r.address for r in rrset]


def test_rrset_follows_a_chain_listed_out_of_order() -> None:
    response = respond(message("www.example.test.", "A", *reversed(CHAIN)))
    rrset = response.rrset
    assert rrset is not None
    assert rrset.name == dns.name.from_text("a.example.test.")


def test_rrset_direct_answer_case_insensitive_owner() -> None:
    response = respond(message("A.Example.TEST.", "A", "a.example.test. A 192.0.2.7"))
    assert response.addresses() == ["192.0.2.7"]


def test_rrset_none_when_absent() -> None:
    assert respond(message("nx.example.test.", "A", rcode=dns.rcode.NXDOMAIN)).rrset is None
    # Data for another name, or another type of the same name, is not the answer.
    other = respond(message("a.example.test.", "A", "b.example.test. A 192.0.2.1"))
    assert other.rrset is None
    assert other.addresses() == []
    aaaa_only = respond(message("a.example.test.", "A", "a.example.test. AAAA 2001:db8::1"))
    assert aaaa_only.rrset is None


def test_rrset_none_when_the_chain_ends_without_data() -> None:
    response = respond(message("www.example.test.", "A", *CHAIN[:2]))  # Unbound's local-data
    assert response.rrset is None
    assert response.addresses() == []


def test_rrset_none_for_a_questionless_response() -> None:
    msg = message("a.example.test.", "A", rcode=dns.rcode.REFUSED)
    msg.question = []
    response = respond(msg)
    assert response.question is None
    assert response.rrset is None
    assert response.addresses() == []


def _within(seconds: float, func: Callable[[], object]) -> object:
    """Run ``func`` in a daemon thread; fail (instead of hanging) if it does not finish."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(func()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "did not finish: CNAME loop?"
    return result[0]


def test_cname_loop_terminates() -> None:
    loop = message(
        "www.example.test.",
        "A",
        "www.example.test. CNAME alias.example.test.",
        "alias.example.test. CNAME www.example.test.",
    )
    assert _within(5, lambda: respond(loop).rrset) is None
    self_loop = message("x.example.test.", "A", "x.example.test. CNAME x.example.test.")
    assert _within(5, lambda: respond(self_loop).rrset) is None
    assert _within(5, respond(self_loop).addresses) == []


def _chain(hops: int) -> Response:
    records = [f"h{i}.example.test. CNAME h{i + 1}.example.test." for i in range(hops)]
    return respond(
        message("h0.example.test.", "A", *records, f"h{hops}.example.test. A 192.0.2.9")
    )


def test_long_cname_chain_is_cut_off() -> None:
    assert _chain(15).addresses() == ["192.0.2.9"]  # 16 names: the limit
    assert _chain(16).rrset is None
    assert _chain(40).rrset is None


def test_qtype_cname_returns_the_cname_itself() -> None:
    response = respond(message("www.example.test.", "CNAME", *CHAIN))
    rrset = response.rrset
    assert rrset is not None
    assert rrset.rdtype == dns.rdatatype.CNAME
    assert rrset.name == dns.name.from_text("www.example.test.")
    assert rrset[0].target == dns.name.from_text("alias.example.test.")
    assert response.addresses() == []


def test_addresses_a_and_aaaa() -> None:
    a = respond(message("a.example.test.", "A", "a.example.test. A 192.0.2.1"))
    assert a.addresses() == ["192.0.2.1"]
    aaaa = respond(
        message(
            "a.example.test.",
            "AAAA",
            "a.example.test. AAAA 2001:db8::1",
            "a.example.test. AAAA 2001:db8::2",
        )
    )
    assert sorted(aaaa.addresses()) == ["2001:db8::1", "2001:db8::2"]
    via_cname = respond(
        message(
            "www.example.test.",
            "AAAA",
            "www.example.test. CNAME a.example.test.",
            "a.example.test. AAAA 2001:db8::1",
        )
    )
    assert via_cname.addresses() == ["2001:db8::1"]


def test_addresses_empty_for_mx() -> None:
    response = respond(message("example.test.", "MX", "example.test. MX 10 mail.example.test."))
    assert response.rrset is not None
    assert response.rrset.rdtype == dns.rdatatype.MX
    assert response.addresses() == []


def test_raise_for_rcode_returns_self_on_noerror() -> None:
    response = respond(message("a.example.test.", "A", "a.example.test. A 192.0.2.1"))
    assert response.raise_for_rcode() is response
    nodata = respond(message("a.example.test.", "TXT"))
    assert nodata.raise_for_rcode() is nodata


@pytest.mark.parametrize(
    ("rcode", "text"),
    [
        (dns.rcode.NXDOMAIN, "NXDOMAIN"),
        (dns.rcode.SERVFAIL, "SERVFAIL"),
        (dns.rcode.REFUSED, "REFUSED"),
    ],
)
def test_raise_for_rcode_raises(rcode: dns.rcode.Rcode, text: str) -> None:
    response = respond(message("nx.example.test.", "A", rcode=rcode))
    with pytest.raises(RcodeError) as info:
        response.raise_for_rcode()
    error = info.value
    assert isinstance(error, dotclient.DoTError)
    assert error.response is response
    assert error.rcode == rcode
    assert error.server is SERVER
    assert str(error) == f"nx.example.test. A: {text} from {SERVER}"


def test_raise_for_rcode_questionless() -> None:
    msg = message("a.example.test.", "A", rcode=dns.rcode.FORMERR)
    msg.question = []
    with pytest.raises(RcodeError, match="^query: FORMERR from"):
        respond(msg).raise_for_rcode()


def test_rcode_error_without_response() -> None:
    error = RcodeError("x")
    assert error.response is None
    assert error.rcode is None


def test_repr() -> None:
    text = repr(respond(message("www.example.test.", "AAAA", *CHAIN), elapsed=0.0125))
    assert text == (
        "<Response www.example.test. AAAA NOERROR from 192.0.2.53:853#dot.test 12.5 ms TLSv1.3>"
    )
    assert "UNAUTHENTICATED" not in text


def test_repr_unauthenticated_and_rcode() -> None:
    response = respond(
        message("nx.example.test.", "A", rcode=dns.rcode.NXDOMAIN), tls=UNAUTHENTICATED
    )
    text = repr(response)
    assert text.startswith("<Response nx.example.test. A NXDOMAIN from 192.0.2.53:853")
    assert text.endswith("TLSv1.2 UNAUTHENTICATED>")
    assert response.authenticated is False


def test_repr_questionless() -> None:
    msg = message("a.example.test.", "A", rcode=dns.rcode.REFUSED)
    msg.question = []
    assert repr(respond(msg)).startswith("<Response ? REFUSED from ")


def test_response_is_frozen_and_pickles() -> None:
    response = respond(message("a.example.test.", "A", "a.example.test. A 192.0.2.1"))
    with pytest.raises(AttributeError):
        response.elapsed = 1.0  # type: ignore[misc]
    clone = pickle.loads(pickle.dumps(response))
    assert clone.addresses() == ["192.0.2.1"]
    assert clone.server == SERVER
    assert clone.tls == TLS


# -- built from the received bytes: parsed only when needed -------------------------------


class _CountParses:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = dns.message.from_wire

        def counting(*args: object, **kwargs: object) -> dns.message.Message:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(dns.message, "from_wire", counting)


def padded(msg: dns.message.Message, *options: dns.edns.Option) -> bytes:
    """``msg`` in wire format with EDNS(0), padded as a DoT server pads (RFC 8467)."""
    msg.use_edns(0, msg.ednsflags, 1232, options=list(options), pad=468)
    return msg.to_wire()


def test_bytes_response_parses_only_when_the_message_is_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wire = padded(message("www.example.test.", "A", *CHAIN))
    parses = _CountParses(monkeypatch)
    response = respond(wire)
    assert response.rcode == dns.rcode.NOERROR
    assert response.question == (dns.name.from_text("www.example.test."), dns.rdatatype.A)
    assert repr(response).startswith("<Response www.example.test. A NOERROR from ")
    assert response.raise_for_rcode() is response
    assert response.wire == wire
    assert response.resumed is False
    assert response.server is SERVER
    # What users read is decoded from the bytes (issue 13), not by dns.message.from_wire.
    assert response.answer[0].rdtype == dns.rdatatype.CNAME
    assert sorted(response.addresses()) == ["192.0.2.1", "192.0.2.2"]
    assert response.rrset is not None
    assert response.ttl is not None
    assert response.flags & dns.flags.QR
    assert parses.calls == 0
    first = response.message
    assert response.message is first
    assert parses.calls == 1
    assert response.answer == first.answer


@pytest.mark.parametrize("attribute", ["message", "answer", "rrset", "ttl", "flags"])
def test_each_accessor_parses_at_most_once(
    monkeypatch: pytest.MonkeyPatch, attribute: str
) -> None:
    # CAA is not among the types the lean reader mirrors: everything comes from the message.
    wire = padded(message("a.example.test.", "CAA", 'a.example.test. CAA 0 issue "ca.test"'))
    parses = _CountParses(monkeypatch)
    response = respond(wire)
    getattr(response, attribute)
    getattr(response, attribute)
    assert parses.calls == 1
    assert response.rrset == response.message.answer[0]
    assert parses.calls == 1


def _cases() -> list[dns.message.Message]:
    questionless = message("a.example.test.", "A", rcode=dns.rcode.REFUSED)
    questionless.question = []
    return [
        message("www.example.test.", "A", *CHAIN),
        message("www.example.test.", "AAAA", *reversed(CHAIN)),
        message("nx.example.test.", "A", rcode=dns.rcode.NXDOMAIN),
        message("a.example.test.", "TXT", rcode=dns.rcode.SERVFAIL),
        message("x.example.test.", "A", "x.example.test. CNAME x.example.test."),
        message("example.test.", "MX", "example.test. MX 10 mail.example.test."),
        message("a.example.test.", "TYPE65280"),
        questionless,
    ]


@pytest.mark.parametrize("case", range(len(_cases())))
@pytest.mark.parametrize("pad", [False, True])
def test_bytes_and_message_responses_agree(case: int, pad: bool) -> None:
    msg = _cases()[case]
    wire = padded(msg) if pad else msg.to_wire()
    from_bytes = respond(wire, elapsed=0.5)
    from_message = respond(dns.message.from_wire(wire), elapsed=0.5)
    assert from_bytes.rcode == from_message.rcode
    assert type(from_bytes.rcode) is type(from_message.rcode)
    assert from_bytes.question == from_message.question
    assert repr(from_bytes) == repr(from_message)
    assert from_bytes.addresses() == from_message.addresses()
    assert (from_bytes.rrset is None) == (from_message.rrset is None)
    assert from_bytes.wire == from_message.wire == wire
    assert from_bytes.message == from_message.message
    if from_bytes.rcode != dns.rcode.NOERROR:
        with pytest.raises(RcodeError) as one:
            from_bytes.raise_for_rcode()
        with pytest.raises(RcodeError) as other:
            from_message.raise_for_rcode()
        assert str(one.value) == str(other.value)


def test_extended_rcode_comes_from_the_opt_record(monkeypatch: pytest.MonkeyPatch) -> None:
    msg = message("a.example.test.", "A")
    msg.use_edns(0, 0, 1232)
    msg.set_rcode(dns.rcode.BADVERS)  # 16: the upper bits live in the OPT TTL
    wire = msg.to_wire()
    assert wire[3] & 0x0F == 0
    parses = _CountParses(monkeypatch)
    response = respond(wire)
    assert response.rcode == dns.rcode.BADVERS
    with pytest.raises(RcodeError, match="BADVERS"):
        response.raise_for_rcode()
    assert parses.calls == 0


def test_dnssec_records_do_not_force_a_parse_for_rcode(monkeypatch: pytest.MonkeyPatch) -> None:
    msg = message("a.example.test.", "A", "a.example.test. A 192.0.2.1")
    msg.answer.append(
        dns.rrset.from_text(
            "a.example.test.", 300, "IN", "RRSIG",
            "A 13 3 300 20300101000000 20200101000000 12345 example.test. AAAA",
        )
    )  # fmt: skip
    parses = _CountParses(monkeypatch)
    response = respond(padded(msg))
    assert response.rcode == dns.rcode.NOERROR
    assert response.question is not None
    assert parses.calls == 0
    assert response.addresses() == ["192.0.2.1"]


def test_questionless_bytes_response() -> None:
    msg = message("a.example.test.", "A", rcode=dns.rcode.REFUSED)
    msg.question = []
    response = respond(msg.to_wire())
    assert response.question is None
    assert repr(response).startswith("<Response ? REFUSED from ")
    assert response.rrset is None


def test_malformed_bytes_raise_protocol_error_naming_the_server() -> None:
    response = respond(b"\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x07example")
    with pytest.raises(dotclient.ProtocolError, match=r"malformed response from 192\.0\.2\.53"):
        _ = response.message
    with pytest.raises(dotclient.ProtocolError):
        _ = response.rcode
    with pytest.raises(dotclient.ProtocolError):
        response.addresses()


def test_wire_of_a_message_built_response() -> None:
    received = padded(message("a.example.test.", "A", "a.example.test. A 192.0.2.1"))
    assert respond(dns.message.from_wire(received)).wire == received
    built = message("a.example.test.", "A", "a.example.test. A 192.0.2.1")
    wire = respond(built).wire
    assert dns.message.from_wire(wire).answer == built.answer


def test_resumed_comes_from_the_tls_info() -> None:
    resumed = TLSInfo(
        version="TLSv1.3",
        cipher=None,
        alpn=None,
        authenticated=True,
        auth_error=None,
        peer_pins=(),
        resumed=True,
    )
    msg = message("a.example.test.", "A")
    assert respond(msg, tls=resumed).resumed is True
    assert respond(msg).resumed is False


def test_bytes_response_is_immutable_and_pickles(monkeypatch: pytest.MonkeyPatch) -> None:
    wire = padded(message("a.example.test.", "A", "a.example.test. A 192.0.2.1"))
    response = respond(wire)
    for name in ("elapsed", "message", "wire", "_message", "_wire", "other"):
        with pytest.raises(AttributeError):
            setattr(response, name, None)
    with pytest.raises(AttributeError):
        del response._wire
    parses = _CountParses(monkeypatch)
    clone = pickle.loads(pickle.dumps(response))
    assert clone.wire == wire
    assert clone.rcode == dns.rcode.NOERROR
    assert parses.calls == 0
    assert clone.addresses() == ["192.0.2.1"]
    assert clone.tls == TLS


@settings(max_examples=300, deadline=None)
@given(
    case=st.integers(0, len(_cases()) - 1),
    flips=st.lists(st.tuples(st.integers(2, 400), st.integers(0, 7)), max_size=3),
    cut=st.integers(0, 40),
)
def test_wire_summary_agrees_with_dnspython(
    case: int, flips: list[tuple[int, int]], cut: int
) -> None:
    wire = bytearray(padded(_cases()[case]))
    for pos, bit in flips:
        if pos < len(wire):
            wire[pos] ^= 1 << bit
    if cut:
        del wire[-cut:]
    summary = wire_summary(bytes(wire))
    try:
        msg = dns.message.from_wire(bytes(wire))
    except Exception:
        return  # the summary may say anything for bytes that do not parse
    if summary is not None:
        q = msg.question[0] if msg.question else None
        assert summary == (msg.rcode(), (q.name, q.rdtype) if q is not None else None)


def _answer_wire(*, edns: bool, extended: int = 0, additional: str | None = None) -> bytes:
    query = dns.message.make_query("www.example.test", "A", use_edns=0 if edns else None)
    query.id = 4660
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text("www.example.test.", 300, "IN", "A", "192.0.2.1"))
    reply.authority.append(
        dns.rrset.from_text("example.test.", 300, "IN", "NS", "ns.example.test.")
    )
    if additional is not None:
        reply.additional.append(dns.rrset.from_text(additional, 300, "IN", "A", "192.0.2.53"))
    if edns:
        padding = dns.edns.GenericOption(dns.edns.OptionType.PADDING, bytes(300))
        reply.use_edns(0, 0, 1232, options=[padding])
        reply.set_rcode(dns.rcode.NOERROR if not extended else dns.rcode.BADVERS)
    return reply.to_wire()


@pytest.mark.parametrize("glue", [None, "ns.example.test."])
def test_a_query_without_edns_gets_the_answer_without_the_hops_opt(glue: str | None) -> None:
    # dnspython's resolver asks without EDNS; the client adds it (for padding) on the
    # encrypted hop. The adapter hands back what a server answers a query without EDNS:
    # the same message, no OPT (and no padding to parse: a third of a small answer).
    response = Response(_answer_wire(edns=True, additional=glue), SERVER, 0.01, TLS)
    plain = response._message_without_edns()
    full = dns.message.from_wire(_answer_wire(edns=True, additional=glue))
    assert plain.edns == -1 and full.edns == 0
    assert (plain.id, plain.flags, plain.rcode()) == (full.id, full.flags, full.rcode())
    assert plain.question == full.question and plain.answer == full.answer
    assert plain.authority == full.authority and plain.additional == full.additional
    assert plain.to_wire() == _answer_wire(edns=False, additional=glue)


def test_an_opt_that_carries_an_extended_rcode_stays() -> None:
    response = Response(_answer_wire(edns=True, extended=1), SERVER, 0.01, TLS)
    assert response._message_without_edns().rcode() == dns.rcode.BADVERS
    plain = Response(_answer_wire(edns=False), SERVER, 0.01, TLS)
    assert plain._message_without_edns().edns == -1  # nothing to remove
