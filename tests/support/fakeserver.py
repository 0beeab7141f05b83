"""A scriptable in-process DoT server for the cases a real server will not produce.

Each accepted connection runs ``handler(conn)`` in a thread after the TLS handshake
(or without TLS, with ``tls=False``: plaintext on the TLS port). The server records what
it received, in all and per connection, so tests can assert on the wire: padding, and
that nothing was sent before authentication or in the clear.

A server can misbehave from the start (a certificate, TLS versions, no handshake, a
handler) and then :meth:`FakeServer.recover`: new connections get a good TLS setup and
:func:`echo_handler`, and handlers built with :func:`scripted` answer properly from then
on, on connections already open too. That is how a test shows a client is still usable
after meeting a hostile server.
"""

from __future__ import annotations

import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
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

    def __init__(self, sock: socket.socket, server: FakeServer, received: bytearray) -> None:
        self.sock = sock
        self.server = server
        self._buffer = b""
        self.sni: str | None = None
        #: What this connection received (after the handshake, or all with tls=False).
        self.received = received
        #: Batches of queries a :func:`scripted` handler has handled on it so far.
        self.turn = 0
        #: The rest of a frame sent in part (:meth:`send_part`), sent on recovery.
        self.owed = b""

    def recv_some(self) -> bytes:
        """What the next ``recv`` gives, recorded; ``b""`` at EOF."""
        data = self.sock.recv(65536)
        if data:
            self.received += data
            self.server.record(data)
        return data

    def recv_exact(self, n: int) -> bytes | None:
        while len(self._buffer) < n:
            data = self.recv_some()
            if not data:
                return None
            self._buffer += data
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def drain(self) -> None:
        """Read (and record) until the client closes the connection."""
        self._buffer = b""
        while self.recv_some():
            pass

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

    def send_together(self, *messages: dns.message.Message | bytes) -> None:
        """Several framed messages in one write: one TLS record while under 16 KiB."""
        self.sock.sendall(b"".join(frame(m) for m in messages))

    def send_records(self, data: bytes, size: int = 1, pause: float = 0.0) -> None:
        """``data`` in writes of ``size`` octets (so TLS records of that size), with
        ``pause`` seconds between them (a drip feed; the rest goes at once when the
        server recovers)."""
        for start in range(0, len(data), size):
            if pause and start and not self.server.recovered:
                time.sleep(pause)
            self.sock.sendall(data[start : start + size])

    def send_part(self, data: bytes, sent: int) -> None:
        """Send the first ``sent`` octets of ``data`` and owe the rest: a server that
        recovers finishes the frame it started before it answers anything else."""
        self.sock.sendall(data[:sent])
        self.owed = data[sent:]

    def close_gracefully(self) -> None:
        """Close the TCP connection (a FIN, no TLS close_notify) after reading all the
        client sent, so that the kernel does not answer unread bytes with a reset."""
        self.sock.shutdown(socket.SHUT_WR)  # the TLS layer is dropped; raw bytes follow
        while self.sock.recv(65536):
            pass

    def reset(self) -> None:
        """Make the coming close a TCP reset (RST), as a crashing server's is."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


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


def reflect_handler(conn: FakeConnection) -> None:
    """Answer every query with itself, QR bit set: a valid empty NOERROR answer made
    without parsing, for tests that send thousands of queries."""
    while (wire := conn.read_frame()) is not None:
        conn.send(frame(wire[:2] + bytes([wire[2] | 0x80]) + wire[3:]))


#: How OpenSSL words the TLS error a plaintext reply causes (3.2+ reads records anew).
PLAINTEXT_TLS_ERROR = "(WRONG_VERSION_NUMBER|RECORD_LAYER_FAILURE)"


def plaintext_dns_handler(conn: FakeConnection) -> None:
    """Plain DNS over TCP on the TLS port (use with ``tls=False``): it takes the
    client's first bytes (a ClientHello) for a query, answers FORMERR in the clear
    under the ID it read there, and records all the client sends until it closes."""
    data = conn.recv_some()
    if len(data) >= 4:
        (qid,) = struct.unpack_from("!H", data, 2)  # after the would-be length prefix
        conn.send_message(struct.pack("!HHHHHH", qid, 0x8001, 0, 0, 0, 0))
    conn.drain()


Script = Callable[[FakeConnection, list[dns.message.Message]], bool | None]


def scripted(script: Script, batch: int = 1) -> Callable[[FakeConnection], None]:
    """A handler that reads ``batch`` queries at a time and hands them to
    ``script(conn, queries)``, which answers them (or not) as it likes; it returns
    False to end the connection (the server then closes it). ``conn.turn`` counts the
    batches handled before on that connection. Once the server has called
    :meth:`~FakeServer.recover`, every query is answered properly instead."""

    def handler(conn: FakeConnection) -> None:
        while True:
            queries: list[dns.message.Message] = []
            while len(queries) < batch:
                if queries and conn.server.recovered:
                    break
                query = conn.read_query()
                if query is None:
                    return
                queries.append(query)
            if conn.server.recovered:
                owed, conn.owed = conn.owed, b""
                conn.sock.sendall(owed + b"".join(frame(answer(q)) for q in queries))
            elif script(conn, queries) is False:
                return
            conn.turn += 1

    return handler


def _context(
    cert: IssuedCert,
    alpn: Sequence[str] | None,
    min_version: ssl.TLSVersion | None,
    max_version: ssl.TLSVersion | None,
    ciphers: str | None,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if min_version is not None or max_version is not None:
        # TLS 1.0/1.1 need the versions opened up and, on OpenSSL 3, security level 0
        # (ciphers="DEFAULT:@SECLEVEL=0"), or the server cannot offer them at all.
        ctx.minimum_version = min_version or ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = max_version or ssl.TLSVersion.MAXIMUM_SUPPORTED
    if ciphers:
        ctx.set_ciphers(ciphers)
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = cert.write(Path(tmp))
        ctx.load_cert_chain(cert_path, key_path)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


class FakeServer:
    """Threaded TLS server on 127.0.0.1; use as a context manager.

    ``cert`` is the certificate presented (with ``tls=False`` the one used after
    :meth:`recover`); ``min_version``/``max_version``/``ciphers`` restrict what the
    server offers; ``handshake=False`` accepts TCP connections and never handshakes.
    """

    def __init__(
        self,
        cert: IssuedCert | None,
        handler: Callable[[FakeConnection], None] = echo_handler,
        *,
        tls: bool = True,
        handshake: bool = True,
        alpn: list[str] | None = None,
        min_version: ssl.TLSVersion | None = None,
        max_version: ssl.TLSVersion | None = None,
        ciphers: str | None = None,
    ) -> None:
        self.handler = handler
        self.tls = tls
        self.handshake = handshake
        self.received = bytearray()
        #: What each connection received, in the order they were accepted.
        self.streams: list[bytearray] = []
        self.frames: list[bytes] = []
        self.connections = 0
        self.snis: list[str | None] = []
        self.errors: list[BaseException] = []
        #: Set by :meth:`recover`: behave from now on.
        self.recovered = False
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._alpn = alpn
        self.context: ssl.SSLContext | None = None
        if tls:
            assert cert is not None
            self.context = self._with_sni(_context(cert, alpn, min_version, max_version, ciphers))
        self._good_context = (
            self._with_sni(_context(cert, alpn, None, None, None)) if cert is not None else None
        )
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def _with_sni(self, ctx: ssl.SSLContext) -> ssl.SSLContext:
        def remember_sni(sslobj: Any, name: str | None, _ctx: Any) -> None:
            with self._lock:
                self.snis.append(name)

        ctx.sni_callback = remember_sni
        return ctx

    @property
    def spec(self) -> str:
        return f"127.0.0.1:{self.port}#dot.test"

    def recover(self, cert: IssuedCert | None = None) -> None:
        """Behave from now on: new connections get TLS with ``cert`` (by default the
        one given at first) and :func:`echo_handler`; :func:`scripted` handlers on open
        connections answer every further query properly."""
        context = self._with_sni(_context(cert, self._alpn, None, None, None)) if cert else None
        context = context or self._good_context
        assert context is not None, "recover() needs a certificate"
        self.context = context
        self.tls = self.handshake = True
        self.handler = echo_handler
        self.recovered = True

    def wait_handlers(self, timeout: float = 10.0) -> None:
        """Wait until every connection's handler has ended (the clients closed them),
        so that all they sent has been recorded."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(deadline - time.monotonic(), 0))
            assert not thread.is_alive(), "a connection is still open"

    def record(self, data: bytes) -> None:
        with self._lock:
            self.received += data

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            received = bytearray()
            with self._lock:
                self.connections += 1
                self._socks.append(sock)
                self.streams.append(received)
            # What this connection gets is decided now, so recover() applies to new
            # connections only.
            setup = (self.handler, self.tls, self.handshake, self.context)
            thread = threading.Thread(
                target=self._serve, args=(sock, received, *setup), daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _serve(
        self,
        raw: socket.socket,
        received: bytearray,
        handler: Callable[[FakeConnection], None],
        tls: bool,
        handshake: bool,
        context: ssl.SSLContext | None,
    ) -> None:
        sock: socket.socket = raw
        try:
            raw.settimeout(10)
            if tls and handshake:
                assert context is not None
                sock = context.wrap_socket(raw, server_side=True)
                with self._lock:
                    self._socks.append(sock)
            elif tls:  # accept TCP but never handshake
                self._stop.wait(30)
                return
            handler(FakeConnection(sock, self, received))
        except (OSError, ssl.SSLError, ValueError):
            pass  # the client went away or refused us: expected in many tests
        except BaseException as exc:  # pragma: no cover - a bug in a test handler
            self.errors.append(exc)
        finally:
            sock.close()
            raw.close()

    def shutdown_connections(self) -> list[socket.socket]:
        """Shut every connection down at the TCP level, waking handlers blocked in a
        read (they see the end of the stream); return the sockets, still to close.

        ``SSLSocket.shutdown`` is not used: it drops the socket's TLS object, and a
        handler reading in another thread would then read the peer's TLS records as
        if they were plaintext (that read DNS frames out of ciphertext, in a CI run).
        """
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass
        return socks

    def __enter__(self) -> FakeServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._acceptor.join(5)
        self._listener.close()
        socks = self.shutdown_connections()
        for thread in self._threads:
            thread.join(5)
        for sock in socks:
            sock.close()
        if self.errors:
            raise self.errors[0]
