"""Misuse is refused before any I/O, with a clear ValueError or TypeError: never a raw
OverflowError, UnicodeError or an empty message at query time, and never a query sent
somewhere the caller did not ask for."""

from __future__ import annotations

from typing import Any

import pytest

from dotclient.testing import UnboundServer

from modes import open_client


def spec(unbound: UnboundServer) -> str:
    return f"127.0.0.1:{unbound.port}#dot.test"


@pytest.mark.parametrize("option", ["timeout", "idle_timeout", "backoff", "server_timeout"])
@pytest.mark.parametrize("seconds", [2_200_000, 1e10])
def test_huge_timeouts_are_refused_up_front(
    mode: str, unbound: UnboundServer, ca_file: str, option: str, seconds: float
) -> None:
    options: dict[str, Any] = {option: seconds}
    if option == "backoff":
        options["max_backoff"] = seconds
    with pytest.raises(ValueError, match=f"{option} must be at most 86400 seconds"):
        with open_client(mode, spec(unbound), ca_file=ca_file, **options):
            pass


def test_the_longest_timeout_works(mode: str, unbound: UnboundServer, ca_file: str) -> None:
    # Before the fix the blocking client took 2,200,000 s and then every query raised
    # a raw OverflowError; a day is the most, and it works.
    options = {"timeout": 86_400, "idle_timeout": 86_400}
    with open_client(mode, spec(unbound), ca_file=ca_file, **options) as client:
        assert client.resolve("a.example.test").addresses()
        assert client.resolve("a.example.test", timeout=86_400).addresses()
        with pytest.raises(ValueError, match="at most 86400"):
            client.resolve("a.example.test", timeout=2_200_000)
        assert client.resolve("a.example.test").addresses()
