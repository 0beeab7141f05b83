"""A peer streaming data nobody asked for cannot grow the asyncio client's buffer
without bound: reading pauses above a high-water mark, and the flooded connection,
idle, takes no more queries (the blocking client reads only while a query waits, so
the kernel's buffers bound it already)."""

from __future__ import annotations

import asyncio
import threading
import time

import dns.message
import dns.rrset

import dotclient
from dotclient._backends import _async_stream
from dotclient.testing import IssuedCert

from support.fakeserver import FakeConnection, FakeServer, answer, frame

ADDRESS = ["192.0.2.53"]
FLOOD = 64 * 1024 * 1024  # octets the server tries to push after its first answer


def test_an_idle_connection_flooded_by_the_server_stops_reading(
    server_cert: IssuedCert, ca_file: str
) -> None:
    stop = threading.Event()
    stray = dns.message.make_response(dns.message.make_query("stray.test", "TXT"))
    stray.answer.append(
        dns.rrset.from_text(
            "stray.test.", 0, "IN", "TXT", *(f'"{i:03}{"x" * 240}"' for i in range(200))
        )
    )
    chunk = frame(stray) * 16  # ~800 KB of answers to no query

    def handler(conn: FakeConnection) -> None:
        query = conn.read_query()
        assert query is not None
        conn.send_message(answer(query))
        conn.sock.settimeout(30)
        sent = 0
        while sent < FLOOD and not stop.is_set():
            try:
                conn.send(chunk)
            except OSError:
                return
            sent += len(chunk)
        while (query := conn.read_query()) is not None:
            conn.send_message(answer(query))

    async def main(spec: str) -> None:
        async with dotclient.AsyncClient(spec, ca_file=ca_file, timeout=20) as client:
            assert (await client.resolve("first.test")).addresses() == ADDRESS
            (connection,) = client._pools[0]._pool
            protocol = connection.stream._protocol
            # The mark, plus what asyncio's TLS layer had decrypted when reading paused
            # (it hands over all it has: up to its own 256 KiB of incoming records).
            bound = 2 * _async_stream._HIGH_WATER + 65536
            deadline = time.monotonic() + 30
            # Before the fix the buffer took the whole flood (64 MB; 1.17 GB in 4 s
            # from a faster peer) and reading never paused.
            while not protocol.reading_paused:
                assert len(protocol.buffer) <= bound
                assert time.monotonic() < deadline, "reading never paused"
                await asyncio.sleep(0.001)
            assert len(protocol.buffer) <= bound
            # And an idle connection flooded like that is not used again: closed.
            assert (await client.resolve("second.test")).addresses() == ADDRESS
            assert client.stats.connections_opened == 2
            assert connection.closed

    with FakeServer(server_cert, handler) as server:
        try:
            asyncio.run(main(server.spec), debug=True)
        finally:
            stop.set()
