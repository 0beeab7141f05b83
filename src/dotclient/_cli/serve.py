"""``dotclient serve``: a local stub resolver forwarding plain DNS to DoT."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import signal
import sys
from typing import Any

import dotclient

from .._serve._access import LOOPBACK, AccessList
from .._serve._cache import DEFAULT_SIZE, Cache
from .._serve._metrics import PROMETHEUS_MISSING, Metrics
from .._serve._server import BindError, Stub, family_missing
from .._serve._settings import DEFAULT_LISTEN, KEYS, load_config, parse_listen
from .common import EXIT_NETWORK, EXIT_OK, UsageError, add_tls_options, client_options, error

DESCRIPTION = """\
Answer plain DNS on UDP and TCP (port 53 of the loopback addresses by default) and
forward every query over DNS over TLS, through one pooled, pipelined client. Answers
are cached (--no-cache to turn off); queries are taken from loopback only unless
--allow widens it. SIGTERM or Ctrl-C drains: queries under way are answered first.

examples:
  dotclient serve --listen 127.0.0.1:5300 --server quad9
  dotclient serve --config /etc/dotclient/serve.toml

See docs/serve.md for resolv.conf, systemd-resolved, a systemd unit and metrics."""

# Flags whose argparse default must not hide the config file's value.
_DEFAULTS: dict[str, Any] = {
    "timeout": 5.0,
    "idle_timeout": 10.0,
    "profile": "strict",
    "strategy": "failover",
    "cache_size": DEFAULT_SIZE,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """serve's command line: where to listen, the upstream servers, the cache."""
    group = parser.add_argument_group("serving")
    group.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="ADDR:PORT",
        help="UDP and TCP address to answer on (repeatable; default 127.0.0.1:53 and "
        "[::1]:53); port 0 picks a free one",
    )
    group.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="CIDR",
        help="also answer queries from this network (repeatable; loopback always is)",
    )
    group.add_argument(
        "--cache-size",
        type=int,
        metavar="N",
        help=f"answers kept in the cache (default {DEFAULT_SIZE})",
    )
    group.add_argument("--no-cache", action="store_true", help="forward every query")
    group.add_argument(
        "--metrics", metavar="ADDR:PORT", help="serve Prometheus metrics over HTTP here"
    )
    group.add_argument("--config", metavar="FILE", help="TOML file with these settings")
    group.add_argument(
        "--quiet", "-q", action="store_true", help="log nothing but errors to stderr"
    )
    upstream = parser.add_argument_group("upstream DoT servers")
    upstream.add_argument(
        "--server",
        "-s",
        action="append",
        default=[],
        metavar="SPEC",
        help="DoT server spec: 1.1.1.1, [::1]:853#dot.test, quad9, ... (repeatable; "
        "default $DOTCLIENT_SERVER, else cloudflare)",
    )
    upstream.add_argument(
        "--servers", action="append", default=[], metavar="A,B,...", help="comma-separated specs"
    )
    upstream.add_argument(
        "--strategy",
        choices=["failover", "round_robin"],
        help="with several servers: failover (default) or round_robin",
    )
    upstream.add_argument(
        "--server-timeout",
        type=float,
        metavar="SECONDS",
        help="seconds one server gets before the query moves on (default: a share)",
    )
    # Padding upstream is not optional here: the stub exists to hide queries.
    add_tls_options(parser, padding=False)
    parser.set_defaults(timeout=None, idle_timeout=None, profile=None)


def _merge(args: argparse.Namespace) -> argparse.Namespace:
    """The command line over the config file over the defaults."""
    config = load_config(args.config) if args.config else {}
    merged = argparse.Namespace(**vars(args))
    for key in KEYS:
        given = getattr(args, key)
        if given in (None, False, []) and key in config:
            setattr(merged, key, config[key])
        elif given is None:
            setattr(merged, key, _DEFAULTS.get(key))
    for key, value in _DEFAULTS.items():
        if getattr(merged, key) is None:
            setattr(merged, key, value)
    return merged


