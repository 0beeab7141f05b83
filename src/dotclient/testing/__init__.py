"""Helpers for testing DNS-over-TLS clients against real local servers.

This package lets tests, examples and benchmarks run Debian's ``unbound``, BIND 9's
``named`` or PowerDNS ``dnsdist`` as a DNS-over-TLS (RFC 7858) server on a loopback
address, with certificates issued at run time by a throwaway certificate authority::

    from dotclient.testing import TestCA, UnboundServer

    ca = TestCA()
    cert = ca.issue("dot.test", "127.0.0.1")
    with UnboundServer(cert) as server:
        ...  # query server.address, server.port; trust ca.cert_pem; pin cert.spki_pin

:class:`NamedServer` and :class:`DnsdistServer` (a DoT frontend in front of a
plain-DNS named) take the same certificate and have the same ``start``/``stop``/
``restart``, ``port``, ``address``, ``log`` and ``config_text`` interface.

Each server answers the small zone in :data:`DEFAULT_ZONE` and refuses every
other name, so it never contacts the network.

Only the standard library, ``cryptography`` and ``dnspython`` are needed; a
server's binary is looked up when the server object is created
(:class:`ServerNotFound` if it is missing).
"""

from ._bind import NamedServer
from ._certs import IssuedCert, TestCA, self_signed_cert
from ._delayed import DelayedServer
from ._dnsdist import DnsdistServer
from ._nodelay import build_nodelay_preload
from ._process import ServerNotFound
from ._unbound import UnboundNotFound, UnboundServer
from ._zone import DEFAULT_ZONE, DEFAULT_ZONE_ORIGIN

__all__ = [
    "DEFAULT_ZONE",
    "DEFAULT_ZONE_ORIGIN",
    "DelayedServer",
    "DnsdistServer",
    "IssuedCert",
    "NamedServer",
    "ServerNotFound",
    "TestCA",
    "UnboundNotFound",
    "UnboundServer",
    "build_nodelay_preload",
    "self_signed_cert",
]
