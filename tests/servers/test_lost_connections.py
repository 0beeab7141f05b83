"""A connection that ends under queries in flight, in any way, is a lost connection:
its queries go out again (a TLS error mid-stream included), and a client closed under
them says so, with no private error class escaping.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import ssl
import threading
import time
from typing import Any

import dns.message
import dns.rrset
import pytest

import dotclient
from dotclient._backends import _sync_connect, _sync_stream
from dotclient._protocol import DoTProtocol
from dotclient.testing import IssuedCert

from support.fakeserver import FakeConnection, FakeServer, answer, echo_handler, frame
from support.gate import Gate, queued, wait_until
from support.modes import open_client, resolve_concurrently

ADDRESS = ["192.0.2.53"]
# A TLS application-data record whose MAC cannot check out: the client's TLS layer
# fails with DECRYPTION_FAILED_OR_BAD_RECORD_MAC (or BAD_RECORD_MAC) mid-stream.
_BAD_RECORD = b"\x17\x03\x03\x00\x20" + bytes(32)


def test_a_tls_error_mid_stream_resends_like_a_reset(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    corrupted: list[int] = []

    def handler(conn: FakeConnection) -> None:
        if corrupted:
            echo_handler(conn)
            return
        corrupted.append(1)
        queries = [conn.read_query() for _ in range(8)]
        conn.send(b"".join(frame(answer(q)) for q in queries[:3] if q is not None))
        os.write(conn.sock.fileno(), _BAD_RECORD)  # under the TLS layer
        conn.close_gracefully()  # no reset: the client reads all that was sent

    names = [f"q{i}.test" for i in range(8)]
    with FakeServer(server_cert, handler) as server:
        with open_client(mode, server.spec, ca_file=ca_file, timeout=15) as client:
            outcomes = resolve_concurrently(client, names)
            # Before the fix: 5 of 8 failed with TLSError instead of going out again.
            assert all(isinstance(o, dotclient.Response) for o in outcomes), outcomes
            # 5 at least; all 8 in asyncio, whose TLS transport drops the records it
            # decrypted along with the bad one.
            assert client.stats.resent >= 5
            assert client.stats.in_flight == 0
    assert server.connections == 2


def test_closing_under_queries_in_flight_says_the_client_was_closed(
    server_cert: IssuedCert, ca_file: str
) -> None:
    gate = Gate()

    async def main(spec: str) -> list[Any]:
        # Two connections, so that 150 queries are all in flight (100 a connection).
        client = dotclient.AsyncClient(spec, ca_file=ca_file, timeout=15, max_connections=2)
        await client.resolve("warm.test")
        calls = [asyncio.ensure_future(client.resolve(f"held{i}.test")) for i in range(150)]
        deadline = time.monotonic() + 10  # a bound, so that a fault fails, not hangs
        while client.stats.in_flight < 150:
            assert time.monotonic() < deadline, client.stats
            await asyncio.sleep(0.001)
        await client.aclose()
        return await asyncio.gather(*calls, return_exceptions=True)

    with FakeServer(server_cert, gate) as server:
        try:
            outcomes = asyncio.run(main(server.spec), debug=True)
        finally:
            gate.opened.set()
    for outcome in outcomes:
        assert type(outcome) is dotclient.ConnectionLost, outcome
        assert "the client was closed" in str(outcome)


def test_closing_from_another_thread_says_the_client_was_closed(
    server_cert: IssuedCert, ca_file: str
) -> None:
    gate = Gate()
    outcomes: list[BaseException | dotclient.Response] = []

    def run(client: dotclient.Client, name: str) -> None:
        try:
            outcomes.append(client.resolve(name))
        except BaseException as exc:
            outcomes.append(exc)

    with FakeServer(server_cert, gate) as server:
        try:
            client = dotclient.Client(server.spec, ca_file=ca_file, timeout=15)
            client.resolve("warm.test")
            threads = [
                threading.Thread(target=run, args=(client, f"held{i}.test")) for i in range(20)
            ]
            for thread in threads:
                thread.start()
            wait_until(lambda: client.stats.in_flight == 20)
            client.close()
            for thread in threads:
                thread.join()
        finally:
            gate.opened.set()
    assert len(outcomes) == 20
    for outcome in outcomes:
        # Before the fix: some got the private _NotSent, or another ConnectionLost.
        assert type(outcome) is dotclient.ConnectionLost, outcome
        assert "the client was closed" in str(outcome)


class _SlowHandshake(FakeServer):
    """Takes TCP connections at once but handshakes only once ``go`` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.go = threading.Event()

    def _serve(self, raw: Any, *args: Any) -> None:
        self.go.wait(20)
        super()._serve(raw, *args)


