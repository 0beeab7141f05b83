"""Interoperability with a real DoT server: Debian's unbound on 127.0.0.1.

Every test runs with the blocking and the asyncio API (``mode``).
"""

from __future__ import annotations

import asyncio
import ssl

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

import dotclient
from dotclient.testing import IssuedCert, TestCA, UnboundServer, self_signed_cert

from support.modes import open_client, resolve


@pytest.fixture
def spec(unbound: UnboundServer) -> str:
    """Address, port and authentication name of the session's unbound."""
    return f"127.0.0.1:{unbound.port}#dot.test"


# -- answers -------------------------------------------------------------------------


def test_a_and_aaaa(mode: str, spec: str, ca_file: str) -> None:
    with open_client(mode, spec, ca_file=ca_file) as client:
        a = client.resolve("a.example.test")
        aaaa = client.resolve("a.example.test", "AAAA")
    assert a.rcode == dns.rcode.NOERROR
    assert sorted(a.addresses()) == ["192.0.2.1", "192.0.2.2"]
    assert aaaa.addresses() == ["2001:db8::1"]
    assert a.authenticated and aaaa.authenticated
    assert a.tls_version in ("TLSv1.2", "TLSv1.3")
    assert 0 < a.elapsed < 5
    assert a.server.port == int(spec.split(":")[1].split("#")[0])


def test_cname_chain_is_followed(mode: str, spec: str, ca_file: str) -> None:
    with open_client(mode, spec, ca_file=ca_file) as client:
        r = client.resolve("www.example.test")
    assert [rr.rdtype for rr in r.answer][0] == dns.rdatatype.CNAME
    rrset = r.rrset
    assert rrset is not None and rrset.rdtype == dns.rdatatype.A
    assert str(rrset.name) == "a.example.test."
    assert sorted(r.addresses()) == ["192.0.2.1", "192.0.2.2"]


def test_mx_and_large_txt(mode: str, spec: str, ca_file: str) -> None:
    with open_client(mode, spec, ca_file=ca_file) as client:
        mx = client.resolve("example.test", "MX")
        txt = client.resolve("big.example.test", "TXT")
    assert mx.rrset is not None and str(mx.rrset[0].exchange) == "mail.example.test."
    assert mx.addresses() == []
    assert txt.rrset is not None
    size = sum(len(s) for rdata in txt.rrset for s in rdata.strings)
    assert size > 1000


def test_nxdomain_is_a_response_not_an_exception(mode: str, spec: str, ca_file: str) -> None:
    with open_client(mode, spec, ca_file=ca_file) as client:
        r = client.resolve("nx.example.test")
        refused = client.resolve("example.com")
    assert r.rcode == dns.rcode.NXDOMAIN
    assert r.rrset is None and r.addresses() == []
    with pytest.raises(dotclient.RcodeError, match="NXDOMAIN") as info:
        r.raise_for_rcode()
    assert info.value.response is r
    assert refused.rcode == dns.rcode.REFUSED


def test_name_case_does_not_matter(mode: str, spec: str, ca_file: str) -> None:
    with open_client(mode, spec, ca_file=ca_file) as client:
        r = client.resolve("A.Example.TEST")
    assert sorted(r.addresses()) == ["192.0.2.1", "192.0.2.2"]


def test_query_takes_any_dnspython_message(mode: str, spec: str, ca_file: str) -> None:
    q = dns.message.make_query("big.example.test", "TXT", want_dnssec=True)
    original_id = q.id
    before = q.to_text()
    with open_client(mode, spec, ca_file=ca_file) as client:
        r = client.query(q)
    assert q.to_text() == before  # the caller's message is untouched
    assert q.is_response(r.message) and r.message.id == original_id
    assert r.rrset is not None and r.rrset.rdtype == dns.rdatatype.TXT


def test_one_connection_serves_many_queries(mode: str, spec: str, ca_file: str) -> None:
    with open_client(mode, spec, ca_file=ca_file) as client:
        client.resolve("a.example.test")
        rest = [client.resolve("a.example.test", "AAAA") for _ in range(20)]
        stats = client.stats
    # No handshake after the first: counted, not inferred from the queries' times.
    assert stats.connections_opened == 1 and stats.responses == 21
    assert all(r.addresses() == ["2001:db8::1"] for r in rest)


def test_one_shot_functions(mode: str, spec: str, ca_file: str) -> None:
    r = resolve(mode, "a.example.test", "A", server=spec, ca_file=ca_file)
    assert sorted(r.addresses()) == ["192.0.2.1", "192.0.2.2"]
    r = resolve(mode, "example.test", "MX", server=spec, ca_file=ca_file, dnssec=True)
    assert r.rcode == dns.rcode.NOERROR


