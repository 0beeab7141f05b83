"""An aiohttp resolver that looks hosts up over DoT: :class:`DoTResolver`.

    >>> import aiohttp
    >>> from dotclient.integrations.aiohttp import DoTResolver
    >>> resolver = DoTResolver("9.9.9.9#dns.quad9.net")
    >>> connector = aiohttp.TCPConnector(resolver=resolver)
    >>> async with aiohttp.ClientSession(connector=connector) as session:
    ...     async with session.get("https://example.com/") as reply: ...
    >>> await resolver.close()  # aiohttp does not close a resolver it was given

A and AAAA are asked together, pipelined on one kept connection (or only the family
the connector asks for), and the results are what aiohttp expects: ``ResolveResult``
dicts, IPv4 first. IP literals (an IPv6 zone such as ``%eth0`` kept) and
``localhost`` (from the system's hosts file) need no lookup. A name that cannot be
resolved raises ``socket.gaierror`` (an ``OSError``) naming the host and the cause
(NXDOMAIN, no address, or the DoT failure), which aiohttp reports as
``ClientConnectorDNSError`` (a ``ClientConnectorError``). Needs
``pip install 'dotclient[aiohttp]'``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from typing import Any

try:
    import aiohttp.abc
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "dotclient.integrations.aiohttp needs aiohttp: pip install 'dotclient[aiohttp]'"
    ) from exc

from .._async.client import AsyncClient
from ._common import LookupFailed, Owner, alookup, gaierror, ip_literal

__all__ = ["DoTResolver"]

_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class DoTResolver(aiohttp.abc.AbstractResolver):
    """``aiohttp.abc.AbstractResolver`` over dotclient's asyncio client.

    Give ``client=`` (a :class:`dotclient.AsyncClient` you own), or ``server`` /
    ``servers=`` and any :class:`dotclient.AsyncClient` options (``ca_file=``,
    ``pins=``, ``profile=``, ``timeout=``...): the resolver then makes its client and
    :meth:`close` closes it. Use it as ``aiohttp.TCPConnector(resolver=...)``.
    """

    def __init__(
        self,
        server: Any = None,
        *,
        servers: Iterable[Any] | None = None,
        client: AsyncClient | None = None,
        **options: Any,
    ) -> None:
        self._owner = Owner(client, server, servers, options, kinds=(AsyncClient,))

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        """The addresses of ``host`` for ``family`` (``AF_INET``, ``AF_INET6`` or
        ``AF_UNSPEC`` for both), looked up over DoT."""
        literal = ip_literal(host)
        if literal is not None:
            kind = socket.AF_INET6 if ":" in literal else socket.AF_INET
            if family not in (socket.AF_UNSPEC, kind):
                raise socket.gaierror(
                    socket.EAI_ADDRFAMILY, f"{host!r} is not an address of the family asked"
                )
            return [self._result(host, literal, port, kind)]
        if host.rstrip(".").lower() == "localhost":
            infos = await asyncio.get_running_loop().getaddrinfo(
                "localhost", port, family=family, type=socket.SOCK_STREAM
            )
            return [self._result(host, str(info[4][0]), port, info[0]) for info in infos]
        try:
            found = await alookup(self._owner.async_client(), host, family)
        except LookupFailed as exc:
            raise gaierror(exc) from exc
        return [self._result(host, address, port, kind) for kind, address in found.addresses]

    @staticmethod
    def _result(host: str, address: str, port: int, family: int) -> aiohttp.abc.ResolveResult:
        return aiohttp.abc.ResolveResult(
            hostname=host, host=address, port=port, family=family, proto=0, flags=_NUMERIC
        )

    async def close(self) -> None:
        """Close the DoT client this resolver made (one given as ``client=`` stays open)."""
        await self._owner.aclose()
