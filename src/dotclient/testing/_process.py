"""What the server classes share: finding their binary, and :class:`ServerProcess`, the
life of one server process (its files, ports, start, readiness check, stop, watchdog)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
import weakref
from typing import IO

from ._base import LoopbackServer
from ._certs import IssuedCert
from ._net import answers_soa, pick_port
from ._watchdog import shutdown, start_watchdog


class ServerNotFound(RuntimeError):
    """A server binary (``unbound``, ``named`` or ``dnsdist``) was not found."""


def _find_binary(
    given: str | None,
    name: str,
    package: str,
    error: type[ServerNotFound] = ServerNotFound,
) -> str:
    """The path of the *name* binary: *given*, else from ``PATH`` or ``/usr/sbin``."""
    path = given if given is not None else shutil.which(name) or f"/usr/sbin/{name}"
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    raise error(
        f"{name} binary not found at {path!r}; install Debian's {package}: "
        f"apt-get install {package} (or run scripts/install-servers)"
    )


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


class ServerProcess(LoopbackServer):
    """Process management shared by the servers: files, ports, start, readiness, stop.

    A subclass says which binary it runs (``_name``, from the Debian package
    ``_package``; ``_not_found`` is raised without it), writes its configuration
    (``_config``), gives the command line (``_command``) and, optionally, the log
    line that means it is serving (``_ready_marker``) and extra port attributes
    (``_port_fields``). Ports that are 0 are picked at the first start and kept.
    """

    _name = "server"
    _package = "server"
    _not_found: type[ServerNotFound] = ServerNotFound
    _ready_marker: str | None = None
    _log_files: tuple[str, ...] = ("stderr.txt",)
    _port_fields: tuple[str, ...] = ("port",)
    # Messages in the server's output meaning a port was taken (worth retrying elsewhere).
    _bind_errors: tuple[str, ...] = ("Address already in use", "address in use")

    def __init__(
        self,
        cert: IssuedCert,
        *,
        host: str,
        port: int,
        zone: str,
        zone_origin: str,
        extra_config: str,
        binary: str | None,
        startup_timeout: float,
    ) -> None:
        self._ip = ipaddress.ip_address(host)  # ValueError before looking for the binary
        self.binary = _find_binary(binary, self._name, self._package, self._not_found)
        """The path of the server's binary."""
        self.cert = cert
        self.host = host
        self.port = port
        self.zone = zone
        self.zone_origin = zone_origin if zone_origin.endswith(".") else zone_origin + "."
        self.extra_config = extra_config
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: str | None = None
        self._finalizer: weakref.finalize[..., ServerProcess] | None = None
        self._past_log = ""

    # -- public API ---------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server process is running."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log(self) -> str:
        """The server's log and stderr output so far (also after :meth:`stop`)."""
        return self._past_log + self._current_log()

    def start(self) -> None:
        """Write the configuration, certificate and zone, start the server and wait
        until it answers a DoT query for the zone's SOA.

        Raises:
            RuntimeError: the server is already started, or it exited or did not
                answer within ``startup_timeout`` seconds (the message includes the
                tail of its log).
        """
        if self._proc is not None:
            raise RuntimeError(f"{self._name} server already started")
        self._before_start()
        try:
            self._start_on_free_ports()
        except BaseException:
            self._after_stop()
            raise

    def stop(self) -> None:
        """Terminate the server (killing it after 5 s), close its files and remove its
        temporary directory. Does nothing if the server is not running."""
        self._stop_process()
        self._after_stop()

    def restart(self, *, kill: bool = False) -> None:
        """Stop the server and start it again on the same port(s); with *kill*, stop it
        as :meth:`kill` does (a crash) rather than gracefully."""
        if kill:
            self.kill()
        else:
            self._stop_process()
        self.start()

    def kill(self) -> None:
        """Kill the server process with SIGKILL, as a crash would: it closes nothing
        itself, so the kernel resets or closes its connections. Its files are released
        as by :meth:`stop`, but the port(s) are kept: :meth:`start` brings it back on
        them. Does nothing if the server is not running.

        A subclass's extra processes (dnsdist's own named backend) keep running, as
        with :meth:`restart`; :meth:`stop` ends them.
        """
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self._stop_process()

    def config_text(self) -> str:
        """The configuration used for the current (or next) start."""
        return self._config(self._tmpdir or "<tmpdir>")

    # -- for subclasses -------------------------------------------------------

    def _config(self, tmpdir: str) -> str:
        raise NotImplementedError

    def _command(self, conf: str) -> list[str]:
        raise NotImplementedError

    def _environment(self, tmpdir: str) -> dict[str, str] | None:
        """The server's environment (None: this process's)."""
        return None

    def _before_start(self) -> None:
        """Called by start() before the process starts (e.g. to start a backend)."""

    def _after_stop(self) -> None:
        """Called by stop(), and when start() fails."""

    # -- internals ------------------------------------------------------------

    def _current_log(self) -> str:
        if self._tmpdir is None:
            return ""
        parts = [_read_text(os.path.join(self._tmpdir, name)) for name in self._log_files]
        return "".join(p if p.endswith("\n") or not p else p + "\n" for p in parts)

    def _start_on_free_ports(self) -> None:
        to_pick = [name for name in self._port_fields if getattr(self, name) == 0]
        attempts = 3 if to_pick else 1
        for attempt in range(attempts):
            taken: set[int] = set()
            for name in to_pick:
                port = pick_port(self.host, frozenset(taken))
                taken.add(port)
                setattr(self, name, port)
            try:
                self._start_once()
                return
            except RuntimeError as exc:
                if attempt + 1 < attempts and any(e in str(exc) for e in self._bind_errors):
                    continue
                for name in to_pick:
                    setattr(self, name, 0)
                raise

    def _start_once(self) -> None:
        tmpdir = tempfile.mkdtemp(prefix=f"dotclient-{self._name}-")
        conf = os.path.join(tmpdir, f"{self._name}.conf")
        stderr: IO[bytes] | None = None
        proc: subprocess.Popen[bytes] | None = None
        try:
            self.cert.write(tmpdir, "server")
            with open(os.path.join(tmpdir, "zone.db"), "w", encoding="utf-8") as f:
                f.write(self.zone)
            with open(conf, "w", encoding="utf-8") as f:
                f.write(self._config(tmpdir))
            env = self._environment(tmpdir)
            stderr = open(os.path.join(tmpdir, "stderr.txt"), "wb")
            proc = subprocess.Popen(
                self._command(conf),
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=subprocess.STDOUT,
                cwd=tmpdir,
                env=env,
            )
        except BaseException:
            if stderr is not None:
                stderr.close()
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
        try:
            watchdog = start_watchdog(proc.pid, tmpdir)
        except BaseException:
            shutdown(proc, stderr, tmpdir)
            raise
        self._proc = proc
        self._tmpdir = tmpdir
        self._finalizer = weakref.finalize(self, shutdown, proc, stderr, tmpdir, watchdog)
        try:
            self._wait_ready(proc)
        except BaseException:
            self._stop_process()
            raise

    def _stop_process(self) -> None:
        if self._finalizer is None:
            return
        self._past_log += self._current_log()
        self._finalizer()  # runs shutdown once
        self._finalizer = None
        self._proc = None
        self._tmpdir = None

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if proc.poll() is not None:
                problem = f"{self._name} exited with status {proc.returncode} during startup"
                break
            log = self._current_log()
            # named logs a port it could not bind and goes on without it.
            if any(e in log for e in self._bind_errors):
                problem = f"{self._name} could not bind its ports"
                break
            # The log marker is written once the ports are bound; checking for it too
            # avoids mistaking another process on a reused port for ours.
            if (self._ready_marker is None or self._ready_marker in log) and answers_soa(
                self.host, self.port, self.zone_origin
            ):
                return
            if time.monotonic() >= deadline:
                problem = (
                    f"{self._name} did not answer a DoT query for {self.zone_origin} SOA "
                    f"within {self.startup_timeout} s"
                )
                break
            time.sleep(0.02)
        with contextlib.suppress(Exception):
            proc.terminate()
            proc.wait(timeout=5)
        raise RuntimeError(
            f"{problem} on {self._hostport()} ({self.binary}); log tail:\n"
            f"{_tail(self._current_log())}"
        )
