"""Blocking backend: socket + ssl, every wait bounded by a timeout."""

from __future__ import annotations

import errno
import heapq
import ipaddress
import math
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .. import _proxy
from .._exceptions import ConnectError, ConnectionLost, DoTError, Timeout, map_io_errors
from .._happy import AddrInfo, Race
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
    "Background",
    "Event",
    "Lock",
    "Mutex",
    "SyncStream",
    "call_later",
    "open_tls_stream",
    "run_workers",
    "sleep",
]

_AddrInfo = AddrInfo
T = TypeVar("T")


class SyncStream:
    """A connected, handshaken TLS socket that threads may share.

    One thread may read while another writes (pipelined queries): the socket is
    non-blocking and every ``ssl`` call happens under one lock, held only for that call,
    never while waiting, because OpenSSL does not allow two threads in one ``SSL``
    object at once. The waiting is done by ``poll`` outside the lock.

    :meth:`close` shuts the socket down at once, which wakes every thread in ``poll``,
    but releases its descriptor only when the last of them has left: a descriptor
    closed under a thread about to poll it could be reused at once by the next
    connection, and the thread would wait on that socket instead (until its timeout).
    """

    def __init__(self, sock: ssl.SSLSocket, server: Server) -> None:
        self._sock = sock
        self._server = server
        self.ssl_object: Any = sock
        self._io = threading.Lock()
        self._closed = False
        # Threads in (or about to enter) poll() on the socket, and whether the
        # descriptor is still to be released when the last one leaves.
        self._polling = 0
        self._release_pending = False
        #: A write stopped inside a TLS record: no other data may follow on it.
        self.torn = False
        #: The address connected to (through a proxy: what the proxy was asked for).
        self.address: str | None = None
        sock.setblocking(False)

    def _wait(self, want_write: bool, deadline: float, phase: str) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            doing = "sending the query to" if phase == "send" else "waiting for the answer from"
            raise Timeout(f"timed out {doing} {self._server}", server=self._server)
        poller = select.poll()
        with self._io:
            self._check_open()
            poller.register(self._sock, select.POLLOUT if want_write else select.POLLIN)
            self._polling += 1
        try:
            poller.poll(left * 1000)
        finally:
            with self._io:
                self._polling -= 1
                if self._release_pending and not self._polling:
                    self._release()

    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Read up to ``max_bytes``; ``b""`` when the peer closed the connection."""
        deadline = time.monotonic() + timeout
        sock = self._sock
        with map_io_errors("receive", self._server):
            quickack(sock)
            want_write: bool | None = None  # None: try a recv before any wait
            while True:
                if want_write is not None:
                    self._wait(want_write, deadline, "receive")
                with self._io:
                    self._check_open()
                    if want_write is None and sock.pending() == 0:
                        # Nothing decrypted and waiting: wait for the socket first
                        # rather than pay for a recv that can only fail.
                        want_write = False
                        continue
                    try:
                        return sock.recv(max_bytes)
                    except ssl.SSLWantReadError:
                        want_write = False
                    except ssl.SSLWantWriteError:
                        want_write = True

    def write(self, data: bytes, timeout: float) -> None:
        """Write all of ``data``. A write that fails after part of it went, or after
        OpenSSL asked to retry (it then holds part of a record and takes only the same
        bytes again), leaves the stream :attr:`torn`."""
        deadline = time.monotonic() + timeout
        sock = self._sock
        view = memoryview(data)
        retried = False
        try:
            with map_io_errors("send", self._server):
                while view:
                    with self._io:
                        self._check_open()
                        try:
                            view = view[sock.send(view) :]
                            continue
                        except ssl.SSLWantWriteError:
                            want_write = True
                        except ssl.SSLWantReadError:
                            want_write = False
                    retried = True
                    self._wait(want_write, deadline, "send")
        except BaseException:
            if retried or len(view) < len(data):
                self.torn = True
            raise

    @property
    def closed(self) -> bool:
        """The connection is closed."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionLost(
                f"the connection to {self._server} was closed", server=self._server
            )

    def usable_here(self) -> bool:
        """Always (threads may share it); for the asyncio backend's twin."""
        return True

    @property
    def flooded(self) -> bool:
        """Never: unread data waits in the kernel; for the asyncio backend's twin."""
        return False

    @property
    def orphaned(self) -> bool:
        """Never; for the asyncio backend's twin."""
        return False

    def release(self) -> None:
        """As :meth:`forget`; for the asyncio backend's twin."""
        self.forget()

    def session_reader(self) -> Callable[[], ssl.SSLSession | None]:
        """A function that reads this connection's TLS session when called, also after
        the connection closed (the ``ssl`` object is kept, not the socket)."""
        sslobj = self._sock._sslobj  # type: ignore[attr-defined]  # close() drops it
        return lambda: sslobj.session if sslobj is not None else None

    def forget(self) -> None:
        """Drop a connection inherited through ``os.fork()``, with no I/O on it (the
        process that made it goes on using it): the descriptor is released, with no
        shutdown and no TLS close_notify. The lock is not taken: a thread of the parent
        may have held it at the fork."""
        self._closed = True
        try:
            self._sock.close()
        except OSError:  # pragma: no cover
            pass

    def close_nowait(self) -> None:
        """Close at once (from a timer); never raises."""
        self.close()

    def close(self) -> None:
        """Close the connection; never raises. A thread waiting on it wakes up."""
        with self._io:
            if self._closed:
                return
            self._closed = True
            try:
                # Wakes a thread in poll() at once, which close() alone does not.
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if self._polling:
                self._release_pending = True  # the last thread to leave poll() does it
            else:
                self._release()

    def _release(self) -> None:
        """Release the descriptor (under the lock, with no thread polling it)."""
        self._release_pending = False
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
    addresses: list[_AddrInfo] | None = None,
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
    if timeout <= 0:
        raise Timeout(f"no time left to connect to {server}", server=server)
    deadline = time.monotonic() + timeout
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
        with map_io_errors("handshake", server):
            tls = context.wrap_socket(
                sock,
                server_hostname=server_hostname,
                do_handshake_on_connect=False,
                session=session,
            )
    except BaseException as exc:
        _close_orphaned_ssl_socket(exc)
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


