"""The DoT client, written once: :class:`Client` and :func:`resolve`.

This file is generated from ``dotclient/_async/client.py``
by ``scripts/unasync.py``. Do not edit it: edit that one.

The client walks its servers in the rotation's order (``_failover.Rotation``); each
server's connections are an :class:`ServerPool` (``pool.py``), each connection an
:class:`Connection` (``connection.py``), and their decisions are
:mod:`dotclient._policy`'s.
"""

from __future__ import annotations

import dataclasses
import ssl
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import cast

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from .._backends import _sync as backend
from .._config import (
    DEFAULT_BACKOFF,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_TIMEOUT,
    ClientConfig,
    ServerSpec,
)
from .._exceptions import AllServersFailed, DoTError
from .._failover import Rotation, ServerState
from .._happy import DEFAULT_ATTEMPT_DELAY
from .._policy import ConnectFailure, restart_pause
from .._response import Response
from .._server import Server
from .._stats import ClientStats
from .bootstrap import BootstrapResolver
from .connection import Connection, Request
from .pool import ServerPool

__all__ = ["Client", "Connection", "ServerPool", "resolve"]


class Client:
    """A DoT client that keeps its connections and pipelines queries.

    ``server`` is a spec string (``"1.1.1.1"``, ``"9.9.9.9#dns.quad9.net"``,
    ``"[2606:4700:4700::1111]:853"``, ``"dns.google"``, ``"cloudflare"``, ...) or a
    :class:`Server`; None means ``$DOTCLIENT_SERVER``, else ``"cloudflare"``.

    Options (all keyword-only):

    * ``servers``: several server specs instead of ``server``, tried in turn when one
      fails (see below); ``strategy`` is ``"failover"`` (default: always the first
      server that works, in the order given) or ``"round_robin"`` (each query starts at
      the next server). ``server_timeout``: seconds one server gets for a query before
      it moves on (default: the time left shared evenly among the servers still to
      try). ``backoff`` (1.0) and ``max_backoff`` (3600.0): a server that failed goes to
      the back of the order for ``backoff`` seconds, doubled with each further failure
      in a row, up to ``max_backoff`` (RFC 7858 section 3.1). While every server is
      backed off after failing to connect, handshake or authenticate (a lone server
      too), queries fail at once with the remembered error; see
      :meth:`forget_failures`.
    * ``timeout`` (5.0): seconds for a whole query, connection set-up and every
      server tried included.
    * ``auth_name``: the authentication domain name to verify and send as SNI.
    * ``pins``: SHA-256 SPKI pins (``"sha256/BASE64"``, RFC 7858 section 4.2); one must
      match the verified chain. ``pin_only=True`` trusts a matching pin alone (for a
      self-signed server), without CA or name checks. With ``servers``, both apply to
      every server; give each its own in its spec or :class:`Server` instead.
    * ``sni``: a different SNI name to send, or ``False`` for none; the name verified
      stays the authentication name.
    * ``ca_file``: PEM trust anchors replacing certifi's bundle (a private CA).
    * ``ssl_context``: a context of your own, for full control of TLS.
    * ``profile``: ``"strict"`` (default, RFC 8310) fails unless the server is
      authenticated; ``"opportunistic"`` then goes on encrypted but unauthenticated, and
      says so in :attr:`Response.authenticated`.
    * ``padding`` (True): pad queries to multiples of 128 octets (RFC 8467).
    * ``max_in_flight`` (100): queries pipelined on one connection (RFC 7766 section
      6.2.1.1); ``max_connections`` (1, RFC 7766 section 6.2.2): connections open to each
      server at once, retired ones still finishing queries included. With more than
      one, another opens only when the others are full; past both limits callers wait
      (within their timeout) instead of failing.
    * ``idle_timeout`` (10.0): seconds a connection with nothing in flight stays open.
    * ``keepalive`` (False): send the EDNS TCP keepalive option (RFC 7828) and close
      idle connections before the timeout the server offers.
    * ``resumption`` (True): resume the TLS session when reconnecting (with contexts
      dotclient builds; not with ``ssl_context``).
    * ``client_cert`` / ``client_key``: PEM files of a client certificate and its key
      (the key may be in the certificate's file), for servers that require one (mTLS);
      resumption and pins keep working. Not with ``ssl_context``.
    * ``source_address``: the local IP address (or ``(address, port)``) to connect
      from; only the server's addresses of its family are tried.
    * ``proxy``: ``"socks5://[user:pass@]host:port"`` to connect through a SOCKS5
      proxy (Tor too), or ``"socks5h://..."`` to have the proxy resolve server names;
      needs ``pip install 'dotclient[socks]'``.
    * ``happy_eyeballs_delay`` (0.25): with a server name that has several addresses,
      seconds between connection attempts (RFC 8305): IPv6 first, families
      alternating; the first TLS handshake to finish wins, the others are closed.
    * ``bootstrap``: server specs, by IP address, that look up the names of the other
      servers over DoT (cached for the answer's TTL, refreshed before it expires).
      Without it a server name is looked up with the system resolver, in cleartext.
      Presets and servers given by IP need no lookup.
    * ``fast_open`` (False): ask for TCP Fast Open (RFC 7413; RFC 7858 section 3.4) on
      Linux, so that a connection to a server the kernel holds a cookie for carries
      the ClientHello in its SYN, saving a round trip. Where the kernel does not offer
      it, connections are made as usual. Off by default: the cookie identifies this
      host to the server across connections and networks.

    When a server closes a connection with queries unanswered (idle timeout, restart, a
    limit on queries per connection), they go out again on a new one, within their own
    timeout; a server that keeps closing after the same number of answers gets no more
    than that many per connection. Each query is its own TLS record, which is what
    dnsdist needs to pipeline. A server not yet seen to pipeline that leaves a query
    unanswered behind answered ones and falls silent for 0.4 s is taken to drop
    pipelined queries: they are resent, and after a second time the client sends that
    server one query per connection at a time. A server that served this client and
    then refuses connections (a restart) is tried again after 50 ms, 100 ms, ... within
    the query's timeout.

    With several servers, a query that fails on one (connect, TLS or authentication
    failure, timeout, a bad answer, the connection lost after its resends) moves to the
    next; when every server fails, :class:`AllServersFailed` names each and its error.
    A response with any RCODE is an answer: SERVFAIL and REFUSED do not move on.

    Use it as a context manager, or call :meth:`close` when done.
    """

    def __init__(
        self,
        server: ServerSpec | None = None,
        *,
        servers: Iterable[ServerSpec] | None = None,
        strategy: str = "failover",
        server_timeout: float | None = None,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        timeout: float = DEFAULT_TIMEOUT,
        auth_name: str | None = None,
        pins: Iterable[str | bytes] | None = None,
        pin_only: bool = False,
        sni: str | bool | None = None,
        ca_file: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        profile: str = "strict",
        padding: bool | int = True,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        keepalive: bool = False,
        resumption: bool = True,
        client_cert: str | None = None,
        client_key: str | None = None,
        source_address: str | tuple[str, int] | None = None,
        proxy: str | None = None,
        happy_eyeballs_delay: float = DEFAULT_ATTEMPT_DELAY,
        bootstrap: Iterable[ServerSpec] | None = None,
        fast_open: bool = False,
    ) -> None:
        self._config = config = ClientConfig(
            server,
            servers=servers,
            strategy=strategy,
            server_timeout=server_timeout,
            backoff=backoff,
            max_backoff=max_backoff,
            timeout=timeout,
            auth_name=auth_name,
            pins=pins,
            pin_only=pin_only,
            sni=sni,
            ca_file=ca_file,
            ssl_context=ssl_context,
            profile=profile,
            padding=padding,
            max_connections=max_connections,
            max_in_flight=max_in_flight,
            idle_timeout=idle_timeout,
            keepalive=keepalive,
            resumption=resumption and ssl_context is None,
            client_cert=client_cert,
            client_key=client_key,
            source_address=source_address,
            proxy=proxy,
            happy_eyeballs_delay=happy_eyeballs_delay,
            bootstrap=bootstrap,
            fast_open=fast_open,
        )
        self._resolver: BootstrapResolver | None = None
        if config.bootstrap:
            self._resolver = BootstrapResolver(
                Client(
                    servers=config.bootstrap,
                    timeout=timeout,
                    ca_file=ca_file,
                    ssl_context=ssl_context,
                    profile=profile,
                    source_address=source_address,
                    proxy=proxy,
                    happy_eyeballs_delay=happy_eyeballs_delay,
                )
            )
        self._mutex = backend.Mutex()
        self._stats = ClientStats()
        self._pools = [
            ServerPool(config, index, self._mutex, self._stats, self._resolver)
            for index in range(len(config.servers))
        ]
        self._rotation = Rotation(
            len(config.servers), config.strategy, config.backoff, config.max_backoff
        )
        self._closed = False

    @property
    def server(self) -> Server:
        """The server this client talks to (the first, with several)."""
        return self._config.server

    @property
    def servers(self) -> tuple[Server, ...]:
        """The client's servers, in the order given."""
        return self._config.servers

    @property
    def timeout(self) -> float:
        """The default timeout of a query, in seconds."""
        return self._config.timeout

    @property
    def stats(self) -> ClientStats:
        """Counters since the client was made (a snapshot): connections opened and
        resumed, queries sent and resent, responses, unmatched responses, what is open
        and in flight now, and how each server is doing (``servers``)."""
        with self._mutex:
            now = time.monotonic()
            rotation = self._rotation
            states = tuple(
                ServerState(
                    pool.server,
                    failures=rotation.failures[index],
                    retry_in=rotation.retry_in(index, now),
                    last_error=rotation.errors[index],
                    responses=pool.responses,
                    open_connections=pool.open_connections,
                    in_flight=pool.in_flight,
                    pipelining=pool.pipelining,
                    max_in_flight=pool.max_in_flight,
                    address=pool.address,
                )
                for index, pool in enumerate(self._pools)
            )
            return dataclasses.replace(
                self._stats,
                open_connections=sum(s.open_connections for s in states),
                in_flight=sum(s.in_flight for s in states),
                unmatched=self._stats.unmatched + sum(p.unmatched for p in self._pools),
                pipelining=states[0].pipelining,
                max_in_flight=states[0].max_in_flight,
                servers=states,
            )

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
        question = self._config.question(name, rdtype, rdclass, dnssec)
        return self._exchange(question, None, self._config.deadline(timeout))

    def query(
        self, message: dns.message.Message, *, timeout: float | None = None
    ) -> Response:
        """Send any dnspython query message and return the validated response.

        It goes out under a fresh random ID (and with padding, unless turned off); the
        ``message`` object is not modified, and the response carries its ID back so
        ``message.is_response(response.message)`` holds.
        """
        query = self._config.check_message(message)
        return self._exchange(query, query, self._config.deadline(timeout))

    def resolve_many(
        self,
        names: Iterable[dns.name.Name | str],
        rdtype: dns.rdatatype.RdataType | str | int = "A",
        rdclass: dns.rdataclass.RdataClass | str | int = "IN",
        *,
        dnssec: bool = False,
        timeout: float | None = None,
        on_result: Callable[[int, Response | Exception], None] | None = None,
    ) -> list[Response | Exception]:
        """Resolve many names, pipelined, and return the outcomes in input order.

        Each outcome is a :class:`Response` or the exception that query raised (a
        :class:`DoTError`, or ``ValueError``/``TypeError`` for a bad name): one failure
        does not sink the batch. ``timeout`` applies to each query, counted from when it
        starts. ``on_result(index, outcome)`` is called as each one completes (for
        progress reports), in completion order.
        """
        if isinstance(names, (str, bytes, dns.name.Name)):
            raise TypeError("resolve_many takes an iterable of names, not one name")
        config = self._config
        # The options once, up front: a bad one is the caller's error, not each name's.
        config.question(".", rdtype, rdclass, dnssec)
        config.deadline(timeout)
        names = list(names)
        results: list[Response | Exception | None] = [None] * len(names)
        position = iter(range(len(names)))
        take = backend.Mutex()
        failures: list[Exception] = []

        def worker() -> None:
            while not failures:
                with take:
                    index = next(position, None)
                if index is None:
                    return
                outcome: Response | Exception
                try:
                    # resolve() inlined: a coroutine frame less per query in flight.
                    question = config.question(names[index], rdtype, rdclass, dnssec)
                    outcome = self._exchange(question, None, config.deadline(timeout))
                except (DoTError, ValueError, TypeError) as exc:
                    outcome = exc
                except Exception as exc:  # the client was closed under the batch
                    failures.append(exc)
                    return
                results[index] = outcome
                if on_result is not None:
                    try:
                        on_result(index, outcome)
                    except Exception as exc:  # the caller's: stop the batch, raise it
                        failures.append(exc)
                        return

        if self._closed:
            raise RuntimeError("this client has been closed")
        capacity = self._config.max_in_flight * self._config.max_connections
        if self._config.strategy == "round_robin":
            capacity *= len(self._pools)
        backend.run_workers(min(len(names), capacity), worker)
        if failures:
            raise failures[0]
        return cast("list[Response | Exception]", results)

    def _exchange(
        self, request: Request, query: dns.message.Message | None, deadline: float
    ) -> Response:
        """Send ``request`` to the servers in the rotation's order until one answers."""
        if self._closed:
            raise RuntimeError("this client has been closed")
        started = time.perf_counter()
        rotation, pools = self._rotation, self._pools
        errors: dict[Server, DoTError] | None = None
        restarts = 0
        while True:
            with self._mutex:
                now = time.monotonic()
                order = rotation.order(now)
                # RFC 7858 section 3.1: no server left that offers usable DoT lately.
                remembered = None if errors is not None else rotation.remembered(now)
            if remembered is not None:
                raise self._all_failed(
                    {p.server: e for p, e in zip(pools, remembered, strict=True)}
                )
            errors = {} if errors is None else errors
            restarting = False
            for position, index in enumerate(order):
                pool = pools[index]
                share = self._config.share(deadline, len(order) - position)
                try:
                    outcome = pool.exchange(request, deadline, share)
                except DoTError as exc:
                    failure: DoTError | ConnectFailure = exc
                else:
                    if not isinstance(outcome, ConnectFailure):
                        if rotation.failures[index]:
                            with self._mutex:
                                rotation.succeeded(index)
                        answer, tls, peer = outcome
                        return self._config.response(query, answer, started, tls, peer)
                    failure = outcome
                # A server that served this client and now refuses connections may be
                # restarting: worth another round within the deadline.
                refused = isinstance(failure, ConnectFailure) and failure.restarting
                error = failure.error if isinstance(failure, ConnectFailure) else failure
                if self._closed:
                    raise error from error.__cause__
                errors[pool.server] = error
                restarting = restarting or refused
                if self._failed(index, error, refused, position + 1 < len(order), deadline):
                    break
            pause = restart_pause(restarts, deadline, time.monotonic()) if restarting else None
            if pause is not None:
                backend.sleep(pause)
                restarts += 1
                continue
            raise self._all_failed(errors)

    def _failed(
        self, index: int, exc: DoTError, refused: bool, more: bool, deadline: float
    ) -> bool:
        """Note that server ``index`` failed a query (``refused``: while restarting),
        and count a failover when ``more`` servers follow; returns whether the
        query's time is up."""
        now = time.monotonic()
        with self._mutex:
            self._rotation.failed(index, exc, now, restarting=refused)
            if now >= deadline:
                return True
            if more:
                self._stats.failovers += 1
        return False

    def _all_failed(self, errors: dict[Server, DoTError]) -> DoTError:
        """The error a query that failed everywhere raises: the server's own with one
        server, else one naming each server tried and how it failed."""
        if len(self._pools) == 1:
            return next(iter(errors.values()))
        reasons = "; ".join(f"{server}: {error}" for server, error in errors.items())
        if len(errors) == len(self._pools):
            summary = f"all {len(errors)} servers failed"
        else:  # the time ran out before the others could be tried
            summary = f"no server answered in time ({len(errors)} of {len(self._pools)} tried)"
        return AllServersFailed(f"{summary}: {reasons}", errors=tuple(errors.items()))

    def forget_failures(self) -> None:
        """Forget which servers failed: the next query tries each one again at once.

        A server that failed to connect, handshake or authenticate is backed off
        (``backoff`` doubling to ``max_backoff``); while every server is, queries fail
        at once with the remembered errors (RFC 7858 section 3.1). Call this when you
        know better, e.g. after the network came back or the server was fixed."""
        with self._mutex:
            self._rotation.forget()

    def close_connections(self) -> None:
        """Close every connection now (queries in flight on them fail over to new
        ones). The next query reconnects, resuming the TLS session when it can."""
        for pool in self._pools:
            pool.close_connections()

    def close(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        with self._mutex:
            self._closed = True
            for pool in self._pools:
                pool.close_soon()
        for pool in self._pools:
            pool.close()
        if self._resolver is not None:
            self._resolver.client.close()

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
        servers = ", ".join(str(s) for s in self._config.servers)
        if len(self._pools) > 1:
            servers += f" ({self._config.strategy})"
        return f"<{type(self).__name__} {servers} {state}>"


def resolve(
    name: dns.name.Name | str,
    rdtype: dns.rdatatype.RdataType | str | int = "A",
    rdclass: dns.rdataclass.RdataClass | str | int = "IN",
    *,
    server: ServerSpec | None = None,
    servers: Iterable[ServerSpec] | None = None,
    strategy: str = "failover",
    server_timeout: float | None = None,
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
    client_cert: str | None = None,
    client_key: str | None = None,
    source_address: str | tuple[str, int] | None = None,
    proxy: str | None = None,
    happy_eyeballs_delay: float = DEFAULT_ATTEMPT_DELAY,
    bootstrap: Iterable[ServerSpec] | None = None,
    fast_open: bool = False,
) -> Response:
    """Resolve one name on a new connection, then close it.

    Takes the options of :class:`Client`; ``timeout`` bounds the whole call, every
    server tried included. For more than one query, keep an :class:`Client` and
    save the handshakes.
    """
    with Client(
        server,
        servers=servers,
        strategy=strategy,
        server_timeout=server_timeout,
        timeout=timeout,
        auth_name=auth_name,
        pins=pins,
        pin_only=pin_only,
        sni=sni,
        ca_file=ca_file,
        ssl_context=ssl_context,
        profile=profile,
        padding=padding,
        client_cert=client_cert,
        client_key=client_key,
        source_address=source_address,
        proxy=proxy,
        happy_eyeballs_delay=happy_eyeballs_delay,
        bootstrap=bootstrap,
        fast_open=fast_open,
    ) as client:
        return client.resolve(name, rdtype, rdclass, dnssec=dnssec)
