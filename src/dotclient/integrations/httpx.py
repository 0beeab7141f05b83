"""httpx transports that look hosts up over DoT: ``DoTTransport`` and ``AsyncDoTTransport``.

    >>> import httpx
    >>> from dotclient.integrations.httpx import DoTTransport
    >>> with httpx.Client(transport=DoTTransport("9.9.9.9#dns.quad9.net")) as http:
    ...     http.get("https://example.com/")

The URL's host is looked up over DoT (A and AAAA; IPv4 addresses tried first) and the
TCP connection goes to the address found; for ``https://`` URLs, TLS still sends the
host name as SNI and verifies the certificate against that name, not the address.
It is built on httpcore's public network-backend interface
(:class:`DoTNetworkBackend`, usable with httpcore directly): httpcore connects through
it and then starts TLS with the URL's host as ``server_hostname``.

IP literals and ``localhost`` are connected to as usual. A host that cannot be looked
up raises ``httpx.ConnectError`` (``httpx.ConnectTimeout`` when the DoT lookup timed
out) with the cause in its message: NXDOMAIN, no address, or the DoT failure.
``AsyncDoTTransport`` runs on asyncio (not trio). Needs ``pip install 'dotclient[httpx]'``.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any

try:
    import httpcore
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "dotclient.integrations.httpx needs httpx: pip install 'dotclient[httpx]'"
    ) from exc

from .._async.client import AsyncClient
from .._exceptions import Timeout
from .._sync.client import Client
from ._common import Found, LookupFailed, Owner, alookup, ip_literal, lookup

__all__ = [
    "AsyncDoTNetworkBackend",
    "AsyncDoTTransport",
    "DoTNetworkBackend",
    "DoTTransport",
]

SocketOptions = Iterable[Any] | None
#: httpx's default connection limits.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def _passes(host: str) -> bool:
    """Whether ``host`` is connected to without a DoT lookup."""
    return ip_literal(host) is not None or host.rstrip(".").lower() == "localhost"


def _lookup_error(exc: LookupFailed) -> httpcore.ConnectError | httpcore.ConnectTimeout:
    if isinstance(exc.__cause__, Timeout):
        return httpcore.ConnectTimeout(str(exc))
    return httpcore.ConnectError(str(exc))


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def _failed(host: str, found: Found, errors: list[Exception]) -> Exception:
    """The error when no address of ``host`` took the connection: the last one's
    class, naming every address tried."""
    pairs = zip(found.addresses, errors, strict=True)
    tried = "; ".join(f"{address}: {error}" for (_, address), error in pairs)
    return type(errors[-1])(f"cannot connect to {host} at any address found over DoT: {tried}")


def _pool_options(
    verify: ssl.SSLContext | str | bool,
    cert: Any,
    trust_env: bool,
    http1: bool,
    http2: bool,
    limits: httpx.Limits,
    retries: int,
    local_address: str | None,
    socket_options: SocketOptions,
) -> dict[str, Any]:
    """The arguments of a transport's httpcore pool but its network backend, from the
    transport's HTTP options (as ``httpx.HTTPTransport`` makes its pool)."""
    return {
        "ssl_context": httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "http1": http1,
        "http2": http2,
        "local_address": local_address,
        "retries": retries,
        "socket_options": socket_options,
    }


class DoTNetworkBackend(httpcore.NetworkBackend):
    """An httpcore network backend that looks host names up over DoT with ``client``
    (a :class:`dotclient.Client`) and connects to the addresses found through
    ``backend`` (default ``httpcore.SyncBackend()``). The caller owns ``client``."""

    def __init__(self, client: Client, backend: httpcore.NetworkBackend | None = None) -> None:
        if not isinstance(client, Client):
            raise TypeError(f"client must be a dotclient.Client, got {type(client).__name__}")
        self._client = client
        self._backend = backend or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: SocketOptions = None,
    ) -> httpcore.NetworkStream:
        """Look ``host`` up over DoT and connect to its addresses in turn, all within
        ``timeout``."""
        if _passes(host):
            return self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            found = lookup(self._client, host, socket.AF_UNSPEC, timeout)
        except LookupFailed as exc:
            raise _lookup_error(exc) from exc
        errors: list[Exception] = []
        for _, address in found.addresses:
            try:
                return self._backend.connect_tcp(
                    address, port, _left(deadline), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                errors.append(exc)
        raise _failed(host, found, errors) from errors[-1]

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: SocketOptions = None
    ) -> httpcore.NetworkStream:
        """Connect to a Unix socket (no lookup)."""
        return self._backend.connect_unix_socket(path, timeout, socket_options)

    def sleep(self, seconds: float) -> None:
        """Sleep, as the wrapped backend does."""
        self._backend.sleep(seconds)


