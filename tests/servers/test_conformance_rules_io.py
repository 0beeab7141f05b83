"""RFC 7828 rules checked on what a scripted server received: the keepalive option goes
out empty, padding octets are zero (the rules that need no peer:
tests/unit/test_conformance_rules.py)."""

from __future__ import annotations

import dns.edns
import dns.message
import dns.name
import pytest

from dotclient.testing import IssuedCert

from support.checks import KEEPALIVE
from support.fakeserver import FakeConnection, FakeServer, answer
from support.modes import open_client


@pytest.mark.parametrize("keepalive", [False, True])
def test_a_callers_keepalive_timeout_is_not_sent(
    mode: str, server_cert: IssuedCert, ca_file: str, keepalive: bool
) -> None:
    """RFC 7828 section 3.2.1: clients MUST send the option with OPTION-LENGTH 0."""
    received: list[dns.message.Message] = []

    def handler(conn: FakeConnection) -> None:
        while (query := conn.read_query()) is not None:
            received.append(query)
            conn.send_message(answer(query))

    message = dns.message.make_query("a.test", "A")
    message.use_edns(0, options=[dns.edns.GenericOption(KEEPALIVE, b"\x01\x2c")])
    with FakeServer(server_cert, handler) as server:
        with open_client(mode, server.spec, ca_file=ca_file, keepalive=keepalive) as client:
            response = client.query(message)
    assert message.is_response(response.message)
    (query,) = received
    assert _keepalive_data(query) == [b""]
    assert _keepalive_data(message) == [b"\x01\x2c"]  # the caller's object is untouched


def test_padding_octets_are_zero(mode: str, server_cert: IssuedCert, ca_file: str) -> None:
    """RFC 7830 section 3: "The PADDING octets SHOULD be set to 0x00"; on both paths."""
    message = dns.message.make_query("message.test", "TXT")
    with FakeServer(server_cert) as server:
        with open_client(mode, server.spec, ca_file=ca_file) as client:
            client.resolve("a.test")
            client.query(message)
    assert len(server.frames) == 2
    for wire in server.frames:
        (padding,) = [
            o.to_wire() or b""
            for o in dns.message.from_wire(wire).options
            if o.otype == dns.edns.OptionType.PADDING
        ]
        assert padding and padding == bytes(len(padding))


def _keepalive_data(message: dns.message.Message) -> list[bytes]:
    return [o.to_wire() or b"" for o in message.options if o.otype == KEEPALIVE]
