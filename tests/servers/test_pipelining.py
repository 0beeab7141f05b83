"""Pipelining, the connection pool and the connection lifecycle.

Scripted servers (tests/support/fakeserver.py) play what a real server will not do on demand:
answering in reverse order, holding answers until a burst is complete, closing after N
queries, and dropping all but the first of a pipelined burst the way dnsdist does.
The same behaviours against real servers are in tests/interop/ (test_interop.py,
test_interop_servers.py).
"""

from __future__ import annotations

import contextlib
import ipaddress
import queue
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import dns.edns
import dns.message
import dns.rcode
import pytest

import dotclient
from dotclient.testing import IssuedCert, UnboundServer

from support.fakeserver import FakeConnection, FakeServer, answer
from support.modes import open_client, pause

NAMES = [f"q{i}.test" for i in range(40)]


def spec_of(server: UnboundServer) -> str:
    return f"127.0.0.1:{server.port}#dot.test"


def address_of(name: str) -> str:
    """The address the scripted servers give ``qN.test``: 192.0.2.N."""
    return str(ipaddress.ip_address("192.0.2.0") + int(name.split(".")[0][1:]))


def reply(query: dns.message.Message) -> dns.message.Message:
    return answer(query, address_of(str(query.question[0].name)))


def check_outcomes(names: list[str], outcomes: list[Any]) -> None:
    """Each name got its own answer: none lost, none swapped."""
    assert len(outcomes) == len(names)
    for name, outcome in zip(names, outcomes, strict=True):
        assert isinstance(outcome, dotclient.Response), (name, outcome)
        assert outcome.addresses() == [address_of(name)], name


