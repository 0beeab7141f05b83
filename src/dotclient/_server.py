"""Server specifications: the strings users type, parsed once into :class:`Server`."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import ipaddress
import os
import re
from collections.abc import Iterable

from ._exceptions import InvalidServerSpec

__all__ = ["DEFAULT_PORT", "PRESETS", "Server", "is_ip", "parse_pin", "parse_server"]

#: The DoT port (RFC 7858 section 3.1).
DEFAULT_PORT = 853
#: The port a DoT server never uses: RFC 7858 section 3.1 lets a server use another
#: port than 853 by agreement, but "MUST NOT" be 53, plain DNS's.
_PLAIN_DNS_PORT = 53
_PLAIN_DNS_PORT_REASON = "port 53 is plain DNS's; a DoT port must not be 53 (RFC 7858 section 3.1)"

_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")


@functools.lru_cache(maxsize=1024)
def _ip_literal(text: str) -> str | None:
    """``text`` as ``ipaddress`` writes it when it is an IP address literal, else None.

    Cached: a client is made of a few strings that are checked again and again (each
    ``resolve()`` parses its server spec, builds a Server and a TLS policy, connects),
    and ``ipaddress`` takes microseconds to say no to a host name."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _normal_ip(text: object) -> str | None:
    """:func:`_ip_literal` for a str (cached); anything else as ``ipaddress`` takes it."""
    if isinstance(text, str):
        return _ip_literal(text)
    try:
        return str(ipaddress.ip_address(text))  # type: ignore[arg-type]
    except ValueError:
        return None


def is_ip(text: str) -> bool:
    """Whether ``text`` is an IPv4 or IPv6 address literal (no brackets, no port)."""
    return _normal_ip(text) is not None


def _check_hostname(name: str, spec: str, what: str = "hostname") -> str:
    """Return ``name`` lower-cased without a trailing dot, or raise naming the bad part."""
    bare = name[:-1] if name.endswith(".") else name
    if not bare or len(bare) > 253:
        raise InvalidServerSpec(f"invalid {what} {name!r} in server spec {spec!r}")
    try:
        bare.encode("ascii")
    except UnicodeEncodeError:
        try:
            bare = bare.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidServerSpec(
                f"invalid {what} {name!r} in server spec {spec!r}: not a valid IDN"
            ) from None
    for label in bare.split("."):
        if not _LABEL.match(label):
            raise InvalidServerSpec(
                f"invalid {what} {name!r} in server spec {spec!r}: bad label {label!r}"
            )
    if bare.rsplit(".", 1)[-1].isdigit():
        raise InvalidServerSpec(
            f"invalid {what} {name!r} in server spec {spec!r}: not an IP address or a name"
        )
    return bare.lower()


_PIN_FORM = "expected sha256/BASE64, the base64 of a SHA-256 SPKI digest (44 characters)"


_ALGORITHM = re.compile(r"(sha-?\d*|md5)[/:]", re.IGNORECASE)


def _pin_problem(value: str, size: int | None) -> str:
    """Why ``value`` is no pin (``size``: its length decoded, None if not base64):
    another algorithm, ``sha256:`` for ``sha256/``, a missing '='."""
    algorithm = _ALGORITHM.match(value)
    if algorithm:
        name = algorithm.group(1)
        if name.lower().replace("-", "") == "sha256":
            return "write 'sha256/', not 'sha256:'"
        return f"{name} pins are not supported"
    if size is not None:
        return f"{size} bytes, a SHA-256 pin has 32"
    if len(value) == 43 and not value.endswith("="):
        return "not base64 (is the final '=' missing?)"
    return "not base64"


def parse_pin(pin: str | bytes) -> bytes:
    """Parse an SPKI pin (RFC 7858 section 4.2) into the 32-byte SHA-256 digest.

    Accepts ``"sha256/BASE64"`` (the form ``dotclient probe`` and HPKP print), a bare
    base64 digest, or the 32 raw digest bytes. A malformed pin raises ``ValueError``
    saying which form is expected (a pin is not a server spec: not
    :class:`InvalidServerSpec`).
    """
    if isinstance(pin, bytes) and len(pin) == 32:
        return pin
    if isinstance(pin, bytes) and not pin.isascii():
        raise ValueError(f"invalid SPKI pin: {len(pin)} raw bytes, a SHA-256 digest has 32")
    text = pin.decode("ascii", "replace") if isinstance(pin, bytes) else pin
    if not isinstance(text, str):
        raise TypeError(f"a pin is a str, not {type(pin).__name__}")
    value = text.strip()
    for prefix in ("sha256/", "sha-256/", "pin-sha256="):
        if value.lower().startswith(prefix):
            value = value[len(prefix) :].strip('"')
            break
    try:
        digest: bytes | None = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = None
    if digest is None or len(digest) != 32:
        problem = _pin_problem(value, None if digest is None else len(digest))
        raise ValueError(f"invalid SPKI pin {text!r}: {problem}; {_PIN_FORM}")
    return digest


