"""Connection set-up (issue 17): source address, SSLKEYLOGFILE, client certificates,
Happy Eyeballs, DoT bootstrap and SOCKS5, against real parts on 127.0.0.1 and ::1.

The policy pieces (``_happy.Race``, ``_bootstrap.AddressCache``) are tested as tables
with the time passed in, in tests/unit/test_connect_pure.py; here the rest runs in both
modes against unbound, nginx's stream module (mTLS) and microsocks (SOCKS5), from
``tests/support/connparts.py``.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.rcode
import pytest

import dotclient
from dotclient.testing import IssuedCert, TestCA, UnboundServer

from support.connparts import ZONE, Microsocks, NginxTLS, blackhole, running
from support.modes import open_client, resolve

# -- source_address ---------------------------------------------------------------------


@pytest.fixture
def logging_unbound(unbound_factory: Callable[..., UnboundServer]) -> UnboundServer:
    """unbound serving ZONE that logs each query with the client's address."""
    return unbound_factory(zone=ZONE, extra_config="    log-queries: yes")


def _queries_from(server: UnboundServer, name: str) -> list[str]:
    return [line for line in server.log.splitlines() if f" {name} " in line]


def test_source_address_is_the_one_the_server_sees(
    mode: str, logging_unbound: UnboundServer, ca_file: str
) -> None:
    spec = f"127.0.0.1:{logging_unbound.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file, source_address="127.0.0.2") as client:
        assert client.resolve(f"{mode}-src.example.test").rcode == dns.rcode.NXDOMAIN
    seen = _queries_from(logging_unbound, f"{mode}-src.example.test.")
    assert seen and all("127.0.0.2 " in line for line in seen), logging_unbound.log
    # And with a port: the one the client binds to.
    with socket.socket() as probe:
        probe.bind(("127.0.0.3", 0))
        port = probe.getsockname()[1]
    response = resolve(
        mode, "a.example.test", server=spec, ca_file=ca_file, source_address=("127.0.0.3", port)
    )
    assert response.addresses()
    assert any("127.0.0.3 " in line for line in _queries_from(logging_unbound, "a.example.test."))


def test_a_source_address_of_the_other_family_fails_clearly(
    mode: str, unbound: UnboundServer, ca_file: str
) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    with pytest.raises(dotclient.ConnectError, match="family of source_address ::1"):
        resolve(mode, "a.example.test", server=spec, ca_file=ca_file, source_address="::1")


# -- SSLKEYLOGFILE ------------------------------------------------------------------------


def test_sslkeylogfile_gets_the_session_keys(
    mode: str,
    unbound: UnboundServer,
    ca_file: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keylog = tmp_path / "keys.txt"
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    resolve(mode, "a.example.test", server=spec, ca_file=ca_file)
    assert not keylog.exists()
    monkeypatch.setenv("SSLKEYLOGFILE", str(keylog))
    response = resolve(mode, "a.example.test", server=spec, ca_file=ca_file)
    labels = {line.split()[0] for line in keylog.read_text().splitlines() if line.strip()}
    if response.tls_version == "TLSv1.3":
        assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"} <= labels
    else:  # pragma: no cover - unbound negotiates TLS 1.3
        assert "CLIENT_RANDOM" in labels


def test_an_unwritable_sslkeylogfile_does_not_break_queries(
    mode: str,
    unbound: UnboundServer,
    ca_file: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "missing-dir" / "keys.txt"))
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    assert resolve(mode, "a.example.test", server=spec, ca_file=ca_file).addresses()


# -- client certificates (nginx stream, ssl_verify_client on, in front of unbound) -------


@pytest.fixture
def mtls(
    unbound_factory: Callable[..., UnboundServer], server_cert: IssuedCert, test_ca: TestCA
) -> Iterator[NginxTLS]:
    backend = unbound_factory(plain_port=0)
    assert backend.plain_port
    with running(NginxTLS(server_cert, test_ca.cert_pem, backend.plain_port)) as nginx:
        assert isinstance(nginx, NginxTLS)
        yield nginx


