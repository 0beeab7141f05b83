"""TLS settings and server authentication (RFC 7858 section 4, RFC 8310).

No sockets here: :class:`TLSPolicy` hands the I/O shells the attempts to make (an
``SSLContext`` and the SNI name for each) and checks the finished handshake through the
``ssl`` object, before a single query byte is written.

Authentication, in strict mode (the default):

* the certificate chain must verify against the trust store (certifi's bundle, or
  ``ca_file``, or the caller's ``ssl_context``);
* the authentication domain name, or for a bare IP server the IP address, must be in the
  certificate (RFC 8310 section 8, RFC 6125);
* when SPKI pins are given, one must match a certificate of the verified chain
  (RFC 7858 section 4.2). With ``pin_only=True`` the chain and name are not checked and
  the pin must match the server's own certificate: the way to trust a self-signed server.

In opportunistic mode (RFC 8310 section 5) a failed authentication is not fatal: the
connection is made again without verification, still encrypted, and the response says
``authenticated=False``. No profile ever falls back to cleartext.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import ipaddress
import os
import ssl
import sys
from typing import Any, Literal

from ._exceptions import AuthenticationError, TLSError
from ._server import Server, is_ip

__all__ = [
    "PROFILES",
    "TLS12_CIPHERS",
    "Attempt",
    "SavedSession",
    "TLSInfo",
    "TLSPolicy",
    "format_pin",
    "spki_digest",
]

Profile = Literal["strict", "opportunistic"]
PROFILES: tuple[str, ...] = ("strict", "opportunistic")
_OLD_VERSIONS = frozenset({"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"})
#: The TLS 1.2 cipher suites offered (RFC 7858 section 8: follow BCP 195; RFC 7525
#: section 4.2 recommends ECDHE with AES-GCM, RFC 9325 adds ChaCha20-Poly1305): forward
#: secret and AEAD only, so no CBC, no plain DHE, no RSA key exchange. TLS 1.3 suites
#: are all AEAD and forward secret, and OpenSSL's defaults for them stand.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
#: Certificates whose SPKI digest and names are remembered (each cache): a server
#: presents the same chain on every connection, and reading a certificate with
#: cryptography costs tens of microseconds, looking its DER up here one or two.
_CERTIFICATES_CACHED = 128


def spki_digest(cert_der: bytes) -> bytes:
    """SHA-256 of a DER certificate's SubjectPublicKeyInfo: what an SPKI pin pins."""
    return _spki_digest(bytes(cert_der))


@functools.lru_cache(maxsize=_CERTIFICATES_CACHED)
def _spki_digest(cert_der: bytes) -> bytes:
    """:func:`spki_digest`, cached by the whole DER (a pure function of it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_der_x509_certificate(cert_der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def format_pin(digest: bytes) -> str:
    """Format a SHA-256 SPKI digest the way ``pins=`` accepts it: ``sha256/BASE64``."""
    return "sha256/" + base64.b64encode(digest).decode("ascii")


def _dns_name_matches(pattern: str, name: str) -> bool:
    # RFC 6125 section 6.4: case-insensitive; a wildcard only as the whole left-most
    # label, matching exactly one label (an A-label too, as OpenSSL does).
    pattern = pattern.rstrip(".").lower()
    if pattern == name:
        return True
    if not pattern.startswith("*."):
        return False
    suffix = pattern[1:]
    if suffix.count(".") < 2:  # "*.com" style wildcards are not honoured
        return False
    head, dot, tail = name.partition(".")
    return bool(dot) and bool(head) and "." + tail == suffix


def certificate_names(cert_der: bytes) -> tuple[list[str], list[str]]:
    """The DNS names and IP addresses in a certificate's subjectAltName extension."""
    dns_names, ips = _subject_alt_names(bytes(cert_der))
    return list(dns_names), list(ips)


