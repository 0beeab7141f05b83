"""A slow server: a delaying DoT proxy, in process, in front of a real one."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
import ssl
import tempfile
import threading

from ._base import LoopbackServer
from ._certs import IssuedCert


class DelayedServer(LoopbackServer):
    """A DoT server on loopback that answers each query after ``delay`` seconds; a
    context manager.

    Neither unbound, named nor dnsdist can delay a DNS-over-TLS answer (dnsdist's
    ``DelayAction`` is UDP only), so this is an **in-process** TLS proxy (an asyncio
    loop in a thread of its own): it terminates TLS with ``cert``, reads each query (any
    number pipelined per connection, one task per query), holds it for ``delay``
    seconds, then sends it as plain DNS over UDP to ``upstream`` (a ``(host, port)``:
    the ``port`` of an :class:`UnboundServer` also answers plain UDP) and writes the
    upstream's answer back, in whatever order the queries complete. The answers are
    the real server's; large ones may come back truncated (TC), as over UDP.

    It counts what a test needs to see concurrency where it matters: ``in_flight``
    (queries received and not yet answered), ``max_in_flight`` (the most at once since
    the start or :meth:`reset_counts`), ``queries`` (received) and ``connections``
    (accepted).

    ``delay`` may be changed while the server runs; ``None`` holds every query until the
    connection closes (a server that never answers).
    """

    def __init__(
        self,
        cert: IssuedCert,
        upstream: tuple[str, int],
        *,
        delay: float | None = 0.1,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        ipaddress.ip_address(host)
        self.cert = cert
        self.upstream = upstream
        self.delay = delay
        self.host = host
        self.port = port
        self.in_flight = 0
        self.max_in_flight = 0
        self.queries = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        """Whether the proxy is serving."""
        return self._thread is not None

    def reset_counts(self) -> None:
        """Zero ``max_in_flight``, ``queries`` and ``connections``."""
        with self._lock:
            self.max_in_flight = self.in_flight
            self.queries = 0
            self.connections = 0

    def start(self) -> None:
        """Start serving; returns once the port is bound (``port`` is then set)."""
        if self._thread is not None:
            raise RuntimeError("DelayedServer already started")
        context = _server_context(self.cert)
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        problem: list[BaseException] = []
        stopping = asyncio.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._main(context, ready, problem, stopping))
            finally:
                loop.close()

        thread = threading.Thread(target=run, name="dotclient-delayed-server", daemon=True)
        thread.start()
        ready.wait()
        if problem:
            thread.join()
            raise RuntimeError(f"DelayedServer could not listen on {self.host}: {problem[0]}")
        self._thread, self._loop, self._stopping = thread, loop, stopping

    def stop(self) -> None:
        """Close every connection and stop serving. Does nothing if not running."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        assert loop is not None and stopping is not None
        loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._thread = self._loop = self._stopping = None

    def _repr_details(self) -> str:
        return f" delay={self.delay}"

    async def _main(
        self,
        context: ssl.SSLContext,
        ready: threading.Event,
        problem: list[BaseException],
        stopping: asyncio.Event,
    ) -> None:
        """The proxy's loop: listen, set *ready* (with the error in *problem* if listening
        failed), serve until *stopping* is set, then cancel every connection's task."""
        connections: set[asyncio.Task[None]] = set()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await self._serve(reader, writer)
            finally:
                connections.discard(task)

        try:
            server = await asyncio.start_server(
                accepted, self.host, self.port, ssl=context, reuse_address=True
            )
        except BaseException as exc:
            problem.append(exc)
            ready.set()
            return
        self.port = int(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await stopping.wait()
            server.close()
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
        answers: set[asyncio.Task[None]] = set()
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                wire = await reader.readexactly(size)
                with self._lock:
                    self.queries += 1
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                task = asyncio.ensure_future(self._answer(wire, writer))
                answers.add(task)
                task.add_done_callback(answers.discard)
        except (asyncio.IncompleteReadError, OSError, ssl.SSLError):
            pass  # the client closed the connection, or broke it
        finally:
            for task in list(answers):
                task.cancel()
            await asyncio.gather(*answers, return_exceptions=True)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _answer(self, wire: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            if self.delay is None:
                await asyncio.Event().wait()  # never answers
            await asyncio.sleep(self.delay or 0)
            answer = await self._forward(wire)
            if not writer.is_closing():
                writer.write(len(answer).to_bytes(2, "big") + answer)
        except (OSError, asyncio.TimeoutError):
            pass  # no answer from upstream: this query goes unanswered
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _forward(self, wire: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()

        class Upstream(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                if not answer.done():
                    answer.set_result(data)

            def error_received(self, exc: Exception) -> None:
                if not answer.done():
                    answer.set_exception(exc)

        transport, _ = await loop.create_datagram_endpoint(Upstream, remote_addr=self.upstream)
        try:
            transport.sendto(wire)
            return await asyncio.wait_for(answer, 5.0)
        finally:
            transport.close()


def _server_context(cert: IssuedCert) -> ssl.SSLContext:
    """A TLS 1.2+ server context presenting *cert* (loaded through a temporary file)."""
    tmpdir = tempfile.mkdtemp(prefix="dotclient-delayed-")
    try:
        cert_path, key_path = cert.write(tmpdir, "server")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_path, key_path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return context
