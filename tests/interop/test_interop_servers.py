"""Interoperability with BIND 9's named and dnsdist (in front of named) on 127.0.0.1.

The same answers as from unbound (``test_interop.py``) with strict authentication
against the test CA, then pipelined bursts: named answers out of order, dnsdist reads
one query per TLS record and can close after N queries. The baseline tests run against
both servers (``server``); every test runs with the blocking and the asyncio API
(``mode``).
"""

from __future__ import annotations

from typing import Any

import dns.rcode
import dns.rdatatype
import pytest

import dotclient
from dotclient.testing import DnsdistServer, NamedServer, TestCA

from support.modes import open_client, resolve


@pytest.fixture(params=["named", "dnsdist"])
def server(request: pytest.FixtureRequest) -> NamedServer | DnsdistServer:
    """The session's named, then the session's dnsdist (default settings)."""
    started = request.getfixturevalue(request.param)
    assert isinstance(started, NamedServer | DnsdistServer)
    return started


@pytest.fixture
def spec(server: NamedServer | DnsdistServer) -> str:
    """Address, port and authentication name of the server."""
    return f"127.0.0.1:{server.port}#dot.test"


def test_a_and_aaaa(mode: str, spec: str, ca_file: str) -> None:
    with open_client(mode, spec, ca_file=ca_file) as client:
        a = client.resolve("a.example.test")
        aaaa = client.resolve("a.example.test", "AAAA")
    assert a.rcode == dns.rcode.NOERROR
    assert sorted(a.addresses()) == ["192.0.2.1", "192.0.2.2"]
    assert aaaa.addresses() == ["2001:db8::1"]
    assert a.authenticated and aaaa.authenticated
    assert a.tls_version in ("TLSv1.2", "TLSv1.3")


def test_cname_chain_is_followed(mode: str, spec: str, ca_file: str) -> None:
    with open_client(mode, spec, ca_file=ca_file) as client:
        r = client.resolve("www.example.test")
    assert [rr.rdtype for rr in r.answer] == [
        dns.rdatatype.CNAME,
        dns.rdatatype.CNAME,
        dns.rdatatype.A,
    ]
    assert r.rrset is not None and str(r.rrset.name) == "a.example.test."
    assert sorted(r.addresses()) == ["192.0.2.1", "192.0.2.2"]


def test_nxdomain_and_refused(mode: str, spec: str, ca_file: str) -> None:
    with open_client(mode, spec, ca_file=ca_file) as client:
        nx = client.resolve("nx.example.test")
        refused = client.resolve("example.com")
    assert nx.rcode == dns.rcode.NXDOMAIN
    assert nx.rrset is None and nx.addresses() == []
    assert nx.authenticated
    with pytest.raises(dotclient.RcodeError, match="NXDOMAIN"):
        nx.raise_for_rcode()
    assert refused.rcode == dns.rcode.REFUSED


def test_large_txt(mode: str, spec: str, ca_file: str) -> None:
    with open_client(mode, spec, ca_file=ca_file) as client:
        txt = client.resolve("big.example.test", "TXT")
    assert txt.rrset is not None
    assert sum(len(s) for rdata in txt.rrset for s in rdata.strings) > 1000


def test_one_connection_serves_many_queries(mode: str, spec: str, ca_file: str) -> None:
    with open_client(mode, spec, ca_file=ca_file) as client:
        answers = [client.resolve("a.example.test", "AAAA") for _ in range(20)]
    assert all(r.addresses() == ["2001:db8::1"] for r in answers)


def test_one_shot_function(mode: str, spec: str, ca_file: str) -> None:
    r = resolve(mode, "a.example.test", "A", server=spec, ca_file=ca_file)
    assert sorted(r.addresses()) == ["192.0.2.1", "192.0.2.2"]


