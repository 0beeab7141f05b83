"""``dotclient serve`` with a real unbound behind, on 127.0.0.1: failures upstream, the
allow-list, the cache, metrics, limits and the command.

Most tests run the stub in-process on a loop of its own (a thread, ``support.stub``), so
that the cache's clock can be driven; the command itself runs as a subprocess for
signals, the config file and bind errors. Third-party clients in front (dig, kdig,
dnsperf, dnspython): tests/interop/test_serve_clients.py.
"""

from __future__ import annotations

import logging
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from dotclient._serve import _server
from dotclient._serve._access import AccessList
from dotclient._serve._cache import Cache
from dotclient._serve._metrics import Metrics
from dotclient.testing import DEFAULT_ZONE, IssuedCert, UnboundServer

from support.fakeserver import FakeConnection, FakeServer
from support.fakeserver import answer as fake_answer
from support.stub import A_RECORDS, WAIT, StubThread, addresses, tcp, udp

SRC = Path(__file__).resolve().parents[2] / "src"


class Clock:
    """A clock the test moves by hand, for the cache."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- failures ------------------------------------------------------------------------------


def test_servfail_with_extended_error_when_the_upstream_is_down(
    start_stub: Callable[..., StubThread],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    stub = start_stub(f"127.0.0.1:{closed}#dot.test", client={"timeout": 2.0})
    query = dns.message.make_query("a.example.test", "A", use_edns=0)
    response = udp(stub.port, query)
    assert query.is_response(response) and response.rcode() == dns.rcode.SERVFAIL
    (ede,) = response.options
    assert isinstance(ede, dns.edns.EDEOption) and ede.code == 23  # Network Error
    assert "ConnectError" in (ede.text or "") and str(closed) in (ede.text or "")


def test_servfail_within_the_timeout_when_the_upstream_is_silent(
    start_stub: Callable[..., StubThread],
) -> None:
    with socket.socket() as silent:  # takes the connection, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        spec = f"127.0.0.1:{silent.getsockname()[1]}#dot.test"
        stub = start_stub(spec, client={"timeout": 1.0})
        query = dns.message.make_query("a.example.test", "A", use_edns=0)
        response = tcp(stub.port, query)
    assert response.rcode() == dns.rcode.SERVFAIL
    assert response.options[0].code == 22  # type: ignore[attr-defined]  # No Reachable Authority


def test_garbage_never_stops_the_stub(stub: StubThread) -> None:
    rng = random.Random(18)
    header = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    junk = [b"", b"\x00", header, header + b"\x07example", b"\xff" * 600]
    junk += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) for _ in range(200)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(WAIT)
        for datagram in junk:
            sock.sendto(datagram, ("127.0.0.1", stub.port))
        # A header announcing a question that is not there: FORMERR with its ID.
        sock.sendto(header + b"\x07exam", ("127.0.0.1", stub.port))
        while True:
            reply = dns.message.from_wire(sock.recv(65535))
            if reply.id == 0x1234 and reply.rcode() == dns.rcode.FORMERR:
                break
    # TCP: a framed piece of junk gets FORMERR; the connection goes on.
    with socket.create_connection(("127.0.0.1", stub.port), timeout=WAIT) as conn:
        good = dns.message.make_query("a.example.test", "A")
        bad = header + b"\x03abc"
        conn.sendall(struct.pack("!H", len(bad)) + bad + struct.pack("!H", 0))
        with conn.makefile("rb") as stream:
            (length,) = struct.unpack("!H", stream.read(2))
            assert dns.message.from_wire(stream.read(length)).rcode() == dns.rcode.FORMERR
            assert stream.read(2) == b""  # a zero-length message: not a DNS client, closed
    response = udp(stub.port, good)
    assert addresses(response) == A_RECORDS


def test_a_source_outside_the_allow_list_is_refused(
    unbound: UnboundServer, start_stub: Callable[..., StubThread]
) -> None:
    # Only loopback traffic in tests: allow 127.0.0.2 alone and ask from 127.0.0.1.
    stub = start_stub(unbound, access=AccessList(["127.0.0.2/32"]))
    query = dns.message.make_query("a.example.test", "A")
    response = udp(stub.port, query)
    assert query.is_response(response) and response.rcode() == dns.rcode.REFUSED
    assert not response.answer
    with socket.create_connection(("127.0.0.1", stub.port), timeout=WAIT) as conn:
        wire = query.to_wire()
        conn.sendall(struct.pack("!H", len(wire)) + wire)
        try:  # closed without an answer (reset: the query was never read)
            assert conn.recv(2) == b""
        except ConnectionResetError:
            pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.2", 0))
        sock.settimeout(WAIT)
        sock.sendto(query.to_wire(), ("127.0.0.1", stub.port))
        allowed = dns.message.from_wire(sock.recv(65535))
    assert addresses(allowed) == A_RECORDS


def test_upstream_restarted_under_load_leaves_no_query_unanswered(
    unbound_factory: Callable[..., UnboundServer], start_stub: Callable[..., StubThread]
) -> None:
    upstream = unbound_factory()
    stub = start_stub(upstream, cache=None)
    restarts_done = threading.Event()

    def caller(worker: int) -> list[int]:
        rcodes = []
        count = 0
        deadline = None
        # Keep asking until the restarts are over, then until 20 answers came back:
        # queries are in flight across every restart whatever the machine's speed, and
        # a failure the client remembers from the restart (SERVFAIL at once while it
        # backs off) does not decide the verdict by how fast 20 queries go by.
        while not restarts_done.is_set() or count < 20:
            query = dns.message.make_query("a.example.test", "A", use_edns=0)
            response = udp(stub.port, query)  # a lost answer would be a timeout here
            assert query.is_response(response)
            rcodes.append(response.rcode())
            if restarts_done.is_set():
                deadline = deadline or time.monotonic() + 60
                assert time.monotonic() < deadline, "no answers 60 s after the restarts"
                count += response.rcode() == dns.rcode.NOERROR
        return rcodes

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(caller, i) for i in range(8)]
        for kill in (False, True):
            upstream.restart(kill=kill)
        restarts_done.set()
        outcomes = [rcode for f in futures for rcode in f.result(timeout=300)]
    assert set(outcomes) <= {dns.rcode.NOERROR, dns.rcode.SERVFAIL}
    assert outcomes[-1] == dns.rcode.NOERROR
    assert outcomes.count(dns.rcode.NOERROR) >= 8 * 20


def test_cache_ages_answers_and_expires_them(
    unbound_factory: Callable[..., UnboundServer], start_stub: Callable[..., StubThread]
) -> None:
    upstream = unbound_factory()
    clock = Clock()
    metrics = Metrics()
    stub = start_stub(upstream, cache=Cache(100), clock=clock, metrics=metrics)
    query = dns.message.make_query("mail.example.test", "A")
    first = udp(stub.port, query)
    assert first.answer[0].ttl == 3600 and addresses(first) == {"192.0.2.25"}
    # The upstream now says something else: only a cache miss can see it.
    upstream.zone = DEFAULT_ZONE.replace("192.0.2.25", "192.0.2.99")
    upstream.restart()
    clock.now += 1000.5
    cached = tcp(stub.port, query)
    assert addresses(cached) == {"192.0.2.25"} and cached.answer[0].ttl == 2600
    clock.now += 2599.0
    assert udp(stub.port, query).answer[0].ttl == 1
    clock.now += 1.0  # 3600 s after it was stored: expired
    fresh = udp(stub.port, query)
    assert addresses(fresh) == {"192.0.2.99"} and fresh.answer[0].ttl == 3600
    text = metrics.text()
    assert "dotclient_serve_cache_hits_total 2.0" in text
    assert "dotclient_serve_cache_misses_total 2.0" in text


def test_metrics_over_http(unbound: UnboundServer, start_stub: Callable[..., StubThread]) -> None:
    metrics = Metrics()
    stub = start_stub(unbound, cache=Cache(100), metrics=metrics)
    port = metrics.start("127.0.0.1", 0)
    for transport in (udp, udp, tcp):
        transport(stub.port, dns.message.make_query("a.example.test", "A"))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=WAIT) as page:
        text = page.read().decode()
    for name in (
        'dotclient_serve_queries_total{transport="udp"} 2.0',
        'dotclient_serve_queries_total{transport="tcp"} 1.0',
        'dotclient_serve_responses_total{rcode="0"} 3.0',
        "dotclient_serve_cache_hits_total 2.0",
        "dotclient_serve_upstream_latency_seconds_count 1.0",
        "dotclient_serve_in_flight 0.0",
    ):
        assert name in text, name


# -- the command -----------------------------------------------------------------------------


def serve(*argv: str) -> tuple[subprocess.Popen[str], int, str]:
    """``python -m dotclient serve ARGV``, once it says where it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dotclient", "serve", *argv],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()  # bounded: the process exits if it cannot listen
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if match is None:
        proc.kill()
        rest = proc.communicate(timeout=WAIT)[1]
        raise AssertionError(f"serve did not start: {line}{rest}")
    return proc, int(match.group(1)), line


