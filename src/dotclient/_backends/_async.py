"""asyncio backend: a TLS stream on a small asyncio protocol, every wait bounded.

The stream is pull-based (``read``/``write``), like the blocking one, so the client code
is written once. It is built on :class:`asyncio.Protocol` rather than asyncio's streams:
a read that finds data already buffered returns without creating a task or a timer,
which matters when many pipelined answers arrive in one segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from .. import _proxy
from .._exceptions import ConnectError, DoTError, Timeout, map_io_errors
from .._happy import AddrInfo, Race, family_of
from .._route import DIRECT, Route
from .._server import Server
from . import fast_open as set_fast_open
from . import (
    ordered_addresses,
    proxy_needs_lookup,
    proxy_targets,
    quickack,
    race_failure,
    race_timeout,
    refused_is_connect,
)

__all__ = [
    "AsyncLock",
    "AsyncStream",
    "Background",
    "Event",
    "Mutex",
    "call_later",
    "open_tls_stream",
    "run_workers",
    "sleep",
]

T = TypeVar("T")

# Python 3.11's TLS transport encrypts each item of writelines() as its own record and
# sends them in one system call; 3.10's joins the items into one record first.
_WRITELINES_KEEPS_RECORDS = sys.version_info >= (3, 11)
# How long closing may wait for the peer's close_notify before the transport is aborted.
_CLOSE_TIMEOUT = 1.0
# Octets received and not read yet above which the transport stops reading (the rest
# waits in the kernel, and then at the server), and below which it reads again: a peer
# streaming data nobody reads cannot make the buffer grow without bound.
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


async def _wait(future: asyncio.Future[bool], timeout: float) -> bool:
    """Wait for ``future`` (set to True by the waker) at most ``timeout`` seconds.

    A timer that resolves the future with False costs far less than ``wait_for``,
    which wraps every wait in a new task before Python 3.12.
    """
    handle = asyncio.get_running_loop().call_later(max(timeout, 0), _expire, future)
    try:
        return await future
    finally:
        handle.cancel()


class _StreamProtocol(asyncio.Protocol):
    """Collects what the transport delivers until the stream reads it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.socket: Any = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.reader: asyncio.Future[bool] | None = None
        self.paused = False
        #: Reading is paused: the buffer is above _HIGH_WATER (see data_received).
        self.reading_paused = False
        self.writers: list[asyncio.Future[bool]] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.socket = transport.get_extra_info("socket")

    def _wake_reader(self) -> None:
        reader, self.reader = self.reader, None
        if reader is not None and not reader.done():
            reader.set_result(True)

    def _wake_writers(self) -> None:
        writers, self.writers = self.writers, []
        for writer in writers:
            if not writer.done():
                writer.set_result(True)

    def data_received(self, data: bytes) -> None:
        # Acknowledge at once, every time: a server that does not set TCP_NODELAY
        # holds each further answer until our ACK, and a delayed one takes ~40 ms.
        quickack(self.socket)
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and not self.reading_paused:
            assert self.transport is not None
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        self._wake_writers()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_writers()