@functools.lru_cache(maxsize=_CERTIFICATES_CACHED)
def _subject_alt_names(cert_der: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """:func:`certificate_names`, cached by the whole DER (a pure function of it)."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(cert_der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (), ()
    dns_names = tuple(str(n) for n in san.get_values_for_type(x509.DNSName))
    ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    return dns_names, ips


def certificate_matches(cert_der: bytes, name: str) -> bool:
    """Whether the certificate is valid for ``name`` (a DNS name or an IP literal).

    Only subjectAltName entries count (RFC 6125 section 6.4.4: no fallback to the CN).
    """
    dns_names, ips = _subject_alt_names(bytes(cert_der))
    if not is_ip(name):
        wanted = name.rstrip(".").lower()
        return any(_dns_name_matches(p, wanted) for p in dns_names)
    ip = ipaddress.ip_address(name)
    return any(ipaddress.ip_address(entry) == ip for entry in ips)


def peer_chain(ssl_object: Any, *, verified: bool) -> list[bytes]:
    """The peer's certificates as DER, leaf first.

    ``verified=True`` gives the chain OpenSSL built and verified (empty when verification
    was off); otherwise the certificates exactly as the server sent them.
    """
    name = "get_verified_chain" if verified else "get_unverified_chain"
    for holder in (ssl_object, getattr(ssl_object, "_sslobj", None)):
        getter = getattr(holder, name, None)
        if getter is None:
            continue
        chain = getter() or []
        # Python 3.13+ returns DER bytes; 3.10-3.12's private API returns Certificate
        # objects that can encode themselves (2 is _ssl.ENCODING_DER).
        return [c if isinstance(c, bytes) else c.public_bytes(2) for c in chain]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _keylog_file() -> str | None:
    """``$SSLKEYLOGFILE`` when set: the session keys are appended there, as curl and
    browsers do, so a capture of one's own traffic can be decrypted (Wireshark reads the
    file). A debugging aid: whoever can read the file can read the DNS traffic. A file
    that cannot be opened is ignored, as curl ignores it."""
    path = os.environ.get("SSLKEYLOGFILE")
    if path and not sys.flags.ignore_environment:
        return path
    return None


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One way to connect: the context to handshake with and what to send as SNI."""

    context: ssl.SSLContext
    #: Passed to ``wrap_socket`` / asyncio as ``server_hostname``; None sends no SNI.
    server_hostname: str | None
    #: The chain is verified against trust anchors during the handshake.
    verifies_chain: bool
    #: OpenSSL checks the name during the handshake (dotclient checks it afterwards
    #: either way, with subjectAltName only).
    checks_name: bool
    #: A fallback attempt after authentication failed (opportunistic profile).
    fallback: bool = False


@dataclasses.dataclass(frozen=True, repr=False)
class TLSInfo:
    """What the handshake gave: negotiated parameters and the authentication outcome.

    ``pins`` gives ``peer_pins`` in the ``sha256/BASE64`` form that ``pins=`` takes; the
    repr shows them so, and counts the certificates rather than dumping their DER.
    """

    version: str
    cipher: str | None
    alpn: str | None
    authenticated: bool
    #: Why authentication failed, in opportunistic mode; None when it succeeded.
    auth_error: str | None
    #: SHA-256 SPKI digests of the certificates the server presented, leaf first.
    peer_pins: tuple[bytes, ...]
    #: The handshake resumed an earlier session (RFC 8446 section 2.2 PSK, or a TLS 1.2
    #: session ticket/ID) instead of a full handshake.
    resumed: bool = False
    #: The certificates behind ``peer_pins``, DER, leaf first (the verified chain, or as
    #: sent when nothing was verified): for tools that show subject, issuer and expiry.
    peer_certificates: tuple[bytes, ...] = ()

    @property
    def pins(self) -> tuple[str, ...]:
        """``peer_pins`` as ``sha256/BASE64`` strings, leaf first: ready for ``pins=``."""
        return tuple(format_pin(d) for d in self.peer_pins)

    def __repr__(self) -> str:
        return (
            f"TLSInfo(version={self.version!r}, cipher={self.cipher!r}, alpn={self.alpn!r}, "
            f"authenticated={self.authenticated!r}, auth_error={self.auth_error!r}, "
            f"resumed={self.resumed!r}, pins={list(self.pins)!r}, "
            f"certificates={len(self.peer_certificates)})"
        )


@dataclasses.dataclass(frozen=True)
class SavedSession:
    """A TLS session to offer when reconnecting, with what its handshake established."""

    #: Index of the attempt in ``TLSPolicy.attempts()``: the context it belongs to.
    attempt: int
    session: ssl.SSLSession
    #: The authentication outcome of the handshake that made the session.
    tls: TLSInfo