@pytest.fixture(scope="module")
def client_files(test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return test_ca.issue("client.test", client=True).write(
        tmp_path_factory.mktemp("client"), "client"
    )


def test_a_server_requiring_client_certificates_refuses_a_client_without(
    mode: str, mtls: NginxTLS, ca_file: str
) -> None:
    with pytest.raises(dotclient.DoTError):
        resolve(mode, "a.example.test", server=f"127.0.0.1:{mtls.port}#dot.test", ca_file=ca_file)


def test_client_certificate_with_resumption_and_pins(
    mode: str,
    mtls: NginxTLS,
    ca_file: str,
    client_files: tuple[str, str],
    server_cert: IssuedCert,
    tmp_path: Path,
) -> None:
    cert, key = client_files
    spec = f"127.0.0.1:{mtls.port}#dot.test"
    with open_client(
        mode, spec, ca_file=ca_file, client_cert=cert, client_key=key, pins=[server_cert.spki_pin]
    ) as client:
        first = client.resolve("a.example.test")
        assert first.addresses() and first.authenticated and not first.tls.resumed
        client.close_connections()
        second = client.resolve("a.example.test")
        assert second.addresses() and second.authenticated
        assert second.tls.resumed and client.stats.sessions_resumed == 1
    # The key may be in the certificate's own file.
    both = tmp_path / "both.pem"
    both.write_bytes(Path(cert).read_bytes() + Path(key).read_bytes())
    response = resolve(mode, "a.example.test", server=spec, ca_file=ca_file, client_cert=str(both))
    assert response.addresses()


# -- Happy Eyeballs -------------------------------------------------------------------------


def test_a_blackholed_ipv6_address_costs_the_stagger_not_the_timeout(
    mode: str, logging_unbound: UnboundServer, ca_file: str
) -> None:
    port = logging_unbound.port
    with blackhole("::1", port) as hole:
        started = time.monotonic()
        with open_client(
            mode,
            f"he.example.test:{port}#dot.test",
            bootstrap=[f"127.0.0.1:{port}#dot.test"],
            ca_file=ca_file,
            timeout=10,
            happy_eyeballs_delay=0.25,
        ) as client:
            response = client.resolve("a.example.test")
            elapsed = time.monotonic() - started
            assert response.addresses()
            assert response.server.host == "127.0.0.1"
            assert response.server.auth_name == "dot.test"
            assert client.stats.servers[0].address == "127.0.0.1"
        # The IPv6 address was tried (first): its connection waits in the queue...
        peer, address = hole.accept()
        with peer:
            assert ipaddress.ip_address(address[0]) == ipaddress.ip_address("::1")
            # ...and the losing attempt was closed: its ClientHello, then the end.
            peer.settimeout(10)
            received = b""
            while chunk := peer.recv(65536):
                received += chunk
            assert received[:1] == b"\x16"  # a TLS handshake record
    assert elapsed < 5, elapsed  # the timeout is 10 s: the blackhole did not use it up


def test_without_a_stagger_shorter_than_the_timeout_the_blackhole_stalls(
    mode: str, logging_unbound: UnboundServer, ca_file: str
) -> None:
    # The control: the same set-up where the next attempt would start after the
    # timeout, so the blackholed address (tried first) uses up the query's time.
    port = logging_unbound.port
    with blackhole("::1", port):
        with pytest.raises(dotclient.Timeout, match="in the TLS handshake"):
            resolve(
                mode,
                "a.example.test",
                server=f"he.example.test:{port}#dot.test",
                bootstrap=[f"127.0.0.1:{port}#dot.test"],
                ca_file=ca_file,
                timeout=1,
                happy_eyeballs_delay=30,
            )


def test_a_refused_address_moves_on_at_once(
    mode: str, logging_unbound: UnboundServer, ca_file: str
) -> None:
    # Nothing listens on ::1 at this port: refused, so the IPv4 attempt starts at once
    # even with a stagger longer than the timeout (RFC 8305 section 5).
    port = logging_unbound.port
    response = resolve(
        mode,
        "a.example.test",
        server=f"he.example.test:{port}#dot.test",
        bootstrap=[f"127.0.0.1:{port}#dot.test"],
        ca_file=ca_file,
        timeout=5,
        happy_eyeballs_delay=30,
    )
    assert response.server.host == "127.0.0.1"


# -- bootstrap --------------------------------------------------------------------------------


@pytest.fixture
def no_system_resolver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The system resolver made unreachable: getaddrinfo refuses any name that is not
    an IP literal (asyncio's getaddrinfo calls it too). Returns the names asked."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            asked.append(str(host))
            raise socket.gaierror(socket.EAI_AGAIN, "no system resolver in this test") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_without_bootstrap_the_name_goes_to_the_system_resolver(
    mode: str, logging_unbound: UnboundServer, ca_file: str, no_system_resolver: list[str]
) -> None:
    # The control of the next test: the patched resolver does see the lookup.
    with pytest.raises(dotclient.ConnectError, match="cannot look up"):
        resolve(
            mode,
            "a.example.test",
            server=f"srv.example.test:{logging_unbound.port}#dot.test",
            ca_file=ca_file,
        )
    assert no_system_resolver == ["srv.example.test"]


def test_bootstrap_looks_the_server_up_over_dot_once_per_ttl(
    mode: str, logging_unbound: UnboundServer, ca_file: str, no_system_resolver: list[str]
) -> None:
    port = logging_unbound.port
    with open_client(
        mode,
        f"srv.example.test:{port}#dot.test",
        bootstrap=[f"127.0.0.1:{port}#dot.test"],
        ca_file=ca_file,
    ) as client:
        assert client.resolve("a.example.test").server.host == "127.0.0.1"
        client.close_connections()
        assert client.resolve("a.example.test").addresses()
        resolver = (client.client if hasattr(client, "client") else client)._resolver
        assert resolver.lookups == 1  # the second connection used the cached answer
        assert client.stats.connections_opened == 2
    assert no_system_resolver == []
    # unbound (which serves DoT only) was asked for the server's addresses.
    assert _queries_from(logging_unbound, "srv.example.test.")


def test_bootstrap_refreshes_before_expiry_and_keeps_the_answer_if_that_fails(
    mode: str,
    unbound_factory: Callable[..., UnboundServer],
    ca_file: str,
    no_system_resolver: list[str],
) -> None:
    target = unbound_factory(zone=ZONE)
    helper = unbound_factory(zone=ZONE)
    with open_client(
        mode,
        f"srv.example.test:{target.port}#dot.test",
        bootstrap=[f"127.0.0.1:{helper.port}#dot.test"],
        ca_file=ca_file,
        timeout=3,
    ) as client:
        resolver = (client.client if hasattr(client, "client") else client)._resolver
        assert client.resolve("a.example.test").addresses()
        assert resolver.lookups == 1
        cache = resolver._cache

        def age(fraction: float) -> None:
            # As if the answer (TTL 300) had been cached that part of its TTL ago.
            cache.put("srv.example.test", ("127.0.0.1",), 300, time.monotonic() - 300 * fraction)
            client.close_connections()

        age(0.8)  # due for a refresh: looked up again
        assert client.resolve("a.example.test").addresses()
        assert resolver.lookups == 2
        helper.stop()
        age(0.8)  # the refresh fails: the cached addresses still serve
        assert client.resolve("a.example.test").addresses()
        assert resolver.lookups == 3
        age(1.1)  # expired, and no bootstrap server: no address at all
        with pytest.raises(dotclient.DoTError):
            client.resolve("a.example.test")
    assert no_system_resolver == []


def test_servers_given_by_address_need_no_lookup(
    mode: str, unbound: UnboundServer, ca_file: str, no_system_resolver: list[str]
) -> None:
    # The bootstrap server does not even exist: it is never asked.
    with open_client(
        mode,
        f"127.0.0.1:{unbound.port}#dot.test",
        bootstrap=["127.0.0.1:1#dot.test"],
        ca_file=ca_file,
    ) as client:
        assert client.resolve("a.example.test").addresses()
        resolver = (client.client if hasattr(client, "client") else client)._resolver
        assert resolver.lookups == 0


# -- SOCKS5 (microsocks) -----------------------------------------------------------------------


@pytest.fixture
def socks() -> Iterator[Microsocks]:
    with running(Microsocks()) as proxy:
        assert isinstance(proxy, Microsocks)
        yield proxy


def test_socks5h_lets_the_proxy_resolve_the_server_name(
    mode: str,
    unbound: UnboundServer,
    ca_file: str,
    socks: Microsocks,
    no_system_resolver: list[str],
) -> None:
    with open_client(
        mode,
        f"localhost:{unbound.port}#dot.test",
        proxy=f"socks5h://127.0.0.1:{socks.port}",
        ca_file=ca_file,
    ) as client:
        assert client.resolve("a.example.test").addresses()
        client.close_connections()
        assert client.resolve("a.example.test").addresses()
        opened = client.stats.connections_opened
    assert no_system_resolver == []  # the name went to the proxy, not to a lookup here
    connects = socks.connects
    assert len(connects) == opened == 2, socks.log  # every connection the pool opened
    assert all(f"connected to localhost:{unbound.port}" in line for line in connects), socks.log


def test_socks5_with_a_password(
    mode: str, unbound: UnboundServer, ca_file: str, no_system_resolver: list[str]
) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    with running(Microsocks("dot", "s3cret")) as proxy:
        url = f"socks5://dot:s3cret@127.0.0.1:{proxy.port}"
        assert resolve(mode, "a.example.test", server=spec, ca_file=ca_file, proxy=url).addresses()
        assert len(proxy.connects) == 1, proxy.log
        bad = f"socks5://dot:wrong@127.0.0.1:{proxy.port}"
        with pytest.raises(dotclient.ConnectError, match="through socks5://dot@127.0.0.1"):
            resolve(mode, "a.example.test", server=spec, ca_file=ca_file, proxy=bad)
        port = proxy.port
    with pytest.raises(dotclient.ConnectError):  # the proxy is gone
        resolve(
            mode,
            "a.example.test",
            server=spec,
            ca_file=ca_file,
            proxy=f"socks5://127.0.0.1:{port}",
            timeout=2,
        )


def test_socks5_hands_the_proxy_the_address_bootstrap_found(
    mode: str,
    logging_unbound: UnboundServer,
    ca_file: str,
    socks: Microsocks,
    no_system_resolver: list[str],
) -> None:
    port = logging_unbound.port
    response = resolve(
        mode,
        "a.example.test",
        server=f"srv.example.test:{port}#dot.test",
        bootstrap=[f"127.0.0.1:{port}#dot.test"],
        proxy=f"socks5://127.0.0.1:{socks.port}",
        ca_file=ca_file,
    )
    assert response.addresses() and response.server.host == "127.0.0.1"
    assert no_system_resolver == []
    # The bootstrap lookup and the query: both through the proxy, both to the address.
    connects = socks.connects
    assert len(connects) == 2, socks.log
    assert all(f"connected to 127.0.0.1:{port}" in line for line in connects), socks.log
