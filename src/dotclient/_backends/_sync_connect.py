"""Blocking backend, the connection set-up: the lookup (in a thread, bounded), the Happy
Eyeballs race (RFC 8305) driven by one ``poll``, or the SOCKS5 proxy, then the TLS
handshake, all within one deadline.

As in the asyncio twin, ``_happy.Race`` decides when each attempt starts, and
``_backends/__init__.py`` holds what the two share (socket options, errors, waits).
"""

from __future__ import annotations

import errno
import math
import os
import select
import socket
import ssl
import threading
import time
from typing import Any

from .. import _proxy
from .._exceptions import ConnectError, DoTError, Timeout, map_io_errors
from .._happy import AddrInfo, Race
from .._route import DIRECT, Route
from .._server import Server
from . import (
    connect_deadline,
    connect_error,
    found_addresses,
    literal_address,
    ordered_addresses,
    prepare_socket,
    proxy_failure,
    proxy_needs_lookup,
    proxy_targets,
    race_wait,
    refused_is_connect,
    set_nodelay,
)
from ._sync_stream import SyncStream

__all__ = ["open_tls_stream"]


def _resolve(server: Server, timeout: float) -> list[AddrInfo]:
    """getaddrinfo with a time limit: the lookup runs in a daemon thread, so a stuck
    system resolver costs a thread until it returns, never the caller's time."""
    literal = literal_address(server)
    if literal is not None:
        return literal
    outcome: list[Any] = []

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM))
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
    return found_addresses(server, result)


def _close_orphaned_ssl_socket(exc: BaseException) -> None:
    """Close the SSLSocket a failed ``wrap_socket`` made and did not close.

    CPython's ``SSLSocket._create`` takes over the socket's descriptor, then, for a
    socket whose connection was already reset (a server killed with the connection in
    its accept queue), re-raises the ``recv`` error without closing itself: a leaked
    descriptor and a ResourceWarning. The object is still in the traceback's frames.
    """
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        tb = error.__traceback__
        while tb is not None:
            orphan = tb.tb_frame.f_locals.get("self")
            if isinstance(orphan, ssl.SSLSocket):
                orphan.close()
            tb = tb.tb_next
        error = error.__cause__ or error.__context__


def open_tls_stream(
    server: Server,
    context: ssl.SSLContext,
    server_hostname: str | None,
    timeout: float,
    session: ssl.SSLSession | None = None,
    route: Route = DIRECT,
    addresses: list[AddrInfo] | None = None,
    fast_open: bool = False,
) -> SyncStream:
    """Connect to ``server`` and complete the TLS handshake within ``timeout`` seconds.

    ``server_hostname`` is sent as SNI and, if the context checks host names, verified;
    None sends no SNI. ``session`` offers an earlier session of ``context`` for
    resumption. ``route`` says where from and through what (:class:`Route`);
    ``addresses`` are the server's, already resolved (``bootstrap=``), else its name
    is looked up with the system resolver. Several addresses race (RFC 8305).
    ``fast_open`` asks for TCP Fast Open (RFC 7413) where the kernel offers it (not
    through a proxy).
    """
    deadline = connect_deadline(server, timeout)
    if route.proxy is not None:
        return _through_proxy(
            server, context, server_hostname, session, route, addresses, deadline
        )
    infos = addresses if addresses is not None else _resolve(server, timeout)
    return _race(server, context, server_hostname, session, route, infos, deadline, fast_open)


def _handshake(
    sock: socket.socket,
    server: Server,
    context: ssl.SSLContext,
    server_hostname: str | None,
    session: ssl.SSLSession | None,
    deadline: float,
) -> ssl.SSLSocket:
    """The TLS handshake on a connected socket, which it takes over (closed on failure)."""
    try:
        tls = _wrap(sock, server, context, server_hostname, session)
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
    return tls


def _wrap(
    sock: socket.socket,
    server: Server,
    context: ssl.SSLContext,
    server_hostname: str | None,
    session: ssl.SSLSession | None,
) -> ssl.SSLSocket:
    """``sock`` wrapped for TLS, the handshake not started."""
    try:
        with map_io_errors("handshake", server):
            return context.wrap_socket(
                sock,
                server_hostname=server_hostname,
                do_handshake_on_connect=False,
                session=session,
            )
    except BaseException as exc:
        _close_orphaned_ssl_socket(exc)
        raise


def _through_proxy(
    server: Server,
    context: ssl.SSLContext,
    server_hostname: str | None,
    session: ssl.SSLSession | None,
    route: Route,
    addresses: list[AddrInfo] | None,
    deadline: float,
) -> SyncStream:
    """One address after another through the SOCKS5 proxy (which makes the TCP
    connections, so there is nothing to race)."""
    proxy = route.proxy
    assert proxy is not None

    def left() -> float:
        return deadline - time.monotonic()

    if addresses is None and proxy_needs_lookup(server, proxy):
        addresses = _resolve(server, left())
    targets = proxy_targets(server, proxy, addresses)

    errors: list[DoTError] = []
    for target in targets:
        if left() <= 0:
            break
        try:
            sock = _proxy.connect(proxy, server, target, left(), route.source)
        except ConnectError as exc:
            errors.append(exc)
            continue
        set_nodelay(sock)
        stream = SyncStream(
            _handshake(sock, server, context, server_hostname, session, deadline), server
        )
        stream.address = target
        return stream
    raise proxy_failure(server, proxy, errors)


