"""What the three commands share: exit codes, server and TLS options, errors, rich."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any, TextIO

import dotclient
from dotclient._server import DEFAULT_SERVER_ENV, parse_pin

#: The answer came back with RCODE NOERROR (query), the verdict is OK (probe), every
#: name got an answer (bulk).
EXIT_OK = 0
#: query: an answer with another RCODE (NXDOMAIN, SERVFAIL, ...); probe: verdict WARN;
#: bulk: some names ended in an error.
EXIT_RCODE = 1
#: Bad usage: unknown option, malformed server spec, pin, type or file (argparse's code).
EXIT_USAGE = 2
#: The network failed: no TCP connection, connection lost, or a timeout.
EXIT_NETWORK = 3
#: TLS failed: handshake refused, or the server could not be authenticated.
EXIT_TLS = 4
#: The server broke the protocol (framing, mismatched or malformed answer).
EXIT_PROTOCOL = 5
#: Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
#: Standard output was closed early (``| head``): 128 + SIGPIPE, the status of a tool
#: that the signal ended, as shells report it; nothing is printed.
EXIT_BROKEN_PIPE = 141

RICH_MISSING = "this needs the 'rich' package: pip install 'dotclient[cli]'"


class UsageError(Exception):
    """Bad command-line input, found before any I/O: exit code 2."""


def exit_code(exc: BaseException) -> int:
    """The exit code for an error a command could not get past."""
    if isinstance(exc, dotclient.AllServersFailed) and exc.errors:
        return exit_code(exc.errors[-1][1])  # the last server's failure
    if isinstance(exc, dotclient.TLSError):  # AuthenticationError included
        return EXIT_TLS
    if isinstance(exc, (dotclient.NetworkError, dotclient.Timeout)):
        return EXIT_NETWORK
    if isinstance(exc, (ValueError, TypeError, UsageError)):
        return EXIT_USAGE
    return EXIT_PROTOCOL


def describe(exc: BaseException) -> str:
    """``"Timeout: timed out waiting for ..."``: the class tells what kind of failure."""
    return f"{type(exc).__name__}: {exc}"


def add_server_options(parser: argparse.ArgumentParser, *, many: bool = True) -> None:
    """--server and --servers (``many``: the commands that take several servers)."""
    group = parser.add_argument_group("server")
    if many:
        group.add_argument(
            "--server",
            "-s",
            action="append",
            default=[],
            metavar="SPEC",
            help="server spec: 1.1.1.1, 1.1.1.1:853, [::1]:853#dot.test, dns.google, "
            "cloudflare, google, quad9 (repeatable; default $DOTCLIENT_SERVER, else "
            "cloudflare)",
        )
        group.add_argument(
            "--servers",
            action="append",
            default=[],
            metavar="A,B,...",
            help="several server specs, comma-separated",
        )


def add_tls_options(
    parser: argparse.ArgumentParser, *, profile: bool = True, padding: bool = True
) -> None:
    """The options every command passes to the client: TLS and authentication (with
    --profile and --no-padding where the command honours them), then connections."""
    _add_authentication(parser.add_argument_group("TLS and authentication"), profile, padding)
    _add_connections(parser.add_argument_group("connections"))


def _add_authentication(group: argparse._ArgumentGroup, profile: bool, padding: bool) -> None:
    group.add_argument("--ca-file", metavar="PEM", help="trust these CAs instead of certifi's")
    group.add_argument(
        "--auth-name", metavar="NAME", help="authentication domain name the certificate must carry"
    )
    group.add_argument(
        "--pin",
        action="append",
        default=[],
        metavar="sha256/BASE64",
        help="SPKI pin; one must match a certificate of the chain (repeatable)",
    )
    group.add_argument(
        "--pin-only",
        action="store_true",
        help="trust a matching pin alone, without CA or name checks (self-signed servers)",
    )
    if profile:
        group.add_argument(
            "--profile",
            choices=["strict", "opportunistic"],
            default="strict",
            help="strict (default) fails unless authenticated; opportunistic goes on "
            "encrypted but unauthenticated",
        )
    if padding:
        group.add_argument(
            "--no-padding", action="store_true", help="do not pad queries (RFC 8467)"
        )
    group.add_argument(
        "--sni",
        metavar="NAME",
        help="send this SNI name instead of the authentication name (the certificate is "
        "still checked against the authentication name)",
    )
    group.add_argument("--no-sni", action="store_true", help="send no SNI at all")
    group.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="per query (default 5)"
    )


def _add_connections(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--keepalive",
        action="store_true",
        help="send the EDNS TCP keepalive option (RFC 7828) and honour the server's timeout",
    )
    group.add_argument(
        "--idle-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="close connections idle this long (default 10)",
    )
    group.add_argument("--no-resumption", action="store_true", help="never resume TLS sessions")
    group.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        metavar="SPEC",
        help="a DoT server given by IP that looks up server names over DoT (repeatable); "
        "without it a server name is looked up in cleartext by the system resolver",
    )
    group.add_argument(
        "--proxy",
        metavar="URL",
        help="connect through a SOCKS5 proxy: socks5://[user:pass@]host:port, or "
        "socks5h://... to have the proxy resolve server names (needs dotclient[socks])",
    )
    group.add_argument(
        "--client-cert", metavar="PEM", help="client certificate for servers that require one"
    )
    group.add_argument(
        "--client-key", metavar="PEM", help="its private key, if not in the certificate's file"
    )
    group.add_argument(
        "--source", metavar="ADDR[:PORT]", help="local address (and port) to connect from"
    )


def server_specs(args: argparse.Namespace, extra: Sequence[str] = ()) -> list[str | None]:
    """The servers to use, in order: ``@SERVER`` words, ``--server``, ``--servers``.

    Each is parsed now so that a typo is a usage error before any I/O. ``[None]`` (the
    library's default server) when none was given.
    """
    specs = list(extra) + list(args.server)
    for listed in args.servers:
        specs += [s.strip() for s in listed.split(",") if s.strip()]
    if not specs:
        from_env = os.environ.get(DEFAULT_SERVER_ENV, "").strip()
        if not from_env:
            return [None]  # the library's default: cloudflare
        specs = [from_env]
        try:
            dotclient.parse_server(from_env)
        except ValueError as exc:
            raise UsageError(f"${DEFAULT_SERVER_ENV}: {exc}") from None
    seen: dict[str, str] = {}
    for spec in specs:
        try:
            server = str(dotclient.parse_server(spec))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if server in seen:
            same = "" if seen[server] == spec else f" (as {seen[server]!r} and {spec!r})"
            raise UsageError(f"server {server} is listed twice{same}")
        seen[server] = spec
    return list(specs)


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for :class:`dotclient.Client` / :class:`dotclient.AsyncClient`.

    Every option is checked here, with the option's own name in the message; the
    library's messages speak its keyword arguments (:func:`cli_message` translates
    what is left)."""
    if args.pin_only and not args.pin:
        raise UsageError("--pin-only needs at least one --pin sha256/BASE64")
    for pin in args.pin:
        try:
            parse_pin(pin)
        except ValueError as exc:
            raise UsageError(f"--pin: {exc}") from None
    options: dict[str, Any] = {
        "timeout": args.timeout,
        "auth_name": args.auth_name,
        "pins": args.pin or None,
        "pin_only": args.pin_only,
        "ca_file": args.ca_file,
    }
    if args.no_sni:
        options["sni"] = False
    elif args.sni:
        options["sni"] = args.sni
    if args.keepalive:
        options["keepalive"] = True
    if args.no_resumption:
        options["resumption"] = False
    if args.idle_timeout <= 0:
        raise UsageError(f"--idle-timeout must be positive, not {args.idle_timeout}")
    options["idle_timeout"] = args.idle_timeout
    if getattr(args, "bootstrap", None):
        options["bootstrap"] = args.bootstrap
    for name in ("proxy", "client_cert", "client_key"):
        if getattr(args, name, None):
            options[name] = getattr(args, name)
    if getattr(args, "source", None):
        options["source_address"] = parse_source(args.source)
    if hasattr(args, "profile"):
        options["profile"] = args.profile
    if hasattr(args, "no_padding"):
        options["padding"] = not args.no_padding
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, not {args.timeout}")
    return options


# The library's keyword arguments, as the command line spells them.
_API_NAMES = [
    (re.compile(r"pin_only=True"), "--pin-only"),
    (re.compile(r"\(pins=\[\.\.\.\]\)"), "(--pin)"),
    (re.compile(r"\bca_file\b"), "--ca-file"),
    (re.compile(r"\bmax_connections\b"), "--connections"),
    (re.compile(r"\bidle_timeout\b"), "--idle-timeout"),
    (re.compile(r"\bauth_name\b"), "--auth-name"),
    (re.compile(r"\bsni\b"), "--sni"),
]


def cli_message(message: str) -> str:
    """A library ``ValueError`` message with its keyword arguments named as options."""
    for pattern, option in _API_NAMES:
        message = pattern.sub(option, message)
    return message


def hints(errors: Iterable[BaseException]) -> list[str]:
    """What to try next, for failures with a usual cause (one line each, no repeats)."""
    found: list[str] = []
    for exc in errors:
        text = str(exc)
        hint = None
        if isinstance(exc, dotclient.AuthenticationError) and any(
            reason in text
            for reason in ("self-signed", "unable to get local issuer", "self signed")
        ):
            hint = (
                "the server's certificate does not chain to a trusted CA: give its CA "
                "with --ca-file PEM, or pin its key with --pin (dotclient probe shows it)"
            )
        if hint is not None and hint not in found:
            found.append(hint)
    return found


def parse_source(text: str) -> str | tuple[str, int]:
    """``--source``: ``ADDR``, ``ADDR:PORT`` or ``[IPv6]:PORT``."""
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if port is None:
        return host
    if not (port.isascii() and port.isdigit()):
        raise UsageError(f"invalid port in --source {text!r}")
    return (host, int(port))


def require_rich() -> ModuleType:
    """The rich package, imported on first use so that ``import dotclient`` never needs it."""
    try:
        import rich
    except ImportError:
        raise UsageError(RICH_MISSING) from None
    return rich


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (False for a closed or replaced stream)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def error(command: str, message: str) -> None:
    """Print ``dotclient COMMAND: message`` on standard error."""
    print(f"dotclient {command}: {message}", file=sys.stderr)
