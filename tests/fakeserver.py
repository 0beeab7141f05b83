"""A scriptable in-process DoT server for the cases a real server will not produce.

Each accepted connection runs ``handler(conn)`` in a thread after the TLS handshake
(or without TLS, with ``tls=False``). The server records what it received, so tests can
assert on the wire: padding, and that nothing was sent before authentication.
"""

from __future__ import annotations

import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rrset

from dotclient.testing import IssuedCert


def frame(message: dns.message.Message | bytes) -> bytes:
    """A message with its two-octet length prefix, written here independently of the
    client's encoder so that a bug there cannot hide in both."""
    wire = message if isinstance(message, bytes) else message.to_wire()
    return struct.pack("!H", len(wire)) + wire


class FakeConnection:
    """The server's side of one client connection."""

    def __init__(self, sock: socket.socket, server: FakeServer) -> None:
        self.sock = sock
        self.server = server
        self._buffer = b""
        self.sni: str | None = None

    def recv_exact(self, n: int) -> bytes | None:
        while len(self._buffer) < n:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.server.record(data)
            self._buffer += data
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def read_frame(self) -> bytes | None:
        """One length-prefixed message, or None at EOF."""
        prefix = self.recv_exact(2)
        if prefix is None:
            return None
        (length,) = struct.unpack("!H", prefix)
        body = self.recv_exact(length)
        if body is not None:
            self.server.frames.append(body)
        return body

    def drop_buffered(self) -> None:
        """Forget bytes received but not yet read as frames."""
        self._buffer = b""

    def read_query(self) -> dns.message.Message | None:
        wire = self.read_frame()
        return None if wire is None else dns.message.from_wire(wire)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_message(self, message: dns.message.Message | bytes) -> None:
        self.sock.sendall(frame(message))


def answer(query: dns.message.Message, address: str = "192.0.2.53") -> dns.message.Message:
    """A NOERROR response with one A record for the query's name."""
    response = dns.message.make_response(query)
    q = query.question[0]
    response.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", address))
    return response


def echo_handler(conn: FakeConnection) -> None:
    """Answer every query with one A record until the client closes."""
    while (query := conn.read_query()) is not None:
        conn.send_message(answer(query))


class FakeServer:
    """Threaded TLS server on 127.0.0.1; use as a context manager."""

    def __init__(
        self,
        cert: IssuedCert | None,
        handler: Callable[[FakeConnection], None] = echo_handler,
        *,
        tls: bool = True,
        handshake: bool = True,
        alpn: list[str] | None = None,
        max_version: ssl.TLSVersion | None = None,
        ciphers: str | None = None,
    ) -> None:
        self.handler = handler
        self.tls = tls
        self.handshake = handshake
        self.received = bytearray()
        self.frames: list[bytes] = []
        self.connections = 0
        self.snis: list[str | None] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        self.context: ssl.SSLContext | None = None
        if tls:
            assert cert is not None
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            if max_version is not None:
                ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
                ctx.maximum_version = max_version
            if ciphers:
                ctx.set_ciphers(ciphers)
            with tempfile.TemporaryDirectory() as tmp:
                cert_path, key_path = cert.write(Path(tmp))
                ctx.load_cert_chain(cert_path, key_path)
            if alpn:
                ctx.set_alpn_protocols(alpn)

            def remember_sni(sslobj: Any, name: str | None, _ctx: Any) -> None:
                with self._lock:
                    self.snis.append(name)

            ctx.sni_callback = remember_sni
            self.context = ctx
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def spec(self) -> str:
        return f"127.0.0.1:{self.port}#dot.test"

    def record(self, data: bytes) -> None:
        with self._lock:
            self.received += data

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
                self._socks.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        sock: socket.socket = raw
        try:
            raw.settimeout(10)
            if self.tls and self.handshake:
                assert self.context is not None
                sock = self.context.wrap_socket(raw, server_side=True)
                with self._lock:
                    self._socks.append(sock)
            elif self.tls:  # accept TCP but never handshake
                self._stop.wait(30)
                return
            self.handler(FakeConnection(sock, self))
        except (OSError, ssl.SSLError, ValueError):
            pass  # the client went away or refused us: expected in many tests
        except BaseException as exc:  # pragma: no cover - a bug in a test handler
            self.errors.append(exc)
        finally:
            sock.close()
            raw.close()

    def __enter__(self) -> FakeServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._acceptor.join(5)
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)
        for sock in socks:
            sock.close()
        if self.errors:
            raise self.errors[0]
