"""asyncio backend, the connection set-up: the lookup, the Happy Eyeballs race (RFC 8305)
or the SOCKS5 proxy, then the TLS handshake, all within one deadline.

The decisions are not made here: :class:`~dotclient._happy.Race` says when to start
each attempt, and the helpers of ``_backends/__init__.py`` shape sockets and errors
the same way for both backends.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Coroutine
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
    quickack,
    race_timeout,
    race_wait,
    refused_is_connect,
    set_nodelay,
)
from ._async_stream import AsyncStream, StreamProtocol

__all__ = ["open_tls_stream"]


async def open_tls_stream(
    server: Server,
    context: ssl.SSLContext,
    server_hostname: str | None,
    timeout: float,
    session: ssl.SSLSession | None = None,
    route: Route = DIRECT,
    addresses: list[AddrInfo] | None = None,
    fast_open: bool = False,
) -> AsyncStream:
    """Connect to ``server`` and complete the TLS handshake within ``timeout`` seconds.

    ``server_hostname`` is sent as SNI and, if the context checks host names, verified;
    None sends no SNI. ``session`` offers an earlier session of ``context`` for
    resumption: asyncio has no parameter for it, so asyncio is handed a stand-in for
    the context whose ``wrap_bio`` adds it (the context itself is shared by clients
    that may connect at the same time, and is left alone).
    ``route`` says where from and through what (:class:`Route`); ``addresses`` are the
    server's, already resolved (``bootstrap=``), else its name is looked up with the
    system resolver. Several addresses race (RFC 8305). ``fast_open`` asks for TCP Fast
    Open (RFC 7413) where the kernel offers it (not through a proxy).
    """
    deadline = connect_deadline(server, timeout)
    offered: Any = context if session is None else _WithSession(context, session)
    if route.proxy is not None:
        return await _through_proxy(server, offered, server_hostname, route, addresses, deadline)
    if addresses is None:
        addresses = await _resolve(server, timeout)
    return await _race(server, offered, server_hostname, route, addresses, deadline, fast_open)


async def _resolve(server: Server, timeout: float) -> list[AddrInfo]:
    """The system resolver's addresses for the server (its IP, if it is one)."""
    literal = literal_address(server)
    if literal is not None:
        return literal
    loop = asyncio.get_running_loop()
    with map_io_errors("resolve", server):
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM), timeout
            )
        except asyncio.TimeoutError:
            raise Timeout(f"timed out looking up {server.host}", server=server) from None
    return found_addresses(server, infos)


async def _handshake(
    sock: socket.socket,
    server: Server,
    context: ssl.SSLContext,
    server_hostname: str | None,
    deadline: float,
) -> AsyncStream:
    """The TLS handshake on a connected socket, which it takes over (closed on failure)."""
    loop = asyncio.get_running_loop()
    left = deadline - time.monotonic()
    connecting: asyncio.Task[tuple[asyncio.Transport, StreamProtocol]] | None = None
    try:
        if left <= 0:
            raise Timeout(f"timed out before the TLS handshake with {server}", server=server)
        connecting = asyncio.ensure_future(
            loop.create_connection(
                StreamProtocol,
                sock=sock,
                ssl=context,
                # asyncio takes "" to mean: no SNI, no host name check.
                server_hostname=server_hostname if server_hostname is not None else "",
                ssl_handshake_timeout=left,
            )
        )
        # With Fast Open, connect() returned before the SYN went out: a refusal shows up
        # here, and is the connect failure it is.
        with map_io_errors("handshake", server), refused_is_connect(server):
            transport, protocol = await asyncio.wait_for(connecting, left)
    except BaseException:
        _close_unclaimed(connecting)
        sock.close()
        raise
    assert isinstance(transport, asyncio.Transport)
    stream = AsyncStream(transport, protocol, server)
    # The server's TLS 1.3 session tickets arrived during the handshake, where no
    # read() set the quick-ACK mode: acknowledge them now (see quickack()).
    quickack(transport.get_extra_info("socket"))
    return stream


def _close_unclaimed(
    connecting: asyncio.Task[tuple[asyncio.Transport, StreamProtocol]] | None,
) -> None:
    """Abort the transport of a handshake that finished just as its caller gave up
    (cancelled: a race another attempt won). Python 3.10's ``wait_for`` then raises
    CancelledError and drops the result, and the transport, never closed, warned
    "unclosed transport" when collected (ResourceWarning, in a later test of CI)."""
    if connecting is not None and connecting.done() and not connecting.cancelled():
        if connecting.exception() is None:
            connecting.result()[0].abort()


