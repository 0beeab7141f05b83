"""dotclient: DNS over TLS (RFC 7858) for Python, authenticated by default (RFC 8310).

    >>> import dotclient
    >>> r = dotclient.resolve("example.com", "AAAA", server="1.1.1.1")
    >>> r.rcode, r.addresses()

See ``docs/guide.md`` for servers, authentication and pinning, profiles, errors and
timeouts.
"""

from ._async.client import AsyncClient, aresolve
from ._config import ClientOptions
from ._exceptions import (
    AllServersFailed,
    AuthenticationError,
    ConnectError,
    ConnectionLost,
    DoTError,
    InvalidServerSpec,
    NetworkError,
    ProtocolError,
    RcodeError,
    Timeout,
    TLSError,
)
from ._response import Response
from ._server import PRESETS, Server, parse_server
from ._stats import ClientStats, ServerState
from ._sync.client import Client, resolve
from ._tls import TLSInfo

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "AllServersFailed",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ClientOptions",
    "ClientStats",
    "ConnectError",
    "ConnectionLost",
    "DoTError",
    "InvalidServerSpec",
    "NetworkError",
    "ProtocolError",
    "RcodeError",
    "Response",
    "Server",
    "ServerState",
    "TLSError",
    "TLSInfo",
    "Timeout",
    "aresolve",
    "parse_server",
    "resolve",
]
