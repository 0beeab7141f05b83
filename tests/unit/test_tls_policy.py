"""Certificate name matching, SPKI pins and TLSPolicy choices (no sockets).

The few handshakes here run between two ``ssl.SSLObject`` over memory BIOs.
"""

from __future__ import annotations

import base64
import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dotclient import Server, parse_server
from dotclient._server import parse_pin
from dotclient._tls import (
    TLSPolicy,
    certificate_matches,
    certificate_names,
    format_pin,
    spki_digest,
)
from dotclient.testing import IssuedCert, TestCA, self_signed_cert

from support.memtls import pump


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def cert(ca: TestCA) -> IssuedCert:
    return ca.issue("dot.test", "*.example.test", "192.0.2.1", "2001:db8::1")


def _cert_with_sans(*names: x509.GeneralName, common_name: str = "dot.test") -> bytes:
    """A self-signed DER certificate with exactly these SAN entries (none: no SAN)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


# -- certificate_matches ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "dot.test",
        "DOT.Test",
        "dot.test.",
        "a.example.test",
        "www.example.test",
        "A.EXAMPLE.TEST.",
        "192.0.2.1",
        "2001:db8::1",
        "2001:DB8:0:0:0:0:0:1",
    ],
)
def test_certificate_matches(cert: IssuedCert, name: str) -> None:
    assert certificate_matches(cert.cert_der, name)


@pytest.mark.parametrize(
    "name",
    [
        "other.test",
        "dot.test.example",
        "xdot.test",
        "a.b.example.test",  # a wildcard covers one label only
        "example.test",  # ... and at least one
        ".example.test",
        "192.0.2.2",
        "2001:db8::2",
        "::ffff:192.0.2.1",
        "192.0.2.1.",  # not an IP literal any more: a DNS name, and no DNS SAN has it
        "",
    ],
)
def test_certificate_does_not_match(cert: IssuedCert, name: str) -> None:
    assert not certificate_matches(cert.cert_der, name)


def test_certificate_names(cert: IssuedCert) -> None:
    assert certificate_names(cert.cert_der) == (
        ["dot.test", "*.example.test"],
        ["192.0.2.1", "2001:db8::1"],
    )


def test_dns_san_that_looks_like_an_ip_does_not_match_the_ip() -> None:
    der = _cert_with_sans(x509.DNSName("192.0.2.1"), x509.DNSName("2001:db8::1"))
    assert certificate_names(der) == (["192.0.2.1", "2001:db8::1"], [])
    assert not certificate_matches(der, "192.0.2.1")
    assert not certificate_matches(der, "2001:db8::1")


def test_ip_san_does_not_match_a_dns_name(ca: TestCA) -> None:
    der = ca.issue("192.0.2.1").cert_der
    assert certificate_names(der) == ([], ["192.0.2.1"])
    assert certificate_matches(der, "192.0.2.1")
    assert not certificate_matches(der, "192.0.2.1.example")
    assert not certificate_matches(der, "dot.test")


def test_no_fallback_to_the_common_name() -> None:
    der = _cert_with_sans(common_name="dot.test")
    assert certificate_names(der) == ([], [])
    assert not certificate_matches(der, "dot.test")


def test_too_broad_wildcards_are_not_honoured() -> None:
    der = _cert_with_sans(x509.DNSName("*.test"), x509.DNSName("*"))
    assert not certificate_matches(der, "dot.test")
    assert not certificate_matches(der, "test")


def test_partial_wildcards_are_not_honoured() -> None:
    der = _cert_with_sans(x509.DNSName("d*.example.test"), x509.DNSName("a.*.test"))
    assert not certificate_matches(der, "dot.example.test")
    assert not certificate_matches(der, "a.example.test")


def test_wildcard_in_self_signed_cert() -> None:
    der = self_signed_cert("*.dot.test").cert_der
    assert certificate_matches(der, "ns1.dot.test")
    assert not certificate_matches(der, "dot.test")


# -- spki_digest / format_pin -------------------------------------------------------------


def test_spki_digest_agrees_with_issued_pin(cert: IssuedCert) -> None:
    digest = spki_digest(cert.cert_der)
    assert len(digest) == 32
    assert base64.b64decode(cert.spki_pin) == digest
    assert format_pin(digest) == f"sha256/{cert.spki_pin}"
    assert parse_pin(format_pin(digest)) == digest
    assert parse_pin(cert.spki_pin) == digest


def test_spki_digest_differs_between_keys(ca: TestCA, cert: IssuedCert) -> None:
    other = ca.issue("dot.test")
    assert spki_digest(other.cert_der) != spki_digest(cert.cert_der)
    assert format_pin(spki_digest(other.cert_der)) == f"sha256/{other.spki_pin}"
    own = self_signed_cert("dot.test")
    assert format_pin(spki_digest(own.cert_der)) == f"sha256/{own.spki_pin}"


def test_certificates_read_the_same_every_time(ca: TestCA, cert: IssuedCert) -> None:
    # Names and digests are remembered per certificate (by its whole DER): a caller's
    # lists stay its own, any bytes-like DER is read, and another certificate with the
    # same names but another key has its own digest.
    names = certificate_names(cert.cert_der)
    names[0].append("evil.test")
    names[1].append("203.0.113.1")
    expected = (["dot.test", "*.example.test"], ["192.0.2.1", "2001:db8::1"])
    assert certificate_names(cert.cert_der) == expected
    assert certificate_names(bytearray(cert.cert_der)) == expected
    assert not certificate_matches(cert.cert_der, "evil.test")
    assert not certificate_matches(cert.cert_der, "203.0.113.1")
    digest = base64.b64decode(cert.spki_pin)
    assert spki_digest(cert.cert_der) == spki_digest(bytearray(cert.cert_der)) == digest
    other = ca.issue("dot.test", "*.example.test", "192.0.2.1", "2001:db8::1")
    assert certificate_names(other.cert_der) == expected
    assert spki_digest(other.cert_der) == base64.b64decode(other.spki_pin) != digest


def test_garbage_certificate_raises_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ValueError):
            spki_digest(b"not a certificate")
        with pytest.raises(ValueError):
            certificate_names(b"not a certificate")


def test_format_pin() -> None:
    assert format_pin(b"\x00" * 32) == "sha256/" + "A" * 43 + "="
    assert format_pin(b"\xff" * 32) == "sha256/" + "/" * 42 + "8="


# -- TLSPolicy: validation ----------------------------------------------------------------

PIN = b"\x11" * 32


def test_profile_validation() -> None:
    server = parse_server("dns.google")
    assert TLSPolicy(server).profile == "strict"
    assert TLSPolicy(server, profile="opportunistic").profile == "opportunistic"
    for bad in ("lax", "Strict", "", "none"):
        with pytest.raises(ValueError, match="profile must be"):
            TLSPolicy(server, profile=bad)


def test_pin_only_needs_pins() -> None:
    with pytest.raises(ValueError, match="pin_only=True needs at least one SPKI pin"):
        TLSPolicy(parse_server("1.1.1.1"), pin_only=True)
    policy = TLSPolicy(parse_server("1.1.1.1", pins=[PIN]), pin_only=True)
    assert policy.pin_only


def test_ca_file_and_ssl_context_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give ca_file or ssl_context, not both"):
        TLSPolicy(
            parse_server("dns.google"),
            ca_file=str(tmp_path / "ca.pem"),
            ssl_context=ssl.create_default_context(),
        )


def test_ssl_context_type() -> None:
    with pytest.raises(TypeError, match="ssl_context must be an ssl.SSLContext"):
        TLSPolicy(parse_server("dns.google"), ssl_context="not a context")  # type: ignore[arg-type]


@pytest.mark.parametrize("sni", ["192.0.2.1", "::1", "2001:db8::1"])
def test_sni_ip_is_rejected(sni: str) -> None:
    with pytest.raises(ValueError, match="sni must be a host name, not an IP address"):
        TLSPolicy(parse_server("1.1.1.1#dot.test"), sni=sni)


def test_sni_wrong_type() -> None:
    with pytest.raises(TypeError, match="sni must be a str"):
        TLSPolicy(parse_server("dns.google"), sni=5)  # type: ignore[arg-type]


# -- TLSPolicy: SNI choices ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "sni", "expected_sni", "expected_wrap", "verify_name"),
    [
        ("dns.google", None, "dns.google", "dns.google", "dns.google"),
        ("dns.google", True, "dns.google", "dns.google", "dns.google"),
        (
            "1.1.1.1#cloudflare-dns.com",
            None,
            "cloudflare-dns.com",
            "cloudflare-dns.com",
            "cloudflare-dns.com",
        ),
        ("1.1.1.1", None, None, "1.1.1.1", "1.1.1.1"),
        ("[2001:db8::1]", None, None, "2001:db8::1", "2001:db8::1"),
        ("1.1.1.1", True, None, "1.1.1.1", "1.1.1.1"),
        ("1.1.1.1", False, None, None, "1.1.1.1"),
        ("1.1.1.1", "", None, None, "1.1.1.1"),
        ("dns.google", False, None, None, "dns.google"),
        ("1.1.1.1#dot.test", False, None, None, "dot.test"),
        ("1.1.1.1#dot.test", "Front.Example.", "front.example", "front.example", "dot.test"),
        ("1.1.1.1", "front.example", "front.example", "front.example", "1.1.1.1"),
        ("cloudflare", None, "cloudflare-dns.com", "cloudflare-dns.com", "cloudflare-dns.com"),
    ],
)
def test_sni_choices(
    spec: str,
    sni: str | bool | None,
    expected_sni: str | None,
    expected_wrap: str | None,
    verify_name: str,
) -> None:
    policy = TLSPolicy(parse_server(spec), sni=sni)
    assert policy.sni == expected_sni
    assert policy.wrap_hostname == expected_wrap
    assert policy.verify_name == verify_name


def test_ip_auth_name_sends_no_sni() -> None:
    policy = TLSPolicy(Server("192.0.2.1", auth_name="192.0.2.2"))
    assert policy.sni is None
    assert policy.verify_name == "192.0.2.2"
    assert policy.wrap_hostname is None


def test_user_context_with_check_hostname_needs_the_auth_name_as_sni() -> None:
    ctx = ssl.create_default_context()
    assert ctx.check_hostname
    with pytest.raises(ValueError, match="check_hostname is True"):
        TLSPolicy(parse_server("dns.google"), ssl_context=ctx, sni="other.example")
    with pytest.raises(ValueError, match="check_hostname is True"):
        TLSPolicy(parse_server("dns.google"), ssl_context=ctx, sni=False)
    # The same SNI is fine once the caller turns check_hostname off.
    ctx.check_hostname = False
    policy = TLSPolicy(parse_server("dns.google"), ssl_context=ctx, sni="other.example")
    (attempt,) = policy.attempts()
    assert attempt.context is ctx
    assert attempt.server_hostname == "other.example"
    assert attempt.verifies_chain
    assert not attempt.checks_name


def test_user_context_with_check_hostname_and_matching_sni() -> None:
    ctx = ssl.create_default_context()
    (attempt,) = TLSPolicy(parse_server("dns.google"), ssl_context=ctx).attempts()
    assert attempt.context is ctx
    assert attempt.server_hostname == "dns.google"
    assert attempt.checks_name
    assert attempt.verifies_chain
    (ip_attempt,) = TLSPolicy(parse_server("1.1.1.1"), ssl_context=ctx).attempts()
    assert ip_attempt.server_hostname == "1.1.1.1"


def test_user_context_without_verification() -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    (attempt,) = TLSPolicy(parse_server("dns.google"), ssl_context=ctx).attempts()
    assert not attempt.verifies_chain
    assert not attempt.checks_name


# -- TLSPolicy: attempts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "hostname"),
    [("dns.google", "dns.google"), ("1.1.1.1", "1.1.1.1"), ("1.1.1.1#dot.test", "dot.test")],
)
def test_strict_attempt(spec: str, hostname: str) -> None:
    policy = TLSPolicy(parse_server(spec))
    attempts = policy.attempts()
    assert len(attempts) == 1
    (attempt,) = attempts
    ctx = attempt.context
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    assert ctx.protocol == ssl.PROTOCOL_TLS_CLIENT
    assert ctx.cert_store_stats()["x509_ca"] > 10  # certifi's bundle
    assert attempt.server_hostname == hostname
    assert attempt.verifies_chain
    assert attempt.checks_name
    assert not attempt.fallback
    assert policy.attempts() is attempts  # built once


def test_strict_attempt_with_different_sni_checks_the_name_itself() -> None:
    (attempt,) = TLSPolicy(parse_server("1.1.1.1#dot.test"), sni="front.example").attempts()
    assert attempt.context.verify_mode == ssl.CERT_REQUIRED
    assert not attempt.context.check_hostname
    assert attempt.server_hostname == "front.example"
    assert attempt.verifies_chain
    assert not attempt.checks_name


def test_strict_attempt_without_sni() -> None:
    (attempt,) = TLSPolicy(parse_server("dns.google"), sni=False).attempts()
    assert attempt.server_hostname is None
    assert attempt.context.verify_mode == ssl.CERT_REQUIRED
    assert not attempt.context.check_hostname
    assert not attempt.checks_name


def test_opportunistic_adds_an_unverified_fallback() -> None:
    policy = TLSPolicy(parse_server("1.1.1.1#dot.test"), profile="opportunistic")
    first, fallback = policy.attempts()
    assert first.context.verify_mode == ssl.CERT_REQUIRED
    assert not first.fallback
    assert fallback.fallback
    assert fallback.context.verify_mode == ssl.CERT_NONE
    assert not fallback.context.check_hostname
    assert fallback.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert not fallback.verifies_chain
    assert not fallback.checks_name
    assert fallback.server_hostname == "dot.test"


def test_pin_only_attempt() -> None:
    policy = TLSPolicy(parse_server("192.0.2.1#dot.test", pins=[PIN]), pin_only=True)
    (attempt,) = policy.attempts()
    assert attempt.context.verify_mode == ssl.CERT_NONE
    assert attempt.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert attempt.server_hostname == "dot.test"
    assert not attempt.verifies_chain
    assert not attempt.fallback


def test_missing_ca_file_raises_at_construction(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope" / "ca.pem")
    with pytest.raises(ValueError, match="cannot load ca_file") as info:
        TLSPolicy(parse_server("dns.google"), ca_file=missing)
    assert missing in str(info.value)


def test_garbage_ca_file_raises_at_construction(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="cannot load ca_file"):
        TLSPolicy(parse_server("dns.google"), ca_file=str(bad)).attempts()


def test_ca_file_replaces_certifi(ca: TestCA, tmp_path: Path) -> None:
    path = ca.write_ca_file(tmp_path / "ca.pem")
    (attempt,) = TLSPolicy(parse_server("dns.google"), ca_file=path).attempts()
    assert attempt.context.cert_store_stats()["x509_ca"] == 1


# -- in-memory handshakes with the contexts attempts() builds ----------------------------


@pytest.fixture(scope="module")
def server_files(ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("tls")
    ca.issue("dot.test", "127.0.0.1").write(directory)
    return directory, ca.write_ca_file(directory / "ca.pem")


def _handshake(
    client_ctx: ssl.SSLContext, hostname: str | None, directory: Path, stem: str = "server"
) -> tuple[ssl.SSLObject, list[str | None]]:
    """Handshake ``client_ctx`` with a server presenting ``<stem>.pem``; return the client
    side and the SNI names the server saw."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(directory / f"{stem}.pem", directory / f"{stem}.key")
    server_ctx.set_alpn_protocols(["h2", "dot"])
    seen: list[str | None] = []

    def remember_sni(_obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        seen.append(name)

    server_ctx.sni_callback = remember_sni  # type: ignore[assignment]
    bios = [ssl.MemoryBIO() for _ in range(4)]
    client = client_ctx.wrap_bio(bios[0], bios[1], server_hostname=hostname)
    server = server_ctx.wrap_bio(bios[2], bios[3], server_side=True)
    pump(client, server, bios)
    return client, seen


def test_strict_context_negotiates_alpn_dot_and_modern_tls(server_files: tuple[Path, str]) -> None:
    directory, ca_file = server_files
    (attempt,) = TLSPolicy(parse_server("127.0.0.1#dot.test"), ca_file=ca_file).attempts()
    client, seen = _handshake(attempt.context, attempt.server_hostname, directory)
    assert client.selected_alpn_protocol() == "dot"
    assert client.version() in ("TLSv1.2", "TLSv1.3")
    assert seen == ["dot.test"]


def test_bare_ip_server_sends_no_sni_but_checks_the_ip(server_files: tuple[Path, str]) -> None:
    directory, ca_file = server_files
    (attempt,) = TLSPolicy(parse_server("127.0.0.1"), ca_file=ca_file).attempts()
    assert attempt.server_hostname == "127.0.0.1"
    client, seen = _handshake(attempt.context, attempt.server_hostname, directory)
    assert seen == [None]
    assert client.selected_alpn_protocol() == "dot"


def test_strict_context_rejects_a_wrong_ip(server_files: tuple[Path, str]) -> None:
    directory, ca_file = server_files
    (attempt,) = TLSPolicy(parse_server("127.0.0.2"), ca_file=ca_file).attempts()
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        _handshake(attempt.context, attempt.server_hostname, directory)


def test_strict_context_rejects_an_unknown_ca(server_files: tuple[Path, str]) -> None:
    directory, _ = server_files
    (attempt,) = TLSPolicy(parse_server("127.0.0.1#dot.test")).attempts()  # certifi only
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(attempt.context, attempt.server_hostname, directory)


def test_opportunistic_fallback_context_accepts_anything(server_files: tuple[Path, str]) -> None:
    directory, _ = server_files
    policy = TLSPolicy(parse_server("127.0.0.1#other.test"), profile="opportunistic")
    fallback = policy.attempts()[1]
    client, seen = _handshake(fallback.context, fallback.server_hostname, directory)
    assert seen == ["other.test"]
    assert client.selected_alpn_protocol() == "dot"


def _openssl_accepts(ca: TestCA, cert: IssuedCert, name: str, directory: Path) -> bool:
    """Whether OpenSSL's own hostname check (check_hostname=True) accepts ``name``."""
    cert.write(directory, "wild")
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cadata=ca.cert_pem.decode("ascii"))
    try:
        _handshake(client_ctx, name, directory, "wild")
    except ssl.SSLCertVerificationError:
        return False
    return True


@pytest.mark.parametrize("name", ["a.example.test", "a.b.example.test", "example.test"])
def test_wildcard_matching_agrees_with_openssl(ca: TestCA, tmp_path: Path, name: str) -> None:
    # The name is checked by OpenSSL when the SNI is the authentication name, by
    # certificate_matches otherwise: both must give the same answer.
    wild = ca.issue("*.example.test")
    assert certificate_matches(wild.cert_der, name) == _openssl_accepts(ca, wild, name, tmp_path)


def test_wildcard_matches_an_a_label_like_openssl(ca: TestCA, tmp_path: Path) -> None:
    wild = ca.issue("*.example.test")
    name = "xn--bcher-kva.example.test"
    assert _openssl_accepts(ca, wild, name, tmp_path)
    assert certificate_matches(wild.cert_der, name)
