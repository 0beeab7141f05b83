#!/usr/bin/env python3
"""CPU cost per query of the protocol core, in memory: no sockets, no TLS, no server.

    PYTHONPATH=src python benchmarks/bench_core.py [--queries 20000] [--repeat 5]

A "server" made with dnspython answers each query shape once (an A answer with one or
two records, EDNS(0), padded to 468 octets as unbound pads); during the timing it only
swaps in the query's ID. Each line prints microseconds per query, best of --repeat runs:

  old    make_query + send_query (copy, to_wire with padding) + receive_data
         (dns.message.from_wire, checks) + result + Response(message)
  lean   send_question (cached template) + receive_data (checks from the bytes)
         + result + Response(bytes), without touching .message
  lean+read   the same, then Response.addresses() (read from the bytes, issue 13)

each one query at a time ("1 by 1") and 100 pipelined (100 sent, the 100 answers fed in
one chunk). "hot" cycles 4 names (the template cache hits); "cold" uses a new name for
every query (it misses).
"""

from __future__ import annotations

import argparse
import platform
import struct
import time
from collections.abc import Callable
from functools import partial

import dns
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

import dotclient
from dotclient._protocol import DoTProtocol
from dotclient._query import make_query
from dotclient._response import Response

A = dns.rdatatype.A
IN = dns.rdataclass.IN
SERVER = dotclient.parse_server("192.0.2.53#dot.test")
TLS = dotclient.TLSInfo(
    version="TLSv1.3",
    cipher="TLS_AES_256_GCM_SHA384",
    alpn=None,
    authenticated=True,
    auth_error=None,
    peer_pins=(),
)
_LEN_ID = struct.Struct("!HH")


class Server:
    """Answers from responses rendered once per name with dnspython."""

    def __init__(self) -> None:
        # Keyed by labels: dns.name.Name hashes in Python, and would cost in the timing.
        self._tails: dict[tuple[bytes, ...], bytes] = {}

    def prepare(self, qname: dns.name.Name, records: int) -> None:
        query = make_query(qname, A, IN, padding=128)
        response = dns.message.make_response(query, pad=468)
        addresses = [f"192.0.2.{i + 1}" for i in range(records)]
        response.answer.append(dns.rrset.from_text(qname, 300, "IN", "A", *addresses))
        wire = response.to_wire()
        self._tails[qname.labels] = wire[2:]

    def answer(self, qname: dns.name.Name, qid: int) -> bytes:
        tail = self._tails[qname.labels]
        return _LEN_ID.pack(len(tail) + 2, qid) + tail


def run_old(names: list[dns.name.Name], server: Server, batch: int) -> None:
    proto = DoTProtocol()
    for start in range(0, len(names), batch):
        sent = []
        for qname in names[start : start + batch]:
            qid, _ = proto.send_query(make_query(qname, A, IN, padding=proto.padding))
            sent.append((qid, qname))
        proto.receive_data(b"".join(server.answer(qname, qid) for qid, qname in sent))
        for qid, _ in sent:
            message = proto.result(qid)
            assert isinstance(message, dns.message.Message)
            Response(message, SERVER, 0.0, TLS)


def run_lean(names: list[dns.name.Name], server: Server, batch: int, parse: bool) -> None:
    proto = DoTProtocol()
    for start in range(0, len(names), batch):
        sent = []
        for qname in names[start : start + batch]:
            qid, _ = proto.send_question(qname, A, IN)
            sent.append((qid, qname))
        proto.receive_data(b"".join(server.answer(qname, qid) for qid, qname in sent))
        for qid, _ in sent:
            wire = proto.result(qid)
            assert isinstance(wire, bytes)
            response = Response(wire, SERVER, 0.0, TLS)
            if parse:
                response.addresses()


def best_us(fn: Callable[[], None], count: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.queries

    server = Server()
    hot_names = [dns.name.from_text(f"{w}.example.test") for w in ("a", "www", "mail", "ns1")]
    for i, qname in enumerate(hot_names):
        server.prepare(qname, 1 + i % 2)
    cold_names = [dns.name.from_text(f"host{i}.example.test") for i in range(n)]
    for i, qname in enumerate(cold_names):
        server.prepare(qname, 1 + i % 2)
    workloads = {"hot": [hot_names[i % 4] for i in range(n)], "cold": cold_names}

    print(
        f"Python {platform.python_version()}, dnspython {dns.version.version}, "
        f"{n} queries, best of {args.repeat}; microseconds per query"
    )
    print(f"{'':16}{'old':>8}{'lean':>8}{'lean+read':>12}{'old/lean':>10}")
    for label, names in workloads.items():
        for batch in (1, 100):
            old = best_us(partial(run_old, names, server, batch), n, args.repeat)
            lean = best_us(partial(run_lean, names, server, batch, False), n, args.repeat)
            parsed = best_us(partial(run_lean, names, server, batch, True), n, args.repeat)
            mode = "1 by 1" if batch == 1 else f"{batch} piped"
            print(f"{label + ', ' + mode:16}{old:8.1f}{lean:8.1f}{parsed:12.1f}{old / lean:9.1f}x")


if __name__ == "__main__":
    main()
