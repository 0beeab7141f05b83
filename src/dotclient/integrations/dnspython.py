"""DoT under dnspython's stub resolver: a ``Nameserver`` over one pooled, pipelined client.

    >>> from dotclient.integrations.dnspython import make_resolver
    >>> resolver = make_resolver("9.9.9.9#dns.quad9.net")
    >>> resolver.resolve("example.com", "AAAA")

:class:`DoTNameserver` is a :class:`dns.nameserver.Nameserver`: dnspython's
``Resolver`` (and ``dns.asyncresolver.Resolver``) asks it to send each query, while
search domains, CNAME chains, NXDOMAIN / NoAnswer / YXDOMAIN and caching stay
dnspython's. Unlike ``dns.nameserver.DoTNameserver``, which opens a new TLS connection
for every query, it keeps its connections and pipelines the queries of concurrent
callers on them, with dotclient's authentication, pins and profiles.

A query that gets no answer raises what dnspython's resolver expects, so its own retry
and nameserver rotation apply: a timeout is ``dns.exception.Timeout`` (the resolver
tries again while its lifetime lasts), a connection failure is ``ConnectionError``, a
TLS or authentication failure ``ssl.SSLError`` (the resolver drops that nameserver for
this lookup) and a malformed answer ``dns.exception.FormError``; each carries the
dotclient error as ``__cause__`` and its message, which dnspython's ``NoNameservers``
repeats.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, overload

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.opcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from .._async.client import AsyncClient
from .._exceptions import DoTError, NetworkError, ProtocolError, Timeout, TLSError
from .._response import Response
from .._sync.client import Client
from ._common import Owner

if TYPE_CHECKING:
    from dns._asyncbackend import Backend

_EDNS_PAYLOAD = 1232  # what dotclient's own queries advertise (see Client.resolve)
_C = TypeVar("_C", Client, AsyncClient)
_R = TypeVar("_R", bound=dns.resolver.BaseResolver)

__all__ = [
    "DoTNameserver",
    "aclose_resolver",
    "close_resolver",
    "make_async_resolver",
    "make_resolver",
]


class _Plain(NamedTuple):
    """The question of a query :meth:`dotclient.Client.resolve` can send."""

    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    rdclass: dns.rdataclass.RdataClass
    dnssec: bool


def _plain_question(request: dns.message.Message) -> _Plain | None:
    """The question of a query exactly as :meth:`dotclient.Client.resolve` would send it
    (RD only, no EDNS or plain EDNS(0) with at most the DO bit, no TSIG), else None.

    Such queries go out through ``resolve()``, whose pre-rendered query templates cost
    far less than rendering the message (with padding) each time; the bytes on the
    wire are what ``query()`` would send, since padding adds the same EDNS(0).
    """
    if (
        len(request.question) != 1
        or request.flags != dns.flags.RD
        or request.opcode() != dns.opcode.QUERY
        or request.keyring is not None
        or request.tsig is not None
    ):
        return None
    if request.edns >= 0 and (
        request.edns != 0
        or request.payload != _EDNS_PAYLOAD
        or request.options
        or request.ednsflags & ~dns.flags.DO
    ):
        return None
    question = request.question[0]
    dnssec = request.edns >= 0 and bool(request.ednsflags & dns.flags.DO)
    return _Plain(question.name, question.rdtype, question.rdclass, dnssec)


@overload
def _send(
    client: Client, request: dns.message.Message, plain: _Plain | None, timeout: float
) -> Response: ...
@overload
def _send(
    client: AsyncClient, request: dns.message.Message, plain: _Plain | None, timeout: float
) -> Awaitable[Response]: ...
def _send(
    client: Client | AsyncClient,
    request: dns.message.Message,
    plain: _Plain | None,
    timeout: float,
) -> Response | Awaitable[Response]:
    """The client's call for ``request``: ``resolve()`` for a ``plain`` question, else
    ``query()``; what an :class:`AsyncClient` gives is to be awaited."""
    if plain is None:
        return client.query(request, timeout=timeout)
    name, rdtype, rdclass, dnssec = plain
    return client.resolve(name, rdtype, rdclass, dnssec=dnssec, timeout=timeout)


def _answer(
    request: dns.message.Message, plain: _Plain | None, response: Response
) -> dns.message.Message:
    """The response as ``Client.query()`` gives it back: the message itself when the
    request was sent as is, else with the request's ID and without the EDNS the client
    added for padding if the request had none, as a server answers."""
    if plain is None:
        return response.message
    message = response._message_without_edns() if request.edns < 0 else response.message
    message.id = request.id
    return message


def _for_dnspython(exc: DoTError, timeout: float) -> Exception:
    """The exception dnspython's resolver handles for a query that got no answer."""
    if isinstance(exc, Timeout):
        # Not dotclient's Timeout itself: that is an OSError, after which the resolver
        # would stop asking this nameserver instead of retrying it.
        return dns.exception.Timeout(timeout=timeout)  # type: ignore[no-untyped-call]
    if isinstance(exc, TLSError):
        return ssl.SSLError(ssl.SSL_ERROR_SSL, str(exc))  # str() is the message alone
    if isinstance(exc, ProtocolError):
        return dns.exception.FormError(str(exc))  # type: ignore[no-untyped-call]
    if isinstance(exc, NetworkError):
        return ConnectionError(str(exc))
    return OSError(str(exc))  # AllServersFailed: every server behind a client failed


