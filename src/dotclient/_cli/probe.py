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
import secrets
import socket
import ssl
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

import dotclient

from .. import _proxy
from .._backends import ordered_addresses
from .._exceptions import map_io_errors
from .._route import make_route
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
    format_pin,
    hints,
    is_terminal,
    require_rich,
    server_specs,
)

DESCRIPTION = """\
Check a DNS-over-TLS server: TCP reachability and connect time, TLS version and
cipher, the certificate chain (subject, issuer, SANs, expiry), whether the
authentication name or IP matches, the SPKI pin of each certificate (ready for
--pin), handshake and query latency, session resumption, pipelining and answers
out of order, edns-tcp-keepalive and padding. Prints a verdict (OK, WARN, FAIL),
a table, or --json. Exit codes: 0 OK, 1 WARN, 2 bad usage, 3 FAIL: network or
timeout, 4 FAIL: TLS or authentication, 5 FAIL: protocol error."""

_BURST = 50  # queries in the pipelining burst (the library needs 8 pipelined answers)
_LATENCY_SAMPLES = 5
_ORDER_QUERIES = 8
_ORDER_TYPES = ("A", "AAAA", "NS", "SOA", "MX", "TXT", "CAA", "HTTPS")


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


@dataclass
class Check:
    """One finding: a row of the table and a verdict contribution."""

    label: str
    value: str
    level: str = "ok"  # ok, info, warn, fail


@dataclass
class Probe:
    server: dotclient.Server
    name: str
    rdtype: str
    timeout: float
    options: dict[str, Any]
    expiry_warning: datetime.timedelta = datetime.timedelta(days=14)
    report: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    failure: BaseException | None = None

    def add(self, label: str, value: str, level: str = "ok") -> None:
        self.checks.append(Check(label, value, level))


def run(args: argparse.Namespace) -> int:
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
    address = _tcp(probe)
    if address is None:
        return _failed(probe, "TCP connection failed")
    if not _handshake(probe, address, auth_name):
        return _failed(probe, "TLS handshake failed")
    if not _library(probe, auth_name or server.host):
        return _failed(probe, "no answer over DoT")
    _order(probe, address, auth_name)
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
            (EXIT_RCODE),
        )
    return "OK", summary, EXIT_OK


def _failed(probe: Probe, what: str) -> tuple[str, str, int]:
    exc = probe.failure
    reason = f"{what}: {describe(exc)}" if exc is not None else what
    return "FAIL", reason, exit_code(exc) if exc is not None else EXIT_PROTOCOL


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _tcp(probe: Probe) -> tuple[str, int] | None:
    server = probe.server
    infos: list[tuple[str, int]] = []
    try:
        started = time.perf_counter()
        infos = _addresses(probe)
        host, port = infos[0]
        lookup = time.perf_counter() - started
        started = time.perf_counter()
        with _connect(probe, (host, port)):
            connect = time.perf_counter() - started
    except (OSError, dotclient.DoTError) as exc:
        probe.failure = (
            exc
            if isinstance(exc, dotclient.DoTError)
            else _classified(exc, "connect" if infos else "resolve", server)
        )
        probe.report["tcp"] = {"reachable": False, "error": str(probe.failure)}
        probe.add("TCP", describe(probe.failure), "fail")
        return None
    probe.report["tcp"] = {
        "reachable": True,
        "address": host,
        "lookup_ms": _ms(lookup) if not server.is_ip else None,
        "connect_ms": _ms(connect),
    }
    probe.add("TCP", f"{host} port {port} reachable, connect {connect * 1000:.1f} ms")
    return host, port


def _classified(exc: BaseException, phase: str, server: dotclient.Server) -> BaseException:
    """The library's exception for a raw socket or TLS error: the probe's steps fail with
    the same class and message (and so exit code) as a query would."""
    try:
        with map_io_errors(phase, server):
            raise exc
    except dotclient.DoTError as mapped:
        return mapped
    return exc  # not reached: map_io_errors maps every OSError


