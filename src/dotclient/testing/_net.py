"""Loopback sockets for the test servers: free ports, ``host:port`` text, and the DoT
query that tells whether a server is up and serving its zone."""

from __future__ import annotations

import ipaddress
import socket
import ssl

import dns.exception
import dns.message
import dns.rcode


def pick_port(host: str, exclude: frozenset[int] = frozenset()) -> int:
    """Return a port that is currently free on *host* for both TCP and UDP."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            if port in exclude:
                continue
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
        return port
    raise RuntimeError(f"could not find a free TCP+UDP port on {host}")


def hostport(host: str, port: int) -> str:
    """``host:port``, with an IPv6 *host* in brackets (``[::1]:853``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _recv_exactly(sock: ssl.SSLSocket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def answers_soa(host: str, port: int, origin: str) -> bool:
    """Whether a DoT query for *origin* SOA on *port* gets a NOERROR answer.

    The TLS handshake is not authenticated: this only checks that the server is
    up and serves the zone (through its backend, for dnsdist).
    """
    query = dns.message.make_query(origin, "SOA")
    wire = query.to_wire()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=1.0) as sock,
            ctx.wrap_socket(sock) as tls,
        ):
            tls.sendall(len(wire).to_bytes(2, "big") + wire)
            size = int.from_bytes(_recv_exactly(tls, 2), "big")
            response = dns.message.from_wire(_recv_exactly(tls, size))
    except (OSError, ValueError, dns.exception.DNSException):
        return False
    return query.is_response(response) and response.rcode() == dns.rcode.NOERROR
