"""The first query's time is the query's: no one-off import in it (issue 15 bug 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

_CODE = """
import sys
import dotclient
before = "cryptography.x509" in sys.modules
dotclient.Client("127.0.0.1:853#dot.test").close()  # no I/O: the clock has not started
print(before, "cryptography.x509" in sys.modules)
"""


def test_cryptography_is_imported_when_the_client_is_made_not_in_the_first_query() -> None:
    # Response.elapsed, the CLI's "Query time" and probe's "first query" included a
    # ~20 ms first `import cryptography` (for the certificates' SPKI pins), read after
    # the handshake. `import dotclient` stays free of it.
    done = subprocess.run(
        [sys.executable, "-c", _CODE],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["False", "True"], done.stderr