def test_a_cancelled_first_caller_lets_the_connect_finish_for_the_others(
    server_cert: IssuedCert, ca_file: str
) -> None:
    async def main(server: _SlowHandshake) -> None:
        async with dotclient.AsyncClient(server.spec, ca_file=ca_file, timeout=15) as client:
            first = asyncio.ensure_future(client.resolve("first.test"))
            second = asyncio.ensure_future(client.resolve("second.test"))
            while queued(client) < 1:  # the second waits on the first's connect
                await asyncio.sleep(0)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            server.go.set()
            assert (await second).addresses() == ADDRESS
            assert client.stats.connections_opened == 1
            assert client.stats.in_flight == 0

    with _SlowHandshake(server_cert) as server:
        asyncio.run(main(server), debug=True)
    # Before the fix the cancel aborted the handshake, and the second caller connected
    # again.
    assert server.connections == 1


def test_a_cancelled_lone_caller_cancels_its_connect(
    server_cert: IssuedCert, ca_file: str
) -> None:
    async def main(server: _SlowHandshake) -> None:
        async with dotclient.AsyncClient(server.spec, ca_file=ca_file, timeout=15) as client:
            first = asyncio.ensure_future(client.resolve("first.test"))
            while server.connections < 1:
                await asyncio.sleep(0.001)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            current = asyncio.current_task()
            while any(t is not current and not t.done() for t in asyncio.all_tasks()):
                await asyncio.sleep(0)
            assert client.stats.connections_opened == 0
            server.go.set()
            assert (await client.resolve("second.test")).addresses() == ADDRESS
            assert client.stats.connections_opened == 1

    with _SlowHandshake(server_cert) as server:
        asyncio.run(main(server), debug=True)
    assert server.connections == 2


def test_closing_while_an_abandoned_connect_runs_leaves_nothing(
    server_cert: IssuedCert, ca_file: str
) -> None:
    async def main(server: _SlowHandshake) -> None:
        client = dotclient.AsyncClient(server.spec, ca_file=ca_file, timeout=15)
        first = asyncio.ensure_future(client.resolve("first.test"))
        second = asyncio.ensure_future(client.resolve("second.test"))
        while queued(client) < 1:
            await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await client.aclose()
        with pytest.raises(dotclient.ConnectionLost, match="the client was closed"):
            await second
        current = asyncio.current_task()
        assert all(t is current or t.done() for t in asyncio.all_tasks())

    with _SlowHandshake(server_cert) as server:
        try:
            asyncio.run(main(server), debug=True)
        finally:
            server.go.set()


