"""One server's pool as its policy sees it: which connection takes a query, when one
opens or retires, whether a lost query goes out again, what the server has taught, when
an idle connection closes, and the pause before trying a restarting server again.

No I/O, and time passed in: ``_async/pool.py`` (and its generated twin) asks and
carries the answers out.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Generic, TypeVar

from .._exceptions import DoTError, NetworkError
from .._stats import ClientStats
from ._connection import _CLOSED, _DRAINING, _OPEN, _UNSAVED, ConnectionState, Ending, Session

__all__ = ["Budget", "ConnectFailure", "Loss", "PoolPolicy", "Release", "restart_pause"]

# taken for a newer query's (RFC 5452 section 9.2 asks for unpredictable IDs).
_MAX_ABANDONED = 4096
# First pause before reconnecting to a server that closed a connection under queries
# and then refused a new one (a restart); doubled each time, within the query's timeout.
_RECONNECT_BACKOFF = 0.05
# Seconds a limit of queries per connection learnt from server closes holds (and the
# probe window after an early cut). A real limit is learnt again at the cost of a few
# resends; one learnt from restarts under load that happened to come twice in a row
# must not cost a reconnect every few queries for good.
_LIMIT_LIFETIME = 30.0
# How often a query may go out again after its connection died under it (or stalled).
_MAX_SENDS = 3
# Resends not counted in _MAX_SENDS: the query was never written, or its connection
# was closed while answering others (a server's limit on queries per connection).
_MAX_FREE_RESENDS = 16
# ... and from a server that has not answered this client yet.
_MAX_FREE_UNANSWERED = 2
# An idle timer firing this close to its deadline closes the connection.
_IDLE_SLACK = 0.001
# The share of the keepalive timeout a server offers (RFC 7828) that a connection
# stays idle: the client closes first (section 3.2.2).
_KEEPALIVE_SHARE = 0.9


class Loss(enum.Enum):
    """What becomes of a query whose connection was lost under it."""

    #: Send it again, on another connection.
    RESEND = "resend"
    #: Fail with the error the connection gave.
    RAISE = "raise"
    #: Fail with a fresh public ``ConnectionLost`` (resends used up, or the client
    #: closed), in place of the private reason the shell got.
    LOST = "lost"


class Release(enum.Enum):
    """What the shell does with a connection after a query let go of it."""

    #: Still busy: nothing.
    BUSY = "busy"
    #: Retired and done: close it now (without waiting).
    CLOSE = "close"
    #: Idle: arm its idle timer unless one is armed.
    IDLE = "idle"


_BUSY, _CLOSE, _IDLE = Release.BUSY, Release.CLOSE, Release.IDLE

C = TypeVar("C", bound=ConnectionState)


@dataclasses.dataclass(frozen=True)
class ConnectFailure:
    """What a pool's ``exchange`` returns, in place of raising, when the query got no
    connection to its server (never seen by callers): the error, and whether the
    server may be restarting, which the client waits for within the deadline."""

    error: DoTError
    restarting: bool


class Budget:
    """The resends of one query: created at its first loss, so an answered query
    costs nothing."""

    __slots__ = ("charged", "free", "stalls")

    def __init__(self) -> None:
        #: Sends lost with their connection and counted against ``_MAX_SENDS``.
        self.charged = 0
        #: Losses forgiven as the server's doing (bounded too).
        self.free = 0
        #: Stalls met (more than ``_MAX_SENDS`` fail the query).
        self.stalls = 0


class PoolPolicy(Generic[C]):
    """The decisions of one server's pool, and what it has learnt about the server:
    whether it pipelines, its limit of queries per connection (and until when that
    holds), and whether new connections must probe with one query first.

    It owns the lists of connections (``pool``, ``draining``) and updates the client's
    counters (``stats``); every method runs under the client's mutex.
    """

    def __init__(
        self, max_in_flight: int, max_connections: int, idle_timeout: float, stats: ClientStats
    ) -> None:
        #: Connections that take queries, and retired ones still finishing theirs.
        self.pool: list[C] = []
        self.draining: set[C] = set()
        #: Idle connections :meth:`take` found flooded and closed: the shell closes them.
        self.flooded: list[C] = []
        #: The connection :meth:`take` gave has room for another query.
        self.pass_on = False
        #: A connect for this pool is under way (one at a time).
        self.connecting = False
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        #: Queries in flight per connection: ``max_in_flight``, 1 after two stalls.
        self.max_in_flight = max_in_flight
        #: Whether the server answers pipelined queries: None until known.
        self.pipelining: bool | None = None
        self.stall_count = 0
        #: Queries per connection the server's closes taught (see
        #: :meth:`_server_closed`), and until when that holds; the answers on the
        #: connection it closed last.
        self.learnt_limit: int | None = None
        self.learnt_until = 0.0
        self.last_close: int | None = None
        #: Until then, a new connection takes one query until its first answer (see
        #: :meth:`_cut_early`).
        self.probe_until = 0.0
        #: Connections opened, and responses delivered, by this server.
        self.opened = 0
        self.responses = 0
        self.stats = stats

    # Which connection takes a query, and when one opens.

    def probing(self, now: float) -> bool:
        """New connections take one query until their first answer."""
        return bool(self.probe_until) and now < self.probe_until

    def room(self, connection: C, probing: bool) -> int:
        """How many queries ``connection`` may carry at once."""
        if probing and not connection.protocol.answered:
            return 1
        return self.max_in_flight

    def take(self, now: float) -> C | None:
        """The connection for one more query (counted on it), or None: the least busy
        usable one with room and a free ID. Idle flooded ones are closed on the way
        (into :attr:`flooded`); :attr:`pass_on` says whether the one taken has room
        left (wake the next caller waiting)."""
        best: C | None = None
        probing = self.probing(now)
        for connection in self.pool:
            if not connection.reserved and connection.flooded:
                self.flooded.append(connection)
                continue
            if connection.reserved < self.room(connection, probing):
                if connection.has_ids and connection.usable:
                    if best is None or connection.reserved < best.reserved:
                        best = connection
        if self.flooded:
            for connection in self.flooded:
                connection.mark_closed()
                self.unpool(connection)
        if best is not None:
            self.assign(best, now)
            self.pass_on = best.reserved < self.room(best, probing)
        return best

    def may_open(self) -> bool:
        """Start a connect now: none under way, and fewer than ``max_connections`` open
        (draining ones included). Marks the connect as under way."""
        if self.connecting or self.active() >= self.max_connections:
            return False
        self.connecting = True
        return True

    def active(self) -> int:
        """Connections open to the server: usable ones, and retired ones still
        finishing queries unless the server has closed them already."""
        draining = sum(1 for c in self.draining if not (c.closed or c.protocol.closed))
        return sum(1 for c in self.pool if c.usable) + draining

    def connect_failed(self) -> None:
        """The connect under way failed (or was interrupted)."""
        self.connecting = False

    def connect_failure(self, error: DoTError) -> ConnectFailure:
        """A query got no connection: a server that served this client and now cannot
        be reached (refused, or lost in the handshake) may be restarting."""
        return ConnectFailure(error, self.opened > 0 and isinstance(error, NetworkError))

    def connected(self, connection: C) -> None:
        """A connect finished: count it."""
        self.connecting = False
        self.opened += 1
        self.stats.connections_opened += 1
        if connection.session is Session.RESUMED:
            self.stats.sessions_resumed += 1

    def add(self, connection: C, now: float) -> int:
        """Pool a new connection with one query on it; returns how many more queries
        it has room for (slot waiters to wake)."""
        self.pool.append(connection)
        self.assign(connection, now)
        probing = self.probing(now)
        room = self.room(connection, probing) - 1
        if probing and not room and self.active() < self.max_connections:
            return 1  # a probe takes no more: a waiter may open another connection
        return room

    def assign(self, connection: C, now: float) -> None:
        """Count one more query on ``connection``; retire it once it reaches the limit a
        server taught, unless that has expired (then it is learnt again)."""
        connection.reserved += 1
        connection.assigned += 1
        self.stats.queries_sent += 1
        limit = self.learnt_limit
        if limit is not None and connection.assigned >= limit:
            if now > self.learnt_until:
                self.learnt_limit = self.last_close = None
            else:
                # The server will close it after this many: send the rest elsewhere.
                self.unpool(connection)

    def unpool(self, connection: C) -> None:
        """Take ``connection`` out of the pool for good: it takes no new queries and
        closes when its last one ends."""
        if connection.state is _OPEN:
            connection.state = _DRAINING
        if connection in self.pool:
            self.pool.remove(connection)
            self.stats.unmatched += connection.protocol.unmatched
            if connection.reserved and not connection.closed:
                self.draining.add(connection)

    # After a query: released, answered, lost, stalled, timed out.

    def release(self, connection: C) -> Release:
        """A query let go of ``connection``: retire it if it cannot take a full load any
        more, and say whether it closes, idles or stays busy."""
        connection.reserved -= 1
        if not connection.reserved:
            self.draining.discard(connection)
        protocol = connection.protocol
        if (
            protocol.abandoned >= _MAX_ABANDONED
            # Abandoned IDs are never handed out again on their connection: one left
            # with fewer free IDs than a full load is retired, so a new one may open
            # (with max_connections=1, nothing else could take the queries).
            or protocol.QUERY_IDS - protocol.abandoned < self.max_in_flight
            or protocol.closed
            or connection.torn
        ):
            self.unpool(connection)
        if connection.reserved:
            return _BUSY
        if connection.state is _DRAINING:
            connection.state = _CLOSED
            return _CLOSE
        return _IDLE

    def idle(self, connection: C, now: float) -> None:
        """``connection`` went idle at ``now`` (after :meth:`release` said so)."""
        connection.idle_since = now

    def answered(self, connection: C, now: float) -> bool:
        """A query on ``connection`` was answered: count it, learn that the server
        pipelines, retire the connection on a keepalive timeout of 0 (RFC 7828 section
        3.2.2: close soon). Returns whether a probe answered (wake a slot waiter)."""
        self.stats.responses += 1
        self.responses += 1
        if connection.pipelined and self.pipelining is None:
            self.pipelining = True
        if connection.protocol.keepalive_timeout == 0 and connection.state is _OPEN:
            self.unpool(connection)
        return connection.reserved < self.max_in_flight and self.probing(now)

    def keep_session(self, connection: C) -> bool:
        """Whether to keep the session of ``connection`` after an answer (TLS 1.3
        tickets come after the handshake): once, and only from a full handshake."""
        if connection.session is not _UNSAVED:
            return False
        connection.session = Session.SAVED
        return True

    def lost(
        self,
        budget: Budget,
        connection: C,
        *,
        unsent: bool,
        reset: bool,
        before: int,
        closing: bool,
        now: float,
    ) -> Loss:
        """A query's ``connection`` was lost under it: resend it, or fail. ``unsent``:
        it was never written; ``reset``: the connection was reset (or a write met a
        broken pipe); ``before``: the client's responses when it was sent;
        ``closing``: the client is closing (every query fails)."""
        self._server_closed(connection, now)
        budget.charged += 1
        progress = connection.protocol.answered > 0 or self.stats.responses > before
        # A connection cut under several queries at once looks like a limit per
        # connection, whose close (a reset, often seen as a plain close by the ssl
        # module) may discard every answer sent: from a server that has answered this
        # client, or with a reset. A server that closes on a lone query, or on
        # everything before any answer, is failing, and pays.
        early = self._cut_early(connection, now)
        cut = connection.assigned > 1 and (self.responses > 0 or reset or early)
        # Not written: free, unless the server closed a new connection at once, before
        # any answer (as if it had been written, and then closed).
        free = (unsent and (connection.closed or progress)) or progress or cut
        if free and not closing:
            # The server's doing (a limit per connection, an idle close): not counted
            # as a failed send, but still bounded, and by the deadline. A server that
            # never answered this client gets few: it may be resetting everything.
            budget.free += 1
            if budget.free <= (
                _MAX_FREE_RESENDS if self.responses or early else _MAX_FREE_UNANSWERED
            ):
                budget.charged -= 1
        if closing or budget.charged >= _MAX_SENDS:
            return Loss.LOST if closing or unsent else Loss.RAISE
        self.stats.resent += 1
        return Loss.RESEND

    def stalled(self, budget: Budget, connection: C, closing: bool) -> Loss:
        """``connection`` stalled under a query: resend it, not counted as a send (after
        two stalls no query can stall behind another), up to ``_MAX_SENDS`` stalls."""
        self._note_stall(connection)
        budget.stalls += 1
        if closing or budget.stalls > _MAX_SENDS:
            return Loss.LOST
        self.stats.resent += 1
        return Loss.RESEND

    def timed_out(self, connection: C, sent: float) -> bool:
        """A query sent at ``sent`` timed out: retire its connection if nothing at all
        came back since, or the stream stopped inside a frame."""
        return connection.last_data < sent or bool(connection.protocol.partial)

    def _server_closed(self, connection: C, now: float) -> None:
        """Learn from a connection the server closed while busy with pipelined queries:
        two such closes in a row, each after some answers, look like a limit on queries
        per connection. The larger count is taken: the server did answer that many, and
        a close that resets the connection can lose the last answers, so the smaller
        may be short of the limit. Closes of idle connections teach nothing, and what is
        learnt holds for ``_LIMIT_LIFETIME`` seconds."""
        ending = connection.ending
        if connection.closed or not (ending is Ending.CLOSED_BUSY or ending is Ending.CLOSED_IDLE):
            # Closed by this client (idle, close_connections); noted already; or the
            # close is not read yet (a write failed first), so the count of answers
            # is not final: a query failing after the read notes it.
            return
        connection.ending = Ending.CLOSE_NOTED
        answered = connection.protocol.answered
        if not (answered and ending is Ending.CLOSED_BUSY):
            return  # closed before any answer, or while idle: nothing to learn
        last, self.last_close = self.last_close, answered
        if last is None:
            return
        self.learnt_limit = max(last, answered)
        self.learnt_until = now + _LIMIT_LIFETIME

    def _cut_early(self, connection: C, now: float) -> bool:
        """``connection`` was lost under pipelined queries before answering any, not by
        this client: from now on a new connection proves itself with one query before
        it takes more, for ``_LIMIT_LIFETIME`` seconds. Returns whether it was."""
        if connection.closed or connection.protocol.answered or connection.assigned < 2:
            return False
        self.probe_until = now + _LIMIT_LIFETIME
        return True

    def _note_stall(self, connection: C) -> None:
        """Count a stalled connection once. Once may be a slow answer behind a quiet
        connection; at the second, the server gets one query per connection at a time
        from then on."""
        if connection.ending is Ending.STALL_NOTED:
            return  # each of its queries reports the same stall
        connection.ending = Ending.STALL_NOTED
        self.stall_count += 1
        if self.max_in_flight != 1 and self.stall_count >= 2:
            self.max_in_flight = 1
            self.pipelining = False
            self.stats.pipelining_fallbacks += 1

    # Idle connections.

    def idle_timeout_of(self, connection: C) -> float:
        """Our idle timeout, or shorter if the server offered one (RFC 7828 section
        3.2.2: the client closes before the server would)."""
        offered = connection.protocol.keepalive_timeout
        if offered is None:
            return self.idle_timeout
        return max(min(self.idle_timeout, offered * _KEEPALIVE_SHARE), 0.0)

    def idle_check(self, connection: C, now: float) -> float | None:
        """The idle timer of ``connection`` fired at ``now``. Returns None when there is
        nothing to do (busy again: the next release arms it; or closed), the seconds
        after which to check again (it was busy meanwhile), or 0.0: close it now (it is
        marked closed, out of the pool, and counted)."""
        if connection.reserved or connection.closed:
            return None
        left = connection.idle_since + self.idle_timeout_of(connection) - now
        if left > _IDLE_SLACK and connection.state is _OPEN:
            return left
        connection.mark_closed()
        self.unpool(connection)
        self.stats.idle_closed += 1
        return 0.0

    # Letting go of everything.

    def close_all(self) -> list[C]:
        """Every connection to close now, retired ones still finishing queries included
        ("every connection"): marked closed by this client and out of the pool."""
        connections = [*self.pool, *(c for c in self.draining if not c.closed)]
        self.draining = set()
        for connection in connections:
            connection.mark_closed()  # by us: nothing to learn from (_server_closed)
            self.unpool(connection)
        return connections

    def forget_all(self) -> list[C]:
        """Every connection, dropped with no I/O (a fork, a closed event loop): marked
        closed and forgotten; returns them for the shell to let go of their streams."""
        connections = [*self.pool, *self.draining]
        for connection in connections:
            connection.mark_closed()
        self.pool.clear()
        self.draining = set()
        self.connecting = False
        return connections


def restart_pause(attempt: int, deadline: float, now: float) -> float | None:
    """The pause before walking the servers again when one that served this client
    refused to connect (a restart): 50 ms, doubled at each ``attempt`` (0, 1, ...),
    while the ``deadline`` leaves room for it; None when it does not."""
    pause = _RECONNECT_BACKOFF * 2**attempt
    return pause if deadline - now >= pause else None
