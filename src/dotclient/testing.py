"""Helpers for testing DNS-over-TLS clients against a real local server.

This module lets tests, examples and benchmarks run Debian's ``unbound`` as a
DNS-over-TLS (RFC 7858) server on a loopback address, with certificates issued
at run time by a throwaway certificate authority::

    from dotclient.testing import TestCA, UnboundServer

    ca = TestCA()
    cert = ca.issue("dot.test", "127.0.0.1")
    with UnboundServer(cert) as server:
        ...  # query server.address, server.port; trust ca.cert_pem; pin cert.spki_pin

The server answers the small zone in :data:`DEFAULT_ZONE` and refuses every
other name, so it never contacts the network.

Only the standard library, ``cryptography`` and ``dnspython`` are needed; the
``unbound`` binary is looked up when an :class:`UnboundServer` is created.
"""

from __future__ import annotations

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
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEFAULT_ZONE",
    "DEFAULT_ZONE_ORIGIN",
    "IssuedCert",
    "TestCA",
    "UnboundNotFound",
    "UnboundServer",
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
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
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
    ) -> IssuedCert:
        """Issue a server certificate for *names*.

        Each name is a DNS name (a SubjectAltName dNSName entry; wildcards such
        as ``*.example.test`` are allowed) or an IPv4/IPv6 literal (an
        iPAddress entry). The first name is also the subject common name.
        The certificate is an end-entity certificate for TLS servers
        (BasicConstraints CA:FALSE, KeyUsage digitalSignature, ExtendedKeyUsage
        serverAuth, with subject and authority key identifiers).

        Validity defaults to one hour ago until one day from now; pass
        *not_before*/*not_after* (naive values are UTC) for e.g. expired or
        not-yet-valid certificates.

        Raises:
            ValueError: no names were given, or *not_after* is not after *not_before*.
        """
        key = _new_key()
        cert = _leaf(names, key, self._name, self._key, self._ski, not_before, not_after)
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


class UnboundNotFound(RuntimeError):
    """The ``unbound`` binary was not found."""


def _find_unbound(unbound: str | None) -> str:
    if unbound is None:
        unbound = shutil.which("unbound") or "/usr/sbin/unbound"
    if os.path.isfile(unbound) and os.access(unbound, os.X_OK):
        return unbound
    raise UnboundNotFound(
        f"unbound binary not found at {unbound!r}; "
        "install Debian's unbound: apt-get install unbound"
    )


