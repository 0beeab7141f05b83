"""``dotclient query``'s usage errors as dig and kdig users meet them, before any I/O
(issue 15; the rest: tests/servers/test_cli_query.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.cli import run


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["a.example.test", "NOTATYPE"], "unknown record type 'NOTATYPE'"),
        (["a.example.test", "A", "AAAA"], "AAAA is not followed by a name"),
        (["MX", "AAAA", "a.example.test"], "two record types before a name"),
        (["-x", "not-an-address"], "-x 'not-an-address': not an IPv4 or IPv6 address"),
        (["a..example.test"], "'a..example.test' is not a domain name"),
    ],
)
def test_bad_words_are_one_line_usage_errors(
    words: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *words, "@127.0.0.1:1")
    assert (code, out) == (2, "") and message in err and err.count("\n") == 1, err


def test_usage_errors_are_json_under_json(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["a.example.test", "--json", "--no-such-option"],
        ["a.example.test", "--json", "@127.0.0.1:99999"],
        ["probe", "127.0.0.1:1", "--json", "--name", "a..b"],
        ["a.example.test", "--json", "--short"],  # --short was silently dropped
    ):
        code, out, err = run(capsys, *argv)
        doc = json.loads(out)
        assert code == 2 and doc["exit_code"] == 2 and doc["error"].startswith("UsageError: ")
        assert err == ""


def test_error_messages_name_the_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "a.example.test", "@127.0.0.1:1", "--pin-only")
    assert code == 2 and "--pin-only needs at least one --pin" in err
    code, _, err = run(capsys, "a.example.test", "@127.0.0.1:1", "--pin", "sha256:abc")
    assert code == 2 and "--pin: invalid SPKI pin" in err and "sha256/BASE64" in err
    names = tmp_path / "names.txt"
    names.write_text("a.example.test\n")
    for option, value in (
        ("--connections", "65"),
        ("--connections", "0"),  # a ZeroDivisionError traceback once
        ("--concurrency", "0"),
        ("--retries", "-1"),
    ):
        code, _, err = run(capsys, "bulk", str(names), "-s", "127.0.0.1:1", option, value)
        assert code == 2 and f"{option} must be" in err, err
        assert "max_connections" not in err
    monkeypatch.setenv("DOTCLIENT_SERVER", "127.0.0.1:99999")
    for argv in (["a.example.test"], ["probe"], ["bulk", str(names)]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "$DOTCLIENT_SERVER: invalid port '99999'" in err, err
