"""What the adapters share: who owns the client, and turning A/AAAA answers into addresses.

The policy for a host lookup lives here once (:func:`addresses`): the address-family
filter, the order of the results and which outcome is "no such name", "no address" or
"try again"; each adapter only maps a :class:`LookupFailed` to its library's error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import dns.rcode
import dns.rdatatype

from .._async.client import AsyncClient
from .._exceptions import DoTError
from .._response import Response
from .._server import Server
from .._sync.client import Client

__all__ = [
    "LookupFailed",
    "Owner",
    "addresses",
    "alookup",
    "gaierror",
    "ip_literal",
    "lookup",
    "rdtypes_for",
]

Outcome = Response | DoTError


def _check_client(client: object, kinds: tuple[type, ...], options: dict[str, Any]) -> None:
    if not isinstance(client, kinds):
        names = " or ".join(f"dotclient.{kind.__name__}" for kind in kinds)
        raise TypeError(f"client= must be a {names}, got {type(client).__name__}")
    if options:
        given = ", ".join(sorted(options))
        raise TypeError(
            f"client= and client options ({given}) cannot be combined: "
            "the options belong to the client you made"
        )


class Owner:
    """Holds an adapter's clients: the caller's (``client=``, never closed here) or ones
    made from ``server``/``servers`` and options on first use (closed by :meth:`close`
    / :meth:`aclose`).

    ``kinds`` are the client classes the adapter can use. The options are checked at
    once, by building a client configuration, so misuse fails before any I/O.
    ``servers`` are the DoT servers the clients talk to.
    """

    def __init__(
        self,
        client: Client | AsyncClient | None,
        server: Any,
        servers: Iterable[Any] | None,
        options: dict[str, Any],
        kinds: tuple[type, ...] = (Client, AsyncClient),
    ) -> None:
        self._given = client
        self._sync: Client | None = None
        self._async: AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        if client is not None:
            _check_client(client, kinds, options)
            if server is not None or servers is not None:
                raise TypeError("give either client= or server=/servers=, not both")
            if isinstance(client, Client):
                self._sync = client
            else:
                self._async = client
            self._args: tuple[Any, dict[str, Any]] = (None, {})
            self.servers: tuple[Server, ...] = client.servers
        else:
            if servers is not None:
                servers = list(servers)
            self._args = (server, {"servers": servers, **options})
            # Build (and discard) a client: bad specs and options raise here, before I/O.
            # Neither client opens anything until its first query.
            check = Client(server, servers=servers, **options)
            check.close()
            self.servers = check.servers
        self.owned = client is None
        self.closed = False
        # Threads sharing a blocking adapter (socket.patch()) must not make two clients.
        self._lock = threading.Lock()

    def sync_client(self) -> Client:
        """The blocking client (made on first use when owned)."""
        if self._sync is None:
            if not self.owned:
                raise TypeError(
                    "this adapter was given a dotclient.AsyncClient: use it from asyncio, "
                    "or give it a dotclient.Client for blocking use"
                )
            with self._lock:
                if self.closed:
                    raise RuntimeError("this adapter has been closed")
                if self._sync is None:
                    server, options = self._args
                    self._sync = Client(server, **options)
        return self._sync

    def async_client(self) -> AsyncClient:
        """The asyncio client (made on first use when owned)."""
        if self._async is None:
            if not self.owned:
                raise TypeError(
                    "this adapter was given a blocking dotclient.Client: use it from "
                    "blocking code, or give it a dotclient.AsyncClient for asyncio"
                )
            if self.closed:
                raise RuntimeError("this adapter has been closed")
            server, options = self._args
            self._async = AsyncClient(server, **options)
            self._loop = asyncio.get_running_loop()
        elif self.owned and self._loop is not asyncio.get_running_loop():
            # Its connections belong to the loop of its first query (likely closed now).
            raise RuntimeError(
                "this adapter's asyncio client serves the event loop it was first used "
                "in; make one adapter per event loop"
            )
        return self._async

    def close(self) -> None:
        """Close the blocking client this adapter made (the caller's stays open)."""
        if not self.owned:
            self.closed = True
            return
        with self._lock:
            self.closed = True
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the clients this adapter made (the caller's stays open)."""
        self.close()
        if self.owned and self._async is not None:
            client, self._async = self._async, None
            await client.aclose()


def ip_literal(host: str) -> str | None:
    """``host`` as a normalised IP address if it is an IP literal (an IPv6 zone such as
    ``%eth0`` kept), else None."""
    address, _, zone = host.partition("%")
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return None
    if zone and ip.version == 6:
        return f"{ip}%{zone}"
    return None if zone else str(ip)


def rdtypes_for(family: int) -> tuple[dns.rdatatype.RdataType, ...]:
    """The record types to ask for an address family (``AF_UNSPEC``: both)."""
    if family == socket.AF_INET:
        return (dns.rdatatype.A,)
    if family == socket.AF_INET6:
        return (dns.rdatatype.AAAA,)
    if family == socket.AF_UNSPEC:
        return (dns.rdatatype.A, dns.rdatatype.AAAA)
    raise ValueError(f"address family must be AF_INET, AF_INET6 or AF_UNSPEC, got {family!r}")


_EAI = {
    "nxdomain": socket.EAI_NONAME,
    "nodata": getattr(socket, "EAI_NODATA", socket.EAI_NONAME),
    "again": socket.EAI_AGAIN,
}


def gaierror(exc: LookupFailed) -> socket.gaierror:
    """``exc`` as the ``socket.gaierror`` the system resolver would raise: ``EAI_NONAME``
    for NXDOMAIN, ``EAI_NODATA`` for no address, ``EAI_AGAIN`` for a failure."""
    return socket.gaierror(_EAI[exc.kind], str(exc))


class LookupFailed(Exception):
    """A host lookup over DoT found no address; ``kind`` says why: ``"nxdomain"`` (the
    name does not exist), ``"nodata"`` (it has no address of the family asked for) or
    ``"again"`` (the server failed to answer: SERVFAIL, REFUSED or a DoT error, in
    ``__cause__``)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclasses.dataclass(frozen=True)
class Found:
    """The addresses of a host, IPv4 first, and its canonical name (CNAMEs followed)."""

    addresses: list[tuple[int, str]]
    canonical: str
    aliases: list[str]


def addresses(host: str, outcomes: Sequence[Outcome]) -> Found:
    """The addresses in ``outcomes`` (the answers to the A and/or AAAA queries for
    ``host``), or :class:`LookupFailed` naming why there are none.

    IPv4 addresses come first: without knowing the host's routes, that is the order
    that works on hosts without IPv6 connectivity. One answered family is enough; a
    failed query for the other family is then ignored, as the system resolver does.
    """
    found: list[tuple[int, str]] = []
    canonical = host.rstrip(".")
    aliases: list[str] = []
    rcodes: list[dns.rcode.Rcode] = []
    errors: list[DoTError] = []
    for outcome in outcomes:
        if isinstance(outcome, DoTError):
            errors.append(outcome)
            continue
        rcodes.append(outcome.rcode)
        if outcome.rcode != dns.rcode.NOERROR:
            continue
        rrset = outcome.rrset
        if rrset is None or rrset.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA):
            continue
        family = socket.AF_INET if rrset.rdtype == dns.rdatatype.A else socket.AF_INET6
        found += [(family, rdata.address) for rdata in rrset]
        canonical = rrset.name.to_text(omit_final_dot=True)
        aliases = [
            r.name.to_text(omit_final_dot=True)
            for r in outcome.answer
            if r.rdtype == dns.rdatatype.CNAME
        ]
    if found:
        found.sort(key=lambda item: item[0] != socket.AF_INET)  # stable: IPv4 first
        return Found(found, canonical, aliases)
    if errors:
        raise LookupFailed(f"DoT lookup of {host!r} failed: {errors[0]}", "again") from errors[0]
    if rcodes and all(rcode == dns.rcode.NXDOMAIN for rcode in rcodes):
        raise LookupFailed(f"DoT lookup of {host!r}: no such name (NXDOMAIN)", "nxdomain")
    bad = [
        dns.rcode.to_text(r) for r in rcodes if r not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
    ]
    if bad:
        raise LookupFailed(f"DoT lookup of {host!r}: the server answered {bad[0]}", "again")
    raise LookupFailed(f"DoT lookup of {host!r}: no address of the family asked for", "nodata")


def _query_name(host: str) -> str:
    if not host.strip("."):  # "" or ".": never a host, and the root is no query for it
        raise LookupFailed(f"DoT lookup of {host!r}: no host name", "nxdomain")
    try:
        return host.encode("idna").decode("ascii")  # as socket.getaddrinfo encodes it
    except UnicodeError as exc:
        raise LookupFailed(f"DoT lookup of {host!r}: not a valid host name", "nxdomain") from exc


def lookup(client: Client, host: str, family: int, timeout: float | None = None) -> Found:
    """Look ``host`` up with a blocking client (see :func:`addresses`)."""
    name = _query_name(host)
    outcomes: list[Outcome] = []
    for rdtype in rdtypes_for(family):
        try:
            outcomes.append(client.resolve(name, rdtype, timeout=timeout))
        except DoTError as exc:
            outcomes.append(exc)
        except ValueError as exc:  # a name DNS cannot carry ("a..b", a label too long)
            raise LookupFailed(f"DoT lookup of {host!r}: {exc}", "nxdomain") from exc
    return addresses(host, outcomes)


async def alookup(
    client: AsyncClient, host: str, family: int, timeout: float | None = None
) -> Found:
    """Look ``host`` up with an asyncio client, A and AAAA pipelined (see
    :func:`addresses`)."""
    name = _query_name(host)
    rdtypes = rdtypes_for(family)

    async def one(rdtype: dns.rdatatype.RdataType) -> Outcome:
        try:
            return await client.resolve(name, rdtype, timeout=timeout)
        except DoTError as exc:
            return exc

    try:
        outcomes = await asyncio.gather(*(one(rdtype) for rdtype in rdtypes))
    except ValueError as exc:  # a name DNS cannot carry ("a..b", a label too long)
        raise LookupFailed(f"DoT lookup of {host!r}: {exc}", "nxdomain") from exc
    return addresses(host, outcomes)
