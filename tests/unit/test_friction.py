"""Issue 15's friction list, library side: pin and spec messages (TLSInfo's pins, which
need a server, are in tests/servers/test_friction_io.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dotclient import InvalidServerSpec, parse_server
from dotclient._server import parse_pin

DIGEST = "Lhfa0++y6LHdFI80lqq02EAKRoDCqJWPRGQWD1zY8mg="


@pytest.mark.parametrize(
    ("pin", "problem"),
    [
        ("sha256:" + DIGEST, "write 'sha256/', not 'sha256:'"),
        ("SHA-256:" + DIGEST, "write 'sha256/', not 'sha256:'"),
        ("sha1/E/vXnD05Dl1lhaIeEf9ewZcM/ww=", "sha1 pins are not supported"),
        ("sha256/" + DIGEST[:-1], "is the final '=' missing?"),
    ],
)
def test_a_bad_pin_says_which_form_is_expected(pin: str, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_pin(pin)
    assert not isinstance(info.value, InvalidServerSpec)  # a pin is not a server spec
    assert problem in str(info.value) and "expected sha256/BASE64" in str(info.value)


def test_server_specs_take_tls_scheme_and_refuse_others() -> None:
    assert parse_server("tls://1.1.1.1") == parse_server("1.1.1.1")
    assert str(parse_server("tls://[::1]:8853#dot.test")) == "[::1]:8853#dot.test"
    with pytest.raises(InvalidServerSpec, match="specs take none"):
        parse_server("https://1.1.1.1")


def test_a_preset_with_an_authentication_name_is_refused() -> None:
    with pytest.raises(InvalidServerSpec, match=re.escape("give an address: 1.1.1.1#x")):
        parse_server("cloudflare#x")


def test_readme_rcode_example_prints_a_name() -> None:
    # print(r.rcode) gives 0 on Python 3.11+ (IntEnum's str): the README prints the name.
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    assert "print(r.rcode, " not in readme
