"""Run one test body against the blocking and the asyncio API.

``open_client("sync" | "async", ...)`` yields an object with blocking ``resolve`` and
``query`` methods: the real :class:`dotclient.Client`, or an :class:`AsyncClient`
driven on a private event loop in debug mode (so un-awaited coroutines and slow callbacks
are reported, and warnings are errors under pytest).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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

    def resolve_many(self, *args: Any, **kwargs: Any) -> list[dotclient.Response | Exception]:
        return self.loop.run_until_complete(self.client.resolve_many(*args, **kwargs))

    def close_connections(self) -> None:
        self.loop.run_until_complete(self.client.close_connections())

    def forget_failures(self) -> None:
        self.client.forget_failures()

    def sleep(self, seconds: float) -> None:
        """Let time pass with the loop running, so the client's timers fire."""
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def resolve_concurrently(
        self, names: Sequence[str], **kwargs: Any
    ) -> list[dotclient.Response | BaseException]:
        """``resolve(name)`` for each name in its own task, started in order."""

        async def main() -> list[dotclient.Response | BaseException]:
            calls = [self.client.resolve(name, **kwargs) for name in names]
            return await asyncio.gather(*calls, return_exceptions=True)

        return self.loop.run_until_complete(main())

    def pending_tasks(self) -> set[asyncio.Task[Any]]:
        """Tasks on the loop that have not finished (none should outlive a call)."""
        return {task for task in asyncio.all_tasks(self.loop) if not task.done()}

    @property
    def stats(self) -> dotclient.ClientStats:
        return self.client.stats

    @property
    def servers(self) -> tuple[dotclient.Server, ...]:
        return self.client.servers

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())


def resolve_concurrently(
    client: Any, names: Sequence[str], **kwargs: Any
) -> list[dotclient.Response | BaseException]:
    """Resolve each name with ``client.resolve`` at the same time (a thread or a task
    each, so they share a connection), and return each outcome, an exception included,
    in the order of ``names``."""
    if isinstance(client, AsyncDriver):
        return client.resolve_concurrently(names, **kwargs)

    def one(name: str) -> dotclient.Response | BaseException:
        try:
            return client.resolve(name, **kwargs)  # type: ignore[no-any-return]
        except BaseException as exc:
            return exc

    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(one, names))


def pending_tasks(client: Any) -> set[asyncio.Task[Any]]:
    """The unfinished tasks on an async client's loop; none for a blocking client."""
    return client.pending_tasks() if isinstance(client, AsyncDriver) else set()


def pause(client: Any, seconds: float) -> None:
    """Sleep with the client's timers running, in either mode."""
    if isinstance(client, AsyncDriver):
        client.sleep(seconds)
    else:
        time.sleep(seconds)


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
