"""Starting ``dotclient.testing`` servers in tests: a missing binary skips the test, or
fails it under ``CI=true``, where every server must be installed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import pytest

from dotclient.testing import (
    DnsdistServer,
    IssuedCert,
    NamedServer,
    ServerNotFound,
    UnboundServer,
)

Server = TypeVar("Server", UnboundServer, NamedServer, DnsdistServer)

#: Any of the real DoT servers ``dotclient.testing`` runs.
AnyServer = UnboundServer | NamedServer | DnsdistServer


def server_missing(exc: ServerNotFound) -> NoReturn:
    """Skip the test, or fail it under ``CI=true``, where every server must be installed."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{exc} (CI=true: the server tests must run in CI)", pytrace=False)
    pytest.skip(str(exc))


def start_server(kind: type[Server], cert: IssuedCert, **kwargs: Any) -> Server:
    """Start a ``kind`` server presenting ``cert`` (``kwargs`` go to its constructor)."""
    try:
        server = kind(cert, **kwargs)
    except ServerNotFound as exc:
        server_missing(exc)
    server.start()
    return server


@contextlib.contextmanager
def server_factory(
    kind: type[Server], default_cert: IssuedCert, **defaults: Any
) -> Iterator[Callable[..., Server]]:
    """``factory(cert=None, **kwargs)`` starting ``kind`` servers (``cert`` defaults to
    the given one, ``kwargs`` to ``defaults``); all are stopped on exit."""
    servers: list[Server] = []

    def factory(cert: IssuedCert | None = None, **kwargs: Any) -> Server:
        server = start_server(kind, cert or default_cert, **{**defaults, **kwargs})
        servers.append(server)
        return server

    try:
        yield factory
    finally:
        for server in reversed(servers):
            server.stop()
