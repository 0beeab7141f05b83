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
import sys
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import cast

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from .._backends import _sync as backend
from .._config import OPTIONS_HELP, ClientConfig, ClientOptions, ServerSpec
from .._exceptions import AllServersFailed, DoTError
from .._failover import Rotation
from .._policy import ConnectFailure, restart_pause
from .._question import check_message, make_question
from .._response import Response, make_response
from .._server import Server
from .._stats import ClientStats, ServerState
from .bootstrap import BootstrapResolver
from .connection import Connection, Request
from .pool import ServerPool

# At run time too, for typing.get_type_hints() (autodoc, validators).
if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover - 3.10
    from typing_extensions import Unpack

__all__ = ["Client", "Connection", "ServerPool", "resolve"]


class Client:
    """A DoT client that keeps its connections and pipelines queries.

    ``server``, the one argument that may be positional, is a spec string such as
    ``"9.9.9.9#dns.quad9.net"`` or a :class:`Server` (see ``servers`` below). The other
    options are keyword-only: the fields of :class:`~dotclient._config.ClientConfig`,
    listed with their defaults and documentation at the end of this docstring;
    :class:`~dotclient.ClientOptions` types them for mypy.

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

    __doc__ = (__doc__ or "") + OPTIONS_HELP

    def __init__(self, server: ServerSpec | None = None, **options: Unpack[ClientOptions]) -> None:
        self._config = config = ClientConfig.from_options(server, **options)
        self._resolver: BootstrapResolver | None = None
        if config.bootstrap:
            self._resolver = BootstrapResolver(Client(**config.bootstrap_options()))
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
        question = make_question(name, rdtype, rdclass, dnssec)
        return self._exchange(question, None, self._config.deadline(timeout))

    def query(
        self, message: dns.message.Message, *, timeout: float | None = None
    ) -> Response:
        """Send any dnspython query message and return the validated response.

        It goes out under a fresh random ID (and with padding, unless turned off); the
        ``message`` object is not modified, and the response carries its ID back so
        ``message.is_response(response.message)`` holds.
        """
        query = check_message(message)
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
        make_question(".", rdtype, rdclass, dnssec)
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
                    question = make_question(names[index], rdtype, rdclass, dnssec)
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
        backend.run_workers(min(len(names), config.capacity()), worker)
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
        # Made on the first failure (a dict less per query in flight when none fails),
        # so None also means the first round: a later round follows a failure.
        errors: dict[Server, DoTError] | None = None
        restarts = 0
        while True:
            with self._mutex:
                now = time.monotonic()
                order = rotation.order(now)
                # RFC 7858 section 3.1: no server left that offers usable DoT lately.
                remembered = rotation.remembered(now) if errors is None else None
            if remembered is not None:
                raise self._all_failed(
                    {p.server: e for p, e in zip(pools, remembered, strict=True)}
                )
            restarting = False
            position = 0  # counted by hand: an enumerate object less per query in flight
            for index in order:
                pool = pools[index]
                share = self._config.share(deadline, len(order) - position)
                position += 1
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
                        return make_response(query, answer, started, tls, peer)
                    failure = outcome
                # A server that served this client and now refuses connections may be
                # restarting: worth another round within the deadline.
                refused = isinstance(failure, ConnectFailure) and failure.restarting
                error = failure.error if isinstance(failure, ConnectFailure) else failure
                if self._closed:
                    raise error from error.__cause__
                if errors is None:
                    errors = {}
                errors[pool.server] = error
                restarting = restarting or refused
                if self._failed(index, error, refused, position < len(order), deadline):
                    break
            pause = restart_pause(restarts, deadline, time.monotonic()) if restarting else None
            if pause is not None:
                backend.sleep(pause)
                restarts += 1
                continue
            assert errors is not None  # no answer in the round: one server failed at least
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
    dnssec: bool = False,
    **options: Unpack[ClientOptions],
) -> Response:
    """Resolve one name on a new connection, then close it.

    Takes the options of :class:`Client`; ``timeout`` bounds the whole call, every
    server tried included. For more than one query, keep an :class:`Client` and
    save the handshakes.
    """
    with Client(server, **options) as client:
        return client.resolve(name, rdtype, rdclass, dnssec=dnssec)