def _pick_port(host: str) -> int:
    """Return a port that is currently free on *host* for both TCP and UDP."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
        return port
    raise RuntimeError(f"could not find a free TCP+UDP port on {host}")


def _tls_port_accepts(host: str, port: int) -> bool:
    """Whether *port* accepts a TCP connection.

    A TLS handshake (unauthenticated) is also attempted so that unbound does not
    log a failed handshake; its outcome does not matter.
    """
    try:
        sock = socket.create_connection((host, port), timeout=1.0)
    except OSError:
        return False
    with sock:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with contextlib.suppress(OSError), ctx.wrap_socket(sock) as tls:
            tls.unwrap()
    return True


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _shutdown(proc: subprocess.Popen[bytes], stderr: IO[bytes], tmpdir: str) -> None:
    """Stop unbound and release everything; used by stop() and as a GC/exit finalizer."""
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


# Errors in unbound's output meaning the port was taken (worth retrying with another port).
_BIND_ERRORS = ("can't bind socket", "Address already in use", "could not open ports")


class UnboundServer:
    """Debian's unbound as a DoT server on loopback; a context manager.

    The server listens for DNS over TLS on ``host`` (an IP literal) and
    ``port`` (0: a free port is picked when the server first starts and kept
    across :meth:`restart`), presents ``cert.chain_pem``, answers ``zone``
    (master-file text, default :data:`DEFAULT_ZONE`, whose origin is
    ``zone_origin``) authoritatively and refuses every other name without
    contacting the network. *extra_config* is appended at the end of
    unbound's ``server:`` clause, so it can add or override options
    (e.g. ``"incoming-num-tcp: 100"``).

    Use as ``with UnboundServer(cert) as server: ...`` or call :meth:`start`
    and :meth:`stop`. A server that is never stopped is killed when it is
    garbage collected or when the interpreter exits.

    Latency note: unbound does not set ``TCP_NODELAY`` on DoT connections, and
    with TLS 1.3 it writes its session tickets just before the first response,
    so the first response on each new TLS 1.3 connection waits for the
    client's delayed ACK (about 40 ms on Linux). dotclient avoids the wait with
    ``TCP_QUICKACK``; other clients (dnspython, openssl s_client) pay it.

    Raises:
        UnboundNotFound: (from the constructor) the unbound binary is missing.
        ValueError: *host* is not an IP address literal.
    """

    def __init__(
        self,
        cert: IssuedCert,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        zone: str = DEFAULT_ZONE,
        zone_origin: str = DEFAULT_ZONE_ORIGIN,
        extra_config: str = "",
        unbound: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self._ip = ipaddress.ip_address(host)  # ValueError if not an IP literal
        self.unbound = _find_unbound(unbound)
        self.cert = cert
        self.host = host
        self.port = port
        self.zone = zone
        self.zone_origin = zone_origin if zone_origin.endswith(".") else zone_origin + "."
        self.extra_config = extra_config
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: str | None = None
        self._finalizer: weakref.finalize[..., UnboundServer] | None = None
        self._past_log = ""

    # -- public API ---------------------------------------------------------

    @property
    def address(self) -> str:
        """The address the server listens on (``host``)."""
        return self.host

    @property
    def running(self) -> bool:
        """Whether the unbound process is running."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log(self) -> str:
        """Unbound's log and stderr output so far (also after :meth:`stop`)."""
        return self._past_log + self._current_log()

    def start(self) -> None:
        """Write the configuration and certificate, start unbound and wait for the TLS port.

        Raises:
            RuntimeError: the server is already started, or unbound exited or did not
                accept TCP connections within ``startup_timeout`` seconds (the message
                includes the tail of its log).
        """
        if self._proc is not None:
            raise RuntimeError("unbound server already started")
        pick = self.port == 0
        attempts = 3 if pick else 1
        for attempt in range(attempts):
            if pick:
                self.port = _pick_port(self.host)
            try:
                self._start_once()
                return
            except RuntimeError as exc:
                if attempt + 1 < attempts and any(e in str(exc) for e in _BIND_ERRORS):
                    continue
                if pick:
                    self.port = 0
                raise

    def stop(self) -> None:
        """Terminate unbound (killing it after 5 s), close its files and remove its
        temporary directory. Does nothing if the server is not running."""
        if self._finalizer is None:
            return
        self._past_log += self._current_log()
        self._finalizer()  # runs _shutdown once
        self._finalizer = None
        self._proc = None
        self._tmpdir = None

    def restart(self) -> None:
        """Stop the server and start it again on the same port."""
        self.stop()
        self.start()

    def config_text(self) -> str:
        """The unbound configuration used for the current (or next) start."""
        tmpdir = self._tmpdir or "<tmpdir>"
        return self._config(tmpdir)

    def __enter__(self) -> UnboundServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<UnboundServer {self._hostport()} {state}>"

    # -- internals ------------------------------------------------------------

    def _hostport(self) -> str:
        return (
            f"[{self.host}]:{self.port}" if self._ip.version == 6 else f"{self.host}:{self.port}"
        )

    def _current_log(self) -> str:
        if self._tmpdir is None:
            return ""
        parts = [
            _read_text(os.path.join(self._tmpdir, "stderr.txt")),
            _read_text(os.path.join(self._tmpdir, "unbound.log")),
        ]
        return "".join(p if p.endswith("\n") or not p else p + "\n" for p in parts)

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

    def _start_once(self) -> None:
        tmpdir = tempfile.mkdtemp(prefix="dotclient-unbound-")
        conf = os.path.join(tmpdir, "unbound.conf")
        stderr: IO[bytes] | None = None
        proc: subprocess.Popen[bytes] | None = None
        try:
            self.cert.write(tmpdir, "server")
            with open(os.path.join(tmpdir, "zone.db"), "w", encoding="utf-8") as f:
                f.write(self.zone)
            with open(conf, "w", encoding="utf-8") as f:
                f.write(self._config(tmpdir))
            stderr = open(os.path.join(tmpdir, "stderr.txt"), "wb")
            proc = subprocess.Popen(
                [self.unbound, "-d", "-c", conf],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=subprocess.STDOUT,
                cwd=tmpdir,
            )
        except BaseException:
            if stderr is not None:
                stderr.close()
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
        self._proc = proc
        self._tmpdir = tmpdir
        self._finalizer = weakref.finalize(self, _shutdown, proc, stderr, tmpdir)
        try:
            self._wait_ready(proc)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if proc.poll() is not None:
                problem = f"unbound exited with status {proc.returncode} during startup"
                break
            # "start of service" is logged once unbound has bound its ports; checking
            # for it too avoids mistaking another process on a reused port for ours.
            if "start of service" in self._current_log() and _tls_port_accepts(
                self.host, self.port
            ):
                return
            if time.monotonic() >= deadline:
                problem = f"unbound did not accept TCP connections within {self.startup_timeout} s"
                break
            time.sleep(0.02)
        with contextlib.suppress(Exception):
            proc.terminate()
            proc.wait(timeout=5)
        raise RuntimeError(
            f"{problem} on {self._hostport()} ({self.unbound}); log tail:\n"
            f"{_tail(self._current_log())}"
        )
