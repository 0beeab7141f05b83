#!/usr/bin/env python3
"""Memory soak: a million queries through one client, RSS reported as it goes.

    python benchmarks/rss_soak.py [--queries 1000000] [--every 100000] [--threads N]
                                  [--batch 10000] [--timeout 5]

Starts Debian's unbound on 127.0.0.1 (dotclient.testing) and resolves
``a.example.test`` ``--queries`` times through ONE client with its default options:
an ``AsyncClient`` (``resolve_many`` in batches of ``--batch``, so up to 200 in
flight), or with ``--threads N`` a blocking ``Client`` shared by N threads. Every
``--every`` queries it prints the resident set size (VmRSS from /proc/self/status),
the queries per second since the last line, failures so far, and the per-connection
bookkeeping left (entries of every open connection's order of queries: must stay
near 0). The exit status is 0 when no query failed and RSS grew by less than
``--max-growth`` MB from the first report to the last (flat: the growth of the first
100,000 is the allocator warming up). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import sys
import tempfile
import threading
import time
from typing import Any

import dotclient
from dotclient.testing import TestCA, UnboundServer

NAME = "a.example.test"


def rss_mb() -> float:
    """This process's resident set size in MB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bookkeeping(client: Any) -> int:
    """Entries left in the open connections' per-query bookkeeping."""
    return sum(len(c._order) + len(c._sent_at) for p in client._pools for c in p._pool)


class Report:
    def __init__(self, every: int) -> None:
        self.every = every
        self.done = 0
        self.failed = 0
        self.lines: list[tuple[int, float]] = []
        self.last = time.perf_counter()
        self.lock = threading.Lock()

    def add(self, answered: int, failed: int, client: Any) -> None:
        with self.lock:
            before = self.done
            self.done += answered + failed
            self.failed += failed
            if self.done // self.every > before // self.every:
                gc.collect()
                now = time.perf_counter()
                rate = (self.done - (self.lines[-1][0] if self.lines else 0)) / (now - self.last)
                self.last = now
                rss = rss_mb()
                self.lines.append((self.done, rss))
                print(
                    f"{self.done:>9,} queries  RSS {rss:7.1f} MB  {rate:8,.0f} q/s  "
                    f"failed {self.failed}  bookkeeping {bookkeeping(client)}",
                    flush=True,
                )


async def run_async(args: argparse.Namespace, options: dict[str, Any], report: Report) -> None:
    async with dotclient.AsyncClient(**options) as client:
        left = args.queries
        while left:
            count = min(args.batch, left)
            outcomes = await client.resolve_many([NAME] * count)
            failed = sum(1 for o in outcomes if not isinstance(o, dotclient.Response))
            report.add(count - failed, failed, client)
            left -= count


def run_threads(args: argparse.Namespace, options: dict[str, Any], report: Report) -> None:
    with dotclient.Client(**options) as client:
        per_thread = args.queries // args.threads
        chunk = max(args.every // (10 * args.threads), 1)

        def worker() -> None:
            left = per_thread
            while left:
                answered = failed = 0
                for _ in range(min(chunk, left)):
                    try:
                        client.resolve(NAME)
                        answered += 1
                    except dotclient.DoTError:
                        failed += 1
                report.add(answered, failed, client)
                left -= answered + failed

        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--max-growth", type=float, default=5.0)
    args = parser.parse_args()
    mode = f"Client, {args.threads} threads" if args.threads else "AsyncClient, resolve_many"
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}  Python "
        f"{platform.python_version()}  dotclient {dotclient.__version__}  {mode}"
    )
    ca = TestCA()
    cert = ca.issue("dot.test", "127.0.0.1")
    report = Report(args.every)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, UnboundServer(cert) as server:
        options: dict[str, Any] = {
            "server": f"127.0.0.1:{server.port}#dot.test",
            "ca_file": ca.write_ca_file(f"{tmp}/ca.pem"),
            "timeout": args.timeout,
        }
        print(f"# RSS at start {rss_mb():.1f} MB")
        if args.threads:
            run_threads(args, options, report)
        else:
            asyncio.run(run_async(args, options, report))
    wall = time.perf_counter() - started
    growth = report.lines[-1][1] - report.lines[0][1] if report.lines else 0.0
    ok = report.failed == 0 and growth < args.max_growth
    print(
        f"# {report.done:,} queries in {wall:.1f} s, {report.failed} failed; RSS from the "
        f"first report to the last {growth:+.1f} MB  {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
