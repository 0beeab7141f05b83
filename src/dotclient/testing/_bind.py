"""BIND 9's named as an authoritative DoT server on loopback."""

from __future__ import annotations

import os

from ._certs import IssuedCert
from ._process import ServerProcess
from ._zone import DEFAULT_ZONE, DEFAULT_ZONE_ORIGIN


class NamedServer(ServerProcess):
    """BIND 9's ``named`` (9.18+) as an authoritative DoT server on loopback.

    Like :class:`UnboundServer`: DNS over TLS on ``host`` and ``port`` (0: picked at
    the first start, then kept), presenting ``cert.chain_pem``, serving ``zone``
    as the primary zone ``zone_origin``. Recursion is off, so names outside the
    zone are REFUSED (also ``other.test.``: named has no built-in local zones
    for them); in-zone CNAME chains are followed in the answer. Nothing is
    sent off the host: no NOTIFY, no DNSSEC trust-anchor refresh, no rndc channel.

    *plain_port* adds a plain DNS (UDP and TCP) listener on ``host``: ``None``
    (default) for none, 0 to pick a free port at the first start. It is what a
    :class:`DnsdistServer` uses as its backend. *extra_config* is appended
    inside named's ``options { }`` block (each statement ends with ``;``).

    named runs in the foreground (``-g``: all logging to stderr, read it with
    :attr:`log`) as the calling user, root included.

    Raises:
        ServerNotFound: (from the constructor) the named binary is missing.
        ValueError: *host* is not an IP address literal.
    """

    _name = "named"
    _package = "bind9"
    _ready_marker = " running\n"  # the last line of its startup ("running on ..." is not)
    _port_fields = ("port", "plain_port")

    def __init__(
        self,
        cert: IssuedCert,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        plain_port: int | None = None,
        zone: str = DEFAULT_ZONE,
        zone_origin: str = DEFAULT_ZONE_ORIGIN,
        extra_config: str = "",
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
            binary=named,
            startup_timeout=startup_timeout,
        )
        self.plain_port = plain_port

    def _command(self, conf: str) -> list[str]:
        return [self.binary, "-g", "-c", conf]

    def _config(self, tmpdir: str) -> str:
        listen, no_listen = (
            ("listen-on-v6", "listen-on")
            if self._ip.version == 6
            else (
                "listen-on",
                "listen-on-v6",
            )
        )
        lines = [
            "options {",
            f'    directory "{tmpdir}";',
            "    pid-file none;",
            f'    session-keyfile "{os.path.join(tmpdir, "session.key")}";',
            f"    {listen} port {self.port} tls dot {{ {self.host}; }};",
        ]
        if self.plain_port is not None:
            lines.append(f"    {listen} port {self.plain_port} {{ {self.host}; }};")
        lines += [
            f"    {no_listen} {{ none; }};",
            "    recursion no;",
            "    allow-query { any; };",
            "    notify no;",
            "    dnssec-validation no;",
        ]
        lines += [f"    {line}" for line in self.extra_config.splitlines()]
        lines += [
            "};",
            "tls dot {",
            f'    cert-file "{os.path.join(tmpdir, "server.pem")}";',
            f'    key-file "{os.path.join(tmpdir, "server.key")}";',
            "};",
            "controls { };",
            f'zone "{self.zone_origin}" {{',
            "    type primary;",
            f'    file "{os.path.join(tmpdir, "zone.db")}";',
            "};",
        ]
        return "\n".join(lines) + "\n"