def test_command_with_config_file_answers_and_sigterm_drains(ca_file: str, tmp_path: Path) -> None:
    # The upstream takes the connection and never answers: a query stays in flight
    # until SIGTERM, which must still answer it (SERVFAIL once the timeout is up).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        config = tmp_path / "serve.toml"
        config.write_text(
            f'listen = ["127.0.0.1:0"]\nserver = "127.0.0.1:{silent.getsockname()[1]}#dot.test"\n'
            f'ca_file = "{ca_file}"\ntimeout = 2.0\nno_cache = true\n'
            'metrics = "127.0.0.1:0"\n'
        )
        proc, port, line = serve("--config", str(config), "--quiet")
        scrape = re.search(r"metrics on (http://\S+)", line)
        assert scrape is not None, line
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(WAIT)
                query = dns.message.make_query("a.example.test", "A")
                sock.sendto(query.to_wire(), ("127.0.0.1", port))
                silent.settimeout(WAIT)
                upstream, _ = silent.accept()  # the query is in flight now
                with upstream:
                    with urllib.request.urlopen(scrape.group(1), timeout=WAIT) as page:
                        text = page.read().decode()
                    assert "dotclient_serve_in_flight 1.0" in text
                    assert 'dotclient_serve_queries_total{transport="udp"} 1.0' in text
                    proc.send_signal(signal.SIGTERM)
                    response = dns.message.from_wire(sock.recv(65535))
            assert query.is_response(response) and response.rcode() == dns.rcode.SERVFAIL
            _, err = proc.communicate(timeout=WAIT)
            assert proc.returncode == 0, err
            assert "stopped" in err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=WAIT)


