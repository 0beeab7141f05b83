"""Several servers per client: the order a query tries them in, backoff, and failover.

The clients against in-process servers that fail in each way, and a real unbound behind
a dead server. The rotation alone (no I/O, time passed in) and the option checks:
tests/unit/test_failover_pure.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import dotclient
from dotclient.testing import IssuedCert, TestCA, UnboundServer

from support.fakeserver import FakeConnection, FakeServer, echo_handler, frame
from support.modes import AsyncDriver, open_client, pause, resolve

# -- against servers that fail -----------------------------------------------------------


def skew(client: object, seconds: float) -> None:
    """Inject time: from now on ``client``'s rotation orders each query as if it were
    made ``seconds`` later (so backoffs run out without the test waiting for them)."""
    real = client.client if isinstance(client, AsyncDriver) else client
    rotation = real._rotation  # type: ignore[attr-defined]
    order = rotation.order
    rotation.order = lambda now: order(now + seconds)


@pytest.fixture
def closed_port() -> str:
    """A 127.0.0.1 spec whose port refuses connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}#dot.test"


@pytest.fixture
def good(server_cert: IssuedCert) -> Iterator[FakeServer]:
    with FakeServer(server_cert) as server:
        yield server


def test_a_refused_server_fails_over_and_is_backed_off(
    mode: str, closed_port: str, good: FakeServer, ca_file: str
) -> None:
    # A backoff far longer than the test: however slow the machine, the refused server
    # is still backed off when the stats are read and the next queries are made.
    specs = [closed_port, good.spec]
    with open_client(mode, servers=specs, ca_file=ca_file, backoff=60.0) as client:
        r = client.resolve("a.test")
        assert r.addresses() == ["192.0.2.53"]
        assert r.server == client.servers[1]  # the server that answered
        stats = client.stats
        assert stats.failovers == 1
        first, second = stats.servers
        assert first.failures == 1 and 30 < first.retry_in <= 60
        assert "cannot connect" in str(first.last_error)
        assert (second.failures, second.responses, second.open_connections) == (0, 1, 1)
        # Backed off: the next queries go straight to the second server.
        for _ in range(3):
            assert client.resolve("a.test").server == client.servers[1]
        assert client.stats.failovers == 1
    assert good.connections == 1


@pytest.mark.parametrize("kind", ["untrusted", "wrong-name"])
def test_a_server_failing_authentication_gets_no_query(
    mode: str, certs: dict[str, IssuedCert], good: FakeServer, ca_file: str, kind: str
) -> None:
    cert = TestCA().issue("dot.test") if kind == "untrusted" else certs[kind]
    with FakeServer(cert) as bad:
        with open_client(mode, servers=[bad.spec, good.spec], ca_file=ca_file) as client:
            r = client.resolve("a.test")
            assert r.server == client.servers[1] and r.authenticated
            error = client.stats.servers[0].last_error
        assert isinstance(error, dotclient.AuthenticationError), error
    assert bad.frames == []  # no query went to the server that failed authentication


@pytest.mark.timing
def test_a_silent_server_gets_its_share_of_the_timeout(
    mode: str, server_cert: IssuedCert, good: FakeServer, ca_file: str
) -> None:
    def silent(conn: FakeConnection) -> None:
        while conn.read_query() is not None:
            pass

    with FakeServer(server_cert, silent) as mute:
        with open_client(
            mode, servers=[mute.spec, good.spec], ca_file=ca_file, timeout=2.0
        ) as client:
            started = time.monotonic()
            r = client.resolve("a.test")
            elapsed = time.monotonic() - started
            assert r.server == client.servers[1]
            assert 0.9 < elapsed < 1.5  # half of the 2 s timeout, then the answer
            assert "timed out" in str(client.stats.servers[0].last_error)
            started = time.monotonic()
            client.resolve("b.test")  # the silent one is backed off now
            assert time.monotonic() - started < 0.5


@pytest.mark.timing
def test_server_timeout_sets_the_share(
    mode: str, server_cert: IssuedCert, good: FakeServer, ca_file: str
) -> None:
    # 0.3 s on the stuck server, where half the 6 s timeout would be the default share:
    # the bound leaves 1.2 s for connecting to the good server and its answer.
    with FakeServer(server_cert, handshake=False) as stuck:
        with open_client(
            mode,
            servers=[stuck.spec, good.spec],
            ca_file=ca_file,
            timeout=6.0,
            server_timeout=0.3,
        ) as client:
            started = time.monotonic()
            assert client.resolve("a.test").server == client.servers[1]
            assert time.monotonic() - started < 1.5


