"""The exceptions dotclient raises.

Everything that goes wrong while talking to a server is a :class:`DoTError`::

    DoTError
    ├── NetworkError             the network failed the query: no connection, or a lost one
    │   ├── ConnectError         the TCP connection could not be made
    │   └── ConnectionLost       the server closed or reset it before answering
    ├── TLSError                 the TLS handshake failed, or the server offered TLS < 1.2
    │   └── AuthenticationError  certificate chain, name or SPKI pin did not check out
    ├── Timeout                  the query's time ran out (also a built-in TimeoutError)
    ├── ProtocolError            the server broke RFC 7858 / RFC 1035 framing or matching
    ├── AllServersFailed         a client with several servers: each one tried failed
    └── RcodeError               raised by Response.raise_for_rcode() only

Using the API wrongly is not a DoTError: a malformed server specification or option
raises :class:`InvalidServerSpec` (a :class:`ValueError`) or another ``ValueError`` /
``TypeError`` before any I/O, as the standard library does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._response import Response

__all__ = [
    "AllServersFailed",
    "AuthenticationError",
    "ConnectError",
    "ConnectionLost",
    "DoTError",
    "InvalidServerSpec",
    "NetworkError",
    "ProtocolError",
    "RcodeError",
    "TLSError",
    "Timeout",
]


class DoTError(Exception):
    """Base class of every error met while querying a DoT server.

    ``server`` is the :class:`~dotclient.Server` involved, when known.
    """

    server: Any = None

    def __init__(self, message: str, *, server: Any = None) -> None:
        super().__init__(message)
        if server is not None:
            self.server = server


class NetworkError(DoTError):
    """The network failed the query: a connection could not be made
    (:class:`ConnectError`), or was lost before the answer (:class:`ConnectionLost`)."""


class ConnectError(NetworkError):
    """The TCP connection to the server could not be made (refused, unreachable, no
    address); a connection lost afterwards is a :class:`ConnectionLost`."""


class ConnectionLost(NetworkError):
    """The server closed or reset the connection before the answer arrived (a TLS
    error after the handshake, such as an alert or a bad record, counts as one)."""


class TLSError(DoTError):
    """The TLS handshake failed or negotiated something we refuse (TLS < 1.2)."""


class AuthenticationError(TLSError):
    """The server could not be authenticated (RFC 8310): untrusted certificate chain,
    name or IP not in the certificate, or no SPKI pin matched (RFC 7858 section 4.2)."""


if sys.version_info >= (3, 11):
    _TimeoutBase = TimeoutError  # asyncio.TimeoutError is TimeoutError since 3.11
else:  # pragma: no cover - Python 3.10

    class _TimeoutBase(TimeoutError, asyncio.TimeoutError):
        pass


class Timeout(DoTError, _TimeoutBase):
    """The query did not complete within its ``timeout`` (connect, handshake and answer
    together). Also a built-in :class:`TimeoutError` (and ``asyncio.TimeoutError``), so
    ``except TimeoutError`` works."""


class ProtocolError(DoTError):
    """The server broke the protocol: a malformed frame or DNS message, or a response
    whose ID, QR bit or question does not match the query (RFC 7766, RFC 5452)."""


class AllServersFailed(DoTError):
    """A client with several servers tried each one it had time for, and each failed.

    ``errors`` pairs every server tried, in the order tried, with the :class:`DoTError`
    it failed with; the message names them all. A client with one server raises that
    server's error itself.
    """

    errors: tuple[tuple[Any, DoTError], ...] = ()

    def __init__(
        self,
        message: str,
        *,
        server: Any = None,
        errors: tuple[tuple[Any, DoTError], ...] = (),
    ) -> None:
        super().__init__(message, server=server)
        if errors:
            self.errors = tuple(errors)


class RcodeError(DoTError):
    """Raised by :meth:`Response.raise_for_rcode` when the RCODE is not NOERROR.

    ``response`` holds the :class:`~dotclient.Response`; ``rcode`` its RCODE.
    """

    response: Response | None = None

    def __init__(self, message: str, *, server: Any = None, response: Response | None = None):
        super().__init__(message, server=server)
        if response is not None:
            self.response = response

    @property
    def rcode(self) -> Any:
        """The response's :class:`dns.rcode.Rcode`, or None if unknown."""
        return None if self.response is None else self.response.rcode


class InvalidServerSpec(ValueError):
    """A server specification could not be parsed; the message names the bad part."""


_DOING = {
    "resolve": "looking up the address of",
    "connect": "connecting to",
    "handshake": "in the TLS handshake with",
    "send": "sending the query to",
    "receive": "waiting for the answer from",
}


# What OpenSSL's terse reasons for a failed handshake usually mean for a DoT client.
_TLS_HINTS = {
    "TLSV1_ALERT_PROTOCOL_VERSION": "the server offers only TLS below 1.2, which is refused",
    "UNSUPPORTED_PROTOCOL": "the server offers only TLS below 1.2, which is refused",
    "WRONG_VERSION_NUMBER": "the server did not answer in TLS: plain DNS on this port?",
    "RECORD_LAYER_FAILURE": "the server did not answer in TLS: plain DNS on this port?",
}


# A plain-DNS TCP port takes the ClientHello's first bytes for a length prefix and waits
# for the rest: a handshake timeout, not an error, is what it gives.
PLAIN_DNS_HINT = " (no TLS answer: plain DNS on this port?)"


@contextlib.contextmanager
def map_io_errors(phase: str, server: Any) -> Iterator[None]:
    """Turn the stdlib's socket and TLS exceptions raised in ``phase`` into ours.

    ``phase`` is ``"connect"``, ``"handshake"``, ``"send"`` or ``"receive"``; it picks
    the class for a plain :class:`OSError` and goes into the message.
    """
    try:
        yield
    except DoTError:
        raise
    except ssl.SSLCertVerificationError as exc:
        detail = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc
        raise AuthenticationError(
            f"certificate verification failed for {server}: {detail}", server=server
        ) from exc
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
        # The peer closed the TCP connection without a TLS close_notify: in the
        # handshake too (a server going down, as asyncio reports it), so a client can
        # treat it like the reset it often is.
        raise ConnectionLost(
            f"connection lost {_DOING.get(phase, phase)} {server}: the server closed it",
            server=server,
        ) from exc
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if phase in ("send", "receive"):
            # After the handshake, a TLS error (an alert, a bad record) ends the
            # connection like a reset: the queries on it may go out again elsewhere.
            raise ConnectionLost(
                f"connection lost {_DOING[phase]} {server}: TLS error {reason}", server=server
            ) from exc
        hint = _TLS_HINTS.get(reason)
        detail = f"{reason} ({hint})" if hint else reason
        raise TLSError(f"TLS failed with {server}: {detail}", server=server) from exc
    except (TimeoutError, asyncio.TimeoutError) as exc:
        doing = _DOING.get(phase, f"during {phase} with")
        hint = PLAIN_DNS_HINT if phase == "handshake" else ""
        raise Timeout(f"timed out {doing} {server}{hint}", server=server) from exc
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
        raise ConnectionLost(
            f"connection lost {_DOING.get(phase, phase)} {server}: {exc.strerror or exc}",
            server=server,
        ) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        if phase == "connect":
            raise ConnectError(f"cannot connect to {server}: {reason}", server=server) from exc
        if phase == "resolve":
            raise ConnectError(f"cannot look up {server}: {reason}", server=server) from exc
        raise ConnectionLost(
            f"connection failed {_DOING.get(phase, phase)} {server}: {reason}", server=server
        ) from exc
