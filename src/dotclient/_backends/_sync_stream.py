"""Blocking backend, the stream: a non-blocking TLS socket that threads may share, every
wait bounded by a timeout."""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from .._exceptions import ConnectionLost, Timeout, map_io_errors
from .._server import Server
from . import quickack

__all__ = ["SyncStream"]


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
        # Something came (TLS 1.3 tickets with the handshake, or a read) that no write
        # of ours acknowledged since: acknowledge it before waiting (see quickack()).
        self._unacked = True
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
            want_write: bool | None = None  # None: try a recv before any wait
            while True:
                if want_write is not None:
                    if self._unacked:
                        self._unacked = False
                        quickack(sock)
                    self._wait(want_write, deadline, "receive")
                with self._io:
                    self._check_open()
                    if want_write is None and sock.pending() == 0:
                        # Nothing decrypted and waiting: wait for the socket first
                        # rather than pay for a recv that can only fail.
                        want_write = False
                        continue
                    try:
                        data = sock.recv(max_bytes)
                        self._unacked = True
                        return data
                    except ssl.SSLWantReadError:
                        # Records that held no data (tickets), or part of one, came.
                        self._unacked = True
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
                            self._unacked = False  # the segment carried our ACK
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
