#!/usr/bin/env python3
"""``dotclient serve`` beside Debian's stubby, both forwarding to the same local unbound.

    python benchmarks/bench_serve.py [--seconds 10] [--clients 10] [--in-flight 100]

Starts unbound on 127.0.0.1 as a DoT server (dotclient.testing), then, one after the
other on the same machine in the same run, drives with ``dnsperf -m udp -c 10 -q 100``:

  1. stubby (getdns; no cache) listening on a free loopback port;
  2. ``dotclient serve --no-cache``;
  3. ``dotclient serve`` with its cache, warmed by one pass over the names first.

Each stub authenticates unbound with the test CA and pads its queries (RFC 8467).
Answers are checked: dnsperf's own counts (every query completed, none lost, the RCODE
mix the names must give) and a dnspython spot check of one name through each stub.
Printed: queries/s, mean/p50/p99 latency (from ``dnsperf -v``), ratios to stubby, the
serve process's peak and final resident memory, and ``uptime`` before and after (the
machine may be shared: read the figures with the load).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from dotclient.testing import TestCA, UnboundServer

SRC = Path(__file__).resolve().parent.parent / "src"
# Names of the test zone: NOERROR with data, through CNAMEs, NODATA and NXDOMAIN.
QUERIES = [
    ("a.example.test", "A", "NOERROR"),
    ("www.example.test", "A", "NOERROR"),
    ("mail.example.test", "A", "NOERROR"),
    ("example.test", "MX", "NOERROR"),
    ("a.example.test", "AAAA", "NOERROR"),
    ("a.example.test", "MX", "NOERROR"),  # NODATA
    ("nx.example.test", "A", "NXDOMAIN"),
    ("ns.example.test", "A", "NOERROR"),
]
START_WAIT = 30.0


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (stubby needs one given)."""
    for _ in range(50):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(port)
    raise SystemExit("no free port")


def answers(port: int, timeout: float = 1.0) -> dns.message.Message | None:
    query = dns.message.make_query("www.example.test", "A")
    try:
        return dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout)
    except (OSError, dns.exception.Timeout):
        return None


