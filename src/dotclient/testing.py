"""Helpers for testing DNS-over-TLS clients against real local servers.

This module lets tests, examples and benchmarks run Debian's ``unbound``, BIND 9's
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

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as _dt
import hashlib
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TypeVar

import dns.exception
import dns.message
import dns.rcode
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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

_ONE_HOUR = _dt.timedelta(hours=1)
_ONE_DAY = _dt.timedelta(days=1)
_CA_LIFETIME = _dt.timedelta(days=3650)


# ---------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """digitalSignature for every certificate; keyCertSign and cRLSign for a CA."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _now() -> datetime:
    return datetime.now(_dt.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _general_name(name: str) -> x509.GeneralName:
    """Map a DNS name or an IP literal to a SubjectAltName entry."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    dns_name = name[:-1] if name.endswith(".") else name  # absolute -> SAN form
    if not dns_name or dns_name.startswith("."):
        raise ValueError(f"not a usable DNS name or IP address: {name!r}")
    if not dns_name.isascii():
        # x509 DNSName entries hold A-labels (IDNA), never U-labels.
        dns_name = dns_name.encode("idna").decode("ascii")
    return x509.DNSName(dns_name)


def _spki_pin(public_key: ec.EllipticCurvePublicKey) -> str:
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def _validity(
    not_before: datetime | None, not_after: datetime | None
) -> tuple[datetime, datetime]:
    now = _now()
    start = not_before if not_before is not None else now - _ONE_HOUR
    end = not_after if not_after is not None else now + _ONE_DAY
    # Naive datetimes are taken as UTC, as cryptography does.
    if start.tzinfo is None:
        start = start.replace(tzinfo=_dt.timezone.utc)
    if end.tzinfo is None:
        end = end.replace(tzinfo=_dt.timezone.utc)
    if end <= start:
        raise ValueError(
            f"not_after ({end.isoformat()}) must be after not_before ({start.isoformat()})"
        )
    return start, end


def _leaf(
    names: tuple[str, ...],
    key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer_ski: x509.SubjectKeyIdentifier,
    not_before: datetime | None,
    not_after: datetime | None,
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
) -> x509.Certificate:
    if not names:
        raise ValueError("at least one DNS name or IP address is required")
    sans = [_general_name(n) for n in names]
    start, end = _validity(not_before, not_after)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])
    if issuer_key is key:  # self-signed: the certificate is its own issuer
        issuer_name = subject
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(ca=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
            critical=False,
        )
    )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issued(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, chain_tail: bytes
) -> IssuedCert:
    cert_pem = _pem(cert)
    public_key = key.public_key()
    return IssuedCert(
        cert_pem=cert_pem,
        chain_pem=cert_pem + chain_tail,
        key_pem=_key_pem(key),
        cert_der=cert.public_bytes(serialization.Encoding.DER),
        spki_pin=_spki_pin(public_key),
    )


@dataclass(frozen=True)
class IssuedCert:
    """A server certificate and its private key, as made by :class:`TestCA`.

    Attributes:
        cert_pem: the leaf certificate, PEM.
        chain_pem: the leaf followed by the issuing CA certificate, PEM: what a
            server presents. For a self-signed certificate it equals ``cert_pem``.
        key_pem: the leaf's private key, unencrypted PKCS#8 PEM.
        cert_der: the leaf certificate, DER.
        spki_pin: the base64 (standard alphabet, padded) SHA-256 digest of the
            leaf's DER SubjectPublicKeyInfo: the SPKI pin format of RFC 7858
            section 4.2 and RFC 7469.
    """

    cert_pem: bytes = field(repr=False)
    chain_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)
    cert_der: bytes = field(repr=False)
    spki_pin: str

    def write(self, directory: str | os.PathLike[str], stem: str = "server") -> tuple[str, str]:
        """Write ``<stem>.pem`` (the chain) and ``<stem>.key`` (mode 0600) into *directory*.

        Returns ``(cert_path, key_path)``.
        """
        cert_path = os.path.join(os.fspath(directory), f"{stem}.pem")
        key_path = os.path.join(os.fspath(directory), f"{stem}.key")
        with open(cert_path, "wb") as f:
            f.write(self.chain_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            os.chmod(key_path, 0o600)  # in case the file already existed
            f.write(self.key_pem)
        return cert_path, key_path


class TestCA:
    """A throwaway certificate authority made at run time (EC P-256 keys, SHA-256).

    The CA certificate is valid from one hour ago for ten years; issue server
    certificates with :meth:`issue` and trust :attr:`cert_pem` (or the file
    written by :meth:`write_ca_file`) in the client.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, common_name: str = "dotclient test CA") -> None:
        self._key = _new_key()
        public_key = self._key.public_key()
        self._ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_HOUR)
            .not_valid_after(now + _CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                _key_usage(ca=True),
                critical=True,
            )
            .add_extension(self._ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self._ski),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        self._cert_pem = _pem(self._cert)

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate, PEM."""
        return self._cert_pem

    def write_ca_file(self, path: str | os.PathLike[str]) -> str:
        """Write :attr:`cert_pem` to *path* and return the path as a string."""
        path_str = os.fspath(path)
        with open(path_str, "wb") as f:
            f.write(self._cert_pem)
        return path_str

    def issue(
        self,
        *names: str,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        client: bool = False,
    ) -> IssuedCert:
        """Issue a server certificate for *names* (with *client*, a client certificate).

        Each name is a DNS name (a SubjectAltName dNSName entry; wildcards such
        as ``*.example.test`` are allowed) or an IPv4/IPv6 literal (an
        iPAddress entry). The first name is also the subject common name.
        The certificate is an end-entity certificate for TLS servers
        (BasicConstraints CA:FALSE, KeyUsage digitalSignature, ExtendedKeyUsage
        serverAuth, with subject and authority key identifiers).

        Validity defaults to one hour ago until one day from now; pass
        *not_before*/*not_after* (naive values are UTC) for e.g. expired or
        not-yet-valid certificates. With *client*, the ExtendedKeyUsage is clientAuth
        instead: a certificate for a client to present to a server that asks for one.

        Raises:
            ValueError: no names were given, or *not_after* is not after *not_before*.
        """
        key = _new_key()
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = _leaf(names, key, self._name, self._key, self._ski, not_before, not_after, usage)
        return _issued(cert, key, self._cert_pem)


def self_signed_cert(*names: str) -> IssuedCert:
    """Make a self-signed server certificate (its own issuer) for *names*.

    Names are handled as by :meth:`TestCA.issue`; validity is one hour ago until
    one day from now. Useful for SPKI-pinning-only tests, or to check that an
    untrusted certificate is rejected. ``chain_pem`` equals ``cert_pem``.

    Raises:
        ValueError: no names were given.
    """
    key = _new_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = _leaf(names, key, x509.Name([]), key, ski, None, None)
    return _issued(cert, key, b"")


# ---------------------------------------------------------------------------
# Unbound
# ---------------------------------------------------------------------------


def _big_txt_strings() -> list[str]:
    # Five 250-character strings: 5 * (1 + 250) = 1255 bytes of TXT RDATA.
    return [(f"big-txt-string-{i}-" + "abcdefghij" * 25)[:250] for i in range(5)]


#: The origin of :data:`DEFAULT_ZONE`.
DEFAULT_ZONE_ORIGIN = "example.test."

DEFAULT_ZONE: str = (
    "$ORIGIN example.test.\n"
    "$TTL 300\n"
    "@ 3600 IN SOA ns hostmaster 1 3600 900 604800 300\n"
    "@ 3600 IN NS ns\n"
    "@ 3600 IN MX 10 mail\n"
    "ns 3600 IN A 192.0.2.53\n"
    "mail 3600 IN A 192.0.2.25\n"
    "a 300 IN A 192.0.2.1\n"
    "a 300 IN A 192.0.2.2\n"
    "a 300 IN AAAA 2001:db8::1\n"
    "mixed 300 IN A 192.0.2.1\n"
    "mixed 300 IN A 192.0.2.2\n"
    "mixed 300 IN AAAA 2001:db8::1\n"
    "www 300 IN CNAME alias\n"
    "alias 300 IN CNAME a\n"
    "big 300 IN TXT " + " ".join(f'"{s}"' for s in _big_txt_strings()) + "\n"
)
"""The test zone, in RFC 1035 master-file format.

Unbound serves it authoritatively (an ``auth-zone``), so names without data are
NXDOMAIN with the SOA in the authority section, and CNAMEs inside the zone are
followed in the answer as an authoritative server does (RFC 1034 section 4.3.2):

- ``example.test.``: SOA, NS ``ns.example.test.``, MX 10 ``mail.example.test.``
- ``ns.example.test.`` A 192.0.2.53; ``mail.example.test.`` A 192.0.2.25
- ``a.example.test.``: A 192.0.2.1, A 192.0.2.2, AAAA 2001:db8::1
- ``mixed.example.test.``: the same data as ``a.example.test.``; query it as
  ``Mixed.Example.Test.`` to check case-insensitive matching (unbound echoes the
  query's case in the answer's owner names)
- ``www.example.test.`` CNAME ``alias.example.test.``, which is a CNAME to
  ``a.example.test.``: a query for ``www.example.test. A`` is answered with both
  CNAMEs and the A RRset.
- ``big.example.test.``: one TXT record of five 250-byte strings (1255 bytes of RDATA)

Any other name under ``example.test.`` (e.g. ``nx.example.test.``) is NXDOMAIN;
names outside it are REFUSED, except in unbound's built-in local zones (RFC 6761
and RFC 6303 names such as ``localhost.``, ``test.``, ``invalid.``, ``onion.`` and
private-address reverse zones), which unbound answers itself: e.g.
``other.test.`` is NXDOMAIN, not REFUSED.
"""


class ServerNotFound(RuntimeError):
    """A server binary (``unbound``, ``named`` or ``dnsdist``) was not found."""


class UnboundNotFound(ServerNotFound):
    """The ``unbound`` binary was not found."""


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


def build_nodelay_preload(directory: str | os.PathLike[str]) -> str:
    """Compile the TCP_NODELAY shim (``_nodelay.c``, next to this module) into
    *directory*; return the path of the shared object, for ``LD_PRELOAD``.

    Every connection a process accepts with the shim preloaded has ``TCP_NODELAY`` set,
    which unbound 1.17 offers no option for on DoT. Raises :class:`ServerNotFound`
    when there is no C compiler (``$CC``, ``cc`` or ``gcc``) or it fails."""
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_nodelay.c")
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise ServerNotFound("no C compiler (cc, gcc or $CC) to build the TCP_NODELAY shim")
    target = os.path.join(os.fspath(directory), "libdotclient_nodelay.so")
    try:
        done = subprocess.run(
            [compiler, "-shared", "-fPIC", "-O2", "-o", target, source, "-ldl"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise ServerNotFound(f"building the TCP_NODELAY shim failed: {exc}") from exc
    if done.returncode:
        raise ServerNotFound(f"building the TCP_NODELAY shim failed:\n{done.stderr}")
    return target


def _pick_port(host: str, exclude: frozenset[int] = frozenset()) -> int:
    """Return a port that is currently free on *host* for both TCP and UDP."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            if port in exclude:
                continue
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
        return port
    raise RuntimeError(f"could not find a free TCP+UDP port on {host}")


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _recv_exactly(sock: ssl.SSLSocket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def _answers_soa(host: str, port: int, origin: str) -> bool:
    """Whether a DoT query for *origin* SOA on *port* gets a NOERROR answer.

    The TLS handshake is not authenticated: this only checks that the server is
    up and serves the zone (through its backend, for dnsdist).
    """
    query = dns.message.make_query(origin, "SOA")
    wire = query.to_wire()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=1.0) as sock,
            ctx.wrap_socket(sock) as tls,
        ):
            tls.sendall(len(wire).to_bytes(2, "big") + wire)
            size = int.from_bytes(_recv_exactly(tls, 2), "big")
            response = dns.message.from_wire(_recv_exactly(tls, size))
    except (OSError, ValueError, dns.exception.DNSException):
        return False
    return query.is_response(response) and response.rcode() == dns.rcode.NOERROR


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


# The watchdog of one server process: it waits on a pipe from the process that started
# the server. A byte means "stopped as usual": nothing to do. End of file means that
# process died without stopping the server (SIGTERM, SIGKILL, a crash: no finalizer or
# atexit ran), so the watchdog ends the server and removes its directory.
_WATCHDOG = r"""
import os, shutil, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pid, tmpdir = int(sys.argv[1]), sys.argv[2]
if sys.stdin.buffer.read(1):
    sys.exit(0)

def gone():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        break
    deadline = time.monotonic() + wait
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.02)
    if gone():
        break
shutil.rmtree(tmpdir, ignore_errors=True)
"""


def _watchdog(pid: int, tmpdir: str) -> subprocess.Popen[bytes]:
    """Start the watchdog of server ``pid`` (see ``_WATCHDOG``)."""
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(pid), tmpdir],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _shutdown(
    proc: subprocess.Popen[bytes],
    stderr: IO[bytes],
    tmpdir: str,
    watchdog: subprocess.Popen[bytes] | None = None,
) -> None:
    """Stop a server and release everything; used by stop() and as a GC/exit finalizer."""
    try:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        stderr.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
        if watchdog is not None and watchdog.stdin is not None:
            with contextlib.suppress(OSError):
                watchdog.stdin.write(b"x")  # stopped as usual: the watchdog just exits
            with contextlib.suppress(OSError):
                watchdog.stdin.close()
            watchdog.wait()


_S = TypeVar("_S", bound="_ServerProcess")


class _ServerProcess:
    """Process management shared by the servers: files, ports, start, readiness, stop.

    A subclass says which binary it runs (``_name``), writes its configuration
    (``_config``), gives the command line (``_command``) and, optionally, the log
    line that means it is serving (``_ready_marker``) and extra port attributes
    (``_port_fields``). Ports that are 0 are picked at the first start and kept.
    """

    _name = "server"
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
        binary: str,
        startup_timeout: float,
    ) -> None:
        self._ip = ipaddress.ip_address(host)  # ValueError if not an IP literal
        self.binary = binary
        self.cert = cert
        self.host = host
        self.port = port
        self.zone = zone
        self.zone_origin = zone_origin if zone_origin.endswith(".") else zone_origin + "."
        self.extra_config = extra_config
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: str | None = None
        self._finalizer: weakref.finalize[..., _ServerProcess] | None = None
        self._past_log = ""

    # -- public API ---------------------------------------------------------

    @property
    def address(self) -> str:
        """The address the server listens on (``host``)."""
        return self.host

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

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self._hostport()} {state}>"

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

    def _hostport(self) -> str:
        return _hostport(self.host, self.port)

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
                port = _pick_port(self.host, frozenset(taken))
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
            watchdog = _watchdog(proc.pid, tmpdir)
        except BaseException:
            _shutdown(proc, stderr, tmpdir)
            raise
        self._proc = proc
        self._tmpdir = tmpdir
        self._finalizer = weakref.finalize(self, _shutdown, proc, stderr, tmpdir, watchdog)
        try:
            self._wait_ready(proc)
        except BaseException:
            self._stop_process()
            raise

    def _stop_process(self) -> None:
        if self._finalizer is None:
            return
        self._past_log += self._current_log()
        self._finalizer()  # runs _shutdown once
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
            if (self._ready_marker is None or self._ready_marker in log) and _answers_soa(
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


# ---------------------------------------------------------------------------
# Unbound
# ---------------------------------------------------------------------------


class UnboundServer(_ServerProcess):
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
        ipaddress.ip_address(host)  # ValueError before looking for the binary
        self.nodelay = nodelay
        super().__init__(
            cert,
            host=host,
            port=port,
            zone=zone,
            zone_origin=zone_origin,
            extra_config=extra_config,
            binary=_find_binary(unbound, "unbound", "unbound", UnboundNotFound),
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


# ---------------------------------------------------------------------------
# BIND 9 named
# ---------------------------------------------------------------------------


class NamedServer(_ServerProcess):
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
        ipaddress.ip_address(host)
        super().__init__(
            cert,
            host=host,
            port=port,
            zone=zone,
            zone_origin=zone_origin,
            extra_config=extra_config,
            binary=_find_binary(named, "named", "bind9"),
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


# ---------------------------------------------------------------------------
# dnsdist
# ---------------------------------------------------------------------------


class DnsdistServer(_ServerProcess):
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
        ipaddress.ip_address(host)
        super().__init__(
            cert,
            host=host,
            port=port,
            zone=zone,
            zone_origin=zone_origin,
            extra_config=extra_config,
            binary=_find_binary(dnsdist, "dnsdist", "dnsdist"),
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
            f'newServer({{address="{_hostport(*self.backend)}"}})',
        ]
        if self.max_queries_per_connection is not None:
            lines.append(f"setMaxTCPQueriesPerConnection({self.max_queries_per_connection})")
        lines += self.extra_config.splitlines()
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# A slow server: a delaying DoT proxy in front of a real one
# ---------------------------------------------------------------------------


class DelayedServer:
    """A DoT server on loopback that answers each query after ``delay`` seconds; a
    context manager.

    Neither unbound, named nor dnsdist can delay a DNS-over-TLS answer (dnsdist's
    ``DelayAction`` is UDP only), so this is an **in-process** TLS proxy (an asyncio
    loop in a thread of its own): it terminates TLS with ``cert``, reads each query (any
    number pipelined per connection, one task per query), holds it for ``delay``
    seconds, then sends it as plain DNS over UDP to ``upstream`` (a ``(host, port)``:
    the ``port`` of an :class:`UnboundServer` also answers plain UDP) and writes the
    upstream's answer back, in whatever order the queries complete. The answers are
    the real server's; large ones may come back truncated (TC), as over UDP.

    It counts what a test needs to see concurrency where it matters: ``in_flight``
    (queries received and not yet answered), ``max_in_flight`` (the most at once since
    the start or :meth:`reset_counts`), ``queries`` (received) and ``connections``
    (accepted).

    ``delay`` may be changed while the server runs; ``None`` holds every query until the
    connection closes (a server that never answers).
    """

    def __init__(
        self,
        cert: IssuedCert,
        upstream: tuple[str, int],
        *,
        delay: float | None = 0.1,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        ipaddress.ip_address(host)
        self.cert = cert
        self.upstream = upstream
        self.delay = delay
        self.host = host
        self.port = port
        self.in_flight = 0
        self.max_in_flight = 0
        self.queries = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def address(self) -> str:
        """The address the server listens on (``host``)."""
        return self.host

    @property
    def running(self) -> bool:
        """Whether the proxy is serving."""
        return self._thread is not None

    def reset_counts(self) -> None:
        """Zero ``max_in_flight``, ``queries`` and ``connections``."""
        with self._lock:
            self.max_in_flight = self.in_flight
            self.queries = 0
            self.connections = 0

    def start(self) -> None:
        """Start serving; returns once the port is bound (``port`` is then set)."""
        if self._thread is not None:
            raise RuntimeError("DelayedServer already started")
        tmpdir = tempfile.mkdtemp(prefix="dotclient-delayed-")
        try:
            cert_path, key_path = self.cert.write(tmpdir, "server")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(cert_path, key_path)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        problem: list[BaseException] = []
        stopping = asyncio.Event()

        async def main() -> None:
            connections: set[asyncio.Task[None]] = set()

            async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                task = asyncio.current_task()
                assert task is not None
                connections.add(task)
                try:
                    await self._serve(reader, writer)
                finally:
                    connections.discard(task)

            try:
                server = await asyncio.start_server(
                    accepted, self.host, self.port, ssl=context, reuse_address=True
                )
            except BaseException as exc:
                problem.append(exc)
                ready.set()
                return
            self.port = int(server.sockets[0].getsockname()[1])
            ready.set()
            async with server:
                await stopping.wait()
                server.close()
                for task in list(connections):
                    task.cancel()
                await asyncio.gather(*connections, return_exceptions=True)

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(main())
            finally:
                loop.close()

        thread = threading.Thread(target=run, name="dotclient-delayed-server", daemon=True)
        thread.start()
        ready.wait()
        if problem:
            thread.join()
            raise RuntimeError(f"DelayedServer could not listen on {self.host}: {problem[0]}")
        self._thread, self._loop, self._stopping = thread, loop, stopping

    def stop(self) -> None:
        """Close every connection and stop serving. Does nothing if not running."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        assert loop is not None and stopping is not None
        loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._thread = self._loop = self._stopping = None

    def __enter__(self) -> DelayedServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<DelayedServer {_hostport(self.host, self.port)} delay={self.delay} {state}>"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
        answers: set[asyncio.Task[None]] = set()
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                wire = await reader.readexactly(size)
                with self._lock:
                    self.queries += 1
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                task = asyncio.ensure_future(self._answer(wire, writer))
                answers.add(task)
                task.add_done_callback(answers.discard)
        except (asyncio.IncompleteReadError, OSError, ssl.SSLError):
            pass  # the client closed the connection, or broke it
        finally:
            for task in list(answers):
                task.cancel()
            await asyncio.gather(*answers, return_exceptions=True)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _answer(self, wire: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            if self.delay is None:
                await asyncio.Event().wait()  # never answers
            await asyncio.sleep(self.delay or 0)
            answer = await self._forward(wire)
            if not writer.is_closing():
                writer.write(len(answer).to_bytes(2, "big") + answer)
        except (OSError, asyncio.TimeoutError):
            pass  # no answer from upstream: this query goes unanswered
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _forward(self, wire: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()

        class Upstream(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                if not answer.done():
                    answer.set_result(data)

            def error_received(self, exc: Exception) -> None:
                if not answer.done():
                    answer.set_exception(exc)

        transport, _ = await loop.create_datagram_endpoint(Upstream, remote_addr=self.upstream)
        try:
            transport.sendto(wire)
            return await asyncio.wait_for(answer, 5.0)
        finally:
            transport.close()
