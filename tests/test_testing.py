"""Tests of dotclient.testing: the throwaway CA and the unbound DoT server."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import socket
import ssl
import stat
from collections.abc import Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from dotclient.testing import (
    DEFAULT_ZONE,
    IssuedCert,
    TestCA,
    UnboundNotFound,
    UnboundServer,
    self_signed_cert,
)

Factory = Callable[..., UnboundServer]


def _query(
    server: UnboundServer,
    qname: str,
    rdtype: str,
    *,
    context: ssl.SSLContext,
    server_hostname: str = "dot.test",
) -> dns.message.Message:
    query = dns.message.make_query(qname, rdtype)
    return dns.query.tls(
        query,
        server.address,
        port=server.port,
        timeout=5,
        ssl_context=context,
        server_hostname=server_hostname,
    )


def _handshake(server: UnboundServer, context: ssl.SSLContext, server_hostname: str) -> bytes:
    """TLS handshake with the server; returns the DER certificate it presented."""
    with (
        socket.create_connection((server.address, server.port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname=server_hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def _pin(der: bytes) -> str:
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _rrset(
    message: dns.message.Message, section: list[dns.rrset.RRset], name: str, rdtype: str
) -> dns.rrset.RRset:
    matches = [
        r
        for r in section
        if r.name == dns.name.from_text(name) and r.rdtype == dns.rdatatype.from_text(rdtype)
    ]
    assert len(matches) == 1, message.to_text()
    return matches[0]


@pytest.fixture(scope="module")
def context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


# --- the zone, over DoT --------------------------------------------------------


def test_a(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    response = _query(unbound, "a.example.test", "A", context=context)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    rrset = _rrset(response, response.answer, "a.example.test.", "A")
    assert {r.to_text() for r in rrset} == {"192.0.2.1", "192.0.2.2"}


def test_aaaa(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    response = _query(unbound, "a.example.test", "AAAA", context=context)
    rrset = _rrset(response, response.answer, "a.example.test.", "AAAA")
    assert [r.to_text() for r in rrset] == ["2001:db8::1"]


def test_mx(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    response = _query(unbound, "example.test", "MX", context=context)
    rrset = _rrset(response, response.answer, "example.test.", "MX")
    assert [r.to_text() for r in rrset] == ["10 mail.example.test."]
    mail = _query(unbound, "mail.example.test", "A", context=context)
    assert [r.to_text() for r in _rrset(mail, mail.answer, "mail.example.test.", "A")] == [
        "192.0.2.25"
    ]


def test_soa_and_ns(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    soa = _query(unbound, "example.test", "SOA", context=context)
    assert _rrset(soa, soa.answer, "example.test.", "SOA")
    ns = _query(unbound, "example.test", "NS", context=context)
    assert [r.to_text() for r in _rrset(ns, ns.answer, "example.test.", "NS")] == [
        "ns.example.test."
    ]


def test_big_txt(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    response = _query(unbound, "big.example.test", "TXT", context=context)
    (rdata,) = _rrset(response, response.answer, "big.example.test.", "TXT")
    assert len(rdata.to_wire()) > 1000
    assert len(rdata.strings) > 1
    assert all(len(s) <= 255 for s in rdata.strings)
    assert len(response.to_wire()) > 1000


def test_case_insensitive(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    response = _query(unbound, "Mixed.Example.Test", "A", context=context)
    assert response.rcode() == dns.rcode.NOERROR
    rrset = _rrset(response, response.answer, "mixed.example.test.", "A")
    assert {r.to_text() for r in rrset} == {"192.0.2.1", "192.0.2.2"}
    assert rrset.name.to_text() == "Mixed.Example.Test."  # unbound echoes the query's case
    upper = _query(unbound, "A.EXAMPLE.TEST", "AAAA", context=context)
    assert _rrset(upper, upper.answer, "a.example.test.", "AAAA")


def test_cname_chain_is_followed_in_the_answer(
    unbound: UnboundServer, context: ssl.SSLContext
) -> None:
    # The zone is served as an auth-zone, which follows in-zone CNAMEs (RFC 1034 4.3.2).
    response = _query(unbound, "www.example.test", "A", context=context)
    assert response.rcode() == dns.rcode.NOERROR
    assert [r.to_text() for r in response.answer[:2]] == [
        "www.example.test. 300 IN CNAME alias.example.test.",
        "alias.example.test. 300 IN CNAME a.example.test.",
    ]
    # unbound rotates the order of records in an RRset (rrset-roundrobin)
    assert sorted(r.to_text() for r in response.answer[2]) == ["192.0.2.1", "192.0.2.2"]


def test_nxdomain(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    response = _query(unbound, "nx.example.test", "A", context=context)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.answer == []
    assert _rrset(response, response.authority, "example.test.", "SOA")


@pytest.mark.parametrize("qname", ["example.com", "example.org", "."])
def test_refused_outside_zone(unbound: UnboundServer, context: ssl.SSLContext, qname: str) -> None:
    response = _query(unbound, qname, "A", context=context)
    assert response.rcode() == dns.rcode.REFUSED
    assert response.answer == []


# --- the certificate the server presents -----------------------------------------


@pytest.mark.parametrize("server_hostname", ["dot.test", "localhost", "127.0.0.1"])
def test_presented_cert_verifies(
    unbound: UnboundServer, context: ssl.SSLContext, server_hostname: str
) -> None:
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    _handshake(unbound, context, server_hostname)


def test_wrong_name_rejected(unbound: UnboundServer, context: ssl.SSLContext) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(unbound, context, "other.test")


def test_untrusted_ca_rejected(unbound: UnboundServer) -> None:
    other = ssl.create_default_context(cadata=TestCA("another CA").cert_pem.decode())
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(unbound, other, "dot.test")


def test_spki_pin_of_presented_cert(
    unbound: UnboundServer, context: ssl.SSLContext, server_cert: IssuedCert
) -> None:
    der = _handshake(unbound, context, "dot.test")
    assert der == server_cert.cert_der
    assert _pin(der) == server_cert.spki_pin
    assert len(base64.b64decode(server_cert.spki_pin, validate=True)) == 32


# --- TestCA / IssuedCert / self_signed_cert ------------------------------------------


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
    assert _pin(issued.cert_der) == issued.spki_pin


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
    assert _pin(issued.cert_der) == issued.spki_pin


def test_self_signed_server(unbound_factory: Factory) -> None:
    issued = self_signed_cert("self.test")
    server = unbound_factory(issued)
    trusting = ssl.create_default_context(cadata=issued.cert_pem.decode())
    response = _query(server, "a.example.test", "A", context=trusting, server_hostname="self.test")
    assert response.rcode() == dns.rcode.NOERROR
    assert _pin(_handshake(server, trusting, "self.test")) == issued.spki_pin


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


# --- UnboundServer ---------------------------------------------------------------


def test_restart_keeps_port(unbound_factory: Factory, context: ssl.SSLContext) -> None:
    server = unbound_factory()
    port = server.port
    assert port != 0
    assert _query(server, "a.example.test", "A", context=context).rcode() == dns.rcode.NOERROR
    # A client connection that is open across the restart sees the server close it.
    with (
        socket.create_connection((server.address, server.port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="dot.test") as tls,
    ):
        query = dns.message.make_query("a.example.test", "A")
        assert dns.query.tls(query, server.address, sock=tls, timeout=5).answer
        server.restart()
        assert tls.recv(1) == b""
    assert server.port == port
    assert server.running
    assert _query(server, "a.example.test", "A", context=context).rcode() == dns.rcode.NOERROR
    assert server.log.count("start of service") == 2


@pytest.mark.usefixtures("unbound")  # skip (or fail in CI) without unbound, like the others
def test_context_manager_and_stop(server_cert: IssuedCert, context: ssl.SSLContext) -> None:
    server = UnboundServer(server_cert)
    with server as entered:
        assert entered is server
        assert server.address == "127.0.0.1"
        assert _query(server, "example.test", "MX", context=context).answer
    assert not server.running
    with pytest.raises(OSError):
        socket.create_connection((server.address, server.port), timeout=1).close()
    server.stop()  # idempotent
    assert "start of service" in server.log  # still readable after stop


def test_ipv6(unbound_factory: Factory, context: ssl.SSLContext) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    server = unbound_factory(host="::1")
    assert "do-ip6: yes" in server.config_text()
    response = _query(server, "a.example.test", "AAAA", context=context, server_hostname="::1")
    assert response.rcode() == dns.rcode.NOERROR


def test_custom_zone_and_extra_config(unbound_factory: Factory, context: ssl.SSLContext) -> None:
    zone = DEFAULT_ZONE + "extra 60 IN A 192.0.2.99\n"
    server = unbound_factory(zone=zone, extra_config="incoming-num-tcp: 20")
    assert "incoming-num-tcp: 20" in server.config_text()
    response = _query(server, "extra.example.test", "A", context=context)
    assert [r.to_text() for r in response.answer] == ["extra.example.test. 60 IN A 192.0.2.99"]


@pytest.mark.usefixtures("unbound")
def test_startup_failure_includes_log(server_cert: IssuedCert) -> None:
    server = UnboundServer(server_cert, extra_config="no-such-option: yes")
    with pytest.raises(RuntimeError, match="no-such-option"):
        server.start()
    assert not server.running
    assert server.port == 0


def test_unbound_not_found(server_cert: IssuedCert) -> None:
    with pytest.raises(UnboundNotFound, match="apt-get install unbound"):
        UnboundServer(server_cert, unbound="/nonexistent")


def test_host_must_be_ip(server_cert: IssuedCert) -> None:
    with pytest.raises(ValueError):
        UnboundServer(server_cert, host="localhost", unbound="/nonexistent")
