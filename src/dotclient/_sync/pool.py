"""The connections a client keeps to one server: the shell of :class:`PoolPolicy`.

This file is generated from ``dotclient/_async/pool.py``
by ``scripts/unasync.py``. Do not edit it: edit that one.

Every decision (which connection takes a query, when to open one, whether a lost query
goes out again, what a server taught, when an idle connection closes) is the policy's,
in :mod:`dotclient._policy`, with the time passed in; this class asks it, under the
client's mutex, and carries out the answer: it connects, waits for room, wakes the
callers waiting, arms idle timers and closes streams.
"""

from __future__ import annotations

import collections
import os
import ssl
import time
from collections.abc import Callable

import dns.message

from .._backends import _sync as backend
from .._config import ClientConfig
from .._deadline import remaining
from .._exceptions import ConnectionLost, DoTError, NetworkError, Timeout, TLSError
from .._policy import Budget, ConnectFailure, Loss, PoolPolicy, Release
from .._server import Server
from .._stats import ClientStats
from .._tls import SavedSession, TLSInfo
from .bootstrap import BootstrapResolver
from .connection import Connection, Request, _Dropped, _NotSent, _Stalled

__all__ = ["ServerPool"]

Answer = tuple[dns.message.Message | bytes, TLSInfo, Server]
# Bound once: a lookup through the enum class costs ~70 ns on Python 3.11, per query.
_IDLE, _CLOSE = Release.IDLE, Release.CLOSE