def test_a_write_cut_inside_a_tls_record_retires_the_connection(
    server_cert: IssuedCert, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop = threading.Event()
    # A small send buffer on the client's sockets, so that the first big query's write
    # stalls inside its record however fast or slow the machine: with the kernel's
    # autotuned buffer, a loaded machine could time the writes out waiting for the
    # write lock before any of them filled the buffers, and nothing was cut.
    attempt_init = _sync_connect._Attempt.__init__

    def small_send_buffer(self: Any, *args: Any, **kwargs: Any) -> None:
        attempt_init(self, *args, **kwargs)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    monkeypatch.setattr(_sync_connect._Attempt, "__init__", small_send_buffer)

    def handler(conn: FakeConnection) -> None:
        if conn.server.connections > 1:
            echo_handler(conn)
            return
        conn.read_query()  # then reads nothing more, but keeps talking: stray answers
        stray = dns.message.make_response(dns.message.make_query("stray.test", "A"))
        while not stop.wait(0.01):
            conn.send_message(stray)

    big = dns.message.make_query("big.test", "TXT")
    big.additional.append(
        dns.rrset.from_text(
            "big.test.", 0, "IN", "TXT", *(f"{i:03}" + "x" * 240 for i in range(240))
        )
    )
    server = FakeServer(server_cert, handler)
    # A small receive window, so the client's writes stall after a few big queries.
    server._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with server:
        try:
            with dotclient.Client(server.spec, ca_file=ca_file, timeout=3) as client:
                waiting = threading.Thread(target=lambda: _quietly(client, "held.test", 5))
                waiting.start()
                wait_until(lambda: client.stats.in_flight == 1)
                threads = [
                    threading.Thread(target=lambda: _quietly(client, big, 2)) for _ in range(99)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                resent = client.stats.resent
                assert client.resolve("after.test").addresses() == ADDRESS
                # Before the fix the torn connection stayed in the pool: this query was
                # written there first, and failed (TLSError BAD_LENGTH, now a lost
                # connection that costs a resend).
                assert client.stats.resent == resent
                waiting.join()
        finally:
            stop.set()


def _quietly(client: dotclient.Client, request: Any, timeout: float) -> None:
    try:
        if isinstance(request, str):
            client.resolve(request, timeout=timeout)
        else:
            client.query(request, timeout=timeout)
    except dotclient.DoTError:
        pass


def test_a_connection_out_of_query_ids_takes_no_more_queries(
    mode: str, server_cert: IssuedCert, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Four IDs per connection instead of 65,536: four abandoned queries use them all.
    monkeypatch.setattr(DoTProtocol, "QUERY_IDS", 4, raising=False)
    stop = threading.Event()

    def handler(conn: FakeConnection) -> None:
        if conn.server.connections > 1:
            echo_handler(conn)
            return
        query = conn.read_query()  # the warm-up
        assert query is not None
        conn.send_message(answer(query))
        # Then never answers, but keeps talking (stray answers), so that timing out
        # does not make the client give up the connection: the IDs stay abandoned.
        stray = dns.message.make_response(dns.message.make_query("stray.test", "A"))
        while not stop.wait(0.01):
            conn.send_message(stray)

    with FakeServer(server_cert, handler) as server:
        try:
            with open_client(mode, server.spec, ca_file=ca_file, max_in_flight=4) as client:
                assert client.resolve("warm.test", timeout=10).addresses() == ADDRESS
                names = [f"late{i}.test" for i in range(4)]
                outcomes = resolve_concurrently(client, names, timeout=1)
                assert all(isinstance(o, dotclient.Timeout) for o in outcomes), outcomes
                # Its IDs all abandoned, the connection can take no full load again: it
                # is retired and closed, so that a new one may open (max_connections=1).
                assert client.stats.open_connections == 0
                # Before the fix this went to the first connection regardless: with
                # 65,536 IDs used there, a raw RuntimeError; here it timed out there.
                assert client.resolve("next.test", timeout=10).addresses() == ADDRESS
        finally:
            stop.set()
    assert server.connections == 2


def test_a_burst_cut_before_any_answer_is_resent_one_probe_first(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    # A server that closes a connection after a few queries may close it before it
    # answered the first of a burst (dnsdist with max_queries_per_connection, seen in
    # CI): every query pipelined there is lost, and the client has no answer yet to
    # tell a limit from a server that resets everything. This one resets every
    # connection on which a second query arrives before it answered the first, and
    # answers a lone query after holding it a second (the burst's second query comes
    # within milliseconds, on any machine). Before the fix each new connection got a
    # burst again and all 30 queries failed after their 2 free resends and 3 sends;
    # now the next connection proves itself with one query, then takes the rest.
    def handler(conn: FakeConnection) -> None:
        first = conn.read_query()
        if first is None:
            return
        conn.sock.settimeout(1.0)
        try:
            conn.read_query()  # a second query before the first was answered
        except TimeoutError:
            conn.sock.settimeout(10)
            conn.send_message(answer(first))
            echo_handler(conn)
            return
        conn.reset()

    names = [f"q{i}.test" for i in range(30)]
    with FakeServer(server_cert, handler) as server:
        with open_client(mode, server.spec, ca_file=ca_file, timeout=15) as client:
            outcomes = resolve_concurrently(client, names)
            assert all(isinstance(o, dotclient.Response) for o in outcomes), outcomes
            assert client.stats.resent >= 1
    assert server.connections == 2


def test_a_connection_closed_under_a_thread_about_to_poll_keeps_its_descriptor(
    server_cert: IssuedCert, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reader thread has registered the socket with poll() and not yet polled when
    # another thread closes the connection (close_connections, an idle timer). Before
    # the fix the descriptor was released at once, the next socket reused its number,
    # and the reader polled that socket instead, until its timeout (seen as answers
    # timing out in test_pipelining under load). Now the last thread out of poll()
    # releases it; close() only shuts the socket down, which wakes the pollers.
    about_to_poll, go_on = threading.Event(), threading.Event()
    polled: list[int] = []
    real_poll = select.poll

    class Poller:
        def __init__(self) -> None:
            self._poller = real_poll()
            self._stream = False

        def register(self, sock: Any, mask: int) -> None:
            self._poller.register(sock, mask)
            # The connect's race registers descriptors; a stream waiting to read, itself.
            self._stream = isinstance(sock, ssl.SSLSocket) and mask == select.POLLIN
            if self._stream:
                polled.append(sock.fileno())

        def poll(self, timeout: float) -> list[tuple[int, int]]:
            if self._stream and threading.current_thread().name == "reader" and polled:
                if not go_on.is_set():
                    about_to_poll.set()
                    go_on.wait(10)
            return self._poller.poll(timeout)

    def handler(conn: FakeConnection) -> None:
        if conn.server.connections > 1:
            echo_handler(conn)
        else:
            conn.drain()  # reads the query, never answers

    with FakeServer(server_cert, handler) as server:
        with dotclient.Client(server.spec, ca_file=ca_file, timeout=10) as client:
            outcome: list[object] = []
            monkeypatch.setattr(_sync_stream.select, "poll", Poller)
            reader = threading.Thread(
                target=lambda: outcome.append(client.resolve("held.test")), name="reader"
            )
            reader.start()
            assert about_to_poll.wait(10)
            client.close_connections()
            with socket.socket() as other:
                assert other.fileno() != polled[-1]  # the number is still taken
            go_on.set()
            reader.join(10)
            assert [o.addresses() for o in outcome] == [ADDRESS]  # type: ignore[attr-defined]