def _stamp(path: str) -> tuple[int, int] | None:
    """When and how big ``path`` is: a CA file that changes is loaded again."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # loading it will say why
    return st.st_mtime_ns, st.st_size


@dataclasses.dataclass(frozen=True)
class _Setting:
    """What a context is made of: contexts with the same setting are one and the same."""

    ca_file: str | None  # None: no verification
    ca_stamp: tuple[int, int] | None
    verify: bool
    check_hostname: bool
    client_cert: str | None
    client_key: str | None
    cert_stamp: tuple[int, int] | None
    key_stamp: tuple[int, int] | None
    keylog: str | None


@functools.lru_cache(maxsize=32)
def _context(setting: _Setting) -> ssl.SSLContext:
    """The context of one TLS setting, shared by every server and client that has it
    (dotclient never changes a context after it is made): loading a CA bundle costs
    ~50 ms and ~0.7 MB, once per setting instead of once per server and client."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.set_alpn_protocols(["dot"])  # RFC 7858 section 3.2 / IANA ALPN "dot"
    if setting.keylog is not None:
        try:
            ctx.keylog_filename = setting.keylog
        except OSError:  # a file that cannot be opened is ignored, as curl ignores it
            pass
    if setting.client_cert is not None:
        try:
            ctx.load_cert_chain(setting.client_cert, setting.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"cannot load client_cert {setting.client_cert!r}"
                + (f" / client_key {setting.client_key!r}" if setting.client_key else "")
                + f": {exc}"
            ) from exc
    # RFC 6125 section 6.4.4 / RFC 8310 section 8: subjectAltName only. Python leaves
    # OpenSSL's fallback to the subject CN on (for a certificate with no SAN).
    ctx.hostname_checks_common_name = False
    if setting.verify:
        assert setting.ca_file is not None
        try:
            ctx.load_verify_locations(cafile=setting.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load ca_file {setting.ca_file!r}: {exc}") from exc
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = setting.check_hostname
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TLSPolicy:
    """How to make and check TLS connections to one server. Built once per client."""

    def __init__(
        self,
        server: Server,
        *,
        ca_file: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        sni: str | bool | None = None,
        pin_only: bool = False,
        profile: str = "strict",
        client_cert: str | None = None,
        client_key: str | None = None,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"profile must be 'strict' or 'opportunistic', not {profile!r}")
        if pin_only and not server.pins:
            raise ValueError("pin_only=True needs at least one SPKI pin (pins=[...])")
        if ssl_context is not None and ca_file is not None:
            raise ValueError("give ca_file or ssl_context, not both")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(f"ssl_context must be an ssl.SSLContext, not {type(ssl_context)}")
        if client_key is not None and client_cert is None:
            raise ValueError("client_key needs client_cert (the certificate it belongs to)")
        if client_cert is not None and ssl_context is not None:
            raise ValueError(
                "give client_cert or ssl_context, not both (load the certificate into "
                "your context with load_cert_chain)"
            )
        self.client_cert = None if client_cert is None else os.fspath(client_cert)
        self.client_key = None if client_key is None else os.fspath(client_key)
        self.server = server
        self.profile = profile
        self.pin_only = pin_only
        self.ca_file = ca_file
        self.verify_name = server.verify_name
        #: The SNI name sent, or None for no SNI.
        self.sni = self._choose_sni(server, sni)
        # What goes to wrap_socket as server_hostname. For an IP literal Python sends no
        # SNI but has OpenSSL check the IP, which is just what a bare-IP server needs.
        auto_ip = sni in (None, True) and server.auth_name is None and server.is_ip
        self.wrap_hostname = self.verify_name if auto_ip else self.sni
        self._user_context = ssl_context
        if (
            ssl_context is not None
            and ssl_context.check_hostname
            and (self.wrap_hostname != self.verify_name)
        ):
            raise ValueError(
                "ssl_context.check_hostname is True, so the SNI name must be the "
                f"authentication name {self.verify_name!r}; set check_hostname = False "
                "and dotclient checks the name itself"
            )
        # Built now, so a bad ca_file is reported when the client is made.
        self._attempts = self._build_attempts()
        # check() reads every handshake's certificates with cryptography: its first
        # import (tens of ms) belongs here, not in the first query's elapsed time.
        import cryptography.x509  # noqa: F401
        from cryptography.hazmat.primitives import serialization  # noqa: F401

    @staticmethod
    def _choose_sni(server: Server, sni: str | bool | None) -> str | None:
        if sni is None or sni is True:
            name = server.verify_name
            if not is_ip(name):
                return name
            return None  # SNI carries host names only (RFC 6066 section 3)
        if sni is False or sni == "":
            return None
        if not isinstance(sni, str):
            raise TypeError(f"sni must be a str, False or None, not {type(sni).__name__}")
        if is_ip(sni):
            raise ValueError(f"sni must be a host name, not an IP address ({sni!r})")
        name = sni.rstrip(".").lower()
        try:  # as the ssl module will encode it, so that it cannot fail at query time
            encoded = name.encode("idna")
        except UnicodeError as exc:
            raise ValueError(f"sni is not a valid host name ({exc}): {sni[:70]!r}") from exc
        if len(encoded) > 253:
            raise ValueError(f"sni is longer than a host name can be: {sni[:70]!r}...")
        return name

    def _base_context(self, verify: bool) -> ssl.SSLContext:
        if verify:
            ca_file = self.ca_file
            if ca_file is None:
                import certifi

                ca_file = certifi.where()
        else:
            ca_file = None
        return _context(
            _Setting(
                ca_file,
                _stamp(ca_file) if ca_file is not None else None,
                verify,
                verify and self.wrap_hostname == self.verify_name,
                self.client_cert,
                self.client_key,
                _stamp(self.client_cert) if self.client_cert is not None else None,
                _stamp(self.client_key) if self.client_key is not None else None,
                _keylog_file(),
            )
        )

    def attempts(self) -> list[Attempt]:
        """The attempts to make, in order; later ones only after authentication failed."""
        return self._attempts

    def _build_attempts(self) -> list[Attempt]:
        attempts: list[Attempt] = []
        if self.pin_only:
            attempts.append(Attempt(self._base_context(False), self.sni, False, False))
        elif self._user_context is not None:
            ctx = self._user_context
            verifies = ctx.verify_mode != ssl.CERT_NONE
            hostname = self.wrap_hostname if ctx.check_hostname else self.sni
            attempts.append(Attempt(ctx, hostname, verifies, ctx.check_hostname))
        else:
            ctx = self._base_context(True)
            hostname = self.wrap_hostname if ctx.check_hostname else self.sni
            attempts.append(Attempt(ctx, hostname, True, ctx.check_hostname))
        if self.profile == "opportunistic":
            attempts.append(Attempt(self._base_context(False), self.sni, False, False, True))
        return attempts

    def check(self, ssl_object: Any, attempt: Attempt, previous: str | None = None) -> TLSInfo:
        """Check a finished handshake; raise :class:`AuthenticationError` or
        :class:`TLSError` if the connection must not be used.

        ``previous`` is why the last attempt failed authentication, kept on the result
        of an opportunistic fallback.
        """
        version = ssl_object.version() or "unknown"
        if version in _OLD_VERSIONS:
            raise TLSError(f"{self.server} negotiated {version}; TLS 1.2 or later is required")
        cipher = ssl_object.cipher()

        def info(authenticated: bool, auth_error: str | None = None) -> TLSInfo:
            return TLSInfo(
                version=version,
                cipher=cipher[0] if cipher else None,
                alpn=ssl_object.selected_alpn_protocol(),
                authenticated=authenticated,
                auth_error=auth_error,
                peer_pins=digests,
                peer_certificates=tuple(chain),
            )

        chain = peer_chain(ssl_object, verified=attempt.verifies_chain)
        # Only a chain OpenSSL built and verified counts as verified below.
        verified = attempt.verifies_chain and bool(chain)
        if not chain:
            chain = peer_chain(ssl_object, verified=False)
        if not chain:
            raise AuthenticationError(f"{self.server} presented no certificate")
        digests = tuple(spki_digest(der) for der in chain)
        if attempt.fallback:
            return info(False, previous)
        if not verified and not self.pin_only:
            # A caller's own ssl_context with CERT_NONE: only a pin on the server's own
            # certificate can authenticate it.
            reason = "certificate not verified (ssl_context has verify_mode CERT_NONE)"
            if self.server.pins and digests[0] in self.server.pins:
                return info(True)
            raise AuthenticationError(f"{self.server}: {reason}", server=self.server)
        if not self.pin_only:
            self._check_name(chain[0])
        if self.server.pins:
            self._check_pins(digests, verified)
        return info(True)

    def _check_name(self, certificate: bytes) -> None:
        """Raise :class:`AuthenticationError` unless the certificate (DER) is valid for
        the authentication name.

        Checked even when OpenSSL checked the name in the handshake: a caller's
        ssl_context may let OpenSSL accept the subject CN of a certificate without
        subjectAltName (hostname_checks_common_name), which RFC 6125 section 6.4.4
        forbids; this matcher never looks at the CN."""
        if not certificate_matches(certificate, self.verify_name):
            dns_names, ips = certificate_names(certificate)
            names = ", ".join(dns_names + ips) or "none"
            raise AuthenticationError(
                f"certificate of {self.server} is not valid for {self.verify_name!r} "
                f"(its names: {names})",
                server=self.server,
            )

    def _check_pins(self, digests: tuple[bytes, ...], verified: bool) -> None:
        """Raise :class:`AuthenticationError` unless a pin matches the chain's SPKI
        ``digests`` (the server's own first).

        With a verified chain any of its certificates may be pinned; without one
        (pin_only) only the server's own, or anybody could replay a CA's cert."""
        candidates = digests if verified else digests[:1]
        if not any(d in self.server.pins for d in candidates):
            raise AuthenticationError(
                f"no SPKI pin matched {self.server}: it presented "
                + ", ".join(format_pin(d) for d in candidates)
                + "; expected one of "
                + ", ".join(format_pin(p) for p in self.server.pins),
                server=self.server,
            )