class Batches:
    """Answers only once ``size`` queries are waiting, then all of them in reverse
    order; records the most queries it ever had unanswered on one connection."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.most_outstanding = 0
        self.lock = threading.Lock()

    def __call__(self, conn: FakeConnection) -> None:
        waiting: list[dns.message.Message] = []
        conn.sock.settimeout(0.3)
        while True:
            try:
                query = conn.read_query()
            except TimeoutError:
                query = None  # a short last batch: answer what is there
                if not waiting:
                    continue
            else:
                if query is None:
                    return
                waiting.append(query)
                with self.lock:
                    self.most_outstanding = max(self.most_outstanding, len(waiting))
                if len(waiting) < self.size:
                    continue
            for q in reversed(waiting):
                conn.send_message(reply(q))
            waiting.clear()


def test_queries_pipeline_on_one_connection_answered_out_of_order(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    handler = Batches(8)
    with FakeServer(server_cert, handler) as server:
        with open_client(
            mode, server.spec, ca_file=ca_file, max_in_flight=8, max_connections=1
        ) as client:
            outcomes = client.resolve_many(NAMES[:32])
            stats = client.stats
    check_outcomes(NAMES[:32], outcomes)
    assert server.connections == 1
    assert handler.most_outstanding == 8  # really pipelined, never more than the limit
    assert stats.pipelining is True
    assert stats.responses == 32 and stats.resent == 0


def test_in_flight_limit_makes_callers_wait_not_fail(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    handler = Batches(3)
    with FakeServer(server_cert, handler) as server:
        with open_client(
            mode, server.spec, ca_file=ca_file, max_in_flight=3, max_connections=1
        ) as client:
            outcomes = client.resolve_many(NAMES[:30])
    check_outcomes(NAMES[:30], outcomes)
    assert handler.most_outstanding == 3
    assert server.connections == 1


@pytest.mark.usefixtures("no_false_stalls")
def test_pool_grows_to_max_connections_when_full(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    # The pool grows when a query finds every connection full: here, when a caller whose
    # query was answered comes back with the next one while the waiting callers have
    # taken the slot it freed. Answers 0.3 s after each query, in order, so they come
    # one at a time. Without no_false_stalls, the 0.3 s of silence before each answer
    # came close enough to the 0.4 s stall window for a loaded machine to retire a
    # connection (a 4th opened).
    def slow(conn: FakeConnection) -> None:
        due: queue.Queue[tuple[float, dns.message.Message] | None] = queue.Queue()

        def answer_in_order() -> None:
            while (item := due.get()) is not None:
                time.sleep(max(item[0] - time.monotonic(), 0))
                with contextlib.suppress(OSError):
                    conn.send_message(reply(item[1]))

        responder = threading.Thread(target=answer_in_order, daemon=True)
        responder.start()
        while (query := conn.read_query()) is not None:
            due.put((time.monotonic() + 0.3, query))
        due.put(None)
        responder.join(5)

    with FakeServer(server_cert, slow) as server:
        with open_client(
            mode, server.spec, ca_file=ca_file, max_in_flight=2, max_connections=3
        ) as client:
            outcomes = client.resolve_many(NAMES[:12])
            stats = client.stats
    check_outcomes(NAMES[:12], outcomes)
    assert server.connections == 3
    assert stats.connections_opened == 3


def test_stray_answer_is_dropped_and_counted(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    def stray_first(conn: FakeConnection) -> None:
        while (query := conn.read_query()) is not None:
            stray = reply(query)
            stray.id = (query.id + 1) % 65536
            conn.send_message(stray)
            conn.send_message(reply(query))

    with FakeServer(server_cert, stray_first) as server:
        with open_client(mode, server.spec, ca_file=ca_file) as client:
            check_outcomes(NAMES[:3], [client.resolve(n) for n in NAMES[:3]])
            assert client.stats.unmatched == 3
    assert server.connections == 1


def close_after(count: int) -> Any:
    """A server that answers ``count`` queries per connection, then closes it even
    though more were sent (dnsdist's setMaxTCPQueriesPerConnection, unbound restarts).
    It shuts its side down first, as servers do, so its answers reach the client
    instead of being dropped by a reset."""

    def handler(conn: FakeConnection) -> None:
        for _ in range(count):
            query = conn.read_query()
            if query is None:
                return
            conn.send_message(reply(query))
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_WR)
            # Until the client closes: closing first, with queries unread, would reset
            # the connection, and a reset may discard answers the client has not read
            # yet (however long a loaded machine takes to read them).
            conn.sock.settimeout(10)
            while conn.sock.recv(65536):
                pass

    return handler


def test_queries_lost_to_a_server_close_are_resent(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    with FakeServer(server_cert, close_after(3)) as server:
        with open_client(
            mode, server.spec, ca_file=ca_file, max_in_flight=10, timeout=10
        ) as client:
            started = time.monotonic()
            outcomes = client.resolve_many(NAMES[:20])
            elapsed = time.monotonic() - started
            stats = client.stats
    check_outcomes(NAMES[:20], outcomes)
    assert stats.resent > 0
    assert stats.responses == 20  # none answered twice
    assert server.connections >= 7
    assert elapsed < 5  # resent at once, not after waiting out the 10 s timeout


def test_connection_closed_with_nothing_answered_fails_after_two_resends(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    with FakeServer(server_cert, close_after(0)) as server:
        with open_client(mode, server.spec, ca_file=ca_file) as client:
            with pytest.raises(dotclient.ConnectionLost):
                client.resolve("q1.test")
    assert server.connections == 3  # the first send and two more: bounded, no loop


def drops_pipelined(conn: FakeConnection) -> None:
    """A server that takes one query at a time and loses what was pipelined behind it:
    whatever has arrived by the time it answers is dropped (dnsdist 1.7's default
    behaviour for queries sharing a TLS record, generalised). It closes after 10 s idle."""
    conn.sock.settimeout(10.0)
    while (query := conn.read_query()) is not None:
        # "Processing", during which more queries may arrive: long enough for a burst
        # written at once to arrive whole even on a loaded machine.
        time.sleep(0.05)
        conn.sock.setblocking(False)
        try:
            while conn.sock.recv(65536):
                pass
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
        conn.drop_buffered()
        conn.sock.settimeout(10.0)
        conn.send_message(reply(query))


@pytest.mark.timing
def test_server_that_drops_pipelined_queries_is_detected(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    with FakeServer(server_cert, drops_pipelined) as server:
        with open_client(mode, server.spec, ca_file=ca_file, timeout=10) as client:
            started = time.monotonic()
            outcomes = client.resolve_many(NAMES[:10])
            elapsed = time.monotonic() - started
            stats = client.stats
            later = client.resolve_many(NAMES[10:14])
    check_outcomes(NAMES[:10], outcomes)
    check_outcomes(NAMES[10:14], later)
    # The stall detector's two 0.4 s windows, then one query at a time: well before the
    # 10 s timeout and the server's 10 s idle close, which a client that did not notice
    # the drops would wait for.
    assert elapsed < 4
    if mode == "async":  # tasks send a burst at once; threads may happen not to
        assert stats.pipelining is False
        assert stats.pipelining_fallbacks == 1
        assert stats.max_in_flight == 1


def test_one_timed_out_query_does_not_break_the_others(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    def never_q0(conn: FakeConnection) -> None:
        # Nothing is answered before q0 has arrived: whichever thread or task sends it,
        # the answers come after it, to queries sent behind one unanswered, which shows
        # the client that the server pipelines (so it waits for q0 without a stall).
        held: list[dns.message.Message] | None = []
        while (query := conn.read_query()) is not None:
            if str(query.question[0].name) == "q0.test.":
                for other in held or ():
                    conn.send_message(reply(other))
                held = None
            elif held is not None:
                held.append(query)
            else:
                conn.send_message(reply(query))

    with FakeServer(server_cert, never_q0) as server:
        with open_client(mode, server.spec, ca_file=ca_file, timeout=0.8) as client:
            outcomes = client.resolve_many(NAMES[:12])
            after = client.resolve("q17.test")
    assert isinstance(outcomes[0], dotclient.Timeout)
    check_outcomes(NAMES[1:12], outcomes[1:])
    assert after.addresses() == [address_of("q17.test")]
    assert server.connections == 1


def test_resolve_many_keeps_input_order_and_returns_errors(
    mode: str, unbound: UnboundServer, ca_file: str
) -> None:
    names = ["a.example.test", "a..bad", "nope.example.test", "www.example.test"]
    seen: list[int] = []
    with open_client(mode, spec_of(unbound), ca_file=ca_file) as client:
        outcomes = client.resolve_many(names, on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == [0, 1, 2, 3]
    assert isinstance(outcomes[0], dotclient.Response) and outcomes[0].addresses()
    assert isinstance(outcomes[1], ValueError)
    assert isinstance(outcomes[2], dotclient.Response)
    assert outcomes[2].rcode == dns.rcode.NXDOMAIN
    assert isinstance(outcomes[3], dotclient.Response) and outcomes[3].addresses()


def wait_closed(client: Any, closed: threading.Event, limit: float = 5.0) -> None:
    """Let the client's timers run until the server has seen the connection close, for
    at most ``limit`` seconds (half the default idle timeout: a client that ignored the
    shorter one set would not close in time)."""
    deadline = time.monotonic() + limit
    while not closed.is_set():
        assert time.monotonic() < deadline, "the connection was not closed"
        pause(client, 0.02)


def test_idle_connection_is_closed(mode: str, server_cert: IssuedCert, ca_file: str) -> None:
    closed = threading.Event()

    def handler(conn: FakeConnection) -> None:
        while (query := conn.read_query()) is not None:
            conn.send_message(reply(query))
        closed.set()

    with FakeServer(server_cert, handler) as server:
        with open_client(mode, server.spec, ca_file=ca_file, idle_timeout=0.2) as client:
            client.resolve("q1.test")
            wait_closed(client, closed)
            assert client.stats.idle_closed == 1 and client.stats.open_connections == 0
            client.resolve("q2.test")
            assert client.stats.connections_opened == 2
    assert server.connections == 2


def _keepalive_handler(timeout: int, seen: list[bool], closed: threading.Event) -> Any:
    def handler(conn: FakeConnection) -> None:
        while (query := conn.read_query()) is not None:
            seen.append(any(o.otype == 11 for o in query.options))  # RFC 7828 keepalive
            response = reply(query)
            response.use_edns(0, options=[dns.edns.GenericOption(11, timeout.to_bytes(2, "big"))])
            conn.send_message(response)
        closed.set()

    return handler


def test_keepalive_option_is_sent_and_the_offered_timeout_honoured(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    seen: list[bool] = []
    closed = threading.Event()
    handler = _keepalive_handler(3, seen, closed)  # 300 ms
    with FakeServer(server_cert, handler) as server:
        with open_client(
            mode, server.spec, ca_file=ca_file, keepalive=True, idle_timeout=10
        ) as client:
            client.resolve("q1.test")
            wait_closed(client, closed)  # closed by the client (10 s idle) after 0.27 s
    assert seen == [True]
    assert server.connections == 1


def test_keepalive_is_off_by_default(mode: str, server_cert: IssuedCert, ca_file: str) -> None:
    seen: list[bool] = []
    with FakeServer(server_cert, _keepalive_handler(3, seen, threading.Event())) as server:
        with open_client(mode, server.spec, ca_file=ca_file) as client:
            client.resolve("q1.test")
    assert seen == [False]


def test_keepalive_timeout_zero_means_a_new_connection(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    seen: list[bool] = []
    with FakeServer(server_cert, _keepalive_handler(0, seen, threading.Event())) as server:
        with open_client(mode, server.spec, ca_file=ca_file, keepalive=True) as client:
            client.resolve("q1.test")
            client.resolve("q2.test")
    assert server.connections == 2


@pytest.mark.usefixtures("no_false_stalls")
def test_threads_pipeline_on_one_connection(unbound: UnboundServer, ca_file: str) -> None:
    errors: list[BaseException] = []
    with dotclient.Client(spec_of(unbound), ca_file=ca_file) as client:

        def work() -> None:
            try:
                for _ in range(40):
                    assert client.resolve("a.example.test").addresses()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        stats = client.stats
    assert not errors
    assert stats.responses == 320
    assert stats.connections_opened == 1
    assert stats.pipelining is True


@pytest.mark.usefixtures("no_false_stalls")
def test_burst_against_unbound(mode: str, unbound: UnboundServer, ca_file: str) -> None:
    names = ["a.example.test", "www.example.test", "nope.example.test"] * 100
    with open_client(mode, spec_of(unbound), ca_file=ca_file) as client:
        outcomes = client.resolve_many(names)
        stats = client.stats
    assert all(isinstance(o, dotclient.Response) for o in outcomes)
    for name, outcome in zip(names, outcomes, strict=True):
        assert outcome.question is not None and str(outcome.question[0]) == name + "."
    # 300 at once fill the first connection's 100 and the second's.
    assert stats.connections_opened <= 2 and stats.responses == 300


def test_batch_survives_a_server_restart(mode: str, unbound_factory: Any, ca_file: str) -> None:
    # The restart starts after the first batch's 50th answer, and batches go on until it
    # is over: queries are in flight as the server goes down and comes back, however
    # fast the machine (a timer could fire after a fast machine's batch had ended).
    server = unbound_factory()
    names = ["a.example.test"] * 400
    restarter = threading.Thread(target=server.restart)
    answered = iter(range(1, len(names) + 1))
    lock = threading.Lock()

    def on_result(index: int, outcome: object) -> None:
        with lock:  # called from several threads in the blocking client
            if next(answered) == 50:
                restarter.start()

    with open_client(mode, spec_of(server), ca_file=ca_file, timeout=10) as client:
        client.resolve("a.example.test")
        outcomes = client.resolve_many(names, on_result=on_result)
        while restarter.is_alive():
            outcomes += client.resolve_many(names)
        restarter.join()
        outcomes += client.resolve_many(names)  # and after it
        stats = client.stats
    assert all(isinstance(o, dotclient.Response) for o in outcomes), [
        o for o in outcomes if not isinstance(o, dotclient.Response)
    ][:3]
    assert stats.responses == 1 + len(outcomes)
    assert stats.connections_opened >= 2  # the restart did cut the first connection


def test_reconnect_resumes_the_tls_session(
    mode: str, unbound: UnboundServer, ca_file: str
) -> None:
    with open_client(mode, spec_of(unbound), ca_file=ca_file) as client:
        first = client.resolve("a.example.test")
        later = []
        for _ in range(3):
            client.close_connections()
            later.append(client.resolve("a.example.test"))
        stats = client.stats
    assert not first.resumed
    assert all(r.resumed and r.authenticated for r in later)
    assert stats.sessions_resumed == 3 and stats.connections_opened == 4


def test_resumption_can_be_turned_off(mode: str, unbound: UnboundServer, ca_file: str) -> None:
    with open_client(mode, spec_of(unbound), ca_file=ca_file, resumption=False) as client:
        client.resolve("a.example.test")
        client.close_connections()
        assert not client.resolve("a.example.test").resumed


def test_tls12_session_is_resumed_too(mode: str, server_cert: IssuedCert, ca_file: str) -> None:
    import ssl

    with FakeServer(server_cert, max_version=ssl.TLSVersion.TLSv1_2) as server:
        with open_client(mode, server.spec, ca_file=ca_file) as client:
            assert client.resolve("a.test").tls_version == "TLSv1.2"
            client.close_connections()
            again = client.resolve("a.test")
    assert again.resumed and again.tls_version == "TLSv1.2"


def test_an_error_in_on_result_stops_the_batch_and_is_raised(
    mode: str, unbound: UnboundServer, ca_file: str
) -> None:
    calls: list[int] = []

    def on_result(index: int, outcome: object) -> None:
        calls.append(index)
        raise KeyError("the caller's bug")

    with open_client(mode, spec_of(unbound), ca_file=ca_file, max_in_flight=2) as client:
        with pytest.raises(KeyError, match="the caller's bug"):
            client.resolve_many(["a.example.test"] * 50, on_result=on_result)
        assert client.resolve("a.example.test").addresses()  # still usable
    assert 1 <= len(calls) < 50


def test_closing_connections_under_queries_teaches_no_limit(
    unbound: UnboundServer, ca_file: str
) -> None:
    # The connections are closed at the 100th, 250th and 400th answers of 600: with
    # queries in flight, however fast the machine (a closer on a timer could find a fast
    # machine's batch finished and close idle connections, which teach nothing anyway).
    with dotclient.Client(spec_of(unbound), ca_file=ca_file) as client:
        answered = iter(range(1, 601))
        closes: list[int] = []
        lock = threading.Lock()

        def on_result(index: int, outcome: object) -> None:
            with lock:  # worker threads call it
                count = next(answered)
                if count in (100, 250, 400):
                    closes.append(count)
                    client.close_connections()

        outcomes = client.resolve_many(["a.example.test"] * 600, on_result=on_result)
        assert closes == [100, 250, 400]
        failed = [o for o in outcomes if not isinstance(o, dotclient.Response)]
        assert not failed, failed[:3]
        before = client.stats.connections_opened
        client.resolve_many(["a.example.test"] * 100)
        assert client.stats.connections_opened - before <= 1  # no per-connection limit


def test_a_limit_per_connection_is_learnt_from_busy_closes(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    names = [f"q{i}.test" for i in range(100)]
    with FakeServer(server_cert, close_after(5)) as server:
        with open_client(mode, server.spec, ca_file=ca_file, max_in_flight=20) as client:
            check_outcomes(names, client.resolve_many(names))
            learnt = client.stats
            check_outcomes(names, client.resolve_many(names))
            after = client.stats
            # What was learnt expires (after 30 s), and is learnt again.
            real = client if mode == "sync" else client.client
            pool = real._pools[0]
            assert pool.policy.learnt_limit == 5
            pool.policy.learnt_until = time.monotonic() - 1
            check_outcomes(names, client.resolve_many(names))
            assert client.stats.resent > after.resent
            assert pool.policy.learnt_limit == 5
    assert learnt.resent > 0  # the first closes cut pipelined queries
    # Learnt: five queries per connection, so no query is cut and resent any more.
    assert after.resent == learnt.resent
    assert after.connections_opened - learnt.connections_opened == 20


@pytest.mark.usefixtures("no_false_stalls")
def test_restarts_between_queries_teach_no_limit(
    mode: str, unbound_factory: Callable[..., UnboundServer], ca_file: str
) -> None:
    # Each restart closes a connection that had answered 3 queries and sat idle; the
    # client finds it closed with the next query. Twice alike, that once taught a limit
    # of 3 queries per connection (a hundred connections for the batch below).
    server = unbound_factory()
    with open_client(mode, spec_of(server), ca_file=ca_file) as client:
        for _ in range(2):
            for _ in range(3):
                client.resolve("a.example.test")
            server.restart()
        client.resolve("a.example.test")
        before = client.stats.connections_opened
        outcomes = client.resolve_many(["a.example.test"] * 300)
        assert all(isinstance(o, dotclient.Response) for o in outcomes)
        assert client.stats.connections_opened - before <= 2


def test_an_id_freed_by_an_answer_is_not_taken_from_under_its_next_owner(
    unbound: UnboundServer, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Threads sharing a connection, every query given the same ID whenever it is free:
    # an answered query used to forget its ID after releasing the client's mutex, so a
    # thread that took the ID meanwhile lost its waiter (a KeyError, a lost answer).
    from dotclient import _protocol

    allocate = _protocol.DoTProtocol._allocate_id

    def same_id_when_free(self: _protocol.DoTProtocol) -> int:
        if 4242 not in self._reserved:
            self._reserved.add(4242)
            return 4242
        return allocate(self)

    monkeypatch.setattr(_protocol.DoTProtocol, "_allocate_id", same_id_when_free)
    failures: list[BaseException] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: open any window
    try:
        with dotclient.Client(spec_of(unbound), ca_file=ca_file, max_connections=1) as client:

            def work() -> None:
                try:
                    for _ in range(150):
                        client.resolve("a.example.test")
                except BaseException as exc:  # noqa: BLE001 - reported below
                    failures.append(exc)

            threads = [threading.Thread(target=work) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            stats = client.stats
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    assert (stats.responses, stats.unmatched) == (900, 0)
