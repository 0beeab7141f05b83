"""The ``dotclient`` command (also ``python -m dotclient``), built on the public API.

    dotclient example.com AAAA @9.9.9.9        # query is the default command
    dotclient query a.example.test @127.0.0.1:8853#dot.test --ca-file ca.pem --json
    dotclient probe 9.9.9.9#dns.quad9.net      # is port 853 healthy, and how
    dotclient bulk names.txt --server quad9 --rate 50 --output out.jsonl --resume
    dotclient serve --listen 127.0.0.1:5300 --server quad9   # a local stub resolver

See ``docs/cli.md``. Tables and the progress bar need ``rich`` (``pip install
'dotclient[cli]'``); plain output and JSON do not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import NoReturn

from . import __version__
from ._cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    error,
)

__all__ = ["main"]

_COMMANDS = ("query", "probe", "bulk", "serve")

_USAGE = f"""\
usage: dotclient [query] NAME [TYPE] [CLASS] [@SERVER] ... [-x ADDR] [options]
       dotclient probe [SERVER] [options]
       dotclient bulk FILE [options]
       dotclient serve [options]

DNS over TLS from the command line (dotclient {__version__}).

commands:
  query   look a name up (the default command): dig-like text, or --json
  probe   check a DoT server's port 853: TCP, TLS, certificates, pins, latency,
          resumption, pipelining, keepalive and padding, with a verdict
  bulk    resolve a list of names (FILE or - for stdin) to JSON Lines, pipelined
  serve   a local stub resolver: plain DNS on UDP/TCP in, DoT out, with a cache

'dotclient COMMAND --help' describes each. Exit codes: 0 ok, 1 an RCODE other than
NOERROR (query) / WARN (probe) / some names failed (bulk), 2 bad usage, 3 network
failure or timeout, 4 TLS or authentication failure, 5 protocol error, 130
interrupted (Ctrl-C), 141 standard output closed early (e.g. piped into head).
"""


def _module(command: str) -> ModuleType:
    # Each command imports only what it needs (rich only where it draws).
    if command == "probe":
        from ._cli import probe

        return probe
    if command == "bulk":
        from ._cli import bulk

        return bulk
    if command == "serve":
        from ._cli import serve

        return serve
    from ._cli import query

    return query


class _ArgumentError(Exception):
    """argparse's complaint about the command line, raised instead of exiting."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _ArgumentError(message)


def _parser(command: str, module: ModuleType) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"dotclient {command}",
        description=module.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add: Callable[[argparse.ArgumentParser], None] = module.add_arguments
    add(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_USAGE, end="", file=sys.stdout if args else sys.stderr)
        return EXIT_OK if args else EXIT_USAGE
    if args[0] == "--version":
        print(f"dotclient {__version__}")
        return EXIT_OK
    command = "query"
    if args[0] in _COMMANDS:
        command = args.pop(0)
    module = _module(command)
    parser = _parser(command, module)
    # Usage errors are JSON too when JSON was asked for (query and probe).
    wants_json = "--json" in args and command != "bulk"
    try:
        namespace = parser.parse_intermixed_args(args)
    except SystemExit as exc:  # argparse has printed the help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except _ArgumentError as exc:
        if wants_json:
            return _usage_error(command, str(exc), as_json=True)
        parser.print_usage(sys.stderr)
        return _usage_error(command, str(exc), as_json=False)
    namespace.argv = args  # as typed after the command name (bulk's resume hint)
    try:
        code: int = module.run(namespace)
    except UsageError as exc:
        return _usage_error(command, str(exc), as_json=wants_json)
    except KeyboardInterrupt:
        error(command, "interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. piped into head: the reader has what it wanted
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    return code


def _usage_error(command: str, message: str, *, as_json: bool) -> int:
    """Report bad usage: one line on standard error, or a JSON object with --json."""
    if as_json:
        document = {"error": f"UsageError: {message}", "exit_code": EXIT_USAGE}
        print(json.dumps(document, indent=2))
    else:
        error(command, f"error: {message}")
    return EXIT_USAGE


def _silence_stdout() -> None:
    """Point the real standard output at /dev/null, so that the interpreter's last flush
    of what is still buffered does not fail again ("Exception ignored ...")."""
    if sys.stdout is not sys.__stdout__ or sys.stdout is None:
        return  # replaced (a test's capture): not ours to touch
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
