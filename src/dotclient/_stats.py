"""What a client reports of itself: its counters (``client.stats``) and how each of its
servers is doing."""

from __future__ import annotations

import dataclasses

from ._exceptions import DoTError
from ._server import Server

__all__ = ["ClientStats", "ServerState"]


@dataclasses.dataclass(frozen=True)
class ServerState:
    """How one of a client's servers is doing (``client.stats.servers``, a snapshot)."""

    server: Server
    #: Failures in a row (connect, TLS, authentication, timeout, bad answers); 0 once a
    #: query is answered.
    failures: int = 0
    #: Seconds until the server is tried in its turn again; 0 when it is not backed off.
    retry_in: float = 0.0
    #: The error of its last failure, while ``failures`` is not 0.
    last_error: DoTError | None = None
    #: Responses this server delivered.
    responses: int = 0
    #: Connections open to it now, and queries in flight on them.
    open_connections: int = 0
    in_flight: int = 0
    #: Whether it answered pipelined queries: None until known.
    pipelining: bool | None = None
    #: The current limit on queries in flight per connection to it.
    max_in_flight: int = 0
    #: The address of the last connection opened to it (for a server given by name,
    #: the one Happy Eyeballs picked); None before the first.
    address: str | None = None


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