class DoTNameserver(dns.nameserver.Nameserver):
    """A dnspython nameserver that sends queries over dotclient's kept DoT connections.

    Give either ``client=`` (a :class:`dotclient.Client` for ``dns.resolver``, or a
    :class:`dotclient.AsyncClient` for ``dns.asyncresolver``; you own it and close it),
    or ``server`` (a spec such as ``"1.1.1.1"`` or ``"127.0.0.1:853#dot.test"``, or a
    :class:`dotclient.Server`) plus any :class:`dotclient.Client` options (``ca_file=``,
    ``pins=``, ``profile=``, ``timeout=``...). In that case the nameserver makes its
    clients on first use, a blocking one for :meth:`query` and an asyncio one for
    :meth:`async_query` (which then serves the event loop it was first used in), and
    :meth:`close` / :meth:`aclose` close them.

    Only the asyncio backend of ``dns.asyncresolver`` is supported. ``source`` and
    ``source_port`` cannot be honoured (the connections are shared), so a query that
    gives them fails with ``NotImplementedError``.
    """

    def __init__(
        self,
        server: Any = None,
        *,
        client: Client | AsyncClient | None = None,
        **options: Any,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._owner = Owner(client, server, options.pop("servers", None), options)

    @property
    def server(self) -> Any:
        """The :class:`dotclient.Server` queried (the first, for a client with several)."""
        return self._owner.servers[0]

    def kind(self) -> str:
        """``"DoT"``, as for dnspython's own DoT nameserver."""
        return "DoT"

    def is_always_max_size(self) -> bool:
        """True: over TCP an answer is never truncated, so never retried as such."""
        return True

    def __str__(self) -> str:
        return f"DoT:{self.server}"

    def __repr__(self) -> str:
        owned = "owned" if self._owner.owned else "borrowed"
        return f"<{type(self).__name__} {self.server} ({owned} client)>"

    def answer_nameserver(self) -> str:
        """The server's address (or host name), recorded in dnspython's ``Answer``."""
        return str(self.server.host)

    def answer_port(self) -> int:
        """The server's port, recorded in dnspython's ``Answer``."""
        return int(self.server.port)

    def _client(self, get: Callable[[], _C], source: str | None, source_port: int) -> _C:
        """The client from ``get`` (one of the owner's), for a query that asks for no
        ``source``; what the resolver drops (``NotImplementedError``) otherwise."""
        if source is not None or source_port:
            raise NotImplementedError(
                "DoTNameserver shares its connections: it cannot bind source "
                f"{source}:{source_port} for one query"
            )
        try:
            return get()
        except (TypeError, RuntimeError) as exc:  # the wrong client, closed, another loop
            raise NotImplementedError(str(exc)) from exc  # which the resolver drops

    def query(
        self,
        request: dns.message.QueryMessage,
        timeout: float,
        source: str | None,
        source_port: int,
        max_size: bool,
        one_rr_per_rrset: bool = False,
        ignore_trailing: bool = False,
    ) -> dns.message.Message:
        """Send ``request`` over the blocking client and return the response."""
        client = self._client(self._owner.sync_client, source, source_port)
        plain = _plain_question(request)
        try:
            return _answer(request, plain, _send(client, request, plain, timeout))
        except DoTError as exc:
            raise _for_dnspython(exc, timeout) from exc

    async def async_query(
        self,
        request: dns.message.QueryMessage,
        timeout: float,
        source: str | None,
        source_port: int,
        max_size: bool,
        backend: Backend,
        one_rr_per_rrset: bool = False,
        ignore_trailing: bool = False,
    ) -> dns.message.Message:
        """Send ``request`` over the asyncio client and return the response."""
        if backend.name() != "asyncio":
            raise NotImplementedError(
                f"DoTNameserver supports the asyncio backend only, not {backend.name()}"
            )
        client = self._client(self._owner.async_client, source, source_port)
        plain = _plain_question(request)
        try:
            return _answer(request, plain, await _send(client, request, plain, timeout))
        except DoTError as exc:
            raise _for_dnspython(exc, timeout) from exc

    def close(self) -> None:
        """Close the blocking client this nameserver made (not one given as
        ``client=``). Use :meth:`aclose` when it was also used from asyncio."""
        self._owner.close()

    async def aclose(self) -> None:
        """Close the clients this nameserver made (not one given as ``client=``)."""
        await self._owner.aclose()

    def __enter__(self) -> DoTNameserver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> DoTNameserver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _nameservers(
    server: Any,
    servers: Iterable[Any] | None,
    client: Client | AsyncClient | None,
    options: dict[str, Any],
) -> list[dns.nameserver.Nameserver]:
    if client is not None:
        if server is not None or servers is not None:
            raise TypeError("give either client= or server=/servers=, not both")
        return [DoTNameserver(client=client, **options)]
    if servers is not None:
        if server is not None:
            raise TypeError("give either server= or servers=, not both")
        specs = list(servers)
        if not specs:
            raise ValueError("servers= must name at least one server")
        # One nameserver (and client) per server, so dnspython's rotation sees each.
        return [DoTNameserver(spec, **options) for spec in specs]
    return [DoTNameserver(server, **options)]


def _resolver(
    make: Callable[..., _R],
    kind: type[Client | AsyncClient],
    server: Any,
    servers: Iterable[Any] | None,
    client: Client | AsyncClient | None,
    cache: bool,
    options: dict[str, Any],
) -> _R:
    """A resolver from ``make`` on :class:`DoTNameserver` s, whose ``client=`` (if any)
    must be a ``kind``: what :func:`make_resolver` and :func:`make_async_resolver` do."""
    if client is not None and not isinstance(client, kind):
        raise TypeError(
            f"client= must be a dotclient.{kind.__name__}, got {type(client).__name__}"
        )
    nameservers = _nameservers(server, servers, client, options)
    resolver = make(configure=False)
    resolver.nameservers = nameservers
    resolver.cache = dns.resolver.LRUCache() if cache else None
    timeout = options.get("timeout")
    if timeout is not None:
        # One query attempt and the whole lookup both get the client's timeout.
        resolver.timeout = resolver.lifetime = timeout
    return resolver


def make_resolver(
    server: Any = None,
    *,
    servers: Iterable[Any] | None = None,
    client: Client | None = None,
    cache: bool = True,
    **options: Any,
) -> dns.resolver.Resolver:
    """A ``dns.resolver.Resolver`` whose nameservers are :class:`DoTNameserver` s.

    ``server`` (or ``servers=[...]``: one nameserver each, so dnspython rotates among
    them) and the :class:`dotclient.Client` options make clients the resolver's
    nameservers own; release them with :func:`close_resolver`. Or give ``client=``, a
    :class:`dotclient.Client` you own. ``cache`` (True) gives the resolver a
    ``dns.resolver.LRUCache``. The resolver does not read ``/etc/resolv.conf``: no
    search domains unless you set ``resolver.search``. With ``timeout=``, the resolver's
    ``timeout`` and ``lifetime`` are that too (else dnspython's 2 s and 5 s).
    """
    return _resolver(dns.resolver.Resolver, Client, server, servers, client, cache, options)


def make_async_resolver(
    server: Any = None,
    *,
    servers: Iterable[Any] | None = None,
    client: AsyncClient | None = None,
    cache: bool = True,
    **options: Any,
) -> dns.asyncresolver.Resolver:
    """A ``dns.asyncresolver.Resolver`` whose nameservers are :class:`DoTNameserver` s;
    as :func:`make_resolver`, with ``client=`` a :class:`dotclient.AsyncClient`. Release
    owned clients with :func:`aclose_resolver`."""
    return _resolver(
        dns.asyncresolver.Resolver, AsyncClient, server, servers, client, cache, options
    )


def close_resolver(resolver: dns.resolver.BaseResolver) -> None:
    """Close the clients the resolver's :class:`DoTNameserver` s made (blocking use)."""
    for nameserver in resolver.nameservers:
        if isinstance(nameserver, DoTNameserver):
            nameserver.close()


async def aclose_resolver(resolver: dns.resolver.BaseResolver) -> None:
    """Close the clients the resolver's :class:`DoTNameserver` s made (asyncio use)."""
    for nameserver in resolver.nameservers:
        if isinstance(nameserver, DoTNameserver):
            await nameserver.aclose()
