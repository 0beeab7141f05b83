"""aiohttp over DoTResolver, against unbound and a local aiohttp web server.

The web server listens on 127.0.0.1 and is fetched as ``web.example.test``, which the
test zone maps to 127.0.0.1 (``WEB_ZONE`` in tests/servers/conftest.py).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

import dotclient  # noqa: E402
from dotclient.integrations.aiohttp import DoTResolver  # noqa: E402
from dotclient.testing import UnboundServer  # noqa: E402

T = TypeVar("T")


@pytest.fixture
def spec(web_unbound: UnboundServer) -> str:
    return f"127.0.0.1:{web_unbound.port}#dot.test"


async def handler(request: web.Request) -> web.Response:
    return web.Response(text=f"host={request.host}")


def with_web_server(body: Callable[[int], Awaitable[T]]) -> T:
    """Run ``body(port)`` with an aiohttp web server on 127.0.0.1:port, then stop it."""

    async def main() -> T:
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            return await body(port)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def test_fetch_by_a_name_resolved_over_dot(spec: str, ca_file: str) -> None:
    async def body(port: int) -> tuple[int, str, dotclient.ClientStats]:
        async with dotclient.AsyncClient(spec, ca_file=ca_file) as dot:
            resolver = DoTResolver(client=dot)
            connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.get(f"http://web.example.test:{port}/") as reply:
                    status, text = reply.status, await reply.text()
            await resolver.close()
            assert "open" in repr(dot)  # the caller's client: not closed by the resolver
            return status, text, dot.stats

    status, text, stats = with_web_server(body)
    assert status == 200
    assert text.startswith("host=web.example.test:")
    # A and AAAA (the connector asks for both by default), on one DoT connection.
    assert stats.queries_sent == 2 and stats.connections_opened == 1


def test_results_as_aiohttp_expects(spec: str, ca_file: str) -> None:
    async def main() -> dict[str, Any]:
        resolver = DoTResolver(spec, ca_file=ca_file)
        try:
            return {
                "unspec": await resolver.resolve("both.example.test", 443, socket.AF_UNSPEC),
                "v4": await resolver.resolve("both.example.test", 443, socket.AF_INET),
                "v6": await resolver.resolve("both.example.test", 443, socket.AF_INET6),
                "cname": await resolver.resolve("webalias.example.test", 80),
                "literal": await resolver.resolve("::1", 80, socket.AF_UNSPEC),
                "scoped": await resolver.resolve("fe80::1%lo", 80, socket.AF_INET6),
                "localhost": await resolver.resolve("localhost", 80, socket.AF_INET),
                "stats": resolver._owner.async_client().stats,
            }
        finally:
            await resolver.close()

    got = asyncio.run(main())
    flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
    v4 = {
        "hostname": "both.example.test",
        "host": "127.0.0.1",
        "port": 443,
        "family": socket.AF_INET,
        "proto": 0,
        "flags": flags,
    }
    v6 = {**v4, "host": "::1", "family": socket.AF_INET6}
    assert got["unspec"] == [v4, v6]  # IPv4 first
    assert got["v4"] == [v4] and got["v6"] == [v6]
    assert [r["host"] for r in got["cname"]] == ["127.0.0.1"]
    assert got["cname"][0]["hostname"] == "webalias.example.test"
    assert [(r["host"], r["family"]) for r in got["literal"]] == [("::1", socket.AF_INET6)]
    assert [r["host"] for r in got["scoped"]] == ["fe80::1%lo"]  # the IPv6 zone kept
    assert [r["host"] for r in got["localhost"]] == ["127.0.0.1"]
    # Queries: 2 (both families) + 1 + 1 + 1 (webalias: the default family is AF_INET);
    # none for literals and localhost.
    assert got["stats"].queries_sent == 5


@pytest.mark.parametrize("case", ["nxdomain", "untrusted", "down"])
def test_failures_are_client_connector_errors_naming_the_cause(
    case: str, spec: str, ca_file: str, unbound_factory: Any
) -> None:
    host, options = "web.example.test", {"ca_file": ca_file}
    if case == "nxdomain":
        host, message = "nx.example.test", "nx.example.test.*NXDOMAIN"
    elif case == "untrusted":
        options, message = {}, "certificate verification failed"
    else:
        down = unbound_factory()
        down.stop()
        spec = f"127.0.0.1:{down.port}#dot.test"
        message = f"cannot connect to 127.0.0.1:{down.port}"

    async def body(port: int) -> None:
        resolver = DoTResolver(spec, **options)
        try:
            connector = aiohttp.TCPConnector(resolver=resolver)
            async with aiohttp.ClientSession(connector=connector) as session:
                with pytest.raises(aiohttp.ClientConnectorError, match=message) as info:
                    await session.get(f"http://{host}:{port}/")
                assert isinstance(info.value.os_error, socket.gaierror)
        finally:
            await resolver.close()

    with_web_server(body)


def test_misuse_is_caught_before_io(spec: str) -> None:
    with pytest.raises(dotclient.InvalidServerSpec):
        DoTResolver("127.0.0.1:0")
    with pytest.raises(TypeError, match="dotclient.AsyncClient"):
        DoTResolver(client=dotclient.Client(spec))  # type: ignore[arg-type]

    async def main() -> None:
        resolver = DoTResolver(spec)
        try:
            with pytest.raises(ValueError, match="family"):
                await resolver.resolve("web.example.test", 80, socket.AF_UNIX)
        finally:
            await resolver.close()

    asyncio.run(main())


def test_a_and_aaaa_are_in_flight_together(
    spec: str, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> tuple[int, list[Any]]:
        async with dotclient.AsyncClient(spec, ca_file=ca_file) as dot:
            in_flight, most = 0, 0
            resolve = dot.resolve

            async def counting(*args: Any, **kwargs: Any) -> dotclient.Response:
                nonlocal in_flight, most
                in_flight += 1
                most = max(most, in_flight)
                try:
                    return await resolve(*args, **kwargs)
                finally:
                    in_flight -= 1

            monkeypatch.setattr(dot, "resolve", counting)
            results = await DoTResolver(client=dot).resolve("both.example.test", 80, 0)
            assert dot.stats.connections_opened == 1
            return most, results

    most, results = asyncio.run(main())
    assert most == 2  # both queries were out before either answer came back
    assert [r["host"] for r in results] == ["127.0.0.1", "::1"]
