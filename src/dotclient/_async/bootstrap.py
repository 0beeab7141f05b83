"""Bootstrap: the names of DoT servers looked up over DoT (``bootstrap=``).

Written once, in ``dotclient/_async/bootstrap.py``; ``dotclient/_sync/bootstrap.py`` is
generated from that file by ``scripts/unasync.py``: edit the ``_async`` one only.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import dns.rcode

from .._bootstrap import AddressCache
from .._deadline import remaining
from .._exceptions import ConnectError, DoTError, Timeout
from .._happy import AddrInfo
from .._server import Server

if TYPE_CHECKING:
    from .client import AsyncClient

__all__ = ["BootstrapResolver"]


class BootstrapResolver:
    """Looks up the names of DoT servers over DoT (``bootstrap=``) with its own client
    of the bootstrap servers; each answer is kept for its TTL and looked up again before
    it expires (:class:`~dotclient._bootstrap.AddressCache`)."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._cache = AddressCache()
        #: Lookups made (each asks for AAAA and A).
        self.lookups = 0

    async def addresses(self, server: Server, deadline: float) -> list[AddrInfo]:
        """The addresses of ``server``'s name, cached or looked up now."""
        now = time.monotonic()
        entry = self._cache.get(server.host, now)
        if entry is not None and entry.fresh(now):
            return entry.infos(server.port)
        try:
            addresses, ttl = await self._lookup(server, deadline)
        except DoTError as exc:
            if entry is not None:  # due for a refresh but not expired: still good
                return entry.infos(server.port)
            if isinstance(exc, Timeout):
                raise
            raise ConnectError(
                f"cannot look up {server.host} over DoT: {exc}", server=server
            ) from exc
        return self._cache.put(server.host, addresses, ttl, time.monotonic()).infos(server.port)

    async def _lookup(self, server: Server, deadline: float) -> tuple[tuple[str, ...], float]:
        self.lookups += 1
        found: list[str] = []
        ttls: list[float] = []
        for rdtype in ("AAAA", "A"):
            left = remaining(deadline, server, f"the addresses of {server.host}")
            response = await self.client.resolve(server.host, rdtype, timeout=left)
            if response.rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                raise ConnectError(
                    f"looking up {server.host} {rdtype} got {dns.rcode.to_text(response.rcode)}",
                    server=server,
                )
            found += response.addresses()
            ttls += [rrset.ttl for rrset in response.answer]
        if not found:
            raise ConnectError(f"{server.host} has no address", server=server)
        return tuple(dict.fromkeys(found)), min(ttls)
