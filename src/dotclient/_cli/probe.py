"""``dotclient probe SERVER``: the port-853 health check, with a verdict.

What people do by hand with nc, openssl s_client and kdig, in one run:

1. TCP: resolve the host (over DoT with --bootstrap), connect (from --source, through
   --proxy), time it.
2. TLS: a handshake of our own (no verification: this step only measures and reads
   what is negotiated), timed; version, cipher, ALPN.
3. The library, opportunistic profile, keepalive on: the first query says whether the
   strict profile would have authenticated the server (and why not), gives the
   certificate chain and pins, the server's edns-tcp-keepalive offer and whether it pads
   its responses. Then a few queries on the kept connection (query latency), a burst
   (``resolve_many``: does it pipeline?) and a reconnect (``close_connections``: does it
   resume the TLS session?).
4. Out of order: several queries written at once on a raw TLS connection; the order of
   the answer IDs shows whether the server answers them as they complete.
"""

from __future__ import annotations

import argparse
import datetime
import json

import dns.exception
import dns.name
import dns.rdatatype

import dotclient

from .common import (
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_RCODE,
    EXIT_TLS,
    UsageError,
    add_tls_options,
    cli_message,
    client_options,
    describe,
    exit_code,
    require_rich,
    server_specs,
)
from .probe_client import library
from .probe_report import Probe, show
from .probe_transport import handshake, order, tcp

DESCRIPTION = """\
Check a DNS-over-TLS server: TCP reachability and connect time, TLS version and
cipher, the certificate chain (subject, issuer, SANs, expiry), whether the
authentication name or IP matches, the SPKI pin of each certificate (ready for
--pin), handshake and query latency, session resumption, pipelining and answers
out of order, edns-tcp-keepalive and padding. Prints a verdict (OK, WARN, FAIL),
a table, or --json. Exit codes: 0 OK, 1 WARN, 2 bad usage, 3 FAIL: network or
timeout, 4 FAIL: TLS or authentication, 5 FAIL: protocol error."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The probe's command line: SERVER, the TLS options, and the probe's own."""
    parser.add_argument(
        "server",
        metavar="SERVER",
        nargs="?",
        help="server spec: 9.9.9.9, 9.9.9.9#dns.quad9.net, [::1]:853#dot.test, dns.google, "
        "quad9 (default $DOTCLIENT_SERVER, else cloudflare)",
    )
    add_tls_options(parser, profile=False, padding=False)
    group = parser.add_argument_group("probe")
    group.add_argument(
        "--name",
        default=".",
        help="name to query (default '.', type NS); use one the server serves",
    )
    group.add_argument("--type", default=None, help="type to query (default NS for '.', else A)")
    group.add_argument(
        "--expiry-warning",
        type=float,
        default=14.0,
        metavar="DAYS",
        help="warn when a certificate expires within DAYS (default 14)",
    )
    group.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Probe the server; print the report (a table, or --json); return the exit code."""
    (spec,) = server_specs(
        argparse.Namespace(server=[args.server] if args.server else [], servers=[])
    )
    server = dotclient.parse_server(spec)
    try:
        dns.name.from_text(args.name)
    except dns.exception.DNSException as exc:
        raise UsageError(f"--name {args.name!r} is not a domain name: {exc}") from None
    if args.expiry_warning < 0:
        raise UsageError(f"--expiry-warning must be 0 or more, not {args.expiry_warning}")
    rdtype = args.type or ("NS" if args.name == "." else "A")
    try:
        dns.rdatatype.from_text(rdtype)
    except Exception:
        raise UsageError(f"unknown record type {rdtype!r}") from None
    options = client_options(args)
    try:  # check the options (pins, ca_file) before any I/O
        dotclient.Client(server, **options).close()
    except ValueError as exc:
        raise UsageError(cli_message(str(exc))) from None
    if not args.json:
        require_rich()
    warning = datetime.timedelta(days=args.expiry_warning)
    probe = Probe(server, args.name, rdtype, args.timeout, options, warning)
    verdict, reason, code = probe_server(probe)
    probe.report["verdict"] = verdict
    probe.report["reason"] = reason
    probe.report["exit_code"] = code
    if args.json:
        print(json.dumps(probe.report, indent=2))
    else:
        show(probe, verdict, reason)
    return code


def probe_server(probe: Probe) -> tuple[str, str, int]:
    """Run every step that the previous ones allow; return (verdict, reason, exit code)."""
    server = probe.server
    auth_name = probe.options["auth_name"] or server.auth_name
    probe.report.update(
        server=str(server),
        host=server.host,
        port=server.port,
        auth_name=auth_name,
        verify_name=auth_name or server.host,
        query={"name": probe.name, "type": probe.rdtype},
    )
    address = tcp(probe)
    if address is None:
        return _failed(probe, "TCP connection failed")
    if not handshake(probe, address, auth_name):
        return _failed(probe, "TLS handshake failed")
    if not library(probe, auth_name or server.host):
        return _failed(probe, "no answer over DoT")
    order(probe, address, auth_name)
    fails = [c for c in probe.checks if c.level == "fail"]
    warns = [c for c in probe.checks if c.level == "warn"]
    tls = probe.report["tls"]
    if fails:
        code = EXIT_TLS if any(c.label == "authentication" for c in fails) else EXIT_PROTOCOL
        return "FAIL", "; ".join(f"{c.label}: {c.value}" for c in fails), code
    if probe.options.get("pin_only"):
        summary = f"answers DoT with {tls['version']}, authenticated by its pin alone"
    else:
        summary = f"answers DoT with {tls['version']}, authenticated as {auth_name or server.host}"
    if warns:
        return (
            "WARN",
            summary + "; " + "; ".join(f"{c.label}: {c.value}" for c in warns),
            EXIT_RCODE,
        )
    return "OK", summary, EXIT_OK


def _failed(probe: Probe, what: str) -> tuple[str, str, int]:
    exc = probe.failure
    reason = f"{what}: {describe(exc)}" if exc is not None else what
    return "FAIL", reason, exit_code(exc) if exc is not None else EXIT_PROTOCOL
