"""How ``dotclient bulk`` moves names and results: the feed from the reader thread to the
workers, the rate limit, the output, the progress bar, and a loop Ctrl-C can stop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import IO, Any

from .bulk_input import Line
from .common import RICH_MISSING

_FLUSH_EVERY = 0.5  # seconds between output flushes


@dataclass
class Tally:
    """The run's counters: bumped by the workers, read by the progress bar and the summary."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    retries: int = 0
    rcodes: collections.Counter[str] = field(default_factory=collections.Counter)
    per_server: collections.Counter[str] = field(default_factory=collections.Counter)
    last_error: BaseException | None = None


class TokenBucket:
    """At most ``rate`` takes per second on average, bursts up to a tenth of a second's."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate / 10)
        self.tokens = 1.0
        self.last = time.monotonic()

    async def take(self) -> None:
        """Wait until a token is there, and take it."""
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class Feed:
    """Input lines from the reader thread to the workers, one at a time, as they come.

    A bounded buffer (the thread waits while it is full, so memory stays constant) that
    wakes the event loop only when it goes from empty to not empty: a slow producer
    (``tail -f log | dotclient bulk -``) has each line resolved as soon as it is read,
    and a fast one costs one wake-up per burst, not per line. Every idle worker waits on
    the same event, so all ``--concurrency`` of them take lines as soon as there are
    some (a queue of batches handed each batch to one worker).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.loop = loop
        self.limit = limit
        self.lines: collections.deque[Line] = collections.deque()
        self.lock = threading.Condition()
        self.ready = asyncio.Event()  # set: there are lines, or the input ended
        self.ended = False
        self.stopped = False
        self.error: Exception | None = None

    # -- the reader thread's side

    def put(self, line: Line) -> bool:
        """Add a line, waiting while the buffer is full; False once stopped."""
        with self.lock:
            while len(self.lines) >= self.limit and not self.stopped:
                self.lock.wait()
            if self.stopped:
                return False
            wake = not self.lines
            self.lines.append(line)
        if wake:
            self._wake()
        return True

    def end(self, error: Exception | None = None) -> None:
        """No more lines: the input ended, or reading it failed with ``error``."""
        with self.lock:
            self.ended = True
            self.error = error
        self._wake()

    def _wake(self) -> None:
        # The loop is gone once the run was interrupted: then nobody is waiting.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.ready.set)

    # -- the event loop's side

    async def get(self, idle: Callable[[], None]) -> Line | None:
        """The next line, or None at the end of the input; calls ``idle`` before it
        waits (to flush the output: what is done is seen while the input is slow)."""
        while True:
            with self.lock:
                if self.lines:
                    if len(self.lines) >= self.limit:
                        self.lock.notify()
                    return self.lines.popleft()
                if self.ended or self.stopped:
                    return None
                self.ready.clear()  # under the lock: a put after this sets it again
            idle()
            await self.ready.wait()

    def stop(self) -> None:
        """Let the reader thread go: it stops at its next line."""
        with self.lock:
            self.stopped = True
            self.lock.notify_all()


class Writer:
    """JSON Lines out, flushed every half second (and at the end)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.flushed = time.monotonic()

    def write(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one JSON line; flush if the last flush is old enough."""
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")
        now = time.monotonic()
        if now - self.flushed > _FLUSH_EVERY:
            self.flush()
            self.flushed = now

    def flush(self) -> None:
        """Flush the output; a closed pipe (``| head``) raises BrokenPipeError."""
        try:
            self.out.flush()
        except BrokenPipeError:
            raise  # the reader is gone (| head): stop, with EXIT_BROKEN_PIPE
        except (OSError, ValueError):
            pass


class Progress:
    """rich's progress bar on standard error: done/total, rate, ETA; updated by a timer
    thread ten times a second, so the workers only bump a counter."""

    def __init__(self, tally: Tally, total: int | None) -> None:
        self.tally = tally
        self.total = total
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.progress: Any = None

    def start(self) -> None:
        """Draw the bar and start its timer thread (or say why there is no bar)."""
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
        except ImportError:
            print(f"dotclient bulk: no progress bar: {RICH_MISSING}", file=sys.stderr)
            return
        self.progress = Progress(
            TextColumn("resolving"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[failed]}"),
            console=Console(file=sys.stderr),
            transient=False,
        )
        task = self.progress.add_task("bulk", total=self.total, rate="", failed="")
        self.progress.start()
        started = time.monotonic()

        def tick() -> None:
            while not self.stopped.wait(0.1):
                self._update(task, started)
            self._update(task, started)

        self.thread = threading.Thread(target=tick, daemon=True)
        self.thread.start()

    def _update(self, task: Any, started: float) -> None:
        tally = self.tally
        elapsed = max(time.monotonic() - started, 1e-6)
        failed = f"{tally.failed} failed" if tally.failed else ""
        self.progress.update(
            task,
            completed=tally.done,
            rate=f"{tally.done / elapsed:,.0f} q/s",
            failed=failed,
        )

    def stop(self) -> None:
        """Stop the timer thread and draw the bar a last time."""
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()
        if self.progress is not None:
            self.progress.stop()


def run_interruptibly(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on a new event loop; Ctrl-C cancels it, so it unwinds at an await
    (closing its clients and flushing its output) and KeyboardInterrupt follows.

    ``asyncio.run`` does so only from Python 3.11, and on every version waits at exit for
    its executor's threads, one of which may be blocked reading a pipe that never ends.
    """
    loop = asyncio.new_event_loop()
    task = loop.create_task(main)
    try:
        loop.add_signal_handler(signal.SIGINT, task.cancel)
        handled = True
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
        handled = False
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
        try:
            loop.run_until_complete(_cancel_leftovers())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


async def _cancel_leftovers() -> None:
    """Cancel the tasks still running on this loop and wait for them to unwind."""
    leftovers = asyncio.all_tasks() - {asyncio.current_task()}
    for leftover in leftovers:
        leftover.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)
