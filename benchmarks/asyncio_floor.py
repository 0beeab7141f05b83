#!/usr/bin/env python3
"""The asyncio floor of bench_dot.py's case a.: what a task-per-query client costs
before it does any I/O.

    python benchmarks/asyncio_floor.py [--queries 30000] [--repeat 3]

The same pattern as "100 tasks + semaphore": N tasks, at most 100 at once under a
semaphore, each awaiting a "query" that is a future with a timeout timer (as
dotclient's waiting queries are), set in batches by one reader task after one turn of
the event loop (where the client would read the socket). No sockets, no TLS, no DNS:
the queries/s and CPU per query printed are the most any asyncio client built on a task
per query can reach on this machine with this Python, to set beside dnsperf's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import time


async def floor(n: int) -> tuple[float, float]:
    """Run n queries; return (queries/s, CPU microseconds per query)."""
    loop = asyncio.get_running_loop()
    pending: list[tuple[asyncio.Future[bool], asyncio.TimerHandle]] = []
    wake = asyncio.Event()

    async def reader() -> None:
        while True:
            await wake.wait()
            wake.clear()
            await asyncio.sleep(0)  # one turn of the loop, as a socket read takes
            batch = pending[:]
            pending.clear()
            for future, timer in batch:
                timer.cancel()
                if not future.done():
                    future.set_result(True)

    def expire(future: asyncio.Future[bool]) -> None:
        if not future.done():
            future.set_result(False)

    async def query() -> bool:
        future = loop.create_future()
        pending.append((future, loop.call_later(5, expire, future)))
        wake.set()
        return await future

    gate = asyncio.Semaphore(100)

    async def one() -> None:
        async with gate:
            if not await query():
                raise SystemExit("a query timed out")

    task = asyncio.ensure_future(reader())
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    elapsed, used = time.perf_counter() - start, time.process_time() - cpu
    task.cancel()
    return n / elapsed, used / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=30000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.repeat):
        rate, cpu = asyncio.run(floor(args.queries))
        print(f"asyncio floor, 100 in flight: {rate:8.0f} queries/s  {cpu:5.1f} us CPU/query")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
