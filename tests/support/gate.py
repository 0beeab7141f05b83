"""Helpers for tests driven by events: a server that holds answers until told, and
waits on conditions that never rest on how long something takes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from support.fakeserver import FakeConnection, answer


class Gate:
    """A handler answering at once, except names starting with ``held``: those wait
    until :attr:`opened` is set."""

    def __init__(self) -> None:
        self.opened = threading.Event()

    def __call__(self, conn: FakeConnection) -> None:
        while (query := conn.read_query()) is not None:
            if str(query.question[0].name).startswith("held"):
                self.opened.wait(20)
            conn.send_message(answer(query))


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``condition`` until it holds (the verdict never rests on how long)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.001)


def queued(client: Any) -> int:
    """Callers waiting for room on the client's (only) server."""
    return len(client._pools[0]._slot_waiters)
