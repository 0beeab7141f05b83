"""Who may query the stub: loopback by default, more with ``--allow CIDR``."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["LOOPBACK", "AccessList"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The sources always allowed.
LOOPBACK = ("127.0.0.0/8", "::1/128")


class AccessList:
    """Source addresses allowed to query, as networks (``"192.0.2.0/24"``, ``"::1"``).

    An IPv4-mapped IPv6 source (``::ffff:192.0.2.1``, from a dual-stack socket) is
    judged as the IPv4 address it carries.
    """

    def __init__(self, networks: Iterable[str] = LOOPBACK) -> None:
        parsed: list[Network] = []
        for text in networks:
            try:
                parsed.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ValueError(f"not a network (CIDR) or address: {text!r}") from None
        self.networks = tuple(parsed)
        self._seen: dict[str, bool] = {}

    def allows(self, host: str) -> bool:
        """Whether a query from ``host`` (as the socket reports it) may be answered."""
        verdict = self._seen.get(host)
        if verdict is None:
            verdict = self._judge(host)
            if len(self._seen) < 4096:  # remember a few; never grow without bound
                self._seen[host] = verdict
        return verdict

    def _judge(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def __repr__(self) -> str:
        return f"AccessList({[str(n) for n in self.networks]!r})"
