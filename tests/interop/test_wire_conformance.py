"""Behaviour that existed without a test, checked on the wire or against a real server.

- Each query is one write of length prefix and message together, so one TLS record per
  query (RFC 7766 section 8: "the 2-byte message length field and the message ... in a
  single write"; one record per query is also what dnsdist needs to pipeline), seen
  from the server's side: its TLS layer returns one record per read.
- A TSIG-signed query is padded (RFC 8467) with the padding inside the signed message,
  and BIND verifies it and signs its answer, which the client verifies (RFC 8945).
- BIND answers a pipelined burst out of order; every answer still reaches its query
  (RFC 7766 section 7, RFC 7858 section 3.3).
"""

from __future__ import annotations

import collections
import socket
import ssl
import struct
from typing import Any

import dns.message
import dns.tsig
import dns.tsigkeyring
import pytest

import dotclient
from dotclient._backends import _async as _async_backend
from dotclient._backends import _sync as _sync_backend
from dotclient._protocol import DoTProtocol
from dotclient.testing import IssuedCert, NamedServer

from support.fakeserver import FakeConnection, FakeServer, answer
from support.modes import open_client

# -- one write, one TLS record, per query ----------------------------------------------


def _record_per_read_handler(reads: list[bytes]) -> Any:
    """Answer every query, keeping each plaintext read. OpenSSL's SSL_read returns the
    data of one TLS record at most, so each read is one record (or a part of one)."""

    def handler(conn: FakeConnection) -> None:
        buffer = b""
        while data := conn.sock.recv(65536):
            reads.append(data)
            buffer += data
            while len(buffer) >= 2 and len(buffer) >= 2 + struct.unpack_from("!H", buffer)[0]:
                length = struct.unpack_from("!H", buffer)[0]
                conn.send_message(answer(dns.message.from_wire(buffer[2 : 2 + length])))
                buffer = buffer[2 + length :]

    return handler


def _is_one_frame(data: bytes) -> bool:
    return len(data) >= 2 and struct.unpack_from("!H", data)[0] == len(data) - 2


def test_each_query_is_one_tls_record(mode: str, server_cert: IssuedCert, ca_file: str) -> None:
    reads: list[bytes] = []
    names = [f"q{i}.test" for i in range(60)]
    message = dns.message.make_query("message.test", "TXT")
    with FakeServer(server_cert, _record_per_read_handler(reads)) as server:
        with open_client(mode, server.spec, ca_file=ca_file) as client:
            outcomes = client.resolve_many(names)  # pipelined
            assert all(isinstance(o, dotclient.Response) for o in outcomes)
            client.query(message)  # the caller's-message path
    assert len(reads) == len(names) + 1
    assert all(_is_one_frame(data) for data in reads), [
        len(d) for d in reads if not _is_one_frame(d)
    ]


def test_the_record_check_sees_split_and_joined_writes(server_cert: IssuedCert) -> None:
    """The control: a client that writes the length apart from the message, or two
    queries in one write, is seen as such by the same server."""
    reads: list[bytes] = []
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    wires = [dns.message.make_query(f"q{i}.test", "A").to_wire() for i in range(3)]
    with FakeServer(server_cert, _record_per_read_handler(reads)) as server:
        with context.wrap_socket(socket.create_connection(("127.0.0.1", server.port))) as tls:
            tls.sendall(struct.pack("!H", len(wires[0])))  # length alone
            tls.sendall(wires[0])
            tls.sendall(b"".join(struct.pack("!H", len(w)) + w for w in wires[1:]))  # joined
            for _ in range(3):
                assert tls.recv(65536)
        server.wait_handlers()
    assert [_is_one_frame(data) for data in reads] == [False, False, False]


# -- TSIG and padding, with BIND -------------------------------------------------------

_TSIG_NAME = "dotclient-test-key."
_TSIG_SECRET = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="
_KEYRING = dns.tsigkeyring.from_text({_TSIG_NAME: _TSIG_SECRET})


class _TsigNamed(NamedServer):
    """named with one TSIG key (a top-level ``key`` clause, outside ``options``)."""

    def _config(self, tmpdir: str) -> str:
        return super()._config(tmpdir) + (
            f'key "{_TSIG_NAME}" {{ algorithm hmac-sha256; secret "{_TSIG_SECRET}"; }};\n'
        )


@pytest.fixture(scope="module")
def tsig_named(server_cert: IssuedCert) -> Any:
    from support.servers import start_server as _start

    server = _start(_TsigNamed, server_cert)
    try:
        yield server
    finally:
        server.stop()


def _signed(name: str, keyring: Any = _KEYRING) -> dns.message.Message:
    message = dns.message.make_query(name, "A")
    message.use_tsig(keyring, keyname=_TSIG_NAME, algorithm=dns.tsig.HMAC_SHA256)
    return message


