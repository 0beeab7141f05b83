"""Run one test body against the blocking and the asyncio API.

``open_client("sync" | "async", ...)`` yields an object with blocking ``resolve`` and
``query`` methods: the real :class:`dotclient.Client`, or an :class:`AsyncClient`
driven on a private event loop in debug mode (so un-awaited coroutines and slow callbacks
are reported, and warnings are errors under pytest).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import dotclient

MODES = ["sync", "async"]


class AsyncDriver:
    """Blocking facade over an AsyncClient: each call runs on one private loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: dotclient.AsyncClient) -> None:
        self.loop = loop
        self.client = client

    def resolve(self, *args: Any, **kwargs: Any) -> dotclient.Response:
        return self.loop.run_until_complete(self.client.resolve(*args, **kwargs))

    def query(self, *args: Any, **kwargs: Any) -> dotclient.Response:
        return self.loop.run_until_complete(self.client.query(*args, **kwargs))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())


@contextlib.contextmanager
def open_client(mode: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
    if mode == "sync":
        with dotclient.Client(*args, **kwargs) as client:
            yield client
        return
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    try:
        driver = AsyncDriver(loop, dotclient.AsyncClient(*args, **kwargs))
        try:
            yield driver
        finally:
            driver.close()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def resolve(mode: str, *args: Any, **kwargs: Any) -> dotclient.Response:
    """The one-shot function of the mode: resolve() or aresolve()."""
    if mode == "sync":
        return dotclient.resolve(*args, **kwargs)
    return asyncio.run(dotclient.aresolve(*args, **kwargs), debug=True)