def _addresses(probe: Probe) -> list[tuple[str, int]]:
    """The server's addresses as the library finds them: over DoT with --bootstrap,
    not at all with a socks5h proxy (it resolves the name), else the system resolver."""
    server = probe.server
    route = make_route(probe.options.get("source_address"), probe.options.get("proxy"))
    if server.is_ip or (route.proxy is not None and route.proxy.remote_dns):
        return [(server.host, server.port)]
    with dotclient.Client(server, **probe.options) as client:
        resolver = client._resolver
        if resolver is not None:
            infos = resolver.addresses(server, time.monotonic() + probe.timeout)
        else:
            found = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM)
            infos = [(info[0], info[4]) for info in found]
    # In the order the library tries them, and of --source's family only.
    return [
        (str(sockaddr[0]), server.port) for _, sockaddr in ordered_addresses(server, infos, route)
    ]


def _connect(probe: Probe, address: tuple[str, int]) -> socket.socket:
    """A TCP connection for the raw steps, from --source and through --proxy if given."""
    route = make_route(probe.options.get("source_address"), probe.options.get("proxy"))
    if route.proxy is not None:
        sock = _proxy.connect(route.proxy, probe.server, address[0], probe.timeout, route.source)
        sock.settimeout(probe.timeout)
        return sock
    return socket.create_connection(address, timeout=probe.timeout, source_address=route.source)


def _raw_context(probe: Probe) -> ssl.SSLContext:
    # Measuring only: the library's own connection does the authentication below.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if probe.options.get("client_cert"):
        context.load_cert_chain(probe.options["client_cert"], probe.options.get("client_key"))
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["dot"])
    return context


def _sni(auth_name: str | None) -> str | None:
    return auth_name if auth_name and not _is_ip(auth_name) else None


def _is_ip(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except OSError:
        return False
    return True


def _handshake(probe: Probe, address: tuple[str, int], auth_name: str | None) -> bool:
    try:
        with _connect(probe, address) as sock:
            started = time.perf_counter()
            with _raw_context(probe).wrap_socket(sock, server_hostname=_sni(auth_name)) as tls:
                handshake = time.perf_counter() - started
                version = tls.version()
                cipher = tls.cipher()
                alpn = tls.selected_alpn_protocol()
    except (OSError, ssl.SSLError, dotclient.DoTError) as exc:
        probe.failure = (
            exc
            if isinstance(exc, dotclient.DoTError)
            else _classified(exc, "handshake", probe.server)
        )
        probe.report["tls"] = {"error": str(probe.failure)}
        probe.add("TLS", describe(probe.failure), "fail")
        return False
    probe.report["tls"] = {
        "version": version,
        "cipher": cipher[0] if cipher else None,
        "alpn": alpn,
        "handshake_ms": _ms(handshake),
    }
    probe.add(
        "TLS", f"{version}, {cipher[0] if cipher else '?'}, handshake {handshake * 1000:.1f} ms"
    )
    probe.add("ALPN", alpn or "none (the server ignores ALPN 'dot')", "ok" if alpn else "info")
    return True


def _library(probe: Probe, verify_name: str) -> bool:
    # The probe always asks for keepalive (to report the server's offer) and goes on
    # unauthenticated (to report what it can), whatever the options say.
    options = {**probe.options, "profile": "opportunistic", "keepalive": True}
    with warnings.catch_warnings():
        # Pins go on unauthenticated here on purpose: the report says whether they matched.
        warnings.filterwarnings("ignore", "pins with profile='opportunistic'", UserWarning)
        client = dotclient.Client(probe.server, **options, max_connections=1)
    with client:
        try:
            first = client.resolve(probe.name, probe.rdtype)
        except dotclient.DoTError as exc:
            probe.failure = exc
            probe.add("query", describe(exc), "fail")
            return False
        _authentication(probe, first, verify_name)
        _answer(probe, first)
        _edns(probe, first)
        samples = []
        for _ in range(_LATENCY_SAMPLES):
            try:
                samples.append(client.resolve(probe.name, probe.rdtype).elapsed)
            except dotclient.DoTError as exc:
                probe.add("query latency", describe(exc), "warn")
                break
        if samples:
            median = statistics.median(samples)
            probe.report["latency"] = {
                "first_query_ms": _ms(first.elapsed),
                "query_ms": _ms(median),
                "samples": len(samples),
            }
            probe.add(
                "latency",
                f"first query {first.elapsed * 1000:.1f} ms (connect + handshake), then "
                f"{median * 1000:.1f} ms (median of {len(samples)})",
            )
        _pipelining(probe, client)
        _resumption(probe, client)
    return True


def _authentication(probe: Probe, response: dotclient.Response, verify_name: str) -> None:
    tls = response.tls
    chain = [
        _certificate(der, pin)
        for der, pin in zip(tls.peer_certificates, tls.peer_pins, strict=False)
    ]
    probe.report["certificates"] = chain
    probe.report["pins"] = [format_pin(d) for d in tls.peer_pins]
    leaf = chain[0] if chain else None
    matches = leaf is not None and _name_matches(leaf, verify_name)
    probe.report["name_matches"] = matches
    probe.report["authenticated"] = tls.authenticated
    probe.report["auth_error"] = tls.auth_error
    if matches:
        probe.add("name", f"{verify_name} is in the certificate")
    else:
        names = ", ".join(leaf["sans"]) if leaf else "no certificate"
        probe.add("name", f"{verify_name} is NOT in the certificate ({names})", "fail")
    probe.report["authentication_checked"] = _what_was_checked(probe.options)
    if tls.authenticated:
        probe.add("authentication", "yes: " + _what_was_checked(probe.options))
    else:
        probe.add("authentication", f"FAILED: {tls.auth_error}", "fail")
        error = dotclient.AuthenticationError(tls.auth_error or "")
        for hint in hints([error]):
            probe.add("hint", hint, "info")
    now = datetime.datetime.now(datetime.timezone.utc)
    for index, cert in enumerate(chain):
        expires = datetime.datetime.fromisoformat(cert["not_after"])
        left = expires - now
        if left.total_seconds() <= 0:
            probe.add(f"certificate {index}", f"EXPIRED on {cert['not_after']}", "fail")
        elif left < probe.expiry_warning:
            probe.add(f"certificate {index}", f"expires in {_duration(left)}", "warn")


def _what_was_checked(options: dict[str, Any]) -> str:
    """What the library's strict profile checked, given the options."""
    if options.get("pin_only"):
        return "the pin matches the server's certificate (--pin-only: chain and name not checked)"
    trust = "--ca-file" if options.get("ca_file") else "the system CAs (certifi)"
    pins = ", and a pin matches" if options.get("pins") else ""
    return f"chain verified against {trust}, name matches{pins} (strict profile)"


def _duration(delta: datetime.timedelta) -> str:
    if delta.days >= 2:
        return f"{delta.days} days"
    return f"{delta.total_seconds() / 3600:.0f} hours"


def _certificate(der: bytes, digest: bytes) -> dict[str, Any]:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        sans += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        sans = []
    not_after = cert.not_valid_after_utc
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "sans": sans,
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": (not_after - datetime.datetime.now(datetime.timezone.utc)).days,
        "pin": format_pin(digest),
    }


