"""The DoT client, written once.

This file is the asyncio version; ``dotclient/_sync/client.py`` is generated from it
by ``scripts/unasync.py`` (which CI runs with ``--check``). Edit this one.

How pipelining works (httpcore's HTTP/2 model, without a background task): a query is
written as soon as its connection has room, then its caller waits for its own ID. One
waiter at a time reads from the connection and files every answer that arrives under its
ID in the protocol core; it wakes the owners of those answers, and when it leaves with
its own answer it hands the reading to a waiter still waiting. So queries from many
tasks (or threads, in the blocking twin) share one connection, answered in any order.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import ssl
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, cast

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from .._backends import _async as backend
from .._backends._async import AsyncLock, AsyncStream
from .._config import OPTIONS_HELP, ClientConfig, ClientOptions, ServerSpec
from .._deadline import remaining
from .._exceptions import (
    AllServersFailed,
    AuthenticationError,
    ConnectError,
    ConnectionLost,
    DoTError,
    ProtocolError,
    Timeout,
    TLSError,
)
from .._failover import Rotation
from .._happy import AddrInfo
from .._protocol import DoTProtocol
from .._question import Question
from .._response import Response
from .._server import Server
from .._stats import ClientStats, ServerState
from .._tls import SavedSession, TLSInfo, TLSPolicy
from .bootstrap import BootstrapResolver

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["AsyncClient", "AsyncConnection", "AsyncServerPool", "aresolve"]

_READ_SIZE = 65536
# A connection that has given up on this many query IDs (timeouts, cancellations) takes
# no new queries: the IDs stay reserved until it closes, so a late answer can never be
# taken for a newer query's (RFC 5452 section 9.2 asks for unpredictable IDs).
_MAX_ABANDONED = 4096
# Seconds of silence on a connection, with a query unanswered although answers came
# after it was sent, before the connection is taken to have dropped it.
_STALL = 0.4
# First pause before reconnecting to a server that closed a connection under queries
# and then refused a new one (a restart); doubled each time, within the query's timeout.
_RECONNECT_BACKOFF = 0.05
# Answers to queries sent behind unanswered ones that show a server pipelines. A server
# that drops pipelined queries may still answer the first of each record it reads.
_PIPELINING_PROOF = 8
# Seconds a limit of queries per connection learnt from server closes holds. A real
# limit is learnt again at the cost of a few resends; one learnt from restarts under
# load that happened to come twice in a row must not cost a reconnect every few
# queries for good.
_LIMIT_LIFETIME = 30.0
# How often a query may go out again after its connection died under it (or stalled).
_MAX_SENDS = 3
# Resends not counted in _MAX_SENDS: the query was never written, or its connection
# was closed while answering others (a server's limit on queries per connection).
_MAX_FREE_RESENDS = 16
# ... and from a server that has not answered this client yet.
_MAX_FREE_UNANSWERED = 2

Request = Question | dns.message.Message


def _name_server(exc: DoTError, server: Server) -> None:
    """Name the server on errors raised where it was not known (the protocol core)."""
    if exc.server is None:
        exc.server = server


def _peer(server: Server, address: str | None) -> Server:
    """The server as connected: a name replaced by the address used, which keeps the
    name as its authentication name."""
    if address is None or server.is_ip or address == server.host:
        return server
    try:
        return server.replace(host=address, auth_name=server.verify_name)
    except ValueError:  # not an address: what a socks5h proxy was asked for
        return server


class _Stalled(ConnectionLost):
    """The connection stopped answering pipelined queries (see ``_STALL``)."""


class _NotSent(ConnectionLost):
    """The connection was gone before the query could be written."""


class AsyncConnection:
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
        self.stream = stream
        self.tls = tls
        self.server = server
        self.protocol = protocol
        #: Index of the TLS attempt (``TLSPolicy.attempts()``) this connection used.
        self.attempt = attempt
        self._mutex = mutex
        self._write_lock = AsyncLock()
        self._waiters: dict[int, backend.Event] = {}
        # When each unanswered query was sent, in sending order (dicts keep it), and
        # the IDs of those sent while another was unanswered.
        self._sent_at: dict[int, float] = {}
        self._order: collections.deque[int] = collections.deque()
        self._behind: set[int] = set()
        self._reading = False
        self._broken: DoTError | None = None
        #: Queries assigned to this connection and not finished (pool bookkeeping).
        self.reserved = 0
        #: Queries ever assigned to this connection.
        self.assigned = 0
        self.close_noted = False
        #: The server's close or reset was read, and whether it was busy (_note_close).
        self.close_seen = False
        self.closed_busy = False
        self.stall_noted = False
        #: Takes no new queries; closes when the last one finishes.
        self.retired = False
        self.closed = False
        #: A write ended unfinished (timeout, interruption): it takes no new queries.
        #: Answers that came for queries sent while another was unanswered.
        self.pipelined_answers = 0
        self.session_saved = False
        self.last_data = time.monotonic()
        self.last_answer = 0.0
        self.idle_since = time.monotonic()
        self.timer: backend.TimerHandle | None = None
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
    def pipelined(self) -> bool:
        """This connection has shown that the server answers pipelined queries."""
        return self.pipelined_answers >= _PIPELINING_PROOF

    @property
    def has_ids(self) -> bool:
        """A query ID is left for one more query: those of the queries assigned and
        those abandoned (kept until the connection closes) do not fill the 16 bits."""
        protocol = self.protocol
        return self.reserved + protocol.abandoned < protocol.QUERY_IDS

    @property
    def torn(self) -> bool:
        """A write stopped inside a TLS record, which no other data may follow: the
        connection takes no new query (the blocking backend; asyncio writes whole)."""
        return bool(self.stream.torn)

    @property
    def usable(self) -> bool:
        """Open and not retired: it may take new queries."""
        return not (self.retired or self.closed or self.torn or self.protocol.closed)

    async def send(self, request: Request, deadline: float) -> int:
        """Register ``request`` under a fresh ID and write it; return the ID, for
        :meth:`wait`. Raises :class:`_NotSent` if the connection was gone first."""
        protocol = self.protocol
        with self._mutex:
            if self._broken is not None or protocol.closed or self.torn:
                raise _NotSent(f"the connection to {self.server} had closed")
            if isinstance(request, dns.message.Message):
                qid, data = protocol.send_query(request)
            else:
                name, rdtype, rdclass, dnssec = request
                qid, data = protocol.send_question(name, rdtype, rdclass, dnssec=dnssec)
            self._waiters[qid] = backend.Event()
            if self._sent_at:
                self._behind.add(qid)
            self._sent_at[qid] = time.monotonic()
            self._order.append(qid)
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
        self._waiters.pop(qid, None)
        self._sent_at.pop(qid, None)
        self._behind.discard(qid)
        self.protocol.abandon(qid)
        self._trim_order()
        if not self._reading:
            for event in self._waiters.values():
                event.set()
                break

    def _trim_order(self) -> None:
        """Drop the answered or given-up queries at the head of ``_order``, so that it
        holds no more than the span of the oldest unanswered query."""
        order, sent_at = self._order, self._sent_at
        while order and order[0] not in sent_at:
            order.popleft()

    def _stall_deadline(self) -> float | None:
        """When silence means the server dropped the queries pipelined behind an
        answered one: only once some answer has come after they were sent."""
        self._trim_order()
        order, sent_at = self._order, self._sent_at
        if not order or self.last_answer <= sent_at[order[0]]:
            return None
        return self.last_data + _STALL

    async def wait(self, qid: int, deadline: float, stall: bool) -> dns.message.Message | bytes:
        """Wait for the validated answer to query ``qid`` (wire bytes for a question, a
        message for a caller's message), reading for the other queries meanwhile.

        With ``stall``, until this connection has shown that it pipelines, raise
        :class:`_Stalled` if it falls silent for ``_STALL`` seconds while a query sent
        before its last answer is still unanswered: the mark of a server that drops
        pipelined queries.
        """
        protocol = self.protocol
        event = self._waiters[qid]
        done = False
        try:
            while True:
                with self._mutex:
                    try:
                        answer = protocol.result(qid)
                    except DoTError:  # the query's own error, its ID freed
                        done = True
                        self._forget(qid)
                        raise
                    if answer is not None:
                        done = True
                        self._forget(qid)
                        return answer
                    if self._broken is not None:
                        raise self._broken
                    reader = not self._reading
                    if reader:
                        self._reading = True
                    else:
                        event.clear()
                    limit = deadline
                    watch = reader and stall and not self.pipelined
                    stall_at = self._stall_deadline() if watch else None
                    if stall_at is not None and stall_at < deadline:
                        limit = stall_at
                if not reader:
                    if not await event.wait(remaining(deadline, self.server)):
                        raise self._timeout(qid)
                    continue
                try:
                    data = await self.stream.read(_READ_SIZE, remaining(limit, self.server))
                except Timeout:
                    with self._mutex:
                        self._reading = False
                    if limit < deadline:
                        self._break(_Stalled(f"{self.server} stopped answering pipelined queries"))
                        continue
                    raise self._timeout(qid) from None
                except DoTError as exc:
                    with self._mutex:
                        self._reading = False
                        self._note_close()
                    self._break(exc)
                    continue
                except BaseException:
                    with self._mutex:
                        self._reading = False
                    raise
                with self._mutex:
                    self._reading = False
                    self.last_data = time.monotonic()
                    if not data:
                        self._note_close()
                    try:
                        ready = protocol.receive_data(data)
                    except ProtocolError as exc:
                        _name_server(exc, self.server)
                        self._broken = exc
                        ready = list(self._waiters)
                    if ready:
                        self.last_answer = self.last_data
                    for other in ready:
                        if other != qid and other in self._waiters:
                            self._waiters[other].set()
                        self._sent_at.pop(other, None)
                        if other in self._behind:
                            # Answered although sent while another was unanswered.
                            self._behind.discard(other)
                            self.pipelined_answers += 1
        finally:
            if not done:
                self._leave(qid)

    def _note_close(self) -> None:
        """The server closed or reset the connection (under the mutex): note whether it
        was busy, with a query sent before the last answer still unanswered, as when
        a limit of queries per connection cuts a pipelined stream. A connection found
        closed by the query sent after it went quiet was closed while idle (an idle
        timeout, a restart), which says nothing of such a limit."""
        last = self.last_answer
        self.close_seen = True
        self.closed_busy = any(sent < last for sent in self._sent_at.values())

    def _break(self, exc: DoTError) -> None:
        """The connection is unusable: every query still on it fails with ``exc``."""
        _name_server(exc, self.server)
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
        self.closed = True
        await self.stream.aclose()


class _ConnectFailed(Exception):
    """Carries a DoTError raised while connecting from a pool to its client (never seen
    by callers): the client may wait and try again where a server is restarting."""

    def __init__(self, error: DoTError) -> None:
        super().__init__(str(error))
        self.error = error


class AsyncServerPool:
    """The connections a client keeps to one of its servers, and what it has learnt
    about that server: whether it pipelines, its limit of queries per connection, and
    a TLS session to resume. Every method that changes state runs under the client's
    mutex, which it shares with the client's other pools."""

    def __init__(
        self,
        config: ClientConfig,
        index: int,
        mutex: backend.Mutex,
        stats: ClientStats,
        resolver: BootstrapResolver | None = None,
    ) -> None:
        self._config = config
        self._resolver = resolver
        #: The address of the last connection opened (None before the first).
        self.address: str | None = None
        self.server = config.servers[index]
        self._policy = config.policies[index]
        self._mutex = mutex
        self._stats = stats
        self._pool: list[AsyncConnection] = []
        # Retired connections still busy with queries: they count against
        # max_connections until they close (RFC 7766 section 6.2.2).
        self._draining: set[AsyncConnection] = set()
        self._connecting = False
        self._slot_waiters: collections.deque[backend.Event] = collections.deque()
        # Connects that failed, and the last failure: callers waiting for a slot while
        # the connect they waited on failed give up on this server too.
        self._connect_failures = 0
        self._connect_error: DoTError | None = None
        #: Queries per connection: max_in_flight, or 1 once the server dropped some.
        self.limit = config.max_in_flight
        self.pipelining: bool | None = None
        self._stall_count = 0
        # A server that closes connections after a number of answers: the limit learned
        # (see _server_closed), and the answers before the last close.
        self._per_connection: int | None = None
        self._per_connection_until = 0.0
        self._last_close: int | None = None
        # Until then, a new connection takes one query until its first answer: set when
        # a connection was cut under pipelined queries before answering any (a server
        # that closes after a few queries may close before it answered the first of a
        # burst, and a reset loses what it did answer).
        self._probe_until = 0.0
        self._session: SavedSession | None = None
        # Where to read the next session from, when a connection is made with it: the
        # attempt, a reader of the session of the connection that made it, its TLSInfo.
        self._session_source: tuple[int, Callable[[], ssl.SSLSession | None], TLSInfo] | None
        self._session_source = None
        #: Connections opened to this server, and responses it delivered.
        self.opened = 0
        self.responses = 0
        self.closed = False
        # Connections whose close was started and not waited for.
        self._closing: set[AsyncConnection] = set()
        # The process the connections belong to (see _after_fork).
        self._pid = os.getpid()
        self._connect_job: backend.Background[AsyncConnection] | None = None

    @property
    def open_connections(self) -> int:
        return len(self._pool)

    @property
    def in_flight(self) -> int:
        return sum(c.reserved for c in self._pool)

    @property
    def unmatched(self) -> int:
        """Unmatched responses on the open connections (retired ones add theirs to the
        client's count when they leave the pool)."""
        return sum(c.protocol.unmatched for c in self._pool)

    async def exchange(
        self, request: Request, deadline: float, share: float | None
    ) -> tuple[dns.message.Message | bytes, TLSInfo, Server]:
        """Send ``request`` to this server and wait for its validated answer, the
        connection's TLSInfo and the server as connected (its address used). The server
        gets ``share`` seconds for it (connecting included, waiting for a free connection
        not), or until ``deadline`` when None.
        A failure to connect is raised wrapped in :class:`_ConnectFailed`."""
        server = self.server
        sends = free = stalls = 0
        limit: float | None = None
        while True:
            try:
                connection, began = await self._acquire(deadline, share)
            except DoTError as exc:
                if isinstance(exc, (ConnectError, TLSError)) and not self.closed:
                    raise _ConnectFailed(exc) from None
                raise
            if limit is None:
                limit = deadline if share is None else min(deadline, began + share)
            sends += 1
            sent = time.monotonic()
            answered_before = self._stats.responses
            try:
                # Two calls, not one wrapping both: a coroutine frame less per query in
                # flight (10,000 in flight must stay under 50 MB).
                qid = await connection.send(request, limit)
                answer = await connection.wait(qid, limit, self.pipelining is None)
            except _Stalled as exc:
                self._retire(connection)
                self._stalled(connection)
                stalls += 1
                if self.closed or stalls > _MAX_SENDS:
                    raise self._lost(exc) from exc
                # Not counted as a send: after two stalls the client stops pipelining
                # to this server, and then no query can stall behind another.
                sends -= 1
                self._count_resend()
                continue
            except ConnectionLost as exc:
                self._server_closed(connection)
                self._retire(connection)
                _name_server(exc, server)
                progress = connection.protocol.answered or self._stats.responses > answered_before
                # A connection cut under several queries at once looks like a limit per
                # connection, whose close (a reset, often seen as a plain close by the
                # ssl module) may discard every answer sent: from a server that has
                # answered this client, or with a reset. A server that closes on a lone
                # query, or on everything before any answer, is failing, and pays.
                reset = isinstance(exc.__cause__, (ConnectionResetError, BrokenPipeError))
                # Cut before any answer under a burst: the next connections probe first
                # (see _probe_until), so this cannot recur for this query for a while.
                early = self._cut_early(connection)
                cut = connection.assigned > 1 and (self.responses > 0 or reset or early)
                # Not written: free, unless the server closed a new connection at once,
                # before any answer (as if it had been written, and then closed).
                unsent = isinstance(exc, _NotSent) and (connection.closed or progress)
                if not self.closed and (unsent or progress or cut):
                    # Never written; or lost while the server was answering others (on
                    # this connection, or on another since this query went out); or cut
                    # as above. The server's doing, so not counted as a failed send.
                    # Still bounded, and by the deadline.
                    free += 1
                    # A server that never answered this client gets few: it may be
                    # resetting everything it is sent, not enforcing a limit.
                    if free <= (
                        _MAX_FREE_RESENDS if self.responses or early else _MAX_FREE_UNANSWERED
                    ):
                        sends -= 1
                if self.closed or sends >= _MAX_SENDS:
                    if not self.closed and not isinstance(exc, _NotSent):
                        raise
                    raise self._lost(exc) from exc
                # The server closed the connection (idle timeout, restart, a limit on
                # queries per connection): that says nothing about this query, so it
                # goes out again on a new connection, within its own deadline.
                self._count_resend()
                continue
            except Timeout:
                if connection.last_data < sent or connection.protocol.partial:
                    # Nothing at all came back while this query waited, or the stream
                    # stopped inside a frame: send no more there.
                    self._retire(connection)
                raise
            except DoTError as exc:
                # The server answered this query wrongly: finish what is in flight there,
                # but send nothing new to that connection.
                self._retire(connection)
                _name_server(exc, server)
                raise
            else:
                self._after_answer(connection)
            finally:
                self._release(connection)
            return answer, connection.tls, connection.peer

    def _lost(self, exc: ConnectionLost) -> ConnectionLost:
        """What a query lost with its connection raises instead of ``exc``, one of the
        private ``_Stalled`` or ``_NotSent``, or any when the client was closed."""
        reason = "the client was closed" if self.closed else str(exc)
        return ConnectionLost(reason, server=self.server)

    def _count_resend(self) -> None:
        with self._mutex:
            self._stats.resent += 1

    async def _acquire(
        self, deadline: float, share: float | None
    ) -> tuple[AsyncConnection, float]:
        """A connection with room for one more query: the least busy open one, a new
        one if all are full and the pool may grow, else wait for room (until
        ``deadline``). Also returns when the query's time on this server began: when
        it got room, or when the connect for it started (which may take ``share``)."""
        server = self.server
        while True:
            waiter: backend.Event | None = None
            with self._mutex:
                if self.closed:
                    raise ConnectionLost("the client was closed", server=server)
                if self._pid != os.getpid():
                    self._after_fork()
                if self._pool and not self._pool[0].stream.usable_here():
                    self._other_loop()
                best: AsyncConnection | None = None
                probing = self._probing()
                for connection in list(self._pool):
                    if not connection.reserved and connection.stream.flooded:
                        self._drop_flooded(connection)
                        continue
                    room = connection.reserved < self._room(connection, probing)
                    if room and connection.has_ids and connection.usable:
                        if best is None or connection.reserved < best.reserved:
                            best = connection
                if best is not None:
                    self._assign(best)
                    if best.reserved < self._room(best, probing):
                        self._wake_slot()  # room for more: pass the turn on
                    return best, time.monotonic()
                opening = not self._connecting and self._active() < self._config.max_connections
                if opening:
                    self._connecting = True
                else:
                    waiter = backend.Event()
                    self._slot_waiters.append(waiter)
                    failures = self._connect_failures
            if waiter is not None:
                try:
                    woken = await waiter.wait(remaining(deadline, server, "a free connection"))
                except BaseException:  # cancelled, interrupted, or no time left
                    self._drop_waiter(waiter)
                    raise
                if not woken:
                    self._drop_waiter(waiter)
                    raise Timeout(
                        f"timed out waiting for a free connection to {server}", server=server
                    )
                with self._mutex:
                    error = self._connect_error if self._connect_failures != failures else None
                if error is not None:
                    # The connect this caller waited for failed: so does its query here.
                    raise type(error)(str(error), server=server)
                continue
            began = time.monotonic()
            connect_by = deadline if share is None else min(deadline, began + share)
            # In a job of its own: if this caller is cancelled, the connect goes on for
            # the callers waiting on it (and the room it took for this one is freed).
            self._connect_job = job = backend.Background(self._open(connect_by))
            connection = await job.result(lambda: bool(self._slot_waiters), self._release)
            return connection, began

    async def _open(self, connect_by: float) -> AsyncConnection:
        """Connect for the pool (``_connecting`` is set), and take room for one query
        on the new connection."""
        server = self.server
        try:
            connection = await AsyncConnection.connect(
                self._config,
                self._policy,
                connect_by,
                self._mutex,
                self._saved_session(),
                self._resolver,
            )
        except BaseException as exc:
            with self._mutex:
                self._connecting = False
                if isinstance(exc, DoTError):
                    self._connect_failures += 1
                    self._connect_error = exc
                    while self._slot_waiters:
                        self._wake_slot()
                else:
                    self._wake_slot()
            raise
        with self._mutex:
            self._connecting = False
            self.opened += 1
            self.address = connection.stream.address
            self._stats.connections_opened += 1
            if connection.tls.resumed:
                self._stats.sessions_resumed += 1
            if self.closed:
                closed = True
            else:
                closed = False
                self._pool.append(connection)
                self._assign(connection)
                # The new connection has room for more than this query.
                room = self._room(connection, self._probing()) - 1
                for _ in range(min(len(self._slot_waiters), room)):
                    self._wake_slot()
        if closed:
            await connection.aclose()
            raise ConnectionLost("the client was closed", server=server)
        return connection

    def _after_fork(self) -> None:
        """In a child of ``os.fork()`` (under the mutex): the connections are the
        parent's, which goes on using them; a write or read here would break their TLS
        state for both (BAD_RECORD_MAC). Forget them, with no I/O, and start afresh."""
        self._pid = os.getpid()
        self._let_go(fork=True)
        self._session = None  # a ticket is for one client: the parent may use it again
        self._session_source = None

    def _drop_flooded(self, connection: AsyncConnection) -> None:
        """Close an idle connection (under the mutex) that the server sent more than
        the backend buffers while nobody asked for anything: what it sends is not
        answers to us."""
        connection.closed = True
        self._unpool(connection)
        if connection.timer is not None:
            connection.timer.cancel()
            connection.timer = None
        self._closing_add(connection)
        connection.stream.close_nowait()

    def _other_loop(self) -> None:
        """A query from another event loop than the connections' (under the mutex):
        with theirs closed (``asyncio.run()`` called again), let them go with no I/O
        and start afresh; with theirs still running, refuse at once."""
        if not all(c.stream.orphaned for c in self._pool):
            raise DoTError(
                f"this client's connections to {self.server} belong to another event loop, "
                "which is still running: use one client per event loop",
                server=self.server,
            )
        self._let_go(fork=False)

    def _let_go(self, fork: bool) -> None:
        """Drop every connection, with no I/O on it (under the mutex), and what waited
        on them: the callers of another process or a closed event loop."""
        for connection in [*self._pool, *self._closing, *self._draining]:
            connection.closed = True
            if connection.timer is not None:
                connection.timer.cancel()
                connection.timer = None
            if fork:
                connection.stream.forget()
            else:
                connection.stream.release()
        self._pool = []
        self._closing = set()
        self._draining = set()
        self._slot_waiters.clear()
        self._connecting = False
        self._connect_job = None

    def _assign(self, connection: AsyncConnection) -> None:
        """Count one more query on ``connection`` (under the mutex)."""
        connection.reserved += 1
        connection.assigned += 1
        self._stats.queries_sent += 1
        if self._per_connection is not None and connection.assigned >= self._per_connection:
            if time.monotonic() > self._per_connection_until:
                self._per_connection = self._last_close = None  # learn it again
            else:
                # The server will close it after this many: send the rest elsewhere.
                self._unpool(connection)

    def _unpool(self, connection: AsyncConnection) -> None:
        """Take ``connection`` out of the pool for good (under the mutex): it takes no
        new queries and closes when its last one ends."""
        connection.retired = True
        if connection in self._pool:
            self._pool.remove(connection)
            self._stats.unmatched += connection.protocol.unmatched
            if connection.reserved and not connection.closed:
                self._draining.add(connection)

    def _server_closed(self, connection: AsyncConnection) -> None:
        """Learn from a connection the server closed while busy with pipelined queries:
        two such closes in a row, each after some answers, look like a limit on queries
        per connection. The larger count is taken: the server did answer that many, and
        a close that resets the connection can lose the last answers, so the smaller
        may be short of the limit. Closes of idle connections teach nothing (see
        _note_close), and what is learnt holds for _LIMIT_LIFETIME seconds."""
        with self._mutex:
            if connection.close_noted or connection.closed or not connection.close_seen:
                # Noted already; or closed by this client (idle, close_connections); or
                # the close is not read yet (a write failed first), so the count of
                # answers is not final: a query failing after the read notes it.
                return
            connection.close_noted = True
            answered = connection.protocol.answered
            if not (answered and connection.closed_busy):
                return  # closed before any answer, or while idle: nothing to learn
            last, self._last_close = self._last_close, answered
            if last is None:
                return
            self._per_connection = max(last, answered)
            self._per_connection_until = time.monotonic() + _LIMIT_LIFETIME

    def _active(self) -> int:
        """Connections open to the server: usable ones, and retired ones still
        finishing queries unless the server has closed them already."""
        draining = sum(1 for c in self._draining if not (c.closed or c.protocol.closed))
        return sum(1 for c in self._pool if c.usable) + draining

    def _probing(self) -> bool:
        """New connections take one query until their first answer (see _probe_until)."""
        return bool(self._probe_until) and time.monotonic() < self._probe_until

    def _room(self, connection: AsyncConnection, probing: bool) -> int:
        """How many queries ``connection`` may carry at once."""
        if probing and not connection.protocol.answered:
            return 1
        return self.limit

    def _cut_early(self, connection: AsyncConnection) -> bool:
        """``connection`` was lost under pipelined queries before answering any, not
        by this client: from now on a new connection proves itself with one query
        before it takes more, for _LIMIT_LIFETIME seconds. Returns whether it was."""
        with self._mutex:
            if connection.closed or connection.protocol.answered or connection.assigned < 2:
                return False
            self._probe_until = time.monotonic() + _LIMIT_LIFETIME
            return True

    def _wake_slot(self) -> None:
        if self._slot_waiters:
            self._slot_waiters.popleft().set()

    def _drop_waiter(self, waiter: backend.Event) -> None:
        """A caller stops waiting for room (timeout, cancellation): take its wake-up
        call out of the queue, or pass it on if it came already, so that no room is
        ever handed to a caller that left while live ones wait."""
        with self._mutex:
            try:
                self._slot_waiters.remove(waiter)
            except ValueError:  # woken just as it left
                self._wake_slot()

    def _retire(self, connection: AsyncConnection) -> None:
        """Send no more queries on ``connection``; it closes when its last one ends."""
        with self._mutex:
            self._unpool(connection)
            self._wake_slot()

    def _release(self, connection: AsyncConnection) -> None:
        with self._mutex:
            connection.reserved -= 1
            if not connection.reserved:
                self._draining.discard(connection)
            self._wake_slot()
            protocol = connection.protocol
            if (
                protocol.abandoned >= _MAX_ABANDONED
                # Abandoned IDs are never handed out again on their connection: one left
                # with fewer free IDs than a full load is retired, so a new one may open
                # (with max_connections=1, nothing else could take the queries).
                or protocol.QUERY_IDS - protocol.abandoned < self.limit
                or protocol.closed
                or connection.torn
            ):
                self._unpool(connection)
            close = connection.reserved == 0 and connection.retired and not connection.closed
            if close:
                connection.closed = True
            elif connection.reserved == 0:
                connection.idle_since = time.monotonic()
                if connection.timer is None and not self.closed:
                    connection.timer = backend.call_later(
                        self._idle_timeout(connection), lambda: self._idle_check(connection)
                    )
        if close:
            # Not awaited: the answer is in hand, and a server that closed first never
            # sends its close_notify, which the graceful close would wait a second for.
            # aclose() waits for it, so no transport outlives the client.
            self._closing_add(connection)
            connection.stream.close_nowait()

    def _closing_add(self, connection: AsyncConnection) -> None:
        """Remember a connection whose close is under way (under the mutex), and forget
        those whose close has finished."""
        self._closing = {c for c in self._closing if not c.stream.closed}
        self._closing.add(connection)

    def _idle_timeout(self, connection: AsyncConnection) -> float:
        """Our idle timeout, or shorter if the server offered one (RFC 7828 section
        3.2.2: the client closes before the server would)."""
        offered = connection.protocol.keepalive_timeout
        if offered is None:
            return self._config.idle_timeout
        return max(min(self._config.idle_timeout, offered * 0.9), 0.0)

    def _idle_check(self, connection: AsyncConnection) -> None:
        """Timer: close ``connection`` if it stayed idle for the idle timeout."""
        with self._mutex:
            connection.timer = None
            if connection.reserved or connection.closed:
                return  # busy again: the next release re-arms the timer
            left = connection.idle_since + self._idle_timeout(connection) - time.monotonic()
            if left > 0.001 and not connection.retired:
                connection.timer = backend.call_later(left, lambda: self._idle_check(connection))
                return
            connection.closed = True
            self._unpool(connection)
            self._stats.idle_closed += 1
            self._closing_add(connection)
        connection.stream.close_nowait()

    def _after_answer(self, connection: AsyncConnection) -> None:
        """Learn from a connection that answered: pipelining works, and the TLS
        session to resume next time (TLS 1.3 tickets come after the handshake)."""
        with self._mutex:
            self._stats.responses += 1
            self.responses += 1
            if connection.pipelined and self.pipelining is None:
                self.pipelining = True
            if connection.reserved < self.limit and self._probe_until:
                self._wake_slot()  # a probe answered: the connection has room again
            # A resumed connection's session is the one saved; reading a session out of
            # the ssl module costs a serialisation round trip (~0.4 ms), and ~6 KB that
            # CPython 3.11/3.12 never free (gh-116810), so only a full handshake's (the
            # first, or one whose ticket the server refused) is read, and only when a
            # connection is made with it (_saved_session): a one-shot never reads it.
            if self._config.resumption and not (
                connection.session_saved or connection.tls.resumed
            ):
                connection.session_saved = True
                reader = connection.stream.session_reader()
                self._session_source = (connection.attempt, reader, connection.tls)
            if connection.protocol.keepalive_timeout == 0 and not connection.retired:
                # RFC 7828 section 3.2.2: a timeout of 0 asks the client to close soon.
                self._unpool(connection)

    def _saved_session(self) -> SavedSession | None:
        """The session to offer on the connection about to be made: read now, from the
        last full handshake, if it came after the session saved."""
        with self._mutex:
            source, self._session_source = self._session_source, None
            if source is not None:
                attempt, read, tls = source
                session = read()
                if session is not None and (session.has_ticket or session.id):
                    self._session = SavedSession(attempt, session, tls)
            return self._session

    def _stalled(self, connection: AsyncConnection) -> None:
        """``connection`` stalled with pipelined queries unanswered. Once may be a slow
        answer behind a quiet connection; a second connection stalling, and the server
        gets one query per connection at a time from then on."""
        with self._mutex:
            if connection.stall_noted:
                return  # each of its queries reports the same stall
            connection.stall_noted = True
            self._stall_count += 1
            if self.limit != 1 and self._stall_count >= 2:
                self.limit = 1
                self.pipelining = False
                self._stats.pipelining_fallbacks += 1

    def close_soon(self) -> None:
        """The client is closing (under the mutex): stop the timers, fail the waiters."""
        self.closed = True
        for connection in self._pool:
            if connection.timer is not None:
                connection.timer.cancel()
                connection.timer = None
        while self._slot_waiters:
            self._wake_slot()

    async def close_connections(self) -> None:
        """Close every connection now (queries in flight on them fail over to new
        ones)."""
        with self._mutex:
            # Retired connections still finishing queries too: "every connection".
            pool = [*self._pool, *(c for c in self._draining if not c.closed)]
            self._draining = set()
            for connection in pool:
                connection.closed = True  # by us: nothing to learn from (_server_closed)
                self._unpool(connection)
                if connection.timer is not None:
                    connection.timer.cancel()
                    connection.timer = None
        for connection in pool:
            await connection.aclose()

    async def aclose(self) -> None:
        """Close the connections, and wait for those whose close was under way."""
        if self._connect_job is not None:  # a connect whose caller left
            await self._connect_job.aclose()
        await self.close_connections()
        with self._mutex:
            closing, self._closing = self._closing, set()
        for connection in closing:
            await connection.stream.aclose()


class AsyncClient:
    """A DoT client that keeps its connections and pipelines queries.

    ``server``, the one argument that may be positional, is a spec string such as
    ``"9.9.9.9#dns.quad9.net"`` or a :class:`Server` (see ``servers`` below). The other
    options are keyword-only: the fields of :class:`~dotclient._config.ClientConfig`,
    listed with their defaults and documentation at the end of this docstring;
    :class:`~dotclient.ClientOptions` types them for mypy.

    When a server closes a connection with queries unanswered (idle timeout, restart, a
    limit on queries per connection), they go out again on a new one, within their own
    timeout; a server that keeps closing after the same number of answers gets no more
    than that many per connection. Each query is its own TLS record, which is what
    dnsdist needs to pipeline. A server not yet seen to pipeline that leaves a query
    unanswered behind answered ones and falls silent for 0.4 s is taken to drop
    pipelined queries: they are resent, and after a second time the client sends that
    server one query per connection at a time. A server that served this client and
    then refuses connections (a restart) is tried again after 50 ms, 100 ms, ... within
    the query's timeout.

    With several servers, a query that fails on one (connect, TLS or authentication
    failure, timeout, a bad answer, the connection lost after its resends) moves to the
    next; when every server fails, :class:`AllServersFailed` names each and its error.
    A response with any RCODE is an answer: SERVFAIL and REFUSED do not move on.

    Use it as a context manager, or call :meth:`aclose` when done.
    """

    __doc__ = (__doc__ or "") + OPTIONS_HELP

    def __init__(self, server: ServerSpec | None = None, **options: Unpack[ClientOptions]) -> None:
        self._config = config = ClientConfig.from_options(server, **options)
        self._resolver: BootstrapResolver | None = None
        if config.bootstrap:
            self._resolver = BootstrapResolver(AsyncClient(**config.bootstrap_options()))
        self._mutex = backend.Mutex()
        self._stats = ClientStats()
        self._pools = [
            AsyncServerPool(config, index, self._mutex, self._stats, self._resolver)
            for index in range(len(config.servers))
        ]
        self._rotation = Rotation(
            len(config.servers), config.strategy, config.backoff, config.max_backoff
        )
        self._closed = False

    @property
    def server(self) -> Server:
        """The server this client talks to (the first, with several)."""
        return self._config.server

    @property
    def servers(self) -> tuple[Server, ...]:
        """The client's servers, in the order given."""
        return self._config.servers

    @property
    def timeout(self) -> float:
        """The default timeout of a query, in seconds."""
        return self._config.timeout

    @property
    def stats(self) -> ClientStats:
        """Counters since the client was made (a snapshot): connections opened and
        resumed, queries sent and resent, responses, unmatched responses, what is open
        and in flight now, and how each server is doing (``servers``)."""
        with self._mutex:
            now = time.monotonic()
            rotation = self._rotation
            states = tuple(
                ServerState(
                    pool.server,
                    failures=rotation.failures[index],
                    retry_in=rotation.retry_in(index, now),
                    last_error=rotation.errors[index],
                    responses=pool.responses,
                    open_connections=pool.open_connections,
                    in_flight=pool.in_flight,
                    pipelining=pool.pipelining,
                    max_in_flight=pool.limit,
                    address=pool.address,
                )
                for index, pool in enumerate(self._pools)
            )
            return dataclasses.replace(
                self._stats,
                open_connections=sum(s.open_connections for s in states),
                in_flight=sum(s.in_flight for s in states),
                unmatched=self._stats.unmatched + sum(p.unmatched for p in self._pools),
                pipelining=states[0].pipelining,
                max_in_flight=states[0].max_in_flight,
                servers=states,
            )

    async def resolve(
        self,
        name: dns.name.Name | str,
        rdtype: dns.rdatatype.RdataType | str | int = "A",
        rdclass: dns.rdataclass.RdataClass | str | int = "IN",
        *,
        dnssec: bool = False,
        timeout: float | None = None,
    ) -> Response:
        """Look up ``name``/``rdtype`` (a recursive query with EDNS(0); ``dnssec=True``
        sets the DO bit). A non-NOERROR RCODE is returned, not raised."""
        question = self._config.question(name, rdtype, rdclass, dnssec)
        return await self._exchange(question, None, self._config.deadline(timeout))

    async def query(
        self, message: dns.message.Message, *, timeout: float | None = None
    ) -> Response:
        """Send any dnspython query message and return the validated response.

        It goes out under a fresh random ID (and with padding, unless turned off); the
        ``message`` object is not modified, and the response carries its ID back so
        ``message.is_response(response.message)`` holds.
        """
        query = self._config.check_message(message)
        return await self._exchange(query, query, self._config.deadline(timeout))

    async def resolve_many(
        self,
        names: Iterable[dns.name.Name | str],
        rdtype: dns.rdatatype.RdataType | str | int = "A",
        rdclass: dns.rdataclass.RdataClass | str | int = "IN",
        *,
        dnssec: bool = False,
        timeout: float | None = None,
        on_result: Callable[[int, Response | Exception], None] | None = None,
    ) -> list[Response | Exception]:
        """Resolve many names, pipelined, and return the outcomes in input order.

        Each outcome is a :class:`Response` or the exception that query raised (a
        :class:`DoTError`, or ``ValueError``/``TypeError`` for a bad name): one failure
        does not sink the batch. ``timeout`` applies to each query, counted from when it
        starts. ``on_result(index, outcome)`` is called as each one completes (for
        progress reports), in completion order.
        """
        if isinstance(names, (str, bytes, dns.name.Name)):
            raise TypeError("resolve_many takes an iterable of names, not one name")
        config = self._config
        # The options once, up front: a bad one is the caller's error, not each name's.
        config.question(".", rdtype, rdclass, dnssec)
        config.deadline(timeout)
        names = list(names)
        results: list[Response | Exception | None] = [None] * len(names)
        position = iter(range(len(names)))
        take = backend.Mutex()
        failures: list[Exception] = []

        async def worker() -> None:
            while not failures:
                with take:
                    index = next(position, None)
                if index is None:
                    return
                outcome: Response | Exception
                try:
                    # resolve() inlined: a coroutine frame less per query in flight.
                    question = config.question(names[index], rdtype, rdclass, dnssec)
                    outcome = await self._exchange(question, None, config.deadline(timeout))
                except (DoTError, ValueError, TypeError) as exc:
                    outcome = exc
                except Exception as exc:  # the client was closed under the batch
                    failures.append(exc)
                    return
                results[index] = outcome
                if on_result is not None:
                    try:
                        on_result(index, outcome)
                    except Exception as exc:  # the caller's: stop the batch, raise it
                        failures.append(exc)
                        return

        if self._closed:
            raise RuntimeError("this client has been closed")
        await backend.run_workers(min(len(names), config.capacity()), worker)
        if failures:
            raise failures[0]
        return cast("list[Response | Exception]", results)

    async def _exchange(
        self, request: Request, query: dns.message.Message | None, deadline: float
    ) -> Response:
        """Send ``request`` to the servers in the rotation's order until one answers."""
        if self._closed:
            raise RuntimeError("this client has been closed")
        started = time.perf_counter()
        rotation, pools = self._rotation, self._pools
        errors: dict[Server, DoTError] | None = None
        pause = _RECONNECT_BACKOFF
        while True:
            with self._mutex:
                now = time.monotonic()
                order = rotation.order(now)
                # RFC 7858 section 3.1: no server left that offers usable DoT lately.
                remembered = None if errors is not None else rotation.remembered(now)
            if remembered is not None:
                raise self._all_failed(
                    {p.server: e for p, e in zip(pools, remembered, strict=True)}
                )
            restarting = False
            for position, index in enumerate(order):
                pool = pools[index]
                share = self._config.share(deadline, len(order) - position)
                try:
                    answer, tls, peer = await pool.exchange(request, deadline, share)
                except (DoTError, _ConnectFailed) as caught:
                    refused = False
                    if isinstance(caught, _ConnectFailed):
                        exc = caught.error
                        # A server that served this client and now refuses connections
                        # may be restarting: worth another round within the deadline.
                        if pool.opened and isinstance(exc, ConnectError):
                            restarting = refused = True
                    else:
                        exc = caught
                    if self._closed:
                        raise exc from exc.__cause__  # not from the _ConnectFailed wrapper
                    if errors is None:
                        errors = {}
                    errors[pool.server] = exc
                    now = time.monotonic()
                    with self._mutex:
                        rotation.failed(index, exc, now, restarting=refused)
                        if now >= deadline:
                            break
                        if position + 1 < len(order):
                            self._stats.failovers += 1
                    continue
                if rotation.failures[index]:
                    with self._mutex:
                        rotation.succeeded(index)
                return self._config.response(query, answer, started, tls, peer)
            if restarting and deadline - time.monotonic() >= pause:
                await backend.sleep(pause)
                pause *= 2
                continue
            assert errors is not None
            raise self._all_failed(errors)

    def _all_failed(self, errors: dict[Server, DoTError]) -> DoTError:
        """The error a query that failed everywhere raises: the server's own with one
        server, else one naming each server tried and how it failed."""
        if len(self._pools) == 1:
            return next(iter(errors.values()))
        reasons = "; ".join(f"{server}: {error}" for server, error in errors.items())
        if len(errors) == len(self._pools):
            summary = f"all {len(errors)} servers failed"
        else:  # the time ran out before the others could be tried
            summary = f"no server answered in time ({len(errors)} of {len(self._pools)} tried)"
        return AllServersFailed(f"{summary}: {reasons}", errors=tuple(errors.items()))

    def forget_failures(self) -> None:
        """Forget which servers failed: the next query tries each one again at once.

        A server that failed to connect, handshake or authenticate is backed off
        (``backoff`` doubling to ``max_backoff``); while every server is, queries fail
        at once with the remembered errors (RFC 7858 section 3.1). Call this when you
        know better, e.g. after the network came back or the server was fixed."""
        with self._mutex:
            self._rotation.forget()

    async def close_connections(self) -> None:
        """Close every connection now (queries in flight on them fail over to new
        ones). The next query reconnects, resuming the TLS session when it can."""
        for pool in self._pools:
            await pool.close_connections()

    async def aclose(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        with self._mutex:
            self._closed = True
            for pool in self._pools:
                pool.close_soon()
        for pool in self._pools:
            await pool.aclose()
        if self._resolver is not None:
            await self._resolver.client.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        servers = ", ".join(str(s) for s in self._config.servers)
        if len(self._pools) > 1:
            servers += f" ({self._config.strategy})"
        return f"<{type(self).__name__} {servers} {state}>"


async def aresolve(
    name: dns.name.Name | str,
    rdtype: dns.rdatatype.RdataType | str | int = "A",
    rdclass: dns.rdataclass.RdataClass | str | int = "IN",
    *,
    server: ServerSpec | None = None,
    dnssec: bool = False,
    **options: Unpack[ClientOptions],
) -> Response:
    """Resolve one name on a new connection, then close it.

    Takes the options of :class:`AsyncClient`; ``timeout`` bounds the whole call, every
    server tried included. For more than one query, keep an :class:`AsyncClient` and
    save the handshakes.
    """
    async with AsyncClient(server, **options) as client:
        return await client.resolve(name, rdtype, rdclass, dnssec=dnssec)
