"""The exception hierarchy, pickling and the mapping of stdlib I/O errors."""

from __future__ import annotations

import asyncio
import pickle
import re
import socket
import ssl
from pathlib import Path

import pytest

import dotclient
from dotclient import (
    AuthenticationError,
    ConnectError,
    ConnectionLost,
    DoTError,
    InvalidServerSpec,
    ProtocolError,
    RcodeError,
    Timeout,
    TLSError,
    _exceptions,
)
from dotclient._exceptions import map_io_errors
from dotclient.testing import IssuedCert, self_signed_cert

from support.memtls import pump

SERVER = dotclient.parse_server("192.0.2.53#dot.test")

# Each class and its parent inside dotclient, as the module docstring draws it.
EXPECTED_PARENTS = {
    "DoTError": None,
    "NetworkError": "DoTError",
    "ConnectError": "NetworkError",
    "ConnectionLost": "NetworkError",
    "TLSError": "DoTError",
    "AuthenticationError": "TLSError",
    "Timeout": "DoTError",
    "ProtocolError": "DoTError",
    "AllServersFailed": "DoTError",
    "RcodeError": "DoTError",
}

DOT_ERRORS = [getattr(dotclient, name) for name in EXPECTED_PARENTS]
ALL_ERRORS = [*DOT_ERRORS, InvalidServerSpec]


def _drawn_tree() -> dict[str, str | None]:
    """Parse the box-drawing tree of the _exceptions module docstring."""
    doc = _exceptions.__doc__
    assert doc is not None
    lines = doc.split("::", 1)[1].splitlines()
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in lines:
        if not line.strip():
            if parents:
                break
            continue
        match = re.search(r"[A-Za-z]\w*", line)
        assert match is not None, line
        column, name = match.start(), match.group()
        while stack and stack[-1][0] >= column:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((column, name))
    return parents


def test_docstring_tree_is_the_expected_one() -> None:
    assert _drawn_tree() == EXPECTED_PARENTS


@pytest.mark.parametrize(("name", "parent"), sorted(EXPECTED_PARENTS.items()))
def test_hierarchy_matches_the_drawing(name: str, parent: str | None) -> None:
    cls = getattr(dotclient, name)
    assert getattr(_exceptions, name) is cls
    ours = [
        base
        for base in cls.__bases__
        if base.__module__ == _exceptions.__name__ and not base.__name__.startswith("_")
    ]
    if parent is None:
        assert ours == []
        assert cls.__bases__ == (Exception,)
    else:
        assert ours == [getattr(dotclient, parent)]
    assert issubclass(cls, DoTError)


def test_no_undrawn_dot_errors() -> None:
    defined = {
        name
        for name, value in vars(_exceptions).items()
        if isinstance(value, type) and issubclass(value, DoTError)
    }
    assert defined == set(EXPECTED_PARENTS)
    assert set(_exceptions.__all__) == set(EXPECTED_PARENTS) | {"InvalidServerSpec"}


def test_timeout_is_also_a_builtin_timeout_error() -> None:
    assert issubclass(Timeout, TimeoutError)
    assert issubclass(Timeout, OSError)
    assert issubclass(Timeout, asyncio.TimeoutError)
    with pytest.raises(TimeoutError):
        raise Timeout("slow", server=SERVER)
    assert not issubclass(ConnectError, OSError)


def test_invalid_server_spec_is_a_value_error_not_a_dot_error() -> None:
    assert issubclass(InvalidServerSpec, ValueError)
    assert not issubclass(InvalidServerSpec, DoTError)
    with pytest.raises(ValueError, match="nope"):
        raise InvalidServerSpec("nope")


def test_server_attribute() -> None:
    assert DoTError("x").server is None
    assert ProtocolError("x", server=SERVER).server is SERVER
    with pytest.raises(TypeError):
        DoTError("x", SERVER)  # type: ignore[misc]  # server is keyword-only


@pytest.mark.parametrize("cls", DOT_ERRORS, ids=lambda c: c.__name__)
def test_dot_errors_pickle_with_message_and_server(cls: type[DoTError]) -> None:
    error = cls("it went wrong", server=SERVER)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is cls
    assert str(clone) == "it went wrong"
    assert clone.args == ("it went wrong",)
    assert clone.server == SERVER
    assert str(clone.server) == "192.0.2.53:853#dot.test"
    bare = pickle.loads(pickle.dumps(cls("no server")))
    assert bare.server is None


def test_timeout_pickles_as_a_timeout_error() -> None:
    clone = pickle.loads(pickle.dumps(Timeout("slow", server=SERVER)))
    assert isinstance(clone, TimeoutError)
    assert clone.server == SERVER


def test_rcode_error_pickles_with_its_response() -> None:
    import dns.message
    import dns.rcode

    message = dns.message.make_response(dns.message.make_query("nx.example.test", "A"))
    message.set_rcode(dns.rcode.NXDOMAIN)
    tls = dotclient.TLSInfo("TLSv1.3", None, "dot", True, None, ())
    response = dotclient.Response(message, SERVER, 0.01, tls)
    clone = pickle.loads(pickle.dumps(RcodeError("nx", server=SERVER, response=response)))
    assert clone.rcode == dns.rcode.NXDOMAIN
    assert clone.response.server == SERVER
    assert str(clone) == "nx"


def test_invalid_server_spec_pickles() -> None:
    clone = pickle.loads(pickle.dumps(InvalidServerSpec("bad spec 'x'")))
    assert type(clone) is InvalidServerSpec
    assert str(clone) == "bad spec 'x'"


# -- map_io_errors ------------------------------------------------------------------------