def _specs(args: argparse.Namespace) -> list[str]:
    specs = list(args.server)
    for listed in args.servers:
        specs += [s.strip() for s in listed.split(",") if s.strip()]
    for spec in specs:
        try:
            dotclient.parse_server(spec)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return specs


#: Seconds at most between tries of an upstream that failed (see _settings).
SERVE_MAX_BACKOFF = 30.0


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    try:
        args = _merge(args)
    except OSError as exc:
        raise UsageError(f"cannot read --config: {exc}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        listen = [parse_listen(text) for text in args.listen or DEFAULT_LISTEN]
        metrics = parse_listen(args.metrics, 9153) if args.metrics else None
        access = AccessList([*LOOPBACK, *args.allow])
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.cache_size < 1:
        raise UsageError(f"--cache-size must be at least 1, not {args.cache_size}")
    if metrics is not None and importlib.util.find_spec("prometheus_client") is None:
        raise UsageError(PROMETHEUS_MISSING)
    options = client_options(args)
    options["strategy"] = args.strategy
    # A stub runs for days and answers for the whole machine: a server that failed is
    # tried again within half a minute, not remembered for the library's hour (which
    # suits a program that asks now and then), so that a network that comes back
    # serves answers again at once rather than SERVFAILs.
    options["max_backoff"] = SERVE_MAX_BACKOFF
    if args.server_timeout is not None:
        if args.server_timeout <= 0:
            raise UsageError(f"--server-timeout must be positive, not {args.server_timeout}")
        options["server_timeout"] = args.server_timeout
    specs = _specs(args)
    if len(specs) > 1:
        options["servers"] = specs
    elif specs:
        options["server"] = specs[0]
    try:  # the client checks its options before any I/O
        dotclient.AsyncClient(**options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return {
        "listen": listen,
        "explicit_listen": bool(args.listen),
        "metrics": metrics,
        "access": access,
        "cache": None if args.no_cache else args.cache_size,
        "client": options,
        "quiet": args.quiet,
    }


async def _serve(settings: dict[str, Any]) -> int:
    client = dotclient.AsyncClient(**settings["client"])
    cache = Cache(settings["cache"]) if settings["cache"] else None
    metrics = Metrics() if settings["metrics"] else None
    scrape = ""
    stub = Stub(client, cache=cache, access=settings["access"], metrics=metrics)
    listen = settings["listen"]
    try:
        if settings["explicit_listen"]:
            await stub.start(listen)
        else:  # the defaults: go on without ::1 on a machine without IPv6
            for address in listen:
                try:
                    await stub.start([address])
                except BindError as exc:
                    if not family_missing(exc) or address == listen[0]:
                        raise
                    error("serve", f"warning: {exc}")
        if metrics is not None:
            host, port = settings["metrics"]
            port = metrics.start(host, port)
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            scrape = f"; metrics on http://{where}/metrics"
    except (BindError, OSError) as exc:
        await stub.aclose()
        error("serve", f"error: {exc}")
        return EXIT_NETWORK
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    where = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in stub.addresses)
    servers = ", ".join(str(s) for s in client.servers)
    # Tests and scripts wait for this line: it comes once every socket is bound.
    print(
        f"dotclient serve: listening on {where} (udp, tcp), forwarding to {servers}{scrape}",
        file=sys.stderr,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    logging.getLogger("dotclient.serve").info("draining")
    await stub.drain(client.timeout + 1.0)
    print("dotclient serve: stopped", file=sys.stderr, flush=True)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Serve until stopped (Ctrl-C, SIGTERM); the exit code."""
    settings = _settings(args)
    logging.basicConfig(
        level=logging.ERROR if settings["quiet"] else logging.INFO,
        format="dotclient serve: %(message)s",
        stream=sys.stderr,
    )
    return asyncio.run(_serve(settings))
