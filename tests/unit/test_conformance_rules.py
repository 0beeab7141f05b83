"""Protocol rules of RFC 7858 and RFC 7828 that need no TLS peer to check.

- A DoT server's port is never 53 (RFC 7858 section 3.1), in the library and the CLI.
- The edns-tcp-keepalive option goes out empty, even from a caller's message with a
  TIMEOUT (RFC 7828 section 3.2.1), checked on what the server received; an answer
  without the option after one was offered means the server does not support it, and
  the connection's idle timeout is the client's own again (section 3.2.2).

What a scripted server received (the empty keepalive option, zero padding octets) is
checked in tests/servers/test_conformance_rules_io.py.
"""

from __future__ import annotations

import dns.edns
import dns.message
import dns.name
import pytest

import dotclient
from dotclient import InvalidServerSpec, Server, parse_server
from dotclient._protocol import DoTProtocol
from dotclient.cli import main

from support.checks import KEEPALIVE


@pytest.mark.parametrize(
    "spec", ["127.0.0.1:53", "127.0.0.1@53", "[::1]:53", "dns.test:53#dot.test", "dns.test@53"]
)
def test_port_53_is_refused(spec: str) -> None:
    """RFC 7858 section 3.1: an alternative DoT port MUST NOT be 53."""
    with pytest.raises(InvalidServerSpec, match="RFC 7858 section 3.1"):
        parse_server(spec)
    with pytest.raises(InvalidServerSpec, match="RFC 7858 section 3.1"):
        dotclient.Client(spec)


def test_port_53_is_refused_in_a_server_value() -> None:
    with pytest.raises(InvalidServerSpec, match="must not be 53"):
        Server("127.0.0.1", 53)
    with pytest.raises(InvalidServerSpec, match="must not be 53"):
        dotclient.Client(servers=["127.0.0.1:8853", Server("127.0.0.1", 853).replace(port=53)])
    assert Server("127.0.0.1", 5353).port == 5353  # other ports stay open to agreement


@pytest.mark.parametrize(
    "argv",
    [
        ["a.example.test", "@127.0.0.1:53"],
        ["probe", "127.0.0.1:53"],
    ],
)
def test_port_53_is_a_usage_error_in_the_cli(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "must not be 53" in err


def _respond(data: bytes, keepalive: bytes | None) -> bytes:
    query = dns.message.from_wire(data[2:])
    response = dns.message.make_response(query)
    options = [] if keepalive is None else [dns.edns.GenericOption(KEEPALIVE, keepalive)]
    response.use_edns(0, options=options)
    wire = response.to_wire()
    return len(wire).to_bytes(2, "big") + wire


@pytest.mark.parametrize("lean", [True, False], ids=["question", "message"])
def test_a_withdrawn_keepalive_offer_is_forgotten(lean: bool) -> None:
    """RFC 7828 section 3.2.2: a response without the option to a query that offered it
    means no keepalive support, "even if a previous edns-keepalive-option exchange
    occurred on the existing TCP connection"."""
    proto = DoTProtocol(keepalive=True)

    def exchange(keepalive: bytes | None) -> None:
        if lean:
            qid, data = proto.send_question(dns.name.from_text("a.test."), 1, 1)
        else:
            qid, data = proto.send_query(dns.message.make_query("a.test", "A"))
        proto.receive_data(_respond(data, keepalive))
        assert proto.result(qid) is not None

    exchange(b"\x01\x2c")  # 300 x 100 ms
    assert proto.keepalive_timeout == 30.0
    exchange(b"")  # present but empty: no new offer, the old one stands
    assert proto.keepalive_timeout == 30.0
    exchange(None)
    assert proto.keepalive_timeout is None


def test_no_offer_no_withdrawal() -> None:
    """Without the option in the query, an answer without it says nothing."""
    proto = DoTProtocol(keepalive=False)
    qid, data = proto.send_query(dns.message.make_query("a.test", "A"))
    proto.receive_data(_respond(data, b"\x00\x05"))
    assert proto.result(qid) is not None and proto.keepalive_timeout == 0.5
    qid, data = proto.send_question(dns.name.from_text("a.test."), 1, 1)
    proto.receive_data(_respond(data, None))
    assert proto.result(qid) is not None and proto.keepalive_timeout == 0.5
