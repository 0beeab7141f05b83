"""Route the standard library's host lookups through DoT: :func:`patch`.

    >>> import urllib.request
    >>> from dotclient.integrations.socket import patch
    >>> with patch("9.9.9.9#dns.quad9.net"):
    ...     urllib.request.urlopen("https://example.com/")

While a patch is active, ``socket.getaddrinfo``, ``socket.gethostbyname`` and
``socket.gethostbyname_ex`` look names up over DoT, so code built on the standard
library (``urllib``, ``http.client``, ``asyncio``'s ``loop.getaddrinfo``, requests and
urllib3) does too. These keep their usual answers from the original functions: IP
literals, ``localhost`` (and ``*.localhost``, RFC 6761), names listed in the hosts file
(``/etc/hosts``), and the DoT servers' own names, which the client itself must look up
to connect (so there is no recursion). A name that cannot be resolved over DoT raises
``socket.gaierror`` (``EAI_NONAME`` for NXDOMAIN, ``EAI_NODATA`` for no address of that
family, ``EAI_AGAIN`` when the server failed or could not be reached, with the cause in
the message); it never falls back to the system's plaintext resolver.

Not done: search domains (a name is queried as given), ``AI_ADDRCONFIG`` and
``AI_V4MAPPED``. IPv4 addresses are listed before IPv6 ones.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from .._server import Server
from .._sync.client import Client
from ._common import LookupFailed, Owner, gaierror, ip_literal, lookup

__all__ = ["Patch", "patch"]

AddrInfo = list[tuple[Any, Any, int, str, Any]]


def _hosts_names(path: str | None) -> frozenset[str]:
    """The host names listed in a hosts(5) file (lower case, no final dot)."""
    if path is None:
        return frozenset()
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = file.read().splitlines()
    except OSError:
        return frozenset()
    names: set[str] = set()
    for line in lines:
        fields = line.split("#", 1)[0].split()
        names.update(_key(name) for name in fields[1:])
    return frozenset(names)


def _plain(name: object) -> object:
    return name.rstrip(".") if isinstance(name, str) and ip_literal(name) is None else name


def _key(name: str) -> str:
    return name.rstrip(".").lower()


class Patch:
    """An active :func:`patch`: undo it with :meth:`stop` or by leaving its ``with``
    block, which also closes the client it made."""

    def __init__(
        self,
        server: Any = None,
        *,
        servers: Iterable[Any] | None = None,
        client: Client | None = None,
        hosts_file: str | None = "/etc/hosts",
        **options: Any,
    ) -> None:
        self._owner = Owner(client, server, servers, options, kinds=(Client,))
        self._exempt = frozenset(
            _key(s.host) for s in self._owner.servers if isinstance(s, Server)
        ) | _hosts_names(hosts_file)
        self._saved: tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]] | None
        self._saved = None
        self.start()

    @property
    def active(self) -> bool:
        """Whether the socket functions are patched by this object now."""
        return self._saved is not None

    def start(self) -> None:
        """Patch the socket module's functions (done by :func:`patch` already)."""
        if self._saved is not None:
            raise RuntimeError("this patch is already active")
        if self._owner.closed:
            raise RuntimeError("this patch has been stopped; make a new one")
        self._saved = (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex)
        socket.getaddrinfo = self.getaddrinfo
        socket.gethostbyname = self.gethostbyname
        socket.gethostbyname_ex = self.gethostbyname_ex

    def stop(self) -> None:
        """Put back the functions found at :meth:`start` and close the client this patch
        made (a ``client=`` given stays open). Calling it again does nothing."""
        if self._saved is not None:
            saved, self._saved = self._saved, None
            socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex = saved
        self._owner.close()

    def __enter__(self) -> Patch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _original(self) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
        # Called after stop() (a thread that took the function before): the originals.
        return self._saved or (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex)

    def _passes(self, host: str) -> bool:
        """Whether ``host`` keeps its usual answer (the original function's)."""
        key = _key(host)
        return ip_literal(host) is not None or key == "localhost" or key in self._exempt

    def _resolve(self, host: str, family: int) -> Any:
        try:
            return lookup(self._owner.sync_client(), host, family)
        except LookupFailed as exc:
            raise gaierror(exc) from exc

    def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> AddrInfo:
        """``socket.getaddrinfo`` with names looked up over DoT."""
        original = self._original()[0]
        if isinstance(host, bytes):
            try:
                host = host.decode("ascii")
            except UnicodeDecodeError:
                raise socket.gaierror(socket.EAI_NONAME, f"host {host!r} is not ASCII") from None
        if (
            not isinstance(host, str)
            or flags & socket.AI_NUMERICHOST
            or family not in (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6)
        ):
            return original(host, port, family, type, proto, flags)  # type: ignore[no-any-return]
        if self._passes(host):
            # Without a final dot: the hosts file has no "localhost." (nor would the
            # system resolver find it there, but ask DNS in plaintext).
            return original(host.rstrip("."), port, family, type, proto, flags)  # type: ignore[no-any-return]
        found = self._resolve(host, family)
        numeric = (flags & ~socket.AI_CANONNAME) | socket.AI_NUMERICHOST
        infos: AddrInfo = []
        for address_family, address in found.addresses:
            for info in original(address, port, address_family, type, proto, numeric):
                if info not in infos:
                    infos.append(info)
        if infos and flags & socket.AI_CANONNAME:
            family_, type_, proto_, _, sockaddr = infos[0]
            infos[0] = (family_, type_, proto_, found.canonical, sockaddr)
        return infos

    def gethostbyname(self, hostname: str) -> str:
        """``socket.gethostbyname`` with names looked up over DoT (IPv4 only)."""
        if not isinstance(hostname, str) or self._passes(hostname):
            return self._original()[1](_plain(hostname))  # type: ignore[no-any-return]
        return str(self._resolve(hostname, socket.AF_INET).addresses[0][1])

    def gethostbyname_ex(self, hostname: str) -> tuple[str, list[str], list[str]]:
        """``socket.gethostbyname_ex`` with names looked up over DoT: the canonical name
        (CNAMEs followed), the aliases met on the way, and the IPv4 addresses."""
        if not isinstance(hostname, str) or self._passes(hostname):
            return self._original()[2](_plain(hostname))  # type: ignore[no-any-return]
        found = self._resolve(hostname, socket.AF_INET)
        return found.canonical, found.aliases, [address for _, address in found.addresses]


def patch(
    server: Any = None,
    *,
    servers: Iterable[Any] | None = None,
    client: Client | None = None,
    hosts_file: str | None = "/etc/hosts",
    **options: Any,
) -> Patch:
    """Route ``socket.getaddrinfo``, ``gethostbyname`` and ``gethostbyname_ex`` through
    DoT until the returned :class:`Patch` is stopped (or its ``with`` block ends).

    Give ``server`` / ``servers=`` and any :class:`dotclient.Client` options (the patch
    then makes its client and closes it when stopped), or ``client=``, a
    :class:`dotclient.Client` you own. ``hosts_file`` names the hosts file whose names
    keep their usual answers (None: no such names). The patch is process-wide: every
    thread sees it.
    """
    return Patch(server, servers=servers, client=client, hosts_file=hosts_file, **options)
