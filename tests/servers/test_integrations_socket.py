"""socket.getaddrinfo and friends routed through DoT by patch(), against unbound.

The web server is the standard library's, on 127.0.0.1, reached by a name of the test
zone (``web.example.test``, see ``WEB_ZONE`` in tests/servers/conftest.py).
"""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import dotclient
from dotclient.integrations.socket import Patch, patch
from dotclient.testing import UnboundServer

ORIGINALS = (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex)


@pytest.fixture
def spec(web_unbound: UnboundServer) -> str:
    return f"127.0.0.1:{web_unbound.port}#dot.test"


@pytest.fixture
def client(spec: str, ca_file: str) -> Iterator[dotclient.Client]:
    with dotclient.Client(spec, ca_file=ca_file) as client:
        yield client


@pytest.fixture(autouse=True)
def unpatched() -> Iterator[None]:
    """Every test leaves the socket module as it found it."""
    yield
    assert (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex) == ORIGINALS


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        body = f"host={self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web() -> Iterator[int]:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_port
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_urllib_fetches_by_a_name_resolved_over_dot(client: dotclient.Client, web: int) -> None:
    with patch(client=client) as active:
        assert isinstance(active, Patch) and active.active
        with urllib.request.urlopen(f"http://web.example.test:{web}/", timeout=10) as reply:
            body = reply.read()
    assert body == f"host=web.example.test:{web}".encode()
    assert client.stats.queries_sent == 2  # A and AAAA, over DoT
    assert not active.active


def test_getaddrinfo_answers(client: dotclient.Client) -> None:
    with patch(client=client):
        infos = socket.getaddrinfo(
            "www.example.test", 80, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME
        )
        v4 = socket.getaddrinfo("a.example.test", "http", socket.AF_INET, socket.SOCK_STREAM)
        v6 = socket.getaddrinfo("a.example.test", 443, socket.AF_INET6, socket.SOCK_STREAM)
        by_name = socket.gethostbyname("web.example.test")
        ex = socket.gethostbyname_ex("www.example.test")
    # IPv4 first, then IPv6; the canonical name is the end of the CNAME chain.
    assert [(info[0], info[4][0]) for info in infos] == [
        (socket.AF_INET, "192.0.2.2"),
        (socket.AF_INET, "192.0.2.1"),
        (socket.AF_INET6, "2001:db8::1"),
    ] or [(info[0], info[4][0]) for info in infos] == [
        (socket.AF_INET, "192.0.2.1"),
        (socket.AF_INET, "192.0.2.2"),
        (socket.AF_INET6, "2001:db8::1"),
    ]
    assert infos[0][3] == "a.example.test" and all(info[3] == "" for info in infos[1:])
    assert all(info[1] == socket.SOCK_STREAM and info[4][1] == 80 for info in infos)
    assert sorted(info[4] for info in v4) == [("192.0.2.1", 80), ("192.0.2.2", 80)]
    assert [info[4][:2] for info in v6] == [("2001:db8::1", 443)]
    assert by_name == "127.0.0.1"
    assert ex[0] == "a.example.test"
    assert ex[1] == ["www.example.test", "alias.example.test"]
    assert sorted(ex[2]) == ["192.0.2.1", "192.0.2.2"]


def test_asyncio_lookups_go_through_the_patch(client: dotclient.Client) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.getaddrinfo("web.example.test", 80, type=socket.SOCK_STREAM)

    with patch(client=client):
        infos = asyncio.run(main())
    assert [info[4] for info in infos] == [("127.0.0.1", 80)]
    assert client.stats.queries_sent == 2


def test_literals_localhost_and_hosts_file_keep_their_answers(
    client: dotclient.Client,
) -> None:
    with open("/etc/hosts") as file:
        listed = [
            name
            for line in file
            for name in line.split("#", 1)[0].split()[1:]
            if name != "localhost" and "." not in name
        ]
    names = ["127.0.0.1", "::1", "localhost", "LocalHost.", *listed[:1]]
    with patch(client=client):
        patched = [socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM) for name in names]
        numeric = socket.gethostbyname("127.0.0.1"), socket.gethostbyname_ex("localhost")
    expected = [ORIGINALS[0](name.rstrip("."), 80, type=socket.SOCK_STREAM) for name in names]
    assert patched == expected
    assert numeric == (ORIGINALS[1]("127.0.0.1"), ORIGINALS[2]("localhost"))
    assert client.stats.queries_sent == 0


