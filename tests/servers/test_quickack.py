"""Quick ACKs where a server without TCP_NODELAY needs them, and only there.

A server that does not set TCP_NODELAY holds what it writes behind an unacknowledged
segment until our ACK comes (Nagle), and a delayed ACK takes ~40 ms. The streams ask
the kernel for a quick ACK (``quickack()``) before they wait while something received
is unacknowledged; a write of ours carries the ACK, so sequential lookups on a kept
connection need none (each used to cost a system call and a bare ACK packet). These
tests count the calls, so no verdict rests on timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dotclient._backends import _async_stream, _sync_stream
from dotclient._backends import quickack as real_quickack
from dotclient.testing import IssuedCert

from support.fakeserver import FakeConnection, FakeServer, answer, echo_handler, frame
from support.modes import open_client


class Recorder:
    """Counts quickack() calls (passing them on to the real one)."""

    def __init__(self) -> None:
        self.calls = 0
        self.after: threading.Event | None = None
        self.seen_after = threading.Event()

    def __call__(self, sock: Any) -> None:
        self.calls += 1
        if self.after is not None and self.after.is_set():
            self.seen_after.set()
        real_quickack(sock)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    recorder = Recorder()
    monkeypatch.setattr(_sync_stream, "quickack", recorder)
    monkeypatch.setattr(_async_stream, "quickack", recorder)
    yield recorder


def test_sequential_lookups_on_a_kept_connection_need_no_quick_ack(
    mode: str, server_cert: IssuedCert, ca_file: str, recorder: Recorder
) -> None:
    with FakeServer(server_cert, echo_handler) as server:
        with open_client(mode, server.spec, ca_file=ca_file, timeout=10) as client:
            client.resolve("first.test")  # the first wait may acknowledge tickets
            before = recorder.calls
            for i in range(20):
                assert client.resolve(f"n{i}.test").addresses() == ["192.0.2.53"]
            assert recorder.calls == before


def test_an_answer_in_two_parts_is_acknowledged_before_waiting_for_the_rest(
    mode: str, server_cert: IssuedCert, ca_file: str, recorder: Recorder
) -> None:
    # The server writes the first 7 octets of the answer and, as a server under Nagle
    # would, the rest only once the client acknowledged them: here once the client has
    # asked for a quick ACK after that first part came (bounded, so a fault fails).
    first_part = threading.Event()
    recorder.after = first_part
    acknowledged: list[bool] = []

    def handler(conn: FakeConnection) -> None:
        while (query := conn.read_query()) is not None:
            wire = frame(answer(query))
            if str(query.question[0].name) != "split.test.":
                conn.send(wire)
                continue
            first_part.set()
            conn.send(wire[:7])
            acknowledged.append(recorder.seen_after.wait(10))
            conn.send(wire[7:])

    with FakeServer(server_cert, handler) as server:
        with open_client(mode, server.spec, ca_file=ca_file, timeout=20) as client:
            client.resolve("warm.test")
            assert client.resolve("split.test").addresses() == ["192.0.2.53"]
    assert acknowledged == [True]