def test_a_signed_query_is_padded_and_verifies_at_bind(
    mode: str, tsig_named: NamedServer, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[bytes] = []
    send_query = DoTProtocol.send_query

    def spy(self: DoTProtocol, message: dns.message.Message) -> tuple[int, bytes]:
        qid, data = send_query(self, message)
        sent.append(data[2:])
        return qid, data

    monkeypatch.setattr(DoTProtocol, "send_query", spy)
    spec = f"127.0.0.1:{tsig_named.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file) as client:
        response = client.query(_signed("a.example.test"))
    # What went out: padded to the 128-octet block, the TSIG last and valid.
    (wire,) = sent
    assert len(wire) % 128 == 0
    on_the_wire = dns.message.from_wire(wire, keyring=_KEYRING)
    assert on_the_wire.had_tsig
    assert any(o.otype == dns.edns.OptionType.PADDING for o in on_the_wire.options)
    # BIND verified it (else BADSIG, unsigned) and signed its answer, verified here.
    assert response.rcode.name == "NOERROR" and response.message.had_tsig
    assert sorted(response.addresses()) == ["192.0.2.1", "192.0.2.2"]


def test_bind_rejects_a_query_signed_with_another_key(
    mode: str, tsig_named: NamedServer, ca_file: str
) -> None:
    """The control: a wrong secret under the same key name gets no verified answer."""
    wrong = dns.tsigkeyring.from_text({_TSIG_NAME: "b3RoZXJrZXlvdGhlcmtleW90aGVya2V5b3RoZXI="})
    spec = f"127.0.0.1:{tsig_named.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file) as client:
        with pytest.raises(dotclient.ProtocolError):
            client.query(_signed("a.example.test", wrong))


# -- out of order, from BIND -----------------------------------------------------------

_BURSTS = 20


def test_bind_answers_out_of_order_and_each_answer_finds_its_query(
    mode: str, named: NamedServer, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The order on the wire is the order of the stream writes (one per query, under
    # the connection's write lock), not the order IDs were drawn in (threads race).
    sent: list[int] = []
    arrived: list[int] = []
    sync_write = _sync_backend.SyncStream.write
    async_write = _async_backend.AsyncStream.write
    receive_data = DoTProtocol.receive_data

    def spy_sync_write(self: Any, data: bytes, timeout: float) -> None:
        sent.append(struct.unpack_from("!H", data, 2)[0])
        sync_write(self, data, timeout)

    async def spy_async_write(self: Any, data: bytes, timeout: float) -> None:
        sent.append(struct.unpack_from("!H", data, 2)[0])
        await async_write(self, data, timeout)

    def spy_receive(self: DoTProtocol, data: bytes) -> list[int]:
        ready = receive_data(self, data)
        arrived.extend(ready)
        return ready

    monkeypatch.setattr(_sync_backend.SyncStream, "write", spy_sync_write)
    monkeypatch.setattr(_async_backend.AsyncStream, "write", spy_async_write)
    monkeypatch.setattr(DoTProtocol, "receive_data", spy_receive)
    names = ["a.example.test", "www.example.test", "nx.example.test", "mail.example.test"]
    spec = f"127.0.0.1:{named.port}#dot.test"
    # Whether BIND reorders a given burst depends on how its worker threads meet the
    # queries, i.e. on scheduling: bursts go on (a bounded number) until one came back
    # out of order, and every burst must match each answer to its query.
    reordered_in = None
    with open_client(mode, spec, ca_file=ca_file) as client:
        client.resolve("a.example.test")  # the connection is up before the burst
        for attempt in range(1, _BURSTS + 1):
            sent.clear()
            arrived.clear()
            burst = [names[i % len(names)] for i in range(200)]
            outcomes = client.resolve_many(burst)
            for name, outcome in zip(burst, outcomes, strict=True):
                assert isinstance(outcome, dotclient.Response), outcome
                assert outcome.message.question[0].name.to_text() == name + "."
            # An ID freed by its answer may be drawn again later in the burst: match
            # each arrival to the earliest send of its ID not yet answered.
            positions: dict[int, collections.deque[int]] = collections.defaultdict(
                collections.deque
            )
            for index, qid in enumerate(sent):
                positions[qid].append(index)
            order = [positions[qid].popleft() for qid in arrived]
            assert sorted(order) == list(range(len(sent)))  # every query answered, once
            if any(b < a for a, b in zip(order, order[1:], strict=False)):
                reordered_in = attempt
                break
        assert client.stats.connections_opened == 1
    assert reordered_in is not None, f"BIND answered {_BURSTS} bursts of 200 in order"
