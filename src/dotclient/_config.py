"""A client's options: defined once, checked once, before any I/O.

:class:`ClientOptions` is the keyword options as callers give them to ``Client``,
``AsyncClient``, ``resolve()`` and ``aresolve()`` (``**options: Unpack[ClientOptions]``,
so mypy checks every name and type at the call site). :meth:`ClientConfig.from_options`
turns them into a :class:`ClientConfig`: a frozen dataclass whose fields carry each
option's default and documentation (aioquic's ``QuicConfiguration``), checked in
``__post_init__``. The clients read everything they decide from it.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import ssl
import sys
import textwrap
import warnings
from collections.abc import Iterable
from typing import TypedDict

from . import _deadline
from ._failover import STRATEGIES
from ._happy import DEFAULT_ATTEMPT_DELAY
from ._query import DEFAULT_PADDING_BLOCK, MAX_PADDING_BLOCK
from ._route import Route, make_route
from ._server import Server, parse_server
from ._tls import TLSPolicy

# At run time too, so that typing.get_type_hints() (autodoc, validators) can read the
# signatures that take **options.
if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover - 3.10
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_BACKOFF",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_TIMEOUT",
    "OPTIONS_HELP",
    "ClientConfig",
    "ClientOptions",
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


class _AsGiven(TypedDict, total=False):
    # The options that ClientConfig fields take as given; ClientOptions adds the four
    # that from_options parses into servers and bootstrap.
    strategy: str
    server_timeout: float | None
    backoff: float
    max_backoff: float
    timeout: float
    pin_only: bool
    sni: str | bool | None
    ca_file: str | None
    ssl_context: ssl.SSLContext | None
    profile: str
    padding: bool | int
    max_connections: int
    max_in_flight: int
    idle_timeout: float
    keepalive: bool
    resumption: bool
    client_cert: str | None
    client_key: str | None
    source_address: str | tuple[str, int] | None
    proxy: str | None
    happy_eyeballs_delay: float
    fast_open: bool


class ClientOptions(_AsGiven, total=False):
    """The keyword options of ``Client``, ``AsyncClient``, ``resolve()`` and
    ``aresolve()``, as callers give them: each is the :class:`ClientConfig` field of the
    same name, documented there (``auth_name`` and ``pins`` with ``servers``). Type a
    function that passes them on with ``**options: Unpack[ClientOptions]``."""

    servers: Iterable[ServerSpec] | None
    auth_name: str | None
    pins: Iterable[str | bytes] | None
    bootstrap: Iterable[ServerSpec] | None


def _check_count(what: str, value: int, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 1 <= value <= most:
        raise ValueError(f"{what} must be 1 to {most}, not {value}")
    return value


def _check_padding(padding: bool | int | None) -> int:
    if padding is True:
        return DEFAULT_PADDING_BLOCK
    if padding is False or padding is None:
        return 0
    if isinstance(padding, int) and 0 <= padding <= MAX_PADDING_BLOCK:
        return padding
    raise ValueError(
        f"padding must be True, False or a block size 0-{MAX_PADDING_BLOCK}, not {padding!r}"
    )


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


def _default_servers() -> tuple[Server, ...]:
    return (parse_server(),)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """A client's options, checked: every check happens here, before any I/O.

    Build one with :meth:`from_options` from what a caller gave ``Client`` or
    ``AsyncClient``; a bad option raises ``ValueError`` or ``TypeError``.
    """

    servers: tuple[Server, ...] = dataclasses.field(default_factory=_default_servers)
    """The servers, in the order given, tried in turn when one fails. Given as
    ``server`` (one spec, positional: ``"1.1.1.1"``, ``"9.9.9.9#dns.quad9.net"``,
    ``"[2606:4700:4700::1111]:853"``, ``"dns.google"``, ``"cloudflare"``, ... or a
    :class:`Server`; None means ``$DOTCLIENT_SERVER``, else ``"cloudflare"``) or as
    ``servers`` (several specs). ``auth_name``: the authentication domain name to verify
    and send as SNI. ``pins``: SHA-256 SPKI pins (``"sha256/BASE64"``, RFC 7858 section
    4.2); one must match the verified chain. With ``servers``, both apply to every
    server; give each its own in its spec or :class:`Server` instead."""
    strategy: str = "failover"
    """``"failover"``: always the first server that works, in the order given;
    ``"round_robin"``: each query starts at the next server."""
    server_timeout: float | None = None
    """Seconds one server gets for a query before it moves on to the next; None shares
    the time left evenly among the servers still to try."""
    backoff: float = DEFAULT_BACKOFF
    """Seconds a server that failed goes to the back of the order, doubled with each
    further failure in a row, up to ``max_backoff`` (RFC 7858 section 3.1). While every
    server is backed off after failing to connect, handshake or authenticate (a lone
    server too), queries fail at once with the remembered error; see
    ``forget_failures()``."""
    max_backoff: float = DEFAULT_MAX_BACKOFF
    """The longest backoff, in seconds."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds for a whole query, connection set-up and every server tried included."""
    pin_only: bool = False
    """Trust a matching pin alone (for a self-signed server), without CA or name
    checks."""
    sni: str | bool | None = None
    """A different SNI name to send, or ``False`` for none; the name verified stays the
    authentication name."""
    ca_file: str | None = None
    """PEM trust anchors replacing certifi's bundle (a private CA)."""
    ssl_context: ssl.SSLContext | None = None
    """A context of your own, for full control of TLS."""
    profile: str = "strict"
    """``"strict"`` (RFC 8310) fails unless the server is authenticated;
    ``"opportunistic"`` then goes on encrypted but unauthenticated, and says so in
    :attr:`Response.authenticated`."""
    padding: int = DEFAULT_PADDING_BLOCK
    """Pad queries to multiples of this many octets (RFC 8467): ``True`` (given) is 128,
    ``False`` or 0 no padding."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Connections open to each server at once (RFC 7766 section 6.2.2), retired ones
    still finishing queries included. With more than one, another opens only when the
    others are full; past both limits callers wait (within their timeout) instead of
    failing."""
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    """Queries pipelined on one connection (RFC 7766 section 6.2.1.1)."""
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    """Seconds a connection with nothing in flight stays open."""
    keepalive: bool = False
    """Send the EDNS TCP keepalive option (RFC 7828) and close idle connections before
    the timeout the server offers."""
    resumption: bool = True
    """Resume the TLS session when reconnecting (with contexts dotclient builds: always
    off with ``ssl_context``)."""
    client_cert: str | None = None
    """A PEM file of a client certificate, for servers that require one (mTLS);
    resumption and pins keep working. Not with ``ssl_context``."""
    client_key: str | None = None
    """The PEM file of ``client_cert``'s key, if it is not in the certificate's file."""
    source_address: str | tuple[str, int] | None = None
    """The local IP address (or ``(address, port)``) to connect from; only the server's
    addresses of its family are tried."""
    proxy: str | None = None
    """``"socks5://[user:pass@]host:port"`` to connect through a SOCKS5 proxy (Tor too),
    or ``"socks5h://..."`` to have the proxy resolve server names; needs
    ``pip install 'dotclient[socks]'``."""
    happy_eyeballs_delay: float = DEFAULT_ATTEMPT_DELAY
    """With a server name that has several addresses, seconds between connection
    attempts (RFC 8305): IPv6 first, families alternating; the first TLS handshake to
    finish wins, the others are closed."""
    bootstrap: tuple[Server, ...] = ()
    """Servers, by IP address, that look up the names of the other servers over DoT
    (cached for the answer's TTL, refreshed before it expires). Without them a server
    name is looked up with the system resolver, in cleartext. Presets and servers given
    by IP need no lookup."""
    fast_open: bool = False
    """Ask for TCP Fast Open (RFC 7413; RFC 7858 section 3.4) on Linux, so that a
    connection to a server the kernel holds a cookie for carries the ClientHello in its
    SYN, saving a round trip. Where the kernel does not offer it, connections are made as
    usual. Off by default: the cookie identifies this host to the server across
    connections and networks."""

    # Derived from the fields above by __post_init__ (so not compared).
    server: Server = dataclasses.field(init=False, repr=False, compare=False)
    """The first server."""
    policies: tuple[TLSPolicy, ...] = dataclasses.field(init=False, repr=False, compare=False)
    """The TLS policy of each server, in the order of ``servers``."""
    route: Route = dataclasses.field(init=False, repr=False, compare=False)
    """Where connections come from and through what they go."""

    @classmethod
    def from_options(
        cls, server: ServerSpec | None = None, **options: Unpack[ClientOptions]
    ) -> ClientConfig:
        """Check what a caller gave ``Client(server, **options)``: parse the server
        specs (with ``auth_name`` and ``pins``) and the bootstrap servers, then check
        the rest as :class:`ClientConfig` does."""
        unknown = sorted(options.keys() - ClientOptions.__optional_keys__)
        if unknown:  # as Python says it, not naming ClientConfig.__init__
            raise TypeError(f"got an unexpected keyword argument {unknown[0]!r}")
        servers = _parse_servers(
            server,
            options.pop("servers", None),
            options.pop("auth_name", None),
            options.pop("pins", None),
        )
        bootstrap = _parse_bootstrap(options.pop("bootstrap", None))
        as_given: _AsGiven = options
        return cls(servers=servers, bootstrap=bootstrap, **as_given)

    def __post_init__(self) -> None:
        def fix(name: str, value: object) -> None:
            object.__setattr__(self, name, value)  # frozen: only here, while checking

        if not self.servers:
            raise ValueError("servers must name at least one server")
        fix("server", self.servers[0])
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}"
            )
        check = _deadline.check_seconds
        fix("timeout", check(self.timeout, DEFAULT_TIMEOUT))
        if self.server_timeout is not None:
            fix("server_timeout", check(self.server_timeout, 0, "server_timeout"))
        fix("backoff", check(self.backoff, DEFAULT_BACKOFF, "backoff"))
        fix("max_backoff", check(self.max_backoff, DEFAULT_MAX_BACKOFF, "max_backoff"))
        if self.max_backoff < self.backoff:
            raise ValueError(
                f"max_backoff ({self.max_backoff}) must not be less than backoff ({self.backoff})"
            )
        _check_count("max_connections", self.max_connections, 64)
        # Query IDs are 16 bits; a connection never has more in flight than that.
        _check_count("max_in_flight", self.max_in_flight, 65535)
        fix("idle_timeout", check(self.idle_timeout, DEFAULT_IDLE_TIMEOUT, "idle_timeout"))
        fix("keepalive", bool(self.keepalive))
        # Sessions are kept with the contexts dotclient builds only (docs/guide.md).
        fix("resumption", bool(self.resumption) and self.ssl_context is None)
        fix("fast_open", bool(self.fast_open))
        fix("padding", _check_padding(self.padding))
        if self.ca_file is not None:
            fix("ca_file", str(self.ca_file))  # a path object too
        fix("policies", tuple(self._policy(each) for each in self.servers))
        fix("route", make_route(self.source_address, self.proxy, self.happy_eyeballs_delay))
        if self.profile == "opportunistic" and any(each.pins for each in self.servers):
            # Kept, not refused: a caller may want answers whatever the pin says (the
            # probe does), and Response.authenticated says False; but a pin that
            # cannot stop a query is likely a mistake (RFC 7858 section 4.2 makes a
            # mismatch non-recoverable in the pinned profile), so say so. stacklevel:
            # here, __init__, from_options, the client's __init__, its caller.
            warnings.warn(
                "pins with profile='opportunistic': a server whose pin does not match "
                "is still used, unauthenticated (Response.authenticated is False); use "
                "the strict profile to make a pin mismatch fatal (RFC 7858 section 4.2)",
                UserWarning,
                stacklevel=5,
            )

    def _policy(self, server: Server) -> TLSPolicy:
        return TLSPolicy(
            server,
            ca_file=self.ca_file,
            ssl_context=self.ssl_context,
            sni=self.sni,
            pin_only=self.pin_only,
            profile=self.profile,
            client_cert=self.client_cert,
            client_key=self.client_key,
        )

    def bootstrap_options(self) -> ClientOptions:
        """The options of the client that looks up server names: the ``bootstrap``
        servers, with this client's timeout, trust anchors or context, profile and
        route."""
        return ClientOptions(
            servers=self.bootstrap,
            timeout=self.timeout,
            ca_file=self.ca_file,
            ssl_context=self.ssl_context,
            profile=self.profile,
            source_address=self.source_address,
            proxy=self.proxy,
            happy_eyeballs_delay=self.happy_eyeballs_delay,
        )

    def capacity(self) -> int:
        """Queries the client can have in flight at once: ``max_in_flight`` on each of
        ``max_connections`` per server (every server with ``round_robin``, else one)."""
        servers = len(self.servers) if self.strategy == "round_robin" else 1
        return self.max_in_flight * self.max_connections * servers

    def deadline(self, timeout: float | None) -> float:
        """The ``time.monotonic()`` instant by which a query started now must end
        (``timeout``, or this client's)."""
        return _deadline.deadline(timeout, self.timeout)

    def share(self, deadline: float, untried: int) -> float | None:
        """Seconds the next server may take for a query when ``untried`` servers
        (counting it) are left to try; None for all the time left."""
        return _deadline.share(deadline, untried, self.server_timeout)


