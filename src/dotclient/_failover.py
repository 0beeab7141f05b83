"""Which server a query goes to first, and which servers to avoid for a while.

No I/O and no clock: the caller passes ``now`` (``time.monotonic()``), as the protocol
core does. The client calls :meth:`Rotation.order` for each query, then
:meth:`Rotation.failed` or :meth:`Rotation.succeeded` for each server it tried, under its
own lock.

RFC 7858 section 3.1 asks clients to remember servers that failed (timeouts, refused
connections, failed handshakes) and not to ask them again for a reasonable period ("such
as one hour"). Here that period starts at ``backoff`` seconds and doubles with each
further failure in a row, up to ``max_backoff`` (an hour by default), so one refused
connect during a restart costs a second, and a server down for good is left alone for
the hour the RFC suggests. What the memory does, in both profiles (neither ever falls
back to cleartext, so "not asking" a server can only mean using another or failing):

* a backed-off server goes to the end of the order, so a query still tries it when
  every other server has failed too;
* when *every* server is backed off after failing to connect, handshake or
  authenticate (it does not offer DoT that we can use), a query fails at once with the
  remembered errors and sends nothing (:meth:`Rotation.remembered`), until a backoff
  ends or the caller calls :meth:`Rotation.forget` (``client.forget_failures()``). A
  server that handshook and then failed a query (a timeout, a lost connection, a bad
  answer) does DoT: it is tried last, never skipped; so is one that served this
  client and now refuses connections (a restart, retried within the query's time),
  and one whose connect timed out (not told apart from a slow answer here).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._exceptions import ConnectError, ConnectionLost, DoTError, TLSError

__all__ = ["STRATEGIES", "Rotation"]

_ONLY = (0,)

#: The ways a client with several servers spreads its queries.
STRATEGIES = ("failover", "round_robin")


class Rotation:
    """Server order per query, with exponential backoff for servers that fail.

    ``strategy`` is ``"failover"`` (every query starts at the first server that is not
    backed off, in the order given) or ``"round_robin"`` (each query starts one server
    further on, skipping backed-off ones).
    """

    def __init__(self, count: int, strategy: str, backoff: float, max_backoff: float) -> None:
        self.count = count
        self.strategy = strategy
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._next = 0
        self.failures = [0] * count
        self.until = [0.0] * count
        self.errors: list[DoTError | None] = [None] * count
        # The last failure was to connect, handshake or authenticate (see remembered).
        self.unusable = [False] * count

    def order(self, now: float) -> Sequence[int]:
        """Server indices in the order a query started ``now`` tries them: those not
        backed off first (by strategy), then the backed-off ones, soonest back first."""
        if self.count == 1:
            return _ONLY
        start = 0
        if self.strategy == "round_robin":
            start = self._next
            self._next = (start + 1) % self.count
        ring = [(start + i) % self.count for i in range(self.count)]
        ready = [i for i in ring if self.until[i] <= now]
        if len(ready) == self.count:
            return ready
        waiting = sorted((i for i in ring if self.until[i] > now), key=self.until.__getitem__)
        return ready + waiting

    def failed(self, index: int, error: DoTError, now: float, *, restarting: bool = False) -> None:
        """Server ``index`` failed a query ``now``. While it is backed off, further
        failures (the other queries that were in flight there) do not lengthen it.
        ``restarting``: a server that served this client refused a connection, which a
        restart does; it is retried within the query's time and not taken for one that
        does not offer DoT."""
        self.errors[index] = error
        self.unusable[index] = (
            isinstance(error, (ConnectError, TLSError))
            and not isinstance(error, ConnectionLost)
            and not restarting
        )
        if self.until[index] > now:
            return
        self.failures[index] += 1
        delay = self.backoff * 2.0 ** min(self.failures[index] - 1, 60)
        self.until[index] = now + min(delay, self.max_backoff)

    def succeeded(self, index: int) -> None:
        """Server ``index`` answered: it is healthy again."""
        if self.failures[index] or self.until[index]:
            self.failures[index] = 0
            self.until[index] = 0.0
            self.errors[index] = None
            self.unusable[index] = False

    def remembered(self, now: float) -> list[DoTError] | None:
        """When every server is backed off after failing to connect, handshake or
        authenticate: the errors a query started ``now`` fails with at once, without
        trying them (RFC 7858 section 3.1), each naming its server and when it will be
        tried again. None when some server may be tried."""
        if False in self.unusable:  # asked on every query: the common answer first
            return None
        if not all(until > now for until in self.until):
            return None
        remembered: list[DoTError] = []
        for index, error in enumerate(self.errors):
            assert error is not None
            wait = self.until[index] - now
            again = type(error)(
                f"{error} (remembered: not tried again for {wait:.0f} s, RFC 7858 section "
                "3.1; client.forget_failures() retries at once)",
                server=error.server,
            )
            again.__cause__ = error
            remembered.append(again)
        return remembered

    def forget(self) -> None:
        """Forget every failure: the next query tries every server as a new client does."""
        self.failures = [0] * self.count
        self.until = [0.0] * self.count
        self.errors = [None] * self.count
        self.unusable = [False] * self.count

    def retry_in(self, index: int, now: float) -> float:
        """Seconds until server ``index`` is no longer backed off."""
        return max(self.until[index] - now, 0.0)