def _name_matches(leaf: dict[str, Any], name: str) -> bool:
    """RFC 6125 as the library applies it: subjectAltName only, a wildcard only as the
    whole left-most label. (The library's own verdict is ``authentication``.)"""
    wanted = name.rstrip(".").lower()
    if _is_ip(wanted):
        return any(
            _is_ip(s)
            and socket.inet_pton(_family(s), s) == socket.inet_pton(_family(wanted), wanted)
            for s in leaf["sans"]
        )
    for pattern in (s.rstrip(".").lower() for s in leaf["sans"] if not _is_ip(s)):
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and pattern.count(".") >= 2:
            head, dot, tail = wanted.partition(".")
            if dot and head and "." + tail == pattern[1:]:
                return True
    return False


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _answer(probe: Probe, response: dotclient.Response) -> None:
    rcode = dns.rcode.to_text(response.rcode)
    probe.report["rcode"] = rcode
    level = "ok" if response.rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) else "warn"
    hint = "" if level == "ok" else " (use --name for a name this server serves)"
    probe.add("answer", f"{probe.name} {probe.rdtype}: {rcode}{hint}", level)


def _edns(probe: Probe, response: dotclient.Response) -> None:
    message = response.message
    keepalive: float | None = None
    padding: int | None = None
    for option in message.options if message.edns >= 0 else []:
        data = option.to_wire() or b""
        if option.otype == dns.edns.OptionType.KEEPALIVE and len(data) == 2:
            keepalive = int.from_bytes(data, "big") / 10
        elif option.otype == dns.edns.OptionType.PADDING:
            padding = len(data)
    size = len(response.wire)
    probe.report["keepalive"] = {"offered": keepalive is not None, "timeout_s": keepalive}
    probe.report["padding"] = {
        "padded": padding is not None,
        "padding_octets": padding,
        "response_size": size,
    }
    if keepalive is not None:
        probe.add("keepalive", f"edns-tcp-keepalive offered: idle timeout {keepalive:.1f} s")
    else:
        probe.add("keepalive", "no edns-tcp-keepalive in the answer (RFC 7828)", "info")
    if padding is not None:
        probe.add("padding", f"responses padded: {size} octets ({padding} of padding)")
    else:
        probe.add("padding", f"responses not padded ({size} octets; RFC 8467 asks for it)", "info")