@dataclasses.dataclass(frozen=True)
class Server:
    """One DoT server: where to connect and how to authenticate it.

    ``host`` is an IP address or a hostname (resolved with the system resolver at connect
    time). ``auth_name`` is the authentication domain name (RFC 8310 section 2) checked
    against the certificate and sent as SNI; when None, a hostname ``host`` is its own
    authentication name and an IP ``host`` must appear as an IP address in the
    certificate. ``pins`` are SHA-256 SPKI digests (32 bytes each, see :func:`parse_pin`);
    when given, one of them must match a certificate in the chain.
    """

    host: str
    port: int = DEFAULT_PORT
    auth_name: str | None = None
    pins: tuple[bytes, ...] = ()
    #: A short label for messages, e.g. the preset name.
    label: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        spec = str(self.host)
        if not isinstance(self.host, str) or not self.host:
            raise InvalidServerSpec(f"server host must be a non-empty str, got {self.host!r}")
        host = self.host.strip("[]") if self.host.startswith("[") else self.host
        ip = _normal_ip(host)
        object.__setattr__(self, "host", ip if ip is not None else _check_hostname(host, spec))
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise InvalidServerSpec(f"server port must be an int, got {self.port!r}")
        if not 0 < self.port < 65536:
            raise InvalidServerSpec(f"invalid port {self.port} for server {spec!r}")
        if self.port == _PLAIN_DNS_PORT:
            raise InvalidServerSpec(
                f"invalid port 53 for server {spec!r}: {_PLAIN_DNS_PORT_REASON}"
            )
        if self.auth_name is not None:
            name = _normal_ip(self.auth_name)
            if name is None:
                name = _check_hostname(self.auth_name, spec, "authentication name")
            object.__setattr__(self, "auth_name", name)
        if self.auth_name == self.host:
            object.__setattr__(self, "auth_name", None)  # "1.1.1.1#1.1.1.1" is "1.1.1.1"
        pins = self.pins
        if isinstance(pins, (str, bytes)):
            pins = (pins,)
        # dict.fromkeys: drop repeats, keep order
        object.__setattr__(self, "pins", tuple(dict.fromkeys(parse_pin(p) for p in pins)))

    @property
    def is_ip(self) -> bool:
        """True when ``host`` is an IP address literal."""
        return is_ip(self.host)

    @property
    def verify_name(self) -> str:
        """The name or IP the certificate must carry (RFC 8310 section 8)."""
        return self.auth_name or self.host

    def replace(self, **changes: object) -> Server:
        """Return a copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{host}:{self.port}"
        if self.auth_name:  # never equal to host: __post_init__ drops that
            text += f"#{self.auth_name}"
        return text


def _preset(label: str, host: str, name: str) -> Server:
    return Server(host, DEFAULT_PORT, name, label=label)


#: Public resolvers, from the providers' own documentation of their DoT service.
#: One address each; give several with ``servers=`` for failover.
PRESETS: dict[str, Server] = {
    # https://developers.cloudflare.com/1.1.1.1/encryption/dns-over-tls/
    "cloudflare": _preset("cloudflare", "1.1.1.1", "cloudflare-dns.com"),
    # https://developers.google.com/speed/public-dns/docs/dns-over-tls
    "google": _preset("google", "8.8.8.8", "dns.google"),
    # https://www.quad9.net/service/service-addresses-and-features
    "quad9": _preset("quad9", "9.9.9.9", "dns.quad9.net"),
}

DEFAULT_SERVER_ENV = "DOTCLIENT_SERVER"


def _parse_port(text: str, spec: str) -> int:
    # isascii: str.isdigit also accepts digits like '\u0663' or '\u00b2'.
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise InvalidServerSpec(f"invalid port {text!r} in server spec {spec!r}")
    if int(text) == _PLAIN_DNS_PORT:
        raise InvalidServerSpec(
            f"invalid port {text!r} in server spec {spec!r}: {_PLAIN_DNS_PORT_REASON}"
        )
    return int(text)


def parse_server(
    spec: str | Server | None = None,
    *,
    auth_name: str | None = None,
    pins: Iterable[str | bytes] | None = None,
) -> Server:
    """Parse a server specification into a :class:`Server`.

    Accepted forms: ``"1.1.1.1"``, ``"1.1.1.1:853"``, ``"1.1.1.1@853"`` (Unbound's form),
    ``"[2606:4700:4700::1111]:853"``, a bare IPv6 address, ``"1.1.1.1#cloudflare-dns.com"``
    (address plus authentication domain name), ``"dns.google"`` and ``"dns.google:853"``,
    and the presets ``"cloudflare"``, ``"google"`` and ``"quad9"``. ``None`` means
    ``$DOTCLIENT_SERVER``, else the ``cloudflare`` preset. ``auth_name`` and ``pins``
    override or extend what the spec says.
    """
    if spec is None:
        spec = os.environ.get(DEFAULT_SERVER_ENV) or "cloudflare"
    if isinstance(spec, Server):
        server = spec
    elif isinstance(spec, str):
        server = _parse_text(spec)
    else:
        raise TypeError(f"server must be a str or Server, not {type(spec).__name__}")
    changes: dict[str, object] = {}
    if auth_name is not None:
        changes["auth_name"] = auth_name
    if pins is not None:
        if isinstance(pins, (str, bytes)):
            pins = [pins]
        changes["pins"] = server.pins + tuple(pins)  # Server parses and dedupes them
    return server.replace(**changes) if changes else server


def _parse_text(spec: str) -> Server:
    """The Server a spec names: a preset (looked up in :data:`PRESETS` each time, which
    a program may change), else the address it spells (:func:`_parse_address`)."""
    text = spec.strip()
    if not text:
        raise InvalidServerSpec("empty server spec")
    scheme, sep, after = text.partition("://")
    if sep:
        if scheme.lower() != "tls":
            raise InvalidServerSpec(
                f"server spec {spec!r} has a scheme {scheme + '://'!r}: specs take none "
                "(or tls://), e.g. 1.1.1.1, 1.1.1.1:853#cloudflare-dns.com, dns.google"
            )
        text = after  # tls://HOST[:PORT], as stubby, kdig and others write DoT servers
    preset = PRESETS.get(text.lower())
    if preset is not None:
        return preset
    rest, sep, name = text.partition("#")
    if sep and rest.lower() in PRESETS:
        raise InvalidServerSpec(
            f"{rest!r} in server spec {spec!r} is a preset with its own authentication name "
            f"({PRESETS[rest.lower()].auth_name}); for another one give an address: "
            f"{PRESETS[rest.lower()].host}#{name}"
        )
    return _parse_address(text, spec)


@functools.lru_cache(maxsize=256)
def _parse_address(text: str, spec: str) -> Server:
    """The Server the spec ``text`` spells (no scheme, not a preset). Cached: a spec
    always spells the same Server (a frozen value), and a program that calls
    ``resolve()`` again and again gives the same few specs; a bad spec is not cached
    and raises every time."""
    rest, sep, name = text.partition("#")
    if sep and not name:
        raise InvalidServerSpec(f"empty authentication name after '#' in server spec {spec!r}")
    auth_name = name or None
    port = DEFAULT_PORT
    if rest.startswith("["):
        host, bracket, after = rest[1:].partition("]")
        if not bracket:
            raise InvalidServerSpec(f"missing ']' in server spec {spec!r}")
        if after:
            if after[0] not in ":@":
                raise InvalidServerSpec(f"unexpected {after!r} after ']' in server spec {spec!r}")
            port = _parse_port(after[1:], spec)
        if not is_ip(host):
            raise InvalidServerSpec(f"invalid IPv6 address {host!r} in server spec {spec!r}")
    elif "@" in rest:
        host, _, port_text = rest.rpartition("@")
        port = _parse_port(port_text, spec)
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
        port = _parse_port(port_text, spec)
    else:
        host = rest  # a name, an IPv4 address or a bare IPv6 address
        if ":" in host and not is_ip(host):
            raise InvalidServerSpec(f"invalid IPv6 address {host!r} in server spec {spec!r}")
    if not host:
        raise InvalidServerSpec(f"missing host in server spec {spec!r}")
    # Checked here as well as in Server, so that messages quote the whole spec.
    if not is_ip(host):
        if host.replace(".", "").isdigit():
            raise InvalidServerSpec(f"invalid IPv4 address {host!r} in server spec {spec!r}")
        _check_hostname(host, spec)
    if auth_name is not None and not is_ip(auth_name):
        _check_hostname(auth_name, spec, "authentication name")
    return Server(host, port, auth_name)
