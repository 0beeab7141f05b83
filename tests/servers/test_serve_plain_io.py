"""``dotclient serve``'s lean miss path against a real unbound: which queries take it (the
client is spied on: ``resolve()`` for the lean path, ``query()`` for the message path),
with the cache off and on, and that its replies are those of the message path (the same
stub with the lean path turned off). The byte-level reply building:
tests/unit/test_serve_plain.py."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import dns.edns
import dns.flags
import dns.message
import pytest

from dotclient._serve import _server
from dotclient._serve._cache import Cache
from dotclient.testing import IssuedCert, UnboundServer

from support.fakeserver import FakeConnection, FakeServer
from support.fakeserver import answer as fake_answer
from support.stub import A_RECORDS, WAIT, StubThread, addresses, tcp, udp


class Spy:
    """Counts the stub's client calls by method name, passing each through."""

    def __init__(self, stub: StubThread) -> None:
        self.calls: list[str] = []
        client = stub.stub.client
        for method in ("resolve", "query"):
            setattr(client, method, self._wrap(method, getattr(client, method)))

    def _wrap(self, method: str, call: Callable[..., Any]) -> Callable[..., Any]:
        async def spy(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(method)
            return await call(*args, **kwargs)

        return spy

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


@pytest.fixture
def lean(unbound: UnboundServer, start_stub: Callable[..., StubThread]) -> StubThread:
    """A stub without a cache (so a plain query's miss takes the lean path)."""
    return start_stub(unbound, cache=None)


def lines(message: dns.message.Message) -> list[str]:
    """``message`` as text, its lines sorted: unbound turns the order of RRs round."""
    return sorted(message.to_text().split("\n"))


def test_plain_dnspython_queries_take_the_lean_path_others_the_message_path(
    lean: StubThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(lean)
    plain = [
        dns.message.make_query("a.example.test", "A"),  # EDNS, buffer 1232
        dns.message.make_query("A.Example.TEST", "A", use_edns=False),
        dns.message.make_query("a.example.test", "A", want_dnssec=True),
        dns.message.make_query("nx.example.test", "A"),  # NXDOMAIN, a SOA
        dns.message.make_query("a.example.test", "MX"),  # NODATA
    ]
    ecs = dns.edns.ECSOption("192.0.2.0", 24)
    cd = dns.message.make_query("a.example.test", "A")
    cd.flags |= dns.flags.CD
    others = [cd, dns.message.make_query("a.example.test", "A", options=[ecs])]
    for query, path in [(q, "resolve") for q in plain] + [(q, "query") for q in others]:
        for send in (udp, tcp):
            reply = send(lean.port, query)
            assert spy.take() == [path], query
            assert query.is_response(reply)
            with monkeypatch.context() as patch:  # the message path, for the same query
                patch.setattr(_server, "plain_question", lambda query: None)
                assert lines(send(lean.port, query)) == lines(reply), query
            assert spy.take() == ["query"]
    assert addresses(udp(lean.port, plain[1])) == A_RECORDS


def test_with_the_cache_a_plain_miss_takes_the_lean_path_and_is_cached(
    unbound: UnboundServer, start_stub: Callable[..., StubThread]
) -> None:
    stub = start_stub(unbound, cache=Cache(100))
    spy = Spy(stub)
    for name, edns in (("www.example.test", 0), ("mail.example.test", -1)):
        query = dns.message.make_query(name, "A", use_edns=edns)
        miss = udp(stub.port, query)
        assert spy.take() == ["resolve"]
        hit = tcp(stub.port, query)
        assert spy.take() == []
        assert lines(hit) == lines(miss) and (miss.edns, hit.edns) == (edns, edns)
        # The entry was made from the parsed answer: the other kind of client gets it too.
        other = udp(stub.port, dns.message.make_query(name, "A", use_edns=-1 - edns))
        assert spy.take() == [] and other.edns == -1 - edns and addresses(other)


def test_the_upstream_gets_the_same_query_bytes_on_either_path(
    server_cert: IssuedCert, start_stub: Callable[..., StubThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []

    def record(conn: FakeConnection) -> None:
        while (wire := conn.read_frame()) is not None:
            seen.append(wire)
            conn.send_message(fake_answer(dns.message.from_wire(wire)))

    with FakeServer(server_cert, record) as upstream:
        stub = start_stub(upstream.spec, cache=None)
        spy = Spy(stub)
        for query in (
            dns.message.make_query("A.Example.test", "A"),
            dns.message.make_query("a.example.test", "AAAA", use_edns=False),
            dns.message.make_query("a.example.test", "TXT", want_dnssec=True),
        ):
            lean = udp(stub.port, query)
            with monkeypatch.context() as patch:
                patch.setattr(_server, "plain_question", lambda query: None)
                full = udp(stub.port, query)
            assert spy.take() == ["resolve", "query"]
            assert lines(lean) == lines(full)
            assert seen[-2][2:] == seen[-1][2:]  # all but the random ID
            assert len(seen[-1]) % 128 == 0  # padded in blocks of 128 (RFC 8467)


@pytest.mark.parametrize(
    ("command", "path"),
    [
        (["dig", "+noad", "+nocookie"], "resolve"),  # EDNS, buffer 1232, RD only
        (["dig", "+noad", "+nocookie", "+tcp"], "resolve"),
        (["dig", "+noedns", "+noad"], "resolve"),
        (["kdig", "+noadflag"], "resolve"),
        (["kdig", "+noadflag", "+tcp"], "resolve"),
        (["dig", "+cdflag", "+noad", "+nocookie"], "query"),
        (["dig", "+subnet=192.0.2.0/24", "+noad", "+nocookie"], "query"),
        (["dig"], "query"),  # by default dig sets AD and sends a cookie
        (["kdig"], "query"),  # and kdig sets AD
    ],
    ids=" ".join,
)
def test_dig_and_kdig(lean: StubThread, command: list[str], path: str) -> None:
    binary = shutil.which(command[0])
    if binary is None:
        pytest.skip(f"{command[0]} is not installed (scripts/install-servers installs it)")
    spy = Spy(lean)
    out = subprocess.run(
        [binary, "+short", *command[1:], "-p", str(lean.port), "@127.0.0.1", "a.example.test"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    assert set(out.stdout.split()) == A_RECORDS
    assert spy.take() == [path]
