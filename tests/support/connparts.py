"""Real parts that connections go through, for the connection set-up tests.

- :class:`Microsocks`: Debian's ``microsocks``, a SOCKS5 proxy on 127.0.0.1.
- :class:`NginxTLS`: Debian's nginx with its stream module terminating TLS, with
  client certificates required (``ssl_verify_client on``), in front of a plain DNS
  TCP port (unbound's ``plain_port``): a DoT endpoint that needs mTLS.
- :func:`blackhole`: a listener that takes TCP connections into its accept queue and
  never answers: a stand-in for an address whose TLS handshake never completes.

A missing binary skips the test, or fails it under ``CI=true`` (``server_missing``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from dotclient.testing import DEFAULT_ZONE, IssuedCert, ServerNotFound
from dotclient.testing._net import pick_port

from support.servers import server_missing

_STARTUP = 10.0

#: The test zone plus names for DoT servers: ``he`` has an IPv6 address (where a
#: blackhole listens) and an IPv4 one (where unbound listens); ``srv`` only the latter.
ZONE = (
    DEFAULT_ZONE + "he 300 IN AAAA ::1\n" + "he 300 IN A 127.0.0.1\n" + "srv 300 IN A 127.0.0.1\n"
)


def _binary(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        message = f"{name} not found: install Debian's {package} (scripts/install-servers)"
        server_missing(ServerNotFound(message))
    return path


class _Process:
    """A process listening on 127.0.0.1:``port``, its output in ``log``."""

    def __init__(self) -> None:
        self.port = 0
        self.tmpdir = tempfile.mkdtemp(prefix="dotclient-part-")
        self._proc: subprocess.Popen[bytes] | None = None
        self._out = os.path.join(self.tmpdir, "output.txt")

    def _command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        for _ in range(3):
            self.port = pick_port("127.0.0.1")
            with open(self._out, "ab") as out:
                self._proc = subprocess.Popen(
                    self._command(), stdout=out, stderr=subprocess.STDOUT, cwd=self.tmpdir
                )
            if self._wait_ready():
                return
            self.stop()
        raise RuntimeError(f"{self._command()[0]} did not start; output:\n{self.log}")

    def _wait_ready(self) -> bool:
        assert self._proc is not None
        end = time.monotonic() + _STARTUP
        while time.monotonic() < end:
            if self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    @property
    def log(self) -> str:
        """What the process wrote."""
        try:
            with open(self._out, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Stop the process (kept files stay until :meth:`close`)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


class Microsocks(_Process):
    """microsocks on 127.0.0.1, with a user name and password if given."""

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        self.binary = _binary("microsocks", "microsocks")
        super().__init__()
        self.user = user
        self.password = password

    def _command(self) -> list[str]:
        command = [self.binary, "-i", "127.0.0.1", "-p", str(self.port)]
        if self.user is not None:
            command += ["-u", self.user, "-P", self.password or ""]
        return command

    @property
    def connects(self) -> list[str]:
        """The CONNECT requests it carried out, as it logs them."""
        return [line for line in self.log.splitlines() if "connected to" in line]


class NginxTLS(_Process):
    """nginx's stream module: TLS on 127.0.0.1:``port`` presenting ``cert``, requiring
    a client certificate issued by the CA in ``client_ca_pem``, proxying the plain
    bytes to 127.0.0.1:``backend_port``."""

    def __init__(self, cert: IssuedCert, client_ca_pem: bytes, backend_port: int) -> None:
        self.binary = _binary("nginx", "libnginx-mod-stream")
        self.module = "/usr/lib/nginx/modules/ngx_stream_module.so"
        if not os.path.exists(self.module):
            server_missing(ServerNotFound(f"{self.module} not found: install libnginx-mod-stream"))
        super().__init__()
        self.certfile, self.keyfile = cert.write(self.tmpdir)
        self.client_ca = os.path.join(self.tmpdir, "client-ca.pem")
        with open(self.client_ca, "wb") as f:
            f.write(client_ca_pem)
        self.backend_port = backend_port

    def _command(self) -> list[str]:
        conf = os.path.join(self.tmpdir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(
                f"load_module {self.module};\n"
                "daemon off;\n"
                "master_process off;\n"
                f"pid {self.tmpdir}/nginx.pid;\n"
                f"error_log {self.tmpdir}/output.txt info;\n"
                "events { worker_connections 64; }\n"
                "stream {\n"
                "    server {\n"
                f"        listen 127.0.0.1:{self.port} ssl;\n"
                f"        ssl_certificate {self.certfile};\n"
                f"        ssl_certificate_key {self.keyfile};\n"
                f"        ssl_client_certificate {self.client_ca};\n"
                "        ssl_verify_client on;\n"
                "        ssl_session_tickets on;\n"
                "        ssl_session_cache shared:dot:1m;\n"
                f"        proxy_pass 127.0.0.1:{self.backend_port};\n"
                "    }\n"
                "}\n"
            )
        return [self.binary, "-e", f"{self.tmpdir}/output.txt", "-p", self.tmpdir, "-c", conf]


@contextmanager
def running(part: _Process) -> Iterator[_Process]:
    """Start ``part``; stop it and remove its files afterwards."""
    try:
        part.start()
        yield part
    finally:
        part.close()


@contextmanager
def blackhole(host: str, port: int) -> Iterator[socket.socket]:
    """A listener on ``host:port`` that never accepts: the kernel completes the TCP
    handshakes, nobody ever sends a byte. ``accept()`` on it afterwards shows whether
    a connection came (it is non-blocking)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((host, port))
        listener.listen(16)
        listener.setblocking(False)
        yield listener
