"""The probe's steps through the library: one opportunistic client with keepalive.

The first query says whether the strict profile would have authenticated the server
(the library's verdict, and its RFC 6125 name matching), gives the chain and pins, the
keepalive offer and the padding; then latency on the kept connection, a burst (does it
pipeline?) and a reconnect (does it resume the TLS session?).
"""

from __future__ import annotations

import datetime
import statistics
import time
import warnings
from typing import Any

import dns.edns
import dns.rcode

import dotclient

from .._tls import certificate_matches, certificate_names
from .common import describe, hints
from .probe_report import Probe, ms

_BURST = 50  # queries in the pipelining burst (the library needs 8 pipelined answers)
_LATENCY_SAMPLES = 5


def library(probe: Probe, verify_name: str) -> bool:
    """Every step through :class:`dotclient.Client`; False when the first query failed."""
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
        _latency(probe, client, first)
        _pipelining(probe, client)
        _resumption(probe, client)
    return True


def _latency(probe: Probe, client: dotclient.Client, first: dotclient.Response) -> None:
    samples = []
    for _ in range(_LATENCY_SAMPLES):
        try:
            samples.append(client.resolve(probe.name, probe.rdtype).elapsed)
        except dotclient.DoTError as exc:
            probe.add("query latency", describe(exc), "warn")
            break
    if not samples:
        return
    median = statistics.median(samples)
    probe.report["latency"] = {
        "first_query_ms": ms(first.elapsed),
        "query_ms": ms(median),
        "samples": len(samples),
    }
    probe.add(
        "latency",
        f"first query {first.elapsed * 1000:.1f} ms (connect + handshake), then "
        f"{median * 1000:.1f} ms (median of {len(samples)})",
    )


def _authentication(probe: Probe, response: dotclient.Response, verify_name: str) -> None:
    tls = response.tls
    chain = [
        _certificate(der, pin) for der, pin in zip(tls.peer_certificates, tls.pins, strict=False)
    ]
    probe.report["certificates"] = chain
    probe.report["pins"] = list(tls.pins)
    leaf = tls.peer_certificates[0] if tls.peer_certificates else None
    matches = leaf is not None and certificate_matches(leaf, verify_name)
    probe.report["name_matches"] = matches
    probe.report["authenticated"] = tls.authenticated
    probe.report["auth_error"] = tls.auth_error
    if matches:
        probe.add("name", f"{verify_name} is in the certificate")
    else:
        names = ", ".join(chain[0]["sans"]) if chain else "no certificate"
        probe.add("name", f"{verify_name} is NOT in the certificate ({names})", "fail")
    probe.report["authentication_checked"] = _what_was_checked(probe.options)
    if tls.authenticated:
        probe.add("authentication", "yes: " + _what_was_checked(probe.options))
    else:
        probe.add("authentication", f"FAILED: {tls.auth_error}", "fail")
        error = dotclient.AuthenticationError(tls.auth_error or "")
        for hint in hints([error]):
            probe.add("hint", hint, "info")
    _expiry(probe, chain)


def _expiry(probe: Probe, chain: list[dict[str, Any]]) -> None:
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


def _certificate(der: bytes, pin: str) -> dict[str, Any]:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    dns_names, ips = certificate_names(der)
    not_after = cert.not_valid_after_utc
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "sans": dns_names + ips,
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": (not_after - datetime.datetime.now(datetime.timezone.utc)).days,
        "pin": pin,
    }


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
        "ms": ms(took),
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
    probe.report["resumption"] = {"resumed": again.resumed, "reconnect_ms": ms(again.elapsed)}
    if again.resumed:
        probe.add("resumption", f"yes: reconnect and query {again.elapsed * 1000:.1f} ms")
    else:
        probe.add("resumption", "no: the server did not resume the TLS session", "info")