def test_default_server_comes_from_the_environment(
    mode: str, spec: str, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOTCLIENT_SERVER", spec)
    r = resolve(mode, "a.example.test", ca_file=ca_file)
    assert str(r.server) == spec


# -- authentication ------------------------------------------------------------------


def test_bare_ip_is_authenticated_by_ip_san(
    mode: str, unbound: UnboundServer, ca_file: str
) -> None:
    r = resolve(mode, "a.example.test", server=f"127.0.0.1:{unbound.port}", ca_file=ca_file)
    assert r.authenticated and r.server.auth_name is None


def test_hostname_spec_is_its_own_authentication_name(
    mode: str, unbound: UnboundServer, ca_file: str
) -> None:
    r = resolve(mode, "a.example.test", server=f"localhost:{unbound.port}", ca_file=ca_file)
    assert r.authenticated and r.server.verify_name == "localhost"


def test_wrong_name_fails(mode: str, unbound: UnboundServer, ca_file: str) -> None:
    with pytest.raises(dotclient.AuthenticationError, match="wrong.test"):
        resolve(
            mode, "a.example.test", server=f"127.0.0.1:{unbound.port}#wrong.test", ca_file=ca_file
        )


def test_wrong_ip_fails(mode: str, unbound: UnboundServer, ca_file: str) -> None:
    # The certificate has 127.0.0.1 and ::1, not 127.0.0.2 (which still reaches us).
    with pytest.raises(dotclient.AuthenticationError, match=r"127\.0\.0\.2"):
        resolve(
            mode, "a.example.test", server=f"127.0.0.1:{unbound.port}#127.0.0.2", ca_file=ca_file
        )


def test_untrusted_ca_fails_by_default(mode: str, spec: str) -> None:
    # No ca_file: certifi's public roots do not include the test CA.
    with pytest.raises(dotclient.AuthenticationError, match="certificate"):
        resolve(mode, "a.example.test", server=spec)


def test_other_ca_fails(mode: str, spec: str, tmp_path: object) -> None:
    other = TestCA("some other CA").write_ca_file(f"{tmp_path}/other.pem")
    with pytest.raises(dotclient.AuthenticationError):
        resolve(mode, "a.example.test", server=spec, ca_file=other)


def test_matching_pin_passes(mode: str, spec: str, ca_file: str, server_cert: IssuedCert) -> None:
    r = resolve(mode, "a.example.test", server=spec, ca_file=ca_file, pins=[server_cert.spki_pin])
    assert r.authenticated
    assert r.tls.peer_pins[0] == dotclient.Server("::1", pins=[server_cert.spki_pin]).pins[0]


def test_pin_of_the_ca_passes(mode: str, spec: str, ca_file: str, test_ca: TestCA) -> None:
    from dotclient._tls import format_pin, spki_digest

    ca_der = ssl.PEM_cert_to_DER_cert(test_ca.cert_pem.decode())
    r = resolve(
        mode,
        "a.example.test",
        server=spec,
        ca_file=ca_file,
        pins=[format_pin(spki_digest(ca_der))],
    )
    assert r.authenticated


def test_wrong_pin_fails_even_with_a_valid_chain(mode: str, spec: str, ca_file: str) -> None:
    other = self_signed_cert("dot.test").spki_pin
    with pytest.raises(dotclient.AuthenticationError, match="no SPKI pin matched"):
        resolve(mode, "a.example.test", server=spec, ca_file=ca_file, pins=[other])


def test_self_signed_server_accepted_by_pin_only(mode: str, unbound_factory: object) -> None:
    cert = self_signed_cert("selfsigned.test")
    server = unbound_factory(cert)  # type: ignore[operator]
    address = f"127.0.0.1:{server.port}"
    with pytest.raises(dotclient.AuthenticationError):
        resolve(mode, "a.example.test", server=address)
    r = resolve(mode, "a.example.test", server=address, pins=[cert.spki_pin], pin_only=True)
    assert r.authenticated and sorted(r.addresses()) == ["192.0.2.1", "192.0.2.2"]
    wrong = self_signed_cert("selfsigned.test").spki_pin
    with pytest.raises(dotclient.AuthenticationError, match="no SPKI pin matched"):
        resolve(mode, "a.example.test", server=address, pins=[wrong], pin_only=True)


def test_opportunistic_goes_on_unauthenticated(mode: str, spec: str) -> None:
    r = resolve(mode, "a.example.test", server=spec, profile="opportunistic")
    assert not r.authenticated
    assert r.tls.auth_error is not None and "certificate" in r.tls.auth_error
    assert sorted(r.addresses()) == ["192.0.2.1", "192.0.2.2"]
    assert "UNAUTHENTICATED" in repr(r)


def test_opportunistic_authenticates_when_it_can(mode: str, spec: str, ca_file: str) -> None:
    r = resolve(mode, "a.example.test", server=spec, ca_file=ca_file, profile="opportunistic")
    assert r.authenticated and r.tls.auth_error is None


def test_ssl_context_escape_hatch(mode: str, spec: str, ca_file: str) -> None:
    ctx = ssl.create_default_context(cafile=ca_file)
    r = resolve(mode, "a.example.test", server=spec, ssl_context=ctx)
    assert r.authenticated
    ctx = ssl.create_default_context()  # public roots only
    with pytest.raises(dotclient.AuthenticationError):
        resolve(mode, "a.example.test", server=spec, ssl_context=ctx)


def test_sni_can_differ_from_the_verified_name(mode: str, spec: str, ca_file: str) -> None:
    r = resolve(mode, "a.example.test", server=spec, ca_file=ca_file, sni="front.example")
    assert r.authenticated
    r = resolve(mode, "a.example.test", server=spec, ca_file=ca_file, sni=False)
    assert r.authenticated
    with pytest.raises(dotclient.AuthenticationError, match="not valid for 'wrong.test'"):
        resolve(
            mode,
            "a.example.test",
            server=spec.replace("dot.test", "wrong.test"),
            ca_file=ca_file,
            sni="dot.test",
        )


# -- failures ------------------------------------------------------------------------


def test_connection_refused_is_a_connect_error(mode: str, ca_file: str) -> None:
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(dotclient.ConnectError) as info:
        resolve(mode, "a.example.test", server=f"127.0.0.1:{port}", ca_file=ca_file, timeout=2)
    assert not isinstance(info.value, dotclient.Timeout)


def test_client_survives_a_server_restart(
    mode: str, unbound_factory: object, ca_file: str
) -> None:
    server = unbound_factory()  # type: ignore[operator]
    with open_client(mode, f"127.0.0.1:{server.port}#dot.test", ca_file=ca_file) as client:
        assert client.resolve("a.example.test").rcode == dns.rcode.NOERROR
        server.restart()  # the kept connection dies with the old process
        r = client.resolve("a.example.test")
    assert r.rcode == dns.rcode.NOERROR and r.authenticated


def test_closed_client_refuses_queries(spec: str, ca_file: str) -> None:
    with dotclient.Client(spec, ca_file=ca_file) as client:
        client.resolve("a.example.test")
    with pytest.raises(RuntimeError, match="closed"):
        client.resolve("a.example.test")

    async def main() -> None:
        async with dotclient.AsyncClient(spec, ca_file=ca_file) as aclient:
            await aclient.resolve("a.example.test")
        with pytest.raises(RuntimeError, match="closed"):
            await aclient.resolve("a.example.test")

    asyncio.run(main(), debug=True)


def test_dnssec_flag_sets_do_bit(mode: str, spec: str, ca_file: str) -> None:
    r = resolve(mode, "a.example.test", server=spec, ca_file=ca_file, dnssec=True)
    assert r.message.ednsflags & dns.flags.DO


def test_ipv6_server(mode: str, unbound_factory: object, ca_file: str) -> None:
    server = unbound_factory(host="::1")  # type: ignore[operator]
    r = resolve(mode, "a.example.test", "AAAA", server=f"[::1]:{server.port}", ca_file=ca_file)
    assert r.authenticated and r.addresses() == ["2001:db8::1"]
    assert str(r.server) == f"[::1]:{server.port}"


def test_threads_share_one_client(spec: str, ca_file: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    names = [f"{label}.example.test" for label in ("a", "www", "mail", "nx")] * 10
    with dotclient.Client(spec, ca_file=ca_file) as client:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(client.resolve, names))
    for name, r in zip(names, results, strict=True):
        assert r.question is not None and str(r.question[0]) == name + "."
        expected = dns.rcode.NXDOMAIN if name.startswith("nx.") else dns.rcode.NOERROR
        assert r.rcode == expected


def test_tasks_share_one_async_client(spec: str, ca_file: str) -> None:
    async def main() -> list[dotclient.Response]:
        async with dotclient.AsyncClient(spec, ca_file=ca_file) as client:
            return await asyncio.gather(
                *(client.resolve("a.example.test", rdtype) for rdtype in ["A", "AAAA"] * 10)
            )

    results = asyncio.run(main(), debug=True)
    assert all(sorted(r.addresses()) == ["192.0.2.1", "192.0.2.2"] for r in results[::2])
    assert all(r.rcode == dns.rcode.NOERROR for r in results)
    assert all(r.addresses() == ["2001:db8::1"] for r in results[1::2])


def test_pin_only_trusts_only_the_servers_own_certificate(
    mode: str, spec: str, test_ca: TestCA, server_cert: IssuedCert
) -> None:
    # unbound sends its leaf and our CA. Without chain verification anybody can send a
    # copy of a CA certificate, so a pin on it must not authenticate (only the leaf's).
    from dotclient._tls import format_pin, spki_digest

    ca_pin = format_pin(spki_digest(ssl.PEM_cert_to_DER_cert(test_ca.cert_pem.decode())))
    with pytest.raises(dotclient.AuthenticationError, match="no SPKI pin matched"):
        resolve(mode, "a.example.test", server=spec, pins=[ca_pin], pin_only=True)
    r = resolve(mode, "a.example.test", server=spec, pins=[server_cert.spki_pin], pin_only=True)
    assert r.authenticated
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    with pytest.raises(dotclient.AuthenticationError, match="no SPKI pin matched|not verified"):
        resolve(mode, "a.example.test", server=spec, pins=[ca_pin], ssl_context=unverified)
    r = resolve(
        mode, "a.example.test", server=spec, pins=[server_cert.spki_pin], ssl_context=unverified
    )
    assert r.authenticated
