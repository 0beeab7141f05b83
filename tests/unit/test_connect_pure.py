"""Connection set-up policy without I/O (issue 17): Happy Eyeballs (``_happy``), the
bootstrap address cache (``_bootstrap``), routes and option checks, as tables with the
time passed in. Against real parts: tests/servers/test_connect.py."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest

import dotclient
from dotclient._bootstrap import MIN_TTL, AddressCache
from dotclient._happy import Race, check_attempt_delay, family_of, interleave
from dotclient._route import make_route, parse_source
from dotclient._server import PRESETS

V4, V6 = socket.AF_INET, socket.AF_INET6


def test_interleave_puts_ipv6_first_and_alternates_families() -> None:
    a4 = (V4, ("192.0.2.1", 853))
    b4 = (V4, ("192.0.2.2", 853))
    a6 = (V6, ("2001:db8::1", 853, 0, 0))
    b6 = (V6, ("2001:db8::2", 853, 0, 0))
    assert interleave([a4, b4, a6, b6]) == [a6, a4, b6, b4]
    assert interleave([a4, a4, b4]) == [a4, b4]  # repeats dropped
    assert interleave([a4, a6, b6], source_family=V4) == [a4]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # (time, event) -> what is due at that time; "fail N" marks attempt N failed.
        ([(0.0, "due")], [[0]]),
        ([(0.0, "due"), (0.1, "due"), (0.25, "due")], [[0], [], [1]]),
        ([(0.0, "due"), (0.25, "due"), (0.5, "due"), (0.75, "due")], [[0], [1], [2], []]),
        # a failure with nothing else running starts the next at once...
        ([(0.0, "due"), (0.01, "fail 0"), (0.01, "due")], [[0], None, [1]]),
        # ...but not while another attempt is still running
        (
            [(0.0, "due"), (0.25, "due"), (0.3, "fail 0"), (0.3, "due"), (0.5, "due")],
            [[0], [1], None, [], [2]],
        ),
    ],
)
def test_race_starts_attempts_a_delay_apart(
    events: list[tuple[float, str]], expected: list[list[int] | None]
) -> None:
    race = Race(3, 0.25, now=0.0)
    seen: list[list[int] | None] = []
    for now, event in events:
        if event == "due":
            seen.append(race.due(now))
        else:
            race.failed(int(event.split()[1]), now)
            seen.append(None)
    assert seen == expected


def test_race_timer_and_exhaustion() -> None:
    race = Race(2, 0.25, now=10.0)
    assert race.due(10.0) == [0]
    assert race.timer() == 10.25
    assert race.due(10.25) == [1]
    assert race.timer() is None
    assert not race.exhausted
    race.failed(0, 10.3)
    race.failed(1, 10.4)
    assert race.exhausted


def test_address_cache_keeps_an_answer_for_its_ttl_and_refreshes_it_before() -> None:
    cache = AddressCache()
    assert cache.get("srv.test", 0.0) is None
    cache.put("srv.test", ("127.0.0.1", "::1"), ttl=100, now=0.0)
    entry = cache.get("srv.test", 74.0)
    assert entry is not None and entry.fresh(74.0)
    entry = cache.get("srv.test", 76.0)  # in the last quarter: due for a refresh
    assert entry is not None and not entry.fresh(76.0) and entry.usable(76.0)
    assert cache.get("srv.test", 100.0) is None  # expired
    assert entry.infos(853) == [(V6, ("::1", 853, 0, 0)), (V4, ("127.0.0.1", 853))]
    cache.put("zero.test", ("127.0.0.1",), ttl=0, now=0.0)
    assert cache.get("zero.test", MIN_TTL - 0.1) is not None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"source_address": "example.com"}, ValueError, "must be an IP address"),
        ({"source_address": ("127.0.0.1", 70000)}, ValueError, "port must be 0 to 65535"),
        ({"source_address": 5}, TypeError, "IP address or"),
        ({"proxy": "http://127.0.0.1:8080"}, ValueError, "socks5:// or socks5h://"),
        ({"proxy": "socks5://127.0.0.1"}, ValueError, "needs a host and a port"),
        ({"happy_eyeballs_delay": -1}, ValueError, "0 or more"),
        ({"bootstrap": ["dns.google"]}, ValueError, "by IP address"),
        ({"bootstrap": []}, ValueError, "at least one"),
        ({"client_key": "/nonexistent.key"}, ValueError, "client_key needs client_cert"),
        ({"client_cert": "/nonexistent.pem"}, ValueError, "cannot load client_cert"),
    ],
)
def test_connection_options_are_checked_before_any_io(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        dotclient.Client("127.0.0.1", **kwargs)
    with pytest.raises(error, match=match):
        dotclient.AsyncClient("127.0.0.1", **kwargs)


def test_connection_options_parse() -> None:
    assert parse_source("::1") == ("::1", 0)
    assert parse_source(("127.0.0.2", 5353)) == ("127.0.0.2", 5353)
    route = make_route(None, "socks5h://user:p%40ss@127.0.0.1:1080", 0.1)
    assert route.proxy is not None
    assert (route.proxy.username, route.proxy.password) == ("user", "p@ss")
    assert route.proxy.remote_dns and "p@ss" not in repr(route.proxy)
    assert str(route.proxy) == "socks5h://user@127.0.0.1:1080"
    assert check_attempt_delay(0) == 0.0
    with pytest.raises(ValueError, match="not both"):
        dotclient.Client(
            "127.0.0.1", client_cert="x.pem", ssl_context=ssl.create_default_context()
        )


def test_presets_are_given_by_address() -> None:
    # bootstrap= is only asked about servers given by name: the presets never are.
    assert all(server.is_ip for server in PRESETS.values())


def test_family_of_an_ip_literal_every_time() -> None:
    for _ in range(2):  # cached: the second answers come from the cache
        assert family_of("192.0.2.1") == socket.AF_INET
        assert family_of("2001:db8::1") == socket.AF_INET6
        assert family_of("::ffff:192.0.2.1") == socket.AF_INET6
        with pytest.raises(ValueError):
            family_of("dns.google")
