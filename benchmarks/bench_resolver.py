#!/usr/bin/env python3
"""dnspython's Resolver over three transports to the same local unbound, in one run.

    python benchmarks/bench_resolver.py [--queries 4000] [--dnspython-dot 200] [--rounds 20]

Starts Debian's unbound on 127.0.0.1 (dotclient.testing, one thread, as in the tests;
it answers plain DNS over UDP on the same port as DoT) with TCP_NODELAY on its DoT
connections (the LD_PRELOAD shim of ``UnboundServer(nodelay=True)``; without it
dnspython's DoT waits ~40 ms on a delayed ACK per connection, which would measure the
server's setup, not dnspython) and resolves names sequentially,
cache off, with the same ``dns.resolver.Resolver`` given in turn:
  1. dotclient's DoTNameserver (make_resolver(): one kept, pipelined connection);
  2. dnspython's own dns.nameserver.DoTNameserver (a new TLS connection per query);
  3. dnspython's Do53Nameserver: plain UDP, the Resolver's own cost as the ceiling.
Each answer is checked against the zone. The transports take --rounds turns each,
in short turns, one after another, so that load from other processes falls on each
alike (the machine may be shared: the load average is printed with the figures).
Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time

import dns.nameserver
import dns.resolver
import dns.version

import dotclient
from dotclient.integrations.dnspython import close_resolver, make_resolver
from dotclient.testing import ServerNotFound, TestCA, UnboundServer

# name -> the addresses the test zone gives it (CNAMEs followed)
EXPECTED = {
    "a.example.test": {"192.0.2.1", "192.0.2.2"},
    "www.example.test": {"192.0.2.1", "192.0.2.2"},
    "mail.example.test": {"192.0.2.25"},
    "ns.example.test": {"192.0.2.53"},
}
NAMES = list(EXPECTED)


def run(resolver: dns.resolver.Resolver, count: int) -> tuple[float, float]:
    """Resolve ``count`` names in turn, checking every answer; return the seconds taken
    and the CPU seconds this process used."""
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        name = NAMES[i % len(NAMES)]
        answer = resolver.resolve(name, "A")
        got = {rdata.address for rdata in answer}
        if got != EXPECTED[name]:
            raise SystemExit(f"wrong answer for {name}: {sorted(got)}")
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=4000, help="in all (ours, UDP)")
    parser.add_argument(
        "--dnspython-dot", type=int, default=200, help="in all, for dnspython's DoT"
    )
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    ca = TestCA()
    cert = ca.issue("dot.test", "127.0.0.1")
    server = UnboundServer(cert, nodelay=True)
    try:
        server.start()  # builds the shim: ServerNotFound without a C compiler
    except ServerNotFound as exc:
        raise SystemExit(f"cannot run the benchmark: {exc}") from exc
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        stack.callback(server.stop)
        ca_file = ca.write_ca_file(os.path.join(tmp, "ca.pem"))
        spec = f"127.0.0.1:{server.port}#dot.test"

        ours = make_resolver(spec, ca_file=ca_file, cache=False)
        theirs = dns.resolver.Resolver(configure=False)
        theirs.nameservers = [
            dns.nameserver.DoTNameserver(
                "127.0.0.1", server.port, hostname="dot.test", verify=ca_file
            )
        ]
        udp = dns.resolver.Resolver(configure=False)
        udp.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", server.port)]
        for resolver in (ours, theirs, udp):
            resolver.cache = None
            resolver.lifetime = resolver.timeout = 5.0

        per_round = {
            "dotclient DoTNameserver": (ours, max(1, args.queries // args.rounds)),
            "dnspython DoTNameserver": (theirs, max(1, args.dnspython_dot // args.rounds)),
            "dnspython Do53 (UDP)": (udp, max(1, args.queries // args.rounds)),
        }
        run(ours, 50), run(udp, 50), run(theirs, 5)  # warm up: first handshake, caches
        load_before = os.getloadavg()
        seconds = dict.fromkeys(per_round, 0.0)
        cpu = dict.fromkeys(per_round, 0.0)
        # Short turns, taken in rotation: a burst of load from other processes then
        # falls on every transport alike instead of on one whole run.
        for _ in range(args.rounds):
            for label, (resolver, count) in per_round.items():
                elapsed, used = run(resolver, count)
                seconds[label] += elapsed
                cpu[label] += used
        load_after = os.getloadavg()
        close_resolver(ours)
        rates = {
            label: count * args.rounds / seconds[label] for label, (_, count) in per_round.items()
        }

    print(
        f"dotclient {dotclient.__version__}, dnspython {dns.version.version}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(
        "load average (1, 5, 15 min): before "
        + " ".join(f"{x:.2f}" for x in load_before)
        + ", after "
        + " ".join(f"{x:.2f}" for x in load_after)
    )
    print(
        f"sequential Resolver.resolve(), cache off, every answer checked, in "
        f"{args.rounds} interleaved turns each:"
    )
    ours_rate = rates["dotclient DoTNameserver"]
    for label, (_, count) in per_round.items():
        rate = rates[label]
        print(
            f"  {label:<24} {count * args.rounds:6d} queries {rate:8.0f} q/s"
            f"   dotclient / this: {ours_rate / rate:5.2f}x"
            f"   client CPU {cpu[label] / (count * args.rounds) * 1e6:6.0f} us/query"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