def test_strict_authentication_needs_the_test_ca(
    mode: str, spec: str, ca_file: str, tmp_path: object
) -> None:
    with pytest.raises(dotclient.AuthenticationError):
        resolve(mode, "a.example.test", server=spec)  # certifi's roots only
    other = TestCA("some other CA").write_ca_file(f"{tmp_path}/other.pem")
    with pytest.raises(dotclient.AuthenticationError):
        resolve(mode, "a.example.test", server=spec, ca_file=other)
    with pytest.raises(dotclient.AuthenticationError, match="wrong.test"):
        resolve(
            mode, "a.example.test", server=spec.replace("dot.test", "wrong.test"), ca_file=ca_file
        )


# -- pipelined bursts ------------------------------------------------------------------

BURST = ["a.example.test", "www.example.test", "nx.example.test", "big.example.test"] * 50


def check_burst(outcomes: list[object]) -> None:
    """Every query of BURST answered, each with its own question, nothing lost."""
    assert len(outcomes) == len(BURST)
    for name, outcome in zip(BURST, outcomes, strict=True):
        assert isinstance(outcome, dotclient.Response), (name, outcome)
        assert outcome.question is not None and str(outcome.question[0]) == name + "."
        expected = dns.rcode.NXDOMAIN if name.startswith("nx.") else dns.rcode.NOERROR
        assert outcome.rcode == expected, name


@pytest.mark.usefixtures("no_false_stalls")
def test_pipelined_burst(mode: str, spec: str, ca_file: str) -> None:
    # named answers pipelined queries out of order; dnsdist with its defaults answers
    # only the first of queries that arrive in one TLS record, and the client writes
    # each query as a record of its own: either way nothing is lost, so nothing is
    # resent after waiting for dnsdist's 2 s close (counted, not timed: 200 queries
    # take over a second on a loaded machine, too close to 2 s to tell by the clock).
    with open_client(mode, spec, ca_file=ca_file) as client:
        outcomes = client.resolve_many(BURST)
        stats = client.stats
    check_burst(outcomes)
    assert stats.responses == len(BURST)
    assert stats.resent == 0 and stats.pipelining_fallbacks == 0


@pytest.mark.usefixtures("no_false_stalls")
def test_named_pipelines(named: NamedServer, ca_file: str, mode: str) -> None:
    spec = f"127.0.0.1:{named.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file, max_connections=1) as client:
        check_burst(client.resolve_many(BURST))
        stats = client.stats
    assert stats.pipelining is True and stats.resent == 0
    assert stats.connections_opened == 1


@pytest.mark.usefixtures("no_false_stalls")
def test_dnsdist_default_pipelines_one_query_per_record(
    dnsdist: DnsdistServer, ca_file: str, mode: str
) -> None:
    # dnsdist 1.7 with its defaults reads one query per TLS record (test_testing.py):
    # the client writes each query as its own record, so it can pipeline all the same.
    spec = f"127.0.0.1:{dnsdist.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file, max_connections=1) as client:
        check_burst(client.resolve_many(BURST))
        stats = client.stats
    assert stats.resent == 0 and stats.pipelining_fallbacks == 0
    assert stats.connections_opened == 1


@pytest.mark.usefixtures("no_false_stalls")
def test_dnsdist_with_max_in_flight_pipelines(
    dnsdist_factory: Any, ca_file: str, mode: str
) -> None:
    server = dnsdist_factory(max_in_flight=100)
    spec = f"127.0.0.1:{server.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file) as client:
        check_burst(client.resolve_many(BURST))
        stats = client.stats
    assert stats.pipelining_fallbacks == 0


def test_dnsdist_closing_after_n_queries_loses_nothing(
    dnsdist_factory: Any, ca_file: str, mode: str
) -> None:
    server = dnsdist_factory(max_queries_per_connection=5, max_in_flight=100)
    spec = f"127.0.0.1:{server.port}#dot.test"
    # A generous timeout: ~40 reconnects under the debug event loop of the tests.
    with open_client(mode, spec, ca_file=ca_file, timeout=15) as client:
        check_burst(client.resolve_many(BURST))
        stats = client.stats
    assert stats.responses == len(BURST)
    assert stats.connections_opened >= len(BURST) // 6
