"""RFC 7766 section 6.2.2: one connection per server is the default (checked without
I/O; the pool against servers: tests/servers/test_connections_per_server.py)."""

from __future__ import annotations

from dotclient._config import DEFAULT_MAX_CONNECTIONS, ClientConfig


def test_the_default_is_one_connection_per_server() -> None:
    assert DEFAULT_MAX_CONNECTIONS == 1
    assert ClientConfig.from_options("127.0.0.1").max_connections == 1
