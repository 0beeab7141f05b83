"""dnspython's own Resolver (blocking and asyncio) over DoTNameserver, against unbound.

Every test drives the real ``dns.resolver.Resolver`` or ``dns.asyncresolver.Resolver``
(``mode``), so search, CNAME, NXDOMAIN and NoAnswer handling are dnspython's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import dns.asyncresolver
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.tsig
import pytest

import dotclient
from dotclient.integrations.dnspython import (
    DoTNameserver,
    aclose_resolver,
    close_resolver,
    make_async_resolver,
    make_resolver,
)
from dotclient.testing import UnboundServer


@pytest.fixture
def spec(web_unbound: UnboundServer) -> str:
    return f"127.0.0.1:{web_unbound.port}#dot.test"


class Driver:
    """One blocking facade over both resolvers: ``mode`` picks which one runs."""

    def __init__(self, mode: str, *args: Any, **kwargs: Any) -> None:
        self.mode = mode
        if mode == "sync":
            self.resolver: dns.resolver.BaseResolver = make_resolver(*args, **kwargs)
        else:
            self.loop = asyncio.new_event_loop()
            self.resolver = make_async_resolver(*args, **kwargs)

    def resolve(self, *args: Any, **kwargs: Any) -> dns.resolver.Answer:
        if self.mode == "sync":
            assert isinstance(self.resolver, dns.resolver.Resolver)
            return self.resolver.resolve(*args, **kwargs)
        assert isinstance(self.resolver, dns.asyncresolver.Resolver)
        return self.loop.run_until_complete(self.resolver.resolve(*args, **kwargs))

    def close(self) -> None:
        if self.mode == "sync":
            close_resolver(self.resolver)
        else:
            self.loop.run_until_complete(aclose_resolver(self.resolver))
            self.loop.close()


@contextlib.contextmanager
def resolver(mode: str, *args: Any, **kwargs: Any) -> Iterator[Driver]:
    driver = Driver(mode, *args, **kwargs)
    try:
        yield driver
    finally:
        driver.close()


def texts(answer: dns.resolver.Answer) -> list[str]:
    assert answer.rrset is not None
    return sorted(rdata.to_text() for rdata in answer.rrset)


def test_a_aaaa_and_cname_chain(mode: str, spec: str, ca_file: str) -> None:
    with resolver(mode, spec, ca_file=ca_file) as r:
        a = r.resolve("a.example.test", "A")
        aaaa = r.resolve("a.example.test", "AAAA")
        www = r.resolve("www.example.test", "A")
    assert texts(a) == ["192.0.2.1", "192.0.2.2"]
    assert texts(aaaa) == ["2001:db8::1"]
    # dnspython followed the chain: the answer is for the canonical name.
    assert texts(www) == ["192.0.2.1", "192.0.2.2"]
    assert www.canonical_name == dns.name.from_text("a.example.test")
    assert www.qname == dns.name.from_text("www.example.test")
    assert www.nameserver == "127.0.0.1" and www.port == int(spec.split(":")[1].split("#")[0])


def test_nxdomain_and_no_answer(mode: str, spec: str, ca_file: str) -> None:
    with resolver(mode, spec, ca_file=ca_file) as r:
        with pytest.raises(dns.resolver.NXDOMAIN, match="nx.example.test"):
            r.resolve("nx.example.test")
        with pytest.raises(dns.resolver.NoAnswer, match="a.example.test. IN MX"):
            r.resolve("a.example.test", "MX")


def test_search_domains_are_dnspythons(mode: str, spec: str, ca_file: str) -> None:
    with resolver(mode, spec, ca_file=ca_file) as r:
        r.resolver.search = [dns.name.from_text("example.test")]
        answer = r.resolve("a", "A", search=True)
    assert answer.qname == dns.name.from_text("a.example.test")


def test_cached_second_lookup_sends_no_query(mode: str, spec: str, ca_file: str) -> None:
    client: Any
    if mode == "sync":
        client = dotclient.Client(spec, ca_file=ca_file)
    else:
        client = dotclient.AsyncClient(spec, ca_file=ca_file)
    r = Driver(mode, client=client)
    assert isinstance(r.resolver.cache, dns.resolver.LRUCache)
    first = r.resolve("a.example.test")
    sent = client.stats.queries_sent
    second = r.resolve("a.example.test")
    assert client.stats.queries_sent == sent == 1
    assert texts(first) == texts(second)
    # Off, each lookup is a query on the kept connection.
    r.resolver.cache = None
    r.resolve("a.example.test")
    r.resolve("a.example.test")
    assert client.stats.queries_sent == 3
    assert client.stats.connections_opened == 1
    if mode == "sync":
        close_resolver(r.resolver)
        assert client.resolve("a.example.test").addresses()  # the caller's: still open
        client.close()
    else:
        try:
            r.loop.run_until_complete(aclose_resolver(r.resolver))
            assert r.loop.run_until_complete(client.resolve("a.example.test")).addresses()
            r.loop.run_until_complete(client.aclose())
        finally:
            r.loop.close()


def test_concurrent_async_lookups_share_one_connection(spec: str, ca_file: str) -> None:
    async def main() -> dotclient.ClientStats:
        async with dotclient.AsyncClient(spec, ca_file=ca_file) as client:
            r = make_async_resolver(client=client, cache=False)
            names = [f"{label}.example.test" for label in ("a", "www", "mixed", "web")] * 5
            answers = await asyncio.gather(*(r.resolve(name) for name in names))
            assert [texts(answer)[0] for answer in answers[:4]] == [
                "192.0.2.1",
                "192.0.2.1",
                "192.0.2.1",
                "127.0.0.1",
            ]
            return client.stats

    stats = asyncio.run(main())
    assert stats.queries_sent == 20 and stats.connections_opened == 1


def test_untrusted_server_names_the_cause(mode: str, spec: str) -> None:
    with resolver(mode, spec) as r:  # certifi's bundle: the test CA is not in it
        with pytest.raises(dns.resolver.NoNameservers) as info:
            r.resolve("a.example.test")
    assert "certificate verification failed" in str(info.value)
    assert f"DoT:{spec}" in str(info.value)


def test_server_down_names_the_cause(mode: str, unbound_factory: Any, ca_file: str) -> None:
    down = unbound_factory()
    down.stop()
    with resolver(mode, f"127.0.0.1:{down.port}#dot.test", ca_file=ca_file) as r:
        with pytest.raises(dns.resolver.NoNameservers) as info:
            r.resolve("a.example.test")
    assert f"cannot connect to 127.0.0.1:{down.port}" in str(info.value)
    error = info.value.kwargs["errors"][0][3]
    assert isinstance(error, ConnectionError)
    assert isinstance(error.__cause__, dotclient.ConnectError)


def test_resolver_rotates_past_a_failing_nameserver(
    mode: str, spec: str, unbound_factory: Any, ca_file: str
) -> None:
    down = unbound_factory()
    down.stop()
    servers = [f"127.0.0.1:{down.port}#dot.test", spec]
    with resolver(mode, servers=servers, ca_file=ca_file) as r:
        assert [str(ns) for ns in r.resolver.nameservers] == [f"DoT:{s}" for s in servers]
        r.resolver.rotate = False
        answer = r.resolve("a.example.test")
    assert texts(answer) == ["192.0.2.1", "192.0.2.2"]
    assert answer.port == int(spec.split(":")[1].split("#")[0])


def test_a_silent_server_is_retried_until_the_lifetime(mode: str, ca_file: str) -> None:
    # A listening socket that never accepts: the TLS handshake never completes. dotclient's
    # Timeout becomes dnspython's Timeout, which the resolver retries (an OSError would
    # take the nameserver out), and the lookup ends with the resolver's LifetimeTimeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with resolver(mode, f"127.0.0.1:{port}#dot.test", ca_file=ca_file) as r:
            r.resolver.timeout = 0.2
            r.resolver.lifetime = 2.0  # room for several 0.2 s attempts, even when loaded
            with pytest.raises(dns.resolver.LifetimeTimeout) as info:
                r.resolve("a.example.test")
    errors = info.value.kwargs["errors"]
    assert len(errors) >= 2  # retried, not dropped after the first
    assert all(isinstance(error[3], dns.exception.Timeout) for error in errors)
    assert isinstance(errors[0][3].__cause__, dotclient.Timeout)


def test_nameserver_interface(spec: str, ca_file: str) -> None:
    with DoTNameserver(spec, ca_file=ca_file) as ns:
        assert isinstance(ns, dns.nameserver.Nameserver)
        assert ns.kind() == "DoT" and str(ns) == f"DoT:{spec}"
        assert ns.answer_nameserver() == "127.0.0.1"
        assert ns.answer_port() == ns.server.port
        query = dns.message.make_query("a.example.test", "A")
        response = ns.query(query, timeout=5.0, source=None, source_port=0, max_size=True)
        assert query.is_response(response)
        # Asked without EDNS, answered without it (the hop's OPT and padding removed),
        # as a server answers; asked with it, the answer keeps it.
        assert response.edns == -1 and response.answer
        edns = dns.message.make_query("a.example.test", "A", use_edns=0)
        answer = ns.query(edns, timeout=5.0, source=None, source_port=0, max_size=True)
        assert edns.is_response(answer) and answer.edns == 0 and answer.answer
        with pytest.raises(NotImplementedError, match="source"):
            ns.query(query, timeout=5.0, source="127.0.0.1", source_port=0, max_size=True)
    # Closed, it still describes itself (dnspython's error messages use str()).
    assert str(ns) == f"DoT:{spec}" and "owned client" in repr(ns)


def test_misuse_is_caught_before_io(spec: str, ca_file: str) -> None:
    with pytest.raises(dotclient.InvalidServerSpec):
        make_resolver("127.0.0.1:99999")
    with pytest.raises(TypeError, match="cannot be combined"):
        make_resolver(client=dotclient.Client(spec), ca_file=ca_file)
    with pytest.raises(TypeError, match="client="):
        DoTNameserver(client="127.0.0.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        make_resolver(servers=[])
    with dotclient.Client(spec, ca_file=ca_file) as client:
        with pytest.raises(TypeError, match="dotclient.AsyncClient"):
            make_async_resolver(client=client)  # type: ignore[arg-type]
        # A nameserver given the wrong kind is dropped by the resolver, which says why.
        r = dns.asyncresolver.Resolver(configure=False)
        r.nameservers = [DoTNameserver(client=client)]

        async def main() -> None:
            with pytest.raises(dns.resolver.NoNameservers, match="blocking dotclient.Client"):
                await r.resolve("a.example.test")

        asyncio.run(main())


def test_queries_other_than_plain_go_out_as_given(
    mode: str, spec: str, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Plain queries take the client's resolve() path; any other (here EDNS with a larger
    # payload and the DO bit, or the CD flag) is sent as dnspython built it, by query().
    client: Any
    if mode == "sync":
        client = dotclient.Client(spec, ca_file=ca_file)
    else:
        client = dotclient.AsyncClient(spec, ca_file=ca_file)
    calls: list[str] = []

    def spy(name: str) -> Any:
        call = getattr(client, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return call(*args, **kwargs)  # for AsyncClient, the coroutine to await

        return wrapper

    monkeypatch.setattr(client, "query", spy("query"))
    monkeypatch.setattr(client, "resolve", spy("resolve"))
    r = Driver(mode, client=client, cache=False)
    try:
        plain = r.resolve("www.example.test")
        r.resolver.use_edns(0, dns.flags.DO, 4096)
        dnssec = r.resolve("www.example.test")
        r.resolver.use_edns(-1)
        r.resolver.flags = dns.flags.RD | dns.flags.CD
        cd = r.resolve("www.example.test")
    finally:
        if mode == "sync":
            client.close()
        else:
            r.loop.run_until_complete(client.aclose())
        r.close()
    assert calls == ["resolve", "query", "query"]
    assert texts(plain) == texts(dnssec) == texts(cd) == ["192.0.2.1", "192.0.2.2"]


def test_an_owned_async_client_stays_with_its_event_loop(spec: str, ca_file: str) -> None:
    r = make_async_resolver(spec, ca_file=ca_file, cache=False)

    async def lookup() -> list[str]:
        return texts(await r.resolve("a.example.test"))

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(lookup()) == ["192.0.2.1", "192.0.2.2"]
        # From another loop: a clear refusal at once, not a client on a dead loop.
        with pytest.raises(dns.resolver.NoNameservers, match="one adapter per event loop"):
            asyncio.run(lookup())
    finally:
        loop.run_until_complete(aclose_resolver(r))
        loop.close()
