"""httpx over DoTTransport / AsyncDoTTransport, against unbound and a local HTTPS server.

The HTTPS server listens on 127.0.0.1 with a certificate for ``web.example.test`` only
(no IP address in it), which the test zone maps to 127.0.0.1 (``WEB_ZONE`` in
tests/servers/conftest.py): a fetch that works shows the connection went to the address
found over DoT while SNI and certificate verification used the name.
"""

from __future__ import annotations

import asyncio
import http.server
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

import dotclient  # noqa: E402
from dotclient.integrations.httpx import AsyncDoTTransport, DoTTransport  # noqa: E402
from dotclient.testing import TestCA, UnboundServer  # noqa: E402


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        body = f"host={self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HTTPSServer:
    """A threaded HTTPS server on 127.0.0.1 that records the SNI names it was sent."""

    def __init__(self, test_ca: TestCA, name: str, directory: str) -> None:
        self.sni: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*test_ca.issue(name).write(directory, "web"))
        context.sni_callback = lambda sock, sni, ctx: self.sni.append(sni)  # type: ignore[assignment,misc,return-value]
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def https(test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPSServer]:
    server = HTTPSServer(test_ca, "web.example.test", str(tmp_path_factory.mktemp("web")))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def spec(web_unbound: UnboundServer) -> str:
    return f"127.0.0.1:{web_unbound.port}#dot.test"


@pytest.fixture
def web_verify(ca_file: str) -> ssl.SSLContext:
    """Trust for the web server (the test CA), separate from the DoT server's."""
    return ssl.create_default_context(cafile=ca_file)


def test_https_by_name_sni_and_verification_use_the_name(
    spec: str, ca_file: str, https: HTTPSServer, web_verify: ssl.SSLContext
) -> None:
    with dotclient.Client(spec, ca_file=ca_file) as dot:
        transport = DoTTransport(client=dot, verify=web_verify)
        with httpx.Client(transport=transport) as client:
            sni_before = len(https.sni)
            reply = client.get(f"https://web.example.test:{https.port}/")
            assert reply.status_code == 200
            assert reply.text == f"host=web.example.test:{https.port}"
            assert https.sni[sni_before:] == ["web.example.test"]
            # Through a CNAME too: SNI and verification use the URL's name, so the
            # certificate (for web.example.test only) does not match webalias.
            with pytest.raises(httpx.ConnectError, match="certificate|hostname"):
                client.get(f"https://webalias.example.test:{https.port}/")
            # The certificate names no address: by IP, verification fails. So the
            # fetch above was verified against the name, not the address.
            with pytest.raises(httpx.ConnectError, match="certificate|IP address mismatch"):
                client.get(f"https://127.0.0.1:{https.port}/")
        assert dot.stats.queries_sent == 4  # A and AAAA, for web and webalias
    # The caller's DoT client was not closed by the transport... until its own with.
    assert "closed" in repr(dot)


def test_async_https_by_name(
    spec: str, ca_file: str, https: HTTPSServer, web_verify: ssl.SSLContext
) -> None:
    # Made before the event loop runs: its DoT client is made at the first lookup.
    transport = AsyncDoTTransport(spec, ca_file=ca_file, verify=web_verify)

    async def main() -> tuple[int, str, dotclient.AsyncClient]:
        async with httpx.AsyncClient(transport=transport) as client:
            url = f"https://web.example.test:{https.port}/"
            replies = await asyncio.gather(*(client.get(url) for _ in range(3)))
            dot = transport._owner.async_client()
        return replies[0].status_code, replies[-1].text, dot

    status, text, dot = asyncio.run(main())
    assert status == 200 and text == f"host=web.example.test:{https.port}"
    # Three connections at once, so three lookups: A and AAAA each, on one DoT connection.
    assert dot.stats.queries_sent == 6 and dot.stats.connections_opened == 1
    assert dot.stats.open_connections == 0 and "closed" in repr(dot)  # with the transport


def test_plain_http_and_literals(spec: str, ca_file: str) -> None:
    # A literal needs no lookup; the standard library's HTTP server on 127.0.0.1.
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        with dotclient.Client(spec, ca_file=ca_file) as dot:
            with httpx.Client(transport=DoTTransport(client=dot, retries=1)) as client:
                port = httpd.server_address[1]
                assert client.get(f"http://127.0.0.1:{port}/").status_code == 200
                assert dot.stats.queries_sent == 0
                assert client.get(f"http://web.example.test:{port}/").text == (
                    f"host=web.example.test:{port}"
                )
                assert dot.stats.queries_sent == 2
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_failures_are_httpx_connect_errors_naming_the_cause(
    asynchronous: bool,
    spec: str,
    ca_file: str,
    https: HTTPSServer,
    web_verify: ssl.SSLContext,
    unbound_factory: Any,
) -> None:
    down = unbound_factory()
    down.stop()
    cases = [
        (spec, {"ca_file": ca_file}, "nx.example.test", "nx.example.test.*NXDOMAIN"),
        (spec, {}, "web.example.test", "certificate verification failed"),  # untrusted DoT
        (
            f"127.0.0.1:{down.port}#dot.test",
            {"ca_file": ca_file},
            "web.example.test",
            f"cannot connect to 127.0.0.1:{down.port}",
        ),
    ]
    for server, options, host, message in cases:
        url = f"https://{host}:{https.port}/"
        if asynchronous:

            async def main(server: str = server, options: Any = options, url: str = url) -> None:
                transport = AsyncDoTTransport(server, verify=web_verify, **options)
                async with httpx.AsyncClient(transport=transport) as client:
                    await client.get(url)

            with pytest.raises(httpx.ConnectError, match=message):
                asyncio.run(main())
        else:
            with httpx.Client(transport=DoTTransport(server, verify=web_verify, **options)) as h:
                with pytest.raises(httpx.ConnectError, match=message):
                    h.get(url)


def test_misuse_is_caught_before_io(spec: str) -> None:
    with pytest.raises(dotclient.InvalidServerSpec):
        DoTTransport("127.0.0.1:0")
    with pytest.raises(TypeError, match="dotclient.Client"):
        DoTTransport(client=dotclient.AsyncClient(spec))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dotclient.AsyncClient"):
        AsyncDoTTransport(client=dotclient.Client(spec))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot be combined"):
        DoTTransport(client=dotclient.Client(spec), timeout=3)
