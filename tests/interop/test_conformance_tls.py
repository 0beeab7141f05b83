"""TLS requirements of RFC 7858, RFC 8310 and RFC 6125 checked against real servers.

- No profile and no path (dotclient's contexts or a caller's ``ssl_context``) accepts a
  certificate by its subject common name: a CA-issued certificate for dot.test with no
  subjectAltName fails authentication (RFC 6125 section 6.4.4, RFC 8310 section 8).
- Two SPKI pins where only the second (the backup) matches authenticate the server
  (RFC 7858 section 4.2: "one or more" pins).
- Pins in the opportunistic profile: kept, with a warning when the client is made; a
  pin that does not match leaves the answer unauthenticated, and says why.
- The ClientHello, as a server receives it, offers TLS 1.2 suites with ECDHE and AES-GCM
  or ChaCha20-Poly1305 only (RFC 7858 section 8, BCP 195): no CBC, no plain DHE, no RSA
  key exchange.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import dotclient
from dotclient._tls import TLSPolicy, format_pin
from dotclient.testing import IssuedCert, TestCA, UnboundServer

from support.fakeserver import FakeConnection, FakeServer
from support.memtls import pump
from support.modes import open_client


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
        # Key identifiers as a CA issues them: Python 3.13's default contexts verify
        # with VERIFY_X509_STRICT, which refuses a leaf without them before any name
        # check is reached (the test is about the name, not the identifiers).
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca._ski),
            critical=False,
        )
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


# TLS 1.2 suites BCP 195 allows here (IANA code points): ECDHE with AES-GCM or
# ChaCha20-Poly1305, ECDSA or RSA certificates.
_ECDHE_AEAD = {
    0xC02B: "ECDHE-ECDSA-AES128-GCM-SHA256",
    0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384",
    0xC02F: "ECDHE-RSA-AES128-GCM-SHA256",
    0xC030: "ECDHE-RSA-AES256-GCM-SHA384",
    0xCCA8: "ECDHE-RSA-CHACHA20-POLY1305",
    0xCCA9: "ECDHE-ECDSA-CHACHA20-POLY1305",
}
_TLS13 = {0x1301, 0x1302, 0x1303, 0x1304, 0x1305}
_SCSV = {0x00FF, 0x5600}  # renegotiation info and fallback signalling values


def _offered_suites(hello: bytes) -> set[int]:
    """The cipher suites of a TLS ClientHello record (RFC 8446 section 4.1.2), parsed
    here independently of the ssl module."""
    assert hello[0] == 22, "not a handshake record"
    (record_length,) = struct.unpack_from("!H", hello, 3)
    body = hello[5 : 5 + record_length]
    assert body[0] == 1, "not a ClientHello"
    pos = 4 + 2 + 32  # handshake header, legacy_version, random
    pos += 1 + body[pos]  # legacy_session_id
    (length,) = struct.unpack_from("!H", body, pos)
    suites = body[pos + 2 : pos + 2 + length]
    return {struct.unpack_from("!H", suites, i)[0] for i in range(0, length, 2)}


def _read_client_hello(conn: FakeConnection) -> None:
    """With tls=False: read the whole first TLS record (the ClientHello), then close."""
    data = b""
    while len(data) < 5 or len(data) < 5 + struct.unpack_from("!H", data, 3)[0]:
        chunk = conn.recv_some()
        if not chunk:
            return
        data += chunk
    conn.sock.shutdown(socket.SHUT_RDWR)


def test_the_client_hello_offers_ecdhe_aead_suites_only(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    with FakeServer(server_cert, _read_client_hello, tls=False) as server:
        with open_client(mode, server.spec, ca_file=ca_file, timeout=5) as client:
            with pytest.raises(dotclient.DoTError):
                client.resolve("a.test")
        server.wait_handlers()
        offered = _offered_suites(bytes(server.streams[0]))
    tls12 = offered - _TLS13 - _SCSV
    assert tls12 and tls12 <= set(_ECDHE_AEAD), sorted(hex(s) for s in tls12 - set(_ECDHE_AEAD))
    assert {0xC02B, 0xC02F} <= tls12  # the suites RFC 7525 section 4.2 recommends
    assert offered & _TLS13  # TLS 1.3 stays on


def test_the_suite_parser_sees_what_bcp_195_forbids() -> None:
    """The control: OpenSSL's default client offers more (plain DHE, CBC with SHA-2,
    as OpenSSL 3.0 does), and the parser finds them, so the test above could fail."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    outgoing = ssl.MemoryBIO()
    client = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname="dot.test")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    offered = _offered_suites(outgoing.read())
    assert offered - _TLS13 - _SCSV - set(_ECDHE_AEAD)


def test_a_tls12_only_server_negotiates_an_aead_suite(test_ca: TestCA, ca_file: str) -> None:
    """A TLS 1.2 server offering every suite agrees on an ECDHE AEAD one with dotclient."""
    policy = TLSPolicy(dotclient.Server("127.0.0.1", auth_name="dot.test"), ca_file=ca_file)
    cert = test_ca.issue("dot.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.maximum_version = ssl.TLSVersion.TLSv1_2
    server_context.set_ciphers("ALL")
    with tempfile.TemporaryDirectory() as tmp:
        server_context.load_cert_chain(*cert.write(Path(tmp)))
    bios = [ssl.MemoryBIO() for _ in range(4)]
    (attempt,) = policy.attempts()
    client = attempt.context.wrap_bio(bios[0], bios[1], server_hostname="dot.test")
    server = server_context.wrap_bio(bios[2], bios[3], server_side=True)
    pump(client, server, bios)
    name, version, _ = client.cipher()
    assert version == "TLSv1.2" and name in _ECDHE_AEAD.values()


def test_pins_in_the_opportunistic_profile_warn_and_do_not_authenticate(
    mode: str, unbound: UnboundServer, ca_file: str, server_cert: IssuedCert
) -> None:
    """Kept, not refused (the probe needs it): the client warns when made, and a pin
    mismatch leaves the answer unauthenticated with the reason; a match authenticates."""
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    for pin, authenticated in [(format_pin(b"\x01" * 32), False), (server_cert.spki_pin, True)]:
        with contextlib.ExitStack() as stack:
            with pytest.warns(UserWarning, match="pins with profile='opportunistic'"):
                client = stack.enter_context(
                    open_client(mode, spec, ca_file=ca_file, pins=[pin], profile="opportunistic")
                )
            response = client.resolve("www.dot.test")
        assert response.authenticated is authenticated
        if not authenticated:
            assert response.tls.auth_error is not None
            assert "no SPKI pin matched" in response.tls.auth_error