class AsyncDoTNetworkBackend(httpcore.AsyncNetworkBackend):
    """The asyncio twin of :class:`DoTNetworkBackend`: ``client`` is a
    :class:`dotclient.AsyncClient` (A and AAAA asked together, pipelined) and
    ``backend`` defaults to ``httpcore.AnyIOBackend()``."""

    def __init__(
        self, client: AsyncClient, backend: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        if not isinstance(client, AsyncClient):
            raise TypeError(f"client must be a dotclient.AsyncClient, got {type(client).__name__}")
        self._client: Callable[[], AsyncClient] = lambda: client
        self._backend = backend or httpcore.AnyIOBackend()

    @classmethod
    def _owned(cls, owner: Owner) -> AsyncDoTNetworkBackend:
        """A backend on ``owner``'s client, made at the first lookup: inside the event
        loop that client will serve (a transport may be made before the loop runs)."""
        backend = cls.__new__(cls)
        backend._client = owner.async_client
        backend._backend = httpcore.AnyIOBackend()
        return backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: SocketOptions = None,
    ) -> httpcore.AsyncNetworkStream:
        """Look ``host`` up over DoT and connect to its addresses in turn, all within
        ``timeout``."""
        if _passes(host):
            return await self._backend.connect_tcp(
                host, port, timeout, local_address, socket_options
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            found = await alookup(self._client(), host, socket.AF_UNSPEC, timeout)
        except LookupFailed as exc:
            raise _lookup_error(exc) from exc
        errors: list[Exception] = []
        for _, address in found.addresses:
            try:
                return await self._backend.connect_tcp(
                    address, port, _left(deadline), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                errors.append(exc)
        raise _failed(host, found, errors) from errors[-1]

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: SocketOptions = None
    ) -> httpcore.AsyncNetworkStream:
        """Connect to a Unix socket (no lookup)."""
        return await self._backend.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        """Sleep, as the wrapped backend does."""
        await self._backend.sleep(seconds)


class DoTTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections go to addresses looked up over DoT.

    DoT: ``client=`` (a :class:`dotclient.Client` you own), or ``server`` /
    ``servers=`` and any :class:`dotclient.Client` options (``ca_file=``, ``pins=``,
    ``timeout=``...: they configure the DoT client, made here and closed by
    :meth:`close`). HTTP: httpx's ``verify``, ``cert``, ``trust_env``, ``http1``,
    ``http2``, ``limits``, ``retries``, ``local_address`` and ``socket_options``, as for
    ``httpx.HTTPTransport`` (no ``proxy`` or ``uds``: those connections need no lookup
    here). ``verify`` is for the web servers; the DoT server's trust is ``ca_file=`` /
    ``ssl_context=`` / ``pins=``.
    """

    def __init__(
        self,
        server: Any = None,
        *,
        servers: Iterable[Any] | None = None,
        client: Client | None = None,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = DEFAULT_LIMITS,
        retries: int = 0,
        local_address: str | None = None,
        socket_options: SocketOptions = None,
        **options: Any,
    ) -> None:
        self._owner = Owner(client, server, servers, options, kinds=(Client,))
        # Not super().__init__(): httpx.HTTPTransport handles requests on self._pool,
        # and this one's pool connects through the DoT network backend.
        http = _pool_options(
            verify, cert, trust_env, http1, http2, limits, retries, local_address, socket_options
        )
        self._pool = httpcore.ConnectionPool(
            **http, network_backend=DoTNetworkBackend(self._owner.sync_client())
        )

    def close(self) -> None:
        """Close the HTTP connections, and the DoT client if this transport made it."""
        try:
            super().close()
        finally:
            self._owner.close()

    def __exit__(self, *exc_info: Any) -> None:
        try:
            super().__exit__(*exc_info)
        finally:
            self._owner.close()


class AsyncDoTTransport(httpx.AsyncHTTPTransport):
    """The asyncio twin of :class:`DoTTransport` (``client=`` a
    :class:`dotclient.AsyncClient`), for ``httpx.AsyncClient(transport=...)``; close
    it with :meth:`aclose` (``httpx.AsyncClient`` does)."""

    def __init__(
        self,
        server: Any = None,
        *,
        servers: Iterable[Any] | None = None,
        client: AsyncClient | None = None,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = DEFAULT_LIMITS,
        retries: int = 0,
        local_address: str | None = None,
        socket_options: SocketOptions = None,
        **options: Any,
    ) -> None:
        self._owner = Owner(client, server, servers, options, kinds=(AsyncClient,))
        http = _pool_options(
            verify, cert, trust_env, http1, http2, limits, retries, local_address, socket_options
        )
        self._pool = httpcore.AsyncConnectionPool(
            **http, network_backend=AsyncDoTNetworkBackend._owned(self._owner)
        )

    async def aclose(self) -> None:
        """Close the HTTP connections, and the DoT client if this transport made it."""
        try:
            await super().aclose()
        finally:
            await self._owner.aclose()

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await super().__aexit__(*exc_info)
        finally:
            await self._owner.aclose()
