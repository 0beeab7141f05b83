"""Server specifications and SPKI pins: dotclient._server, pure (no I/O)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dotclient
from dotclient import InvalidServerSpec, Server, parse_server
from dotclient._server import DEFAULT_SERVER_ENV, PRESETS, is_ip, parse_pin

DIGEST = hashlib.sha256(b"dotclient test key").digest()
DIGEST_B64 = base64.b64encode(DIGEST).decode("ascii")
OTHER_DIGEST = hashlib.sha256(b"another key").digest()


def _digest_with_slash() -> bytes:
    """A SHA-256 digest whose standard base64 form contains '/'."""
    for i in range(1000):
        digest = hashlib.sha256(str(i).encode()).digest()
        text = base64.b64encode(digest).decode("ascii")
        if "/" in text and not text.startswith("/"):
            return digest
    raise AssertionError("no digest with '/' found")  # pragma: no cover


# -- accepted forms -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "host", "port", "auth_name"),
    [
        ("1.1.1.1", "1.1.1.1", 853, None),
        ("1.1.1.1:853", "1.1.1.1", 853, None),
        ("1.1.1.1:8853", "1.1.1.1", 8853, None),
        ("1.1.1.1@853", "1.1.1.1", 853, None),
        ("1.1.1.1@8853", "1.1.1.1", 8853, None),
        ("[2606:4700:4700::1111]:853", "2606:4700:4700::1111", 853, None),
        ("[2606:4700:4700::1111]:8853", "2606:4700:4700::1111", 8853, None),
        ("[2606:4700:4700::1111]@8853", "2606:4700:4700::1111", 8853, None),
        ("[::1]", "::1", 853, None),
        ("2606:4700:4700::1111", "2606:4700:4700::1111", 853, None),
        # IPv6 addresses are normalised to their compressed form.
        ("2606:4700:4700:0:0:0:0:1111", "2606:4700:4700::1111", 853, None),
        ("1.1.1.1#cloudflare-dns.com", "1.1.1.1", 853, "cloudflare-dns.com"),
        ("1.1.1.1:8853#cloudflare-dns.com", "1.1.1.1", 8853, "cloudflare-dns.com"),
        ("1.1.1.1@8853#cloudflare-dns.com", "1.1.1.1", 8853, "cloudflare-dns.com"),
        ("[::1]:8853#dot.test", "::1", 8853, "dot.test"),
        ("::1#dot.test", "::1", 853, "dot.test"),
        ("dns.google", "dns.google", 853, None),
        ("dns.google:853", "dns.google", 853, None),
        ("dns.google:8853", "dns.google", 8853, None),
        ("dns.google@8853", "dns.google", 8853, None),
        # Host names are lower-cased and lose their trailing dot.
        ("DNS.Google.", "dns.google", 853, None),
        ("1.1.1.1#Cloudflare-DNS.com.", "1.1.1.1", 853, "cloudflare-dns.com"),
        ("  1.1.1.1:853  ", "1.1.1.1", 853, None),
        ("localhost:65535", "localhost", 65535, None),
        ("127.0.0.1:1", "127.0.0.1", 1, None),
        ("_dot.example.test", "_dot.example.test", 853, None),
    ],
)
def test_accepted_forms(spec: str, host: str, port: int, auth_name: str | None) -> None:
    server = parse_server(spec)
    assert isinstance(server, Server)
    assert (server.host, server.port, server.auth_name, server.pins) == (host, port, auth_name, ())


def test_ip_and_name_properties() -> None:
    assert parse_server("1.1.1.1").is_ip
    assert parse_server("[::1]").is_ip
    assert not parse_server("dns.google").is_ip
    assert parse_server("1.1.1.1").verify_name == "1.1.1.1"
    assert parse_server("1.1.1.1#cloudflare-dns.com").verify_name == "cloudflare-dns.com"
    assert parse_server("dns.google").verify_name == "dns.google"


def test_idn_host_becomes_a_label() -> None:
    assert parse_server("bücher.example").host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("cloudflare", "cloudflare"),
        ("google", "google"),
        ("quad9", "quad9"),
        ("CloudFlare", "cloudflare"),
        ("GOOGLE", "google"),
        ("Quad9", "quad9"),
        (" quad9 ", "quad9"),
    ],
)
def test_presets_case_insensitive(spec: str, name: str) -> None:
    server = parse_server(spec)
    assert server == PRESETS[name]
    assert server.label == name


@pytest.mark.parametrize(
    ("name", "host", "auth_name"),
    [
        ("cloudflare", "1.1.1.1", "cloudflare-dns.com"),
        ("google", "8.8.8.8", "dns.google"),
        ("quad9", "9.9.9.9", "dns.quad9.net"),
    ],
)
def test_preset_values(name: str, host: str, auth_name: str) -> None:
    server = parse_server(name)
    assert (server.host, server.port, server.auth_name, server.pins) == (host, 853, auth_name, ())
    assert dotclient.PRESETS is PRESETS


def test_server_object_passes_through_unchanged() -> None:
    server = Server("192.0.2.1", 8853, "dot.test")
    assert parse_server(server) is server


def test_auth_name_override_on_server_object() -> None:
    server = Server("192.0.2.1", 8853, "dot.test")
    changed = parse_server(server, auth_name="Other.Test.")
    assert changed.auth_name == "other.test"
    assert (changed.host, changed.port) == ("192.0.2.1", 8853)
    assert server.auth_name == "dot.test"  # the original is frozen and untouched


def test_auth_name_override_on_text_spec() -> None:
    assert parse_server("1.1.1.1#a.example", auth_name="b.example").auth_name == "b.example"
    assert parse_server("1.1.1.1", auth_name="dot.test").auth_name == "dot.test"


def test_invalid_auth_name_override() -> None:
    with pytest.raises(InvalidServerSpec, match=re.escape("'bad..name'")):
        parse_server("1.1.1.1", auth_name="bad..name")


def test_pins_override_extends_existing_pins() -> None:
    first = parse_server("1.1.1.1", pins=[f"sha256/{DIGEST_B64}"])
    assert first.pins == (DIGEST,)
    both = parse_server(first, pins=[OTHER_DIGEST])
    assert both.pins == (DIGEST, OTHER_DIGEST)
    assert first.pins == (DIGEST,)


def test_pins_override_accepts_a_single_string() -> None:
    assert parse_server("dns.google", pins=f"sha256/{DIGEST_B64}").pins == (DIGEST,)
    assert parse_server("dns.google", pins=DIGEST).pins == (DIGEST,)


def test_pins_override_on_a_preset_keeps_the_preset() -> None:
    server = parse_server("cloudflare", pins=[DIGEST])
    assert server.pins == (DIGEST,)
    assert (server.host, server.auth_name) == ("1.1.1.1", "cloudflare-dns.com")
    assert PRESETS["cloudflare"].pins == ()


def test_server_pins_given_as_one_string() -> None:
    assert Server("1.1.1.1", pins=f"sha256/{DIGEST_B64}").pins == (DIGEST,)  # type: ignore[arg-type]


def test_none_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_SERVER_ENV == "DOTCLIENT_SERVER"
    monkeypatch.setenv("DOTCLIENT_SERVER", "192.0.2.7@8853#dot.test")
    server = parse_server(None)
    assert (server.host, server.port, server.auth_name) == ("192.0.2.7", 8853, "dot.test")
    assert parse_server() == server


def test_none_environment_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOTCLIENT_SERVER", "Quad9")
    assert parse_server() == PRESETS["quad9"]


@pytest.mark.parametrize("value", [None, ""])
def test_none_without_environment_is_cloudflare(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("DOTCLIENT_SERVER", raising=False)
    else:
        monkeypatch.setenv("DOTCLIENT_SERVER", value)
    server = parse_server(None)
    assert server == PRESETS["cloudflare"]
    assert server.label == "cloudflare"


def test_none_with_a_bad_environment_value_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOTCLIENT_SERVER", "1.1.1.1:notaport")
    with pytest.raises(InvalidServerSpec, match="notaport"):
        parse_server()


# -- str() round trip ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ("1.1.1.1", "1.1.1.1:853"),
        ("1.1.1.1@8853", "1.1.1.1:8853"),
        ("[2606:4700:4700::1111]:853", "[2606:4700:4700::1111]:853"),
        ("2606:4700:4700::1111", "[2606:4700:4700::1111]:853"),
        ("1.1.1.1#cloudflare-dns.com", "1.1.1.1:853#cloudflare-dns.com"),
        ("[::1]:8853#dot.test", "[::1]:8853#dot.test"),
        ("1.1.1.1#::1", "1.1.1.1:853#::1"),
        ("dns.google", "dns.google:853"),
        ("dns.google:853", "dns.google:853"),
        ("cloudflare", "1.1.1.1:853#cloudflare-dns.com"),
        ("google", "8.8.8.8:853#dns.google"),
        ("quad9", "9.9.9.9:853#dns.quad9.net"),
    ],
)
def test_str_round_trips(spec: str, text: str) -> None:
    server = parse_server(spec)
    assert str(server) == text
    assert parse_server(str(server)) == server


@settings(max_examples=200, deadline=None)
@given(
    host=st.ip_addresses().map(str),
    port=st.integers(1, 65535).filter(lambda port: port != 53),
    auth_name=st.sampled_from([None, "dot.test", "cloudflare-dns.com", "a-b.c_d.example"]),
)
def test_str_round_trips_property(host: str, port: int, auth_name: str | None) -> None:
    server = Server(host, port, auth_name)
    assert parse_server(str(server)) == server


@pytest.mark.parametrize("spec", ["1.1.1.1#1.1.1.1", "dns.google#dns.google"])
def test_str_round_trips_auth_name_equal_to_host(spec: str) -> None:
    server = parse_server(spec)
    assert parse_server(str(server)) == server


# -- malformed specs ----------------------------------------------------------------------


LONG_LABEL = "a" * 64


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "empty server spec"),
        ("   ", "empty server spec"),
        ("1.1.1.1:0", "invalid port '0'"),
        ("1.1.1.1:99999", "invalid port '99999'"),
        ("1.1.1.1:65536", "invalid port '65536'"),
        ("1.1.1.1:abc", "invalid port 'abc'"),
        ("1.1.1.1:", "invalid port ''"),
        ("1.1.1.1:-1", "invalid port '-1'"),
        ("1.1.1.1@x", "invalid port 'x'"),
        ("[::1]:abc", "invalid port 'abc'"),
        ("[::1", "missing ']'"),
        ("[::1]x", "unexpected 'x' after ']'"),
        ("[nothex]:853", "invalid IPv6 address 'nothex'"),
        ("[dns.google]:853", "invalid IPv6 address 'dns.google'"),
        ("1:2:3", "invalid IPv6 address '1:2:3'"),
        ("1.1.1.1#", "empty authentication name after '#'"),
        ("dns.google:853#", "empty authentication name after '#'"),
        ("1.1.1.1#bad..name", "invalid authentication name 'bad..name'"),
        ("1.1.1.1#-dot.test", "bad label '-dot'"),
        (":853", "missing host"),
        ("bad_host..name", "invalid hostname 'bad_host..name'"),
        ("bad_host..name", "bad label ''"),
        ("-bad.example", "bad label '-bad'"),
        ("bad-.example", "bad label 'bad-'"),
        ("sp ace.example", "bad label 'sp ace'"),
        ("300.1.1.1", "invalid IPv4 address '300.1.1.1'"),
        ("1.2.3", "invalid IPv4 address '1.2.3'"),
        ("1.2.3.4.5", "invalid IPv4 address '1.2.3.4.5'"),
        ("example.123", "'example.123'"),
        (f"{LONG_LABEL}.example", f"bad label '{LONG_LABEL}'"),
        ("a." * 127 + "example", "invalid hostname"),
    ],
)
def test_malformed_specs(spec: str, fragment: str) -> None:
    with pytest.raises(InvalidServerSpec, match=re.escape(fragment)) as info:
        parse_server(spec)
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, dotclient.DoTError)


def test_label_of_63_characters_is_fine() -> None:
    assert parse_server(f"{'a' * 63}.example").host == f"{'a' * 63}.example"


@pytest.mark.parametrize("spec", [123, b"1.1.1.1", ("1.1.1.1", 853), 1.5])
def test_non_str_spec_is_a_type_error(spec: object) -> None:
    with pytest.raises(TypeError, match=type(spec).__name__):
        parse_server(spec)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"host": ""}, "non-empty str"),
        ({"host": 123}, "non-empty str"),
        ({"host": "1.1.1.1", "port": 0}, "invalid port 0"),
        ({"host": "1.1.1.1", "port": 65536}, "invalid port 65536"),
        ({"host": "1.1.1.1", "port": True}, "must be an int"),
        ({"host": "1.1.1.1", "port": "853"}, "must be an int"),
        ({"host": "1.1.1.1", "auth_name": ""}, "invalid authentication name ''"),
        ({"host": "1.1.1.1", "pins": ["nope"]}, "invalid SPKI pin 'nope'"),
    ],
)
def test_server_constructor_validation(kwargs: dict[str, object], fragment: str) -> None:
    # A bad pin is a ValueError, not an InvalidServerSpec (a pin is not a spec).
    with pytest.raises(ValueError, match=re.escape(fragment)):
        Server(**kwargs)  # type: ignore[arg-type]


def test_server_is_frozen_and_hashable() -> None:
    server = parse_server("1.1.1.1#dot.test", pins=[DIGEST])
    with pytest.raises(AttributeError):
        server.port = 1  # type: ignore[misc]
    assert hash(server) == hash(parse_server("1.1.1.1#dot.test", pins=[DIGEST]))
    assert server.replace(port=8853).port == 8853
    assert server.port == 853


@pytest.mark.parametrize("port_text", ["\u0663", "\u00b2", "\uff18\uff15\uff13"])
def test_non_ascii_digit_ports_are_rejected(port_text: str) -> None:
    with pytest.raises(InvalidServerSpec, match="invalid port"):
        parse_server(f"1.1.1.1:{port_text}")


# -- pins ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pin",
    [
        f"sha256/{DIGEST_B64}",
        f"SHA256/{DIGEST_B64}",
        f"sha-256/{DIGEST_B64}",
        f'pin-sha256="{DIGEST_B64}"',
        f"  sha256/{DIGEST_B64}  ",
        DIGEST_B64,
        DIGEST,
        f"sha256/{DIGEST_B64}".encode("ascii"),
        DIGEST_B64.encode("ascii"),
    ],
)
def test_pin_forms(pin: str | bytes) -> None:
    assert parse_pin(pin) == DIGEST


def test_pin_bare_base64_containing_a_slash() -> None:
    digest = _digest_with_slash()
    text = base64.b64encode(digest).decode("ascii")
    assert "/" in text
    assert parse_pin(text) == digest
    assert parse_pin(f"sha256/{text}") == digest


def test_pin_raw_bytes_are_kept_verbatim() -> None:
    raw = bytes(range(32))
    assert parse_pin(raw) == raw


@pytest.mark.parametrize("size", [0, 16, 31, 33, 48])
def test_pin_wrong_length(size: int) -> None:
    text = "sha256/" + base64.b64encode(b"\x01" * size).decode("ascii")
    with pytest.raises(ValueError, match=f"{size} bytes, a SHA-256 pin has 32"):
        parse_pin(text)


@pytest.mark.parametrize("size", [0, 20, 31, 33])
def test_pin_raw_bytes_of_wrong_length(size: int) -> None:
    with pytest.raises(ValueError, match="invalid SPKI pin"):
        parse_pin(b"\x01" * size)


@pytest.mark.parametrize(
    "pin",
    [
        "sha256/not base64!",
        "sha256/" + DIGEST_B64[:-2],  # padding removed
        DIGEST_B64 + "A",
        "sha256/" + DIGEST_B64.replace("=", "*"),
    ],
)
def test_pin_not_base64(pin: str) -> None:
    with pytest.raises(ValueError, match="not base64") as info:
        parse_pin(pin)
    assert repr(pin) in str(info.value)


@pytest.mark.parametrize(
    "pin",
    [
        "sha1/" + base64.b64encode(hashlib.sha1(b"k").digest()).decode(),
        "sha384/" + base64.b64encode(hashlib.sha384(b"k").digest()).decode(),
        "sha512/" + base64.b64encode(hashlib.sha512(b"k").digest()).decode(),
        "md5/" + base64.b64encode(hashlib.md5(b"k").digest()).decode(),
        "sha512/" + DIGEST_B64,
        "sha1/" + DIGEST_B64,
    ],
)
def test_pin_other_digest_names_are_rejected(pin: str) -> None:
    with pytest.raises(ValueError, match="invalid SPKI pin") as info:
        parse_pin(pin)
    assert repr(pin) in str(info.value)


@pytest.mark.parametrize("pin", [123, None, 1.5, ["sha256/x"]])
def test_pin_wrong_type(pin: object) -> None:
    with pytest.raises(TypeError, match="a pin is a str"):
        parse_pin(pin)  # type: ignore[arg-type]


def test_invalid_pin_through_parse_server() -> None:
    with pytest.raises(ValueError, match="invalid SPKI pin"):
        parse_server("1.1.1.1", pins=["sha256/AAAA"])


# -- parsed once: the caches behind parse_server and is_ip ---------------------------------


def test_a_spec_parses_to_the_same_server_every_time() -> None:
    spec = "192.0.2.7:8853#Cache.Test."
    first = parse_server(spec)
    assert first == Server("192.0.2.7", 8853, "cache.test")
    assert parse_server(spec) == first
    assert parse_server(" " + spec) == first  # another text, parsed on its own
    # What a call adds stays its own: the Server it was made from is not changed.
    other = parse_server(spec, auth_name="other.test", pins=[DIGEST])
    assert (other.auth_name, other.pins) == ("other.test", (DIGEST,))
    again = parse_server(spec)
    assert again == first
    assert (again.auth_name, again.pins) == ("cache.test", ())


def test_a_preset_added_or_changed_after_a_parse_is_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PRESETS is a public dict: the cache behind parse_server must not hide a change.
    assert parse_server("mine.test") == Server("mine.test")
    monkeypatch.setitem(PRESETS, "mine.test", Server("192.0.2.9", 853, "dot.mine.test"))
    assert parse_server("mine.test") == Server("192.0.2.9", 853, "dot.mine.test")
    monkeypatch.delitem(PRESETS, "mine.test")
    assert parse_server("mine.test") == Server("mine.test")


@pytest.mark.parametrize(
    "spec", ["bad..name", "1.1.1.1:53", "[::1", "1.2.3.999", "quad9#x.test", "ftp://x.test"]
)
def test_a_bad_spec_raises_the_same_error_every_time(spec: str) -> None:
    messages = []
    for _ in range(3):
        with pytest.raises(InvalidServerSpec) as info:
            parse_server(spec)
        messages.append(str(info.value))
    assert messages == [messages[0]] * 3


def test_is_ip_gives_the_same_answer_every_time() -> None:
    for _ in range(2):
        assert is_ip("192.0.2.1")
        assert is_ip("2001:DB8:0:0:0:0:0:1")
        assert not is_ip("dns.google")
        assert not is_ip("192.0.2.1.")
        assert not is_ip("")
        assert Server("2001:DB8:0:0:0:0:0:1").host == "2001:db8::1"
        assert Server("dns.google", auth_name="2001:DB8::0:1").auth_name == "2001:db8::1"
        assert Server("192.0.2.1", auth_name="192.0.2.1").auth_name is None
