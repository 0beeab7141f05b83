"""A client's options, checked once, before any I/O: :class:`ClientConfig`.

``dotclient._async.client`` (and the ``_sync`` code generated from it) only move bytes
and wait; every option they follow comes from :class:`ClientConfig`.
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Iterable

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from . import _deadline
from ._failover import STRATEGIES
from ._happy import DEFAULT_ATTEMPT_DELAY
from ._protocol import DEFAULT_PADDING_BLOCK, MAX_PADDING_BLOCK
from ._question import Question, check_message, make_question
from ._response import Response, make_response
from ._route import make_route
from ._server import Server, parse_server
from ._tls import TLSInfo, TLSPolicy

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_BACKOFF",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_TIMEOUT",
    "ClientConfig",
    "ServerSpec",
]

#: Seconds a query may take by default: connect, handshake and answer together.
DEFAULT_TIMEOUT = 5.0
#: Connections a client keeps to each server, retired ones still finishing queries
#: included: one, as RFC 7766 section 6.2.2 recommends ("no more than one connection for
#: regular queries"); pipelining (max_in_flight) is what carries the load.
DEFAULT_MAX_CONNECTIONS = 1
#: Queries pipelined on one connection before callers wait (RFC 7766 section 6.2.1.1).
DEFAULT_MAX_IN_FLIGHT = 100
#: Seconds a connection with nothing in flight stays open (RFC 7858 section 3.4).
DEFAULT_IDLE_TIMEOUT = 10.0

#: Seconds a server that failed is tried only after the others; doubled with each further
#: failure in a row (RFC 7858 section 3.1), up to DEFAULT_MAX_BACKOFF: the RFC's "such as
#: one hour" for a server that keeps failing (see dotclient._failover).
DEFAULT_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 3600.0

ServerSpec = str | Server


def _check_count(what: str, value: int, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 1 <= value <= most:
        raise ValueError(f"{what} must be 1 to {most}, not {value}")
    return value


def _parse_servers(
    server: ServerSpec | None,
    servers: Iterable[ServerSpec] | None,
    auth_name: str | None,
    pins: Iterable[str | bytes] | None,
) -> tuple[Server, ...]:
    if servers is None:
        return (parse_server(server, auth_name=auth_name, pins=pins),)
    if server is not None:
        raise ValueError("give either server or servers, not both")
    if isinstance(servers, (str, Server)):
        raise TypeError("servers must be a list of server specs; for one, use server=")
    if pins is not None:
        pins = list(pins) if not isinstance(pins, (str, bytes)) else [pins]
    servers = list(servers)
    for index, spec in enumerate(servers):
        if spec is None:  # parse_server(None) is the default server: a third party
            raise TypeError(f"servers[{index}] is None: each server must be given")
    parsed = tuple(parse_server(spec, auth_name=auth_name, pins=pins) for spec in servers)
    if not parsed:
        raise ValueError("servers must name at least one server")
    for index, each in enumerate(parsed):
        if each in parsed[:index]:
            raise ValueError(f"server {each} is listed twice in servers")
    return parsed


def _parse_bootstrap(bootstrap: Iterable[ServerSpec] | None) -> tuple[Server, ...]:
    if bootstrap is None:
        return ()
    if isinstance(bootstrap, (str, Server)):
        bootstrap = [bootstrap]
    parsed = tuple(parse_server(spec) for spec in bootstrap)
    if not parsed:
        raise ValueError("bootstrap must name at least one server (or be None)")
    for each in parsed:
        if not each.is_ip:
            raise ValueError(
                f"bootstrap servers must be given by IP address, not {each}: "
                "looking up their own names would leak in cleartext"
            )
    return parsed


class ClientConfig:
    """Validated client options. Every check happens here, before any I/O."""

    def __init__(
        self,
        server: ServerSpec | None = None,
        *,
        servers: Iterable[ServerSpec] | None = None,
        strategy: str = "failover",
        server_timeout: float | None = None,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        timeout: float = DEFAULT_TIMEOUT,
        auth_name: str | None = None,
        pins: Iterable[str | bytes] | None = None,
        pin_only: bool = False,
        sni: str | bool | None = None,
        ca_file: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        profile: str = "strict",
        padding: bool | int = True,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        keepalive: bool = False,
        resumption: bool = True,
        client_cert: str | None = None,
        client_key: str | None = None,
        source_address: str | tuple[str, int] | None = None,
        proxy: str | None = None,
        happy_eyeballs_delay: float = DEFAULT_ATTEMPT_DELAY,
        bootstrap: Iterable[ServerSpec] | None = None,
        fast_open: bool = False,
    ) -> None:
        #: The servers, in the order given; ``server`` is the first.
        self.servers = _parse_servers(server, servers, auth_name, pins)
        self.server = self.servers[0]
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
        self.strategy = strategy
        self.timeout = _deadline.check_seconds(timeout, DEFAULT_TIMEOUT)
        #: Seconds one server gets for a query before it moves on to the next; None
        #: shares the time left evenly among the servers still to try.
        self.server_timeout = (
            None
            if server_timeout is None
            else _deadline.check_seconds(server_timeout, 0, "server_timeout")
        )
        self.backoff = _deadline.check_seconds(backoff, DEFAULT_BACKOFF, "backoff")
        self.max_backoff = _deadline.check_seconds(max_backoff, DEFAULT_MAX_BACKOFF, "max_backoff")
        if self.max_backoff < self.backoff:
            raise ValueError(
                f"max_backoff ({self.max_backoff}) must not be less than backoff ({self.backoff})"
            )
        self.max_connections = _check_count("max_connections", max_connections, 64)
        # Query IDs are 16 bits; a connection never has more in flight than that.
        self.max_in_flight = _check_count("max_in_flight", max_in_flight, 65535)
        self.idle_timeout = _deadline.check_seconds(
            idle_timeout, DEFAULT_IDLE_TIMEOUT, "idle_timeout"
        )
        self.keepalive = bool(keepalive)
        self.resumption = bool(resumption)
        #: Ask for TCP Fast Open (RFC 7413) on new connections (RFC 7858 section 3.4).
        self.fast_open = bool(fast_open)
        if padding is True:
            self.padding = DEFAULT_PADDING_BLOCK
        elif padding is False or padding is None:
            self.padding = 0
        elif isinstance(padding, int) and 0 <= padding <= MAX_PADDING_BLOCK:
            self.padding = padding
        else:
            raise ValueError(
                f"padding must be True, False or a block size 0-{MAX_PADDING_BLOCK}, "
                f"not {padding!r}"
            )
        if ca_file is not None:
            ca_file = str(ca_file)
        #: The TLS policy of each server, in the order of ``servers``.
        self.policies = tuple(
            TLSPolicy(
                each,
                ca_file=ca_file,
                ssl_context=ssl_context,
                sni=sni,
                pin_only=pin_only,
                profile=profile,
                client_cert=client_cert,
                client_key=client_key,
            )
            for each in self.servers
        )
        #: Where connections come from and through what they go.
        self.route = make_route(source_address, proxy, happy_eyeballs_delay)
        #: Servers (by IP) that look up the names of the others over DoT; () for none.
        self.bootstrap = _parse_bootstrap(bootstrap)
        if profile == "opportunistic" and any(each.pins for each in self.servers):
            # Kept, not refused: a caller may want answers whatever the pin says (the
            # probe does), and Response.authenticated says False; but a pin that
            # cannot stop a query is likely a mistake (RFC 7858 section 4.2 makes a
            # mismatch non-recoverable in the pinned profile), so say so.
            warnings.warn(
                "pins with profile='opportunistic': a server whose pin does not match "
                "is still used, unauthenticated (Response.authenticated is False); use "
                "the strict profile to make a pin mismatch fatal (RFC 7858 section 4.2)",
                UserWarning,
                stacklevel=3,
            )

    def deadline(self, timeout: float | None) -> float:
        """The ``time.monotonic()`` instant by which a query started now must end
        (``timeout``, or this client's)."""
        return _deadline.deadline(timeout, self.timeout)

    def share(self, deadline: float, untried: int) -> float | None:
        """Seconds the next server may take for a query when ``untried`` servers
        (counting it) are left to try; None for all the time left."""
        return _deadline.share(deadline, untried, self.server_timeout)

    @staticmethod
    def question(
        name: dns.name.Name | str,
        rdtype: dns.rdatatype.RdataType | str | int,
        rdclass: dns.rdataclass.RdataClass | str | int,
        dnssec: bool,
    ) -> Question:
        """Check what ``resolve()`` was asked, before any I/O (see ``_question``)."""
        return make_question(name, rdtype, rdclass, dnssec)

    @staticmethod
    def check_message(message: object) -> dns.message.Message:
        """Refuse anything but a dnspython query message, before any I/O."""
        return check_message(message)

    @staticmethod
    def response(
        query: dns.message.Message | None,
        message: dns.message.Message | bytes,
        started: float,
        tls: TLSInfo,
        server: Server,
    ) -> Response:
        """Wrap a validated answer (see ``_response.make_response``)."""
        return make_response(query, message, started, tls, server)
