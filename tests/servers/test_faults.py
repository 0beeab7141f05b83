"""Cases a real server will not produce, against the in-process FakeServer.

Each runs through the blocking and the asyncio API. What the server received is
checked on the wire (padding, SNI, ALPN), and how the pool copes with servers that
close connections, answer slowly, or lose a query to a cancelled task.

Hostile servers (broken framing, wrong answers, bad certificates, old TLS, plaintext)
are the table in test_hostile.py; the security properties are in test_security.py.
"""

from __future__ import annotations

import gc
import socket
import struct
import time
import warnings
from typing import Any

import dns.message
import dns.rcode
import pytest

import dotclient
from dotclient.testing import IssuedCert

from support.fakeserver import FakeConnection, FakeServer, answer
from support.modes import open_client, resolve

# -- what goes on the wire -----------------------------------------------------------


def test_queries_are_padded_to_128_octets(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    names = ["a.test", "a-much-longer-name.with.several.labels.example.test", "x" * 60 + ".test"]
    with FakeServer(server_cert) as server:
        with open_client(mode, server.spec, ca_file=ca_file) as client:
            for name in names:
                assert client.resolve(name).addresses() == ["192.0.2.53"]
    lengths = [len(f) for f in server.frames]
    assert sum(2 + n for n in lengths) == len(server.received)  # nothing else was sent
    assert len(lengths) == 3 and all(n % 128 == 0 for n in lengths), lengths
    for wire in server.frames:
        opts = dns.message.from_wire(wire).options
        assert [o.otype for o in opts] == [dns.edns.OptionType.PADDING]


def test_padding_can_be_turned_off(mode: str, server_cert: IssuedCert, ca_file: str) -> None:
    with FakeServer(server_cert) as server:
        resolve(mode, "a.test", server=server.spec, ca_file=ca_file, padding=False)
    (wire,) = server.frames
    assert list(dns.message.from_wire(wire).options) == []
    assert len(wire) % 128 != 0


@pytest.mark.parametrize(
    ("options", "expected_sni"),
    [
        ({}, "dot.test"),
        ({"sni": "front.example"}, "front.example"),
        ({"sni": False}, None),
    ],
)
def test_sni_sent(
    mode: str, server_cert: IssuedCert, ca_file: str, options: dict[str, object], expected_sni: str
) -> None:
    with FakeServer(server_cert) as server:
        r = resolve(mode, "a.test", server=server.spec, ca_file=ca_file, **options)
    assert r.authenticated
    assert server.snis == [expected_sni]


def test_no_sni_for_a_bare_ip(mode: str, server_cert: IssuedCert, ca_file: str) -> None:
    with FakeServer(server_cert) as server:
        resolve(mode, "a.test", server=f"127.0.0.1:{server.port}", ca_file=ca_file)
    assert server.snis == [None]


def test_alpn_dot_is_offered(mode: str, server_cert: IssuedCert, ca_file: str) -> None:
    with FakeServer(server_cert, alpn=["dot"]) as server:
        r = resolve(mode, "a.test", server=server.spec, ca_file=ca_file)
    assert r.tls.alpn == "dot"


# -- connections and timeouts -------------------------------------------------------


def test_kept_connection_closed_by_server_is_replaced(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    def one_answer_per_connection(conn: FakeConnection) -> None:
        query = conn.read_query()
        if query is not None:
            conn.send_message(answer(query))

    with FakeServer(server_cert, one_answer_per_connection) as server:
        with open_client(mode, server.spec, ca_file=ca_file) as client:
            for _ in range(3):
                server.wait_handlers()  # the server has closed the kept connection
                assert client.resolve("a.test").rcode == dns.rcode.NOERROR
    assert server.connections == 3


def test_connection_reused_between_queries(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    with FakeServer(server_cert) as server:
        with open_client(mode, server.spec, ca_file=ca_file) as client:
            for _ in range(5):
                client.resolve("a.test")
    assert server.connections == 1


def _slow_echo(delay: float) -> object:
    def handler(conn: FakeConnection) -> None:
        while (query := conn.read_query()) is not None:
            time.sleep(delay)
            conn.send_message(answer(query))

    return handler


@pytest.mark.timing
def test_waiting_for_the_connection_counts_against_the_timeout(
    server_cert: IssuedCert, ca_file: str
) -> None:
    # Two threads, one connection, answers take 0.4 s: the second query waits for the
    # first, and its 0.6 s budget runs out while waiting or reading, not after.
    from concurrent.futures import ThreadPoolExecutor

    with FakeServer(server_cert, _slow_echo(0.4)) as server:  # type: ignore[arg-type]
        with dotclient.Client(server.spec, ca_file=ca_file, timeout=0.6) as client:
            client.resolve("warm.test", timeout=2)  # connect first
            started = time.monotonic()
            with ThreadPoolExecutor(2) as pool:
                futures = [pool.submit(client.resolve, "a.test") for _ in range(2)]
                outcomes = [f.exception() for f in futures]
            elapsed = time.monotonic() - started
    assert sum(isinstance(o, dotclient.Timeout) for o in outcomes) >= 1
    assert elapsed < 1.2


def test_cancelled_task_leaves_the_client_usable(server_cert: IssuedCert, ca_file: str) -> None:
    import asyncio
    import threading

    seen: list[int] = []
    first_read = threading.Event()

    def first_query_unanswered(conn: FakeConnection) -> None:
        while (query := conn.read_query()) is not None:
            seen.append(query.id)
            first_read.set()
            if len(seen) > 1:
                conn.send_message(answer(query))

    async def main(spec: str) -> dotclient.Response:
        async with dotclient.AsyncClient(spec, ca_file=ca_file, timeout=3) as client:
            task = asyncio.ensure_future(client.resolve("a.test"))
            # Cancelled once the server has the query (not after a guess at how long
            # connecting takes): a query in flight, not a connect, is what is cancelled.
            assert await asyncio.to_thread(first_read.wait, 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await client.resolve("a.test")

    with FakeServer(server_cert, first_query_unanswered) as server:
        r = asyncio.run(main(server.spec), debug=True)
    assert r.addresses() == ["192.0.2.53"]
    # Pipelined queries share the connection, so one cancelled query does not cost the
    # others theirs; its ID stays reserved, so a late answer cannot be taken for another's.
    assert server.connections == 1
    assert len(set(seen)) == 2


def test_close_during_a_query_does_not_reconnect(server_cert: IssuedCert, ca_file: str) -> None:
    import threading

    in_flight = threading.Event()

    def answer_the_first_only(conn: FakeConnection) -> None:
        query = conn.read_query()
        if query is not None:
            conn.send_message(answer(query))
        if conn.read_query() is not None:
            in_flight.set()  # the second query stays unanswered until the client closes
            conn.drain()

    with FakeServer(server_cert, answer_the_first_only) as server:
        client = dotclient.Client(server.spec, ca_file=ca_file, timeout=3)
        client.resolve("warm.test")
        errors: list[BaseException] = []

        def query() -> None:
            try:
                client.resolve("a.test")
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=query)
        thread.start()
        assert in_flight.wait(10)
        client.close()
        thread.join(5)
        assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], dotclient.ConnectionLost), errors
    assert server.connections == 1


class _DiesInSecondHandshake(FakeServer):
    """Reads the ClientHello of its second connection and closes: a server going down
    just as the client reconnects."""

    def _serve(self, raw: socket.socket, *args: Any) -> None:
        if self.connections == 2:
            raw.settimeout(5)
            raw.recv(4096)
            raw.close()
            return
        super()._serve(raw, *args)


def test_a_server_closing_in_a_reconnect_handshake_is_retried(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    # The ssl module reports that close as an EOF in the handshake (asyncio as a reset):
    # either way a lost connection to a server that served this client, retried within
    # the deadline, not a TLSError that fails the query at once.
    with _DiesInSecondHandshake(server_cert) as server:
        with open_client(mode, server.spec, ca_file=ca_file, timeout=3) as client:
            assert client.resolve("a.test").addresses() == ["192.0.2.53"]
            client.close_connections()  # stands in for the server closing it
            assert client.resolve("b.test").addresses() == ["192.0.2.53"]
    assert server.connections == 3


def test_a_connection_reset_before_the_handshake_leaks_no_socket(
    monkeypatch: pytest.MonkeyPatch, ca_file: str
) -> None:
    # A server killed with our connection in its accept queue resets it: the ssl
    # module's wrap_socket then raises without closing the SSLSocket it made.
    from dotclient._backends import _sync_connect

    step = _sync_connect._Attempt.step
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def reset_then_step(attempt: Any, *args: Any) -> bool:
            if attempt.tls is None:  # connected: reset before the TLS socket is made
                peer, _ = listener.accept()
                peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                peer.close()  # a reset
                time.sleep(0.05)
            return bool(step(attempt, *args))

        monkeypatch.setattr(_sync_connect._Attempt, "step", reset_then_step)
        spec = f"127.0.0.1:{listener.getsockname()[1]}#dot.test"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            with pytest.raises(dotclient.ConnectError):
                dotclient.resolve("a.test", server=spec, ca_file=ca_file, timeout=1)
            gc.collect()
    assert [str(w.message) for w in caught] == []
