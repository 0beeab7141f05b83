"""Fixtures only the server tier uses: a session unbound serving names of local web
servers, for the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dotclient.testing import DEFAULT_ZONE, IssuedCert, UnboundServer

from support.servers import start_server

#: The test zone plus names of local web servers: ``web`` (A 127.0.0.1), ``web6``
#: (AAAA ::1 only), ``both`` (A 127.0.0.1 and AAAA ::1) and ``webalias`` (CNAME web).
WEB_ZONE = DEFAULT_ZONE + (
    "web 300 IN A 127.0.0.1\n"
    "web6 300 IN AAAA ::1\n"
    "both 300 IN A 127.0.0.1\n"
    "both 300 IN AAAA ::1\n"
    "webalias 300 IN CNAME web\n"
)


@pytest.fixture(scope="session")
def web_unbound(server_cert: IssuedCert) -> Iterator[UnboundServer]:
    """A session unbound like ``unbound`` serving :data:`WEB_ZONE`, for the
    integration tests that fetch from local web servers by name."""
    server = start_server(UnboundServer, server_cert, zone=WEB_ZONE)
    try:
        yield server
    finally:
        server.stop()
