"""``dotclient serve``'s lean miss path against a real unbound: which queries take it (the
client is spied on: ``resolve()`` for the lean path, ``query()`` for the message path),
and that its replies are those of the message path (the stub with a cache, whose misses
take it). The byte-level reply building: tests/unit/test_serve_plain.py."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import dns.edns
import dns.flags
import dns.message
import pytest

from dotclient.testing import UnboundServer

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


def test_plain_dnspython_queries_take_the_lean_path_others_the_message_path(
    lean: StubThread, stub: StubThread
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
            # The stub with a cache misses (or hits) through the message path: the same,
            # but for the order of the RRs in an RRset (unbound turns it round).
            other = send(stub.port, query)
            assert sorted(reply.to_text().split("\n")) == sorted(other.to_text().split("\n"))
    assert addresses(udp(lean.port, plain[1])) == A_RECORDS


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
