"""The probe's raw steps, on sockets of its own: TCP, a TLS handshake, queries out of order.

These measure and read what is negotiated; they authenticate nothing (the library's
connection in :mod:`.probe_client` does). Framing, query rendering, the IP check and the
mapping of socket errors are the library's.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import time

import dotclient

from .. import _proxy
from .._backends import ordered_addresses
from .._exceptions import map_io_errors
from .._protocol import (
    DEFAULT_PADDING_BLOCK,
    FrameDecoder,
    encode_frame,
    make_query,
    render_query,
)
from .._route import make_route
from .._server import is_ip
from .common import describe
from .probe_report import Probe, ms

_ORDER_QUERIES = 8
_ORDER_TYPES = ("A", "AAAA", "NS", "SOA", "MX", "TXT", "CAA", "HTTPS")
_RAW_ERRORS = (OSError, ssl.SSLError, dotclient.DoTError)


def tcp(probe: Probe) -> tuple[str, int] | None:
    """Resolve the server (as the library would) and connect; the address, or None."""
    server = probe.server
    infos: list[tuple[str, int]] = []
    try:
        started = time.perf_counter()
        infos = _addresses(probe)
        host, port = infos[0]
        lookup = time.perf_counter() - started
        started = time.perf_counter()
        with connect(probe, (host, port)):
            connect_time = time.perf_counter() - started
    except (OSError, dotclient.DoTError) as exc:
        probe.failure = _classified(exc, "connect" if infos else "resolve", server)
        probe.report["tcp"] = {"reachable": False, "error": str(probe.failure)}
        probe.add("TCP", describe(probe.failure), "fail")
        return None
    probe.report["tcp"] = {
        "reachable": True,
        "address": host,
        "lookup_ms": ms(lookup) if not server.is_ip else None,
        "connect_ms": ms(connect_time),
    }
    probe.add("TCP", f"{host} port {port} reachable, connect {connect_time * 1000:.1f} ms")
    return host, port


def _classified(exc: BaseException, phase: str, server: dotclient.Server) -> BaseException:
    """The library's exception for a raw socket or TLS error: the probe's steps fail with
    the same class and message (and so exit code) as a query would."""
    if isinstance(exc, dotclient.DoTError):
        return exc
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


def connect(probe: Probe, address: tuple[str, int]) -> socket.socket:
    """A TCP connection for the raw steps, from --source and through --proxy if given."""
    route = make_route(probe.options.get("source_address"), probe.options.get("proxy"))
    if route.proxy is not None:
        sock = _proxy.connect(route.proxy, probe.server, address[0], probe.timeout, route.source)
        sock.settimeout(probe.timeout)
        return sock
    return socket.create_connection(address, timeout=probe.timeout, source_address=route.source)


def _raw_context(probe: Probe) -> ssl.SSLContext:
    # Measuring only: the library's own connection does the authentication.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if probe.options.get("client_cert"):
        context.load_cert_chain(probe.options["client_cert"], probe.options.get("client_key"))
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["dot"])
    return context


def _sni(auth_name: str | None) -> str | None:
    return auth_name if auth_name and not is_ip(auth_name) else None


def handshake(probe: Probe, address: tuple[str, int], auth_name: str | None) -> bool:
    """A TLS handshake without verification, timed: version, cipher, ALPN."""
    try:
        with connect(probe, address) as sock:
            started = time.perf_counter()
            with _raw_context(probe).wrap_socket(sock, server_hostname=_sni(auth_name)) as tls:
                took = time.perf_counter() - started
                version = tls.version()
                cipher = tls.cipher()
                alpn = tls.selected_alpn_protocol()
    except _RAW_ERRORS as exc:
        probe.failure = _classified(exc, "handshake", probe.server)
        probe.report["tls"] = {"error": str(probe.failure)}
        probe.add("TLS", describe(probe.failure), "fail")
        return False
    probe.report["tls"] = {
        "version": version,
        "cipher": cipher[0] if cipher else None,
        "alpn": alpn,
        "handshake_ms": ms(took),
    }
    probe.add("TLS", f"{version}, {cipher[0] if cipher else '?'}, handshake {took * 1000:.1f} ms")
    probe.add("ALPN", alpn or "none (the server ignores ALPN 'dot')", "ok" if alpn else "info")
    return True


def _queries(probe: Probe) -> tuple[list[int], list[bytes]]:
    """``_ORDER_QUERIES`` framed queries of several types, under distinct random IDs."""
    ids: list[int] = []
    frames: list[bytes] = []
    for index in range(_ORDER_QUERIES):
        qid = secrets.randbelow(65536)
        while qid in ids:
            qid = secrets.randbelow(65536)
        ids.append(qid)
        query = make_query(probe.name, _ORDER_TYPES[index % len(_ORDER_TYPES)])
        frames.append(encode_frame(render_query(query, qid, DEFAULT_PADDING_BLOCK)))
    return ids, frames


def _answer_ids(tls: ssl.SSLSocket, expected: int, deadline: float) -> list[int]:
    """The IDs of the messages read until ``expected`` came, the stream ended or
    ``deadline`` passed; a broken frame raises :class:`dotclient.ProtocolError`."""
    decoder = FrameDecoder()
    seen: list[int] = []
    while len(seen) < expected and time.monotonic() < deadline:
        tls.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = tls.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        seen += [int.from_bytes(message[:2], "big") for message in decoder.feed(chunk)]
        if decoder.error is not None:  # the stream is broken: nothing more will come
            raise decoder.error
    return seen


def _raw_queries(
    probe: Probe, address: tuple[str, int], auth_name: str | None, *, one_record: bool
) -> tuple[list[int], list[int]]:
    """Write ``_ORDER_QUERIES`` queries at once on a raw TLS connection, each in a TLS
    record of its own (as the library pipelines) or all in one; return the IDs sent
    and the IDs of the answers, in the order they came."""
    ids, frames = _queries(probe)
    deadline = time.monotonic() + min(probe.timeout, 3.0)
    with connect(probe, address) as sock:
        with _raw_context(probe).wrap_socket(sock, server_hostname=_sni(auth_name)) as tls:
            if one_record:
                tls.sendall(b"".join(frames))
            else:
                for frame in frames:
                    tls.sendall(frame)  # one sendall, one TLS record
            seen = _answer_ids(tls, len(ids), deadline)
    return ids, [i for i in seen if i in ids]


def order(probe: Probe, address: tuple[str, int], auth_name: str | None) -> None:
    """Pipelining as the library does it (one query per TLS record), the order of the
    answers, and whether the server also reads several queries sent in one record."""
    try:
        ids, answered = _raw_queries(probe, address, auth_name, one_record=False)
    except _RAW_ERRORS as exc:
        error = _classified(exc, "receive", probe.server)
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
    except _RAW_ERRORS as exc:
        error = _classified(exc, "receive", probe.server)
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