class AsyncStream:
    """A connected, handshaken TLS stream."""

    def __init__(self, transport: asyncio.Transport, protocol: _StreamProtocol, server: Server):
        self._transport = transport
        self._protocol = protocol
        self._server = server
        self.ssl_object: Any = transport.get_extra_info("ssl_object")
        self._socket: Any = transport.get_extra_info("socket")
        self._pending: list[bytes] = []
        #: Never: writes are queued whole (the blocking twin's may stop in a record).
        self.torn = False
        #: The address connected to (through a proxy: what the proxy was asked for).
        self.address: str | None = None
        #: The event loop the connection belongs to: it alone may do its I/O.
        self._loop = asyncio.get_running_loop()

    def usable_here(self) -> bool:
        """The running event loop is the one this connection belongs to."""
        return asyncio.get_running_loop() is self._loop

    @property
    def flooded(self) -> bool:
        """More than the high-water mark came and waits unread (reading is paused)."""
        return self._protocol.reading_paused

    @property
    def orphaned(self) -> bool:
        """The event loop this connection belongs to is closed: no I/O can be done on
        it any more, only :meth:`release`."""
        return self._loop.is_closed()

    def release(self) -> None:
        """Let go of a connection whose event loop is closed, with no I/O: its socket
        is closed and its transports are marked closed (asyncio has no public way to
        do it without running the loop, whence the guarded private calls)."""
        # Each call marks the transport closed, then fails ("Event loop is closed")
        # where it would schedule I/O; close() first, as 3.10's abort() fails before.
        with contextlib.suppress(RuntimeError):
            self._transport.close()
        with contextlib.suppress(RuntimeError):
            self._transport.abort()
        inner = getattr(getattr(self._transport, "_ssl_protocol", None), "_transport", None)
        lost = getattr(inner, "_call_connection_lost", None)
        if lost is not None:
            with contextlib.suppress(RuntimeError):
                lost(None)  # closes the socket, then fails to schedule the callbacks
        self.forget()

    async def read(self, max_bytes: int, timeout: float) -> bytes:
        """Read up to ``max_bytes``; ``b""`` when the peer closed the connection."""
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            quickack(self._socket)
            future = asyncio.get_running_loop().create_future()
            protocol.reader = future
            if not await _wait(future, timeout):
                protocol.reader = None
                raise Timeout(
                    f"timed out waiting for the answer from {self._server}", server=self._server
                )
        buffer = protocol.buffer
        if buffer:
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
            if protocol.reading_paused and len(buffer) <= _LOW_WATER:
                protocol.reading_paused = False
                if not self._transport.is_closing():
                    self._transport.resume_reading()
            return data
        if protocol.error is not None:
            with map_io_errors("receive", self._server):
                raise protocol.error
        return b""

    async def write(self, data: bytes, timeout: float) -> None:
        """Write all of ``data``, waiting (bounded) while the transport's buffer is full.

        Writes made in the same turn of the event loop go out together, in one system
        call: pipelined queries from many tasks cost one send. Each stays its own TLS
        record, because some servers (dnsdist 1.7 by default) read one query per record
        and never see the rest of a record holding several.
        """
        protocol = self._protocol
        if protocol.error is not None or self._transport.is_closing():
            # Entered only on failure: a generator context manager per query cost ~8%
            # of the client's CPU at 100 in flight (issue 13's profile).
            with map_io_errors("send", self._server):
                if protocol.error is not None:
                    raise protocol.error
                raise ConnectionResetError("the connection is closed")
        self._pending.append(data)
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        if protocol.paused:
            future = asyncio.get_running_loop().create_future()
            protocol.writers.append(future)
            if not await _wait(future, timeout):
                raise Timeout(
                    f"timed out sending the query to {self._server}", server=self._server
                )

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        transport = self._transport
        if transport.is_closing():
            return
        if _WRITELINES_KEEPS_RECORDS:
            transport.writelines(pending)
        else:
            for data in pending:
                transport.write(data)

    @property
    def closed(self) -> bool:
        """The connection is closed and its transport released."""
        return self._protocol.closed.done()

    def close_nowait(self) -> None:
        """Start a graceful close without waiting for it; never raises. The transport
        is aborted if the peer has not finished the close a second later, and
        :meth:`aclose` still waits for the close to be done."""
        transport = self._transport
        if not self.usable_here():  # another loop's: never touch it from here
            if self.orphaned:
                self.release()
            else:
                self._loop.call_soon_threadsafe(self.close_nowait)
            return
        if not transport.is_closing():
            transport.close()
            asyncio.get_running_loop().call_later(_CLOSE_TIMEOUT, self._abort_if_open)

    def session_reader(self) -> Callable[[], ssl.SSLSession | None]:
        """A function that reads this connection's TLS session when called, also after
        the connection closed."""
        ssl_object = self.ssl_object
        return lambda: ssl_object.session

    def forget(self) -> None:
        """Drop a connection inherited through ``os.fork()``, with no I/O on it (the
        process that made it goes on using it): the descriptor is released, with no
        TLS close_notify; the parent's event loop is not run here."""
        sock = getattr(self._socket, "_sock", None)  # asyncio's TransportSocket wraps it
        if sock is not None:
            try:
                sock.close()
            except OSError:  # pragma: no cover
                pass

    def _abort_if_open(self) -> None:
        if not self._protocol.closed.done():
            self._transport.abort()

    async def aclose(self) -> None:
        """Close the connection; never raises, never waits more than a second. From
        another event loop than its own, the close is left to its loop (or, if that is
        closed, the connection released), and not waited for."""
        transport = self._transport
        if not self.usable_here():
            self.close_nowait()
            return
        if not transport.is_closing():
            transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._protocol.closed), _CLOSE_TIMEOUT)
        except asyncio.CancelledError:
            transport.abort()
            raise
        except Exception:  # a peer that never sends close_notify, or resets
            transport.abort()


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
    if timeout <= 0:
        raise Timeout(f"no time left to connect to {server}", server=server)
    deadline = time.monotonic() + timeout
    offered: Any = context if session is None else _WithSession(context, session)
    if route.proxy is not None:
        return await _through_proxy(server, offered, server_hostname, route, addresses, deadline)
    if addresses is None:
        addresses = await _resolve(server, timeout)
    return await _race(server, offered, server_hostname, route, addresses, deadline, fast_open)


