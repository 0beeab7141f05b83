"""The DoT client, written once.

This file is generated from ``dotclient/_async/client.py``
by ``scripts/unasync.py``. Do not edit it: edit that one.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable
from types import TracebackType

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from .._backends._sync import Lock, SyncStream, open_tls_stream
from .._config import DEFAULT_TIMEOUT, ClientConfig, ServerSpec, remaining
from .._exceptions import AuthenticationError, ConnectionLost, DoTError, Timeout
from .._protocol import DoTProtocol
from .._response import Response
from .._server import Server
from .._tls import TLSInfo

__all__ = ["Client", "Connection", "resolve"]

_READ_SIZE = 65536


def _name_server(exc: DoTError, server: Server) -> None:
    """Name the server on errors raised where it was not known (the protocol core)."""
    if exc.server is None:
        exc.server = server


class Connection:
    """One authenticated TLS connection to a DoT server and its protocol state."""

    def __init__(self, stream: SyncStream, tls: TLSInfo, server: Server, padding: int) -> None:
        self.stream = stream
        self.tls = tls
        self.server = server
        self.protocol = DoTProtocol(padding=padding)

    @classmethod
    def connect(cls, config: ClientConfig, deadline: float) -> Connection:
        """Connect, handshake and authenticate (RFC 8310) before any query is sent.

        In the opportunistic profile a failed authentication leads to one more attempt
        without it; in the strict profile it raises :class:`AuthenticationError`.
        """
        server = config.server
        policy = config.tls
        failure: AuthenticationError | None = None
        for attempt in policy.attempts():
            left = remaining(deadline, server, "the TLS handshake")
            try:
                stream = open_tls_stream(
                    server, attempt.context, attempt.server_hostname, left
                )
            except AuthenticationError as exc:
                failure = exc
                continue
            try:
                tls = policy.check(stream.ssl_object, attempt, str(failure) if failure else None)
            except AuthenticationError as exc:
                stream.close()
                failure = exc
                continue
            except BaseException:
                stream.close()
                raise
            return cls(stream, tls, server, config.padding)
        assert failure is not None
        raise failure

    def exchange(self, query: dns.message.Message, deadline: float) -> dns.message.Message:
        """Send ``query`` and wait for its validated response."""
        protocol = self.protocol
        qid, data = protocol.send_query(query)
        try:
            self.stream.write(data, remaining(deadline, self.server))
            while (answer := protocol.result(qid)) is None:
                data = self.stream.read(_READ_SIZE, remaining(deadline, self.server))
                protocol.receive_data(data)
            return answer
        except Timeout as exc:
            protocol.abandon(qid)
            if protocol.unmatched:
                raise Timeout(
                    f"{exc} ({protocol.unmatched} response(s) meanwhile matched no query)",
                    server=self.server,
                ) from None
            raise
        except BaseException:
            protocol.abandon(qid)
            raise

    def close(self) -> None:
        """Close the connection."""
        self.stream.close()


class Client:
    """A DoT client for one server that keeps its connection between queries.

    ``server`` is a spec string (``"1.1.1.1"``, ``"9.9.9.9#dns.quad9.net"``,
    ``"[2606:4700:4700::1111]:853"``, ``"dns.google"``, ``"cloudflare"``, ...) or a
    :class:`Server`; None means ``$DOTCLIENT_SERVER``, else ``"cloudflare"``.

    Options (all keyword-only):

    * ``timeout`` (5.0): seconds for a whole query, connection set-up included.
    * ``auth_name``: the authentication domain name to verify and send as SNI.
    * ``pins``: SHA-256 SPKI pins (``"sha256/BASE64"``, RFC 7858 section 4.2); one must
      match the verified chain. ``pin_only=True`` trusts a matching pin alone (for a
      self-signed server), without CA or name checks.
    * ``sni``: a different SNI name to send, or ``False`` for none; the name verified
      stays the authentication name.
    * ``ca_file``: PEM trust anchors replacing certifi's bundle (a private CA).
    * ``ssl_context``: a context of your own, for full control of TLS.
    * ``profile``: ``"strict"`` (default, RFC 8310) fails unless the server is
      authenticated; ``"opportunistic"`` then goes on encrypted but unauthenticated, and
      says so in :attr:`Response.authenticated`.
    * ``padding`` (True): pad queries to multiples of 128 octets (RFC 8467).

    Use it as a context manager, or call :meth:`close` when done.
    """

    def __init__(
        self,
        server: ServerSpec | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        auth_name: str | None = None,
        pins: Iterable[str | bytes] | None = None,
        pin_only: bool = False,
        sni: str | bool | None = None,
        ca_file: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        profile: str = "strict",
        padding: bool | int = True,
    ) -> None:
        self._config = ClientConfig(
            server,
            timeout=timeout,
            auth_name=auth_name,
            pins=pins,
            pin_only=pin_only,
            sni=sni,
            ca_file=ca_file,
            ssl_context=ssl_context,
            profile=profile,
            padding=padding,
        )
        self._lock = Lock()
        self._connection: Connection | None = None
        self._closed = False

    @property
    def server(self) -> Server:
        """The server this client talks to."""
        return self._config.server

    @property
    def timeout(self) -> float:
        """The default timeout of a query, in seconds."""
        return self._config.timeout

    def resolve(
        self,
        name: dns.name.Name | str,
        rdtype: dns.rdatatype.RdataType | str | int = "A",
        rdclass: dns.rdataclass.RdataClass | str | int = "IN",
        *,
        dnssec: bool = False,
        timeout: float | None = None,
    ) -> Response:
        """Look up ``name``/``rdtype`` (a recursive query with EDNS(0); ``dnssec=True``
        sets the DO bit). A non-NOERROR RCODE is returned, not raised."""
        query = self._config.make_query(name, rdtype, rdclass, dnssec)
        return self.query(query, timeout=timeout)

    def query(
        self, message: dns.message.Message, *, timeout: float | None = None
    ) -> Response:
        """Send any dnspython query message and return the validated response.

        It goes out under a fresh random ID (and with padding, unless turned off); the
        ``message`` object is not modified, and the response carries its ID back so
        ``message.is_response(response.message)`` holds.
        """
        query = self._config.check_message(message)
        started = time.perf_counter()
        deadline = self._config.deadline(timeout)
        if self._closed:
            raise RuntimeError("this client has been closed")
        server = self._config.server
        if not self._lock.acquire(remaining(deadline, server, "a free connection")):
            raise Timeout(f"timed out waiting for a free connection to {server}", server=server)
        try:
            return self._query(query, started, deadline)
        finally:
            self._lock.release()

    def _query(
        self, query: dns.message.Message, started: float, deadline: float
    ) -> Response:
        while True:
            connection = self._connection
            fresh = connection is None
            if connection is None:
                if self._closed:  # close() ran while this query was under way
                    raise ConnectionLost("the client was closed", server=self._config.server)
                connection = Connection.connect(self._config, deadline)
                self._connection = connection
            try:
                answer = connection.exchange(query, deadline)
            except ConnectionLost as exc:
                self._discard()
                if fresh:
                    _name_server(exc, self._config.server)
                    raise
                # The server closed a connection kept from earlier (idle timeout, restart):
                # that says nothing about this query, so send it once more on a new one.
                continue
            except DoTError as exc:
                self._discard()
                _name_server(exc, self._config.server)
                raise
            except BaseException:
                self._discard()
                raise
            return self._config.response(query, answer, started, connection.tls)

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close the connection; the client cannot be used afterwards."""
        self._closed = True
        self._discard()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self._config.server} {state}>"


def resolve(
    name: dns.name.Name | str,
    rdtype: dns.rdatatype.RdataType | str | int = "A",
    rdclass: dns.rdataclass.RdataClass | str | int = "IN",
    *,
    server: ServerSpec | None = None,
    dnssec: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    auth_name: str | None = None,
    pins: Iterable[str | bytes] | None = None,
    pin_only: bool = False,
    sni: str | bool | None = None,
    ca_file: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    profile: str = "strict",
    padding: bool | int = True,
) -> Response:
    """Resolve one name on a new connection, then close it.

    Takes the options of :class:`Client`; ``timeout`` bounds the whole call. For
    more than one query, keep an :class:`Client` and save the handshakes.
    """
    with Client(
        server,
        timeout=timeout,
        auth_name=auth_name,
        pins=pins,
        pin_only=pin_only,
        sni=sni,
        ca_file=ca_file,
        ssl_context=ssl_context,
        profile=profile,
        padding=padding,
    ) as client:
        return client.resolve(name, rdtype, rdclass, dnssec=dnssec)
