#!/usr/bin/env python3
"""dotclient against dnspython and dnsperf on one local unbound DoT server, reading every answer.

    python benchmarks/bench_dot.py [--queries 3000] [--repeat 3] [--oneshot 50] [--memory 10000]
                                   [--bulk 10000] [--concurrency 1 10 100 1000] [--profile N]

Starts Debian's unbound on 127.0.0.1 (dotclient.testing, one thread, the tests' zone)
with an LD_PRELOAD shim that sets TCP_NODELAY on its connections (unbound 1.17 has no
option for it on DoT; without it dnsperf stalls on delayed ACKs and measures the
server). Every timed dotclient and dnspython answer is read the way a user reads it
(``addresses()``, or dnspython's answer chain) and checked against the zone inside the
timed region; a wrong or failed answer stops the run. Prints, with ratios:

  a. AsyncClient over ONE connection, 100 in flight (tasks + a semaphore, each caller
     reading its answer), and resolve_many at 1, 10, 100 and 1,000 in flight with every
     answer read; dnsperf -m dot -c 1 -q 1/10/100 against the same server, the ceiling;
     and, labelled "not read", resolve_many with no answer read (the old figure);
  b. the blocking Client sequentially vs dns.query.tls on one reused socket, parsed
     and read; 8 threads sharing one Client vs its sequential rate;
  c. one-shot resolve() (a new connection per query) vs dns.query.tls, also against
     unbound without the shim; the client CPU of a reconnect with TLS resumption
     against a full handshake;
  d. 10,000 queries in flight on one AsyncClient: memory above idle (fresh process);
  e. ``dotclient bulk`` over the server, output written and checked, vs dnsperf -q 100;
  f. with --profile N: where the client's CPU goes per query, by stage.
Loopback only. dotclient pads its queries (RFC 8467) and validates every answer;
dnspython and dnsperf do neither, and dnsperf does not read the answers it counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
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
import dns.message
import dns.name
import dns.query
import dns.rdataclass
import dns.rdatatype
import dns.version
import dns.zone

import dotclient
from dotclient.testing import (
    DEFAULT_ZONE,
    DEFAULT_ZONE_ORIGIN,
    ServerNotFound,
    TestCA,
    UnboundServer,
)

# a: two A records; www: a CNAME to a CNAME to a; mail: one A; the apex: NODATA for A.
NAMES = ["a.example.test", "www.example.test", "mail.example.test", "example.test"]
CONCURRENCY = [1, 10, 100, 1000]
UNBOUND_CONFIG = "incoming-num-tcp: 100"


def zone_answers() -> dict[str, list[str]]:
    """The sorted A addresses each name must resolve to, from the zone itself."""
    zone = dns.zone.from_text(DEFAULT_ZONE, DEFAULT_ZONE_ORIGIN, relativize=False)
    answers = {}
    for text in NAMES:
        name = dns.name.from_text(text)
        for _ in range(8):
            node = zone.get_node(name)
            assert node is not None, name
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None:
                rdataset = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.A)
                answers[text] = sorted(rd.address for rd in rdataset or [])
                break
            name = cname[0].target
    return answers


EXPECTED = zone_answers()


def names(count: int) -> list[str]:
    return [NAMES[i % len(NAMES)] for i in range(count)]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def best(fn: Callable[[], float], repeat: int) -> float:
    """The best of ``repeat`` runs: on a shared machine, the run least disturbed."""
    return max(fn() for _ in range(repeat))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def wrong(name: str, got: object) -> SystemExit:
    return SystemExit(f"wrong answer for {name}: {got!r}, the zone says {EXPECTED[name]}")


def read(name: str, outcome: dotclient.Response | Exception) -> None:
    """Read the answer as a user does, and check it against the zone."""
    if not isinstance(outcome, dotclient.Response):
        raise SystemExit(f"{name}: query failed: {outcome!r}")
    got = outcome.addresses()
    if sorted(got) != EXPECTED[name]:
        raise wrong(name, got)


def read_all(batch: list[str], outcomes: list[dotclient.Response | Exception]) -> None:
    for name, outcome in zip(batch, outcomes, strict=True):
        read(name, outcome)


def read_dnspython(name: str, response: dns.message.Message) -> None:
    """Read a dnspython answer the way its users do: the answer chain's addresses."""
    assert isinstance(response, dns.message.QueryMessage)
    answer = response.resolve_chaining().answer
    got = [rd.address for rd in answer] if answer is not None else []
    if sorted(got) != EXPECTED[name]:
        raise wrong(name, got)