def _pipelining(probe: Probe, client: dotclient.Client) -> None:
    """A burst through the library: its own view of pipelining (``stats.pipelining``)."""
    started = time.perf_counter()
    outcomes = client.resolve_many([probe.name] * _BURST, probe.rdtype)
    took = time.perf_counter() - started
    errors = [o for o in outcomes if isinstance(o, Exception)]
    stats = client.stats
    probe.report["burst"] = {
        "queries": _BURST,
        "ms": _ms(took),
        "errors": len(errors),
        "library_saw_pipelining": stats.pipelining,
        "pipelining_fallbacks": stats.pipelining_fallbacks,
    }
    seen = {True: "pipelined", False: "not pipelined", None: "no overlap seen"}[stats.pipelining]
    level = "warn" if errors or stats.pipelining is False else "ok"
    detail = f", {len(errors)} errors" if errors else ""
    probe.add(
        "burst",
        f"{_BURST} queries in {took * 1000:.1f} ms ({_BURST / took:.0f} q/s, {seen}{detail})",
        level,
    )


def _resumption(probe: Probe, client: dotclient.Client) -> None:
    client.close_connections()
    try:
        again = client.resolve(probe.name, probe.rdtype)
    except dotclient.DoTError as exc:
        probe.report["resumption"] = {"resumed": False, "error": describe(exc)}
        probe.add("resumption", f"reconnect failed: {describe(exc)}", "warn")
        return
    probe.report["resumption"] = {"resumed": again.resumed, "reconnect_ms": _ms(again.elapsed)}
    if again.resumed:
        probe.add("resumption", f"yes: reconnect and query {again.elapsed * 1000:.1f} ms")
    else:
        probe.add("resumption", "no: the server did not resume the TLS session", "info")


def _raw_queries(
    probe: Probe, address: tuple[str, int], auth_name: str | None, *, one_record: bool
) -> tuple[list[int], list[int]]:
    """Write ``_ORDER_QUERIES`` queries at once on a raw TLS connection, each in a TLS
    record of its own (as the library pipelines) or all in one; return the IDs sent
    and the IDs of the answers, in the order they came."""
    ids: list[int] = []
    frames: list[bytes] = []
    for index in range(_ORDER_QUERIES):
        query = dns.message.make_query(
            probe.name, _ORDER_TYPES[index % len(_ORDER_TYPES)], use_edns=0, pad=128
        )
        query.id = secrets.randbelow(65536)
        while query.id in ids:
            query.id = secrets.randbelow(65536)
        ids.append(query.id)
        data = query.to_wire()
        frames.append(len(data).to_bytes(2, "big") + data)
    seen: list[int] = []
    deadline = time.monotonic() + min(probe.timeout, 3.0)
    with _connect(probe, address) as sock:
        with _raw_context(probe).wrap_socket(sock, server_hostname=_sni(auth_name)) as tls:
            if one_record:
                tls.sendall(b"".join(frames))
            else:
                for frame in frames:
                    tls.sendall(frame)  # one sendall, one TLS record
            buffer = b""
            while len(seen) < len(ids) and time.monotonic() < deadline:
                tls.settimeout(max(deadline - time.monotonic(), 0.01))
                try:
                    chunk = tls.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                buffer += chunk
                while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
                    size = int.from_bytes(buffer[:2], "big")
                    seen.append(int.from_bytes(buffer[2:4], "big"))
                    buffer = buffer[2 + size :]
    return ids, [i for i in seen if i in ids]


