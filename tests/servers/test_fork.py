"""A blocking client inherited through os.fork(): the child must not touch the parent's
connections (their TLS state would break for both), and its idle timers must run."""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable

import pytest

import dotclient
from dotclient.testing import UnboundServer

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")


def in_child(body: Callable[[], bool]) -> int:
    """Run ``body`` in a forked child; its exit status: 0 when it returned True."""
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a process with threads may deadlock.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 3
        try:
            code = 0 if body() else 1
        except BaseException as exc:
            print(f"child: {exc!r}", file=sys.stderr)
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_forked_child_leaves_the_parents_connection_alone(
    unbound: UnboundServer, ca_file: str
) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    with dotclient.Client(spec, ca_file=ca_file) as client:
        assert client.resolve("a.example.test").addresses()

        def child() -> bool:
            for _ in range(5):
                client.resolve("a.example.test")
            # Its own connection, not the inherited one.
            return client.stats.connections_opened == 2

        assert in_child(child) == 0
        # Before the fix the child wrote on the parent's TLS connection: the parent's
        # next query met BAD_RECORD_MAC (and had to go out again on a new connection).
        assert client.resolve("a.example.test").addresses()
        assert client.resolve("a.example.test").addresses()
        assert client.stats.resent == 0
        assert client.stats.connections_opened == 1


def test_idle_timers_run_in_a_forked_child(unbound: UnboundServer, ca_file: str) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    with dotclient.Client(spec, ca_file=ca_file, idle_timeout=0.2) as client:
        assert client.resolve("a.example.test").addresses()  # starts the timer thread

        def child() -> bool:
            client.resolve("a.example.test")
            deadline = time.monotonic() + 20
            while client.stats.idle_closed == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            # Before the fix the timer thread was not recreated: nothing closed.
            return client.stats.idle_closed == 1 and client.stats.open_connections == 0

        assert in_child(child) == 0
