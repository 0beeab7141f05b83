"""Tests of dotclient.testing that start nothing: the throwaway CA, certificates, the
servers' configuration files and their checks (the servers themselves:
tests/servers/test_testing.py)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import stat
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

import dotclient.testing
from dotclient.testing import (
    DnsdistServer,
    IssuedCert,
    NamedServer,
    ServerNotFound,
    TestCA,
    UnboundNotFound,
    UnboundServer,
    self_signed_cert,
)

from support.checks import spki_pin
from support.servers import AnyServer


def test_issue(test_ca: TestCA) -> None:
    issued = test_ca.issue("dot.test", "*.wild.test", "127.0.0.1", "::1")
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    ca_cert = x509.load_pem_x509_certificate(test_ca.cert_pem)

    assert cert.public_bytes(serialization.Encoding.DER) == issued.cert_der
    assert issued.chain_pem == issued.cert_pem + test_ca.cert_pem
    cert.verify_directly_issued_by(ca_cert)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["dot.test", "*.wild.test"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)

    now = dt.datetime.now(dt.timezone.utc)
    assert cert.not_valid_before_utc < now - dt.timedelta(minutes=59)
    assert now + dt.timedelta(hours=23) < cert.not_valid_after_utc <= now + dt.timedelta(days=1)

    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    assert b"BEGIN PRIVATE KEY" in issued.key_pem  # PKCS#8, unencrypted
    assert key.public_key() == public_key
    assert spki_pin(issued.cert_der) == issued.spki_pin


def test_issue_validity(test_ca: TestCA) -> None:
    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    end = dt.datetime(2020, 1, 2, tzinfo=dt.timezone.utc)
    cert = x509.load_der_x509_certificate(
        test_ca.issue("old.test", not_before=start, not_after=end).cert_der
    )
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (start, end)
    with pytest.raises(ValueError):
        test_ca.issue("bad.test", not_before=end, not_after=start)


def test_issue_needs_names(test_ca: TestCA) -> None:
    with pytest.raises(ValueError):
        test_ca.issue()
    with pytest.raises(ValueError):
        self_signed_cert()


def test_self_signed_cert() -> None:
    issued = self_signed_cert("self.test", "127.0.0.1")
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert issued.chain_pem == issued.cert_pem
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["self.test"]
    assert spki_pin(issued.cert_der) == issued.spki_pin


def test_write(tmp_path: Path, server_cert: IssuedCert, test_ca: TestCA) -> None:
    cert_path, key_path = server_cert.write(tmp_path, "leaf")
    assert (cert_path, key_path) == (str(tmp_path / "leaf.pem"), str(tmp_path / "leaf.key"))
    assert Path(cert_path).read_bytes() == server_cert.chain_pem
    assert Path(key_path).read_bytes() == server_cert.key_pem
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert server_cert.write(str(tmp_path)) == (
        str(tmp_path / "server.pem"),
        str(tmp_path / "server.key"),
    )
    ca_path = test_ca.write_ca_file(tmp_path / "ca.pem")
    assert ca_path == str(tmp_path / "ca.pem")
    assert Path(ca_path).read_bytes() == test_ca.cert_pem


def test_issued_cert_repr_hides_key(server_cert: IssuedCert) -> None:
    assert "PRIVATE" not in repr(server_cert)
    assert server_cert.spki_pin in repr(server_cert)


def test_unbound_not_found(server_cert: IssuedCert) -> None:
    with pytest.raises(UnboundNotFound, match="apt-get install unbound") as info:
        UnboundServer(server_cert, unbound="/nonexistent")
    assert isinstance(info.value, ServerNotFound)
    assert "scripts/install-servers" in str(info.value)


@pytest.mark.parametrize("kind", [UnboundServer, NamedServer, DnsdistServer])
def test_host_must_be_ip(server_cert: IssuedCert, kind: type[AnyServer]) -> None:
    with pytest.raises(ValueError):
        kind(server_cert, host="localhost")


def test_dnsdist_options_in_config(server_cert: IssuedCert) -> None:
    server = DnsdistServer(
        server_cert,
        backend=("::1", 5300),
        max_queries_per_connection=3,
        max_in_flight=10,
        extra_config="setTCPRecvTimeout(1)\nsetMaxTCPConnectionDuration(9)",
        dnsdist=sys.executable,  # any executable: the server is not started
    )
    text = server.config_text()
    assert f'"{server._hostport()}", "<tmpdir>/server.pem", "<tmpdir>/server.key", ' in text
    assert "{maxInFlight=10})" in text
    assert 'newServer({address="[::1]:5300"})' in text
    assert "setMaxTCPQueriesPerConnection(3)" in text
    assert text.endswith("setTCPRecvTimeout(1)\nsetMaxTCPConnectionDuration(9)\n")


def test_dnsdist_needs_named_only_without_backend(server_cert: IssuedCert) -> None:
    with pytest.raises(ServerNotFound, match="named binary not found .* apt-get install bind9"):
        DnsdistServer(server_cert, named="/nonexistent", dnsdist=sys.executable)
    given = ("127.0.0.1", 53)
    any_binary = sys.executable  # the server is not started
    server = DnsdistServer(server_cert, backend=given, named="/nonexistent", dnsdist=any_binary)
    assert server.backend == given and server.backend_server is None


@pytest.mark.parametrize(
    ("kind", "option", "package"),
    [(NamedServer, "named", "bind9"), (DnsdistServer, "dnsdist", "dnsdist")],
)
def test_server_not_found(
    server_cert: IssuedCert, kind: type[AnyServer], option: str, package: str
) -> None:
    with pytest.raises(ServerNotFound, match=f"apt-get install {package}") as info:
        kind(server_cert, **{option: "/nonexistent"})  # type: ignore[arg-type]
    assert f"{option} binary not found at '/nonexistent'" in str(info.value)
    assert not isinstance(info.value, UnboundNotFound)


def test_public_names() -> None:
    """The package re-exports the names the module had (issue 11 made it a package)."""
    assert dotclient.testing.__all__ == [
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
    for name in dotclient.testing.__all__:
        assert getattr(dotclient.testing, name) is not None
