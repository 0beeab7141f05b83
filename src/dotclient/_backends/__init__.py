"""I/O backends: the only code that touches sockets, ``ssl`` wrapping and asyncio.

``_async.py`` and ``_sync.py`` offer the same names (``open_tls_stream``, a stream with
``read``/``write``/close, locks, ``Event``, ``call_later``, ``run_workers``,
``sleep``), so the client code in ``dotclient._async`` is written once and
``dotclient._sync`` is generated from it by ``scripts/unasync.py``.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator
from typing import Any

from .._exceptions import ConnectError

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only
# Linux 4.11+: connect() returns at once and the first write (our ClientHello) goes in
# the SYN when the kernel holds a TFO cookie for the server. Python names the constant
# only on some builds; its value is 30 in linux/tcp.h.
_FASTOPEN_CONNECT = getattr(
    socket, "TCP_FASTOPEN_CONNECT", 30 if sys.platform.startswith("linux") else None
)


def fast_open(sock: socket.socket) -> bool:
    """Ask for TCP Fast Open (RFC 7413) on a socket not yet connected; return whether
    the kernel took the option. Where it does not (not Linux, an old kernel), the
    connection is made as usual: Fast Open is an optimisation, never a requirement."""
    if _FASTOPEN_CONNECT is None:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _FASTOPEN_CONNECT, 1)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def refused_is_connect(server: Any) -> Iterator[None]:
    """With Fast Open, connect() returns before the server answered the SYN, so a
    refused connection shows up in the handshake: report it as the connect failure it
    is (a :class:`ConnectError`, not a lost connection)."""
    try:
        yield
    except ConnectionRefusedError as exc:
        reason = exc.strerror or str(exc)
        raise ConnectError(f"cannot connect to {server}: {reason}", server=server) from exc


def quickack(sock: Any) -> None:
    """Ask the kernel to acknowledge the next segments at once (Linux TCP_QUICKACK).

    Servers that do not set TCP_NODELAY (Debian's unbound among them) hold a DNS
    answer behind a small unacknowledged TLS record, such as TLS 1.3 session tickets,
    until our delayed ACK fires: ~40 ms per new connection. Quick ACKs release it; the
    kernel clears the mode by itself, so it is set again before every read.
    """
    if _QUICKACK is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
    except (OSError, AttributeError):  # not a TCP socket, or already closed
        pass
