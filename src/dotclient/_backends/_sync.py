"""Blocking backend: what the blocking client waits with, and its stream and connect.

The stream is in ``_sync_stream.py`` and the connection set-up (the race, the proxy,
the handshake) in ``_sync_connect.py``; this module offers them under the names the
client uses (the same as the asyncio backend's), with locks, events, a shared timer
thread and worker threads.
"""

from __future__ import annotations

import heapq
import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from ._sync_connect import open_tls_stream
from ._sync_stream import SyncStream

__all__ = [
    "Background",
    "Event",
    "Lock",
    "Mutex",
    "SyncStream",
    "TimerHandle",
    "call_later",
    "open_tls_stream",
    "run_workers",
    "sleep",
]

T = TypeVar("T")


class Lock:
    """A lock whose acquisition is bounded by a timeout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, timeout: float) -> bool:
        """Acquire within ``timeout`` seconds; False if that was not possible."""
        return self._lock.acquire(timeout=max(timeout, 0))

    def release(self) -> None:
        """Release the lock."""
        self._lock.release()


#: Guards state shared between threads.
Mutex = threading.Lock


class Event:
    """A wake-up call for one waiter: :meth:`set` wakes :meth:`wait` (or makes the next
    one return at once) until :meth:`clear`.

    One waiting thread per event, which alone calls :meth:`wait` and :meth:`clear`;
    :meth:`set` and :meth:`clear` must be called under one lock (the client's mutex),
    as their check-then-act is not atomic. A bare lock held while the event is clear
    does the waking: cheaper than
    ``threading.Event``, whose condition variable costs several lock operations more
    for every answer handed to the thread that asked.
    """

    __slots__ = ("_flag", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()  # held while clear
        self._flag = False

    def set(self) -> None:
        """Wake the waiter."""
        if not self._flag:
            self._flag = True
            self._lock.release()

    def clear(self) -> None:
        """Forget an earlier :meth:`set`."""
        if self._flag:
            self._flag = False
            self._lock.acquire()

    def wait(self, timeout: float) -> bool:
        """Wait until set, at most ``timeout`` seconds; False on timeout."""
        if self._flag:
            return True
        if not self._lock.acquire(timeout=max(timeout, 0)):
            return False
        self._lock.release()
        return True

    def close(self) -> None:
        """Nothing to release here (the asyncio twin stops its timer)."""


class Background(Generic[T]):
    """The blocking twin of the asyncio backend's: a thread cannot be cancelled, so
    the work has run (in the caller's thread) by the time this is made."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def result(self, keep: Callable[[], bool], orphan: Callable[[T], None]) -> T:
        """The work's result."""
        return self._value

    def close(self) -> None:
        """Nothing to stop."""


class TimerHandle:
    """What :func:`call_later` returns: :meth:`cancel` stops the call."""

    __slots__ = ("cancelled", "callback", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback: Callable[[], None] | None = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Cancel the call if it has not run. The callback is let go at once: the
        handle stays in the heap until its time, and must not keep a closed client
        (its connections, configuration and SSLContext) alive until then."""
        self.cancelled = True
        self.callback = None

    def __lt__(self, other: TimerHandle) -> bool:
        return self.when < other.when


class _Timers:
    """One daemon thread that runs every client's timers (idle connections closing),
    started on first use, so an idle client costs no thread of its own."""

    def __init__(self) -> None:
        self._heap: list[TimerHandle] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def after_fork(self) -> None:
        """In a child of ``os.fork()``: the thread is gone, its lock may be held, and
        the timers are the parent's (they would close the parent's connections).
        Start afresh; the next timer starts a new thread."""
        self._heap = []
        self._cond = threading.Condition()
        self._thread = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + delay, callback)
        with self._cond:
            heapq.heappush(self._heap, handle)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="dotclient-timers", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return handle

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0].when > time.monotonic():
                    if self._heap:
                        self._cond.wait(self._heap[0].when - time.monotonic())
                    else:
                        self._cond.wait()
                handle = heapq.heappop(self._heap)
            callback = handle.callback
            if not handle.cancelled and callback is not None:
                try:
                    callback()
                except Exception:  # pragma: no cover - a bug; keep the other timers alive
                    import traceback

                    traceback.print_exc()


_timers = _Timers()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_timers.after_fork)


def call_later(delay: float, callback: Callable[[], None]) -> TimerHandle:
    """Run ``callback()`` after ``delay`` seconds, in the shared timer thread."""
    return _timers.call_later(delay, callback)


#: Threads :func:`run_workers` starts at most: enough to keep a connection's pipeline
#: busy, since each thread waits on the server most of the time.
MAX_WORKER_THREADS = 32


def run_workers(count: int, worker: Callable[[], None]) -> None:
    """Run ``count`` copies of ``worker`` concurrently (threads, at most
    :data:`MAX_WORKER_THREADS`) and wait for all."""
    count = min(count, MAX_WORKER_THREADS)
    if count <= 1:
        worker()
        return
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker()
        except BaseException as exc:  # pragma: no cover - workers catch their errors
            errors.append(exc)

    threads = [
        threading.Thread(target=run, name=f"dotclient-worker-{i}", daemon=True)
        for i in range(count - 1)
    ]
    for thread in threads:
        thread.start()
    run()  # the calling thread works too
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def sleep(seconds: float) -> None:
    """Pause this thread."""
    time.sleep(seconds)
