"""Security properties, checked on what the test server received.

- In the strict profile no query byte leaves before the server is authenticated, for
  every way authentication can fail; in the opportunistic profile, only the fallback
  connection carries the query (the control that shows the capture sees queries).
- No profile ever falls back to cleartext: with a plaintext DNS server on the port, the
  server receives TLS handshake records only, and never the query.
- TLS below 1.2 is refused in both profiles, even through a caller's permissive
  ``ssl_context``.
- Query IDs are unpredictable: 2,000 IDs from the wire, across connections, look
  uniform and independent, and do not follow Python's ``random`` state.
- No query carries an EDNS Client Subnet option (RFC 7871) unless the caller put one in
  its own message.

Each runs through the blocking and the asyncio API (the ``mode`` fixture), except the
2,000-ID sample, which comes from the blocking client: the IDs are drawn in the shared
protocol core, and asyncio's debug mode makes thousands of queries slow.
"""

from __future__ import annotations

import collections
import random
import ssl
import struct
from typing import Any

import dns.edns
import dns.message
import pytest

import dotclient
from dotclient.testing import IssuedCert, self_signed_cert

from support.fakeserver import (
    PLAINTEXT_TLS_ERROR,
    FakeConnection,
    FakeServer,
    plaintext_dns_handler,
    reflect_handler,
)
from support.modes import open_client, resolve

# A name to look for on the wire: its labels appear in any DNS query for it.
CANARY = "cleartext-canary.test"
_CANARY_WIRE = b"\x10cleartext-canary\x04test\x00"


def _drain(conn: FakeConnection) -> None:
    conn.drain()  # record all the client sends until it closes


# -- nothing before authentication -------------------------------------------------


# kind -> (certificate: "good" or a bad_certs key, client options, error message)
AUTH_FAILURES: dict[str, tuple[str, dict[str, Any], str]] = {
    # Checked by OpenSSL during the handshake.
    "expired": ("expired", {}, "certificate has expired"),
    "wrong-name": ("wrong-name", {}, "Hostname mismatch"),
    "self-signed": ("self-signed", {}, "self-signed certificate"),
    # The server sends its chain up to a CA that certifi's bundle does not hold.
    "unknown-ca": ("good", {"ca_file": None}, "self-signed certificate in certificate chain"),
    # Checked by dotclient after the handshake, before the connection is used.
    "pin": ("good", {"pins": [self_signed_cert("x.test").spki_pin]}, "no SPKI pin matched"),
    "name-with-other-sni": (
        "good",
        {"auth_name": "other.test", "sni": "dot.test"},
        "not valid for 'other.test'",
    ),
}


def _auth_setup(
    kind: str, server_cert: IssuedCert, certs: dict[str, IssuedCert], ca_file: str
) -> tuple[IssuedCert, dict[str, Any], str]:
    cert_key, options, match = AUTH_FAILURES[kind]
    cert = server_cert if cert_key == "good" else certs[cert_key]
    options = {"ca_file": ca_file, **options}
    if options["ca_file"] is None:
        del options["ca_file"]  # certifi's bundle, which does not hold the test CA
    return cert, options, match


@pytest.mark.parametrize("kind", list(AUTH_FAILURES))
def test_strict_sends_nothing_before_authentication(
    mode: str, server_cert: IssuedCert, certs: dict[str, IssuedCert], ca_file: str, kind: str
) -> None:
    cert, options, match = _auth_setup(kind, server_cert, certs, ca_file)
    with FakeServer(cert, _drain) as server:
        with pytest.raises(dotclient.AuthenticationError, match=match):
            resolve(mode, CANARY, server=server.spec, timeout=2, **options)
        server.wait_handlers()  # the client closed: all it sent is recorded
    assert server.connections == 1  # no second attempt in the strict profile
    assert bytes(server.received) == b""