class ServerPool:
    """The connections a client keeps to one of its servers, and what it has learnt
    about that server (its :class:`PoolPolicy`): whether it pipelines, its limit of
    queries per connection, and a TLS session to resume. Every method that changes
    state runs under the client's mutex, which it shares with the client's other pools."""

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
        self._tls_policy = config.policies[index]
        self._mutex = mutex
        self._stats = stats
        self.policy: PoolPolicy[Connection] = PoolPolicy(
            config.max_in_flight, config.max_connections, config.idle_timeout, stats
        )
        # The policy's list of the connections that take queries (the same object).
        self._pool = self.policy.pool
        self._slot_waiters: collections.deque[backend.Event] = collections.deque()
        # Connects that failed, and the last failure: callers waiting for a slot while
        # the connect they waited on failed give up on this server too.
        self._connect_failures = 0
        self._connect_error: DoTError | None = None
        self._session: SavedSession | None = None
        # Where to read the next session from, when a connection is made with it: the
        # attempt, a reader of the session of the connection that made it, its TLSInfo.
        self._session_source: tuple[int, Callable[[], ssl.SSLSession | None], TLSInfo] | None
        self._session_source = None
        self.closed = False
        # Connections whose close was started and not waited for.
        self._closing: set[Connection] = set()
        # The process the connections belong to (see _after_fork).
        self._pid = os.getpid()
        self._connect_job: backend.Background[Connection] | None = None

    @property
    def opened(self) -> int:
        """Connections opened to this server."""
        return self.policy.opened

    @property
    def responses(self) -> int:
        """Responses this server delivered."""
        return self.policy.responses

    @property
    def pipelining(self) -> bool | None:
        """Whether the server answers pipelined queries: None until known."""
        return self.policy.pipelining

    @property
    def max_in_flight(self) -> int:
        """Queries per connection now: ``max_in_flight``, or 1 once the server dropped
        pipelined ones."""
        return self.policy.max_in_flight

    @property
    def open_connections(self) -> int:
        """Connections that take queries now (retired ones still finishing aside)."""
        return len(self._pool)

    @property
    def in_flight(self) -> int:
        """Queries in flight on those connections."""
        return sum(c.reserved for c in self._pool)

    @property
    def unmatched(self) -> int:
        """Unmatched responses on the open connections (retired ones add theirs to the
        client's count when they leave the pool)."""
        return sum(c.protocol.unmatched for c in self._pool)

    def exchange(
        self, request: Request, deadline: float, share: float | None
    ) -> Answer | ConnectFailure:
        """Send ``request`` to this server and wait for its validated answer, the
        connection's TLSInfo and the server as connected (its address used). The server
        gets ``share`` seconds for it (connecting included, waiting for a free connection
        not), or until ``deadline`` when None.
        A failure to connect is returned as a :class:`ConnectFailure`, not raised."""
        budget: Budget | None = None
        server_by: float | None = None
        while True:
            try:
                connection, began = self._acquire(deadline, share)
            except (NetworkError, TLSError) as exc:
                if self.closed:
                    raise
                with self._mutex:
                    return self.policy.connect_failure(exc)
            if server_by is None:
                server_by = deadline if share is None else min(deadline, began + share)
            sent = time.monotonic()
            before = self._stats.responses
            try:
                # Two calls, not one wrapping both: a coroutine frame less per query in
                # flight (10,000 in flight must stay under 50 MB).
                qid = connection.send(request, server_by)
                answer = connection.wait(qid, server_by, self.policy.pipelining is None)
            except (ConnectionLost, _Dropped) as exc:
                if budget is None:
                    budget = Budget()
                self._lost(budget, connection, exc, before)
                continue  # resent (the error was raised otherwise)
            except Timeout:
                with self._mutex:
                    retire = self.policy.timed_out(connection, sent)
                if retire:
                    # Nothing at all came back while this query waited, or the stream
                    # stopped inside a frame: send no more there.
                    self._retire(connection)
                raise
            except DoTError:
                # The server answered this query wrongly: finish what is in flight there,
                # but send nothing new to that connection.
                self._retire(connection)
                raise
            else:
                self._after_answer(connection)
            finally:
                self._release(connection)
            return answer, connection.tls, connection.peer

    def _lost(
        self,
        budget: Budget,
        connection: Connection,
        exc: ConnectionLost | _Dropped,
        before: int,
    ) -> None:
        """A query's connection was lost (or stalled) under it: retire the connection,
        and return to send the query again, or raise what the policy says."""
        with self._mutex:
            self.policy.unpool(connection)
            self._wake_slot()
            if isinstance(exc, _Stalled):
                verdict = self.policy.stalled(budget, connection, self.closed)
            else:
                verdict = self.policy.lost(
                    budget,
                    connection,
                    unsent=isinstance(exc, _NotSent),
                    reset=isinstance(exc.__cause__, (ConnectionResetError, BrokenPipeError)),
                    before=before,
                    closing=self.closed,
                    now=time.monotonic(),
                )
        if verdict is Loss.RESEND:
            # The server closed the connection (idle timeout, restart, a limit on
            # queries per connection): that says nothing about this query, so it goes
            # out again on a new connection, within its own deadline.
            return
        if verdict is Loss.RAISE and isinstance(exc, ConnectionLost):
            raise exc
        reason = "the client was closed" if self.closed else str(exc)
        raise ConnectionLost(reason, server=self.server) from exc

    def _acquire(
        self, deadline: float, share: float | None
    ) -> tuple[Connection, float]:
        """A connection with room for one more query: the least busy open one, a new
        one if all are full and the pool may grow, else wait for room (until
        ``deadline``). Also returns when the query's time on this server began: when
        it got room, or when the connect for it started (which may take ``share``)."""
        policy = self.policy
        while True:
            waiter: backend.Event | None = None
            with self._mutex:
                if self.closed:
                    raise ConnectionLost("the client was closed", server=self.server)
                if self._pid != os.getpid():
                    self._after_fork()
                if self._pool and not self._pool[0].stream.usable_here():
                    self._other_loop()
                now = time.monotonic()
                best = policy.take(now)
                if policy.flooded:
                    self._drop_flooded()
                if best is not None:
                    if policy.pass_on:
                        self._wake_slot()  # room for more: pass the turn on
                    return best, now
                if not policy.may_open():
                    waiter = backend.Event()
                    self._slot_waiters.append(waiter)
                    failures = self._connect_failures
            if waiter is not None:
                self._wait_for_room(waiter, failures, deadline)
                continue
            began = time.monotonic()
            connect_by = deadline if share is None else min(deadline, began + share)
            # In a job of its own: if this caller is cancelled, the connect goes on for
            # the callers waiting on it (and the room it took for this one is freed).
            self._connect_job = job = backend.Background(self._open(connect_by))
            connection = job.result(lambda: bool(self._slot_waiters), self._release)
            return connection, began

    def _wait_for_room(self, waiter: backend.Event, failures: int, deadline: float) -> None:
        """Wait as a slot waiter until woken; raise when the time runs out, or when the
        connect this caller waited for failed (so does its query here)."""
        server = self.server
        try:
            woken = waiter.wait(remaining(deadline, server, "a free connection"))
        except BaseException:  # cancelled, interrupted, or no time left
            self._drop_waiter(waiter)
            raise
        if not woken:
            self._drop_waiter(waiter)
            raise Timeout(f"timed out waiting for a free connection to {server}", server=server)
        with self._mutex:
            error = self._connect_error if self._connect_failures != failures else None
        if error is not None:
            raise type(error)(str(error), server=server)

    def _open(self, connect_by: float) -> Connection:
        """Connect for the pool (the policy marked the connect under way), and take room
        for one query on the new connection."""
        try:
            connection = Connection.connect(
                self._config,
                self._tls_policy,
                connect_by,
                self._mutex,
                self._saved_session(),
                self._resolver,
            )
        except BaseException as exc:
            with self._mutex:
                self.policy.connect_failed()
                if isinstance(exc, DoTError):
                    self._connect_failures += 1
                    self._connect_error = exc
                    while self._slot_waiters:
                        self._wake_slot()
                else:
                    self._wake_slot()
            raise
        with self._mutex:
            self.policy.connected(connection)
            self.address = connection.stream.address
            closed = self.closed
            if not closed:
                # The new connection has room for more than this query.
                room = self.policy.add(connection, time.monotonic())
                for _ in range(min(len(self._slot_waiters), room)):
                    self._wake_slot()
        if closed:
            connection.close()
            raise ConnectionLost("the client was closed", server=self.server)
        return connection

    def _after_fork(self) -> None:
        """In a child of ``os.fork()`` (under the mutex): the connections are the
        parent's, which goes on using them; a write or read here would break their TLS
        state for both (BAD_RECORD_MAC). Forget them, with no I/O, and start afresh."""
        self._pid = os.getpid()
        self._let_go(fork=True)
        self._session = None  # a ticket is for one client: the parent may use it again
        self._session_source = None

    def _drop_flooded(self) -> None:
        """Close the idle connections (under the mutex) that the server sent more than
        the backend buffers while nobody asked for anything: what it sends is not
        answers to us. The policy took them out of the pool already."""
        for connection in self.policy.flooded:
            connection.disarm()
            self._closing_add(connection)
            connection.stream.close_nowait()
        self.policy.flooded.clear()

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
        for connection in [*self.policy.forget_all(), *self._closing]:
            connection.mark_closed()
            connection.disarm()
            if fork:
                connection.stream.forget()
            else:
                connection.stream.release()
        self._closing = set()
        self._slot_waiters.clear()
        self._connect_job = None

    def _wake_slot(self) -> None:
        """Wake the first caller waiting for room, if any (under the mutex)."""
        if self._slot_waiters:
            self._slot_waiters.popleft().set()

    def _drop_waiter(self, waiter: backend.Event) -> None:
        """A caller stops waiting for room (timeout, cancellation): take its wake-up
        call out of the queue, or pass it on if it came already, so that no room is
        ever handed to a caller that left while live ones wait."""
        waiter.close()
        with self._mutex:
            try:
                self._slot_waiters.remove(waiter)
            except ValueError:  # woken just as it left
                self._wake_slot()

    def _retire(self, connection: Connection) -> None:
        """Send no more queries on ``connection``; it closes when its last one ends."""
        with self._mutex:
            self.policy.unpool(connection)
            self._wake_slot()

    def _release(self, connection: Connection) -> None:
        """A query let go of ``connection``: pass its room on, and close the connection
        or arm its idle timer as the policy says."""
        with self._mutex:
            release = self.policy.release(connection)
            self._wake_slot()
            if release is _IDLE:
                self.policy.idle(connection, time.monotonic())
                if not (connection.armed or self.closed):
                    connection.arm(
                        self.policy.idle_timeout_of(connection),
                        lambda: self._idle_check(connection),
                    )
            elif release is _CLOSE:
                self._closing_add(connection)
        if release is _CLOSE:
            # Not awaited: the answer is in hand, and a server that closed first never
            # sends its close_notify, which the graceful close would wait a second for.
            # close() waits for it, so no transport outlives the client.
            connection.stream.close_nowait()

    def _closing_add(self, connection: Connection) -> None:
        """Remember a connection whose close is under way (under the mutex), and forget
        those whose close has finished."""
        self._closing = {c for c in self._closing if not c.stream.closed}
        self._closing.add(connection)

    def _idle_check(self, connection: Connection) -> None:
        """Timer: close ``connection`` if it stayed idle for the idle timeout."""
        with self._mutex:
            connection.disarm()
            again = self.policy.idle_check(connection, time.monotonic())
            if again is None:
                return  # busy again (the next release re-arms the timer), or closed
            if again:
                connection.arm(again, lambda: self._idle_check(connection))
                return
            self._closing_add(connection)
        connection.stream.close_nowait()

    def _after_answer(self, connection: Connection) -> None:
        """Learn from a connection that answered: pipelining works, and the TLS
        session to resume next time (TLS 1.3 tickets come after the handshake)."""
        with self._mutex:
            if self.policy.answered(connection, time.monotonic()):
                self._wake_slot()  # a probe answered: the connection has room again
            # A resumed connection's session is the one saved; reading a session out of
            # the ssl module costs a serialisation round trip (~0.4 ms), and ~6 KB that
            # CPython 3.11/3.12 never free (gh-116810), so only a full handshake's (the
            # first, or one whose ticket the server refused) is read, and only when a
            # connection is made with it (_saved_session): a one-shot never reads it.
            if self._config.resumption and self.policy.keep_session(connection):
                reader = connection.stream.session_reader()
                self._session_source = (connection.attempt, reader, connection.tls)

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

    def close_soon(self) -> None:
        """The client is closing (under the mutex): stop the timers, fail the waiters."""
        self.closed = True
        for connection in self._pool:
            connection.disarm()
        while self._slot_waiters:
            self._wake_slot()

    def close_connections(self) -> None:
        """Close every connection now (queries in flight on them fail over to new
        ones)."""
        with self._mutex:
            connections = self.policy.close_all()
            for connection in connections:
                connection.disarm()
        for connection in connections:
            connection.close()

    def close(self) -> None:
        """Close the connections, and wait for those whose close was under way."""
        if self._connect_job is not None:  # a connect whose caller left
            self._connect_job.close()
        self.close_connections()
        with self._mutex:
            closing, self._closing = self._closing, set()
        for connection in closing:
            connection.stream.close()
