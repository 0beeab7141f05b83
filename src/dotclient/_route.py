"""How a connection reaches its server: source address, SOCKS5 proxy, Happy Eyeballs.

A :class:`Route` is checked once when a client is made and handed to the backends'
``open_tls_stream`` with every connection the pool opens.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from ._happy import DEFAULT_ATTEMPT_DELAY, check_attempt_delay
from ._proxy import Proxy, parse_proxy

__all__ = ["DIRECT", "Route", "make_route", "parse_source"]


@dataclasses.dataclass(frozen=True)
class Route:
    """Where connections come from and through what they go."""

    #: ``(address, port)`` to bind before connecting (port 0: any), or None.
    source: tuple[str, int] | None = None
    #: The SOCKS5 proxy to connect through, or None.
    proxy: Proxy | None = None
    #: Seconds between the starts of two connection attempts (RFC 8305).
    attempt_delay: float = DEFAULT_ATTEMPT_DELAY


#: Direct connections from any local address.
DIRECT = Route()


def parse_source(source: object) -> tuple[str, int] | None:
    """Check ``source_address``: an IP address, or ``(address, port)``."""
    if source is None:
        return None
    if isinstance(source, str):
        address, port = source, 0
    elif isinstance(source, tuple) and len(source) == 2:
        address, port = source
    else:
        raise TypeError(f"source_address must be an IP address or (address, port), not {source!r}")
    if not isinstance(address, str):
        raise TypeError(f"source_address must be an IP address str, not {address!r}")
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        raise ValueError(f"source_address must be an IP address, not {address!r}") from None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"source_address port must be 0 to 65535, not {port!r}")
    return (str(ip), port)


def make_route(
    source_address: object = None,
    proxy: str | None = None,
    happy_eyeballs_delay: float = DEFAULT_ATTEMPT_DELAY,
) -> Route:
    """Check the connection options and build their :class:`Route`."""
    return Route(
        parse_source(source_address),
        parse_proxy(proxy),
        check_attempt_delay(happy_eyeballs_delay),
    )
