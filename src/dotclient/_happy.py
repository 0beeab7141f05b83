"""Happy Eyeballs (RFC 8305) decisions, without I/O: which address to try and when.

The backends own the sockets; they ask :func:`interleave` for the order of a server's
addresses and a :class:`Race` when to start each connection attempt, passing the time
in. A connection attempt is the TCP connect *and* the TLS handshake: the first
handshake to finish wins, the other attempts are closed.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import socket
from collections.abc import Iterable
from typing import Any

__all__ = ["DEFAULT_ATTEMPT_DELAY", "AddrInfo", "Race", "check_attempt_delay", "interleave"]

#: Seconds between the starts of two connection attempts (RFC 8305 section 5
#: recommends 250 ms).
DEFAULT_ATTEMPT_DELAY = 0.25

#: ``(family, sockaddr)``, as ``socket.getaddrinfo`` gives them (fields 0 and 4).
AddrInfo = tuple[int, tuple[Any, ...]]


def check_attempt_delay(delay: float) -> float:
    """Validate ``happy_eyeballs_delay``: seconds, 0 or more (0 starts every attempt at
    once), finite."""
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        raise TypeError(
            f"happy_eyeballs_delay must be a number of seconds, not {type(delay).__name__}"
        )
    if not (delay >= 0 and math.isfinite(delay)):
        raise ValueError(f"happy_eyeballs_delay must be 0 or more seconds, not {delay}")
    return float(delay)


def interleave(infos: Iterable[AddrInfo], source_family: int | None = None) -> list[AddrInfo]:
    """Order addresses as RFC 8305 section 4 asks: IPv6 first, then alternating
    families, each family in the order given, repeats dropped. With a source address
    only its family is kept (a socket bound to an IPv4 address cannot reach IPv6)."""
    seen: set[tuple[Any, ...]] = set()
    v6: list[AddrInfo] = []
    v4: list[AddrInfo] = []
    for family, sockaddr in infos:
        key = (family, sockaddr[:2])
        if key in seen or (source_family is not None and family != source_family):
            continue
        seen.add(key)
        (v6 if family == socket.AF_INET6 else v4).append((family, sockaddr))
    ordered: list[AddrInfo] = []
    for index in range(max(len(v6), len(v4))):
        ordered.extend(group[index] for group in (v6, v4) if index < len(group))
    return ordered


@functools.lru_cache(maxsize=256)
def family_of(host: str) -> int:
    """The address family of an IP literal (ValueError for anything else). Cached: the
    same few addresses are connected to again and again."""
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


class Race:
    """When to start each of ``count`` connection attempts, ``delay`` seconds apart.

    The first starts at once; each later one when ``delay`` has passed since the last
    start, or at once when every attempt started so far has failed (RFC 8305
    section 5). The shell calls :meth:`due` to learn which attempts to start now,
    :meth:`failed` when one fails, and waits at most until :meth:`timer`.
    """

    def __init__(self, count: int, delay: float, now: float) -> None:
        self.count = count
        self.delay = delay
        self._next = 0
        self._next_at = now
        self._running: set[int] = set()

    def due(self, now: float) -> list[int]:
        """The attempts to start now (indices into the address list), in order."""
        started: list[int] = []
        while self._next < self.count and (now >= self._next_at or not self._running):
            started.append(self._next)
            self._running.add(self._next)
            self._next += 1
            self._next_at = now + self.delay
        return started

    def failed(self, index: int, now: float) -> None:
        """Attempt ``index`` failed: with none left running, the next one is due now."""
        self._running.discard(index)
        if not self._running:
            self._next_at = min(self._next_at, now)

    def timer(self) -> float | None:
        """When the next attempt is due, or None when every attempt has started."""
        return self._next_at if self._next < self.count else None

    @property
    def exhausted(self) -> bool:
        """Every attempt started and failed."""
        return self._next >= self.count and not self._running
