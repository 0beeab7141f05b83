"""RFC 7766 section 6.2.2: clients "MUST take care to minimize the number of concurrent
TCP connections made to any individual server"; one for regular queries is RECOMMENDED.

The default is one connection per server, and a retired connection still finishing
queries counts against ``max_connections`` until it closes.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable

import dns.message
import pytest

import dotclient
from dotclient.testing import IssuedCert, UnboundServer

from support.fakeserver import FakeConnection, FakeServer, answer
from support.modes import open_client


def test_a_batch_uses_one_connection(mode: str, unbound: UnboundServer, ca_file: str) -> None:
    """300 queries, three times max_in_flight: one connection, callers wait for room."""
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file, max_in_flight=100) as client:
        outcomes = client.resolve_many(["a.example.test"] * 300)
        assert all(isinstance(o, dotclient.Response) for o in outcomes)
        assert client.stats.connections_opened == 1


def _wait_for(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition()`` until true (a state change the test waits for, not a time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_a_retired_connection_counts_until_it_closes(
    server_cert: IssuedCert, ca_file: str
) -> None:
    """The first connection answers one query wrongly (so the client retires it) and
    holds the other's answer. A third query must wait for that connection to close
    rather than open a second one beside it."""
    release = threading.Event()

    def handler(conn: FakeConnection) -> None:
        if conn.server.connections == 1:
            first, second = conn.read_query(), conn.read_query()
            assert first is not None and second is not None
            wrong = dns.message.make_query("wrong.test", "A")
            wrong.id = first.id
            conn.send_message(answer(wrong))  # a mismatched question: retire it
            release.wait(30)
            conn.send_message(answer(second))
        while (query := conn.read_query()) is not None:
            conn.send_message(answer(query))

    with FakeServer(server_cert, handler) as server:
        with dotclient.Client(server.spec, ca_file=ca_file, timeout=30) as client:
            pool = client._pools[0]
            with concurrent.futures.ThreadPoolExecutor(3) as run:
                pair = [run.submit(client.resolve, n) for n in ("a.test", "b.test")]
                done, _ = concurrent.futures.wait(
                    pair, return_when=concurrent.futures.FIRST_COMPLETED
                )
                (failed,) = done
                with pytest.raises(dotclient.ProtocolError):
                    failed.result()
                (held,) = [f for f in pair if f is not failed]
                third = run.submit(client.resolve, "c.test")
                _wait_for(lambda: pool._slot_waiters, "the third query to wait for room")
                assert server.connections == 1 and not held.done()
                release.set()
                assert held.result().addresses() == ["192.0.2.53"]
                assert third.result().addresses() == ["192.0.2.53"]
            assert server.connections == 2
            assert client.stats.connections_opened == 2
