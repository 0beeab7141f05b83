#!/usr/bin/env python3
"""dotclient against dnspython and dnsperf on the same local unbound DoT server, in one run.

    python benchmarks/bench_dot.py [--queries 5000] [--oneshot 100] [--memory 10000]
                                   [--concurrency 1 10 100 1000] [--profile N]

Starts Debian's unbound on 127.0.0.1 (dotclient.testing, one thread, as in the tests)
and prints, side by side with ratios:
  a. AsyncClient throughput over ONE connection at 1, 10, 100 and 1,000 queries in
     flight (resolve_many, full Response objects), and with the default pool;
  b. dnspython dns.asyncquery.tls at the same concurrency: as many tasks, each with its
     own reused socket (dnspython cannot pipeline on one connection);
  c. the blocking Client sequential on its connection vs dns.query.tls with a reused
     socket, and 8 threads sharing one Client vs that sequential figure;
  d. one-shot resolve() (a new connection per query) vs dns.query.tls, and the client
     CPU time of a reconnect with TLS session resumption vs a full handshake;
  e. dnsperf -m dot -c 1 -q 100 (and -q 1, -q 10) against the same server, when
     dnsperf is installed, as the C reference;
  f. the memory of 10,000 queries in flight on one AsyncClient (in a fresh process).
Loopback only. dotclient pads its queries (RFC 8467) and validates every answer;
dnspython and dnsperf do neither.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import dns
import dns.asyncbackend
import dns.asyncquery
import dns.message
import dns.query
import dns.version

import dotclient
from dotclient.testing import TestCA, UnboundServer

NAMES = ["a.example.test", "www.example.test", "mail.example.test", "example.test"]
CONCURRENCY = [1, 10, 100, 1000]
# dnspython needs a socket per query in flight; unbound (one thread) serves a few
# hundred TLS connections at most, so dnspython's side stops at this many.
DNSPYTHON_SOCKETS = 100
UNBOUND_CONFIG = f"incoming-num-tcp: {3 * DNSPYTHON_SOCKETS}"


def names(count: int) -> list[str]:
    return [NAMES[i % len(NAMES)] for i in range(count)]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def check(outcomes: list[dotclient.Response | Exception]) -> None:
    bad = [o for o in outcomes if not isinstance(o, dotclient.Response)]
    if bad:
        raise SystemExit(f"{len(bad)} queries failed, e.g. {bad[0]!r}")


# -- a and b: asyncio at several concurrencies -----------------------------------------


async def ours_async(spec: str, ca_file: str, n: int, in_flight: int | None) -> float:
    """Queries/s of resolve_many over one connection with ``in_flight`` pipelined, or
    with the default pool when None."""
    options = {} if in_flight is None else {"max_connections": 1, "max_in_flight": in_flight}
    async with dotclient.AsyncClient(spec, ca_file=ca_file, **options) as client:
        check(await client.resolve_many(names(2 * (in_flight or 100))))  # warm up
        start = time.perf_counter()
        check(await client.resolve_many(names(n)))
        return rate(n, time.perf_counter() - start)


async def dnspython_async(port: int, ca_file: str, n: int, tasks: int) -> float:
    ctx = ssl.create_default_context(cafile=ca_file)
    backend = dns.asyncbackend.get_backend("asyncio")
    socks = [
        await backend.make_socket(
            socket.AF_INET, socket.SOCK_STREAM, 0, None, ("127.0.0.1", port), 5, ctx, "dot.test"
        )
        for _ in range(tasks)
    ]
    todo = iter(names(n))

    failed: list[Exception] = []

    async def worker(sock: dns.asyncbackend.StreamSocket) -> None:
        for name in todo:
            q = dns.message.make_query(name, "A")
            try:
                await dns.asyncquery.tls(q, "127.0.0.1", 5, port, sock=sock)
            except Exception as exc:  # a socket the server dropped: stop using it
                failed.append(exc)
                return

    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker(s) for s in socks))
        elapsed = time.perf_counter() - start
        if failed:
            raise SystemExit(f"dnspython: {len(failed)} sockets failed, e.g. {failed[0]!r}")
        return rate(n, elapsed)
    finally:
        for sock in socks:
            await sock.close()


# -- c: blocking --------------------------------------------------------------------


def ours_sync(spec: str, ca_file: str, n: int, threads: int = 1) -> float:
    with dotclient.Client(spec, ca_file=ca_file) as client:
        client.resolve(NAMES[0])
        todo = names(n)
        share = [todo[i::threads] for i in range(threads)]

        def work(part: list[str]) -> None:
            for name in part:
                client.resolve(name)

        workers = [threading.Thread(target=work, args=(p,)) for p in share]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return rate(n, time.perf_counter() - start)


def dnspython_sync(port: int, ca_file: str, n: int) -> float:
    ctx = ssl.create_default_context(cafile=ca_file)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with ctx.wrap_socket(raw, server_hostname="dot.test") as sock:

        def run() -> None:
            for name in names(n):
                q = dns.message.make_query(name, "A")
                dns.query.tls(q, "127.0.0.1", 5, port, sock=sock)

        return rate(n, timed(run))


# -- d: new connections -------------------------------------------------------------


def oneshot(spec: str, port: int, ca_file: str, n: int) -> tuple[float, float]:
    """Milliseconds per one-shot query: dotclient.resolve and dns.query.tls."""
    ctx = ssl.create_default_context(cafile=ca_file)

    def ours() -> None:
        for name in names(n):
            dotclient.resolve(name, server=spec, ca_file=ca_file)

    def theirs() -> None:
        for name in names(n):
            q = dns.message.make_query(name, "A")
            dns.query.tls(q, "127.0.0.1", 5, port, ssl_context=ctx, server_hostname="dot.test")

    return timed(ours) / n * 1000, timed(theirs) / n * 1000


def reconnects(spec: str, ca_file: str, n: int, resumption: bool) -> tuple[float, float, int]:
    """Client CPU ms and wall ms per reconnect-and-query, and how many resumed."""
    with dotclient.Client(spec, ca_file=ca_file, resumption=resumption) as client:
        client.resolve(NAMES[0])
        resumed = 0
        cpu, wall = time.process_time(), time.perf_counter()
        for name in names(n):
            client.close_connections()
            resumed += client.resolve(name).resumed
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / n * 1000, wall / n * 1000, resumed


def query_cpu(spec: str, ca_file: str, n: int) -> float:
    """Client CPU ms of one query on a kept connection: what a reconnect-and-query
    costs on top of the reconnect."""
    with dotclient.Client(spec, ca_file=ca_file) as client:
        client.resolve(NAMES[0])
        cpu = time.process_time()
        for name in names(n):
            client.resolve(name)
        return (time.process_time() - cpu) / n * 1000


# -- e: dnsperf ---------------------------------------------------------------------


def dnsperf(port: int, n: int, in_flight: int) -> float | None:
    """dnsperf -m dot queries/s over one connection, or None if it is not installed."""
    exe = shutil.which("dnsperf")
    if exe is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as data:
        data.write("".join(f"{name} A\n" for name in names(n)))
        data.flush()
        done = subprocess.run(
            [exe, "-m", "dot", "-s", "127.0.0.1", "-p", str(port), "-d", data.name]
            + ["-c", "1", "-q", str(in_flight), "-n", "1", "-t", "5"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    found = re.search(r"Queries per second:\s+([\d.]+)", done.stdout)
    if found is None:
        raise SystemExit(f"dnsperf failed:\n{done.stdout}\n{done.stderr}")
    return float(found.group(1))


# -- f: memory ----------------------------------------------------------------------


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def memory_child(spec: str, ca_file: str, n: int) -> None:
    """Run in a fresh process: print idle RSS and peak RSS around n queries in flight."""

    async def main() -> dict[str, float]:
        async with dotclient.AsyncClient(
            spec, ca_file=ca_file, max_connections=1, max_in_flight=n, timeout=60
        ) as client:
            check(await client.resolve_many(names(100)))
            idle = _rss_kib("VmRSS")
            # VmHWM is the peak since the process started; reset it to now (Linux 4.0+).
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")
            start = time.perf_counter()
            check(await client.resolve_many(names(n)))
            elapsed = time.perf_counter() - start
            return {"idle": idle, "peak": _rss_kib("VmHWM"), "rate": rate(n, elapsed)}

    print(json.dumps(asyncio.run(main())))


def memory(spec: str, ca_file: str, n: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--memory-child", spec, ca_file, str(n)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    if done.returncode:
        raise SystemExit(f"memory run failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


# -- where the time goes -------------------------------------------------------------


def profile(spec: str, ca_file: str, n: int) -> None:
    """Print the functions that take most of the time of n queries, 100 in flight."""
    import cProfile
    import pstats

    async def run() -> None:
        async with dotclient.AsyncClient(spec, ca_file=ca_file, max_connections=1) as client:
            check(await client.resolve_many(names(200)))
            profiler.enable()
            check(await client.resolve_many(names(n)))
            profiler.disable()

    profiler = cProfile.Profile()
    asyncio.run(run())
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]  # untyped attribute
    total = sum(entry[2] for entry in stats.values())
    print(f"\nprofile of {n} queries, 100 in flight on one AsyncClient connection")
    print("(share of profiled time spent in each function itself; cProfile inflates times)")
    top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:15]
    for (file, line, func), entry in top:
        where = f"{os.path.basename(file)}:{line}" if line else file
        print(f"  {entry[2] / total:6.1%}  {func}  ({where})")


# -- the report ---------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--memory-child":
        memory_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=5000, help="queries per throughput run")
    parser.add_argument("--oneshot", type=int, default=100, help="one-shot queries and reconnects")
    parser.add_argument("--memory", type=int, default=10000, help="queries in flight for f")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=CONCURRENCY, help="in flight for a and b"
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also profile N pipelined queries"
    )
    args = parser.parse_args()
    n = args.queries
    ca = TestCA()
    cert = ca.issue("dot.test", "127.0.0.1")
    with (
        tempfile.TemporaryDirectory() as tmp,
        UnboundServer(cert, extra_config=UNBOUND_CONFIG) as server,
    ):
        ca_file = ca.write_ca_file(f"{tmp}/ca.pem")
        spec = f"127.0.0.1:{server.port}#dot.test"
        port = server.port
        print(
            f"# {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}, {os.cpu_count()} CPUs  "
            f"Python {platform.python_version()}  dotclient {dotclient.__version__}  "
            f"dnspython {dns.version.version}  server: unbound on 127.0.0.1 (1 thread)"
        )
        print(f"# {n} queries per throughput figure; names: {', '.join(NAMES)}")

        print("\na/b. asyncio throughput, queries/s")
        perf = {q: dnsperf(port, max(n, 10 * q), q) for q in (1, 10, 100)}
        print(f"{'in flight':>10} {'dotclient':>10} {'dnspython':>10} {'ratio':>6}  note")
        for c in args.concurrency:
            ours = asyncio.run(ours_async(spec, ca_file, n, c))
            sockets = min(c, DNSPYTHON_SOCKETS)
            theirs = asyncio.run(dnspython_async(port, ca_file, n, sockets))
            print(
                f"{c:>10} {ours:10.0f} {theirs:10.0f} {ours / theirs:6.2f}  "
                f"dotclient: 1 connection; dnspython: {sockets} sockets"
            )
            if c == 100 and perf[100]:
                print(f"{'':>10} {'':>10} {'':>10} {ours / perf[100]:6.2f}  vs dnsperf -q 100")
        pool = asyncio.run(ours_async(spec, ca_file, n, None))
        print(f"{'default':>10} {pool:10.0f} {'':>10} {'':>6}  default pool (2 x 100)")

        print("\nc. blocking Client, queries/s")
        seq = ours_sync(spec, ca_file, n)
        theirs_seq = dnspython_sync(port, ca_file, n)
        threaded = ours_sync(spec, ca_file, n, threads=8)
        print(
            f"{'sequential, one connection':32} {seq:8.0f} vs dnspython {theirs_seq:8.0f}"
            f"  ratio {seq / theirs_seq:5.2f}"
        )
        print(
            f"{'8 threads sharing one Client':32} {threaded:8.0f} vs sequential {seq:8.0f}"
            f"  ratio {threaded / seq:5.2f}"
        )

        print("\nd. new connections")
        ours_ms, theirs_ms = oneshot(spec, port, ca_file, args.oneshot)
        print(
            f"{'one-shot resolve, ms/query':32} {ours_ms:8.2f} vs dnspython {theirs_ms:8.2f}"
            f"  ratio {theirs_ms / ours_ms:5.2f} (dnspython time / dotclient time)"
        )
        full_cpu, full_wall, _ = reconnects(spec, ca_file, args.oneshot, resumption=False)
        res_cpu, res_wall, resumed = reconnects(spec, ca_file, args.oneshot, resumption=True)
        print(
            f"{'reconnect + query, CPU ms':32} {res_cpu:8.2f} resumed vs full {full_cpu:8.2f}"
            f"  ratio {res_cpu / full_cpu:5.2f} ({resumed}/{args.oneshot} resumed)"
        )
        print(
            f"{'reconnect + query, wall ms':32} {res_wall:8.2f} resumed vs full {full_wall:8.2f}"
        )
        query = query_cpu(spec, ca_file, 10 * args.oneshot)
        res_hs, full_hs = res_cpu - query, full_cpu - query
        print(
            f"{'reconnect alone, CPU ms':32} {res_hs:8.2f} resumed vs full {full_hs:8.2f}"
            f"  ratio {res_hs / full_hs:5.2f} (less {query:.2f} ms for the query itself)"
        )

        print("\ne. dnsperf -m dot -c 1 (one connection), queries/s")
        if perf[100] is None:
            print("dnsperf is not installed: skipped (scripts/install-servers installs it)")
        else:
            for q, value in perf.items():
                print(f"{'-q ' + str(q):>10} {value:10.0f}")

        print(f"\nf. {args.memory} queries in flight on one AsyncClient (fresh process)")
        mem = memory(spec, ca_file, args.memory)
        print(
            f"idle RSS {mem['idle'] / 1024:.1f} MiB, peak {mem['peak'] / 1024:.1f} MiB: "
            f"{(mem['peak'] - mem['idle']) / 1024:.1f} MiB above idle "
            f"({mem['rate']:.0f} queries/s)"
        )
        if args.profile:
            profile(spec, ca_file, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