def wait_answering(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the stub on port {port} exited with {proc.returncode}")
        if answers(port) is not None:
            return
        time.sleep(0.1)
    raise SystemExit(f"the stub on port {port} did not answer within {START_WAIT} s")


def spot_check(port: int) -> str:
    response = answers(port, timeout=5.0)
    if response is None:
        raise SystemExit(f"spot check: no answer on port {port}")
    got = sorted(rr.to_text() for rrset in response.answer if rrset.rdtype == 1 for rr in rrset)
    if response.rcode() != dns.rcode.NOERROR or got != ["192.0.2.1", "192.0.2.2"]:
        raise SystemExit(f"spot check failed on port {port}: {response}")
    return "ok"


@contextlib.contextmanager
def stubby(upstream: UnboundServer, ca_file: str, workdir: str) -> Iterator[tuple[int, int]]:
    exe = shutil.which("stubby")
    if exe is None:
        raise SystemExit("stubby is not installed (scripts/install-servers stubby)")
    port = free_port()
    config = Path(workdir, "stubby.yml")
    config.write_text(
        "resolution_type: GETDNS_RESOLUTION_STUB\n"
        "dns_transport_list:\n  - GETDNS_TRANSPORT_TLS\n"
        "tls_authentication: GETDNS_AUTHENTICATION_REQUIRED\n"
        "tls_query_padding_blocksize: 128\n"
        "round_robin_upstreams: 0\n"
        "idle_timeout: 10000\n"
        f'tls_ca_file: "{ca_file}"\n'
        f"listen_addresses:\n  - 127.0.0.1@{port}\n"
        "upstream_recursive_servers:\n"
        f"  - address_data: 127.0.0.1\n    tls_port: {upstream.port}\n"
        '    tls_auth_name: "dot.test"\n'
    )
    proc = subprocess.Popen(
        [exe, "-C", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_answering(port, proc)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def serve(upstream: UnboundServer, ca_file: str, *extra: str) -> Iterator[tuple[int, int]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dotclient",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--quiet",
            "--server",
            f"127.0.0.1:{upstream.port}#dot.test",
            "--ca-file",
            ca_file,
            *extra,
        ],
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if match is None:
        proc.kill()
        raise SystemExit(f"dotclient serve did not start: {line}")
    port = int(match.group(1))
    try:
        wait_answering(port, proc)
        yield port, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def memory_kib(pid: int) -> tuple[int, int]:
    """(peak, current) resident set of ``pid`` in KiB, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    now = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return peak, now


def dnsperf(port: int, datafile: str, seconds: float, clients: int, in_flight: int) -> dict:
    exe = shutil.which("dnsperf")
    if exe is None:
        raise SystemExit("dnsperf is not installed (scripts/install-servers dnsperf)")
    done = subprocess.run(
        [
            exe,
            "-s",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            "udp",
            "-d",
            datafile,
            "-c",
            str(clients),
            "-q",
            str(in_flight),
            "-l",
            str(seconds),
            "-t",
            "5",
            "-v",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    if done.returncode != 0:
        raise SystemExit(f"dnsperf failed:\n{done.stdout[-2000:]}\n{done.stderr}")
    out = done.stdout
    latencies = [float(m) for m in re.findall(r"^> \S+ .* (\d+\.\d+)$", out, re.M)]

    def figure(pattern: str) -> float:
        match = re.search(pattern, out)
        if match is None:
            raise SystemExit(f"dnsperf output without {pattern!r}:\n{out[-3000:]}")
        return float(match.group(1))

    sent = figure(r"Queries sent:\s+(\d+)")
    completed = figure(r"Queries completed:\s+(\d+)")
    lost = figure(r"Queries lost:\s+(\d+)")
    nxdomain = figure(r"NXDOMAIN (\d+) ") if "NXDOMAIN" in out else 0.0
    rcodes = re.search(r"Response codes:\s+(.*)", out)
    # One name in len(QUERIES) is NXDOMAIN, every other NOERROR, nothing else.
    expected_nx = completed / len(QUERIES)
    rcode_text = rcodes.group(1) if rcodes else ""
    if lost or set(re.findall(r"([A-Z]+) \d+", rcode_text)) - {"NOERROR", "NXDOMAIN"}:
        raise SystemExit(f"wrong answers or lost queries:\n{out[-3000:]}")
    if abs(nxdomain - expected_nx) > len(QUERIES) + clients * in_flight / len(QUERIES):
        raise SystemExit(f"NXDOMAIN count {nxdomain} far from {expected_nx:.0f}")
    latencies.sort()
    return {
        "qps": figure(r"Queries per second:\s+([\d.]+)"),
        "sent": sent,
        "completed": completed,
        "lost": lost,
        "rcodes": rcode_text.strip(),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else float("nan"),
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan"),
    }


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per dnsperf run")
    parser.add_argument("--clients", type=int, default=10, help="dnsperf -c")
    parser.add_argument("--in-flight", type=int, default=100, help="dnsperf -q")
    args = parser.parse_args()

    print(f"before: {uptime()}")
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as workdir:
        ca = TestCA()
        ca_file = ca.write_ca_file(Path(workdir, "ca.pem"))
        datafile = str(Path(workdir, "queries.txt"))
        Path(datafile).write_text("".join(f"{n} {t}\n" for n, t, _ in QUERIES))
        cert = ca.issue("dot.test", "127.0.0.1")
        run = (args.seconds, args.clients, args.in_flight)
        results: dict[str, dict] = {}
        with UnboundServer(cert, extra_config="    num-threads: 1") as upstream:
            with stubby(upstream, ca_file, workdir) as (port, _):
                check = spot_check(port)
                results["stubby"] = dnsperf(port, datafile, *run)
                results["stubby"]["check"] = check
            for label, extra in (("serve --no-cache", ("--no-cache",)), ("serve (cache)", ())):
                with serve(upstream, ca_file, *extra) as (port, pid):
                    check = spot_check(port)
                    if not extra:  # warm the cache: one pass over the names
                        dnsperf(port, datafile, 1, 1, 1)
                    results[label] = dnsperf(port, datafile, *run)
                    results[label]["check"] = check
                    results[label]["rss"] = memory_kib(pid)
    print(f"after:  {uptime()}")
    print(
        f"dnsperf -m udp -c {args.clients} -q {args.in_flight} -l {args.seconds:g}, "
        f"{len(QUERIES)} names, same unbound (1 thread) behind each stub\n"
    )
    base = results["stubby"]
    print(
        f"{'':18} {'queries/s':>10} {'ratio':>6} {'mean ms':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'completed':>10} {'lost':>5} {'peak/final RSS MiB':>19}"
    )
    for label, r in results.items():
        rss = r.get("rss")
        memory = f"{rss[0] / 1024:.1f} / {rss[1] / 1024:.1f}" if rss else "-"
        print(
            f"{label:18} {r['qps']:>10.0f} {r['qps'] / base['qps']:>5.2f}x "
            f"{r['mean_ms']:>8.2f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
            f"{r['completed']:>10.0f} {r['lost']:>5.0f} {memory:>19}"
        )
    for label, r in results.items():
        print(f"  {label}: {r['rcodes']}; spot check {r['check']}")


if __name__ == "__main__":
    main()
