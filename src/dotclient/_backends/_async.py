"""asyncio backend: a TLS stream over asyncio's streams, every wait bounded."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from .._exceptions import Timeout, map_io_errors
from .._server import Server
from . import quickack

__all__ = ["AsyncLock", "AsyncStream", "open_tls_stream"]

# How long closing may wait for the peer's close_notify before the transport is aborted.
_CLOSE_TIMEOUT = 1.0


class AsyncStream:
    """A connected, handshaken TLS stream."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._server = server
        self.ssl_object: Any = writer.get_extra_info("ssl_object")
        self._socket: Any = writer.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float) -> bytes:
        """Read up to ``max_bytes``; ``b""`` when the peer closed the connection."""
        with map_io_errors("receive", self._server):
            if self._socket is not None:
                quickack(self._socket)
            return await asyncio.wait_for(self._reader.read(max_bytes), timeout)

    async def write(self, data: bytes, timeout: float) -> None:
        """Write all of ``data``."""
        with map_io_errors("send", self._server):
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), timeout)

    async def aclose(self) -> None:
        """Close the connection; never raises, never waits more than a second."""
        writer = self._writer
        if writer.is_closing():
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        except Exception:  # a peer that never sends close_notify, or resets
            writer.transport.abort()


async def open_tls_stream(
    server: Server, context: ssl.SSLContext, server_hostname: str | None, timeout: float
) -> AsyncStream:
    """Connect to ``server`` and complete the TLS handshake within ``timeout`` seconds.

    ``server_hostname`` is sent as SNI and, if the context checks host names, verified;
    None sends no SNI.
    """
    if timeout <= 0:
        raise Timeout(f"no time left to connect to {server}", server=server)
    with map_io_errors("connect", server):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                server.host,
                server.port,
                ssl=context,
                # asyncio takes "" to mean: no SNI, no host name check.
                server_hostname=server_hostname if server_hostname is not None else "",
                ssl_handshake_timeout=timeout,
            ),
            timeout,
        )
    return AsyncStream(reader, writer, server)


class AsyncLock:
    """A lock whose acquisition is bounded by a timeout."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def acquire(self, timeout: float) -> bool:
        """Acquire within ``timeout`` seconds; False if that was not possible."""
        if not self._lock.locked():
            await self._lock.acquire()  # free: returns at once
            return True
        try:
            await asyncio.wait_for(self._lock.acquire(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def release(self) -> None:
        """Release the lock."""
        self._lock.release()
