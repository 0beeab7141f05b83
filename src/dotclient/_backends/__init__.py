"""I/O backends: the only code that touches sockets, ``ssl`` wrapping and asyncio.

``_async.py`` and ``_sync.py`` offer the same names (``open_tls_stream``, a stream with
``read``/``write``/close, locks, ``Event``, ``call_later``, ``run_workers``,
``sleep``), so the client code in ``dotclient._async`` is written once and
``dotclient._sync`` is generated from it by ``scripts/unasync.py``. Each is a facade
over its stream (``_async_stream.py``, ``_sync_stream.py``) and its connection set-up
(``_async_connect.py``, ``_sync_connect.py``: the Happy Eyeballs race, the proxy, the
handshake). What the two set-ups share, and that does no waiting, is here.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

from .._exceptions import PLAIN_DNS_HINT, ConnectError, DoTError, NetworkError, Timeout
from .._happy import AddrInfo, Race, family_of, interleave
from .._proxy import Proxy
from .._route import Route
from .._server import Server

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only
# Linux 4.11+: connect() returns at once and the first write (our ClientHello) goes in
# the SYN when the kernel holds a TFO cookie for the server. Python names the constant
# only on some builds; its value is 30 in linux/tcp.h.
_FASTOPEN_CONNECT = getattr(
    socket, "TCP_FASTOPEN_CONNECT", 30 if sys.platform.startswith("linux") else None
)


def fast_open(sock: socket.socket) -> bool:
    """Ask for TCP Fast Open (RFC 7413) on a socket not yet connected; return whether
    the kernel took the option. Where it does not (not Linux, an old kernel), the
    connection is made as usual: Fast Open is an optimisation, never a requirement."""
    if _FASTOPEN_CONNECT is None:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _FASTOPEN_CONNECT, 1)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def refused_is_connect(server: Any) -> Iterator[None]:
    """With Fast Open, connect() returns before the server answered the SYN, so a
    refused connection shows up in the handshake: report it as the connect failure it
    is (a :class:`ConnectError`, not a lost connection)."""
    try:
        yield
    except ConnectionRefusedError as exc:
        reason = exc.strerror or str(exc)
        raise ConnectError(f"cannot connect to {server}: {reason}", server=server) from exc


def quickack(sock: Any) -> None:
    """Ask the kernel to acknowledge what came at once, and the next segments too
    (Linux TCP_QUICKACK: a delayed ACK still pending is sent when it is set).

    Servers that do not set TCP_NODELAY (Debian's unbound among them) hold a DNS
    answer behind a small unacknowledged TLS record, such as TLS 1.3 session tickets
    or the first part of an answer written in two, until our delayed ACK fires:
    ~40 ms. The streams call this before they wait for data while something received
    may be unacknowledged (they note what came since their last write, which carried
    the ACK): not before every read, which cost a system call and a bare ACK packet
    per answer, about 9% of a sequential lookup.

    Linux sends the pending ACK at once only when the socket's receive queue is empty
    (or more than a segment is unacknowledged): call this after the socket has been
    read dry (a recv that wanted more, asyncio's transport after its read), never
    with data still queued.
    """
    if _QUICKACK is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
    except (OSError, AttributeError):  # not a TCP socket, or already closed
        pass


def ordered_addresses(server: Server, addresses: list[AddrInfo], route: Route) -> list[AddrInfo]:
    """The server's addresses in Happy Eyeballs order, only those of the source
    address's family; ConnectError if none is left."""
    source_family = family_of(route.source[0]) if route.source is not None else None
    infos = interleave(addresses, source_family)
    if not infos:
        assert route.source is not None
        raise ConnectError(
            f"{server} has no address of the family of source_address {route.source[0]}",
            server=server,
        )
    return infos


def proxy_needs_lookup(server: Server, proxy: Proxy) -> bool:
    """With ``socks5://`` the client resolves a server name itself (``socks5h``: the
    proxy does)."""
    return not proxy.remote_dns and not server.is_ip


def proxy_targets(server: Server, proxy: Proxy, addresses: list[AddrInfo] | None) -> list[str]:
    """What to ask the proxy to connect to, in order: the server's name (``socks5h``)
    or IP, or each of its resolved addresses."""
    if not proxy_needs_lookup(server, proxy):
        return [server.host]
    assert addresses is not None
    return [str(sockaddr[0]) for _, sockaddr in interleave(addresses)]


def race_timeout(server: Server, handshaking: bool) -> Timeout:
    """The error of a connect that ran out of time."""
    if handshaking:
        return Timeout(
            f"timed out in the TLS handshake with {server}{PLAIN_DNS_HINT}", server=server
        )
    return Timeout(f"timed out connecting to {server}", server=server)


def race_failure(server: Server, errors: list[DoTError]) -> DoTError:
    """The error of a connect whose every attempt failed: a TLS or authentication
    failure before a refused connection (it says more, and the opportunistic profile
    acts on it), the only error as it is, else one naming each address's."""
    for error in errors:
        if not isinstance(error, NetworkError):
            return error
    if len(errors) == 1:
        return errors[0]
    if not errors:  # pragma: no cover - a race always has an attempt
        return ConnectError(f"cannot connect to {server}", server=server)
    return ConnectError("; ".join(str(e) for e in errors), server=server)


def connect_deadline(server: Server, timeout: float) -> float:
    """The monotonic time a connect must be done by; Timeout if there is no time left."""
    if timeout <= 0:
        raise Timeout(f"no time left to connect to {server}", server=server)
    return time.monotonic() + timeout


def literal_address(server: Server) -> list[AddrInfo] | None:
    """The address of a server given by IP (no lookup needed), else None."""
    if not server.is_ip:
        return None
    return [(family_of(server.host), (server.host, server.port))]


def found_addresses(server: Server, infos: list[Any]) -> list[AddrInfo]:
    """The ``(family, sockaddr)`` of ``socket.getaddrinfo`` results; ConnectError if
    there are none."""
    if not infos:
        raise ConnectError(f"{server.host} has no address", server=server)
    return [(info[0], info[4]) for info in infos]


def prepare_socket(
    sock: socket.socket, source: tuple[str, int] | None, try_fast_open: bool
) -> bool:
    """Make a new TCP socket ready for a connection attempt: non-blocking, TCP_NODELAY,
    bound to ``source`` if given, and with TCP Fast Open if asked. Returns whether the
    kernel took Fast Open. An ``OSError`` propagates; the caller closes the socket."""
    sock.setblocking(False)
    # Without TCP_NODELAY the query after the handshake waits on Nagle and delayed ACKs
    # (tens of ms per connection).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if source is not None:
        sock.bind(source)
    # The ClientHello the handshake writes next goes in the SYN (with a cookie).
    return try_fast_open and fast_open(sock)


def connect_error(server: Server, address: object, reason: str) -> ConnectError:
    """The error of one address that could not be connected to."""
    return ConnectError(f"cannot connect to {server} at {address}: {reason}", server=server)


def race_wait(
    race: Race,
    server: Server,
    errors: list[DoTError],
    deadline: float,
    now: float,
    handshaking: bool,
) -> float:
    """How long a race may wait on its attempts before it must act again: until the
    next attempt is due, or the deadline. Raises the race's error once every attempt
    failed (:func:`race_failure`) or the time is up (:func:`race_timeout`, which says
    whether an attempt had reached its handshake: ``handshaking``)."""
    if race.exhausted:
        raise race_failure(server, errors)
    left = deadline - now
    if left <= 0:
        raise race_timeout(server, handshaking)
    wake = race.timer()
    return left if wake is None else min(left, max(wake - now, 0.0))


def set_nodelay(sock: socket.socket) -> None:
    """TCP_NODELAY on a socket a SOCKS5 proxy connected (see :func:`prepare_socket`)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # pragma: no cover - a socket the proxy library closed
        pass


def proxy_failure(server: Server, proxy: Proxy, errors: list[DoTError]) -> DoTError:
    """The error of a connect through ``proxy`` that got no stream: each target's
    error (:func:`race_failure`), or a Timeout if the time ran out before any try."""
    if not errors:
        return Timeout(f"timed out connecting to {server} through {proxy}", server=server)
    return race_failure(server, errors)