# -- a: asyncio over one connection --------------------------------------------------


def one_connection(in_flight: int) -> dict[str, int]:
    return {"max_connections": 1, "max_in_flight": in_flight}


async def ours_tasks(spec: str, ca_file: str, n: int, in_flight: int) -> float:
    """Queries/s of n tasks, at most ``in_flight`` at once, each reading its answer."""
    async with dotclient.AsyncClient(spec, ca_file=ca_file, **one_connection(in_flight)) as client:
        gate = asyncio.Semaphore(in_flight)

        async def one(name: str) -> None:
            async with gate:
                read(name, await client.resolve(name))

        await asyncio.gather(*(one(name) for name in names(2 * in_flight)))  # warm up
        start = time.perf_counter()
        await asyncio.gather(*(one(name) for name in names(n)))
        return rate(n, time.perf_counter() - start)


async def ours_many(spec: str, ca_file: str, n: int, in_flight: int, reading: bool) -> float:
    """Queries/s of resolve_many with ``in_flight`` pipelined; every answer read if
    ``reading`` (inside the timed region)."""
    async with dotclient.AsyncClient(spec, ca_file=ca_file, **one_connection(in_flight)) as client:
        warm = names(2 * in_flight)
        read_all(warm, await client.resolve_many(warm))
        batch = names(n)
        start = time.perf_counter()
        outcomes = await client.resolve_many(batch)
        if reading:
            read_all(batch, outcomes)
        elapsed = time.perf_counter() - start
        if not reading:  # checked all the same, outside the timed region
            read_all(batch, outcomes)
        return rate(n, elapsed)


async def cpu_per_query(spec: str, ca_file: str, n: int, reading: bool) -> float:
    """Client CPU microseconds per query of resolve_many, 100 in flight on one
    connection, every answer read or none: less sensitive to a loaded machine than
    rates (the server runs in its own process)."""
    async with dotclient.AsyncClient(spec, ca_file=ca_file, **one_connection(100)) as client:
        warm = names(200)
        read_all(warm, await client.resolve_many(warm))
        batch = names(n)
        cpu = time.process_time()
        outcomes = await client.resolve_many(batch)
        if reading:
            read_all(batch, outcomes)
        cpu = time.process_time() - cpu
        if not reading:
            read_all(batch, outcomes)
        return cpu / n * 1e6


