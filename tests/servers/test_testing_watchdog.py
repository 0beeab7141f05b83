"""``dotclient.testing`` servers end with the process that started them (issue 15 bug 13)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dotclient.testing import TestCA, UnboundServer

SRC = Path(__file__).resolve().parents[2] / "src"

_PARENT = """
import sys, time
from dotclient.testing import TestCA, UnboundServer
cert = TestCA().issue("dot.test", "127.0.0.1")
server = UnboundServer(cert)
server.start()
print(server._proc.pid, server._tmpdir, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_server_ends_with_the_process_that_started_it(signum: int) -> None:
    UnboundServer(TestCA().issue("dot.test"))  # skips (ServerNotFound) without unbound
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert parent.stdout is not None
    try:
        pid_text, tmpdir = parent.stdout.readline().split()
        pid = int(pid_text)
        assert not _gone(pid) and os.path.isdir(tmpdir)
        parent.send_signal(signum)  # no finalizer, no atexit runs
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30  # the watchdog needs well under a second
        while not (_gone(pid) and not os.path.exists(tmpdir)):
            assert time.monotonic() < deadline, f"server {pid} or {tmpdir} still there"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()