async def _resolve(server: Server, timeout: float) -> list[AddrInfo]:
    """The system resolver's addresses for the server (its IP, if it is one)."""
    if server.is_ip:
        return [(family_of(server.host), (server.host, server.port))]
    loop = asyncio.get_running_loop()
    with map_io_errors("resolve", server):
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM), timeout
            )
        except asyncio.TimeoutError:
            raise Timeout(f"timed out looking up {server.host}", server=server) from None
    if not infos:
        raise ConnectError(f"{server.host} has no address", server=server)
    return [(info[0], info[4]) for info in infos]


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
    try:
        if left <= 0:
            raise Timeout(f"timed out before the TLS handshake with {server}", server=server)
        # With Fast Open, connect() returned before the SYN went out: a refusal shows up
        # here, and is the connect failure it is.
        with map_io_errors("handshake", server), refused_is_connect(server):
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(
                    _StreamProtocol,
                    sock=sock,
                    ssl=context,
                    # asyncio takes "" to mean: no SNI, no host name check.
                    server_hostname=server_hostname if server_hostname is not None else "",
                    ssl_handshake_timeout=left,
                ),
                left,
            )
    except BaseException:
        sock.close()
        raise
    assert isinstance(transport, asyncio.Transport)
    stream = AsyncStream(transport, protocol, server)
    # The server's TLS 1.3 session tickets arrived during the handshake, where no
    # read() set the quick-ACK mode: acknowledge them now (see quickack()).
    quickack(stream._socket)
    return stream


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
        sock.setblocking(False)
        # Without TCP_NODELAY the query after the handshake waits on Nagle and
        # delayed ACKs (tens of ms per connection).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            sock.bind(source)
        if fast_open:
            # The ClientHello the handshake writes next goes in the SYN (with a cookie).
            set_fast_open(sock)
        connect = asyncio.get_running_loop().sock_connect(sock, sockaddr)
        await asyncio.wait_for(connect, deadline - time.monotonic())
    except asyncio.TimeoutError:
        sock.close()
        raise race_timeout(server, False) from None
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectError(
            f"cannot connect to {server} at {sockaddr[0]}: {reason}", server=server
        ) from exc
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
    if len(infos) == 1:  # nothing to race: no task, and no loop turn, to pay for
        return await _attempt(
            infos[0],
            server,
            context,
            server_hostname,
            route.source,
            deadline,
            handshaking,
            fast_open,
        )
    loop = asyncio.get_running_loop()
    race = Race(len(infos), route.attempt_delay, time.monotonic())
    tasks: dict[asyncio.Task[AsyncStream], int] = {}
    errors: list[DoTError] = []
    try:
        while True:
            now = time.monotonic()
            for index in race.due(now):
                coro = _attempt(
                    infos[index],
                    server,
                    context,
                    server_hostname,
                    route.source,
                    deadline,
                    handshaking,
                    fast_open,
                )
                tasks[loop.create_task(coro)] = index
            if race.exhausted:
                raise race_failure(server, errors)
            left = deadline - now
            if left <= 0:
                raise race_timeout(server, bool(handshaking))
            wake = race.timer()
            wait = left if wake is None else min(left, max(wake - now, 0.0))
            done, _ = await asyncio.wait(tasks, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            winner: AsyncStream | None = None
            unexpected: BaseException | None = None
            for task in done:
                index = tasks.pop(task)
                exc = task.exception()
                if exc is None:
                    if winner is None:
                        winner = task.result()
                    else:
                        task.result()._transport.abort()
                elif isinstance(exc, DoTError):
                    errors.append(exc)
                    race.failed(index, time.monotonic())
                else:
                    unexpected = exc
            if unexpected is not None:  # a bug, not a network failure: no stream kept
                if winner is not None:
                    winner._transport.abort()
                raise unexpected
            if winner is not None:
                return winner
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(outcome, AsyncStream):
                    outcome._transport.abort()


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
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - a socket the proxy library closed
            pass
        stream = await _handshake(sock, server, context, server_hostname, deadline)
        stream.address = target
        return stream
    if not errors:
        raise Timeout(f"timed out connecting to {server} through {proxy}", server=server)
    raise race_failure(server, errors)


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


class AsyncLock:
    """A lock whose acquisition is bounded by a timeout."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def acquire(self, timeout: float) -> bool:
        """Acquire within ``timeout`` seconds; False if that was not possible."""
        if not self._lock.locked():
            await self._lock.acquire()  # free: returns at once
            return True
        try:
            await asyncio.wait_for(self._lock.acquire(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def release(self) -> None:
        """Release the lock."""
        self._lock.release()


class Mutex:
    """Guards state shared between threads; a no-op here, where one thread runs."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


class Event:
    """A wake-up call for one waiter: :meth:`set` wakes :meth:`wait` (or makes the next
    one return at once) until :meth:`clear`."""

    __slots__ = ("_flag", "_future")

    def __init__(self) -> None:
        self._flag = False
        self._future: asyncio.Future[bool] | None = None

    def set(self) -> None:
        """Wake the waiter."""
        self._flag = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(True)

    def clear(self) -> None:
        """Forget an earlier :meth:`set`."""
        self._flag = False

    async def wait(self, timeout: float) -> bool:
        """Wait until set, at most ``timeout`` seconds; False on timeout."""
        if self._flag:
            return True
        self._future = asyncio.get_running_loop().create_future()
        try:
            return await _wait(self._future, timeout)
        finally:
            self._future = None


class Background(Generic[T]):
    """Work started by one caller for several (a connect the pool's other callers wait
    on): it runs in a task of its own, so cancelling the caller that started it does
    not cancel it for the others."""

    __slots__ = ("_orphaned", "_task")

    def __init__(self, work: Coroutine[Any, Any, T]) -> None:
        self._task = asyncio.ensure_future(work)
        self._orphaned = False

    async def result(self, keep: Callable[[], bool], orphan: Callable[[T], None]) -> T:
        """The work's result. If the caller is cancelled meanwhile, the work runs on
        when ``keep()`` says others wait for it, and its result goes to ``orphan``
        (a failure is dropped: the work cleans up after itself); else it is
        cancelled too."""
        task = self._task
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self._orphaned = True
            if not task.done() and not keep():
                task.cancel()
            task.add_done_callback(lambda done: _adopt(done, orphan))
            raise

    async def aclose(self) -> None:
        """Cancel the work if its caller left and it still runs, and wait for it."""
        task = self._task
        if self._orphaned and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            await asyncio.wait([task])


def _adopt(task: asyncio.Task[T], orphan: Callable[[T], None]) -> None:
    if not task.cancelled() and task.exception() is None:  # retrieves a failure
        orphan(task.result())


class TimerHandle:
    """What :func:`call_later` returns: :meth:`cancel` stops the call."""

    def __init__(self, handle: asyncio.TimerHandle) -> None:
        self._handle = handle

    def cancel(self) -> None:
        """Cancel the call if it has not run."""
        self._handle.cancel()


def call_later(delay: float, callback: Callable[[], None]) -> TimerHandle:
    """Run ``callback()`` after ``delay`` seconds on the running event loop."""
    return TimerHandle(asyncio.get_running_loop().call_later(delay, callback))


async def run_workers(count: int, worker: Callable[[], Awaitable[None]]) -> None:
    """Run ``count`` copies of ``worker`` concurrently (tasks) and wait for all."""
    if count <= 1:
        await worker()
        return
    await asyncio.gather(*(worker() for _ in range(count)))


async def sleep(seconds: float) -> None:
    """Pause this task."""
    await asyncio.sleep(seconds)
