"""Protocol rules of RFC 7858 and RFC 7828 that need no TLS peer to check.

- A DoT server's port is never 53 (RFC 7858 section 3.1), in the library and the CLI.
"""

from __future__ import annotations

import pytest

import dotclient
from dotclient import InvalidServerSpec, Server, parse_server
from dotclient.cli import main


@pytest.mark.parametrize(
    "spec", ["127.0.0.1:53", "127.0.0.1@53", "[::1]:53", "dns.test:53#dot.test", "dns.test@53"]
)
def test_port_53_is_refused(spec: str) -> None:
    """RFC 7858 section 3.1: an alternative DoT port MUST NOT be 53."""
    with pytest.raises(InvalidServerSpec, match="RFC 7858 section 3.1"):
        parse_server(spec)
    with pytest.raises(InvalidServerSpec, match="RFC 7858 section 3.1"):
        dotclient.Client(spec)


def test_port_53_is_refused_in_a_server_value() -> None:
    with pytest.raises(InvalidServerSpec, match="must not be 53"):
        Server("127.0.0.1", 53)
    with pytest.raises(InvalidServerSpec, match="must not be 53"):
        dotclient.Client(servers=["127.0.0.1:8853", Server("127.0.0.1", 853).replace(port=53)])
    assert Server("127.0.0.1", 5353).port == 5353  # other ports stay open to agreement


@pytest.mark.parametrize(
    "argv",
    [
        ["a.example.test", "@127.0.0.1:53"],
        ["probe", "127.0.0.1:53"],
    ],
)
def test_port_53_is_a_usage_error_in_the_cli(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "must not be 53" in err
