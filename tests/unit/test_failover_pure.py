"""Several servers per client, without I/O: the rotation (the order a query tries them
in, backoff, time passed in) and server lists refused before any I/O. The clients
against failing servers: tests/servers/test_failover.py."""

from __future__ import annotations

import pytest

import dotclient
from dotclient import DoTError
from dotclient._failover import Rotation


def test_failover_order_is_the_given_one_until_a_server_fails() -> None:
    rotation = Rotation(3, "failover", backoff=1.0, max_backoff=8.0)
    assert [rotation.order(0.0) for _ in range(3)] == [[0, 1, 2]] * 3
    rotation.failed(0, DoTError("refused"), now=10.0)
    assert rotation.order(10.5) == [1, 2, 0]  # backed off: tried last
    assert rotation.order(11.0) == [0, 1, 2]  # 1 s later it is first again


def test_round_robin_starts_each_query_one_server_further() -> None:
    rotation = Rotation(3, "round_robin", backoff=1.0, max_backoff=8.0)
    assert [rotation.order(0.0)[0] for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    rotation.failed(1, DoTError("timed out"), now=0.0)
    firsts = [rotation.order(0.5)[0] for _ in range(6)]
    assert 1 not in firsts and sorted(set(firsts)) == [0, 2]
    assert rotation.order(0.5)[-1] == 1


def test_backoff_doubles_up_to_the_cap_and_resets_on_success() -> None:
    rotation = Rotation(2, "failover", backoff=1.0, max_backoff=5.0)
    now = 0.0
    delays = []
    for _ in range(5):
        rotation.failed(0, DoTError("refused"), now)
        delays.append(rotation.retry_in(0, now))
        now += delays[-1]  # fails again as soon as it is tried again
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert rotation.failures[0] == 5 and str(rotation.errors[0]) == "refused"
    rotation.succeeded(0)
    assert (rotation.failures[0], rotation.retry_in(0, now), rotation.errors[0]) == (0, 0, None)
    rotation.failed(0, DoTError("refused"), now)
    assert rotation.retry_in(0, now) == 1.0


def test_failures_while_backed_off_do_not_lengthen_it() -> None:
    # A hundred queries in flight on a server that died all fail at once: one failure.
    rotation = Rotation(2, "failover", backoff=1.0, max_backoff=300.0)
    for i in range(100):
        rotation.failed(0, DoTError(f"timed out {i}"), now=0.001 * i)
    assert rotation.failures[0] == 1
    assert rotation.retry_in(0, 0.0) == 1.0
    assert str(rotation.errors[0]) == "timed out 99"


def test_when_all_are_backed_off_the_soonest_back_comes_first() -> None:
    rotation = Rotation(3, "failover", backoff=1.0, max_backoff=300.0)
    rotation.failed(0, DoTError("x"), now=0.0)
    rotation.failed(0, DoTError("x"), now=1.0)  # second failure: back at 3.0
    rotation.failed(1, DoTError("x"), now=0.0)  # back at 1.0
    rotation.failed(2, DoTError("x"), now=0.5)  # back at 1.5
    assert rotation.order(0.9) == [1, 2, 0]


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"server": "192.0.2.1", "servers": ["192.0.2.2"]}, ValueError, "not both"),
        ({"servers": "192.0.2.1"}, TypeError, "list of server specs"),
        ({"servers": []}, ValueError, "at least one"),
        ({"servers": ["192.0.2.1", "192.0.2.1:853"]}, ValueError, "listed twice"),
        ({"servers": ["192.0.2.1", "no such spec!"]}, dotclient.InvalidServerSpec, "spec"),
        ({"servers": ["192.0.2.1"], "strategy": "random"}, ValueError, "strategy"),
        ({"servers": ["192.0.2.1"], "server_timeout": 0}, ValueError, "server_timeout"),
        ({"servers": ["192.0.2.1"], "backoff": -1}, ValueError, "backoff"),
        ({"servers": ["192.0.2.1"], "backoff": 5, "max_backoff": 1}, ValueError, "max_backoff"),
    ],
)
def test_bad_server_lists_are_refused_before_any_io(
    options: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        dotclient.Client(**options)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        dotclient.AsyncClient(**options)  # type: ignore[arg-type]


def test_servers_share_the_auth_name_and_pins_given_once() -> None:
    pin = "sha256/" + "A" * 43 + "="
    client = dotclient.Client(servers=["192.0.2.1", "192.0.2.2#b.test"], pins=[pin])
    with client:
        assert [s.pins for s in client.servers] == [client.servers[0].pins] * 2
        assert len(client.servers[0].pins) == 1
        assert [s.auth_name for s in client.servers] == [None, "b.test"]
        assert client.server == client.servers[0]
        assert "192.0.2.1:853, 192.0.2.2:853#b.test (failover)" in repr(client)
