"""TLS requirements of RFC 7858, RFC 8310 and RFC 6125 checked against real servers.

- No profile and no path (dotclient's contexts or a caller's ``ssl_context``) accepts a
  certificate by its subject common name: a CA-issued certificate for dot.test with no
  subjectAltName fails authentication (RFC 6125 section 6.4.4, RFC 8310 section 8).
- Two SPKI pins where only the second (the backup) matches authenticate the server
  (RFC 7858 section 4.2: "one or more" pins).
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import dotclient
from dotclient._tls import TLSPolicy, format_pin
from dotclient.testing import IssuedCert, TestCA, UnboundServer

from modes import open_client


def _cn_only_cert(ca: TestCA, common_name: str) -> IssuedCert:
    """A certificate from ``ca`` whose subject CN is ``common_name``, with no
    subjectAltName extension at all: what OpenSSL's CN fallback would accept."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca._name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca._key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return IssuedCert(
        cert_pem=cert_pem,
        chain_pem=cert_pem + ca.cert_pem,
        key_pem=key_pem,
        cert_der=cert.public_bytes(serialization.Encoding.DER),
        spki_pin="",
    )


@pytest.fixture(scope="module")
def cn_only_cert(test_ca: TestCA) -> IssuedCert:
    return _cn_only_cert(test_ca, "dot.test")


@pytest.fixture
def cn_only_server(
    unbound_factory: Callable[..., UnboundServer], cn_only_cert: IssuedCert
) -> UnboundServer:
    return unbound_factory(cert=cn_only_cert)


def test_no_common_name_fallback(mode: str, cn_only_server: UnboundServer, ca_file: str) -> None:
    """RFC 6125 section 6.4.4: a trusted certificate naming dot.test only in its CN is
    not valid for dot.test."""
    spec = f"127.0.0.1:{cn_only_server.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file) as client:
        with pytest.raises(dotclient.AuthenticationError):
            client.resolve("www.dot.test")


def test_no_common_name_fallback_through_a_callers_context(
    mode: str, cn_only_server: UnboundServer, ca_file: str
) -> None:
    """A caller's context with OpenSSL's CN fallback left on (Python's default) and
    check_hostname on: OpenSSL accepts the CN, dotclient still refuses it."""
    context = ssl.create_default_context(cafile=ca_file)
    context.hostname_checks_common_name = True
    assert context.check_hostname
    spec = f"127.0.0.1:{cn_only_server.port}#dot.test"
    with open_client(mode, spec, ssl_context=context) as client:
        with pytest.raises(dotclient.AuthenticationError, match="not valid for 'dot.test'"):
            client.resolve("www.dot.test")


def test_no_common_name_fallback_in_the_opportunistic_profile(
    mode: str, cn_only_server: UnboundServer, ca_file: str
) -> None:
    """Opportunistic: still answered (encrypted), but never called authenticated."""
    spec = f"127.0.0.1:{cn_only_server.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file, profile="opportunistic") as client:
        response = client.resolve("www.dot.test")
    assert response.authenticated is False


def test_dotclients_contexts_turn_the_common_name_fallback_off(ca_file: str) -> None:
    policy = TLSPolicy(dotclient.Server("127.0.0.1", auth_name="dot.test"), ca_file=ca_file)
    assert all(not a.context.hostname_checks_common_name for a in policy.attempts())


def test_the_backup_pin_alone_matches(
    mode: str, unbound: UnboundServer, ca_file: str, server_cert: IssuedCert
) -> None:
    """RFC 7858 section 4.2: a pin set holds a backup pin; the server's key matching the
    second pin only authenticates it, and a set matching neither fails (the control)."""
    spare = format_pin(b"\x01" * 32)
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    pins = [spare, server_cert.spki_pin]
    with open_client(mode, spec, ca_file=ca_file, pins=pins) as client:
        assert client.resolve("www.dot.test").authenticated
    with open_client(mode, spec, ca_file=ca_file, pins=[spare]) as client:
        with pytest.raises(dotclient.AuthenticationError, match="no SPKI pin matched"):
            client.resolve("www.dot.test")
