"""Shared fixtures: a throwaway CA, a server certificate and real DoT servers.

unbound, BIND 9 named and dnsdist run on 127.0.0.1 (``dotclient.testing``). A missing
binary skips the tests that need it, or fails them when ``CI=true``.
"""

from __future__ import annotations

import datetime
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("dotclient") is None:  # a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dotclient._serve._cache import Cache  # noqa: E402
from dotclient.testing import (  # noqa: E402
    DnsdistServer,
    IssuedCert,
    NamedServer,
    TestCA,
    UnboundServer,
    self_signed_cert,
)

from support.modes import MODES  # noqa: E402
from support.servers import server_factory, start_server  # noqa: E402
from support.stub import StubThread  # noqa: E402

# marker -> the fixtures that start that server
_SERVER_FIXTURES = {
    "unbound": frozenset({"unbound", "unbound_factory"}),
    "named": frozenset({"named", "named_factory"}),
    "dnsdist": frozenset({"dnsdist", "dnsdist_factory"}),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a real server with its marker (``@pytest.mark.named``...)."""
    for item in items:
        used = frozenset(getattr(item, "fixturenames", ()))
        for marker, fixtures in _SERVER_FIXTURES.items():
            if fixtures & used:
                item.add_marker(marker)


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
    """Which API a test drives: the blocking one or asyncio (see tests/support/modes.py)."""
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
    server = start_server(UnboundServer, server_cert)
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
    with server_factory(UnboundServer, server_cert) as factory:
        yield factory


@pytest.fixture(scope="session")
def named(server_cert: IssuedCert) -> Iterator[NamedServer]:
    """A running BIND 9 named on 127.0.0.1: DoT on ``port`` presenting ``server_cert``,
    plain DNS on ``plain_port`` (the backend of ``dnsdist``).

    Shared by the whole session: do not stop or restart it (use ``named_factory``).
    """
    server = start_server(NamedServer, server_cert, plain_port=0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def named_factory(server_cert: IssuedCert) -> Iterator[Callable[..., NamedServer]]:
    """Start extra named servers, stopped at the end of the test:
    ``named_factory(cert=None, **kwargs)`` as ``unbound_factory``."""
    with server_factory(NamedServer, server_cert) as factory:
        yield factory


@pytest.fixture(scope="session")
def dnsdist(server_cert: IssuedCert, named: NamedServer) -> Iterator[DnsdistServer]:
    """A running dnsdist on 127.0.0.1 with its default settings: DoT presenting
    ``server_cert``, forwarding to the session's ``named``.

    Shared by the whole session: do not stop or restart it (use ``dnsdist_factory``).
    """
    assert named.plain_port
    server = start_server(DnsdistServer, server_cert, backend=(named.host, named.plain_port))
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
    with server_factory(
        DnsdistServer, server_cert, backend=(named.host, named.plain_port)
    ) as factory:
        yield factory


@pytest.fixture
def start_stub(ca_file: str) -> Iterator[Callable[..., StubThread]]:
    """Start ``dotclient serve`` stubs, closed at the end of the test: ``start(upstream,
    **kwargs)``, *upstream* a server or a spec, keyword arguments for :class:`Stub`."""
    stubs: list[StubThread] = []

    def start(upstream: UnboundServer | str, **kwargs: Any) -> StubThread:
        spec = upstream if isinstance(upstream, str) else f"127.0.0.1:{upstream.port}#dot.test"
        stub = StubThread(spec, ca_file, **kwargs)
        stubs.append(stub)
        return stub

    yield start
    for stub in stubs:
        stub.close()


@pytest.fixture
def stub(unbound: UnboundServer, start_stub: Callable[..., StubThread]) -> StubThread:
    """A stub with a cache, in front of the session's ``unbound``."""
    return start_stub(unbound, cache=Cache(1000))
