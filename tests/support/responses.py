"""The server and TLS details the pure tests build a ``Response`` with."""

from __future__ import annotations

from dotclient import TLSInfo, parse_server

#: A server no test reaches: the address is TEST-NET-1 (RFC 5737).
SERVER = parse_server("192.0.2.53#dot.test")

#: An authenticated TLS 1.3 connection, with one peer pin.
TLS = TLSInfo(
    version="TLSv1.3",
    cipher="TLS_AES_256_GCM_SHA384",
    alpn="dot",
    authenticated=True,
    auth_error=None,
    peer_pins=(b"\x01" * 32,),
)
