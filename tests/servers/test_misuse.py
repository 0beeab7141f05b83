"""Misuse is refused before any I/O, with a clear ValueError or TypeError: never a raw
OverflowError, UnicodeError or an empty message at query time, and never a query sent
somewhere the caller did not ask for."""

from __future__ import annotations

from typing import Any

import dns.message
import dns.name
import pytest

from dotclient.testing import UnboundServer

from support.modes import open_client


def spec(unbound: UnboundServer) -> str:
    return f"127.0.0.1:{unbound.port}#dot.test"


@pytest.mark.parametrize("option", ["timeout", "idle_timeout", "backoff", "server_timeout"])
@pytest.mark.parametrize("seconds", [2_200_000, 1e10])
def test_huge_timeouts_are_refused_up_front(
    mode: str, unbound: UnboundServer, ca_file: str, option: str, seconds: float
) -> None:
    options: dict[str, Any] = {option: seconds}
    if option == "backoff":
        options["max_backoff"] = seconds
    with pytest.raises(ValueError, match=f"{option} must be at most 86400 seconds"):
        with open_client(mode, spec(unbound), ca_file=ca_file, **options):
            pass


def test_the_longest_timeout_works(mode: str, unbound: UnboundServer, ca_file: str) -> None:
    # Before the fix the blocking client took 2,200,000 s and then every query raised
    # a raw OverflowError; a day is the most, and it works.
    options = {"timeout": 86_400, "idle_timeout": 86_400}
    with open_client(mode, spec(unbound), ca_file=ca_file, **options) as client:
        assert client.resolve("a.example.test").addresses()
        assert client.resolve("a.example.test", timeout=86_400).addresses()
        with pytest.raises(ValueError, match="at most 86400"):
            client.resolve("a.example.test", timeout=2_200_000)
        assert client.resolve("a.example.test").addresses()


def test_a_gap_in_servers_is_refused_not_filled_with_the_default(
    mode: str, unbound: UnboundServer, ca_file: str
) -> None:
    # Before the fix None became the cloudflare preset: queries to a third party.
    with pytest.raises(TypeError, match=r"servers\[1\] is None"):
        with open_client(mode, servers=[spec(unbound), None], ca_file=ca_file):
            pass


@pytest.mark.parametrize("names", ["a.example.test", b"a.example.test"])
def test_resolve_many_refuses_a_bare_name(
    mode: str, unbound: UnboundServer, ca_file: str, names: Any
) -> None:
    with open_client(mode, spec(unbound), ca_file=ca_file) as client:
        # Before the fix a str was resolved character by character.
        with pytest.raises(TypeError, match="an iterable of names, not one name"):
            client.resolve_many(names)
        assert client.stats.queries_sent == 0


@pytest.mark.parametrize("rdtype", [None, 1.5, b"A", True])
def test_a_bad_rdtype_is_a_type_error_that_says_so(
    mode: str, unbound: UnboundServer, ca_file: str, rdtype: Any
) -> None:
    with open_client(mode, spec(unbound), ca_file=ca_file) as client:
        # Before the fix: an empty message, and True was taken as A.
        with pytest.raises(TypeError, match="rdtype must be a str or an int"):
            client.resolve("a.example.test", rdtype)
        with pytest.raises(TypeError, match="rdtype must be a str or an int"):
            client.resolve_many(["a.example.test"], rdtype)
        with pytest.raises(TypeError, match="rdclass must be a str or an int"):
            client.resolve("a.example.test", "A", rdtype)
        assert client.stats.queries_sent == 0


@pytest.mark.parametrize("dnssec", ["no", 1, None])
def test_dnssec_must_be_a_bool(
    mode: str, unbound: UnboundServer, ca_file: str, dnssec: Any
) -> None:
    with open_client(mode, spec(unbound), ca_file=ca_file) as client:
        # Before the fix "no" set the DO bit.
        with pytest.raises(TypeError, match="dnssec must be True or False"):
            client.resolve("a.example.test", dnssec=dnssec)
        with pytest.raises(TypeError, match="dnssec must be True or False"):
            client.resolve_many(["a.example.test"], dnssec=dnssec)
        assert client.stats.queries_sent == 0
        assert client.resolve("a.example.test", dnssec=False).addresses()


@pytest.mark.parametrize(
    ("sni", "match"),
    [("x" * 300, "sni is not a valid host name"), (".".join(["x" * 60] * 5), "longer than")],
)
def test_a_bad_sni_is_refused_when_the_client_is_made(
    mode: str, unbound: UnboundServer, ca_file: str, sni: str, match: str
) -> None:
    # Before the fix: a raw UnicodeError at the first query.
    with pytest.raises(ValueError, match=match):
        with open_client(mode, spec(unbound), ca_file=ca_file, sni=sni):
            pass


def test_a_response_is_not_sent_as_a_query(
    mode: str, unbound: UnboundServer, ca_file: str
) -> None:
    message = dns.message.make_response(dns.message.make_query("a.example.test", "A"))
    with open_client(mode, spec(unbound), ca_file=ca_file) as client:
        with pytest.raises(ValueError, match="QR flag set"):
            client.query(message)
        assert client.stats.queries_sent == 0


def test_a_huge_name_is_refused_before_it_is_parsed(
    mode: str, unbound: UnboundServer, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []
    from_text = dns.name.from_text

    def counting(text: Any, *args: Any, **kwargs: Any) -> dns.name.Name:
        parsed.append(text)
        return from_text(text, *args, **kwargs)

    monkeypatch.setattr(dns.name, "from_text", counting)
    with open_client(mode, spec(unbound), ca_file=ca_file) as client:
        # Before the fix 10 MB went through the parser (~1 s of CPU) first.
        with pytest.raises(ValueError, match="too long"):
            client.resolve("a" * 10_000_000)
        assert not any(len(text) > 10_000 for text in parsed)
        with pytest.raises(ValueError, match="> 255 octets"):
            client.resolve("a." * 200)  # 400 characters, 401 octets: the parser's no
