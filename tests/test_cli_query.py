"""``dotclient query`` as dig and kdig users type it (issue 15)."""

from __future__ import annotations

import json

import pytest

from dotclient.cli import main
from dotclient.testing import UnboundServer


def spec(server: UnboundServer) -> str:
    return f"127.0.0.1:{server.port}#dot.test"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_short_prints_every_answer_record_as_kdig_does(
    unbound: UnboundServer, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 15 bug 8: --short printed nothing for ANY and hid the CNAME chain.
    base = [f"@{spec(unbound)}", "--ca-file", ca_file, "--short"]
    code, out, _ = run(capsys, "www.example.test", *base)
    assert code == 0
    lines = out.splitlines()  # the chain in order; unbound rotates the A records
    assert lines[:2] == ["alias.example.test.", "a.example.test."]
    assert sorted(lines[2:]) == ["192.0.2.1", "192.0.2.2"]
    code, out, _ = run(capsys, "a.example.test", "ANY", *base)
    assert code == 0
    assert sorted(out.splitlines()) == ["192.0.2.1", "192.0.2.2", "2001:db8::1"], out
