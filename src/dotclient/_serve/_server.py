"""The asyncio shell of ``dotclient serve``: sockets in, one AsyncClient out.

Plain DNS arrives over UDP (a :class:`asyncio.DatagramProtocol`) and TCP (a stream
server; clients may pipeline, RFC 7766 section 6.2.1.1, and get answers in the order
they are ready). Everything the stub decides is in the sans-I/O modules: what a message
is (:mod:`._message`), who may ask (:mod:`._access`), what is cached (:mod:`._cache`).
This module only moves bytes, waits for the upstream client, and drains on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._async.client import AsyncClient
from .._exceptions import DoTError
from ._access import AccessList
from ._cache import Cache, render
from ._message import (
    Query,
    client_view,
    failure_cause,
    finish,
    formerr,
    read_query,
    refused,
    servfail,
)
from ._metrics import Metrics
from ._plain import plain_question, plain_reply

__all__ = ["BindError", "Stub"]

log = logging.getLogger("dotclient.serve")

#: Queries waiting for an upstream answer; past this, UDP queries are dropped (the
#: client retries) rather than letting memory grow without bound.
MAX_PENDING = 10_000
#: Queries one TCP connection may have waiting at once (RFC 7766 section 6.2.1.1).
MAX_PIPELINED = 100
#: TCP connections open at once; past this, new ones are closed at once (RFC 7766
#: section 6.2.2: a server may limit them to protect its resources).
MAX_TCP_CLIENTS = 1000
#: Seconds a TCP connection with nothing in flight stays open (RFC 7766 section 6.2.3).
TCP_IDLE = 10.0
#: How often the upstream servers' health is looked at, for the log and the metrics.
WATCH_INTERVAL = 1.0


class BindError(OSError):
    """A listening address could not be bound (in use, not permitted, not local)."""


class _UDP:
    """A UDP socket read straight from the loop's selector: each wake-up takes every
    datagram waiting (up to a batch), where a DatagramProtocol would take one, so
    under load the loop spends its time answering rather than polling."""

    BATCH = 64

    def __init__(self, stub: Stub, sock: socket.socket) -> None:
        self.stub = stub
        self.sock = sock
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._ready)

    def _ready(self) -> None:
        recvfrom, datagram = self.sock.recvfrom, self.stub._datagram
        for _ in range(self.BATCH):
            try:
                data, addr = recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. an ICMP error about an earlier reply: nothing to do
            datagram(self, data, addr)
            if self.closed:
                return

    def sendto(self, data: bytes, addr: Any) -> None:
        if self.closed:
            return
        try:
            self.sock.sendto(data, addr)
        except OSError:
            pass  # the send buffer is full or the client is gone: UDP, it asks again

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()


class Stub:
    """A stub resolver forwarding every query through ``client`` (which it closes).

    ``cache`` None turns caching off; ``clock`` (seconds, monotonic) is what the cache
    ages answers by.
    """

    def __init__(
        self,
        client: AsyncClient,
        *,
        cache: Cache | None = None,
        access: AccessList | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.cache = cache
        self.access = access or AccessList()
        self.metrics = metrics
        self.clock = clock
        #: The (host, port) pairs listened on, UDP and TCP alike, once started.
        self.addresses: list[tuple[str, int]] = []
        self._udp: list[_UDP] = []
        self._tcp: list[asyncio.AbstractServer] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._draining = False
        self._watcher: asyncio.Task[None] | None = None

    # -- starting and stopping --------------------------------------------------------

    async def start(self, listen: Sequence[tuple[str, int]]) -> None:
        """Listen on UDP and TCP at each (host, port); port 0 picks one free for both.

        May be called again to add addresses; if one cannot be bound, those of this
        call are closed and :class:`BindError` raised, while earlier ones stay open."""
        first = len(self._tcp)
        try:
            for host, port in listen:
                await self._listen(host, port)
        except BaseException:
            added_tcp, added_udp = self._tcp[first:], self._udp[first:]
            del self._tcp[first:], self._udp[first:], self.addresses[first:]
            for protocol in added_udp:
                protocol.close()
            for server in added_tcp:
                server.close()
                await server.wait_closed()
            raise
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _listen(self, host: str, port: int) -> None:
        for _ in range(20 if port == 0 else 1):
            try:
                server = await asyncio.start_server(self._tcp_client, host, port)
            except OSError as exc:
                raise _bind_error(host, port, exc) from None
            bound = server.sockets[0].getsockname()[1]
            try:
                protocol = _UDP(self, _udp_socket(host, bound))
            except OSError as exc:
                server.close()
                await server.wait_closed()
                if port == 0 and exc.errno == errno.EADDRINUSE:
                    continue  # the TCP port was free, not the UDP one: another pair
                raise _bind_error(host, port, exc) from None
            self._tcp.append(server)
            self._udp.append(protocol)
            self.addresses.append((host, bound))
            return
        raise BindError(errno.EADDRINUSE, f"no port free for both UDP and TCP on {host}")

    async def drain(self, timeout: float) -> None:
        """Stop taking queries, answer those under way (for at most ``timeout`` s),
        then close every socket and the client."""
        self._draining = True
        for server in self._tcp:
            server.close()
        pending = set(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        await self.aclose()

    async def aclose(self) -> None:
        """Close every socket and the client now."""
        self._draining = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._writers):
            writer.close()
        # After the connections: since Python 3.12, wait_closed() waits for them too.
        await self._close_listeners()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        await self.client.aclose()
        if self.metrics is not None:
            self.metrics.stop()

    async def _close_listeners(self) -> None:
        for server in self._tcp:
            server.close()
            await server.wait_closed()
        self._tcp.clear()
        for protocol in self._udp:
            protocol.close()
        self._udp.clear()

    # -- answering ---------------------------------------------------------------------

    def _quick(self, wire: bytes, udp: bool) -> bytes | Query | None:
        """What can be answered at once (garbage, a cache hit), else the query."""
        parsed = read_query(wire)
        metrics = self.metrics
        if not isinstance(parsed, Query):
            if metrics is not None:
                metrics.malformed.inc()
            return parsed
        if metrics is not None:
            metrics.queries.labels("udp" if udp else "tcp").inc()
        cache = self.cache
        if cache is not None:
            hit = cache.get(parsed.key, self.clock(), parsed.edns)
            if hit is not None:
                if metrics is not None:
                    metrics.cache_hits.inc()
                return finish(hit, parsed, udp=udp)
        if metrics is not None:
            metrics.cache_misses.inc()
        return parsed

    async def _forward(self, query: Query, udp: bool) -> bytes:
        """The reply to ``query`` from upstream: the answer, or SERVFAIL saying why not.

        A plain query takes the lean path (:mod:`._plain`): asked with ``resolve()``,
        answered from bytes (the cache, when on, still parses the answer for its TTLs);
        other queries go with their own bits and options through ``query(message)``."""
        question = plain_question(query)
        message = None
        if question is None:
            try:
                message = query.message
            except Exception:  # read from its bytes, and yet dnspython will not have it
                return formerr(query.wire)
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight.inc()
        try:
            if message is None:
                assert question is not None
                response = await self.client.resolve(*question, dnssec=query.do)
            else:
                response = await self.client.query(message)
        except DoTError as exc:
            return servfail(query, *failure_cause(exc))
        except ValueError as exc:  # the query cannot be rendered again (e.g. too big)
            return servfail(query, 0, f"cannot forward this query: {exc}")
        finally:
            if metrics is not None:
                metrics.in_flight.dec()
        if metrics is not None:
            metrics.latency.observe(response.elapsed)
        cache = self.cache
        wire = None if question is None else plain_reply(response.wire, query.edns)
        if wire is None or cache is not None:
            message = client_view(response.message)
            if wire is None:
                wire = render(message, 0, query.edns)
            if cache is not None:
                cache.put(query.key, message, self.clock(), wire, query.edns)
        return finish(wire, query, udp=udp)

    def _count(self, reply: bytes) -> None:
        if self.metrics is not None and len(reply) >= 4:
            self.metrics.responses.labels(str(reply[3] & 0xF)).inc()

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- UDP ---------------------------------------------------------------------------

    def _datagram(self, transport: _UDP, data: bytes, addr: Any) -> None:
        if self._draining:
            return
        if not self.access.allows(addr[0]):
            reply = refused(data)
            if self.metrics is not None:
                self.metrics.refused.inc()
        elif len(self._tasks) >= MAX_PENDING:
            return  # overloaded: the client will ask again
        else:
            result = self._quick(data, True)
            if isinstance(result, Query):
                self._spawn(self._udp_forward(transport, result, addr))
                return
            reply = result
        if reply is not None:
            self._count(reply)
            transport.sendto(reply, addr)

    async def _udp_forward(self, transport: _UDP, query: Query, addr: Any) -> None:
        reply = await self._forward(query, True)
        self._count(reply)
        transport.sendto(reply, addr)

    # -- TCP ---------------------------------------------------------------------------

    async def _tcp_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.add(writer)
        try:
            peer = writer.get_extra_info("peername")
            if self._draining or not peer or not self.access.allows(peer[0]):
                if self.metrics is not None:
                    self.metrics.refused.inc()
                return  # closed without a word: not a client of ours
            if len(self._writers) > MAX_TCP_CLIENTS:
                return  # too many open: this client may come back, or use UDP
            await self._tcp_queries(reader, writer)
        except (ConnectionError, OSError):
            pass  # the client went away
        finally:
            self._writers.discard(writer)
            self._handlers.discard(handler)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _tcp_queries(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        waiting: set[asyncio.Task[None]] = set()
        while not self._draining:
            try:
                # A connection gets TCP_IDLE seconds for its next query; one with
                # answers still to come stays open until they are written.
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                (length,) = struct.unpack("!H", head)
                data = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE)
            except asyncio.TimeoutError:
                if waiting:
                    continue
                break
            except asyncio.IncompleteReadError:
                break  # the client closed (perhaps mid-message)
            if self._draining:
                break
            result = self._quick(data, False)
            if isinstance(result, Query):
                task = asyncio.get_running_loop().create_task(self._tcp_forward(writer, result))
                waiting.add(task)
                task.add_done_callback(waiting.discard)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                if len(waiting) >= MAX_PIPELINED:
                    await asyncio.wait(set(waiting), return_when=asyncio.FIRST_COMPLETED)
            elif result is not None:
                self._count(result)
                writer.write(struct.pack("!H", len(result)) + result)
            else:
                break  # a response or a runt where a query belongs: not a DNS client
        if waiting:
            await asyncio.wait(set(waiting))
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()

    async def _tcp_forward(self, writer: asyncio.StreamWriter, query: Query) -> None:
        reply = await self._forward(query, False)
        self._count(reply)
        if not writer.is_closing():
            writer.write(struct.pack("!H", len(reply)) + reply)

    # -- upstream health ---------------------------------------------------------------

    async def _watch(self) -> None:
        """Log each upstream failure and recovery once, not once per query, and count
        the failures for the metrics."""
        failures: dict[int, int] = {}
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            for index, state in enumerate(self.client.stats.servers):
                before = failures.get(index, 0)
                now = state.failures
                if now == before:
                    continue
                failures[index] = now
                if now > before and self.metrics is not None:
                    self.metrics.failures.labels(str(state.server)).inc(now - before)
                if before == 0 and now > 0:
                    log.warning("upstream %s failed: %s", state.server, state.last_error)
                elif now == 0:
                    log.warning("upstream %s answers again", state.server)


def _udp_socket(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_error(host: str, port: int, exc: OSError) -> BindError:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    hint = ""
    if exc.errno in (errno.EACCES, errno.EADDRINUSE, errno.EPERM):
        hint = (
            " (a port below 1024 needs root or CAP_NET_BIND_SERVICE, and a free one:"
            " try --listen 127.0.0.1:5300)"
        )
    return BindError(exc.errno or 0, f"cannot listen on {where}: {exc.strerror or exc}{hint}")


def family_missing(exc: OSError) -> bool:
    """Whether binding failed because the address family or address is unavailable
    (e.g. no IPv6 on this machine), not because of the port."""
    return exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL) or isinstance(
        exc, socket.gaierror
    )
