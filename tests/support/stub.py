"""``dotclient serve`` in tests: a :class:`Stub` on a loop of its own, and the plain-DNS
queries the serve tests send it (tests/servers/test_serve.py and
tests/interop/test_serve_clients.py)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import dns.message
import dns.query

import dotclient
from dotclient._serve._server import Stub

# Every wait is bounded, with room for a loaded machine: the client's own timeout is 5 s.
WAIT = 30.0

A_RECORDS = {"192.0.2.1", "192.0.2.2"}


class StubThread:
    """A :class:`Stub` on 127.0.0.1 (a free port, UDP and TCP) on its own loop."""

    def __init__(self, upstream: str, ca_file: str, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        client_options = kwargs.pop("client", {})

        async def start() -> Stub:
            client = dotclient.AsyncClient(upstream, ca_file=ca_file, **client_options)
            stub = Stub(client, **kwargs)
            await stub.start([("127.0.0.1", 0)])
            return stub

        self.stub = self.call(start())
        self.port = self.stub.addresses[0][1]

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(WAIT)

    def close(self) -> None:
        try:
            self.call(self.stub.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(WAIT)
            self.loop.close()


def udp(port: int, message: dns.message.Message) -> dns.message.Message:
    return dns.query.udp(message, "127.0.0.1", port=port, timeout=WAIT, ignore_trailing=False)


def tcp(port: int, message: dns.message.Message) -> dns.message.Message:
    return dns.query.tcp(message, "127.0.0.1", port=port, timeout=WAIT)


def addresses(message: dns.message.Message) -> set[str]:
    return {rr.to_text() for rrset in message.answer if rrset.rdtype == 1 for rr in rrset}