DNSPERF_CPU: dict[int, float] = {}  # in flight -> least CPU us per query seen


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dnsperf(port: int, n: int, in_flight: int) -> float | None:
    """dnsperf -m dot queries/s over one connection, or None if it is not installed.
    Its CPU time per query goes into DNSPERF_CPU."""
    exe = shutil.which("dnsperf")
    if exe is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as data:
        data.write("".join(f"{name} A\n" for name in names(n)))
        data.flush()
        cpu = _children_cpu()
        done = subprocess.run(
            [exe, "-m", "dot", "-s", "127.0.0.1", "-p", str(port), "-d", data.name]
            + ["-c", "1", "-q", str(in_flight), "-n", "1", "-t", "5"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        cpu = (_children_cpu() - cpu) / n * 1e6
        DNSPERF_CPU[in_flight] = min(cpu, DNSPERF_CPU.get(in_flight, cpu))
    found = re.search(r"Queries per second:\s+([\d.]+)", done.stdout)
    lost = re.search(r"Queries lost:\s+(\d+)", done.stdout)
    if found is None or lost is None:
        raise SystemExit(f"dnsperf failed:\n{done.stdout}\n{done.stderr}")
    if int(lost.group(1)):
        raise SystemExit(f"dnsperf lost queries:\n{done.stdout}")
    return float(found.group(1))


# -- b: blocking ---------------------------------------------------------------------


def ours_sync(spec: str, ca_file: str, n: int, threads: int = 1) -> float:
    with dotclient.Client(spec, ca_file=ca_file) as client:
        read(NAMES[0], client.resolve(NAMES[0]))
        todo = names(n)
        share = [todo[i::threads] for i in range(threads)]
        failed: list[BaseException] = []

        def work(part: list[str]) -> None:
            try:
                for name in part:
                    read(name, client.resolve(name))
            except BaseException as exc:  # SystemExit from read(): report it below
                failed.append(exc)

        workers = [threading.Thread(target=work, args=(p,)) for p in share]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
        if failed:
            raise SystemExit(f"a thread failed: {failed[0]!r}")
        return rate(n, elapsed)


def dnspython_sync(port: int, ca_file: str, n: int) -> float:
    ctx = ssl.create_default_context(cafile=ca_file)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with ctx.wrap_socket(raw, server_hostname="dot.test") as sock:

        def run() -> None:
            for name in names(n):
                q = dns.message.make_query(name, "A")
                read_dnspython(name, dns.query.tls(q, "127.0.0.1", 5, port, sock=sock))

        return rate(n, timed(run))


# -- c: new connections ----------------------------------------------------------------


def oneshot(spec: str, port: int, ca_file: str, n: int) -> tuple[float, float]:
    """Milliseconds per one-shot query, answer read: dotclient.resolve and dns.query.tls."""
    ctx = ssl.create_default_context(cafile=ca_file)

    def ours() -> None:
        for name in names(n):
            read(name, dotclient.resolve(name, server=spec, ca_file=ca_file))

    def theirs() -> None:
        for name in names(n):
            q = dns.message.make_query(name, "A")
            response = dns.query.tls(
                q, "127.0.0.1", 5, port, ssl_context=ctx, server_hostname="dot.test"
            )
            read_dnspython(name, response)

    return timed(ours) / n * 1000, timed(theirs) / n * 1000


def reconnects(spec: str, ca_file: str, n: int, resumption: bool) -> tuple[float, float, int]:
    """Client CPU ms and wall ms per reconnect-and-query, and how many resumed."""
    with dotclient.Client(spec, ca_file=ca_file, resumption=resumption) as client:
        read(NAMES[0], client.resolve(NAMES[0]))
        resumed = 0
        cpu, wall = time.process_time(), time.perf_counter()
        for name in names(n):
            client.close_connections()
            response = client.resolve(name)
            read(name, response)
            resumed += response.resumed
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / n * 1000, wall / n * 1000, resumed


def query_cpu(spec: str, ca_file: str, n: int) -> float:
    """Client CPU ms of one query on a kept connection, answer read."""
    with dotclient.Client(spec, ca_file=ca_file) as client:
        read(NAMES[0], client.resolve(NAMES[0]))
        cpu = time.process_time()
        for name in names(n):
            read(name, client.resolve(name))
        return (time.process_time() - cpu) / n * 1000


# -- d: memory -----------------------------------------------------------------------


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def memory_child(spec: str, ca_file: str, n: int) -> None:
    """Run in a fresh process: print idle RSS and peak RSS around n queries in flight,
    every answer read once all are in."""

    async def main() -> dict[str, float]:
        async with dotclient.AsyncClient(
            spec, ca_file=ca_file, max_connections=1, max_in_flight=n, timeout=60
        ) as client:
            read_all(names(100), await client.resolve_many(names(100)))
            idle = _rss_kib("VmRSS")
            # VmHWM is the peak since the process started; reset it to now (Linux 4.0+).
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")
            start = time.perf_counter()
            batch = names(n)
            read_all(batch, await client.resolve_many(batch))
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


# -- e: the bulk command -------------------------------------------------------------


def bulk(spec: str, ca_file: str, n: int, tmp: str) -> float:
    """Names/s of ``dotclient bulk`` (defaults, one server), output written; every
    output line is then checked against the zone."""
    source, output = os.path.join(tmp, "names.txt"), os.path.join(tmp, "out.jsonl")
    with open(source, "w") as f:
        f.write("".join(f"{name}\n" for name in names(n)))
    command = [sys.executable, "-m", "dotclient", "bulk", source, "--server", spec]
    command += ["--ca-file", ca_file, "--output", output, "--no-progress", "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"dotclient bulk failed ({done.returncode}):\n{done.stderr}")
    with open(output) as f:
        records = [json.loads(line) for line in f]
    if len(records) != n:
        raise SystemExit(f"dotclient bulk wrote {len(records)} lines for {n} names")
    for record in records:
        if sorted(record["answers"]) != EXPECTED[record["name"]]:
            raise wrong(record["name"], record["answers"])
    return rate(n, elapsed)


# -- f: where the time goes ----------------------------------------------------------

# Stage of a function, by (file name, function name); first match wins. "read" is the
# socket reads, TLS decryption, asyncio's TLS buffering and the framing; "write" the
# writes and TLS encryption; "match" the ID lookup and the check of each answer on
# receipt; "decode" what Response does to give the addresses.
STAGES: list[tuple[str, str, str]] = [
    ("_answer.py", "", "decode"),
    ("_response.py", "", "decode"),
    ("ipv4.py", "", "decode"),
    ("ipv6.py", "", "decode"),
    ("_protocol.py", "send_question", "build"),
    ("_protocol.py", "_allocate_id", "build"),
    ("_query.py", "", "build"),
    ("name.py", "", "build"),
    ("rdatatype.py", "", "build"),
    ("rdataclass.py", "", "build"),
    ("enum.py", "", "build"),
    ("random.py", "", "build"),
    ("secrets.py", "", "build"),
    ("_framing.py", "", "read"),
    ("_protocol.py", "receive_data", "read"),
    ("_protocol.py", "", "match"),
    ("_async_stream.py", "write", "write"),
    ("_async_stream.py", "_flush", "write"),
    ("_async_stream.py", "read", "read"),
    ("_async_stream.py", "data_received", "read"),
    ("sslproto.py", "", "read"),
    ("~", "<method 'write' of '_ssl._SSLSocket' objects>", "write"),
    ("~", "<method 'read' of '_ssl._SSLSocket' objects>", "read"),
    ("~", "<method 'write' of '_ssl.MemoryBIO' objects>", "read"),
    ("~", "<method 'send' of '_socket.socket' objects>", "write"),
    ("~", "<method 'recv' of '_socket.socket' objects>", "read"),
    ("~", "<method 'recv_into' of '_socket.socket' objects>", "read"),
]
# The byte-level walk of _wire.py serves both the check on receipt (match) and the
# lean read (decode): its time is split between them as _skim's calls are.
WALK = {"_skim", "_walk_name", "_skip_name", "_opt_options", "_rdata_ok", "_name_labels"}
OVERHEAD = "Python overhead (asyncio, the client's bookkeeping, the caller)"


def stage_of(file: str, func: str) -> str:
    base = os.path.basename(file)
    for where, name, stage in STAGES:
        if base == where and (not name or func == name):
            return stage
    return OVERHEAD


def profile(spec: str, ca_file: str, n: int) -> None:
    """Print each stage's share of the client's CPU for n queries, 100 in flight on one
    connection, each caller reading its answer (the a. case)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()

    async def run() -> float:
        async with dotclient.AsyncClient(spec, ca_file=ca_file, **one_connection(100)) as client:
            gate = asyncio.Semaphore(100)

            async def one(name: str) -> None:
                async with gate:
                    read(name, await client.resolve(name))

            await asyncio.gather(*(one(name) for name in names(200)))
            cpu = time.process_time()
            profiler.enable()
            await asyncio.gather(*(one(name) for name in names(n)))
            profiler.disable()
            return time.process_time() - cpu

    cpu = asyncio.run(run())
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]  # untyped attribute
    stages: dict[str, float] = {}
    decode_share = 0.5
    for (file, _, func), entry in stats.items():
        if func == "_skim" and file.endswith("_wire.py"):
            callers = entry[4]
            calls = sum(c[0] for c in callers.values()) or 1
            decode_share = sum(c[0] for k, c in callers.items() if k[2] == "read_wire") / calls
    for (file, _, func), entry in stats.items():
        if func in WALK and file.endswith("_wire.py"):
            stages["decode"] = stages.get("decode", 0.0) + entry[2] * decode_share
            stages["match"] = stages.get("match", 0.0) + entry[2] * (1 - decode_share)
            continue
        stage = stage_of(file, func)
        stages[stage] = stages.get(stage, 0.0) + entry[2]
    total = sum(stages.values())
    print(f"\nf. profile of {n} queries, 100 in flight on one connection, each answer read")
    print(f"   (the answer walk is {decode_share:.0%} decode, the rest match)")
    print(f"   client CPU under the profiler: {cpu / n * 1e6:.0f} us/query (cProfile inflates it)")
    for stage, seconds in sorted(stages.items(), key=lambda item: -item[1]):
        print(f"  {seconds / total:6.1%}  {seconds / total * cpu / n * 1e6:5.1f} us  {stage}")
    top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:12]
    print("   the functions taking most time themselves:")
    for (file, line, func), entry in top:
        where = f"{os.path.basename(file)}:{line}" if line else file
        print(f"  {entry[2] / total:6.1%}  {func}  ({where})")


# -- the report ---------------------------------------------------------------------


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--memory-child":
        memory_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3000, help="queries per throughput run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="throughput figures are the best of this many runs"
    )
    parser.add_argument("--oneshot", type=int, default=50, help="one-shot queries")
    parser.add_argument("--memory", type=int, default=10000, help="queries in flight for d")
    parser.add_argument("--bulk", type=int, default=10000, help="names for dotclient bulk")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=CONCURRENCY, help="in flight for a"
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also profile N queries (f)"
    )
    args = parser.parse_args()
    ca = TestCA()
    cert = ca.issue("dot.test", "127.0.0.1")
    try:
        server = UnboundServer(cert, extra_config=UNBOUND_CONFIG, nodelay=True)
        server.start()  # builds the shim: ServerNotFound without a C compiler
    except ServerNotFound as exc:
        raise SystemExit(f"cannot run the benchmark: {exc}") from exc
    with tempfile.TemporaryDirectory() as tmp:
        try:
            report(args, server, ca, tmp)
        finally:
            server.stop()
    return 0


def report(args: argparse.Namespace, server: UnboundServer, ca: TestCA, tmp: str) -> None:
    n = args.queries
    ca_file = ca.write_ca_file(f"{tmp}/ca.pem")
    spec = f"127.0.0.1:{server.port}#dot.test"
    port = server.port
    load = os.getloadavg()
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}, {os.cpu_count()} CPUs  "
        f"Python {platform.python_version()}  dotclient {dotclient.__version__}  "
        f"dnspython {dns.version.version}"
    )
    print(
        "# server: unbound on 127.0.0.1 (1 thread) with TCP_NODELAY (LD_PRELOAD shim); "
        f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        f"# {n} queries per throughput figure, best of {args.repeat} runs; names: "
        f"{', '.join(NAMES)}; every answer read (addresses()) and checked against the zone"
        " unless marked 'not read'"
    )

    print("\na. asyncio, ONE connection, queries/s (answers read and checked)")
    # dnsperf -q 1 stalls on its own delayed ACKs (~40 ms a query): few queries there.
    r = args.repeat
    perf: dict[int, float | None] = {1: dnsperf(port, 100, 1)}
    if perf[1] is not None:
        perf[10] = best(lambda: dnsperf(port, n, 10) or 0.0, r)
        perf[100] = best(lambda: dnsperf(port, 4 * n, 100) or 0.0, r)
    ceiling = perf.get(100)
    tasks = best(lambda: asyncio.run(ours_tasks(spec, ca_file, n, 100)), r)
    vs = f"{tasks / ceiling:5.2f}x dnsperf -q 100" if ceiling else ""
    print(f"{'100 tasks + semaphore, resolve()':38} {tasks:8.0f}  {vs}")
    for c in args.concurrency:
        ours = best(lambda c=c: asyncio.run(ours_many(spec, ca_file, n, c, reading=True)), r)
        ref = perf.get(c)
        vs = f"{ours / ref:5.2f}x dnsperf -q {c}" if ref else ""
        print(f"{f'resolve_many, {c} in flight':38} {ours:8.0f}  {vs}")
    unread = best(lambda: asyncio.run(ours_many(spec, ca_file, n, 100, reading=False)), r)
    vs = f"{unread / ceiling:5.2f}x dnsperf -q 100" if ceiling else ""
    print(f"{'resolve_many, 100 in flight, NOT READ':38} {unread:8.0f}  {vs}")
    cpu_read = min(asyncio.run(cpu_per_query(spec, ca_file, n, True)) for _ in range(r))
    cpu_unread = min(asyncio.run(cpu_per_query(spec, ca_file, n, False)) for _ in range(r))
    print(
        f"{'client CPU per query, 100 in flight':38} {cpu_read:5.0f} us read, "
        f"{cpu_unread:.0f} us not read (least of {r})"
    )
    if 100 in DNSPERF_CPU:
        print(
            f"{'dnsperf CPU per query, -q 100':38} {DNSPERF_CPU[100]:5.0f} us "
            f"(process start and TLS handshake included): dotclient reading uses "
            f"{cpu_read / DNSPERF_CPU[100]:.2f}x its CPU"
        )
    if ceiling is None:
        print("dnsperf is not installed: no ceiling (scripts/install-servers installs it)")
    else:
        for q, value in perf.items():
            print(f"{f'dnsperf -m dot -c 1 -q {q} (not read)':38} {value:8.0f}")

    print("\nb. blocking Client, queries/s (answers read and checked)")
    seq = best(lambda: ours_sync(spec, ca_file, n), r)
    theirs_seq = best(lambda: dnspython_sync(port, ca_file, n), r)
    threaded = best(lambda: ours_sync(spec, ca_file, n, threads=8), r)
    print(
        f"{'sequential, one connection':32} {seq:8.0f} vs dnspython {theirs_seq:8.0f}"
        f"  ratio {seq / theirs_seq:5.2f} (dns.query.tls, one reused socket)"
    )
    print(
        f"{'8 threads sharing one Client':32} {threaded:8.0f} vs sequential {seq:8.0f}"
        f"  ratio {threaded / seq:5.2f}"
    )

    print("\nc. one-shot queries (a new connection each), answers read and checked")
    ours_ms, theirs_ms = oneshot(spec, port, ca_file, args.oneshot)
    print(
        f"{'one-shot resolve, ms/query':32} {ours_ms:8.2f} vs dnspython {theirs_ms:8.2f}"
        f"  ratio {theirs_ms / ours_ms:5.2f} (dnspython time / dotclient time)"
    )
    # Debian's unbound as deployed: its first answer on a TLS 1.3 connection waits for
    # the client's delayed ACK, which dotclient's TCP_QUICKACK avoids.
    with UnboundServer(server.cert, extra_config=UNBOUND_CONFIG) as plain:
        plain_spec = f"127.0.0.1:{plain.port}#dot.test"
        ours_ms, theirs_ms = oneshot(plain_spec, plain.port, ca_file, args.oneshot)
    print(
        f"{'  same, unbound without NODELAY':32} {ours_ms:8.2f} vs dnspython {theirs_ms:8.2f}"
        f"  ratio {theirs_ms / ours_ms:5.2f}"
    )
    full_cpu, _, _ = reconnects(spec, ca_file, args.oneshot, resumption=False)
    res_cpu, _, resumed = reconnects(spec, ca_file, args.oneshot, resumption=True)
    query = query_cpu(spec, ca_file, 10 * args.oneshot)
    res_hs, full_hs = res_cpu - query, full_cpu - query
    print(
        f"{'reconnect alone, CPU ms':32} {res_hs:8.2f} resumed vs full {full_hs:8.2f}"
        f"  ratio {res_hs / full_hs:5.2f} ({resumed}/{args.oneshot} resumed)"
    )

    print(f"\nd. {args.memory} queries in flight on one AsyncClient (fresh process)")
    mem = memory(spec, ca_file, args.memory)
    print(
        f"idle RSS {mem['idle'] / 1024:.1f} MiB, peak {mem['peak'] / 1024:.1f} MiB: "
        f"{(mem['peak'] - mem['idle']) / 1024:.1f} MiB above idle "
        f"({mem['rate']:.0f} queries/s, answers read and checked)"
    )

    print(f"\ne. dotclient bulk, {args.bulk} names, default options, output written")
    bulk_rate = bulk(spec, ca_file, args.bulk, tmp)
    vs = f"  {bulk_rate / ceiling:5.2f}x dnsperf -q 100" if ceiling else ""
    print(f"{'names/s (process start included)':38} {bulk_rate:8.0f}{vs}")
    if args.profile:
        profile(spec, ca_file, args.profile)
    load = os.getloadavg()
    print(f"\n# load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
