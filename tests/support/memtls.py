"""TLS handshakes in memory: two ssl.SSLObjects joined by MemoryBIOs, no sockets."""

from __future__ import annotations

import ssl


def pump(client: ssl.SSLObject, server: ssl.SSLObject, bios: list[ssl.MemoryBIO]) -> None:
    """Run a handshake between ``client`` and ``server``.

    ``bios`` are the client's incoming and outgoing BIOs, then the server's.
    """
    c_in, c_out, s_in, s_out = bios
    done = [False, False]
    for _ in range(10):
        for i, (obj, src, dst) in enumerate(((client, c_out, s_in), (server, s_out, c_in))):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            dst.write(src.read())
        if all(done):
            return
    raise AssertionError("handshake did not finish")
