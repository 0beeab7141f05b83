"""Bootstrap: what the client knows about DoT server names looked up over DoT.

With ``bootstrap=`` servers (given by IP address), a server given by name is looked up
over DoT instead of with the system resolver, which would send the name in cleartext
(and fails when the system resolver is this very stub). The lookups themselves are the
client's (``BootstrapResolver`` in ``dotclient._async.client``); this module keeps the
answers, without I/O and with the time passed in: each is kept for its TTL, and looked
up again once most of the TTL has passed, before it expires, so that a failed refresh
still leaves the cached addresses in use until they expire.
"""

from __future__ import annotations

import dataclasses
import socket

from ._happy import AddrInfo, family_of, interleave

__all__ = ["AddressCache", "CachedAddresses", "REFRESH_AFTER"]

#: Part of a TTL after which an answer is looked up again (it is still used until then,
#: and after, if the new lookup fails, until it expires).
REFRESH_AFTER = 0.75
#: Seconds an answer is kept at least (a TTL of 0 would mean a lookup per connection).
MIN_TTL = 5.0


@dataclasses.dataclass(frozen=True)
class CachedAddresses:
    """The addresses of one name, and when they must be looked up again and expire."""

    addresses: tuple[str, ...]
    refresh_at: float
    expires_at: float

    def fresh(self, now: float) -> bool:
        """Usable without a new lookup."""
        return now < self.refresh_at

    def usable(self, now: float) -> bool:
        """Not expired: usable when a refresh fails."""
        return now < self.expires_at

    def infos(self, port: int) -> list[AddrInfo]:
        """The addresses as ``(family, sockaddr)`` in Happy Eyeballs order."""
        infos: list[AddrInfo] = []
        for address in self.addresses:
            family = family_of(address)
            sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
            infos.append((family, sockaddr))
        return interleave(infos)


class AddressCache:
    """Looked-up server addresses by name (lower case, no trailing dot)."""

    def __init__(self) -> None:
        self._entries: dict[str, CachedAddresses] = {}

    def get(self, name: str, now: float) -> CachedAddresses | None:
        """The unexpired entry for ``name``, fresh or due for a refresh; None if none."""
        entry = self._entries.get(name)
        if entry is None:
            return None
        if not entry.usable(now):
            del self._entries[name]
            return None
        return entry

    def put(
        self, name: str, addresses: tuple[str, ...], ttl: float, now: float
    ) -> CachedAddresses:
        """Keep ``addresses`` for ``ttl`` seconds (at least :data:`MIN_TTL`)."""
        ttl = max(float(ttl), MIN_TTL)
        entry = CachedAddresses(addresses, now + ttl * REFRESH_AFTER, now + ttl)
        self._entries[name] = entry
        return entry
