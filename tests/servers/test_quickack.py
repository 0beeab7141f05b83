"""Quick ACKs where a server without TCP_NODELAY needs them, and only there.

A server that does not set TCP_NODELAY holds what it writes behind an unacknowledged
segment until our ACK comes (Nagle), and a delayed ACK takes ~40 ms. The streams ask
the kernel for a quick ACK (``quickack()``) before they wait while something received
is unacknowledged; a write of ours carries the ACK, so sequential lookups on a kept
connection need none (each used to cost a system call and a bare ACK packet). These
tests count the calls, so no verdict rests on timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import dotclient
from dotclient._backends import _async_stream, _sync_stream
from dotclient._backends import quickack as real_quickack
from dotclient.testing import IssuedCert

from support.fakeserver import FakeConnection, FakeServer, answer, echo_handler, frame
from support.modes import open_client


class Recorder:
    """Counts quickack() calls (passing them on to the real one)."""

    def __init__(self) -> None:
        self.calls = 0
        self.after: threading.Event | None = None
        self.seen_after = threading.Event()

    def __call__(self, sock: Any) -> None:
        self.calls += 1
        if self.after is not None and self.after.is_set():
            self.seen_after.set()
        real_quickack(sock)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    recorder = Recorder()
    monkeypatch.setattr(_sync_stream, "quickack", recorder)
    monkeypatch.setattr(_async_stream, "quickack", recorder)
    yield recorder


def test_sequential_lookups_on_a_kept_connection_need_no_quick_ack(
    mode: str, server_cert: IssuedCert, ca_file: str, recorder: Recorder
) -> None:
    with FakeServer(server_cert, echo_handler) as server:
        with open_client(mode, server.spec, ca_file=ca_file, timeout=10) as client:
            client.resolve("first.test")
            before = recorder.calls
            for i in range(20):
                assert client.resolve(f"n{i}.test").addresses() == ["192.0.2.53"]
            assert recorder.calls == before


def test_an_answer_in_two_parts_is_acknowledged_before_waiting_for_the_rest(
    mode: str, server_cert: IssuedCert, ca_file: str, recorder: Recorder
) -> None:
    # The server writes the first 7 octets of the answer and, as a server under Nagle
    # would, the rest only once the client acknowledged them: here once the client has
    # asked for a quick ACK after that first part came (bounded, so a fault fails).
    first_part = threading.Event()
    recorder.after = first_part
    acknowledged: list[bool] = []

    def handler(conn: FakeConnection) -> None:
        while (query := conn.read_query()) is not None:
            wire = frame(answer(query))
            if str(query.question[0].name) != "split.test.":
                conn.send(wire)
                continue
            first_part.set()
            conn.send(wire[:7])
            acknowledged.append(recorder.seen_after.wait(10))
            conn.send(wire[7:])

    with FakeServer(server_cert, handler) as server:
        with open_client(mode, server.spec, ca_file=ca_file, timeout=20) as client:
            client.resolve("warm.test")
            assert client.resolve("split.test").addresses() == ["192.0.2.53"]
    assert acknowledged == [True]


class _FakeTLSLayer:
    """Stands for asyncio's SSLProtocol: each raw read hands the stream what it
    decrypted, if anything."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def buffer_updated(self, decrypted: bytes) -> None:
        if decrypted:
            self.stream.data_received(decrypted)


class _FakeTransport:
    def __init__(self, tls: _FakeTLSLayer) -> None:
        self._ssl_protocol = tls


def test_a_raw_read_with_nothing_for_a_waiting_reader_is_acknowledged_at_once(
    recorder: Recorder,
) -> None:
    # TLS 1.3 session tickets come after the first query went out and never reach
    # data_received: asyncio's TLS layer reads them, and the reader waits on. Such a
    # read must ask for the ACK at once (a server under Nagle holds the answer behind
    # the tickets until our delayed ACK); a read that brings data for the reader, or
    # one with no reader waiting, need not.
    async def main() -> list[int]:
        stream = _async_stream.StreamProtocol()
        tls = _FakeTLSLayer(stream)
        assert _async_stream.watch_raw_reads(_FakeTransport(tls), stream)
        calls = []
        tls.buffer_updated(b"")  # nobody waits
        calls.append(recorder.calls)
        stream.reader = asyncio.get_running_loop().create_future()
        tls.buffer_updated(b"")  # a ticket while the reader waits
        calls.append(recorder.calls)
        tls.buffer_updated(b"\x00\x20")  # data: the reader is woken instead
        calls.append(recorder.calls)
        return calls

    assert asyncio.run(main()) == [0, 1, 1]


def test_asyncio_connections_watch_their_raw_reads(
    server_cert: IssuedCert, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On this Python's own asyncio transport the watch is in place (it is private
    # API: this fails, rather than the ACK silently going missing, if it moves).
    installed: list[bool] = []
    watch = _async_stream.watch_raw_reads

    def spy(transport: Any, protocol: Any) -> bool:
        installed.append(watch(transport, protocol))
        return installed[-1]

    monkeypatch.setattr(_async_stream, "watch_raw_reads", spy)

    async def main(spec: str) -> None:
        async with dotclient.AsyncClient(spec, ca_file=ca_file, timeout=10) as client:
            await client.resolve("a.test")

    with FakeServer(server_cert, echo_handler) as server:
        asyncio.run(main(server.spec))
    assert installed == [True]
