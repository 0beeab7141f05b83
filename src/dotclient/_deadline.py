"""Time for a query: one absolute deadline, the time left of it, a server's share.

As dnspython's ``dns.query`` does with its expiration, a query computes one deadline
(``time.monotonic()`` based) when it starts, and every wait below it takes the time
left (:func:`remaining`), so a timeout covers the whole query.
"""

from __future__ import annotations

import math
import time

from ._exceptions import Timeout
from ._server import Server

__all__ = ["MAX_SECONDS", "check_seconds", "deadline", "remaining", "share"]

#: The longest timeout, idle timeout or backoff accepted, in seconds (a day): every wait
#: must fit the system calls that do it (poll() takes at most 2**31 - 1 milliseconds).
MAX_SECONDS = 86_400.0


def check_seconds(seconds: float | None, default: float, what: str = "timeout") -> float:
    """``seconds`` as a float, ``default`` for None; raise ``TypeError`` or
    ``ValueError`` (naming ``what``) unless it is a positive, finite number of seconds
    up to :data:`MAX_SECONDS`."""
    if seconds is None:
        return default
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{what} must be a positive, finite number of seconds, not {seconds}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{what} must be at most {MAX_SECONDS:.0f} seconds, not {seconds}")
    return float(seconds)


def deadline(timeout: float | None, default: float) -> float:
    """The ``time.monotonic()`` instant by which a query started now must end:
    ``timeout`` seconds from now (``default`` for None), checked as :func:`check_seconds`
    does."""
    return time.monotonic() + check_seconds(timeout, default)


def remaining(deadline: float, server: Server, what: str = "the answer") -> float:
    """Seconds left until ``deadline`` (``time.monotonic()`` based); raise
    :class:`Timeout` if none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise Timeout(f"timed out waiting for {what} from {server}", server=server)
    return left


def share(deadline: float, untried: int, server_timeout: float | None) -> float | None:
    """Seconds the next server may take for a query when ``untried`` servers (counting
    it) are left to try: ``server_timeout``, or by default the time left shared evenly;
    None for all the time left (the last server)."""
    if untried <= 1:
        return None
    if server_timeout is not None:
        return server_timeout
    return max(deadline - time.monotonic(), 0.0) / untried
