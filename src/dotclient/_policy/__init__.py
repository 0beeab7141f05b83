"""The pool's decisions, with no I/O: which connection takes a query, when one opens,
retires, stalls or idles out, whether a lost query goes out again, what a server has
taught about its limits, and how long to pause before trying a restarting server again.

Time is passed in (``now``) and deadlines are handed back, as in aioquic's connection;
the asyncio and blocking shells (``_async/pool.py``, ``_async/connection.py`` and their
generated twins) only carry the decisions out: they write, read, wait, wake and close.
``tests/unit/test_policy.py`` checks every rule here as a table, with a fake clock.
``_connection.py`` holds one connection's state and the stall rule, ``_pool.py`` the
pool's decisions.

Each connection has a named lifecycle (:class:`State`) and what the pool knows of how
the server ended it (:class:`Ending`) and of its TLS session (:class:`Session`).
"""

from ._connection import ConnectionState, Ending, Session, State
from ._pool import (
    Budget,
    ConnectFailure,
    Loss,
    PoolPolicy,
    Release,
    restart_pause,
)

__all__ = [
    "Budget",
    "ConnectFailure",
    "ConnectionState",
    "Ending",
    "Loss",
    "PoolPolicy",
    "Release",
    "Session",
    "State",
    "restart_pause",
]