class _Attempt:
    """One connection attempt of a race: a non-blocking TCP connect, then a handshake."""

    def __init__(
        self,
        info: AddrInfo,
        server: Server,
        source: tuple[str, int] | None,
        fast_open: bool = False,
    ) -> None:
        family, self.sockaddr = info
        self.server = server
        self.tls: ssl.SSLSocket | None = None
        self.want_write = True
        # With Fast Open the socket connects through its SSLSocket, in step(): ssl takes
        # a socket that connect() left before its SYN (getpeername() says ENOTCONN) for
        # an unconnected one, on which no handshake can start.
        self.connect_later = False
        sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock = sock
        self.fd = sock.fileno()
        try:
            if prepare_socket(sock, source, fast_open):
                self.connect_later = True
                return
            error = sock.connect_ex(self.sockaddr)
        except OSError as exc:
            sock.close()
            raise self._connect_error(exc.errno or 0, exc) from exc
        if error not in (0, errno.EINPROGRESS, errno.EAGAIN):
            sock.close()
            raise self._connect_error(error)

    def _connect_error(self, code: int, exc: OSError | None = None) -> ConnectError:
        reason = os.strerror(code) if code else str(exc)
        return connect_error(self.server, self.sockaddr[0], reason)

    def step(
        self, context: ssl.SSLContext, server_hostname: str | None, session: ssl.SSLSession | None
    ) -> bool:
        """Go on after the socket became ready; True once the handshake is done."""
        if self.tls is None:
            error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise self._connect_error(error)
            self.tls = _wrap(self.sock, self.server, context, server_hostname, session)
            if self.connect_later:
                self.connect_later = False
                error = self.tls.connect_ex(self.sockaddr)  # returns at once: no SYN yet
                if error not in (0, errno.EINPROGRESS, errno.EAGAIN):
                    raise self._connect_error(error)
                if error:
                    return False  # connecting: ready to write once connected
        # With Fast Open a refused SYN shows up here: the connect failure it is.
        with map_io_errors("handshake", self.server), refused_is_connect(self.server):
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.want_write = False
                return False
            except ssl.SSLWantWriteError:
                self.want_write = True
                return False
        return True

    def close(self) -> None:
        """Abandon the attempt."""
        (self.tls or self.sock).close()


def _race(
    server: Server,
    context: ssl.SSLContext,
    server_hostname: str | None,
    session: ssl.SSLSession | None,
    route: Route,
    addresses: list[AddrInfo],
    deadline: float,
    fast_open: bool = False,
) -> SyncStream:
    """Happy Eyeballs (RFC 8305): attempts started ``route.attempt_delay`` apart (as
    :class:`Race` decides), all driven by one poll; the first handshake wins."""
    infos = ordered_addresses(server, addresses, route)
    race = Race(len(infos), route.attempt_delay, time.monotonic())
    live: dict[int, _Attempt] = {}
    errors: list[DoTError] = []
    try:
        while True:
            now = time.monotonic()
            started = race.due(now)
            while started:
                for index in started:
                    try:
                        live[index] = _Attempt(infos[index], server, route.source, fast_open)
                    except ConnectError as exc:
                        errors.append(exc)
                        race.failed(index, now)
                started = race.due(now)
            handshaking = any(a.tls is not None for a in live.values())
            wait = race_wait(race, server, errors, deadline, now, handshaking)
            for index in _ready(live, wait):
                attempt = live[index]
                try:
                    done = attempt.step(context, server_hostname, session)
                except DoTError as exc:
                    del live[index]
                    attempt.close()
                    errors.append(exc)
                    race.failed(index, time.monotonic())
                    continue
                if done:
                    del live[index]
                    assert attempt.tls is not None
                    stream = SyncStream(attempt.tls, server)
                    stream.address = str(attempt.sockaddr[0])
                    return stream
    finally:
        for attempt in live.values():
            attempt.close()


def _ready(live: dict[int, _Attempt], wait: float) -> list[int]:
    """Wait at most ``wait`` seconds for attempts' sockets; the indices of those ready
    to go on (to write while connecting, or as the handshake wants)."""
    poller = select.poll()
    by_fd: dict[int, int] = {}
    for index, attempt in live.items():
        by_fd[attempt.fd] = index
        poller.register(attempt.fd, select.POLLOUT if attempt.want_write else select.POLLIN)
    return [by_fd[fd] for fd, _ in poller.poll(math.ceil(wait * 1000))]
