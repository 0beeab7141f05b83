"""SSLContexts are shared: one per distinct TLS setting, however many servers and
clients have it, so that a CA bundle is loaded once (1,000 servers built 1,000
contexts: 15 s and +664 MB; every one-shot resolve() loaded the CA file again)."""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path
from typing import Any

import pytest

import dotclient
from dotclient.testing import UnboundServer

from support.modes import open_client, resolve


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The CA files loaded into new contexts from now on."""
    seen: list[Any] = []
    original = ssl.SSLContext.load_verify_locations

    def load(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        seen.append(kwargs.get("cafile") or args[:1])
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", load)
    return seen


def test_many_servers_share_one_context(tmp_path: Any, ca_file: str, loads: list[Any]) -> None:
    ca_copy = tmp_path / "ca.pem"  # a file no other test loaded
    ca_copy.write_bytes(Path(ca_file).read_bytes())
    servers = [f"127.0.0.{1 + i // 250}:{1000 + i}#dot.test" for i in range(300)]
    client = dotclient.Client(servers=servers, ca_file=str(ca_copy))
    contexts = {id(policy.attempts()[0].context) for policy in client._config.policies}
    client.close()
    assert len(contexts) == 1  # 300 before the fix
    assert len(loads) == 1


def test_one_shot_resolves_load_the_ca_file_once(
    mode: str, unbound: UnboundServer, ca_file: str, loads: list[Any]
) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    assert resolve(mode, "a.example.test", server=spec, ca_file=ca_file).addresses()
    before = len(loads)  # 0 if another test loaded it already, else 1
    for _ in range(3):
        assert resolve(mode, "a.example.test", server=spec, ca_file=ca_file).addresses()
    assert len(loads) == before  # one more per call before the fix


def test_a_changed_ca_file_is_loaded_again(tmp_path: Any, ca_file: str, loads: list[Any]) -> None:
    path = tmp_path / "ca.pem"
    path.write_bytes(Path(ca_file).read_bytes())
    dotclient.Client("127.0.0.1:853#dot.test", ca_file=str(path)).close()
    path.write_bytes(Path(ca_file).read_bytes() * 2)
    os.utime(path, ns=(1, 1))  # another time and size: another file
    dotclient.Client("127.0.0.1:853#dot.test", ca_file=str(path)).close()
    assert len(loads) == 2


def test_clients_sharing_a_context_resume_their_sessions_concurrently(
    unbound: UnboundServer, ca_file: str
) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"

    async def main() -> None:
        clients = [dotclient.AsyncClient(spec, ca_file=ca_file) for _ in range(4)]
        for client in clients:
            assert not (await client.resolve("a.example.test")).resumed
            await client.close_connections()
        # Four connects at once with one shared context, each offering its session.
        again = await asyncio.gather(*(c.resolve("a.example.test") for c in clients))
        assert all(r.resumed and r.authenticated for r in again)
        for client in clients:
            await client.aclose()

    asyncio.run(main(), debug=True)


def test_a_context_is_not_shared_across_settings(
    mode: str, unbound: UnboundServer, ca_file: str
) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    with (
        open_client(mode, spec, ca_file=ca_file) as a,
        open_client(mode, spec, ca_file=ca_file, sni="front.example") as b,
    ):
        ca = getattr(a, "client", a)._config.policies[0].attempts()[0].context
        cb = getattr(b, "client", b)._config.policies[0].attempts()[0].context
        assert ca is not cb and ca.check_hostname and not cb.check_hostname
        assert a.resolve("a.example.test").authenticated
