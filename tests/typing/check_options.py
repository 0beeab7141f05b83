"""Misspelt or mistyped client options fail mypy at the call site.

Not a test module: ``mypy`` checks this file (``files`` in pyproject's ``[tool.mypy]``),
and nothing runs it. Each ``type: ignore`` names the error mypy must report there;
strict mode's ``warn_unused_ignores`` fails the check if one stops being reported.
"""

from __future__ import annotations

import ssl

import dotclient


def well_typed(context: ssl.SSLContext) -> None:
    dotclient.Client("127.0.0.1", timeout=1, padding=False, max_in_flight=10)
    dotclient.Client(servers=["127.0.0.1", dotclient.Server("::1")], strategy="round_robin")
    dotclient.AsyncClient("127.0.0.1#dot.test", ssl_context=context, bootstrap=None)
    dotclient.resolve("a.test", "AAAA", server="127.0.0.1", dnssec=True, pins=["sha256/x"])


async def well_typed_async() -> None:
    await dotclient.aresolve("a.test", server="127.0.0.1", idle_timeout=1.0, keepalive=True)


def misspelt() -> None:
    dotclient.Client("127.0.0.1", timout=1.0)  # type: ignore[call-arg]
    dotclient.AsyncClient("127.0.0.1", pin=["sha256/x"])  # type: ignore[call-arg]
    dotclient.resolve("a.test", server="127.0.0.1", idle_timout=1.0)  # type: ignore[call-arg]


async def misspelt_async() -> None:
    await dotclient.aresolve("a.test", server="127.0.0.1", max_inflight=1)  # type: ignore[call-arg]


def mistyped() -> None:
    dotclient.Client("127.0.0.1", timeout="5")  # type: ignore[arg-type]
    dotclient.AsyncClient("127.0.0.1", max_in_flight=1.5)  # type: ignore[arg-type]
    dotclient.resolve("a.test", server="127.0.0.1", padding="yes")  # type: ignore[arg-type]
    dotclient.Client("127.0.0.1", "127.0.0.2")  # type: ignore[call-arg]
