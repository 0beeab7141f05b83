"""RFC 7858 section 3.1: servers that failed to offer usable DoT are remembered.

The rule (``dotclient._failover``): a server that fails is backed off for ``backoff``
seconds, doubled with each failure in a row up to ``max_backoff`` (an hour by default);
while *every* server is backed off after failing to connect, handshake or authenticate,
a query fails at once with the remembered errors and nothing is sent, until a backoff
ends or the caller calls ``forget_failures()``. The rotation is tested alone with time
passed in; the clients against in-process servers, counting the connections they got,
in tests/servers/test_failure_memory_io.py.
"""

from __future__ import annotations

import pytest

from dotclient import (
    AuthenticationError,
    ConnectError,
    ConnectionLost,
    DoTError,
    ProtocolError,
    Timeout,
    TLSError,
)
from dotclient._config import DEFAULT_MAX_BACKOFF, ClientConfig
from dotclient._failover import Rotation


def test_the_default_backoff_grows_to_an_hour() -> None:
    config = ClientConfig.from_options("127.0.0.1")
    assert DEFAULT_MAX_BACKOFF == config.max_backoff == 3600.0
    rotation = Rotation(1, "failover", config.backoff, config.max_backoff)
    now = 0.0
    for _ in range(20):
        rotation.failed(0, ConnectError("refused"), now)
        now += rotation.retry_in(0, now)
    assert rotation.retry_in(0, now - 3600.0) == 3600.0


@pytest.mark.parametrize(
    ("error", "remembered"),
    [
        (ConnectError("refused"), True),
        (TLSError("handshake failed"), True),
        (AuthenticationError("no SPKI pin matched"), True),
        (Timeout("timed out"), False),  # a connect timeout is not told from a slow answer
        (ConnectionLost("closed"), False),  # it handshook: it does DoT
        (ProtocolError("bad answer"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, DoTError) else str(v),
)
def test_which_failures_make_a_lone_server_fail_fast(error: DoTError, remembered: bool) -> None:
    rotation = Rotation(1, "failover", backoff=1.0, max_backoff=3600.0)
    rotation.failed(0, error, now=10.0)
    errors = rotation.remembered(10.5)
    if not remembered:
        assert errors is None
        return
    assert errors is not None and len(errors) == 1
    assert type(errors[0]) is type(error) and errors[0].__cause__ is error
    assert "remembered: not tried again for 0 s" in str(errors[0])
    assert rotation.remembered(11.0) is None  # the backoff is over: tried again


def test_a_refusal_while_restarting_is_not_remembered() -> None:
    rotation = Rotation(1, "failover", backoff=1.0, max_backoff=3600.0)
    rotation.failed(0, ConnectError("refused"), now=0.0, restarting=True)
    assert rotation.remembered(0.5) is None
    assert rotation.order(0.5) == (0,)


def test_every_server_must_be_remembered_to_fail_fast() -> None:
    rotation = Rotation(2, "failover", backoff=1.0, max_backoff=3600.0)
    rotation.failed(0, ConnectError("refused"), now=0.0)
    assert rotation.remembered(0.5) is None  # server 1 may be tried
    rotation.failed(1, Timeout("timed out"), now=0.0)
    assert rotation.remembered(0.5) is None  # server 1 does DoT, slowly
    rotation.failed(0, ConnectError("refused"), now=2.0)  # failed again: 2 s now
    rotation.failed(1, AuthenticationError("wrong name"), now=2.0)
    errors = rotation.remembered(2.5)
    assert errors is not None and [type(e) for e in errors] == [ConnectError, AuthenticationError]
    rotation.forget()
    assert rotation.remembered(2.5) is None
    assert rotation.failures == [0, 0] and rotation.errors == [None, None]


def test_success_forgets_the_failure() -> None:
    rotation = Rotation(1, "failover", backoff=1.0, max_backoff=3600.0)
    rotation.failed(0, ConnectError("refused"), now=0.0)
    rotation.succeeded(0)
    assert rotation.remembered(0.5) is None