async def _attempt(
    info: AddrInfo,
    server: Server,
    context: ssl.SSLContext,
    server_hostname: str | None,
    source: tuple[str, int] | None,
    deadline: float,
    handshaking: list[bool],
    fast_open: bool = False,
) -> AsyncStream:
    """One connection attempt of a race: TCP connect, then the TLS handshake (which
    it notes in ``handshaking``, for the message of a timeout)."""
    family, sockaddr = info
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        prepare_socket(sock, source, fast_open)
        connect = asyncio.get_running_loop().sock_connect(sock, sockaddr)
        await asyncio.wait_for(connect, deadline - time.monotonic())
    except asyncio.TimeoutError:
        sock.close()
        raise race_timeout(server, False) from None
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise connect_error(server, sockaddr[0], reason) from exc
    except BaseException:
        sock.close()
        raise
    handshaking.append(True)
    stream = await _handshake(sock, server, context, server_hostname, deadline)
    stream.address = str(sockaddr[0])
    return stream


async def _race(
    server: Server,
    context: ssl.SSLContext,
    server_hostname: str | None,
    route: Route,
    addresses: list[AddrInfo],
    deadline: float,
    fast_open: bool = False,
) -> AsyncStream:
    """Happy Eyeballs (RFC 8305): attempts (tasks) started ``route.attempt_delay``
    apart, as :class:`Race` decides; the first handshake wins, the others are closed."""
    infos = ordered_addresses(server, addresses, route)
    handshaking: list[bool] = []

    def attempt(index: int) -> Coroutine[Any, Any, AsyncStream]:
        return _attempt(
            infos[index],
            server,
            context,
            server_hostname,
            route.source,
            deadline,
            handshaking,
            fast_open,
        )

    if len(infos) == 1:  # nothing to race: no task, and no loop turn, to pay for
        return await attempt(0)
    loop = asyncio.get_running_loop()
    race = Race(len(infos), route.attempt_delay, time.monotonic())
    tasks: dict[asyncio.Task[AsyncStream], int] = {}
    errors: list[DoTError] = []
    try:
        while True:
            now = time.monotonic()
            for index in race.due(now):
                tasks[loop.create_task(attempt(index))] = index
            wait = race_wait(race, server, errors, deadline, now, bool(handshaking))
            done, _ = await asyncio.wait(tasks, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            winner = _finished(done, tasks, race, errors)
            if winner is not None:
                return winner
    finally:
        await _cancel(tasks)


def _finished(
    done: set[asyncio.Task[AsyncStream]],
    tasks: dict[asyncio.Task[AsyncStream], int],
    race: Race,
    errors: list[DoTError],
) -> AsyncStream | None:
    """Take the attempts that ended out of ``tasks``: the first stream is the winner
    (any other is closed), a failure is noted in ``errors`` and told to ``race``; an
    exception that is no DoTError is a bug, raised with no stream kept."""
    winner: AsyncStream | None = None
    unexpected: BaseException | None = None
    for task in done:
        index = tasks.pop(task)
        exc = task.exception()
        if exc is None:
            if winner is None:
                winner = task.result()
            else:
                task.result().abort()
        elif isinstance(exc, DoTError):
            errors.append(exc)
            race.failed(index, time.monotonic())
        else:
            unexpected = exc
    if unexpected is not None:
        if winner is not None:
            winner.abort()
        raise unexpected
    return winner


async def _cancel(tasks: dict[asyncio.Task[AsyncStream], int]) -> None:
    """Cancel the attempts still running, and close any that won meanwhile."""
    for task in tasks:
        task.cancel()
    if tasks:
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, AsyncStream):
                outcome.abort()


async def _through_proxy(
    server: Server,
    context: ssl.SSLContext,
    server_hostname: str | None,
    route: Route,
    addresses: list[AddrInfo] | None,
    deadline: float,
) -> AsyncStream:
    """One address after another through the SOCKS5 proxy (which makes the TCP
    connections, so there is nothing to race)."""
    proxy = route.proxy
    assert proxy is not None
    if addresses is None and proxy_needs_lookup(server, proxy):
        addresses = await _resolve(server, deadline - time.monotonic())
    errors: list[DoTError] = []
    for target in proxy_targets(server, proxy, addresses):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            sock = await _proxy.aconnect(proxy, server, target, left, route.source)
        except ConnectError as exc:
            errors.append(exc)
            continue
        set_nodelay(sock)
        stream = await _handshake(sock, server, context, server_hostname, deadline)
        stream.address = target
        return stream
    raise proxy_failure(server, proxy, errors)


class _WithSession:
    """An SSLContext, but every SSLObject it makes offers ``session`` (asyncio's
    TLS layer only calls ``wrap_bio`` on the context it is given)."""

    def __init__(self, context: ssl.SSLContext, session: ssl.SSLSession) -> None:
        self._context = context
        self._session = session

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        kwargs["session"] = self._session
        return self._context.wrap_bio(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)
