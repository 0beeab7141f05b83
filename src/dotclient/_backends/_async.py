"""asyncio backend: what the asyncio client waits with, and its stream and connect.

The stream is in ``_async_stream.py`` and the connection set-up (the race, the proxy,
the handshake) in ``_async_connect.py``; this module offers them under the names the
client uses (the same as the blocking backend's), with the locks, events, timers and
workers of an event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from ._async_connect import open_tls_stream
from ._async_stream import AsyncStream, expire_future

__all__ = [
    "AsyncLock",
    "AsyncStream",
    "Background",
    "Event",
    "Mutex",
    "TimerHandle",
    "call_later",
    "open_tls_stream",
    "run_workers",
    "sleep",
]

T = TypeVar("T")


class AsyncLock:
    """A lock whose acquisition is bounded by a timeout."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def acquire(self, timeout: float) -> bool:
        """Acquire within ``timeout`` seconds; False if that was not possible."""
        if not self._lock.locked():
            await self._lock.acquire()  # free: returns at once
            return True
        try:
            await asyncio.wait_for(self._lock.acquire(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def release(self) -> None:
        """Release the lock."""
        self._lock.release()


class Mutex:
    """Guards state shared between threads; a no-op here, where one thread runs."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


class Event:
    """A wake-up call for one waiter: :meth:`set` wakes :meth:`wait` (or makes the next
    one return at once) until :meth:`clear`."""

    __slots__ = ("_flag", "_future", "_timer")

    def __init__(self) -> None:
        self._flag = False
        self._future: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def set(self) -> None:
        """Wake the waiter."""
        self._flag = True
        future = self._future
        if future is not None:
            self._future = None
            self.close()
            if not future.done():
                future.set_result(True)

    def clear(self) -> None:
        """Forget an earlier :meth:`set`."""
        self._flag = False

    def wait(self, timeout: float) -> asyncio.Future[bool]:
        """Something to await until set, at most ``timeout`` seconds: True, or False on
        timeout.

        A future with a timer rather than a coroutine: every query waiting on a
        connection waits here, and two coroutine frames less each (this one and
        :func:`wait_future`'s) are about 450 octets less per query in flight, and
        less CPU per answer handed over.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._flag:
            future.set_result(True)
            return future
        self._future = future
        self._timer = loop.call_later(max(timeout, 0), expire_future, future)
        return future

    def close(self) -> None:
        """Stop the timer of a wait given up (its waiter was cancelled or left)."""
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()


class Background(Generic[T]):
    """Work started by one caller for several (a connect the pool's other callers wait
    on): it runs in a task of its own, so cancelling the caller that started it does
    not cancel it for the others."""

    __slots__ = ("_orphaned", "_task")

    def __init__(self, work: Coroutine[Any, Any, T]) -> None:
        self._task = asyncio.ensure_future(work)
        self._orphaned = False

    async def result(self, keep: Callable[[], bool], orphan: Callable[[T], None]) -> T:
        """The work's result. If the caller is cancelled meanwhile, the work runs on
        when ``keep()`` says others wait for it, and its result goes to ``orphan``
        (a failure is dropped: the work cleans up after itself); else it is
        cancelled too."""
        task = self._task
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self._orphaned = True
            if not task.done() and not keep():
                task.cancel()
            task.add_done_callback(lambda done: _adopt(done, orphan))
            raise

    async def aclose(self) -> None:
        """Cancel the work if its caller left and it still runs, and wait for it."""
        task = self._task
        if self._orphaned and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            await asyncio.wait([task])


def _adopt(task: asyncio.Task[T], orphan: Callable[[T], None]) -> None:
    if not task.cancelled() and task.exception() is None:  # retrieves a failure
        orphan(task.result())


class TimerHandle:
    """What :func:`call_later` returns: :meth:`cancel` stops the call."""

    def __init__(self, handle: asyncio.TimerHandle) -> None:
        self._handle = handle

    def cancel(self) -> None:
        """Cancel the call if it has not run."""
        self._handle.cancel()


def call_later(delay: float, callback: Callable[[], None]) -> TimerHandle:
    """Run ``callback()`` after ``delay`` seconds on the running event loop."""
    return TimerHandle(asyncio.get_running_loop().call_later(delay, callback))


async def run_workers(count: int, worker: Callable[[], Awaitable[None]]) -> None:
    """Run ``count`` copies of ``worker`` concurrently (tasks) and wait for all."""
    if count <= 1:
        await worker()
        return
    await asyncio.gather(*(worker() for _ in range(count)))


async def sleep(seconds: float) -> None:
    """Pause this task."""
    await asyncio.sleep(seconds)
