"""Debian's unbound as a DoT server on loopback."""

from __future__ import annotations

import os

from ._certs import IssuedCert
from ._nodelay import build_nodelay_preload
from ._process import ServerNotFound, ServerProcess
from ._zone import DEFAULT_ZONE, DEFAULT_ZONE_ORIGIN


class UnboundNotFound(ServerNotFound):
    """The ``unbound`` binary was not found."""


class UnboundServer(ServerProcess):
    """Debian's unbound as a DoT server on loopback; a context manager.

    The server listens for DNS over TLS on ``host`` (an IP literal) and
    ``port`` (0: a free port is picked when the server first starts and kept
    across :meth:`restart`), presents ``cert.chain_pem``, answers ``zone``
    (master-file text, default :data:`DEFAULT_ZONE`, whose origin is
    ``zone_origin``) authoritatively and refuses every other name without
    contacting the network. *extra_config* is appended at the end of
    unbound's ``server:`` clause, so it can add or override options
    (e.g. ``"incoming-num-tcp: 100"``). *plain_port* adds a plain DNS (UDP and
    TCP) listener on ``host``: ``None`` (default) for none, 0 to pick a free port at
    the first start (e.g. for a TLS terminator in front of it).

    Use as ``with UnboundServer(cert) as server: ...`` or call :meth:`start`
    and :meth:`stop`. A server that is never stopped is killed when it is
    garbage collected or when the interpreter exits, and by a watchdog process
    (which also removes its directory) when the process that started it dies
    without exiting cleanly (SIGTERM, SIGKILL).

    Latency note: unbound does not set ``TCP_NODELAY`` on DoT connections, and
    with TLS 1.3 it writes its session tickets just before the first response,
    so the first response on each new TLS 1.3 connection waits for the
    client's delayed ACK (about 40 ms on Linux). dotclient avoids the wait with
    ``TCP_QUICKACK``; other clients (dnspython, openssl s_client) pay it.
    ``nodelay=True`` runs unbound with :func:`build_nodelay_preload`'s shim, so
    that it sets ``TCP_NODELAY`` on every connection (needs a C compiler;
    :class:`ServerNotFound` at start without one); benchmarks use it.

    Raises:
        UnboundNotFound: (from the constructor) the unbound binary is missing.
        ValueError: *host* is not an IP address literal.
    """

    _name = "unbound"
    _package = "unbound"
    _not_found = UnboundNotFound
    _ready_marker = "start of service"
    _log_files = ("stderr.txt", "unbound.log")
    _bind_errors = ("can't bind socket", "Address already in use", "could not open ports")
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
        unbound: str | None = None,
        startup_timeout: float = 10.0,
        nodelay: bool = False,
    ) -> None:
        self.nodelay = nodelay
        super().__init__(
            cert,
            host=host,
            port=port,
            zone=zone,
            zone_origin=zone_origin,
            extra_config=extra_config,
            binary=unbound,
            startup_timeout=startup_timeout,
        )
        self.plain_port = plain_port

    @property
    def unbound(self) -> str:
        """The path of the unbound binary."""
        return self.binary

    def _command(self, conf: str) -> list[str]:
        return [self.binary, "-d", "-c", conf]

    def _environment(self, tmpdir: str) -> dict[str, str] | None:
        if not self.nodelay:
            return None
        shim = build_nodelay_preload(tmpdir)
        preload = " ".join(p for p in (shim, os.environ.get("LD_PRELOAD", "")) if p)
        return {**os.environ, "LD_PRELOAD": preload}

    def _config(self, tmpdir: str) -> str:
        v6 = self._ip.version == 6
        lines = [
            "remote-control:",
            "    control-enable: no",
            "server:",
            f'    directory: "{tmpdir}"',
            '    username: ""',
            '    chroot: ""',
            '    pidfile: ""',
            f'    logfile: "{os.path.join(tmpdir, "unbound.log")}"',
            "    use-syslog: no",
            "    log-time-ascii: yes",
            "    verbosity: 1",
            "    num-threads: 1",
            f"    interface: {self.host}@{self.port}",
            *(
                [f"    interface: {self.host}@{self.plain_port}"]
                if self.plain_port is not None
                else []
            ),
            f"    tls-port: {self.port}",
            f'    tls-service-key: "{os.path.join(tmpdir, "server.key")}"',
            f'    tls-service-pem: "{os.path.join(tmpdir, "server.pem")}"',
            f"    do-ip4: {'no' if v6 else 'yes'}",
            f"    do-ip6: {'yes' if v6 else 'no'}",
            "    do-udp: yes",
            "    do-tcp: yes",
            "    so-reuseport: no",
            "    access-control: 127.0.0.0/8 allow",
            "    access-control: ::1/128 allow",
            '    module-config: "iterator"',
            '    local-zone: "." refuse',
        ]
        # Local zones are looked at before auth zones: let the test zone through.
        lines.append(f'    local-zone: "{self.zone_origin}" transparent')
        lines += [line for line in self.extra_config.splitlines()]
        lines += [
            "auth-zone:",
            f'    name: "{self.zone_origin}"',
            f'    zonefile: "{os.path.join(tmpdir, "zone.db")}"',
            "    for-downstream: yes",
            "    for-upstream: no",
            "    fallback-enabled: no",
        ]
        return "\n".join(lines) + "\n"
