"""Tests of dotclient.testing: the throwaway CA and the unbound, named and dnsdist servers."""

from __future__ import annotations

import base64
import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dotclient.testing import (
    DEFAULT_ZONE,
    DelayedServer,
    DnsdistServer,
    IssuedCert,
    NamedServer,
    TestCA,
    UnboundServer,
    self_signed_cert,
)

from support.checks import spki_pin
from support.servers import AnyServer

Factory = Callable[..., UnboundServer]


def _query(
    server: AnyServer,
    qname: str,
    rdtype: str,
    *,
    context: ssl.SSLContext,
    server_hostname: str = "dot.test",
) -> dns.message.Message:
    query = dns.message.make_query(qname, rdtype)
    return dns.query.tls(
        query,
        server.address,
        port=server.port,
        timeout=5,
        ssl_context=context,
        server_hostname=server_hostname,
    )


def _handshake(server: AnyServer, context: ssl.SSLContext, server_hostname: str) -> bytes:
    """TLS handshake with the server; returns the DER certificate it presented."""
    with (
        socket.create_connection((server.address, server.port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname=server_hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def _rrset(
    message: dns.message.Message, section: list[dns.rrset.RRset], name: str, rdtype: str
) -> dns.rrset.RRset:
    matches = [
        r
        for r in section
        if r.name == dns.name.from_text(name) and r.rdtype == dns.rdatatype.from_text(rdtype)
    ]
    assert len(matches) == 1, message.to_text()
    return matches[0]


@pytest.fixture(scope="module")
def context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


# --- the zone, over DoT --------------------------------------------------------


def test_a(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    response = _query(unbound, "a.example.test", "A", context=context)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    rrset = _rrset(response, response.answer, "a.example.test.", "A")
    assert {r.to_text() for r in rrset} == {"192.0.2.1", "192.0.2.2"}


def test_aaaa(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    response = _query(unbound, "a.example.test", "AAAA", context=context)
    rrset = _rrset(response, response.answer, "a.example.test.", "AAAA")
    assert [r.to_text() for r in rrset] == ["2001:db8::1"]


def test_mx(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    response = _query(unbound, "example.test", "MX", context=context)
    rrset = _rrset(response, response.answer, "example.test.", "MX")
    assert [r.to_text() for r in rrset] == ["10 mail.example.test."]
    mail = _query(unbound, "mail.example.test", "A", context=context)
    assert [r.to_text() for r in _rrset(mail, mail.answer, "mail.example.test.", "A")] == [
        "192.0.2.25"
    ]


def test_soa_and_ns(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    soa = _query(unbound, "example.test", "SOA", context=context)
    assert _rrset(soa, soa.answer, "example.test.", "SOA")
    ns = _query(unbound, "example.test", "NS", context=context)
    assert [r.to_text() for r in _rrset(ns, ns.answer, "example.test.", "NS")] == [
        "ns.example.test."
    ]


def test_big_txt(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    response = _query(unbound, "big.example.test", "TXT", context=context)
    (rdata,) = _rrset(response, response.answer, "big.example.test.", "TXT")
    assert len(rdata.to_wire()) > 1000
    assert len(rdata.strings) > 1
    assert all(len(s) <= 255 for s in rdata.strings)
    assert len(response.to_wire()) > 1000


def test_case_insensitive(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    response = _query(unbound, "Mixed.Example.Test", "A", context=context)
    assert response.rcode() == dns.rcode.NOERROR
    rrset = _rrset(response, response.answer, "mixed.example.test.", "A")
    assert {r.to_text() for r in rrset} == {"192.0.2.1", "192.0.2.2"}
    assert rrset.name.to_text() == "Mixed.Example.Test."  # unbound echoes the query's case
    upper = _query(unbound, "A.EXAMPLE.TEST", "AAAA", context=context)
    assert _rrset(upper, upper.answer, "a.example.test.", "AAAA")


def test_cname_chain_is_followed_in_the_answer(
    unbound: UnboundServer, context: ssl.SSLContext
) -> None:
    # The zone is served as an auth-zone, which follows in-zone CNAMEs (RFC 1034 4.3.2).
    response = _query(unbound, "www.example.test", "A", context=context)
    assert response.rcode() == dns.rcode.NOERROR
    assert [r.to_text() for r in response.answer[:2]] == [
        "www.example.test. 300 IN CNAME alias.example.test.",
        "alias.example.test. 300 IN CNAME a.example.test.",
    ]
    # unbound rotates the order of records in an RRset (rrset-roundrobin)
    assert sorted(r.to_text() for r in response.answer[2]) == ["192.0.2.1", "192.0.2.2"]


def test_nxdomain(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    response = _query(unbound, "nx.example.test", "A", context=context)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.answer == []
    assert _rrset(response, response.authority, "example.test.", "SOA")


@pytest.mark.parametrize("qname", ["example.com", "example.org", "."])
def test_refused_outside_zone(unbound: UnboundServer, context: ssl.SSLContext, qname: str) -> None:
    response = _query(unbound, qname, "A", context=context)
    assert response.rcode() == dns.rcode.REFUSED
    assert response.answer == []


# --- the certificate the server presents -----------------------------------------


@pytest.mark.parametrize("server_hostname", ["dot.test", "localhost", "127.0.0.1"])
def test_presented_cert_verifies(
    unbound: UnboundServer, context: ssl.SSLContext, server_hostname: str
) -> None:
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    _handshake(unbound, context, server_hostname)


def test_wrong_name_rejected(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(unbound, context, "other.test")


def test_untrusted_ca_rejected(unbound: UnboundServer) -> None:
    other = ssl.create_default_context(cadata=TestCA("another CA").cert_pem.decode())
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(unbound, other, "dot.test")


def test_spki_pin_of_presented_cert(
    unbound: UnboundServer, context: ssl.SSLContext, server_cert: IssuedCert
) -> None:
    der = _handshake(unbound, context, "dot.test")
    assert der == server_cert.cert_der
    assert spki_pin(der) == server_cert.spki_pin
    assert len(base64.b64decode(server_cert.spki_pin, validate=True)) == 32


# --- TestCA / IssuedCert / self_signed_cert ------------------------------------------


def test_self_signed_server(unbound_factory: Factory) -> None:
    issued = self_signed_cert("self.test")
    server = unbound_factory(issued)
    trusting = ssl.create_default_context(cadata=issued.cert_pem.decode())
    response = _query(server, "a.example.test", "A", context=trusting, server_hostname="self.test")
    assert response.rcode() == dns.rcode.NOERROR
    assert spki_pin(_handshake(server, trusting, "self.test")) == issued.spki_pin


def test_server_reprs(unbound: UnboundServer, server_cert: IssuedCert) -> None:
    assert repr(unbound) == f"<UnboundServer 127.0.0.1:{unbound.port} running>"
    delayed = DelayedServer(server_cert, (unbound.host, unbound.port), host="::1")
    assert repr(delayed) == "<DelayedServer [::1]:0 delay=0.1 stopped>"
    assert delayed.address == "::1"


# --- UnboundServer ---------------------------------------------------------------


def test_restart_keeps_port(unbound_factory: Factory, context: ssl.SSLContext) -> None:
    server = unbound_factory()
    port = server.port
    assert port != 0
    assert _query(server, "a.example.test", "A", context=context).rcode() == dns.rcode.NOERROR
    # A client connection that is open across the restart sees the server close it.
    with (
        socket.create_connection((server.address, server.port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="dot.test") as tls,
    ):
        query = dns.message.make_query("a.example.test", "A")
        assert dns.query.tls(query, server.address, sock=tls, timeout=5).answer
        server.restart()
        assert tls.recv(1) == b""
    assert server.port == port
    assert server.running
    assert _query(server, "a.example.test", "A", context=context).rcode() == dns.rcode.NOERROR
    assert server.log.count("start of service") == 2


def test_kill_keeps_port_for_start(unbound_factory: Factory, context: ssl.SSLContext) -> None:
    server = unbound_factory()
    port, tmpdir = server.port, server._tmpdir
    assert tmpdir is not None
    with (
        socket.create_connection((server.address, server.port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="dot.test") as tls,
    ):
        query = dns.message.make_query("a.example.test", "A")
        assert dns.query.tls(query, server.address, sock=tls, timeout=5).answer
        server.kill()
        assert not server.running
        try:  # the kernel closes a killed process's sockets: EOF, or a reset
            assert tls.recv(1) == b""
        except ConnectionResetError:
            pass
    assert not os.path.exists(tmpdir)
    with pytest.raises(OSError):
        socket.create_connection((server.address, port), timeout=1).close()
    server.kill()  # idempotent
    server.start()
    assert server.port == port and server.running
    assert _query(server, "a.example.test", "A", context=context).rcode() == dns.rcode.NOERROR
    server.restart(kill=True)
    assert server.port == port and server.running
    assert server.log.count("start of service") == 3


@pytest.mark.usefixtures("unbound")  # skip (or fail in CI) without unbound, like the others
def test_context_manager_and_stop(server_cert: IssuedCert, context: ssl.SSLContext) -> None:
    server = UnboundServer(server_cert)
    with server as entered:
        assert entered is server
        assert server.address == "127.0.0.1"
        assert _query(server, "example.test", "MX", context=context).answer
    assert not server.running
    with pytest.raises(OSError):
        socket.create_connection((server.address, server.port), timeout=1).close()
    server.stop()  # idempotent
    assert "start of service" in server.log  # still readable after stop


def test_ipv6(unbound_factory: Factory, context: ssl.SSLContext) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    server = unbound_factory(host="::1")
    assert "do-ip6: yes" in server.config_text()
    response = _query(server, "a.example.test", "AAAA", context=context, server_hostname="::1")
    assert response.rcode() == dns.rcode.NOERROR


def test_custom_zone_and_extra_config(unbound_factory: Factory, context: ssl.SSLContext) -> None:
    zone = DEFAULT_ZONE + "extra 60 IN A 192.0.2.99\n"
    server = unbound_factory(zone=zone, extra_config="incoming-num-tcp: 20")
    assert "incoming-num-tcp: 20" in server.config_text()
    response = _query(server, "extra.example.test", "A", context=context)
    assert [r.to_text() for r in response.answer] == ["extra.example.test. 60 IN A 192.0.2.99"]


@pytest.mark.usefixtures("unbound")
def test_startup_failure_includes_log(server_cert: IssuedCert) -> None:
    server = UnboundServer(server_cert, extra_config="no-such-option: yes")
    with pytest.raises(RuntimeError, match="no-such-option"):
        server.start()
    assert not server.running
    assert server.port == 0


# --- NamedServer and DnsdistServer ---------------------------------------------------

NamedFactory = Callable[..., NamedServer]
DnsdistFactory = Callable[..., DnsdistServer]


@pytest.fixture(params=["named", "dnsdist"])
def other_server(request: pytest.FixtureRequest) -> AnyServer:
    """The session's named, then the session's dnsdist."""
    server = request.getfixturevalue(request.param)
    assert isinstance(server, NamedServer | DnsdistServer)
    return server


def test_other_servers_serve_the_zone(other_server: AnyServer, context: ssl.SSLContext) -> None:
    a = _query(other_server, "a.example.test", "A", context=context)
    assert a.rcode() == dns.rcode.NOERROR and a.flags & dns.flags.AA
    assert {r.to_text() for r in _rrset(a, a.answer, "a.example.test.", "A")} == {
        "192.0.2.1",
        "192.0.2.2",
    }
    www = _query(other_server, "www.example.test", "A", context=context)
    assert [r.to_text() for r in www.answer[:2]] == [
        "www.example.test. 300 IN CNAME alias.example.test.",
        "alias.example.test. 300 IN CNAME a.example.test.",
    ]
    nx = _query(other_server, "nx.example.test", "A", context=context)
    assert nx.rcode() == dns.rcode.NXDOMAIN
    assert _rrset(nx, nx.authority, "example.test.", "SOA")
    big = _query(other_server, "big.example.test", "TXT", context=context)
    assert len(big.to_wire()) > 1000


@pytest.mark.parametrize("qname", ["example.com", "other.test", "."])
def test_other_servers_refuse_outside_zone(
    other_server: AnyServer, context: ssl.SSLContext, qname: str
) -> None:
    # No built-in local zones as in unbound: other.test. is REFUSED too.
    response = _query(other_server, qname, "A", context=context)
    assert response.rcode() == dns.rcode.REFUSED
    assert response.answer == []


def test_other_servers_present_the_cert(
    other_server: AnyServer, context: ssl.SSLContext, server_cert: IssuedCert
) -> None:
    assert _handshake(other_server, context, "dot.test") == server_cert.cert_der
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(other_server, context, "other.test")


def test_named_config(named: NamedServer) -> None:
    text = named.config_text()
    assert f"listen-on port {named.port} tls dot {{ 127.0.0.1; }};" in text
    assert f"listen-on port {named.plain_port} {{ 127.0.0.1; }};" in text
    assert "listen-on-v6 { none; };" in text  # no default listener on port 53
    for line in ["recursion no;", "notify no;", "dnssec-validation no;", "controls { };"]:
        assert line in text
    assert 'zone "example.test." {' in text and "type primary;" in text
    assert "running" in named.log


def test_named_plain_port(named: NamedServer) -> None:
    assert named.plain_port not in (None, 0, named.port)
    query = dns.message.make_query("a.example.test", "AAAA")
    udp = dns.query.udp(query, named.address, port=named.plain_port, timeout=5)
    tcp = dns.query.tcp(query, named.address, port=named.plain_port, timeout=5)
    assert udp.answer == tcp.answer
    assert [r.to_text() for r in udp.answer[0]] == ["2001:db8::1"]


def test_named_without_plain_port_restart_and_stop(
    named_factory: NamedFactory, context: ssl.SSLContext
) -> None:
    server = named_factory(zone=DEFAULT_ZONE + "extra 60 IN A 192.0.2.99\n")
    assert server.plain_port is None
    assert "tls dot" in server.config_text() and "listen-on port" in server.config_text()
    assert server.config_text().count("listen-on port") == 1
    port = server.port
    tmpdir = server._tmpdir
    assert tmpdir is not None and os.path.isdir(tmpdir)
    response = _query(server, "extra.example.test", "A", context=context)
    assert [r.to_text() for r in response.answer] == ["extra.example.test. 60 IN A 192.0.2.99"]
    server.restart()
    assert server.port == port and server.running
    assert not os.path.exists(tmpdir)
    assert _query(server, "a.example.test", "A", context=context).answer
    assert server.log.count(" running\n") == 2
    server.stop()
    assert not server.running
    with pytest.raises(OSError):
        socket.create_connection((server.address, port), timeout=1).close()
    server.stop()  # idempotent


def test_named_ipv6(named_factory: NamedFactory, context: ssl.SSLContext) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    server = named_factory(host="::1", plain_port=0)
    assert "listen-on { none; };" in server.config_text()
    assert f"listen-on-v6 port {server.port} tls dot {{ ::1; }};" in server.config_text()
    response = _query(server, "a.example.test", "AAAA", context=context, server_hostname="::1")
    assert response.rcode() == dns.rcode.NOERROR


@pytest.mark.usefixtures("named")
def test_named_startup_failure_includes_log(server_cert: IssuedCert) -> None:
    server = NamedServer(server_cert, extra_config="no-such-option yes;", startup_timeout=5)
    with pytest.raises(RuntimeError, match="no-such-option"):
        server.start()
    assert not server.running
    assert server.port == 0


def test_dnsdist_config(dnsdist: DnsdistServer, named: NamedServer) -> None:
    assert dnsdist.backend == (named.host, named.plain_port)
    assert dnsdist.backend_server is None
    text = dnsdist.config_text()
    assert 'setSecurityPollSuffix("")' in text  # no version lookup over the network
    assert 'setACL({"127.0.0.0/8", "::1/128"})' in text
    assert f'addTLSLocal("127.0.0.1:{dnsdist.port}", ' in text
    assert f'newServer({{address="127.0.0.1:{named.plain_port}"}})' in text
    assert "setMaxTCPQueriesPerConnection" not in text and "maxInFlight" not in text
    assert "Listening on" in dnsdist.log


def test_dnsdist_extra_config_takes_effect(
    dnsdist_factory: DnsdistFactory, context: ssl.SSLContext
) -> None:
    # A rule dnsdist answers itself, seen in an answer the backend does not have (not a
    # timer measured against the clock: an idle close after 1 s instead of 2 s was).
    server = dnsdist_factory(
        extra_config='addAction("spoofed.example.test.", SpoofAction("192.0.2.99"))'
    )
    response = _query(server, "spoofed.example.test", "A", context=context)
    assert [r.to_text() for r in response.answer] == ["spoofed.example.test. 60 IN A 192.0.2.99"]
    assert _query(server, "a.example.test", "A", context=context).answer  # the backend


@pytest.mark.usefixtures("dnsdist")  # skip (or fail in CI) without dnsdist and named
def test_dnsdist_own_backend(server_cert: IssuedCert, context: ssl.SSLContext) -> None:
    server = DnsdistServer(server_cert, zone=DEFAULT_ZONE + "own 60 IN A 192.0.2.77\n")
    backend = server.backend_server
    assert backend is not None and server.backend == ("127.0.0.1", 0)
    with server:
        assert backend.running and backend.plain_port
        assert server.backend == ("127.0.0.1", backend.plain_port)
        response = _query(server, "own.example.test", "A", context=context)
        assert [r.to_text() for r in response.answer] == ["own.example.test. 60 IN A 192.0.2.77"]
        port, backend_port = server.port, backend.plain_port
        server.restart()  # dnsdist only: the backend keeps running
        assert server.port == port and backend.plain_port == backend_port
        assert backend.log.count(" running\n") == 1
        assert _query(server, "own.example.test", "A", context=context).answer
    assert not server.running and not backend.running


# --- pipelining, over raw TLS sockets --------------------------------------------------


def _frame(qid: int) -> bytes:
    query = dns.message.make_query("a.example.test", "A" if qid % 2 else "AAAA")
    query.id = qid
    wire = query.to_wire()
    return len(wire).to_bytes(2, "big") + wire


def _raw_exchange(
    tls: ssl.SSLSocket, ids: list[int], *, one_write: bool = True, limit: float = 5.0
) -> tuple[list[int], float | None]:
    """Write queries with *ids* (in one write, or one write each), then read for up to
    *limit* seconds. Returns the IDs answered, in order, and when the server closed
    the connection (seconds after the write), or None if it did not."""
    frames = [_frame(i) for i in ids]
    start = time.monotonic()
    if one_write:
        tls.sendall(b"".join(frames))
    else:
        for frame in frames:
            try:
                tls.sendall(frame)
            except OSError:  # closed already (SSLEOFError is one): read what came
                break
    buffer, answered = b"", []
    while len(answered) < len(ids):
        left = limit - (time.monotonic() - start)
        if left <= 0:
            return answered, None
        tls.settimeout(left)
        try:
            data = tls.recv(65536)
        except TimeoutError:
            return answered, None
        except OSError:
            data = b""
        if not data:
            return answered, time.monotonic() - start
        buffer += data
        while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
            size = int.from_bytes(buffer[:2], "big")
            answered.append(dns.message.from_wire(buffer[2 : 2 + size]).id)
            buffer = buffer[2 + size :]
    return answered, None


def _pipeline(
    server: AnyServer, context: ssl.SSLContext, count: int = 10, **kwargs: Any
) -> tuple[list[int], float | None]:
    with (
        socket.create_connection((server.address, server.port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="dot.test") as tls,
    ):
        return _raw_exchange(tls, list(range(1, count + 1)), **kwargs)


@pytest.mark.parametrize("one_write", [True, False], ids=["one-write", "one-write-each"])
def test_unbound_and_named_answer_pipelined_queries(
    unbound: UnboundServer, named: NamedServer, context: ssl.SSLContext, one_write: bool
) -> None:
    for server in (unbound, named):
        answered, closed = _pipeline(server, context, one_write=one_write)
        assert sorted(answered) == list(range(1, 11)), server  # named: in any order
        assert closed is None


@pytest.mark.parametrize("one_write", [True, False], ids=["one-write", "one-write-each"])
def test_dnsdist_max_in_flight_answers_pipelined_queries(
    dnsdist_factory: DnsdistFactory, context: ssl.SSLContext, one_write: bool
) -> None:
    # With its defaults, dnsdist 1.7 answers only the first of queries that arrive in
    # one TLS record; maxInFlight makes it read and answer them all (in any order).
    server = dnsdist_factory(max_in_flight=10)
    answered, _ = _pipeline(server, context, one_write=one_write)
    assert sorted(answered) == list(range(1, 11))


def test_dnsdist_max_queries_per_connection_closes(
    dnsdist_factory: DnsdistFactory, context: ssl.SSLContext
) -> None:
    server = dnsdist_factory(max_queries_per_connection=3)
    answered, closed = _pipeline(server, context, one_write=False)
    # dnsdist 1.7.3 answers N + 1 queries on a DoT connection before it closes it.
    assert answered[:3] == [1, 2, 3] and len(answered) <= 4
    assert closed is not None and closed < 1.0