def _order(probe: Probe, address: tuple[str, int], auth_name: str | None) -> None:
    """Pipelining as the library does it (one query per TLS record), the order of the
    answers, and whether the server also reads several queries sent in one record."""
    try:
        ids, answered = _raw_queries(probe, address, auth_name, one_record=False)
    except (OSError, ssl.SSLError, dotclient.DoTError) as exc:
        error = (
            exc
            if isinstance(exc, dotclient.DoTError)
            else _classified(exc, "receive", probe.server)
        )
        probe.report["out_of_order"] = {"error": str(error), "sent": _ORDER_QUERIES}
        probe.report["pipelining"] = False
        probe.add(
            "pipelining", f"{_ORDER_QUERIES} queries written at once: {describe(error)}", "warn"
        )
        return
    out_of_order = answered != [i for i in ids if i in answered]
    probe.report["out_of_order"] = {
        "sent": len(ids),
        "answered": len(answered),
        "out_of_order": out_of_order,
    }
    probe.report["pipelining"] = len(answered) == len(ids)
    if len(answered) < len(ids):
        probe.add(
            "pipelining",
            f"no: {len(answered)} of {len(ids)} queries written at once (one per TLS record) "
            "were answered",
            "warn",
        )
        return
    probe.add("pipelining", f"yes: {len(ids)} queries written at once were all answered")
    if out_of_order:
        probe.add(
            "out of order", f"yes: {len(ids)} queries written at once, answered out of order"
        )
    else:
        probe.add(
            "out of order",
            f"not seen: {len(ids)} queries written at once came back in order",
            "info",
        )
    _one_record(probe, address, auth_name)


def _one_record(probe: Probe, address: tuple[str, int], auth_name: str | None) -> None:
    """Several queries in one TLS record: RFC 7766 allows it, some servers (dnsdist 1.7
    without maxInFlight) read only the first. dotclient sends one query per record, so
    this is reported, not judged."""
    try:
        ids, answered = _raw_queries(probe, address, auth_name, one_record=True)
    except (OSError, ssl.SSLError, dotclient.DoTError) as exc:
        error = (
            exc
            if isinstance(exc, dotclient.DoTError)
            else _classified(exc, "receive", probe.server)
        )
        probe.report["one_record"] = {"sent": _ORDER_QUERIES, "error": str(error)}
        probe.add("queries in one record", describe(error), "info")
        return
    probe.report["one_record"] = {"sent": len(ids), "answered": len(answered)}
    if len(answered) == len(ids):
        probe.add("queries in one record", f"all {len(ids)} answered")
    else:
        probe.add(
            "queries in one record",
            f"only {len(answered)} of {len(ids)} answered: the server reads one query per "
            "TLS record (dotclient sends one per record, so it is not affected)",
            "info",
        )


_STYLES = {"ok": "green", "info": "cyan", "warn": "yellow", "fail": "bold red"}
_VERDICT_STYLES = {"OK": "bold green", "WARN": "bold yellow", "FAIL": "bold red"}


def show(probe: Probe, verdict: str, reason: str) -> None:
    from rich.console import Console
    from rich.table import Table

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError  # rich would exit 1, the code of a WARN verdict

    console = _Console(file=sys.stdout, width=None if is_terminal(sys.stdout) else 110)
    console.print(
        f"[{_VERDICT_STYLES[verdict]}]{verdict}[/] {probe.server}: {reason}", highlight=False
    )
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column("check", style="bold")
    table.add_column("", no_wrap=True)
    table.add_column("result", overflow="fold")
    marks = {"ok": "✓", "info": "·", "warn": "!", "fail": "✗"}
    for check in probe.checks:
        style = _STYLES[check.level]
        table.add_row(check.label, f"[{style}]{marks[check.level]}[/]", check.value)
    console.print(table)
    chain = probe.report.get("certificates") or []
    if chain:
        certs = Table(title="certificate chain (leaf first)", title_justify="left")
        certs.add_column("#")
        certs.add_column("subject / issuer / SANs", overflow="fold")
        certs.add_column("expires")
        certs.add_column("SPKI pin (for --pin)", no_wrap=True)
        for index, cert in enumerate(chain):
            names = ", ".join(cert["sans"]) or "-"
            certs.add_row(
                str(index),
                f"{cert['subject']}\nissuer: {cert['issuer']}\nSANs: {names}",
                f"{cert['not_after'][:10]}\n({cert['days_left']} days)",
                cert["pin"],
            )
        console.print(certs)
