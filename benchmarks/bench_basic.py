#!/usr/bin/env python3
"""dotclient against dnspython on the same local unbound DoT server, in one run.

    python benchmarks/bench_basic.py [--queries 2000] [--oneshot 40] [--profile 1000]

Starts Debian's unbound on 127.0.0.1 (dotclient.testing) and measures, side by side:
  1. sequential queries on one kept connection: dotclient.Client vs dns.query.tls
     with a reused socket (dnspython's best DoT path);
  2. the same with asyncio: AsyncClient vs dns.asyncquery.tls with a reused socket;
  3. one-shot queries, a new TLS connection each: dotclient.resolve vs dns.query.tls.
Prints queries/s and the ratio dotclient/dnspython (higher is better for dotclient);
--profile N then shows which steps take the time of N sequential Client queries.
dotclient pads queries (RFC 8467) and validates every response; dnspython does neither
by default. Loopback only; bounded by the counts given.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Callable

import dns
import dns.asyncbackend
import dns.asyncquery
import dns.message
import dns.query

import dotclient
from dotclient.testing import TestCA, UnboundServer

NAMES = ["a.example.test", "www.example.test", "mail.example.test", "example.test"]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def dnspython_socket(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ctx.wrap_socket(raw, server_hostname="dot.test")


def bench_sync(
    spec: str, port: int, ca_file: str, n: int, padding: bool = True
) -> tuple[float, float]:
    with dotclient.Client(spec, ca_file=ca_file, padding=padding) as client:
        client.resolve(NAMES[0])  # connect outside the timing

        def ours() -> None:
            for i in range(n):
                client.resolve(NAMES[i % len(NAMES)])

        t_ours = timed(ours)
    ctx = ssl.create_default_context(cafile=ca_file)
    with dnspython_socket(port, ctx) as sock:
        dns.query.tls(dns.message.make_query(NAMES[0], "A"), "127.0.0.1", 5, port, sock=sock)

        def theirs() -> None:
            for i in range(n):
                q = dns.message.make_query(NAMES[i % len(NAMES)], "A")
                dns.query.tls(q, "127.0.0.1", 5, port, sock=sock)

        t_theirs = timed(theirs)
    return rate(n, t_ours), rate(n, t_theirs)


async def bench_async(spec: str, port: int, ca_file: str, n: int) -> tuple[float, float]:
    async with dotclient.AsyncClient(spec, ca_file=ca_file) as client:
        await client.resolve(NAMES[0])
        start = time.perf_counter()
        for i in range(n):
            await client.resolve(NAMES[i % len(NAMES)])
        t_ours = time.perf_counter() - start
    ctx = ssl.create_default_context(cafile=ca_file)
    backend = dns.asyncbackend.get_backend("asyncio")
    sock = await backend.make_socket(
        socket.AF_INET,
        socket.SOCK_STREAM,
        0,
        None,
        ("127.0.0.1", port),
        5,
        ctx,
        "dot.test",
    )
    async with sock:
        start = time.perf_counter()
        for i in range(n):
            q = dns.message.make_query(NAMES[i % len(NAMES)], "A")
            await dns.asyncquery.tls(q, "127.0.0.1", 5, port, sock=sock)
        t_theirs = time.perf_counter() - start
    return rate(n, t_ours), rate(n, t_theirs)


def bench_oneshot(spec: str, port: int, ca_file: str, n: int) -> tuple[float, float]:
    def ours() -> None:
        for i in range(n):
            dotclient.resolve(NAMES[i % len(NAMES)], server=spec, ca_file=ca_file)

    ctx = ssl.create_default_context(cafile=ca_file)

    def theirs() -> None:
        for i in range(n):
            q = dns.message.make_query(NAMES[i % len(NAMES)], "A")
            dns.query.tls(q, "127.0.0.1", 5, port, ssl_context=ctx, server_hostname="dot.test")

    return rate(n, timed(ours)), rate(n, timed(theirs))


# The steps whose share of a query's time --profile reports, by cProfile function name.
_STEPS = {
    "parse the response (dns.message.from_wire)": ("message.py", "from_wire"),
    "render the query (Message.to_wire)": ("message.py", "to_wire"),
    "build the query (dotclient make_query)": ("_protocol.py", "make_query"),
    "TLS read, including the wait for unbound": (
        "~",
        "<method 'read' of '_ssl._SSLSocket' objects>",
    ),
    "TLS write": ("~", "<method 'write' of '_ssl._SSLSocket' objects>"),
}


def profile(spec: str, ca_file: str, n: int) -> None:
    """Print where the time of n sequential Client.resolve() calls goes."""
    import cProfile
    import pstats

    with dotclient.Client(spec, ca_file=ca_file) as client:
        client.resolve(NAMES[0])
        profiler = cProfile.Profile()
        profiler.enable()
        for i in range(n):
            client.resolve(NAMES[i % len(NAMES)])
        profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]  # untyped attribute
    total = sum(tottime for (_, _, tottime, _, _) in stats.values())
    print(f"\nprofile of {n} sequential Client.resolve() calls (share of profiled time):")
    for label, (file_end, func) in _STEPS.items():
        cumtime = sum(
            entry[3]
            for (file, _, name), entry in stats.items()
            if name == func and file.endswith(file_end)
        )
        print(f"  {label:45} {cumtime / total:6.0%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000, help="per sequential run")
    parser.add_argument("--oneshot", type=int, default=40, help="one-shot queries per run")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also profile N sync queries"
    )
    args = parser.parse_args()
    ca = TestCA()
    cert = ca.issue("dot.test", "127.0.0.1")
    with tempfile.TemporaryDirectory() as tmp, UnboundServer(cert) as server:
        ca_file = ca.write_ca_file(f"{tmp}/ca.pem")
        spec = f"127.0.0.1:{server.port}#dot.test"
        rows = [
            (
                "sync, one connection, sequential",
                *bench_sync(spec, server.port, ca_file, args.queries),
            ),
            (
                "same, dotclient with padding=False",
                *bench_sync(spec, server.port, ca_file, args.queries, padding=False),
            ),
            (
                "asyncio, one connection, sequential",
                *asyncio.run(bench_async(spec, server.port, ca_file, args.queries)),
            ),
            (
                "one-shot, new connection per query",
                *bench_oneshot(spec, server.port, ca_file, args.oneshot),
            ),
        ]
        print(
            f"# {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}  "
            f"Python {platform.python_version()}  dotclient {dotclient.__version__}  "
            f"dnspython {dns.version.version}  server: unbound on 127.0.0.1"
        )
        print(f"{'case':40} {'dotclient q/s':>14} {'dnspython q/s':>14} {'ratio':>7}")
        for name, ours, theirs in rows:
            print(f"{name:40} {ours:14.0f} {theirs:14.0f} {ours / theirs:7.2f}")
        if args.profile:
            profile(spec, ca_file, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
