"""What the sync and async clients share: options, query building, responses.

No I/O here. ``dotclient._async.client`` (and the ``_sync`` code generated from it)
only move bytes and wait; everything they decide comes from :class:`ClientConfig`.
"""

from __future__ import annotations

import math
import ssl
import time
from collections.abc import Iterable

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from ._exceptions import Timeout
from ._protocol import DEFAULT_PADDING_BLOCK, MAX_PADDING_BLOCK, make_query
from ._response import Response
from ._server import Server, parse_server
from ._tls import TLSInfo, TLSPolicy

__all__ = ["DEFAULT_TIMEOUT", "ClientConfig", "ServerSpec", "remaining"]

#: Seconds a query may take by default: connect, handshake and answer together.
DEFAULT_TIMEOUT = 5.0

ServerSpec = str | Server


def _check_timeout(timeout: float | None, default: float) -> float:
    if timeout is None:
        return default
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive, finite number of seconds, not {timeout}")
    return float(timeout)


def remaining(deadline: float, server: Server, what: str = "the answer") -> float:
    """Seconds left until ``deadline`` (``time.monotonic()`` based); raise
    :class:`Timeout` if none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise Timeout(f"timed out waiting for {what} from {server}", server=server)
    return left


class ClientConfig:
    """Validated client options. Every check happens here, before any I/O."""

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
        self.server = parse_server(server, auth_name=auth_name, pins=pins)
        self.timeout = _check_timeout(timeout, DEFAULT_TIMEOUT)
        if padding is True:
            self.padding = DEFAULT_PADDING_BLOCK
        elif padding is False or padding is None:
            self.padding = 0
        elif isinstance(padding, int) and 0 <= padding <= MAX_PADDING_BLOCK:
            self.padding = padding
        else:
            raise ValueError(
                f"padding must be True, False or a block size 0-{MAX_PADDING_BLOCK}, "
                f"not {padding!r}"
            )
        if ca_file is not None:
            ca_file = str(ca_file)
        self.tls = TLSPolicy(
            self.server,
            ca_file=ca_file,
            ssl_context=ssl_context,
            sni=sni,
            pin_only=pin_only,
            profile=profile,
        )

    def deadline(self, timeout: float | None) -> float:
        """The ``time.monotonic()`` instant by which a query started now must end."""
        return time.monotonic() + _check_timeout(timeout, self.timeout)

    def make_query(
        self,
        name: dns.name.Name | str,
        rdtype: dns.rdatatype.RdataType | str | int,
        rdclass: dns.rdataclass.RdataClass | str | int,
        dnssec: bool,
    ) -> dns.message.QueryMessage:
        """Build the query for :meth:`resolve`."""
        if not isinstance(name, (str, dns.name.Name)):
            raise TypeError(f"name must be a str or dns.name.Name, not {type(name).__name__}")
        return make_query(name, rdtype, rdclass, dnssec=dnssec, padding=self.padding)

    @staticmethod
    def check_message(message: object) -> dns.message.Message:
        """Refuse anything but a dnspython query message, before any I/O."""
        if not isinstance(message, dns.message.Message):
            raise TypeError(f"query needs a dns.message.Message, not {type(message).__name__}")
        if len(message.question) != 1:
            raise ValueError(f"a query needs exactly one question, not {len(message.question)}")
        return message

    def response(
        self,
        query: dns.message.Message,
        message: dns.message.Message,
        started: float,
        tls: TLSInfo,
    ) -> Response:
        """Wrap a validated answer. The wire ID was ours; give the caller's back so
        ``query.is_response(response.message)`` holds."""
        message.id = query.id
        return Response(message, self.server, time.perf_counter() - started, tls)
