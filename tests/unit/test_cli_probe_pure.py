"""``dotclient probe``'s usage errors, before any I/O (the rest:
tests/servers/test_cli_probe.py)."""

from __future__ import annotations

import pytest

from support.cli import run


@pytest.mark.parametrize("name", ["a..example.test", "x" * 64 + ".example.test", "a" * 256])
def test_probe_bad_name_is_one_line_and_exit_2(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 15 bug 2: a traceback, and exit 1 (WARN).
    code, out, err = run(capsys, "probe", "127.0.0.1:1#dot.test", "--name", name)
    assert code == 2 and out == "", (code, out, err)
    assert err.count("\n") == 1 and "--name" in err and "Traceback" not in err, err
