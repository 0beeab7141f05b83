"""The TLS session is read out of the ssl module only when a connection is made with
it: each read costs ~6 KB that CPython 3.11 and 3.12 never free (gh-116810), and a
one-shot resolve() can never use it."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from dotclient._backends import _async, _sync
from dotclient.testing import UnboundServer

from support.modes import open_client, resolve


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every read of a session: through the ssl module's properties, or through the
    readers the backends hand out."""
    seen: list[str] = []
    inside: list[bool] = []  # a reader reading through the property counts once
    for cls in (ssl.SSLSocket, ssl.SSLObject):
        prop = cls.session

        def getter(self: Any, prop: Any = prop) -> Any:
            if not inside:
                seen.append("property")
            return prop.fget(self)

        monkeypatch.setattr(cls, "session", property(getter, prop.fset))
    for stream in (_sync.SyncStream, _async.AsyncStream):
        original = getattr(stream, "session_reader", None)
        if original is None:
            continue

        def session_reader(self: Any, original: Any = original) -> Any:
            read = original(self)

            def counted() -> Any:
                seen.append("reader")
                inside.append(True)
                try:
                    return read()
                finally:
                    inside.pop()

            return counted

        monkeypatch.setattr(stream, "session_reader", session_reader)
    return seen


def test_a_one_shot_resolve_never_reads_the_session(
    mode: str, unbound: UnboundServer, ca_file: str, reads: list[str]
) -> None:
    r = resolve(
        mode, "a.example.test", server=f"127.0.0.1:{unbound.port}#dot.test", ca_file=ca_file
    )
    assert r.addresses()
    assert reads == []  # before the fix: read after the answer, for nothing


def test_the_session_is_read_when_a_connection_is_made_with_it(
    mode: str, unbound: UnboundServer, ca_file: str, reads: list[str]
) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file) as client:
        for _ in range(3):
            assert not client.resolve("a.example.test").resumed
        assert reads == []
        client.close_connections()  # read after its connection closed, when reconnecting
        assert client.resolve("a.example.test").resumed
        client.close_connections()
        assert client.resolve("a.example.test").resumed  # the same session, not read again
        assert reads == ["reader"]
        assert client.stats.sessions_resumed == 2
