"""``dotclient bulk FILE``: resolve a list of names to JSON Lines, in constant memory.

How it streams: a reader thread hands each input line, as it is read, to a bounded
buffer (:class:`~.bulk_stream.Feed`); ``--concurrency`` worker tasks all take names
from it and resolve them through one :class:`~dotclient.AsyncClient` with every server
(``strategy="round_robin"``: the library deals the names out, moves a name that fails
on a server on to the next, backs off servers that fail and resends queries whose
connection closed); each result is written as one JSON line as soon as it completes,
so output order follows completion, and ``index`` (the input line number) ties it
back. Nothing is kept per name but a byte for ``--resume`` (:mod:`.bulk_input`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

import dns.rcode
import dns.rdatatype

import dotclient
from dotclient._config import DEFAULT_MAX_CONNECTIONS
from dotclient._deadline import MAX_SECONDS

from .bulk_input import (
    Done,
    Line,
    check_resume,
    count_names,
    parse_lines,
    read_done,
    refuse_input_as_output,
)
from .bulk_stream import Feed, Progress, Tally, TokenBucket, Writer, run_interruptibly
from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RCODE,
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
pool of connections to each server, names spread round-robin over the servers (a name
that fails on one moves on to the next, --retries times after a timeout); each name
gives one JSON line (index, name, type, rcode, answers, server, elapsed, error) as it
completes. A progress bar with rate and ETA is drawn on a terminal. Exit codes: 0
every name answered (any RCODE), 1 some names failed, 2 bad usage, 3/4/5 every name
failed (network / TLS / protocol)."""