def _mapped(exc: BaseException, phase: str = "receive") -> BaseException:
    """What comes out of map_io_errors when ``exc`` is raised inside it."""
    try:
        with map_io_errors(phase, SERVER):
            raise exc
    except Exception as caught:
        return caught
    raise AssertionError("map_io_errors swallowed the exception")


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[IssuedCert, Path]:
    cert = self_signed_cert("dot.test")
    directory = tmp_path_factory.mktemp("selfsigned")
    cert.write(directory)
    return cert, directory


def _real_verification_error(self_signed: tuple[IssuedCert, Path]) -> ssl.SSLError:
    """A genuine SSLCertVerificationError, from an in-memory handshake (no sockets)."""
    _, directory = self_signed
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(directory / "server.pem", directory / "server.key")
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts nothing
    bios = [ssl.MemoryBIO() for _ in range(4)]
    client = client_ctx.wrap_bio(bios[0], bios[1], server_hostname="dot.test")
    server = server_ctx.wrap_bio(bios[2], bios[3], server_side=True)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        pump(client, server, bios)
    return info.value


def _real_ssl_error() -> ssl.SSLError:
    """A genuine (non-verification) SSLError: the peer answers a ClientHello with junk."""
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(incoming, outgoing, server_hostname="dot.test")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    incoming.write(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 4)
    with pytest.raises(ssl.SSLError) as info:
        client.do_handshake()
    assert not isinstance(info.value, ssl.SSLCertVerificationError)
    return info.value


def test_cert_verification_error_becomes_authentication_error(
    self_signed: tuple[IssuedCert, Path],
) -> None:
    original = _real_verification_error(self_signed)
    error = _mapped(original, "handshake")
    assert type(error) is AuthenticationError
    assert error.server is SERVER
    assert error.__cause__ is original
    assert str(error).startswith(f"certificate verification failed for {SERVER}: ")
    assert "self-signed" in str(error) or "self signed" in str(error)


def test_ssl_error_becomes_tls_error() -> None:
    original = _real_ssl_error()
    error = _mapped(original, "handshake")
    assert type(error) is TLSError
    assert error.server is SERVER
    assert error.__cause__ is original
    assert str(SERVER) in str(error)
    assert original.reason and original.reason in str(error)


@pytest.mark.parametrize(
    "exc",
    [TimeoutError(), socket.timeout("timed out"), asyncio.TimeoutError()],  # noqa: UP041
    ids=["TimeoutError", "socket.timeout", "asyncio.TimeoutError"],
)
def test_timeouts_become_timeout(exc: BaseException) -> None:
    error = _mapped(exc, "connect")
    assert type(error) is Timeout
    assert isinstance(error, TimeoutError)
    assert error.server is SERVER
    assert str(error).startswith("timed out")
    assert str(SERVER) in str(error)
    assert error.__cause__ is exc


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError(104, "Connection reset by peer"),
        BrokenPipeError(32, "Broken pipe"),
        ConnectionAbortedError(103, "Software caused connection abort"),
    ],
)
@pytest.mark.parametrize("phase", ["connect", "send", "receive"])
def test_resets_become_connection_lost(exc: OSError, phase: str) -> None:
    error = _mapped(exc, phase)
    assert type(error) is ConnectionLost
    assert error.server is SERVER
    assert error.__cause__ is exc
    assert str(SERVER) in str(error)
    assert str(error).endswith(f": {exc.strerror}")


@pytest.mark.parametrize("phase", ["connect", "resolve"])
def test_refused_while_connecting_is_connect_error(phase: str) -> None:
    error = _mapped(ConnectionRefusedError(111, "Connection refused"), phase)
    assert type(error) is ConnectError
    assert str(SERVER) in str(error)
    assert str(error).endswith(": Connection refused")
    assert error.server is SERVER


def test_other_os_errors() -> None:
    unreachable = _mapped(OSError(101, "Network is unreachable"), "connect")
    assert type(unreachable) is ConnectError
    gai = _mapped(socket.gaierror(-2, "Name or service not known"), "resolve")
    assert type(gai) is ConnectError
    assert "Name or service not known" in str(gai)
    later = _mapped(OSError(5, "Input/output error"), "receive")
    assert type(later) is ConnectionLost


@pytest.mark.parametrize(
    "exc",
    [
        ProtocolError("bad frame"),
        AuthenticationError("no pin matched"),
        Timeout("already ours"),
        ConnectionLost("gone"),
    ],
)
def test_dot_errors_pass_through_unchanged(exc: DoTError) -> None:
    assert _mapped(exc, "connect") is exc


@pytest.mark.parametrize("exc", [ValueError("v"), KeyError("k"), RuntimeError("r")])
def test_other_exceptions_pass_through_unchanged(exc: Exception) -> None:
    assert _mapped(exc) is exc


def test_no_exception_no_change() -> None:
    with map_io_errors("send", SERVER):
        value = 1
    assert value == 1


def test_all_servers_failed_pickles_with_its_errors() -> None:
    other = dotclient.Server("192.0.2.54")
    errors = ((SERVER, Timeout("slow", server=SERVER)), (other, ConnectError("refused")))
    error = dotclient.AllServersFailed("both failed", errors=errors)
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == "both failed"
    assert [s for s, _ in clone.errors] == [SERVER, other]
    assert [type(e) for _, e in clone.errors] == [Timeout, ConnectError]
    assert clone.errors[0][1].server == SERVER
    assert dotclient.AllServersFailed("x").errors == ()


@pytest.mark.parametrize("phase", ["handshake", "send", "receive"])
def test_a_tls_eof_is_a_lost_connection_in_every_phase(phase: str) -> None:
    # A server dying in the handshake closes after the ClientHello: asyncio reports a
    # reset, the ssl module an EOF; both are a lost connection, retried like one.
    error = _mapped(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), phase)
    assert type(error) is ConnectionLost
    assert "the server closed it" in str(error) and error.server == SERVER
