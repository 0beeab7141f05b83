"""Every Python example of docs/integrations.md runs, against the local unbound.

The examples name a public resolver; here ``SERVER``, ``CA_FILE``, ``NAME`` and ``URL``
are replaced by the local unbound, the test CA, a name of the test zone and a local web
server reached by a name of the test zone (``WEB_ZONE`` in tests/servers/conftest.py).
"""

from __future__ import annotations

import http.server
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dotclient.testing import UnboundServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
# What each example prints, in order, against the local servers.
EXPECTED = [
    ["a.example.test. ['192.0.2.1', '192.0.2.2']", "NXDOMAIN: "],
    ["A ['192.0.2.1', '192.0.2.2']", "AAAA ['2001:db8::1']"],
    ["200 "],
    ["200 "],
    ["[200, 200]"],
    ["('127.0.0.1', 443)", "200 "],
]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        body = b"hello from a local web server"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://web.example.test:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_every_example_is_checked() -> None:
    assert len(BLOCKS) == len(EXPECTED)


@pytest.mark.parametrize("index", range(len(EXPECTED)))
def test_example_runs(index: int, web_unbound: UnboundServer, ca_file: str, web: str) -> None:
    local = {
        "SERVER": f"127.0.0.1:{web_unbound.port}#dot.test",
        "CA_FILE": ca_file,
        "NAME": "www.example.test",
        "URL": web,
    }
    code = BLOCKS[index]
    for variable, value in local.items():
        code, count = re.subn(rf"^{variable} = .*$", f"{variable} = {value!r}", code, flags=re.M)
        assert count <= 1
    assert "9.9.9.9" not in code and "example.com" not in code  # all replaced
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    position = 0
    for expected in EXPECTED[index]:
        found = done.stdout.find(expected, position)
        assert found >= 0, f"{expected!r} not in {done.stdout!r}"
        position = found + len(expected)


def test_libraries_are_imported_only_when_used() -> None:
    code = (
        "import sys, dotclient, dotclient.integrations, dotclient.integrations.dnspython, "
        "dotclient.integrations.socket\n"
        "assert not {'aiohttp', 'httpx', 'httpcore'} & set(sys.modules), sys.modules\n"
        "import dotclient.integrations.httpx\n"
        "assert 'httpx' in sys.modules and 'aiohttp' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
