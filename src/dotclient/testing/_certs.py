"""The throwaway certificate authority and the certificates it issues (EC P-256, SHA-256).

:class:`TestCA` issues server (and client) certificates, :func:`self_signed_cert` makes
certificates that are their own issuer; both return an :class:`IssuedCert` carrying the
PEM and DER forms, the key and the SPKI pin (RFC 7858 section 4.2).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import ipaddress
import os
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_ONE_HOUR = _dt.timedelta(hours=1)
_ONE_DAY = _dt.timedelta(days=1)
_CA_LIFETIME = _dt.timedelta(days=3650)


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
