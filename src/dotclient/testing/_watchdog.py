"""Ending a server process: as usual (:func:`shutdown`), or by a watchdog process when the
process that started the server dies without stopping it (:func:`start_watchdog`)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from typing import IO

# The watchdog of one server process: it waits on a pipe from the process that started
# the server. A byte means "stopped as usual": nothing to do. End of file means that
# process died without stopping the server (SIGTERM, SIGKILL, a crash: no finalizer or
# atexit ran), so the watchdog ends the server and removes its directory.
_WATCHDOG = r"""
import os, shutil, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pid, tmpdir = int(sys.argv[1]), sys.argv[2]
if sys.stdin.buffer.read(1):
    sys.exit(0)

def gone():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        break
    deadline = time.monotonic() + wait
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.02)
    if gone():
        break
shutil.rmtree(tmpdir, ignore_errors=True)
"""


def start_watchdog(pid: int, tmpdir: str) -> subprocess.Popen[bytes]:
    """Start the watchdog of server ``pid`` (see ``_WATCHDOG``)."""
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(pid), tmpdir],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def shutdown(
    proc: subprocess.Popen[bytes],
    stderr: IO[bytes],
    tmpdir: str,
    watchdog: subprocess.Popen[bytes] | None = None,
) -> None:
    """Stop a server and release everything; used by stop() and as a GC/exit finalizer."""
    try:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        stderr.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
        if watchdog is not None and watchdog.stdin is not None:
            with contextlib.suppress(OSError):
                watchdog.stdin.write(b"x")  # stopped as usual: the watchdog just exits
            with contextlib.suppress(OSError):
                watchdog.stdin.close()
            watchdog.wait()
