"""The TCP_NODELAY shim of dotclient.testing, which benchmarks run unbound with.

Checked by what it does to a socket (getsockopt on an accepted connection), never by
timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.rdatatype
import pytest

import dotclient
from dotclient.testing import ServerNotFound, UnboundServer, build_nodelay_preload

from support.servers import server_missing

# Accept one connection in each way the shim wraps; print TCP_NODELAY on each.
ACCEPT = """
import socket
for flags in (None, socket.SOCK_CLOEXEC):
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    if flags is None:  # socket.accept() calls accept4(); os-level accept() via ctypes
        import ctypes
        fd = ctypes.CDLL(None, use_errno=True).accept(listener.fileno(), None, None)
        conn = socket.socket(fileno=fd)
    else:
        conn, _ = listener.accept()
    print(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
    for s in (conn, client, listener):
        s.close()
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> str:
    try:
        return build_nodelay_preload(tmp_path_factory.mktemp("shim"))
    except ServerNotFound as exc:
        server_missing(exc)


def accepted_nodelay(preload: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if preload:
        env["LD_PRELOAD"] = preload
    done = subprocess.run(
        [sys.executable, "-c", ACCEPT], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_the_shim_sets_nodelay_on_accepted_connections(shim: str) -> None:
    assert accepted_nodelay(None) == ["False", "False"]  # Linux's default, without it
    assert accepted_nodelay(shim) == ["True", "True"]  # accept() and accept4()


def test_unbound_runs_with_the_shim_and_answers(
    unbound_factory: Callable[..., UnboundServer], ca_file: str, shim: str
) -> None:
    server = unbound_factory(nodelay=True)
    assert server._proc is not None
    maps = Path(f"/proc/{server._proc.pid}/maps").read_text()
    assert "libdotclient_nodelay.so" in maps
    with dotclient.Client(f"127.0.0.1:{server.port}#dot.test", ca_file=ca_file) as client:
        response = client.resolve("a.example.test", dns.rdatatype.A)
    assert sorted(response.addresses()) == ["192.0.2.1", "192.0.2.2"]


def test_no_compiler_is_server_not_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(ServerNotFound, match="TCP_NODELAY shim"):
        build_nodelay_preload(tmp_path)