# Pins with the opportunistic profile warn when the client is made (docs/guide.md).
@pytest.mark.filterwarnings("ignore:pins with profile='opportunistic':UserWarning")
@pytest.mark.parametrize("kind", list(AUTH_FAILURES))
def test_opportunistic_sends_only_on_the_fallback(
    mode: str, server_cert: IssuedCert, certs: dict[str, IssuedCert], ca_file: str, kind: str
) -> None:
    # The control for the test above: the same capture sees the query once the client
    # has a connection it may use, here the opportunistic profile's unverified one.
    cert, options, match = _auth_setup(kind, server_cert, certs, ca_file)
    with FakeServer(cert) as server:
        r = resolve(mode, CANARY, server=server.spec, profile="opportunistic", **options)
    assert not r.authenticated and r.tls.auth_error is not None
    assert match in r.tls.auth_error
    assert server.connections == 2
    first, fallback = server.streams
    assert bytes(first) == b""
    assert _CANARY_WIRE in fallback


# -- no cleartext, ever -------------------------------------------------------------


def _tls_records(data: bytes) -> list[int]:
    """The content types of the TLS records ``data`` is made of; fails unless it is
    whole records and nothing else."""
    types = []
    pos = 0
    while pos < len(data):
        assert pos + 5 <= len(data), f"a partial record header at {pos}: {data[pos:]!r}"
        content_type, version, length = struct.unpack_from("!BHH", data, pos)
        assert version >> 8 == 3, f"not a TLS record at {pos}: {data[pos : pos + 5]!r}"
        pos += 5 + length
        assert pos <= len(data), "a partial record"
        types.append(content_type)
    return types


@pytest.mark.parametrize("profile", ["strict", "opportunistic"])
@pytest.mark.parametrize(
    ("handler", "error", "match"),
    [
        (plaintext_dns_handler, dotclient.TLSError, PLAINTEXT_TLS_ERROR),
        (_drain, dotclient.Timeout, "in the TLS handshake"),
    ],
    ids=["answers-in-clear", "silent"],
)
def test_no_fallback_to_cleartext(
    mode: str,
    server_cert: IssuedCert,
    ca_file: str,
    profile: str,
    handler: Any,
    error: type[dotclient.DoTError],
    match: str,
) -> None:
    with FakeServer(server_cert, handler, tls=False) as server:
        with pytest.raises(error, match=match):
            resolve(
                mode, CANARY, server=server.spec, ca_file=ca_file, profile=profile, timeout=0.5
            )
        server.wait_handlers()
    assert server.connections == 1
    (stream,) = server.streams
    types = _tls_records(bytes(stream))
    # A ClientHello (handshake record, message type 1), then at most an alert.
    assert types[0] == 0x16 and stream[5] == 1, bytes(stream[:6])
    assert set(types) <= {0x15, 0x16}, types
    assert _CANARY_WIRE not in stream


def test_the_record_check_sees_cleartext() -> None:
    query = dns.message.make_query(CANARY, "A").to_wire()
    with pytest.raises(AssertionError):
        _tls_records(struct.pack("!H", len(query)) + query)


# -- no TLS below 1.2 -----------------------------------------------------------------

_OLD = [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1]


def _old_tls_server(cert: IssuedCert, version: ssl.TLSVersion) -> FakeServer:
    """A server that speaks only ``version`` (OpenSSL needs security level 0 for it)."""
    return FakeServer(
        cert, _drain, min_version=version, max_version=version, ciphers="DEFAULT:@SECLEVEL=0"
    )


def _old_tls_server(cert: IssuedCert, version: ssl.TLSVersion) -> FakeServer:
    """A server that offers only ``version`` (OpenSSL 3 needs security level 0 for it)."""
    return FakeServer(
        cert, _drain, min_version=version, max_version=version, ciphers="DEFAULT:@SECLEVEL=0"
    )


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("profile", ["strict", "opportunistic"])
@pytest.mark.parametrize("version", _OLD, ids=["TLSv1.0", "TLSv1.1"])
def test_tls_below_1_2_is_refused(
    mode: str, server_cert: IssuedCert, ca_file: str, profile: str, version: ssl.TLSVersion
) -> None:
    with _old_tls_server(server_cert, version) as server:
        with pytest.raises(dotclient.TLSError, match="PROTOCOL_VERSION") as info:
            resolve(mode, CANARY, server=server.spec, ca_file=ca_file, profile=profile, timeout=2)
    assert type(info.value) is dotclient.TLSError  # not an authentication failure
    assert server.connections == 1  # the opportunistic fallback is for authentication only
    assert bytes(server.received) == b""


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("profile", ["strict", "opportunistic"])
@pytest.mark.parametrize("version", _OLD, ids=["TLSv1.0", "TLSv1.1"])
def test_old_tls_refused_even_through_a_permissive_context(
    mode: str, server_cert: IssuedCert, ca_file: str, profile: str, version: ssl.TLSVersion
) -> None:
    # The caller's context lets OpenSSL negotiate the old version; dotclient's own check
    # of the finished handshake refuses it before any query byte.
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with _old_tls_server(server_cert, version) as server:
        with pytest.raises(dotclient.TLSError, match="TLS 1.2 or later is required"):
            resolve(
                mode, CANARY, server=server.spec, ssl_context=context, profile=profile, timeout=2
            )
        server.wait_handlers()
    assert server.connections == 1
    assert bytes(server.received) == b""


