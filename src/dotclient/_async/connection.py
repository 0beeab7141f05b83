"""One pipelined DoT connection: send, take turns reading, watch for a stall.

This file is the asyncio version; ``dotclient/_sync/connection.py`` is generated from it
by ``scripts/unasync.py`` (which CI runs with ``--check``). Edit this one.

How pipelining works (httpcore's HTTP/2 model, without a background task): a query is
written as soon as its connection has room, then its caller waits for its own ID. One
waiter at a time reads from the connection and files every answer that arrives under its
ID in the protocol core; it wakes the owners of those answers, and when it leaves with
its own answer it hands the reading to a waiter still waiting. So queries from many
tasks (or threads, in the blocking twin) share one connection, answered in any order.
What the pool decides about the connection lives in :mod:`dotclient._policy`
(:class:`ConnectionState`, which this class extends with the stream and the waiting).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import dns.message

from .._backends import _async as backend
from .._backends._async import AsyncLock, AsyncStream
from .._config import ClientConfig
from .._deadline import remaining
from .._exceptions import AuthenticationError, ConnectionLost, DoTError, ProtocolError, Timeout
from .._happy import AddrInfo
from .._policy import ConnectionState
from .._protocol import DoTProtocol
from .._question import Question
from .._server import Server
from .._tls import SavedSession, TLSInfo, TLSPolicy
from .bootstrap import BootstrapResolver

__all__ = ["AsyncConnection", "Request", "_Dropped", "_NotSent", "_Stalled"]

_READ_SIZE = 65536

Request = Question | dns.message.Message


def _peer(server: Server, address: str | None) -> Server:
    """The server as connected: a name replaced by the address used, which keeps the
    name as its authentication name."""
    if address is None or server.is_ip or address == server.host:
        return server
    try:
        return server.replace(host=address, auth_name=server.verify_name)
    except ValueError:  # not an address: what a socks5h proxy was asked for
        return server


class _Dropped(Exception):
    """A query lost with its connection, for the pool to send again or to fail with a
    public :class:`ConnectionLost` (private control flow: never seen by callers, and
    outside the public exception tree)."""

    def __init__(self, message: str, *, server: Server) -> None:
        super().__init__(message)
        self.server = server


class _Stalled(_Dropped):
    """The connection stopped answering pipelined queries (see ``_policy._connection._STALL``)."""


class _NotSent(_Dropped):
    """The connection was gone before the query could be written."""


class AsyncConnection(ConnectionState):
    """One authenticated TLS connection to a DoT server, shared by pipelined queries.

    ``mutex`` is the owning client's: it guards this connection's protocol state and the
    client's pool bookkeeping together (threads, in the blocking twin).
    """

    def __init__(
        self,
        stream: AsyncStream,
        tls: TLSInfo,
        server: Server,
        protocol: DoTProtocol,
        mutex: backend.Mutex,
        attempt: int,
    ) -> None:
        super().__init__(protocol, time.monotonic(), tls.resumed)
        self.stream = stream
        self.tls = tls
        self.server = server
        #: Index of the TLS attempt (``TLSPolicy.attempts()``) this connection used.
        self.attempt = attempt
        self._mutex = mutex
        self._write_lock = AsyncLock()
        self._waiters: dict[int, backend.Event] = {}
        # The read turn: one waiter at a time reads for all (see the module docstring).
        self._reading = False
        # What every query still on the connection fails with, once it broke.
        self._broken: DoTError | _Stalled | None = None
        self._timer: backend.TimerHandle | None = None
        #: The server as connected: with the address used in place of a name.
        self.peer = _peer(server, stream.address)

    @classmethod
    async def connect(
        cls,
        config: ClientConfig,
        policy: TLSPolicy,
        deadline: float,
        mutex: backend.Mutex,
        saved: SavedSession | None = None,
        resolver: BootstrapResolver | None = None,
    ) -> AsyncConnection:
        """Connect, handshake and authenticate (RFC 8310) before any query is sent.

        In the opportunistic profile a failed authentication leads to one more attempt
        without it; in the strict profile it raises :class:`AuthenticationError`.
        ``saved`` is a session from an earlier connection to offer for resumption; a
        resumed session was authenticated when it was made, so it keeps that outcome.
        """
        server = policy.server
        route = config.route
        addresses: list[AddrInfo] | None = None
        if resolver is not None and not server.is_ip:
            if route.proxy is None or not route.proxy.remote_dns:  # socks5h: the proxy's job
                addresses = await resolver.addresses(server, deadline)
        failure: AuthenticationError | None = None
        for index, attempt in enumerate(policy.attempts()):
            left = remaining(deadline, server, "the TLS handshake")
            session = saved.session if saved is not None and saved.attempt == index else None
            try:
                stream = await backend.open_tls_stream(
                    server,
                    attempt.context,
                    attempt.server_hostname,
                    left,
                    session,
                    route,
                    addresses,
                    config.fast_open,
                )
            except AuthenticationError as exc:
                failure = exc
                continue
            try:
                if session is not None and saved is not None and stream.ssl_object.session_reused:
                    tls = dataclasses.replace(saved.tls, resumed=True)
                else:
                    previous = str(failure) if failure else None
                    tls = policy.check(stream.ssl_object, attempt, previous)
            except AuthenticationError as exc:
                await stream.aclose()
                failure = exc
                continue
            except BaseException:
                await stream.aclose()
                raise
            protocol = DoTProtocol(padding=config.padding, keepalive=config.keepalive)
            return cls(stream, tls, server, protocol, mutex, index)
        assert failure is not None
        raise failure

    @property
    def torn(self) -> bool:
        """A write stopped inside a TLS record, which no other data may follow: the
        connection takes no new query (the blocking backend; asyncio writes whole)."""
        return bool(self.stream.torn)

    @property
    def flooded(self) -> bool:
        """The server sent more than the backend buffers while nobody asked."""
        return bool(self.stream.flooded)

    @property
    def armed(self) -> bool:
        """The idle timer is armed."""
        return self._timer is not None

    def arm(self, delay: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` after ``delay`` seconds (the idle timer)."""
        self._timer = backend.call_later(delay, callback)

    def disarm(self) -> None:
        """Stop the idle timer, if armed (also when it fired: it is no longer armed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def send(self, request: Request, deadline: float) -> int:
        """Register ``request`` under a fresh ID and write it; return the ID, for
        :meth:`wait`. Raises :class:`_NotSent` if the connection was gone first."""
        protocol = self.protocol
        with self._mutex:
            if self._broken is not None or protocol.closed or self.torn:
                raise _NotSent(f"the connection to {self.server} had closed", server=self.server)
            if isinstance(request, dns.message.Message):
                qid, data = protocol.send_query(request)
            else:
                name, rdtype, rdclass, dnssec = request
                qid, data = protocol.send_question(name, rdtype, rdclass, dnssec=dnssec)
            self._waiters[qid] = backend.Event()
            self.note_sent(qid, time.monotonic())
        try:
            if not await self._write_lock.acquire(remaining(deadline, self.server)):
                raise Timeout(f"timed out sending the query to {self.server}", server=self.server)
            try:
                left = remaining(deadline, self.server)
                await self.stream.write(data, left)
            finally:
                self._write_lock.release()
        except ConnectionLost as exc:
            self._leave(qid)
            raise _NotSent(str(exc), server=self.server) from exc
        except BaseException:
            self._leave(qid)
            raise
        return qid

    def _leave(self, qid: int) -> None:
        """Forget ``qid`` (failed or given up) and, if nobody is reading now, wake a
        waiter to read for the others."""
        with self._mutex:
            self._forget(qid)

    def _forget(self, qid: int) -> None:
        """:meth:`_leave` under the mutex. A query whose outcome :meth:`DoTProtocol.result`
        gave must be forgotten in the same hold of the mutex: that freed its ID, and
        another thread may send a new query under it as soon as the mutex is free."""
        event = self._waiters.pop(qid, None)
        if event is not None:
            event.close()
        self.note_gone(qid)
        self.protocol.abandon(qid)
        if not self._reading:
            for event in self._waiters.values():
                event.set()
                break

    async def wait(self, qid: int, deadline: float, stall: bool) -> dns.message.Message | bytes:
        """Wait for the validated answer to query ``qid`` (wire bytes for a question, a
        message for a caller's message), reading for the other queries meanwhile.

        With ``stall``, until this connection has shown that it pipelines, raise
        :class:`_Stalled` if it falls silent for ``_STALL`` seconds while a query sent
        before its last answer is still unanswered: the mark of a server that drops
        pipelined queries (``ConnectionState.read_deadline``).
        """
        protocol = self.protocol
        event = self._waiters[qid]
        done = False
        try:
            while True:
                with self._mutex:
                    try:
                        answer = protocol.result(qid)
                    except DoTError as exc:  # the query's own error, its ID freed
                        done = True
                        self._forget(qid)
                        raise self._named(exc) from exc.__cause__
                    if answer is not None:
                        done = True
                        self._forget(qid)
                        return answer
                    if self._broken is not None:
                        raise self._broken
                    reader = not self._reading
                    if reader:
                        self._reading = True
                        read_by = self.read_deadline(deadline, stall)
                    else:
                        event.clear()
                if not reader:
                    if not await event.wait(remaining(deadline, self.server)):
                        raise self._timeout(qid)
                    continue
                try:
                    data = await self.stream.read(_READ_SIZE, remaining(read_by, self.server))
                except BaseException as exc:
                    self._read_failed(qid, exc, read_by < deadline)
                    continue
                self._received(qid, data)
        finally:
            if not done:
                self._leave(qid)

    def _read_failed(self, qid: int, exc: BaseException, watching: bool) -> None:
        """The reader's read ended without data: a stall (when ``watching`` for one and
        the read timed out), the query's timeout, or a broken connection; re-raises
        anything else."""
        with self._mutex:
            self._reading = False
            if isinstance(exc, DoTError) and not isinstance(exc, Timeout):
                self.note_close()
        if isinstance(exc, Timeout):
            if watching:
                stalled = f"{self.server} stopped answering pipelined queries"
                self._break(_Stalled(stalled, server=self.server))
                return
            raise self._timeout(qid) from None
        if isinstance(exc, DoTError):
            self._break(exc)
            return
        raise exc

    def _received(self, qid: int, data: bytes) -> None:
        """Feed what the reader read to the protocol core and wake the owners of the
        answers that came (``b""``: the server closed the connection)."""
        with self._mutex:
            self._reading = False
            if not data:
                self.note_close()
            try:
                ready = self.protocol.receive_data(data)
            except ProtocolError as exc:
                self._broken = self._named(exc)
                ready = list(self._waiters)
            self.note_read(ready, time.monotonic())
            waiters = self._waiters
            for other in ready:
                if other != qid and other in waiters:
                    waiters[other].set()

    def _named(self, exc: DoTError) -> DoTError:
        """An error of the protocol core, which knows no server, made again with this
        connection's: the one boundary where the core's errors enter the client
        (:meth:`DoTProtocol.result` and :meth:`DoTProtocol.receive_data`)."""
        named = type(exc)(str(exc), server=self.server)
        named.__cause__ = exc.__cause__
        return named

    def _break(self, exc: DoTError | _Stalled) -> None:
        """The connection is unusable: every query still on it fails with ``exc``."""
        with self._mutex:
            if self._broken is None:
                self._broken = exc
            for event in self._waiters.values():
                event.set()

    def _timeout(self, qid: int) -> Timeout:
        unmatched = self.protocol.unmatched
        extra = f" ({unmatched} response(s) meanwhile matched no query)" if unmatched else ""
        partial = self.protocol.partial
        if partial:
            extra += f" (the stream stopped {partial})"
        return Timeout(
            f"timed out waiting for the answer from {self.server}{extra}", server=self.server
        )

    async def aclose(self) -> None:
        """Close the connection."""
        self.mark_closed()
        await self.stream.aclose()
