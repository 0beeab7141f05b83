"""Client counters, and the TLS session a client keeps for resumption."""

from __future__ import annotations

import dataclasses
import ssl

from ._failover import ServerState
from ._tls import TLSInfo

__all__ = ["ClientStats", "SavedSession"]


@dataclasses.dataclass
class ClientStats:
    """What a client has done since it was made, as returned by ``client.stats``
    (a snapshot: it does not change afterwards)."""

    #: TLS connections opened (handshakes completed and authenticated).
    connections_opened: int = 0
    #: Of those, how many resumed an earlier TLS session instead of a full handshake.
    sessions_resumed: int = 0
    #: Queries given to a connection to send (a resent query counts each time).
    queries_sent: int = 0
    #: Validated responses delivered.
    responses: int = 0
    #: Queries sent again because their connection closed or stalled under them.
    resent: int = 0
    #: Connections closed because they stayed idle for ``idle_timeout``.
    idle_closed: int = 0
    #: Times the client stopped pipelining to a server that dropped pipelined queries.
    pipelining_fallbacks: int = 0
    #: Responses dropped because their ID matched no query in flight.
    unmatched: int = 0
    #: Connections open now.
    open_connections: int = 0
    #: Queries in flight now on the open connections (not counting those finishing on
    #: connections already retired).
    in_flight: int = 0
    #: Whether the (first) server answered pipelined queries: None until known.
    pipelining: bool | None = None
    #: The current limit on queries in flight per connection (to the first server).
    max_in_flight: int = 0
    #: Times a query moved on to another server after one failed it.
    failovers: int = 0
    #: How each server is doing, in the order the client was given them.
    servers: tuple[ServerState, ...] = ()


@dataclasses.dataclass(frozen=True)
class SavedSession:
    """A TLS session to offer when reconnecting, with what its handshake established."""

    #: Index of the attempt in ``TLSPolicy.attempts()``: the context it belongs to.
    attempt: int
    session: ssl.SSLSession
    #: The authentication outcome of the handshake that made the session.
    tls: TLSInfo