# -- unpredictable IDs ----------------------------------------------------------------


def _wire_ids(server: FakeServer) -> list[int]:
    """The query IDs each connection received, connection after connection."""
    ids = []
    for stream in server.streams:
        pos = 0
        while pos + 4 <= len(stream):
            (length,) = struct.unpack_from("!H", stream, pos)
            ids.append(struct.unpack_from("!H", stream, pos + 2)[0])
            pos += 2 + length
    return ids


def check_unpredictable(ids: list[int]) -> None:
    """Fail unless ``ids`` look like independent uniform 16-bit draws. Each bound is
    about six standard deviations from what such draws give, so a correct generator
    fails about once in a billion runs, while a counter, a stepping or reused
    sequence, a narrower range or a weak low bit fail at once."""
    n = len(ids)
    assert all(0 <= i < 65536 for i in ids)
    # Repeats: about n^2 / 2^17 (30 for 2,000) expected, none needed.
    assert n - len(set(ids)) <= 30 + 6 * 6, "too many repeated IDs"
    # Each bit is set in half of the IDs (a 15-bit or even-only generator fails).
    sd = (n / 4) ** 0.5
    for bit in range(16):
        ones = sum(i >> bit & 1 for i in ids)
        assert abs(ones - n / 2) < 6 * sd, f"bit {bit} is set in {ones} of {n} IDs"
    # Uniform over 64 buckets (chi-square, 63 degrees of freedom: mean 63, sd 11.2).
    buckets = collections.Counter(i >> 10 for i in ids)
    expected = n / 64
    chi2 = sum((buckets.get(b, 0) - expected) ** 2 / expected for b in range(64))
    assert chi2 < 63 + 6 * 11.2, f"IDs not uniform: chi-square {chi2:.0f}"
    pairs = list(zip(ids, ids[1:], strict=False))
    steps = [(b - a) % 65536 for a, b in pairs]
    # Not a counter, nor a constant step: the steps are as varied as the IDs.
    assert len(set(steps)) > len(steps) - 30 - 36, "consecutive IDs differ by repeated steps"
    assert sum(1 <= s <= 16 or s >= 65536 - 16 for s in steps) <= 10, "sequential IDs"
    # Each bit of one ID says nothing of the same bit of the next (an LCG's low bit
    # alternates).
    for bit in range(16):
        same = sum((a >> bit & 1) == (b >> bit & 1) for a, b in pairs)
        assert abs(same - len(pairs) / 2) < 6 * (len(pairs) / 4) ** 0.5, f"bit {bit} correlates"


def test_the_id_check_can_fail() -> None:
    rng = random.Random(1)
    good = [rng.randrange(65536) for _ in range(2000)]
    check_unpredictable(good)
    start = rng.randrange(65536)
    lcg = [start]
    for _ in range(1999):
        lcg.append((lcg[-1] * 25173 + 13849) % 65536)
    bad = {
        "counter": [(start + i) % 65536 for i in range(2000)],
        "stepping": [(start + 7919 * i) % 65536 for i in range(2000)],
        "15-bit": [i >> 1 for i in good],
        "small-space": [i % 4096 for i in good],
        "lcg": lcg,
    }
    for name, ids in bad.items():
        with pytest.raises(AssertionError):
            check_unpredictable(ids)
            pytest.fail(f"{name} IDs passed")


