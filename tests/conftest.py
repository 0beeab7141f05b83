"""Shared fixtures: a throwaway CA, a server certificate and real DoT servers.

unbound, BIND 9 named and dnsdist run on 127.0.0.1 (``dotclient.testing``). A missing
binary skips the tests that need it, or fails them when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

if importlib.util.find_spec("dotclient") is None:  # a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dotclient.testing import (  # noqa: E402
    DEFAULT_ZONE,
    DnsdistServer,
    IssuedCert,
    NamedServer,
    ServerNotFound,
    TestCA,
    UnboundServer,
    self_signed_cert,
)

from modes import MODES  # noqa: E402

# marker -> the fixtures that start that server
_SERVER_FIXTURES = {
    "unbound": frozenset({"unbound", "unbound_factory"}),
    "named": frozenset({"named", "named_factory"}),
    "dnsdist": frozenset({"dnsdist", "dnsdist_factory"}),
}

Server = TypeVar("Server", UnboundServer, NamedServer, DnsdistServer)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a real server with its marker (``@pytest.mark.named``...)."""
    for item in items:
        used = frozenset(getattr(item, "fixturenames", ()))
        for marker, fixtures in _SERVER_FIXTURES.items():
            if fixtures & used:
                item.add_marker(marker)


def server_missing(exc: ServerNotFound) -> NoReturn:
    """Skip the test, or fail it under ``CI=true``, where every server must be installed."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{exc} (CI=true: the server tests must run in CI)", pytrace=False)
    pytest.skip(str(exc))


def _start(kind: type[Server], cert: IssuedCert, **kwargs: Any) -> Server:
    try:
        server = kind(cert, **kwargs)
    except ServerNotFound as exc:
        server_missing(exc)
    server.start()
    return server


@contextlib.contextmanager
def _factory(
    kind: type[Server], default_cert: IssuedCert, **defaults: Any
) -> Iterator[Callable[..., Server]]:
    """``factory(cert=None, **kwargs)`` starting ``kind`` servers (``cert`` defaults to
    the given one, ``kwargs`` to ``defaults``); all are stopped on exit."""
    servers: list[Server] = []

    def factory(cert: IssuedCert | None = None, **kwargs: Any) -> Server:
        server = _start(kind, cert or default_cert, **{**defaults, **kwargs})
        servers.append(server)
        return server

    try:
        yield factory
    finally:
        for server in reversed(servers):
            server.stop()


@pytest.fixture
def no_false_stalls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lengthen the client's stall window (``_STALL``, 0.4 s of silence while a server's
    pipelining is unproven) beyond any query's timeout, in both clients.

    For tests against servers that never drop pipelined queries (unbound, named,
    dnsdist): on a loaded machine a server can fall silent for 0.4 s, and the client
    then takes it for one that drops queries, retires the connection and resends, which
    changes the connections, resends and pipelining those tests count. A server that
    did drop a query would make it time out instead, and still fail the test.
    """
    from dotclient._policy import _connection

    monkeypatch.setattr(_connection, "_STALL", 60.0)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Which API a test drives: the blocking one or asyncio (see tests/modes.py)."""
    return str(request.param)


@pytest.fixture(scope="session")
def test_ca() -> TestCA:
    """The session's throwaway CA."""
    return TestCA()


@pytest.fixture(scope="session")
def server_cert(test_ca: TestCA) -> IssuedCert:
    """A server certificate from ``test_ca`` for dot.test, localhost, 127.0.0.1 and ::1."""
    return test_ca.issue("dot.test", "localhost", "127.0.0.1", "::1")


@pytest.fixture(scope="session")
def certs(test_ca: TestCA, server_cert: IssuedCert) -> dict[str, IssuedCert]:
    """Certificates for dot.test: ``good`` (``server_cert``), ``expired`` (from
    ``test_ca``), ``wrong-name`` (for other.test) and ``self-signed``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "good": server_cert,
        "expired": test_ca.issue(
            "dot.test",
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        ),
        "wrong-name": test_ca.issue("other.test"),
        "self-signed": self_signed_cert("dot.test"),
    }


@pytest.fixture(scope="session")
def ca_file(test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of a PEM file holding the ``test_ca`` certificate."""
    return test_ca.write_ca_file(tmp_path_factory.mktemp("ca") / "ca.pem")


@pytest.fixture(scope="session")
def unbound(server_cert: IssuedCert) -> Iterator[UnboundServer]:
    """A running unbound DoT server on 127.0.0.1 presenting ``server_cert``.

    Shared by the whole session: do not stop or restart it (use ``unbound_factory``).
    Skipped when unbound is not installed, or a failure when ``CI=true``.
    """
    server = _start(UnboundServer, server_cert)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def unbound_factory(server_cert: IssuedCert) -> Iterator[Callable[..., UnboundServer]]:
    """Start extra unbound servers, stopped at the end of the test.

    Call it as ``unbound_factory(cert=None, **kwargs)``: *cert* defaults to
    ``server_cert``; keyword arguments go to :class:`UnboundServer`
    (``extra_config``, ``host``, ``port``, ``zone``, ...). Returns the started server.
    """
    with _factory(UnboundServer, server_cert) as factory:
        yield factory


@pytest.fixture(scope="session")
def named(server_cert: IssuedCert) -> Iterator[NamedServer]:
    """A running BIND 9 named on 127.0.0.1: DoT on ``port`` presenting ``server_cert``,
    plain DNS on ``plain_port`` (the backend of ``dnsdist``).

    Shared by the whole session: do not stop or restart it (use ``named_factory``).
    """
    server = _start(NamedServer, server_cert, plain_port=0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def named_factory(server_cert: IssuedCert) -> Iterator[Callable[..., NamedServer]]:
    """Start extra named servers, stopped at the end of the test:
    ``named_factory(cert=None, **kwargs)`` as ``unbound_factory``."""
    with _factory(NamedServer, server_cert) as factory:
        yield factory


@pytest.fixture(scope="session")
def dnsdist(server_cert: IssuedCert, named: NamedServer) -> Iterator[DnsdistServer]:
    """A running dnsdist on 127.0.0.1 with its default settings: DoT presenting
    ``server_cert``, forwarding to the session's ``named``.

    Shared by the whole session: do not stop or restart it (use ``dnsdist_factory``).
    """
    assert named.plain_port
    server = _start(DnsdistServer, server_cert, backend=(named.host, named.plain_port))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dnsdist_factory(
    server_cert: IssuedCert, named: NamedServer
) -> Iterator[Callable[..., DnsdistServer]]:
    """Start dnsdist servers with custom settings, stopped at the end of the test.

    Call it as ``dnsdist_factory(cert=None, **kwargs)``: *cert* defaults to
    ``server_cert``; keyword arguments go to :class:`DnsdistServer`
    (``max_queries_per_connection``, ``max_in_flight``, ``extra_config``, ...). The
    backend is the session's ``named`` unless ``backend=`` is given (``backend=None``:
    dnsdist starts its own named, e.g. for a custom ``zone``).
    """
    assert named.plain_port
    with _factory(DnsdistServer, server_cert, backend=(named.host, named.plain_port)) as factory:
        yield factory


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
    server = _start(UnboundServer, server_cert, zone=WEB_ZONE)
    try:
        yield server
    finally:
        server.stop()
