#!/usr/bin/env python3
"""Start a local DoT server (Debian's unbound, throwaway CA) and query it over TLS.

    python examples/local_demo.py

Needs the unbound binary (``scripts/install-unbound``). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile

import dotclient
from dotclient.testing import TestCA, UnboundNotFound, UnboundServer


def show(r: dotclient.Response) -> None:
    answers = r.addresses() or [rr.to_text() for rr in r.answer]
    auth = "authenticated" if r.authenticated else f"NOT authenticated ({r.tls.auth_error})"
    print(
        f"  {r.question[0] if r.question else '?'} {r.rcode.name:8} "
        f"{r.elapsed * 1000:6.1f} ms  {r.tls_version} {auth}"
    )
    for line in answers:
        print(f"      {line if len(line) < 90 else line[:86] + ' ...'}")


async def async_part(spec: str, ca_file: str) -> None:
    async with dotclient.AsyncClient(spec, ca_file=ca_file) as client:
        for name, rdtype in [("www.example.test", "A"), ("a.example.test", "AAAA")]:
            show(await client.resolve(name, rdtype))


def main() -> int:
    ca = TestCA()
    cert = ca.issue("dot.test", "127.0.0.1")
    with tempfile.TemporaryDirectory() as tmp:
        ca_file = ca.write_ca_file(f"{tmp}/ca.pem")
        try:
            server = UnboundServer(cert)
        except UnboundNotFound as exc:
            print(exc, file=sys.stderr)
            return 2
        with server:
            spec = f"127.0.0.1:{server.port}#dot.test"
            print(f"unbound serves DoT on {spec}; certificate pin sha256/{cert.spki_pin}\n")

            print("one-shot resolve(), strict authentication against the test CA:")
            show(dotclient.resolve("a.example.test", server=spec, ca_file=ca_file))

            print("\na Client keeps its TLS connection between queries:")
            with dotclient.Client(spec, ca_file=ca_file, pins=[cert.spki_pin]) as client:
                for name, rdtype in [
                    ("example.test", "MX"),
                    ("big.example.test", "TXT"),
                    ("nx.example.test", "A"),
                ]:
                    show(client.resolve(name, rdtype))

            print("\nthe asyncio twin:")
            asyncio.run(async_part(spec, ca_file))

            print("\nwithout the test CA, strict authentication refuses the server:")
            try:
                dotclient.resolve("a.example.test", server=spec)
            except dotclient.AuthenticationError as exc:
                print(f"  AuthenticationError: {exc}")

            print("\n...and the opportunistic profile goes on, encrypted but unauthenticated:")
            show(dotclient.resolve("a.example.test", server=spec, profile="opportunistic"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
