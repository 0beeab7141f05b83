"""The CLI's connection options refused as usage errors before any I/O (issue 17; the
rest, against real parts: tests/servers/test_cli_connect.py)."""

from __future__ import annotations

import pytest

from support.cli import run


def test_bad_connection_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for option in (["--source", "not-an-ip"], ["--proxy", "http://x:1"], ["--bootstrap", "x.y"]):
        code, _, err = run(capsys, "query", "a.example.test", "--server", "127.0.0.1", *option)
        assert code == 2, (option, err)
