"""I/O backends: the only code that touches sockets, ``ssl`` wrapping and asyncio.

``_async.py`` and ``_sync.py`` offer the same names (``open_tls_stream``, a stream with
``read``/``write``/close, locks, ``Event``, ``call_later``, ``run_workers``,
``sleep``), so the client code in ``dotclient._async`` is written once and
``dotclient._sync`` is generated from it by ``scripts/unasync.py``.
"""

from __future__ import annotations

import socket
from typing import Any

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


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
