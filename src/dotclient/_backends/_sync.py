"""Blocking backend: socket + ssl, every wait bounded by a timeout."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from typing import Any

from .._exceptions import ConnectError, Timeout, map_io_errors
from .._server import Server
from . import quickack

__all__ = ["Lock", "SyncStream", "open_tls_stream"]

_AddrInfo = tuple[int, tuple[Any, ...]]


class SyncStream:
    """A connected, handshaken TLS socket."""

    def __init__(self, sock: ssl.SSLSocket, server: Server) -> None:
        self._sock = sock
        self._server = server
        self.ssl_object: Any = sock

    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Read up to ``max_bytes``; ``b""`` when the peer closed the connection."""
        with map_io_errors("receive", self._server):
            quickack(self._sock)
            self._sock.settimeout(timeout)
            return self._sock.recv(max_bytes)

    def write(self, data: bytes, timeout: float) -> None:
        """Write all of ``data``."""
        with map_io_errors("send", self._server):
            self._sock.settimeout(timeout)
            self._sock.sendall(data)

    def close(self) -> None:
        """Close the connection; never raises."""
        try:
            self._sock.close()
        except OSError:  # pragma: no cover - close() on a dead socket
            pass


def _resolve(server: Server, timeout: float) -> list[_AddrInfo]:
    """getaddrinfo with a time limit: the lookup runs in a daemon thread, so a stuck
    system resolver costs a thread until it returns, never the caller's time."""
    try:
        ip = ipaddress.ip_address(server.host)
    except ValueError:
        pass
    else:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return [(family, (server.host, server.port))]
    outcome: list[Any] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM)
            outcome.append([(info[0], info[4]) for info in infos])
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=lookup, name="dotclient-getaddrinfo", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise Timeout(f"timed out looking up {server.host}", server=server)
    result = outcome[0]
    if isinstance(result, OSError):
        with map_io_errors("resolve", server):
            raise result
    if not result:
        raise ConnectError(f"{server.host} has no address", server=server)
    return list(result)


def _connect_tcp(server: Server, deadline: float) -> socket.socket:
    errors: list[str] = []
    for family, sockaddr in _resolve(server, deadline - time.monotonic()):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(left)
            # Without TCP_NODELAY the query after the handshake waits on Nagle and
            # delayed ACKs (tens of ms per connection).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with map_io_errors("connect", server):
                sock.connect(sockaddr)
            return sock
        except Timeout:
            sock.close()
            raise
        except ConnectError as exc:
            sock.close()
            errors.append(str(exc))
        except BaseException:
            sock.close()
            raise
    if errors:
        raise ConnectError("; ".join(errors), server=server)
    raise Timeout(f"timed out connecting to {server}", server=server)


def open_tls_stream(
    server: Server, context: ssl.SSLContext, server_hostname: str | None, timeout: float
) -> SyncStream:
    """Connect to ``server`` and complete the TLS handshake within ``timeout`` seconds.

    ``server_hostname`` is sent as SNI and, if the context checks host names, verified;
    None sends no SNI.
    """
    if timeout <= 0:
        raise Timeout(f"no time left to connect to {server}", server=server)
    deadline = time.monotonic() + timeout
    sock = _connect_tcp(server, deadline)
    try:
        with map_io_errors("handshake", server):
            tls = context.wrap_socket(
                sock, server_hostname=server_hostname, do_handshake_on_connect=False
            )
    except BaseException:
        sock.close()
        raise
    try:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout(f"timed out before the TLS handshake with {server}", server=server)
        with map_io_errors("handshake", server):
            tls.settimeout(left)
            tls.do_handshake()
    except BaseException:
        tls.close()
        raise
    return SyncStream(tls, server)


class Lock:
    """A lock whose acquisition is bounded by a timeout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, timeout: float) -> bool:
        """Acquire within ``timeout`` seconds; False if that was not possible."""
        return self._lock.acquire(timeout=max(timeout, 0))

    def release(self) -> None:
        """Release the lock."""
        self._lock.release()