_BUFFER = 512  # input lines read ahead of the workers (at least; twice --concurrency)
_ADDRESS_TYPES = frozenset({"A", "AAAA"})  # answered from Response.addresses()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """bulk's command line: FILE, the server and TLS options, and bulk's own."""
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
        help="start at most this many names per second (default: no limit)",
    )
    group.add_argument(
        "--retries",
        type=int,
        default=2,
        help="further servers a name may move on to: a server gets --timeout before the "
        "name moves on, a name at most --timeout x (1 + N) in all (default 2)",
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


def run(args: argparse.Namespace) -> int:
    """Resolve every name of FILE; write the JSON lines and the summary; the exit code."""
    _check(args)
    client = _client(args, server_specs(args), client_options(args))
    tally = Tally()
    with contextlib.ExitStack() as stack:
        source, total = _input(args, stack)
        out, done = _output(args, stack)
        show = args.progress if args.progress is not None else is_terminal(sys.stderr)
        started = time.monotonic()
        try:
            run_interruptibly(_Bulk(args, client, done, tally).run(source, out, total, show))
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


def _check(args: argparse.Namespace) -> None:
    """bulk's own options (the client checks the others)."""
    if not 1 <= args.connections <= 64:  # before _client divides by it
        raise UsageError(f"--connections must be 1 to 64, not {args.connections}")
    if not 1 <= args.concurrency <= 65535:
        raise UsageError(f"--concurrency must be 1 to 65535, not {args.concurrency}")
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


def _client(
    args: argparse.Namespace, specs: list[str | None], options: dict[str, Any]
) -> dotclient.AsyncClient:
    """One client for every server. --retries is the library's failover: a server gets
    --timeout (``server_timeout``) before the name moves on, a name --timeout x
    (1 + --retries) in all; the last server tried gets what is left of that."""
    whole = max(args.timeout, min(args.timeout * (1 + args.retries), MAX_SECONDS))
    options = {
        **options,
        "timeout": whole,
        "max_connections": args.connections,
        "max_in_flight": max(1, -(-args.concurrency // (len(specs) * args.connections))),
    }
    try:
        if len(specs) == 1:
            return dotclient.AsyncClient(specs[0], **options)
        servers = [spec for spec in specs if spec is not None]  # None comes only alone
        return dotclient.AsyncClient(
            servers=servers, strategy="round_robin", server_timeout=args.timeout, **options
        )
    except ValueError as exc:
        raise UsageError(cli_message(str(exc))) from None


def _input(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[IO[str], int | None]:
    """The names to read, and how many there are (for the ETA) when that is known."""
    if args.file == "-":
        return sys.stdin, None
    try:
        source = stack.enter_context(open(args.file, encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    return source, count_names(args.file)


def _output(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[IO[str], Done]:
    """Where the JSON lines go, and the input lines it has already (--resume)."""
    if not args.output:
        return sys.stdout, Done()
    refuse_input_as_output(args.file, args.output)
    done = Done()
    try:
        if args.resume and os.path.exists(args.output):
            done = read_done(args.output)
            if args.file != "-" and done.count:
                check_resume(args.file, args.type, done)
        mode = "a" if args.resume else "w"
        return stack.enter_context(open(args.output, mode, encoding="utf-8")), done
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None


class _Bulk:
    """One run: a reader thread feeds the input lines to ``--concurrency`` workers, which
    resolve them through the client and write each result as it completes."""

    def __init__(
        self, args: argparse.Namespace, client: dotclient.AsyncClient, done: Done, tally: Tally
    ) -> None:
        self.args = args
        self.client = client
        self.done = done
        self.tally = tally
        self.bucket = TokenBucket(args.rate) if args.rate else None

    async def run(self, source: IO[str], out: IO[str], total: int | None, show: bool) -> None:
        """Resolve every line of ``source``, writing to ``out``; the client is closed,
        the output flushed and the progress bar stopped however it ends."""
        args = self.args
        writer = Writer(out)
        lines = parse_lines(source, dns.rdatatype.to_text(dns.rdatatype.from_text(args.type)))
        feed = Feed(asyncio.get_running_loop(), max(_BUFFER, 2 * args.concurrency))
        progress = Progress(self.tally, total) if show else None
        if progress is not None:
            progress.start()
        try:
            async with self.client:
                reader = threading.Thread(
                    target=self._read,
                    args=(lines, feed),
                    name="dotclient-bulk-reader",
                    daemon=True,
                )
                reader.start()
                try:
                    await asyncio.gather(
                        *(self._work(feed, writer) for _ in range(args.concurrency))
                    )
                finally:
                    feed.stop()
                    self.tally.retries = self.client.stats.failovers
                if feed.error is not None:
                    raise feed.error
        finally:
            try:
                writer.flush()
            finally:
                if progress is not None:
                    progress.stop()

    def _read(self, lines: Iterator[Line], feed: Feed) -> None:
        # A daemon thread of its own, not an executor's: a read blocked on a pipe that
        # never ends must not keep the process from exiting (Ctrl-C).
        done = self.done
        try:
            for line in lines:
                if line.index in done:
                    done.check(line)
                    self.tally.skipped += 1
                    continue
                if not feed.put(line):
                    return  # stopped
            done.check_end()
        except Exception as exc:  # reading failed, or --resume met another input
            feed.end(exc)
        else:
            feed.end()

    async def _work(self, feed: Feed, writer: Writer) -> None:
        while True:
            line = await feed.get(writer.flush)
            if line is None:
                return
            writer.write(await self._resolve(line))
            self.tally.done += 1

    async def _resolve(self, line: Line) -> dict[str, Any]:
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
            self.tally.failed += 1
            return record
        if self.bucket is not None:
            await self.bucket.take()
        try:
            response = await self.client.resolve(line.name, line.rdtype, dnssec=self.args.dnssec)
        except (dotclient.DoTError, ValueError) as exc:
            return self._failed(record, exc)
        rcode = dns.rcode.to_text(response.rcode)
        record["rcode"] = rcode
        if response.rcode == dns.rcode.NOERROR:
            record["answers"] = self._answers(response, line.rdtype)
        record["server"] = self._name(response.server)
        record["elapsed"] = round(response.elapsed, 6)
        self.tally.rcodes[rcode] += 1
        self.tally.per_server[record["server"]] += 1
        return record

    @staticmethod
    def _answers(response: dotclient.Response, rdtype: str) -> list[str]:
        """The texts of the RRset answering the question (CNAMEs followed)."""
        if rdtype in _ADDRESS_TYPES:
            # The same texts in the same order as the RRset's, read from the wire:
            # building dnspython's RRset was a third of bulk's time per name.
            return response.addresses()
        rrset = response.rrset
        return [rdata.to_text() for rdata in rrset] if rrset is not None else []

    def _failed(self, record: dict[str, Any], exc: Exception) -> dict[str, Any]:
        """A name without an answer: the last server tried and its error, and how many
        servers it moved on to (``retries``) when it failed on several."""
        tried = exc.errors if isinstance(exc, dotclient.AllServersFailed) else ()
        if tried:
            server, exc = tried[-1]
            record["server"] = self._name(server)
        elif isinstance(exc, dotclient.DoTError):
            record["server"] = self._name(exc.server or self.client.server)
        record["error"] = describe(exc)
        if len(tried) > 1:
            record["retries"] = len(tried) - 1
        self.tally.failed += 1
        self.tally.last_error = exc
        return record

    def _name(self, server: dotclient.Server) -> str:
        """The server as given on the command line, for the server as connected (for a
        server given by name, the library names the address it used)."""
        servers = self.client.servers
        if server not in servers:
            named = [
                each
                for each in servers
                if not each.is_ip
                and each.port == server.port
                and each.verify_name == server.verify_name
            ]
            if len(named) == 1:
                server = named[0]
        return str(server)


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
