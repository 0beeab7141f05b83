"""What must stay bounded however long a client runs: per-connection bookkeeping,
and what a closed client keeps alive. The long runs themselves are
benchmarks/rss_soak.py and benchmarks/cancel_storm.py (docs/reliability.md)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import dotclient
from dotclient.testing import UnboundServer

from support.modes import open_client


def _pool(client: Any) -> Any:
    """The (only) server pool of a client, blocking or driven asyncio."""
    return getattr(client, "client", client)._pools[0]


def test_the_per_connection_order_of_queries_stays_bounded(
    mode: str, unbound: UnboundServer, ca_file: str
) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file, max_connections=1) as client:
        for _ in range(3):
            outcomes = client.resolve_many(["a.example.test"] * 400)
            assert all(isinstance(o, dotclient.Response) for o in outcomes), outcomes[:3]
        # Once pipelining is proven the stall detector, which used to trim the list,
        # no longer runs: before the fix it kept an entry per query (~1,000 here).
        assert client.stats.pipelining
        (connection,) = _pool(client)._pool
        assert len(connection._order) == 0
        assert len(connection._sent_at) == 0


def test_a_closed_client_is_not_kept_alive_by_its_idle_timers(
    mode: str, unbound: UnboundServer, ca_file: str
) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file, idle_timeout=60) as client:
        assert client.resolve("a.example.test").addresses()  # arms a 60 s idle timer
        inner = getattr(client, "client", client)
        config = weakref.ref(inner._config)
        del inner
    del client
    gc.collect()
    # Before the fix the blocking backend's timer heap held the cancelled timer's
    # callback, so the client, its configuration and its SSLContext (then one per
    # client, with the CA bundle; now one per TLS setting, shared) lived until the
    # timer's time came.
    assert config() is None
