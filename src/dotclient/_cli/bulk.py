"""``dotclient bulk FILE``: resolve a list of names to JSON Lines, in constant memory.

How it streams: a reader thread hands each input line, as it is read, to a bounded
buffer (:class:`_Feed`); ``--concurrency`` worker tasks all take names from it and
resolve them through one :class:`~dotclient.AsyncClient` per server (round-robin over
the servers, pipelined over each client's connections); each result is written as one
JSON line as soon as it completes, so output order follows completion, and ``index``
(the input line number) ties it back. Nothing is kept per name but a byte for
``--resume``.

``--resume`` reads the ``index`` of every line already in the output file, with a
one-byte check of its name and type, into a table (:class:`Done`, one byte per input
line: 1 MB per million names), so the output may be in any order and a run interrupted
anywhere picks up exactly the names it had not written. The input must be the same, in
the same order, as in the run being resumed; a line that does not match is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import dns.rcode
import dns.rdatatype

import dotclient
from dotclient._config import DEFAULT_MAX_CONNECTIONS

from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RCODE,
    RICH_MISSING,
    UsageError,
    add_server_options,
    add_tls_options,
    cli_message,
    client_options,
    describe,
    exit_code,
    is_terminal,
    server_specs,
)

DESCRIPTION = """\
Resolve a list of names, one per line with an optional type column ('example.com AAAA';
'#' starts a comment), from FILE or - for standard input. Queries are pipelined over a
pool of connections to each server, names spread round-robin over the servers; each
name gives one JSON line (index, name, type, rcode, answers, server, elapsed, error) as
it completes. A progress bar with rate and ETA is drawn on a terminal. Exit codes: 0
every name answered (any RCODE), 1 some names failed, 2 bad usage, 3/4/5 every name
failed (network / TLS / protocol)."""

_BUFFER = 512  # input lines read ahead of the workers (at least; twice --concurrency)
_FLUSH_EVERY = 0.5  # seconds between output flushes
_RETRIED = (dotclient.Timeout, dotclient.ConnectionLost)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="names, one per line; - for standard input")
    add_server_options(parser)
    add_tls_options(parser)
    group = parser.add_argument_group("bulk")
    group.add_argument(
        "--output", "-o", metavar="FILE", help="write JSON Lines here (default: standard output)"
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help="append to --output, skipping the input lines it already has",
    )
    group.add_argument(
        "--type", default="A", help="type for lines without a type column (default A)"
    )
    group.add_argument(
        "--concurrency",
        "-c",
        type=int,
        default=64,
        help="queries in flight, over all servers (default 64)",
    )
    group.add_argument(
        "--connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"TLS connections per server (default {DEFAULT_MAX_CONNECTIONS}, RFC 7766 "
        "section 6.2.2); queries are pipelined on each",
    )
    group.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="QPS",
        help="at most this many queries per second, retries included (default: no limit)",
    )
    group.add_argument(
        "--retries",
        type=int,
        default=2,
        help="retries of a query that timed out or lost its connection, on the next "
        "server (default 2)",
    )
    group.add_argument("--dnssec", action="store_true", help="set the DO bit")
    progress = group.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="draw the progress bar even when standard error is not a terminal",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    group.add_argument("--quiet", "-q", action="store_true", help="no summary at the end")


@dataclass
class Line:
    index: int  # 1-based input line number
    name: str
    rdtype: str
    problem: str | None = None


@dataclass
class Tally:
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
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class Done:
    """Which input lines the output already has (``--resume``), one byte per line: 0 for
    not done, else a check of the name and type written for it, so that a resumed run
    can tell a different input (or the same names in another order) and refuse it."""

    _UNKNOWN = 255  # an output line without a name: nothing to check

    def __init__(self) -> None:
        self.marks = bytearray()
        self.count = 0
        self.seen = 0  # done lines met in the input so far

    @staticmethod
    def mark(name: str | None, rdtype: str | None) -> int:
        if not isinstance(name, str) or not isinstance(rdtype, str):
            return Done._UNKNOWN
        return 1 + zlib.crc32(f"{name}\0{rdtype}".encode("utf-8", "replace")) % 254

    def add(self, index: int, name: str | None, rdtype: str | None) -> None:
        if index >= len(self.marks):
            self.marks.extend(bytes(max(index + 1 - len(self.marks), len(self.marks))))
        if not self.marks[index]:
            self.count += 1
        self.marks[index] = self.mark(name, rdtype)

    def __contains__(self, index: int) -> bool:
        return index < len(self.marks) and bool(self.marks[index])

    def check(self, line: Line) -> None:
        """Raise :class:`UsageError` unless ``line`` is what the output says it was."""
        mark = self.marks[line.index]
        if mark not in (self._UNKNOWN, self.mark(line.name, line.rdtype)):
            raise UsageError(
                f"--resume: line {line.index} of the input is {line.name} {line.rdtype}, "
                "but the output has another name there: resume with the same input, in "
                "the same order (and the same --type)"
            )
        self.seen += 1

    def check_end(self) -> None:
        """Raise :class:`UsageError` if the output has lines the input did not reach."""
        if self.seen < self.count:
            raise UsageError(
                f"--resume: the output has {self.count - self.seen} names that are not "
                "in the input: resume with the same input"
            )


def parse_lines(stream: IO[str], default_type: str) -> Iterator[Line]:
    """The input's names, lazily; blank and comment lines are skipped (not numbered out)."""
    for number, raw in enumerate(stream, 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        words = text.split()
        name = words[0]
        rdtype = words[1] if len(words) > 1 else default_type
        problem = None
        if len(words) > 2:
            problem = f"line {number}: expected 'NAME [TYPE]', got {text!r}"
        else:
            try:
                rdtype = dns.rdatatype.to_text(dns.rdatatype.from_text(rdtype))
            except Exception:  # dnspython raises several types for bad text
                problem = f"line {number}: unknown record type {rdtype!r}"
        yield Line(number, name, rdtype, problem)


def read_done(path: str) -> Done:
    """The input line numbers already in the output file; drops a torn last line."""
    done = Done()
    with open(path, "rb+") as f:
        good = 0
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # written in part when the last run stopped
            good += len(raw)
            try:
                record = json.loads(raw)
                index = record["index"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(index, int) and index > 0:
                done.add(index, record.get("name"), record.get("type"))
        f.truncate(good)
    return done


def run(args: argparse.Namespace) -> int:
    specs = server_specs(args)
    options = client_options(args)
    if not 1 <= args.concurrency <= 65535:
        raise UsageError(f"--concurrency must be 1 to 65535, not {args.concurrency}")
    if not 1 <= args.connections <= 64:
        raise UsageError(f"--connections must be 1 to 64, not {args.connections}")
    if args.retries < 0:
        raise UsageError(f"--retries must be 0 or more, not {args.retries}")
    if args.rate is not None and args.rate <= 0:
        raise UsageError(f"--rate must be positive, not {args.rate}")
    try:
        dns.rdatatype.from_text(args.type)
    except Exception:
        raise UsageError(f"unknown record type {args.type!r}") from None
    if args.resume and not args.output:
        raise UsageError("--resume needs --output FILE (the file to resume)")
    clients = []
    try:
        for spec in specs:
            clients.append(
                dotclient.AsyncClient(
                    spec,
                    **options,
                    max_connections=args.connections,
                    max_in_flight=max(1, -(-args.concurrency // (len(specs) * args.connections))),
                )
            )
    except ValueError as exc:
        raise UsageError(cli_message(str(exc))) from None
    done = Done()
    with contextlib.ExitStack() as stack:
        source: IO[str] = sys.stdin
        total = None
        if args.file != "-":
            try:
                source = stack.enter_context(open(args.file, encoding="utf-8", errors="replace"))
            except OSError as exc:
                raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
            total = _count_names(args.file)
        if args.output:
            _refuse_input_as_output(args.file, args.output)
            try:
                if args.resume and os.path.exists(args.output):
                    done = read_done(args.output)
                    if args.file != "-" and done.count:
                        _check_resume(args.file, args.type, done)
                out: IO[str] = stack.enter_context(
                    open(args.output, "a" if args.resume else "w", encoding="utf-8")
                )
            except OSError as exc:
                raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
        else:
            out = sys.stdout
        show = args.progress if args.progress is not None else is_terminal(sys.stderr)
        tally = Tally()
        started = time.monotonic()
        try:
            _run_interruptibly(_bulk(args, clients, source, out, done, tally, total, show))
        except KeyboardInterrupt:
            interrupted = True
        else:
            interrupted = False
        elapsed = time.monotonic() - started
    if interrupted:
        _interrupted(args, tally)
        return EXIT_INTERRUPTED
    if not args.quiet:
        _summary(tally, elapsed)
    if tally.failed and tally.failed == tally.done and tally.last_error is not None:
        return exit_code(tally.last_error)
    return EXIT_RCODE if tally.failed else EXIT_OK


def _refuse_input_as_output(path: str, output: str) -> None:
    """Writing the output over the input would destroy it (``-o`` truncates first)."""
    try:
        if path == "-":
            same = os.path.samestat(os.fstat(sys.stdin.fileno()), os.stat(output))
        else:
            same = os.path.samefile(path, output)
    except (OSError, ValueError, AttributeError):  # no such file yet; stdin not a file
        return
    if same:
        what = "standard input" if path == "-" else path
        raise UsageError(f"--output {output} is the input ({what}): it would be overwritten")


def _check_resume(path: str, default_type: str, done: Done) -> None:
    """Before any query: every line the output has must be the input's line there."""
    rdtype = dns.rdatatype.to_text(dns.rdatatype.from_text(default_type))
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in parse_lines(f, rdtype):
            if line.index in done:
                done.check(line)
    done.check_end()
    done.seen = 0  # the run checks again as it reads


def _interrupted(args: argparse.Namespace, tally: Tally) -> None:
    """Ctrl-C: how far the run got, and the command that goes on from there."""
    print(
        f"dotclient bulk: interrupted after {tally.done} names ({tally.failed} failed)",
        file=sys.stderr,
    )
    if not args.output:
        print("  (with --output FILE a run can be resumed with --resume)", file=sys.stderr)
        return
    argv = [a for a in getattr(args, "argv", None) or [] if a != "--resume"]
    if argv:
        command = "dotclient bulk " + shlex.join(argv) + " --resume"
    else:
        command = f"dotclient bulk {shlex.quote(args.file)} ... --resume -o {args.output}"
    print(f"  to go on: {command}", file=sys.stderr)


def _run_interruptibly(main: Coroutine[Any, Any, None]) -> None:
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


def _count_names(path: str) -> int | None:
    """Lines with a name, for the ETA: a quick pass over a regular file."""
    try:
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return sum(1 for raw in f if raw.split(b"#", 1)[0].strip())
    except OSError:
        return None


async def _bulk(
    args: argparse.Namespace,
    clients: list[dotclient.AsyncClient],
    source: IO[str],
    out: IO[str],
    done: Done,
    tally: Tally,
    total: int | None,
    show: bool,
) -> None:
    bucket = TokenBucket(args.rate) if args.rate else None
    writer = _Writer(out)
    turn = 0  # round-robin position over the clients
    lines = parse_lines(source, dns.rdatatype.to_text(dns.rdatatype.from_text(args.type)))
    feed = _Feed(asyncio.get_running_loop(), max(_BUFFER, 2 * args.concurrency))

    def read_all() -> None:
        # A daemon thread of its own, not an executor's: a read blocked on a pipe that
        # never ends must not keep the process from exiting (Ctrl-C).
        try:
            for line in lines:
                if line.index in done:
                    done.check(line)
                    tally.skipped += 1
                    continue
                if not feed.put(line):
                    return  # stopped
            done.check_end()
        except Exception as exc:  # reading failed, or --resume met another input
            feed.end(exc)
        else:
            feed.end()

    async def worker() -> None:
        nonlocal turn
        while True:
            line = await feed.get(writer.flush)
            if line is None:
                return
            first = turn
            turn = (turn + 1) % len(clients)
            writer.write(await _resolve(args, clients, first, line, bucket, tally))
            tally.done += 1

    progress = _Progress(tally, total) if show else None
    if progress is not None:
        progress.start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            for client in clients:
                await stack.enter_async_context(client)
            threading.Thread(target=read_all, name="dotclient-bulk-reader", daemon=True).start()
            try:
                await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            finally:
                feed.stop()
            if feed.error is not None:
                raise feed.error
    finally:
        try:
            writer.flush()
        finally:
            if progress is not None:
                progress.stop()


class _Feed:
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


async def _resolve(
    args: argparse.Namespace,
    clients: list[dotclient.AsyncClient],
    first: int,
    line: Line,
    bucket: TokenBucket | None,
    tally: Tally,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "index": line.index,
        "name": line.name,
        "type": line.rdtype,
        "rcode": None,
        "answers": [],
        "server": None,
        "elapsed": None,
        "error": None,
    }
    if line.problem is not None:
        record["error"] = f"UsageError: {line.problem}"
        tally.failed += 1
        return record
    attempt = 0
    while True:
        client = clients[(first + attempt) % len(clients)]
        record["server"] = str(client.server)
        if bucket is not None:
            await bucket.take()
        try:
            response = await client.resolve(line.name, line.rdtype, dnssec=args.dnssec)
        except _RETRIED as exc:
            if attempt < args.retries:
                attempt += 1
                tally.retries += 1
                continue
            if attempt:
                record["retries"] = attempt
            return _failed(record, exc, tally)
        except (dotclient.DoTError, ValueError) as exc:
            return _failed(record, exc, tally)
        break
    rcode = dns.rcode.to_text(response.rcode)
    rrset = response.rrset if response.rcode == dns.rcode.NOERROR else None
    record["rcode"] = rcode
    record["answers"] = [rdata.to_text() for rdata in rrset] if rrset is not None else []
    record["elapsed"] = round(response.elapsed, 6)
    if attempt:
        record["retries"] = attempt
    tally.rcodes[rcode] += 1
    tally.per_server[record["server"]] += 1
    return record


def _failed(record: dict[str, Any], exc: BaseException, tally: Tally) -> dict[str, Any]:
    record["error"] = describe(exc)
    tally.failed += 1
    tally.last_error = exc
    return record


class _Writer:
    """JSON Lines out, flushed every half second (and at the end)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.flushed = time.monotonic()

    def write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")
        now = time.monotonic()
        if now - self.flushed > _FLUSH_EVERY:
            self.flush()
            self.flushed = now

    def flush(self) -> None:
        try:
            self.out.flush()
        except BrokenPipeError:
            raise  # the reader is gone (| head): stop, with EXIT_BROKEN_PIPE
        except (OSError, ValueError):
            pass


class _Progress:
    """rich's progress bar on standard error: done/total, rate, ETA; updated by a timer
    thread ten times a second, so the workers only bump a counter."""

    def __init__(self, tally: Tally, total: int | None) -> None:
        self.tally = tally
        self.total = total
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.progress: Any = None

    def start(self) -> None:
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
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()
        if self.progress is not None:
            self.progress.stop()


def _summary(tally: Tally, elapsed: float) -> None:
    answered = tally.done - tally.failed
    rate = tally.done / elapsed if elapsed > 0 else 0.0
    rcodes = ", ".join(f"{count} {rcode}" for rcode, count in tally.rcodes.most_common())
    lines = [
        f"dotclient bulk: {tally.done} names in {elapsed:.1f} s ({rate:,.0f} q/s): "
        f"{answered} answered ({rcodes or 'none'}), {tally.failed} failed, "
        f"{tally.retries} retries"
        + (f", {tally.skipped} skipped (already in the output)" if tally.skipped else ""),
    ]
    if len(tally.per_server) > 1:
        lines.append(
            "  answered by: " + ", ".join(f"{s} {n}" for s, n in tally.per_server.most_common())
        )
    if tally.last_error is not None:
        lines.append(f"  last error: {describe(tally.last_error)}")
    stream = sys.stderr
    for line in lines:
        print(line, file=stream)