def _field_docs() -> dict[str, str]:
    """The attribute docstrings of ClientConfig's fields, read from this file's source
    (they exist only there); {} where the source is not to be had."""
    try:
        with open(__file__, encoding="utf-8") as file:
            source = file.read()
        # Only the fields (they end where the methods begin): a few lines to parse at
        # import, not the module (inspect.getsource would cost ten times as much).
        start = source.index("\nclass ClientConfig")
        body = ast.parse(source[start : source.index("\n    @classmethod", start)]).body
    except (OSError, ValueError, SyntaxError):
        return {}
    fields = body[0].body if body and isinstance(body[0], ast.ClassDef) else []
    docs = {}
    for node, after in zip(fields, fields[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _options_help() -> str:
    """Every option with its default and documentation, for ``help()`` (whose
    docstrings cannot hold attribute docstrings)."""
    docs = _field_docs()
    lines = ["", "Options (keyword-only but ``server``; fields of ``ClientConfig``):", ""]
    for field in dataclasses.fields(ClientConfig):
        if not field.init:
            continue
        default = "" if field.default is dataclasses.MISSING else f" ({field.default!r})"
        text = f"* ``{field.name}``{default}: {docs.get(field.name, '')}"
        lines.append(textwrap.fill(text.rstrip(": "), 84, subsequent_indent="  "))
    # Indented as the class docstrings it ends, for inspect.cleandoc (help()).
    return textwrap.indent("\n".join(lines), "    ") + "\n"


#: The options section that ``Client``'s and ``AsyncClient``'s docstrings end with.
OPTIONS_HELP = _options_help()
ClientConfig.__doc__ = (ClientConfig.__doc__ or "") + OPTIONS_HELP
