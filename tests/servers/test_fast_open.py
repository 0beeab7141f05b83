"""TCP Fast Open (RFC 7413), opt-in with ``fast_open=True`` (RFC 7858 section 3.4 and
RFC 7766 section 9 call it of benefit).

The socket option is checked on the socket itself; whether the ClientHello really rode
in the SYN is checked from the kernel's own record of the connection (TCP_INFO's
TCPI_OPT_SYN_DATA: the server acknowledged data sent in the SYN), against Debian's
unbound, built with --enable-tfo-server. That part needs the kernel to allow Fast Open
for clients and servers (``net.ipv4.tcp_fastopen`` = 3) and is skipped otherwise.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import pytest

import dotclient
from dotclient import _backends
from dotclient.testing import UnboundServer

from support.modes import AsyncDriver, open_client

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux TFO")
_TCP_FASTOPEN_CONNECT = 30  # linux/tcp.h
_TCPI_OPT_SYN_DATA = 0x20  # linux/tcp.h: SYN data was acknowledged


def _tfo_sysctl() -> int:
    try:
        with open("/proc/sys/net/ipv4/tcp_fastopen") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


needs_tfo = pytest.mark.skipif(
    _tfo_sysctl() & 3 != 3,
    reason="net.ipv4.tcp_fastopen does not allow TFO for clients and servers (needs 3)",
)


def _socket(client: Any) -> socket.socket:
    """The TCP socket under the client's one connection."""
    inner = client.client if isinstance(client, AsyncDriver) else client
    (connection,) = inner._pools[0]._pool
    stream = connection.stream
    return stream._socket if isinstance(client, AsyncDriver) else stream._sock  # type: ignore[no-any-return]


def _syn_data_acked(sock: socket.socket) -> bool:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return bool(info[5] & _TCPI_OPT_SYN_DATA)  # tcpi_options


@linux_only
def test_the_option_is_set_on_the_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert _backends.fast_open(sock)
        assert sock.getsockopt(socket.IPPROTO_TCP, _TCP_FASTOPEN_CONNECT) == 1


def test_no_fast_open_where_the_kernel_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        monkeypatch.setattr(_backends, "_FASTOPEN_CONNECT", None)
        assert not _backends.fast_open(sock)
        monkeypatch.setattr(_backends, "_FASTOPEN_CONNECT", 0x7FFF)  # unknown: ENOPROTOOPT
        assert not _backends.fast_open(sock)


@pytest.mark.parametrize("kernel_has_it", [True, False])
def test_connections_work_with_fast_open(
    mode: str,
    unbound: UnboundServer,
    ca_file: str,
    monkeypatch: pytest.MonkeyPatch,
    kernel_has_it: bool,
) -> None:
    """fast_open=True answers, with the option on the socket where the kernel has it and
    as an ordinary connection where it has not."""
    if not kernel_has_it:
        monkeypatch.setattr(_backends, "_FASTOPEN_CONNECT", None)
    elif not sys.platform.startswith("linux"):
        pytest.skip("Linux TFO")
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file, fast_open=True) as client:
        for _ in range(2):
            client.close_connections()
            assert client.resolve("a.example.test").addresses()
            option = _socket(client).getsockopt(socket.IPPROTO_TCP, _TCP_FASTOPEN_CONNECT)
            assert option == (1 if kernel_has_it else 0)


@needs_tfo
def test_a_repeat_connection_carries_the_client_hello_in_the_syn(
    mode: str, unbound: UnboundServer, ca_file: str
) -> None:
    """The first connection fetches a cookie; the next ones send data in the SYN and
    unbound acknowledges it. Without fast_open, never (the control)."""
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    for fast_open in (True, False):
        with open_client(mode, spec, ca_file=ca_file, fast_open=fast_open) as client:
            client.resolve("a.example.test")
            acked = []
            for _ in range(3):
                client.close_connections()
                client.resolve("a.example.test")
                acked.append(_syn_data_acked(_socket(client)))
        assert acked == [fast_open] * 3


def test_a_refused_fast_open_connect_is_a_connect_error(
    mode: str, unbound: UnboundServer, ca_file: str
) -> None:
    """With a cookie for 127.0.0.1 held (fetched from unbound first; the kernel keeps
    cookies per address, not port), connect() returns before the refusal, which the
    handshake meets: still a ConnectError, not a lost connection."""
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    with open_client(mode, spec, ca_file=ca_file, fast_open=True) as client:
        client.resolve("a.example.test")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: refused
        with open_client(mode, f"127.0.0.1:{port}#dot.test", ca_file=ca_file, fast_open=True) as c:
            with pytest.raises(dotclient.ConnectError) as info:
                c.resolve("a.example.test")
    assert type(info.value) is dotclient.ConnectError, repr(info.value)
