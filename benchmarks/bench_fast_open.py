#!/usr/bin/env python3
"""First-query latency on a new connection, with and without TCP Fast Open.

    PYTHONPATH=src python benchmarks/bench_fast_open.py [--reconnects 300]

Starts Debian's unbound (built with --enable-tfo-server) on 127.0.0.1 and, with two
blocking clients (``fast_open=False`` and ``True``), times ``close_connections()`` then
``resolve()``, alternating between the clients. TLS session resumption stays on (the
default), so this is the repeat-connection case Fast Open is for. For each connection
it reads the kernel's TCP_INFO: TCPI_OPT_SYN_DATA says the server acknowledged the
ClientHello sent in the SYN. Needs ``net.ipv4.tcp_fastopen`` = 3 (client and server).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from typing import Any

import dotclient
from dotclient.testing import TestCA, UnboundServer

_TCPI_OPT_SYN_DATA = 0x20


def syn_data_acked(client: Any) -> bool:
    (connection,) = client._pools[0]._pool
    info = connection.stream._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return bool(info[5] & _TCPI_OPT_SYN_DATA)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reconnects", type=int, default=300)
    args = parser.parse_args()
    with open("/proc/sys/net/ipv4/tcp_fastopen") as f:
        sysctl = int(f.read())
    ca = TestCA()
    cert = ca.issue("dot.test", "127.0.0.1")
    ca_file = ca.write_ca_file(os.path.join(tempfile.mkdtemp(), "ca.pem"))
    times: dict[bool, list[float]] = {False: [], True: []}
    acked = {False: 0, True: 0}
    with UnboundServer(cert) as server:
        spec = f"127.0.0.1:{server.port}#dot.test"
        clients = {fo: dotclient.Client(spec, ca_file=ca_file, fast_open=fo) for fo in times}
        for client in clients.values():
            client.resolve("a.example.test")  # a session to resume, a cookie to use
        for i in range(args.reconnects):
            for fo in (False, True) if i % 2 else (True, False):
                client = clients[fo]
                client.close_connections()
                started = time.perf_counter()
                client.resolve("a.example.test")
                times[fo].append((time.perf_counter() - started) * 1e3)
                acked[fo] += syn_data_acked(client)
        for client in clients.values():
            client.close()
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}, {os.cpu_count()} CPUs"
        f"  Python {platform.python_version()}  load {os.getloadavg()[0]:.1f}"
        f"  net.ipv4.tcp_fastopen={sysctl}"
    )
    for fo, values in times.items():
        values.sort()
        n = len(values)
        print(
            f"fast_open={fo!s:5}  median {statistics.median(values):.3f} ms"
            f"  p10 {values[n // 10]:.3f}  p90 {values[9 * n // 10]:.3f}"
            f"  SYN data acknowledged {acked[fo]}/{n}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
