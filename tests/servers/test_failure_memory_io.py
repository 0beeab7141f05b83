"""RFC 7858 section 3.1, against servers: a server failing authentication is not asked
again, several remembered servers fail fast together, and a server that answers is
never skipped (the rule without I/O: tests/unit/test_failure_memory.py)."""

from __future__ import annotations

import pytest

import dotclient
from dotclient import (
    AuthenticationError,
)
from dotclient.testing import IssuedCert

from support.fakeserver import FakeServer
from support.modes import open_client


def test_a_lone_server_failing_authentication_is_not_asked_again(
    mode: str, certs: dict[str, IssuedCert], ca_file: str
) -> None:
    """The query after a failed authentication fails at once with the remembered error,
    and the server sees no new connection; forget_failures() retries it."""
    with FakeServer(certs["wrong-name"]) as server:
        with open_client(mode, server.spec, ca_file=ca_file) as client:
            with pytest.raises(AuthenticationError, match="not valid for") as first:
                client.resolve("a.test")
            assert "remembered" not in str(first.value)
            assert server.connections == 1
            for _ in range(3):
                with pytest.raises(AuthenticationError, match="remembered") as again:
                    client.resolve("a.test")
                assert again.value.server == client.servers[0]
            assert server.connections == 1  # nothing sent: not even a TCP connection
            client.forget_failures()
            with pytest.raises(AuthenticationError, match="not valid for") as retried:
                client.resolve("a.test")
            assert "remembered" not in str(retried.value)
            assert server.connections == 2


def test_several_servers_all_remembered_fail_fast_together(
    mode: str, certs: dict[str, IssuedCert], ca_file: str
) -> None:
    with FakeServer(certs["wrong-name"]) as a, FakeServer(certs["self-signed"]) as b:
        with open_client(mode, servers=[a.spec, b.spec], ca_file=ca_file) as client:
            with pytest.raises(dotclient.AllServersFailed):
                client.resolve("a.test")
            with pytest.raises(dotclient.AllServersFailed, match="remembered") as again:
                client.resolve("a.test")
            assert [type(e) for _, e in again.value.errors] == [AuthenticationError] * 2
            assert (a.connections, b.connections) == (1, 1)


def test_a_server_that_answers_is_never_skipped(
    mode: str, server_cert: IssuedCert, certs: dict[str, IssuedCert], ca_file: str
) -> None:
    """A remembered server beside a working one: queries go to the working one."""
    with FakeServer(certs["wrong-name"]) as bad, FakeServer(server_cert) as good:
        with open_client(mode, servers=[bad.spec, good.spec], ca_file=ca_file) as client:
            for _ in range(3):
                assert client.resolve("a.test").server == client.servers[1]
            assert bad.connections == 1
