"""Misuse is caught before any I/O, through every public entry point.

The unit tier's guard (tests/unit/conftest.py) fails a test whose call reaches for the
network: an error other than ValueError/TypeError, or any connect, would mean the call
tried the network before checking its arguments.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import dotclient


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A port no call may reach: the unit tier's guard (conftest.py) fails any test that
    connects anywhere, so the port no longer needs to be found closed by binding one."""
    return 9


BAD_CALLS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("1.1.1.1:99999", {}, dotclient.InvalidServerSpec, "invalid port '99999'"),
    ("[::1", {}, dotclient.InvalidServerSpec, "missing ']'"),
    ("1.1.1.1#", {}, dotclient.InvalidServerSpec, "empty authentication name"),
    ("bad..name", {}, dotclient.InvalidServerSpec, "bad..name"),
    ("{port}", {"timeout": 0}, ValueError, "timeout must be a positive"),
    ("{port}", {"timeout": -1}, ValueError, "timeout"),
    ("{port}", {"timeout": float("inf")}, ValueError, "finite"),
    ("{port}", {"timeout": "5"}, TypeError, "timeout must be a number"),
    ("{port}", {"profile": "paranoid"}, ValueError, "profile must be"),
    ("{port}", {"pin_only": True}, ValueError, "pin_only=True needs"),
    ("{port}", {"pins": ["sha256/short"]}, ValueError, "SPKI pin"),
    ("{port}", {"sni": "192.0.2.1"}, ValueError, "sni must be a host name"),
    ("{port}", {"padding": 4096}, ValueError, "padding"),
    ("{port}", {"auth_name": "bad name"}, dotclient.InvalidServerSpec, "authentication name"),
    ("{port}", {"ca_file": "/nonexistent/ca.pem"}, ValueError, "cannot load ca_file"),
    ("{port}", {"ssl_context": "yes"}, TypeError, "ssl_context"),
]


def _spec(template: str, port: int) -> str:
    return template.replace("{port}", f"127.0.0.1:{port}")


@pytest.mark.parametrize(("template", "options", "error", "match"), BAD_CALLS)
def test_bad_arguments_fail_before_io(
    closed_port: int, template: str, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    spec = _spec(template, closed_port)
    with pytest.raises(error, match=match):
        dotclient.resolve("a.example.test", server=spec, **options)
    with pytest.raises(error, match=match):
        asyncio.run(dotclient.aresolve("a.example.test", server=spec, **options))
    with pytest.raises(error, match=match):
        dotclient.Client(spec, **options)
    with pytest.raises(error, match=match):
        dotclient.AsyncClient(spec, **options)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("a.example.test", "NOTATYPE"), ValueError, "invalid query"),
        (("a..example.test",), ValueError, "invalid query"),
        (("a.example.test", "OPT"), ValueError, "meta-type"),
        ((42,), TypeError, "name must be"),
    ],
)
def test_bad_queries_fail_before_io(
    closed_port: int, args: tuple[Any, ...], error: type[Exception], match: str
) -> None:
    with dotclient.Client(f"127.0.0.1:{closed_port}") as client:
        with pytest.raises(error, match=match):
            client.resolve(*args)
        with pytest.raises(TypeError, match="dns.message.Message"):
            client.query(b"\x00" * 12)  # type: ignore[arg-type]


def test_default_server_is_cloudflare(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOTCLIENT_SERVER", raising=False)
    with dotclient.Client() as client:
        assert client.server == dotclient.PRESETS["cloudflare"]
        assert client.server.auth_name == "cloudflare-dns.com"
    monkeypatch.setenv("DOTCLIENT_SERVER", "quad9")
    assert dotclient.Client().server.auth_name == "dns.quad9.net"
