"""The ``dotclient`` command's help, without a server (the rest: tests/servers/test_cli.py)."""

from __future__ import annotations

import pytest

from support.cli import run


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "probe" in out and "bulk" in out and "Exit codes" in out
    for command in ("query", "probe", "bulk"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and f"usage: dotclient {command}" in out
