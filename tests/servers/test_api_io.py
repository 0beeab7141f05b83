"""The public surface's checks that need a process or a socket: the generated sync
client (``scripts/unasync.py --check``) and quickack on real sockets. The rest of the
surface is pinned in tests/unit/test_api.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_unasync_check_passes() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/unasync.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_quickack_tolerates_any_socket() -> None:
    import socket

    from dotclient._backends import quickack

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        quickack(udp)  # not TCP: ignored
    tcp = socket.socket()
    tcp.close()
    quickack(tcp)  # closed: ignored
    quickack(object())  # not a socket at all: ignored