def test_a_server_answering_garbage_fails_over(
    mode: str, server_cert: IssuedCert, good: FakeServer, ca_file: str
) -> None:
    def garbage(conn: FakeConnection) -> None:
        while (query := conn.read_query()) is not None:
            conn.send(frame(query.id.to_bytes(2, "big") + b"\x81\x80" + b"\xff" * 20))

    with FakeServer(server_cert, garbage) as bad:
        with open_client(mode, servers=[bad.spec, good.spec], ca_file=ca_file) as client:
            assert client.resolve("a.test").server == client.servers[1]
            assert "malformed" in str(client.stats.servers[0].last_error)


def test_when_every_server_fails_the_error_names_each(
    mode: str, server_cert: IssuedCert, closed_port: str, ca_file: str
) -> None:
    untrusted = TestCA().issue("dot.test", "127.0.0.1")
    with FakeServer(untrusted) as bad:
        started = time.monotonic()
        with pytest.raises(dotclient.AllServersFailed) as info:
            resolve(mode, "a.test", servers=[closed_port, bad.spec], ca_file=ca_file, timeout=10)
        assert time.monotonic() - started < 2.5  # both fail fast: no waiting out the timeout
    error = info.value
    assert isinstance(error, dotclient.DoTError)
    assert [str(server) for server, _ in error.errors] == [closed_port, bad.spec]
    assert [type(e) for _, e in error.errors] == [
        dotclient.ConnectError,
        dotclient.AuthenticationError,
    ]
    message = str(error)
    assert message.startswith("all 2 servers failed: ")
    assert f"{closed_port}: cannot connect" in message
    assert f"{bad.spec}: certificate verification failed" in message


@pytest.mark.timing
def test_servers_left_untried_when_the_time_ran_out_are_counted(
    mode: str, server_cert: IssuedCert, good: FakeServer, ca_file: str
) -> None:
    with FakeServer(server_cert, handshake=False) as stuck:
        specs = [stuck.spec, good.spec]
        started = time.monotonic()
        with pytest.raises(dotclient.AllServersFailed) as info:
            # The stuck server gets all the time: nothing is left for the good one.
            resolve(mode, "a.test", servers=specs, ca_file=ca_file, timeout=0.4, server_timeout=5)
        assert time.monotonic() - started < 1.0
    assert str(info.value).startswith("no server answered in time (1 of 2 tried): ")
    assert [type(e) for _, e in info.value.errors] == [dotclient.Timeout]


def test_one_server_raises_its_own_error(mode: str, closed_port: str, ca_file: str) -> None:
    with pytest.raises(dotclient.ConnectError) as info:
        resolve(mode, "a.test", servers=[closed_port], ca_file=ca_file, timeout=1)
    assert not isinstance(info.value, dotclient.AllServersFailed)


def test_a_backed_off_server_is_tried_again_after_the_backoff(
    mode: str, server_cert: IssuedCert, good: FakeServer, ca_file: str
) -> None:
    calls = {"n": 0}

    def first_connection_fails(conn: FakeConnection) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            conn.read_query()
            conn.send(b"\x00\x00")  # a zero-length frame: ProtocolError
            return
        echo_handler(conn)

    with FakeServer(server_cert, first_connection_fails) as flaky:
        with open_client(
            mode, servers=[flaky.spec, good.spec], ca_file=ca_file, backoff=30.0
        ) as client:
            assert client.resolve("a.test").server == client.servers[1]
            assert client.resolve("a.test").server == client.servers[1]
            # The backoff runs out: time is injected (the rotation is told it is 31 s
            # later), so the queries above cannot outlast it on a slow machine.
            skew(client, 31.0)
            assert client.resolve("a.test").server == client.servers[0]  # back, and well
            assert client.stats.servers[0].failures == 0
            assert client.stats.servers[0].last_error is None


def test_round_robin_spreads_the_queries(mode: str, server_cert: IssuedCert, ca_file: str) -> None:
    with FakeServer(server_cert) as a, FakeServer(server_cert) as b, FakeServer(server_cert) as c:
        specs = [a.spec, b.spec, c.spec]
        with open_client(mode, servers=specs, strategy="round_robin", ca_file=ca_file) as client:
            for i in range(9):
                client.resolve(f"n{i}.test")
            assert [s.responses for s in client.stats.servers] == [3, 3, 3]
    assert [len(s.frames) for s in (a, b, c)] == [3, 3, 3]


def test_round_robin_skips_a_failed_server(
    mode: str, server_cert: IssuedCert, closed_port: str, ca_file: str
) -> None:
    with FakeServer(server_cert) as a, FakeServer(server_cert) as b:
        specs = [a.spec, closed_port, b.spec]
        # Backed off for longer than the test, however slow: it fails once only.
        options = {"strategy": "round_robin", "backoff": 60.0}
        with open_client(mode, servers=specs, ca_file=ca_file, **options) as client:
            for i in range(8):
                client.resolve(f"n{i}.test")
            stats = client.stats
    assert stats.servers[1].failures == 1 and stats.failovers == 1
    assert len(a.frames) + len(b.frames) == 8 and min(len(a.frames), len(b.frames)) >= 3