def test_ids_on_the_wire_are_unpredictable(server_cert: IssuedCert, ca_file: str) -> None:
    names = [f"n{i}.test" for i in range(500)]
    with FakeServer(server_cert, reflect_handler) as server:
        with dotclient.Client(server.spec, ca_file=ca_file, max_in_flight=50) as client:
            for _ in range(4):  # four rounds, each on new connections
                outcomes = client.resolve_many(names)
                assert not [o for o in outcomes if isinstance(o, Exception)]
                client.close_connections()
    assert server.connections >= 4
    ids = _wire_ids(server)
    assert len(ids) == 2000
    check_unpredictable(ids)


def test_ids_do_not_follow_python_random(
    mode: str, server_cert: IssuedCert, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were the IDs drawn from the random module's shared generator, the same seed would
    # give the same IDs; drawn from the OS's CSPRNG (secrets), they never repeat.
    runs = []
    for _ in range(2):
        random.seed(853)
        with FakeServer(server_cert, reflect_handler) as server:
            with open_client(mode, server.spec, ca_file=ca_file) as client:
                for i in range(20):
                    client.resolve(f"n{i}.test")
        runs.append(_wire_ids(server))
    first, second = runs
    assert len(first) == len(second) == 20
    assert sum(a == b for a, b in zip(first, second, strict=True)) <= 1


# -- no EDNS Client Subnet --------------------------------------------------------------

_ECS = dns.edns.OptionType.ECS  # RFC 7871, option code 8


def _sent_messages(server: FakeServer) -> list[dns.message.Message]:
    return [dns.message.from_wire(wire) for wire in server.frames]


def _ecs_options(message: dns.message.Message) -> list[dns.edns.Option]:
    return [o for o in message.options if o.otype == _ECS]


@pytest.mark.parametrize("keepalive", [False, True], ids=["default", "keepalive"])
def test_no_client_subnet_on_queries(
    mode: str, server_cert: IssuedCert, ca_file: str, keepalive: bool
) -> None:
    own = [
        dns.message.make_query("q1.test", "A"),
        dns.message.make_query("q2.test", "AAAA", use_edns=0),
        dns.message.make_query("q3.test", "A", want_dnssec=True),
        dns.message.make_query("q4.test", "TXT", use_edns=0, payload=4096, pad=468),
    ]
    with FakeServer(server_cert) as server:
        with open_client(mode, server.spec, ca_file=ca_file, keepalive=keepalive) as client:
            client.resolve("r1.test")
            client.resolve("r2.test", "AAAA", dnssec=True)
            client.resolve_many(["m1.test", "m2.test"])
            for message in own:
                client.query(message)
            client.close_connections()
            with open_client(
                mode, server.spec, ca_file=ca_file, padding=False, keepalive=keepalive
            ) as unpadded:
                unpadded.resolve("u1.test")
                unpadded.query(dns.message.make_query("u2.test", "A", use_edns=0))
    sent = _sent_messages(server)
    assert len(sent) == 10
    for wire_message in sent:
        assert wire_message.edns >= 0  # there is an OPT record that could carry ECS
        assert not _ecs_options(wire_message), wire_message


def test_a_callers_client_subnet_is_sent_as_given(
    mode: str, server_cert: IssuedCert, ca_file: str
) -> None:
    # What the client does with an ECS option the caller put in its own message: it
    # goes out unchanged (dotclient neither adds nor strips one). Recorded here so that
    # a change is a decision.
    ecs = dns.edns.ECSOption("198.51.100.0", 24)
    message = dns.message.make_query("ecs.test", "A", use_edns=0, options=[ecs])
    with FakeServer(server_cert) as server:
        with open_client(mode, server.spec, ca_file=ca_file) as client:
            client.query(message)
    (sent,) = _sent_messages(server)
    (option,) = _ecs_options(sent)
    assert isinstance(option, dns.edns.ECSOption)
    assert (option.address, option.srclen) == ("198.51.100.0", 24)
    assert list(message.options) == [ecs]  # the caller's message is unchanged
