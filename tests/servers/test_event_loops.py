"""One AsyncClient across event loops: after its loop closed (asyncio.run() called
again) it lets the old connections go, with no I/O and nothing leaked, and connects
anew; from a second loop while the first still runs, it refuses at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

import dotclient
from dotclient.testing import UnboundServer


def spec(unbound: UnboundServer) -> str:
    return f"127.0.0.1:{unbound.port}#dot.test"


def test_a_client_outlives_its_event_loop(unbound: UnboundServer, ca_file: str) -> None:
    client = dotclient.AsyncClient(spec(unbound), ca_file=ca_file, timeout=10)
    assert asyncio.run(client.resolve("a.example.test"), debug=True).addresses()
    old = client._pools[0]._pool[0].stream._socket._sock
    # Before the fix: the full timeout, then a raw RuntimeError('Event loop is closed').
    assert asyncio.run(client.resolve("a.example.test"), debug=True).addresses()
    assert old.fileno() == -1  # the old connection's socket is closed
    assert client.stats.connections_opened == 2
    asyncio.run(client.aclose(), debug=True)
    assert client.stats.open_connections == 0


def test_aclose_from_a_new_loop_releases_the_connections(
    unbound: UnboundServer, ca_file: str
) -> None:
    client = dotclient.AsyncClient(spec(unbound), ca_file=ca_file, timeout=10)
    assert asyncio.run(client.resolve("a.example.test"), debug=True).addresses()
    sock = client._pools[0]._pool[0].stream._socket._sock
    # Before the fix this raised, and left the sockets open.
    asyncio.run(client.aclose(), debug=True)
    assert sock.fileno() == -1


def test_a_second_running_loop_is_refused_at_once(unbound: UnboundServer, ca_file: str) -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        client = dotclient.AsyncClient(spec(unbound), ca_file=ca_file, timeout=10)
        first = asyncio.run_coroutine_threadsafe(client.resolve("a.example.test"), loop)
        assert first.result(20).addresses()
        with pytest.raises(dotclient.DoTError, match="belong to another event loop"):
            asyncio.run(client.resolve("a.example.test"), debug=True)
        asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(20)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
