"""Running the ``dotclient`` command in-process, for the CLI tests."""

from __future__ import annotations

import pytest

from dotclient.cli import main
from dotclient.testing import DelayedServer, DnsdistServer, NamedServer, UnboundServer


def spec(server: UnboundServer | NamedServer | DnsdistServer | DelayedServer) -> str:
    """The command line's spec for a local test server: 127.0.0.1, its port, dot.test."""
    return f"127.0.0.1:{server.port}#dot.test"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``dotclient *argv``; return its exit code, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
