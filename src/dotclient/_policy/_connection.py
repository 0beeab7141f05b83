"""One connection as the pool's policy sees it: its named state and the stall rule.

No I/O, and time passed in. ``_async/connection.py`` (and its generated twin) extends
:class:`ConnectionState` with the stream and the waiting.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Iterable

from .._protocol import DoTProtocol

__all__ = ["ConnectionState", "Ending", "Session", "State"]

# Seconds of silence on a connection, with a query unanswered although answers came
# after it was sent, before the connection is taken to have dropped it.
_STALL = 0.4
# Answers to queries sent behind unanswered ones that show a server pipelines. A server
# that drops pipelined queries may still answer the first of each record it reads.
_PIPELINING_PROOF = 8


class State(enum.Enum):
    """Where a connection is in its life."""

    #: In the pool: it takes new queries while it has room.
    OPEN = "open"
    #: Retired: it takes no new query and closes when its last one ends (RFC 7766
    #: section 6.2.2: it still counts against ``max_connections`` meanwhile).
    DRAINING = "draining"
    #: Closed by this client (idle, ``close_connections()``, the client closing, a
    #: fork or another event loop): nothing about the server is learnt from it.
    CLOSED = "closed"


class Ending(enum.Enum):
    """What the pool knows of how the server ended a connection."""

    #: Nothing yet.
    NONE = "none"
    #: The server's close (or reset) was read while no query sent before the last
    #: answer was unanswered: an idle timeout or a restart, which teaches no limit.
    CLOSED_IDLE = "closed idle"
    #: ... while such a query was unanswered: a limit cutting a pipelined stream.
    CLOSED_BUSY = "closed busy"
    #: The close was taken into the pool's learning (once per connection).
    CLOSE_NOTED = "close noted"
    #: The connection stalled and the pool counted it (once per connection).
    STALL_NOTED = "stall noted"


class Session(enum.Enum):
    """The TLS session of a connection, for resumption."""

    #: A full handshake whose session has not been kept yet.
    UNSAVED = "unsaved"
    #: Kept (to be read when the next connection is made with it).
    SAVED = "saved"
    #: The connection resumed the session kept: nothing new to keep.
    RESUMED = "resumed"


# Members bound once: a lookup through the enum class costs ~70 ns on Python 3.11, and
# these are read for every query.
_OPEN, _DRAINING, _CLOSED = State.OPEN, State.DRAINING, State.CLOSED
_UNSAVED = Session.UNSAVED


class ConnectionState:
    """One connection as the policy sees it: its counts, its named state, and when its
    queries were sent and answered (for the stall rule). The shells' connection
    classes extend it with the stream and the waiting."""

    def __init__(self, protocol: DoTProtocol, now: float, resumed: bool = False) -> None:
        self.protocol = protocol
        self.state = _OPEN
        self.ending = Ending.NONE
        self.session = Session.RESUMED if resumed else Session.UNSAVED
        #: Queries assigned to this connection and not finished.
        self.reserved = 0
        #: Queries ever assigned to this connection.
        self.assigned = 0
        #: Answers that came for queries sent while another was unanswered.
        self.pipelined_answers = 0
        # When each unanswered query was sent, in sending order (dicts keep it), and
        # the IDs of those sent while another was unanswered.
        self._sent_at: dict[int, float] = {}
        self._order: collections.deque[int] = collections.deque()
        self._behind: set[int] = set()
        self.last_data = now
        self.last_answer = 0.0
        self.idle_since = now

    @property
    def torn(self) -> bool:
        """A write stopped inside a TLS record: the shells read it from the stream."""
        return False

    @property
    def flooded(self) -> bool:
        """The server sent more than the backend buffers: read from the stream."""
        return False

    @property
    def closed(self) -> bool:
        """Closed by this client."""
        return self.state is _CLOSED

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
    def usable(self) -> bool:
        """Open and not retired: it may take new queries."""
        return self.state is _OPEN and not (self.torn or self.protocol.closed)

    def mark_closed(self) -> None:
        """This client closes the connection (or lets it go)."""
        self.state = _CLOSED

    def note_sent(self, qid: int, now: float) -> None:
        """Query ``qid`` was registered for sending at ``now``."""
        if self._sent_at:
            self._behind.add(qid)
        self._sent_at[qid] = now
        self._order.append(qid)

    def note_read(self, ready: Iterable[int], now: float) -> None:
        """Data came at ``now``, completing the queries ``ready``."""
        self.last_data = now
        sent_at, behind = self._sent_at, self._behind
        for qid in ready:
            self.last_answer = now
            sent_at.pop(qid, None)
            if qid in behind:
                # Answered although sent while another was unanswered.
                behind.discard(qid)
                self.pipelined_answers += 1

    def note_gone(self, qid: int) -> None:
        """Query ``qid`` finished or was given up."""
        self._sent_at.pop(qid, None)
        self._behind.discard(qid)
        self._trim_order()

    def _trim_order(self) -> None:
        """Drop the answered or given-up queries at the head of ``_order``, so that it
        holds no more than the span of the oldest unanswered query."""
        order, sent_at = self._order, self._sent_at
        while order and order[0] not in sent_at:
            order.popleft()

    def stall_deadline(self) -> float | None:
        """When silence means the server dropped the queries pipelined behind an
        answered one: only once some answer has come after they were sent."""
        self._trim_order()
        order, sent_at = self._order, self._sent_at
        if not order or self.last_answer <= sent_at[order[0]]:
            return None
        return self.last_data + _STALL

    def read_deadline(self, deadline: float, watch: bool) -> float:
        """Until when the reader reads: the query's ``deadline``, or sooner when it
        ``watch``es for a stall (pipelining not proven) and one is due first."""
        if not watch or self.pipelined:
            return deadline
        stall_at = self.stall_deadline()
        if stall_at is not None and stall_at < deadline:
            return stall_at
        return deadline

    def note_close(self) -> None:
        """The server closed or reset the connection: note whether it was busy, with a
        query sent before the last answer still unanswered, as when a limit of queries
        per connection cuts a pipelined stream. A connection found closed by the query
        sent after it went quiet was closed while idle (an idle timeout, a restart),
        which says nothing of such a limit."""
        if self.ending is Ending.CLOSE_NOTED or self.ending is Ending.STALL_NOTED:
            return
        last = self.last_answer
        busy = any(sent < last for sent in self._sent_at.values())
        self.ending = Ending.CLOSED_BUSY if busy else Ending.CLOSED_IDLE