@pytest.mark.timing
def test_many_queries_waiting_on_a_stuck_server_all_move_on(
    mode: str, server_cert: IssuedCert, good: FakeServer, ca_file: str
) -> None:
    # One connect at a time per server: the queries queued behind the stuck handshake
    # must fail over when it does (after its 0.5 s share), not each wait out a share of
    # its own (40 x 0.5 s) nor the 4 s timeout.
    with FakeServer(server_cert, handshake=False) as stuck:
        with open_client(
            mode,
            servers=[stuck.spec, good.spec],
            ca_file=ca_file,
            timeout=4.0,
            server_timeout=0.5,
        ) as client:
            started = time.monotonic()
            results = client.resolve_many([f"n{i}.test" for i in range(40)])
            elapsed = time.monotonic() - started
            assert all(isinstance(r, dotclient.Response) for r in results), results[:3]
            assert {r.server for r in results if isinstance(r, dotclient.Response)} == {
                client.servers[1]
            }
            assert elapsed < 2.0
    assert stuck.connections == 1


def test_one_shot_resolve_takes_servers(
    mode: str, closed_port: str, good: FakeServer, ca_file: str
) -> None:
    r = resolve(mode, "a.test", servers=[closed_port, good.spec], ca_file=ca_file)
    assert r.addresses() == ["192.0.2.53"] and r.server.port == good.port


def test_threads_share_a_failing_over_client(
    server_cert: IssuedCert, closed_port: str, good: FakeServer, ca_file: str
) -> None:
    errors: list[BaseException] = []
    with dotclient.Client(servers=[closed_port, good.spec], ca_file=ca_file) as client:

        def work() -> None:
            try:
                for i in range(20):
                    assert client.resolve(f"t{i}.test").server == client.servers[1]
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert client.stats.servers[1].responses == 80
    assert errors == []


def test_unbound_behind_a_dead_server_answers_every_query(
    mode: str, unbound: UnboundServer, closed_port: str, ca_file: str
) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    # Backed off for longer than the batch takes, however slow: it fails once only.
    servers = [closed_port, spec]
    with open_client(mode, servers=servers, ca_file=ca_file, backoff=60.0) as client:
        names = ["a.example.test", "www.example.test", "nx.example.test"] * 100
        results = client.resolve_many(names)
        errors = [r for r in results if not isinstance(r, dotclient.Response)]
        assert errors == []
        assert [r.rcode.name for r in results[:3]] == ["NOERROR", "NOERROR", "NXDOMAIN"]
        assert client.stats.servers[1].responses == 300
        assert client.stats.servers[0].failures == 1


def test_no_query_lost_when_the_first_server_stops_under_load(
    mode: str, unbound_factory: Callable[..., UnboundServer], ca_file: str
) -> None:
    first, second = unbound_factory(), unbound_factory()
    specs = [f"127.0.0.1:{s.port}#dot.test" for s in (first, second)]
    names = ["a.example.test", "www.example.test", "nx.example.test"] * 100
    # max_backoff: however many times the first server failed while it was down (more on
    # a slow machine), it is tried again at most 0.4 s after its last failure.
    options = {"backoff": 0.2, "max_backoff": 0.4, "timeout": 5}
    with open_client(mode, servers=specs, ca_file=ca_file, **options) as client:
        results = client.resolve_many(names)
        assert client.stats.servers[0].responses == len(names)
        stopper = threading.Thread(target=first.stop)
        stopper.start()
        try:
            while stopper.is_alive():  # queries in flight as it stops
                results += client.resolve_many(names)
        finally:
            stopper.join(30)
        results += client.resolve_many(names)  # while it is down
        first.start()  # on the same port
        errors = [r for r in results if not isinstance(r, dotclient.Response)]
        assert errors == []
        assert [r.rcode.name for r in results[:3]] == ["NOERROR", "NOERROR", "NXDOMAIN"]
        answered = [s.responses for s in client.stats.servers]
        assert sum(answered) == len(results) and answered[1] >= len(names), answered
        # Back after its restart and the backoff: the first server takes queries again.
        deadline = time.monotonic() + 10
        while client.resolve("a.example.test").server != client.servers[0]:
            assert time.monotonic() < deadline, client.stats.servers[0]
            pause(client, 0.1)
        assert client.resolve("a.example.test").server == client.servers[0]