def test_command_explains_a_port_it_cannot_bind(unbound: UnboundServer, ca_file: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "dotclient", "serve", "--listen", f"127.0.0.1:{port}"]
            + ["--server", f"127.0.0.1:{unbound.port}#dot.test", "--ca-file", ca_file],
            capture_output=True,
            text=True,
            timeout=WAIT,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )
    assert done.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "--listen 127.0.0.1:5300" in done.stderr


def test_one_log_line_per_upstream_failure_and_recovery(
    unbound_factory: Callable[..., UnboundServer],
    start_stub: Callable[..., StubThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = unbound_factory()
    stub = start_stub(upstream, cache=None, client={"timeout": 2.0})
    caplog.set_level(logging.WARNING, logger="dotclient.serve")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "dotclient.serve"]

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + WAIT  # the health check looks once a second
        while not any(text in line for line in lines()):
            assert time.monotonic() < deadline, lines()
            time.sleep(0.05)

    query = dns.message.make_query("a.example.test", "A")
    assert udp(stub.port, query).rcode() == dns.rcode.NOERROR
    upstream.kill()
    for _ in range(5):
        assert udp(stub.port, query).rcode() == dns.rcode.SERVFAIL
    wait_for("failed")
    upstream.start()
    deadline = time.monotonic() + WAIT
    while udp(stub.port, query).rcode() != dns.rcode.NOERROR:  # past the client's backoff
        assert time.monotonic() < deadline
    wait_for("answers again")
    assert len([line for line in lines() if "failed" in line]) == 1, lines()
    assert len([line for line in lines() if "answers again" in line]) == 1, lines()


def test_upstream_gets_the_clients_bits_and_buffer_size_with_padding(
    server_cert: IssuedCert, start_stub: Callable[..., StubThread]
) -> None:
    # A scripted upstream, to see the query as it arrives over TLS.
    seen: list[dns.message.Message] = []

    def record(conn: FakeConnection) -> None:
        while (query := conn.read_query()) is not None:
            seen.append(query)
            conn.send_message(fake_answer(query))

    with FakeServer(server_cert, record) as upstream:
        stub = start_stub(upstream.spec, cache=None)
        for flags, dnssec, payload in ((dns.flags.RD, False, 1400), (dns.flags.CD, True, 4000)):
            query = dns.message.make_query(
                "a.test", "A", use_edns=0, want_dnssec=dnssec, payload=payload
            )
            query.flags = flags
            response = udp(stub.port, query)
            assert query.is_response(response) and addresses(response) == {"192.0.2.53"}
            sent = seen[-1]
            assert sent.flags & (dns.flags.RD | dns.flags.CD) == flags
            assert bool(sent.ednsflags & dns.flags.DO) == dnssec
            assert sent.payload == payload
            padding = [o for o in sent.options if o.otype == dns.edns.OptionType.PADDING]
            assert padding  # RFC 8467


def test_drain_closes_idle_tcp_clients(stub: StubThread, monkeypatch: pytest.MonkeyPatch) -> None:
    # Idle connections would last an hour: only the drain can close this one in time.
    monkeypatch.setattr(_server, "TCP_IDLE", 3600.0)
    with socket.create_connection(("127.0.0.1", stub.port), timeout=WAIT) as idle:
        query = dns.message.make_query("a.example.test", "A")
        wire = query.to_wire()
        idle.sendall(struct.pack("!H", len(wire)) + wire)
        assert idle.recv(2)  # served, and now idle on a connection kept open
        stub.call(stub.stub.drain(timeout=WAIT))  # within WAIT, or .result() raises
        idle.settimeout(WAIT)
        rest = b""
        while chunk := idle.recv(65535):
            rest += chunk  # the rest of the answer, then EOF: closed by the stub


def test_tcp_connections_past_the_limit_are_closed(
    stub: StubThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_server, "MAX_TCP_CLIENTS", 1)
    wire = dns.message.make_query("a.example.test", "A").to_wire()
    framed = struct.pack("!H", len(wire)) + wire

    def ask(conn: socket.socket) -> bytes:
        conn.sendall(framed)
        try:
            return conn.recv(2)
        except ConnectionResetError:
            return b""

    with socket.create_connection(("127.0.0.1", stub.port), timeout=WAIT) as first:
        assert ask(first)  # answered: the first connection is counted now
        with socket.create_connection(("127.0.0.1", stub.port), timeout=WAIT) as second:
            assert ask(second) == b""  # closed unanswered
    deadline = time.monotonic() + WAIT  # the stub may take a moment to see them closed
    while True:
        with socket.create_connection(("127.0.0.1", stub.port), timeout=WAIT) as third:
            if ask(third):
                break
        assert time.monotonic() < deadline


def test_a_failed_start_closes_only_its_own_addresses(
    unbound: UnboundServer, start_stub: Callable[..., StubThread]
) -> None:
    stub = start_stub(unbound)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        with pytest.raises(_server.BindError, match=f"cannot listen on 127.0.0.1:{busy}"):
            stub.call(stub.stub.start([("127.0.0.2", 0), ("127.0.0.1", busy)]))
    assert stub.stub.addresses == [("127.0.0.1", stub.port)]
    response = udp(stub.port, dns.message.make_query("a.example.test", "A"))
    assert addresses(response) == A_RECORDS  # the first address still answers