def _through_proxy(
    server: Server,
    context: ssl.SSLContext,
    server_hostname: str | None,
    session: ssl.SSLSession | None,
    route: Route,
    addresses: list[_AddrInfo] | None,
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
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - a socket the proxy library closed
            pass
        stream = SyncStream(
            _handshake(sock, server, context, server_hostname, session, deadline), server
        )
        stream.address = target
        return stream
    if not errors:
        raise Timeout(f"timed out connecting to {server} through {proxy}", server=server)
    raise race_failure(server, errors)


class _Attempt:
    """One connection attempt of a race: a non-blocking TCP connect, then a handshake."""

    def __init__(
        self,
        info: _AddrInfo,
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
            sock.setblocking(False)
            # Without TCP_NODELAY the query after the handshake waits on Nagle and
            # delayed ACKs (tens of ms per connection).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if source is not None:
                sock.bind(source)
            if fast_open and set_fast_open(sock):
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
        return ConnectError(
            f"cannot connect to {self.server} at {self.sockaddr[0]}: {reason}", server=self.server
        )

    def step(
        self, context: ssl.SSLContext, server_hostname: str | None, session: ssl.SSLSession | None
    ) -> bool:
        """Go on after the socket became ready; True once the handshake is done."""
        if self.tls is None:
            error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise self._connect_error(error)
            try:
                with map_io_errors("handshake", self.server):
                    self.tls = context.wrap_socket(
                        self.sock,
                        server_hostname=server_hostname,
                        do_handshake_on_connect=False,
                        session=session,
                    )
            except BaseException as exc:
                _close_orphaned_ssl_socket(exc)
                raise
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
    addresses: list[_AddrInfo],
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
            if race.exhausted:
                raise race_failure(server, errors)
            left = deadline - now
            if left <= 0:
                raise race_timeout(server, any(a.tls is not None for a in live.values()))
            wake = race.timer()
            wait = left if wake is None else min(left, max(wake - now, 0.0))
            poller = select.poll()
            by_fd: dict[int, int] = {}
            for index, attempt in live.items():
                by_fd[attempt.fd] = index
                poller.register(
                    attempt.fd, select.POLLOUT if attempt.want_write else select.POLLIN
                )
            for fd, _ in poller.poll(math.ceil(wait * 1000)):
                index = by_fd[fd]
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


#: Guards state shared between threads.
Mutex = threading.Lock


class Event:
    """A wake-up call for one waiter: :meth:`set` wakes :meth:`wait` (or makes the next
    one return at once) until :meth:`clear`.

    One waiting thread per event, which alone calls :meth:`wait` and :meth:`clear`;
    :meth:`set` and :meth:`clear` must be called under one lock (the client's mutex),
    as their check-then-act is not atomic. A bare lock held while the event is clear
    does the waking: cheaper than
    ``threading.Event``, whose condition variable costs several lock operations more
    for every answer handed to the thread that asked.
    """

    __slots__ = ("_flag", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()  # held while clear
        self._flag = False

    def set(self) -> None:
        """Wake the waiter."""
        if not self._flag:
            self._flag = True
            self._lock.release()

    def clear(self) -> None:
        """Forget an earlier :meth:`set`."""
        if self._flag:
            self._flag = False
            self._lock.acquire()

    def wait(self, timeout: float) -> bool:
        """Wait until set, at most ``timeout`` seconds; False on timeout."""
        if self._flag:
            return True
        if not self._lock.acquire(timeout=max(timeout, 0)):
            return False
        self._lock.release()
        return True


class Background(Generic[T]):
    """The blocking twin of the asyncio backend's: a thread cannot be cancelled, so
    the work has run (in the caller's thread) by the time this is made."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def result(self, keep: Callable[[], bool], orphan: Callable[[T], None]) -> T:
        """The work's result."""
        return self._value

    def close(self) -> None:
        """Nothing to stop."""


class TimerHandle:
    """What :func:`call_later` returns: :meth:`cancel` stops the call."""

    __slots__ = ("cancelled", "callback", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback: Callable[[], None] | None = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Cancel the call if it has not run. The callback is let go at once: the
        handle stays in the heap until its time, and must not keep a closed client
        (its connections, configuration and SSLContext) alive until then."""
        self.cancelled = True
        self.callback = None

    def __lt__(self, other: TimerHandle) -> bool:
        return self.when < other.when


class _Timers:
    """One daemon thread that runs every client's timers (idle connections closing),
    started on first use, so an idle client costs no thread of its own."""

    def __init__(self) -> None:
        self._heap: list[TimerHandle] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def after_fork(self) -> None:
        """In a child of ``os.fork()``: the thread is gone, its lock may be held, and
        the timers are the parent's (they would close the parent's connections).
        Start afresh; the next timer starts a new thread."""
        self._heap = []
        self._cond = threading.Condition()
        self._thread = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + delay, callback)
        with self._cond:
            heapq.heappush(self._heap, handle)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="dotclient-timers", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return handle

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0].when > time.monotonic():
                    if self._heap:
                        self._cond.wait(self._heap[0].when - time.monotonic())
                    else:
                        self._cond.wait()
                handle = heapq.heappop(self._heap)
            callback = handle.callback
            if not handle.cancelled and callback is not None:
                try:
                    callback()
                except Exception:  # pragma: no cover - a bug; keep the other timers alive
                    import traceback

                    traceback.print_exc()


_timers = _Timers()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_timers.after_fork)


def call_later(delay: float, callback: Callable[[], None]) -> TimerHandle:
    """Run ``callback()`` after ``delay`` seconds, in the shared timer thread."""
    return _timers.call_later(delay, callback)


#: Threads :func:`run_workers` starts at most: enough to keep a connection's pipeline
#: busy, since each thread waits on the server most of the time.
MAX_WORKER_THREADS = 32


def run_workers(count: int, worker: Callable[[], None]) -> None:
    """Run ``count`` copies of ``worker`` concurrently (threads, at most
    :data:`MAX_WORKER_THREADS`) and wait for all."""
    count = min(count, MAX_WORKER_THREADS)
    if count <= 1:
        worker()
        return
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker()
        except BaseException as exc:  # pragma: no cover - workers catch their errors
            errors.append(exc)

    threads = [
        threading.Thread(target=run, name=f"dotclient-worker-{i}", daemon=True)
        for i in range(count - 1)
    ]
    for thread in threads:
        thread.start()
    run()  # the calling thread works too
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def sleep(seconds: float) -> None:
    """Pause this thread."""
    time.sleep(seconds)
