"""PowerDNS dnsdist as a DoT frontend on loopback, in front of a plain-DNS backend."""

from __future__ import annotations

import os

from ._bind import NamedServer
from ._certs import IssuedCert
from ._net import hostport
from ._process import ServerProcess
from ._zone import DEFAULT_ZONE, DEFAULT_ZONE_ORIGIN


class DnsdistServer(ServerProcess):
    """PowerDNS dnsdist as a DoT frontend on loopback, in front of a plain-DNS backend.

    dnsdist listens for DNS over TLS (``addTLSLocal``) on ``host`` and ``port``
    (0: picked at the first start, then kept), presents ``cert.chain_pem`` and
    forwards every query to *backend*, a ``(host, port)`` plain DNS server. With
    *backend* ``None`` (default) it starts its own :class:`NamedServer` on ``host``
    serving ``zone`` with a plain listener (``named`` must then be installed too),
    stops it in :meth:`stop` and keeps it running across :meth:`restart`.

    Options:
        max_queries_per_connection: ``setMaxTCPQueriesPerConnection(N)``: dnsdist
            closes a client connection once it has served N queries (dnsdist
            1.7.3 answers N + 1 on a DoT connection, then closes it at once).
            ``None``: the default (no limit).
        max_in_flight: the ``maxInFlight`` option of ``addTLSLocal``: how many
            queries from one connection dnsdist processes at once (and may answer
            out of order). ``None``: the default (0: one at a time, in order).
            With the default, dnsdist 1.7 answers only the first of several
            queries that arrive in one TLS record and leaves the rest unread
            until the connection times out.
        extra_config: Lua lines appended to the configuration, e.g.
            ``"setTCPRecvTimeout(5)"``.

    The configuration turns off security polling (a DNS lookup of dnsdist's
    version status) and allows only loopback clients; dnsdist runs supervised,
    without console, logging to stdout (read it with :attr:`log`).

    Raises:
        ServerNotFound: (from the constructor) the dnsdist binary, or named when
            no *backend* is given, is missing.
        ValueError: *host* is not an IP address literal.
    """

    _name = "dnsdist"
    _package = "dnsdist"
    _ready_marker = "Listening on"

    def __init__(
        self,
        cert: IssuedCert,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        backend: tuple[str, int] | None = None,
        max_queries_per_connection: int | None = None,
        max_in_flight: int | None = None,
        zone: str = DEFAULT_ZONE,
        zone_origin: str = DEFAULT_ZONE_ORIGIN,
        extra_config: str = "",
        dnsdist: str | None = None,
        named: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            cert,
            host=host,
            port=port,
            zone=zone,
            zone_origin=zone_origin,
            extra_config=extra_config,
            binary=dnsdist,
            startup_timeout=startup_timeout,
        )
        self.max_queries_per_connection = max_queries_per_connection
        self.max_in_flight = max_in_flight
        self.backend_server: NamedServer | None = None
        """The NamedServer this server started as its backend, if any."""
        if backend is None:
            self.backend_server = NamedServer(
                cert,
                host=host,
                plain_port=0,
                zone=zone,
                zone_origin=zone_origin,
                named=named,
                startup_timeout=startup_timeout,
            )
        self._backend = backend

    @property
    def backend(self) -> tuple[str, int]:
        """The backend's ``(host, port)`` (port 0 until an own backend first started)."""
        if self._backend is not None:
            return self._backend
        assert self.backend_server is not None
        return (self.backend_server.host, self.backend_server.plain_port or 0)

    def _before_start(self) -> None:
        if self.backend_server is not None and not self.backend_server.running:
            self.backend_server.start()

    def _after_stop(self) -> None:
        if self.backend_server is not None:
            self.backend_server.stop()

    def _command(self, conf: str) -> list[str]:
        return [self.binary, "--supervised", "--disable-syslog", "-C", conf]

    def _config(self, tmpdir: str) -> str:
        cert_file = os.path.join(tmpdir, "server.pem")
        key_file = os.path.join(tmpdir, "server.key")
        options = "" if self.max_in_flight is None else f", {{maxInFlight={self.max_in_flight}}}"
        lines = [
            "-- dotclient.testing: a DoT frontend for a loopback backend",
            'setSecurityPollSuffix("")',
            'setACL({"127.0.0.0/8", "::1/128"})',
            f'addTLSLocal("{self._hostport()}", "{cert_file}", "{key_file}"{options})',
            f'newServer({{address="{hostport(*self.backend)}"}})',
        ]
        if self.max_queries_per_connection is not None:
            lines.append(f"setMaxTCPQueriesPerConnection({self.max_queries_per_connection})")
        lines += self.extra_config.splitlines()
        return "\n".join(lines) + "\n"
