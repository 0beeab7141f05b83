"""SOCKS5 proxies (RFC 1928, RFC 1929): parsing ``proxy=`` and connecting through one.

The SOCKS handshake is python-socks' (the ``dotclient[socks]`` extra); this module turns
its results and errors into ours. With ``socks5h://`` the proxy resolves the server's
name, so no lookup happens here; with ``socks5://`` the client resolves the name (with
``bootstrap=`` servers, or the system resolver) and hands the proxy an address.
"""

from __future__ import annotations

import dataclasses
import socket
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ._exceptions import ConnectError, Timeout
from ._server import Server

__all__ = ["Proxy", "aconnect", "connect", "parse_proxy"]

_SCHEMES = ("socks5", "socks5h")


@dataclasses.dataclass(frozen=True)
class Proxy:
    """A parsed ``socks5://`` or ``socks5h://`` proxy URL."""

    host: str
    port: int
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    #: ``socks5h``: the proxy resolves the server's name.
    remote_dns: bool = False

    def __str__(self) -> str:
        scheme = "socks5h" if self.remote_dns else "socks5"
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{host}:{self.port}"


def parse_proxy(url: str | None) -> Proxy | None:
    """Parse ``socks5://[user:pass@]host:port`` (or ``socks5h://``); None for no proxy.

    Raises ValueError (before any I/O) for another scheme, a missing host or port, or
    when python-socks is not installed.
    """
    if url is None:
        return None
    if not isinstance(url, str):
        raise TypeError(f"proxy must be a str URL, not {type(url).__name__}")
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(f"proxy must be a socks5:// or socks5h:// URL, not {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid port in proxy URL {url!r}") from None
    if not parts.hostname or port is None:
        raise ValueError(f"proxy URL {url!r} needs a host and a port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"unexpected path or query in proxy URL {url!r}")
    try:
        import python_socks  # noqa: F401
    except ImportError:
        raise ValueError(
            "proxy= needs the python-socks package: pip install 'dotclient[socks]'"
        ) from None
    username = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    return Proxy(parts.hostname, port, username, password, scheme == "socks5h")


def _python_socks_proxy(proxy: Proxy, kind: str) -> Any:
    from python_socks import ProxyType

    if kind == "sync":
        from python_socks.sync import Proxy as SyncProxy

        cls: Any = SyncProxy
    else:
        from python_socks.async_.asyncio import Proxy as AsyncioProxy

        cls = AsyncioProxy
    return cls(
        ProxyType.SOCKS5,
        proxy.host,
        proxy.port,
        username=proxy.username,
        password=proxy.password,
        rdns=proxy.remote_dns,
    )


def destination(proxy: Proxy, server: Server, address: str | None) -> str:
    """What the proxy is asked to connect to: the server's name with ``socks5h`` (or
    its IP), else the address the client resolved."""
    if proxy.remote_dns or address is None:
        return server.host
    return address


@contextmanager
def _mapped(proxy: Proxy, server: Server) -> Iterator[None]:
    from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError

    try:
        yield
    except ProxyTimeoutError as exc:
        raise Timeout(f"timed out connecting to {server} through {proxy}", server=server) from exc
    except ProxyConnectionError as exc:
        raise ConnectError(f"cannot connect to {server}: {exc}", server=server) from exc
    except ProxyError as exc:
        raise ConnectError(
            f"cannot connect to {server} through {proxy}: {exc}", server=server
        ) from exc
    except TimeoutError as exc:
        raise Timeout(f"timed out connecting to {server} through {proxy}", server=server) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectError(
            f"cannot connect to {server} through {proxy}: {reason}", server=server
        ) from exc


def connect(
    proxy: Proxy,
    server: Server,
    address: str | None,
    timeout: float,
    source: tuple[str, int] | None,
) -> socket.socket:
    """A blocking TCP connection to ``server`` through ``proxy``, SOCKS handshake done."""
    client = _python_socks_proxy(proxy, "sync")
    with _mapped(proxy, server):
        sock: socket.socket = client.connect(
            destination(proxy, server, address), server.port, timeout=timeout, local_addr=source
        )
    return sock


async def aconnect(
    proxy: Proxy,
    server: Server,
    address: str | None,
    timeout: float,
    source: tuple[str, int] | None,
) -> socket.socket:
    """The asyncio twin of :func:`connect`: a connected non-blocking socket."""
    client = _python_socks_proxy(proxy, "async")
    with _mapped(proxy, server):
        sock: socket.socket = await client.connect(
            destination(proxy, server, address), server.port, timeout=timeout, local_addr=source
        )
    return sock
