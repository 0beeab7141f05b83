"""The guard of the pure tiers (tests/unit, tests/fuzz): no sockets and no processes.

A tier's ``conftest.py`` imports the three ``pytest_runtest_*`` hooks below; every test
of that tier then runs behind the guard, in its setup (fixtures of every scope
included), its call and its teardown: making a socket (or connecting, binding or
listening one, or resolving a name), and starting a process (``subprocess``,
``os.fork``, ``os.posix_spawn``...) raise :class:`IOInPureTest` and fail the test, even
when the code under test catches the error. In-memory TLS (``ssl.MemoryBIO``,
``support.memtls``) and the socket pair an asyncio event loop wakes itself with are
not I/O. A test that needs more belongs in ``tests/servers/`` (docs/design.md, "Tests
in tiers").
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest


class IOInPureTest(RuntimeError):
    """A test of a pure tier made a socket or started a process.

    Not an ``OSError``: the client maps those to its own errors, which a test could
    then expect without noticing that it reached for the network.
    """


#: (object, attribute) pairs the guard replaces while a unit test runs.
_GUARDED: list[tuple[Any, str]] = [
    (socket.socket, "connect"),
    (socket.socket, "connect_ex"),
    (socket.socket, "bind"),
    (socket.socket, "listen"),
    (socket, "create_connection"),
    (socket, "create_server"),
    (socket, "getaddrinfo"),
    (subprocess.Popen, "_execute_child"),
    (os, "fork"),
    (os, "forkpty"),
    (os, "system"),
    (os, "posix_spawn"),
    (os, "posix_spawnp"),
    (os, "execv"),
    (os, "execve"),
]


@contextlib.contextmanager
def _refusing_io() -> Iterator[list[str]]:
    """Refuse I/O inside the block; yield the list of what was attempted."""
    attempts: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            attempts.append(name)
            raise IOInPureTest(f"{name}() in a pure tier: move the test to tests/servers/")

        return refused

    socket_init = socket.socket.__init__
    new_socket = refuse("socket.socket")

    def wrap_only(self: socket.socket, *args: Any, **kwargs: Any) -> None:
        # A socket object made around an existing descriptor (socket.socketpair(), which
        # asyncio's loops wake themselves with) is no new socket; anything else is.
        if kwargs.get("fileno") is None and len(args) < 4:
            new_socket()
        socket_init(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        for owner, attribute in _GUARDED:
            if hasattr(owner, attribute):
                name = f"{getattr(owner, '__name__', owner)}.{attribute}"
                patch.setattr(owner, attribute, refuse(name))
        patch.setattr(socket.socket, "__init__", wrap_only)
        yield attempts


def _guarded(phase: str) -> Generator[None, object, object]:
    with _refusing_io() as attempts:
        try:
            return (yield)
        finally:
            if attempts:
                tried = ", ".join(dict.fromkeys(attempts))
                pytest.fail(f"I/O in a pure tier ({phase}): {tried}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    """Fixture setup, whatever the fixture's scope (a session server would start here)."""
    return (yield from _guarded("setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """The test itself."""
    return (yield from _guarded("call"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    """Fixture teardown."""
    return (yield from _guarded("teardown"))
