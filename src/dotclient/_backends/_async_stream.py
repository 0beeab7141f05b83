"""asyncio backend, the stream: a TLS stream on a small asyncio protocol, every wait
bounded.

The stream is pull-based (``read``/``write``), like the blocking one, so the client code
is written once. It is built on :class:`asyncio.Protocol` rather than asyncio's streams:
a read that finds data already buffered returns without creating a task or a timer,
which matters when many pipelined answers arrive in one segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
from collections.abc import Callable
from typing import Any

from .._exceptions import Timeout, map_io_errors
from .._server import Server
from . import quickack

__all__ = ["AsyncStream", "StreamProtocol", "expire_future", "wait_future", "watch_raw_reads"]
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


def expire_future(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


async def wait_future(future: asyncio.Future[bool], timeout: float) -> bool:
    """Wait for ``future`` (set to True by the waker) at most ``timeout`` seconds.

    A timer that resolves the future with False costs far less than ``wait_for``,
    which wraps every wait in a new task before Python 3.12.
    """
    handle = asyncio.get_running_loop().call_later(max(timeout, 0), expire_future, future)
    try:
        return await future
    finally:
        handle.cancel()


class StreamProtocol(asyncio.Protocol):
    """Collects what the transport delivers until the stream reads it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.socket: Any = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.reader: asyncio.Future[bool] | None = None
        #: Data came that no write of ours acknowledged since (see quickack()).
        #: Records without data (TLS 1.3 tickets) are seen by watch_raw_reads().
        self.unacked = True
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
        # Acknowledged by our next write, or before the next wait (see quickack()).
        self.unacked = True
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


def watch_raw_reads(transport: asyncio.BaseTransport, protocol: StreamProtocol) -> bool:
    """Quick-ACK a read of the socket that brings no data for a waiting reader.

    TLS records that carry no application data (the server's TLS 1.3 session tickets,
    which usually come after our first query has gone out; the first part of a split
    record) never reach :meth:`StreamProtocol.data_received`, so nothing would
    acknowledge them before our delayed ACK fires, and a server without TCP_NODELAY
    holds the answer behind them until then: ~40 ms on about one new connection in ten
    to Debian's unbound. asyncio's TLS layer (``SSLProtocol``, private) reads the socket
    through ``buffer_updated`` (``data_received`` before 3.11); wrapped here, a read
    after which a reader still waits asks for the ACK at once, when the kernel has just
    scheduled it and the socket is drained (see :func:`quickack`). Returns False where
    the transport is not asyncio's own (uvloop's, say), which is then left alone.
    """
    ssl_protocol = getattr(transport, "_ssl_protocol", None)
    for name in ("buffer_updated", "data_received"):
        read = getattr(ssl_protocol, name, None)
        if callable(read):
            break
    else:
        return False

    def raw_read(*args: Any) -> None:
        read(*args)
        if protocol.reader is not None:  # nothing came for the reader waiting
            quickack(protocol.socket)

    setattr(ssl_protocol, name, raw_read)
    return True


class AsyncStream:
    """A connected, handshaken TLS stream."""

    def __init__(self, transport: asyncio.Transport, protocol: StreamProtocol, server: Server):
        self._transport = transport
        self._protocol = protocol
        watch_raw_reads(transport, protocol)
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
            if protocol.unacked:
                protocol.unacked = False
                quickack(self._socket)
            future = asyncio.get_running_loop().create_future()
            protocol.reader = future
            if not await wait_future(future, timeout):
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
        if not protocol.paused:
            # Its segment, sent in this turn of the loop (before it sleeps), carries the
            # ACK; while writing is paused it may wait, and the ACK with it.
            protocol.unacked = False
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        if protocol.paused:
            future = asyncio.get_running_loop().create_future()
            protocol.writers.append(future)
            if not await wait_future(future, timeout):
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

    def abort(self) -> None:
        """Close at once, without waiting for the peer (a losing or unwanted attempt)."""
        self._transport.abort()
