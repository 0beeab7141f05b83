#!/usr/bin/env python3
"""Print the SPKI pins of the certificates a DoT server presents, ready for pins=[...].

    python examples/show_pins.py --server 9.9.9.9#dns.quad9.net
    python examples/show_pins.py --server 127.0.0.1:8853#dot.test --ca-file ca.pem

It connects opportunistically (so it works before you trust the server), says whether
the server authenticated, and prints one pin per certificate, leaf first. Check a pin
through another channel before you rely on it.
"""

from __future__ import annotations

import argparse
import sys

import dotclient
from dotclient._tls import format_pin


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", help="server spec (default: $DOTCLIENT_SERVER or cloudflare)")
    p.add_argument("--ca-file", help="PEM file of trust anchors")
    p.add_argument("--timeout", type=float, default=5.0)
    args = p.parse_args(argv)
    try:
        r = dotclient.resolve(
            ".",
            "NS",
            server=args.server,
            ca_file=args.ca_file,
            profile="opportunistic",
            timeout=args.timeout,
        )
    except dotclient.DoTError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(f"server: {r.server}  {r.tls_version}  cipher {r.tls.cipher}")
    print(f"authenticated: {'yes' if r.authenticated else 'no: ' + str(r.tls.auth_error)}")
    for i, digest in enumerate(r.tls.peer_pins):
        print(f"{'leaf' if i == 0 else f'chain[{i}]':9} {format_pin(digest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
