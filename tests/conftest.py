"""Shared fixtures: a throwaway CA, a server certificate and real unbound DoT servers."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

if importlib.util.find_spec("dotclient") is None:  # a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dotclient.testing import (  # noqa: E402
    IssuedCert,
    TestCA,
    UnboundNotFound,
    UnboundServer,
)

from modes import MODES  # noqa: E402

_UNBOUND_FIXTURES = frozenset({"unbound", "unbound_factory"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a real unbound server with ``@pytest.mark.unbound``."""
    for item in items:
        if _UNBOUND_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.unbound)


def _unbound_missing(exc: UnboundNotFound) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{exc} (CI=true: the unbound tests must run in CI)", pytrace=False)
    pytest.skip(str(exc))


def _start_unbound(cert: IssuedCert, **kwargs: Any) -> UnboundServer:
    try:
        server = UnboundServer(cert, **kwargs)
    except UnboundNotFound as exc:
        _unbound_missing(exc)
    server.start()
    return server


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
def ca_file(test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of a PEM file holding the ``test_ca`` certificate."""
    return test_ca.write_ca_file(tmp_path_factory.mktemp("ca") / "ca.pem")


@pytest.fixture(scope="session")
def unbound(server_cert: IssuedCert) -> Iterator[UnboundServer]:
    """A running unbound DoT server on 127.0.0.1 presenting ``server_cert``.

    Shared by the whole session: do not stop or restart it (use ``unbound_factory``).
    Skipped when unbound is not installed, or a failure when ``CI=true``.
    """
    server = _start_unbound(server_cert)
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
    servers: list[UnboundServer] = []

    def factory(cert: IssuedCert | None = None, **kwargs: Any) -> UnboundServer:
        server = _start_unbound(server_cert if cert is None else cert, **kwargs)
        servers.append(server)
        return server

    try:
        yield factory
    finally:
        for server in reversed(servers):
            server.stop()
