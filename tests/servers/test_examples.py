"""The examples run, against the local unbound, as a user would run them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from dotclient.testing import IssuedCert, UnboundServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_resolve_example(unbound: UnboundServer, ca_file: str) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    done = run(
        str(EXAMPLES / "resolve.py"), "www.example.test", "--server", spec, "--ca-file", ca_file
    )
    assert done.returncode == 0, done.stderr
    assert "a.example.test." in done.stdout and "192.0.2.1" in done.stdout
    assert "authenticated: yes" in done.stdout
    nx = run(
        str(EXAMPLES / "resolve.py"), "nx.example.test", "--server", spec, "--ca-file", ca_file
    )
    assert nx.returncode == 1 and "NXDOMAIN" in nx.stdout
    untrusted = run(str(EXAMPLES / "resolve.py"), "a.example.test", "--server", spec)
    assert untrusted.returncode == 2 and "AuthenticationError" in untrusted.stderr
    bad = run(str(EXAMPLES / "resolve.py"), "a.example.test", "--server", "1.1.1.1:0")
    assert bad.returncode == 2 and "invalid port '0'" in bad.stderr


def test_show_pins_example(unbound: UnboundServer, server_cert: IssuedCert) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    done = run(str(EXAMPLES / "show_pins.py"), "--server", spec)
    assert done.returncode == 0, done.stderr
    assert f"leaf      sha256/{server_cert.spki_pin}" in done.stdout
    assert "authenticated: no" in done.stdout  # no --ca-file: the test CA is not trusted


def test_local_demo(unbound: UnboundServer) -> None:  # needs unbound, starts its own
    done = run(str(EXAMPLES / "local_demo.py"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count("authenticated") >= 6
    assert "AuthenticationError" in out and "NOT authenticated" in out
    assert "NXDOMAIN" in out and "2001:db8::1" in out


def test_guide_testing_snippet_runs(unbound: UnboundServer) -> None:
    # The guide's "Testing against a local server" snippet, run as a user would paste it.
    guide = (EXAMPLES.parent / "docs" / "guide.md").read_text()
    section = guide[guide.index("## 8. Testing against a local server") :]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    done = run("-c", snippet)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("['192.0.2.1', '192.0.2.2']", "['192.0.2.2', '192.0.2.1']")


def test_benchmark_script_runs(unbound: UnboundServer) -> None:
    # Not a timing test: tiny counts, only checks that the script still works end to end.
    bench = EXAMPLES.parent / "benchmarks" / "bench_dot.py"
    done = run(
        str(bench),
        *(
            "--queries",
            "40",
            "--repeat",
            "1",
            "--oneshot",
            "2",
            "--memory",
            "200",
            "--concurrency",
            "1",
            "10",
        ),
        *("--bulk", "40", "--profile", "50"),
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for heading in ("a. asyncio", "b. blocking", "c. one-shot", "d. 200", "e. dotclient bulk"):
        assert heading in out, out
    assert re.search(r"^resolve_many, 10 in flight\s+\d+", out, re.MULTILINE), out
    assert "NOT READ" in out and "(2/2 resumed)" in out
    assert "MiB above idle" in out and "profile of 50 queries" in out
