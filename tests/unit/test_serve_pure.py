"""``dotclient serve``'s usage errors, before any I/O (the stub with real clients:
tests/servers/test_serve.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_command_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dotclient.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("colour = 1\n")
    for argv, message in (
        (["--config", str(bad)], "unknown setting 'colour'"),
        (["--config", str(tmp_path / "missing.toml")], "cannot read --config"),
        (["--listen", "127.0.0.1:99999"], "not a port number"),
        (["--allow", "10.0.0.0/33"], "not a network"),
        (["--cache-size", "0"], "--cache-size must be at least 1"),
        (["--server", "[::1"], ""),
    ):
        assert main(["serve", *argv]) == 2, argv
        assert message in capsys.readouterr().err
