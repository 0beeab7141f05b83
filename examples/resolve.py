#!/usr/bin/env python3
"""Resolve one name over DNS over TLS and print the answer.

    python examples/resolve.py example.com AAAA --server 1.1.1.1
    python examples/resolve.py a.example.test --server 127.0.0.1:8853#dot.test --ca-file ca.pem

Options mirror the library's: --server (any spec: address, [v6]:port, addr#name,
hostname, or the presets cloudflare/google/quad9), --ca-file, --auth-name, --pin,
--pin-only, --profile, --timeout, --dnssec, --no-padding.
"""

from __future__ import annotations

import argparse
import sys

import dotclient


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Resolve a name over DNS over TLS.")
    p.add_argument("name")
    p.add_argument("rdtype", nargs="?", default="A")
    p.add_argument("--server", help="server spec (default: $DOTCLIENT_SERVER or cloudflare)")
    p.add_argument("--ca-file", help="PEM file of trust anchors (e.g. a private CA)")
    p.add_argument("--auth-name", help="authentication domain name to verify")
    p.add_argument("--pin", action="append", help="SPKI pin sha256/BASE64 (repeatable)")
    p.add_argument("--pin-only", action="store_true", help="trust the pin alone")
    p.add_argument("--profile", choices=["strict", "opportunistic"], default="strict")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--dnssec", action="store_true", help="set the DO bit")
    p.add_argument("--no-padding", action="store_true")
    args = p.parse_args(argv)
    try:
        r = dotclient.resolve(
            args.name,
            args.rdtype,
            server=args.server,
            ca_file=args.ca_file,
            auth_name=args.auth_name,
            pins=args.pin,
            pin_only=args.pin_only,
            profile=args.profile,
            timeout=args.timeout,
            dnssec=args.dnssec,
            padding=not args.no_padding,
        )
    except ValueError as exc:
        p.error(str(exc))
    except dotclient.DoTError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(r.message.to_text())
    auth = "yes" if r.authenticated else f"no ({r.tls.auth_error})"
    print(f";; SERVER: {r.server}  {r.tls_version}  authenticated: {auth}")
    print(f";; Query time: {r.elapsed * 1000:.1f} ms")
    return 0 if r.rcode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