def test_the_dot_servers_own_name_is_never_looked_up_over_dot(
    web_unbound: UnboundServer, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The system resolver as the patch finds it: it knows the DoT server's name only,
    # and records every name it is asked.
    asked: list[str] = []

    def system(host: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        if host == "dot-server.example":
            host = "127.0.0.1"
        return ORIGINALS[0](host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", system)
    spec = f"dot-server.example:{web_unbound.port}#dot.test"
    with patch(spec, ca_file=ca_file, hosts_file=None):
        # The client connects to dot-server.example through the patched function,
        # which hands that name to the system resolver instead of recursing.
        assert socket.gethostbyname("web.example.test") == "127.0.0.1"
        assert socket.getaddrinfo("a.example.test", 53)
    assert "dot-server.example" in asked
    # Queried names never reached the plaintext resolver, only addresses did.
    assert not {"web.example.test", "a.example.test"} & set(asked)
    monkeypatch.undo()


def test_failures_are_gaierrors_naming_the_cause(
    spec: str, client: dotclient.Client, unbound_factory: Any, ca_file: str, web: int
) -> None:
    with patch(client=client):
        with pytest.raises(socket.gaierror, match="nx.example.test.*NXDOMAIN") as info:
            socket.getaddrinfo("nx.example.test", 80)
        assert info.value.errno == socket.EAI_NONAME
        with pytest.raises(socket.gaierror, match="web6.example.test") as info:
            socket.gethostbyname("web6.example.test")  # AAAA only
        assert info.value.errno == getattr(socket, "EAI_NODATA", socket.EAI_NONAME)
        with pytest.raises(socket.gaierror, match="REFUSED") as info:
            socket.gethostbyname_ex("outside.example.com")
        assert info.value.errno == socket.EAI_AGAIN
        # urllib reports it as usual: a URLError whose reason is the gaierror.
        with pytest.raises(urllib.error.URLError) as url_error:
            urllib.request.urlopen(f"http://nx.example.test:{web}/", timeout=10)
        assert isinstance(url_error.value.reason, socket.gaierror)
        assert "NXDOMAIN" in str(url_error.value.reason)

    with patch(spec):  # certifi's bundle: the test CA is not in it
        with pytest.raises(socket.gaierror, match="certificate verification failed") as info:
            socket.getaddrinfo("web.example.test", 80)
        assert info.value.errno == socket.EAI_AGAIN
        assert isinstance(info.value.__cause__.__cause__, dotclient.AuthenticationError)  # type: ignore[union-attr]

    down = unbound_factory()
    down.stop()
    with patch(f"127.0.0.1:{down.port}#dot.test", ca_file=ca_file, timeout=5):
        with pytest.raises(socket.gaierror, match=f"cannot connect to 127.0.0.1:{down.port}"):
            socket.gethostbyname("web.example.test")


def test_undone_on_error_and_stop_twice(client: dotclient.Client) -> None:
    with pytest.raises(ZeroDivisionError):
        with patch(client=client):
            assert socket.getaddrinfo != ORIGINALS[0]
            1 / 0  # noqa: B018
    active = patch(client=client)
    active.stop()
    active.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        active.start()
    # The caller's client stays open.
    assert client.resolve("web.example.test").addresses() == ["127.0.0.1"]


def test_owned_client_is_closed_on_exit(spec: str, ca_file: str) -> None:
    with patch(spec, ca_file=ca_file) as active:
        assert socket.gethostbyname("web.example.test") == "127.0.0.1"
        client = active._owner.sync_client()
    assert client.stats.open_connections == 0
    with pytest.raises(RuntimeError, match="closed"):
        client.resolve("web.example.test")


def test_misuse_is_caught_before_patching(spec: str) -> None:
    with pytest.raises(dotclient.InvalidServerSpec):
        patch("127.0.0.1:0")
    with pytest.raises(TypeError, match="dotclient.Client"):
        patch(client=dotclient.AsyncClient(spec))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        patch(spec, timeout=-1)


def test_threads_share_one_client(spec: str, ca_file: str) -> None:
    threads, lookups = 8, 5
    start = threading.Barrier(threads)
    answers: list[Any] = []

    def work() -> None:
        start.wait()
        for _ in range(lookups):
            answers.append(socket.getaddrinfo("web.example.test", 80, type=socket.SOCK_STREAM))

    with patch(spec, ca_file=ca_file) as active:
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        client = active._owner.sync_client()
        stats = client.stats
    assert len(answers) == threads * lookups
    assert all([info[4] for info in infos] == [("127.0.0.1", 80)] for infos in answers)
    # One client made for all the threads: every query (A and AAAA each) went through it.
    assert stats.queries_sent == threads * lookups * 2
    assert stats.connections_opened <= 2  # max_connections


def test_names_as_the_standard_library_takes_them(client: dotclient.Client) -> None:
    with patch(client=client):
        assert socket.getaddrinfo(b"web.example.test", 80, socket.AF_INET) == (
            socket.getaddrinfo("web.example.test.", 80, socket.AF_INET)
        )
        # A non-ASCII name is queried in its IDNA form, as the system resolver would.
        with pytest.raises(socket.gaierror, match="NXDOMAIN"):
            socket.getaddrinfo("bücher.example.test", 80)
        sent = client.stats.queries_sent
        for bad in ("", ".", "a..example.test", "x" * 64 + ".example.test"):
            with pytest.raises(socket.gaierror) as info:
                socket.getaddrinfo(bad, 80)
            assert info.value.errno == socket.EAI_NONAME
        assert client.stats.queries_sent == sent  # refused before any query
