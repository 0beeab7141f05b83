"""The ``dotclient`` command, driven against the local unbound (in-process where it can).

Exit codes: 0 ok, 1 RCODE / WARN / some names failed, 2 usage, 3 network, 4 TLS, 5 protocol.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import dotclient
from dotclient.cli import main
from dotclient.testing import IssuedCert, TestCA, UnboundServer

from support.cli import run, spec

SRC = Path(__file__).resolve().parents[2] / "src"


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC)}


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts TCP connections and never says a word: handshakes time out."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}#dot.test"


@pytest.fixture
def long_cert(test_ca: TestCA) -> IssuedCert:
    """A certificate valid for 90 days: no expiry warning from probe."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return test_ca.issue(
        "dot.test", "127.0.0.1", not_after=now + datetime.timedelta(days=90, minutes=5)
    )


# -- query ------------------------------------------------------------------------------


def test_query_prints_dig_like_text(
    unbound: UnboundServer, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "query", "www.example.test", "A", f"@{spec(unbound)}", "--ca-file", ca_file
    )
    assert code == 0
    assert ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: " in out
    assert ";; flags: qr aa rd ra; QUERY: 1, ANSWER: 4, AUTHORITY: 0, ADDITIONAL: 1" in out
    assert ";; QUESTION SECTION:\n;www.example.test. IN A\n" in out
    assert "www.example.test. 300 IN CNAME alias.example.test." in out
    assert "a.example.test. 300 IN A 192.0.2.1" in out
    assert "; PADDING: " in out  # unbound pads its answers to padded queries
    assert f";; SERVER: {spec(unbound)} (TLSv1.3, " in out
    assert ";; AUTHENTICATED: yes" in out
    assert ";; Query time: " in out and ";; MSG SIZE  rcvd: 468" in out


def test_query_is_the_default_command_and_options_mix_with_words(
    unbound: UnboundServer, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "a.example.test", "--ca-file", ca_file, "AAAA", f"@{spec(unbound)}", "--short"
    )
    assert (code, out) == (0, "2001:db8::1\n")
    code, out, _ = run(
        capsys, "a.example.test", "-s", spec(unbound), "--ca-file", ca_file, "--short", "--dnssec"
    )
    assert code == 0 and sorted(out.split()) == ["192.0.2.1", "192.0.2.2"]


def test_query_dnssec_shows_the_ad_bit(
    unbound: UnboundServer, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "a.example.test", f"@{spec(unbound)}", "--ca-file", ca_file, "--dnssec"
    )
    assert code == 0
    assert "; EDNS: version: 0, flags: do; udp: " in out
    assert ";; DNSSEC: DO set, AD no " in out  # an authoritative local zone: no validation


def test_query_json_shape(
    unbound: UnboundServer,
    ca_file: str,
    server_cert: IssuedCert,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys, "example.test", "MX", f"@{spec(unbound)}", "--ca-file", ca_file, "--json"
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["question"] == {"name": "example.test.", "type": "MX", "class": "IN"}
    assert doc["rcode"] == "NOERROR" and "QR" in doc["flags"] and doc["ad"] is False
    assert doc["answer"] == [
        {
            "name": "example.test.",
            "ttl": 3600,
            "class": "IN",
            "type": "MX",
            "data": "10 mail.example.test.",
        }
    ]
    assert doc["edns"]["version"] == 0
    assert any(o["name"] == "PADDING" and o["code"] == 12 for o in doc["edns"]["options"])
    assert doc["server"] == spec(unbound) and doc["size"] == 468 and doc["elapsed_ms"] > 0
    tls = doc["tls"]
    assert tls["version"] == "TLSv1.3" and tls["authenticated"] is True
    assert tls["auth_error"] is None and tls["pins"][0] == f"sha256/{server_cert.spki_pin}"
    assert doc["failed"] == []


def test_query_exit_codes(
    unbound: UnboundServer,
    ca_file: str,
    closed_port: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = f"@{spec(unbound)}"
    code, out, _ = run(capsys, "nx.example.test", good, "--ca-file", ca_file)
    assert code == 1 and "status: NXDOMAIN" in out
    code, _, err = run(capsys, "a.example.test", good)  # the test CA is not trusted
    assert code == 4 and "AuthenticationError" in err
    code, _, err = run(
        capsys, "a.example.test", good, "--ca-file", ca_file, "--pin", "sha256/" + "A" * 43 + "="
    )
    assert code == 4 and "no SPKI pin matched" in err
    code, _, err = run(capsys, "a.example.test", f"@127.0.0.1:{closed_port}", "--timeout", "2")
    assert code == 3 and "ConnectError" in err
    code, _, err = run(capsys, "a.example.test", "@127.0.0.1:99999")
    assert code == 2 and "invalid port '99999'" in err
    code, _, err = run(capsys, "a.example.test", "NOTATYPE", good)
    assert code == 2 and "unknown record type 'NOTATYPE'" in err
    code, _, err = run(capsys, "a.example.test", good, "--no-such-option")
    assert code == 2 and "unrecognized arguments" in err
    code, _, err = run(capsys, "a.example.test", good, "--ca-file", "/nonexistent.pem")
    assert code == 2 and "cannot load --ca-file" in err
    assert run(capsys)[0] == 2  # no arguments at all: usage on stderr


def test_query_tries_servers_in_order_and_says_which_answered(
    unbound: UnboundServer,
    ca_file: str,
    closed_port: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    down = f"127.0.0.1:{closed_port}#dot.test"
    argv = ["a.example.test", "--servers", f"{down},{spec(unbound)}", "--ca-file", ca_file]
    code, out, err = run(capsys, *argv)
    assert code == 0 and f";; SERVER: {spec(unbound)} " in out
    assert f";; {down}: ConnectError" in err
    code, out, _ = run(capsys, *argv, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["server"] == spec(unbound)
    assert [f["server"] for f in doc["failed"]] == [down]
    also_down = f"127.0.0.1:{closed_port}"  # another server spec: no auth name
    code, out, _ = run(capsys, "a.example.test", "-s", down, "-s", also_down, "--json")
    assert code == 3 and len(json.loads(out)["failed"]) == 2
    code, _, err = run(capsys, "a.example.test", "-s", down, "-s", down)
    assert code == 2 and "listed twice" in err


# -- probe ------------------------------------------------------------------------------


def test_probe_json_reports_every_field(
    unbound_factory: Callable[..., UnboundServer],
    long_cert: IssuedCert,
    ca_file: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = unbound_factory(
        cert=long_cert,
        extra_config="edns-tcp-keepalive: yes\nedns-tcp-keepalive-timeout: 30000",
    )
    code, out, _ = run(
        capsys, "probe", spec(server), "--ca-file", ca_file, "--name", "a.example.test", "--json"
    )
    doc = json.loads(out)
    assert (code, doc["verdict"], doc["exit_code"]) == (0, "OK", 0), doc["reason"]
    assert doc["tcp"]["reachable"] is True and doc["tcp"]["connect_ms"] >= 0
    assert doc["tls"]["version"] == "TLSv1.3" and doc["tls"]["cipher"]
    assert doc["tls"]["handshake_ms"] > 0
    leaf, ca = doc["certificates"]
    assert leaf["subject"] == "CN=dot.test" and leaf["issuer"] == "CN=dotclient test CA"
    assert leaf["sans"] == ["dot.test", "127.0.0.1"] and 89 <= leaf["days_left"] <= 90
    assert leaf["pin"] == f"sha256/{long_cert.spki_pin}" and doc["pins"][0] == leaf["pin"]
    assert ca["subject"] == ca["issuer"] == "CN=dotclient test CA"
    assert doc["name_matches"] is True and doc["authenticated"] is True
    assert doc["rcode"] == "NOERROR"
    assert doc["latency"]["first_query_ms"] > 0 and doc["latency"]["query_ms"] > 0
    assert doc["pipelining"] is True
    assert doc["out_of_order"]["answered"] == doc["out_of_order"]["sent"] == 8
    assert isinstance(doc["out_of_order"]["out_of_order"], bool)
    assert doc["burst"]["errors"] == 0
    assert doc["resumption"]["resumed"] is True
    assert doc["keepalive"] == {"offered": True, "timeout_s": 30.0}
    assert doc["padding"]["padded"] is True and doc["padding"]["response_size"] == 468


def test_probe_table_and_verdict_line(
    unbound_factory: Callable[..., UnboundServer],
    long_cert: IssuedCert,
    ca_file: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = unbound_factory(cert=long_cert)
    code, out, _ = run(
        capsys, "probe", spec(server), "--ca-file", ca_file, "--name", "a.example.test"
    )
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith(
        f"OK {spec(server)}: answers DoT with TLSv1.3, authenticated as dot.test"
    )
    for label in (
        "TCP",
        "TLS",
        "authentication",
        "latency",
        "pipelining",
        "resumption",
        "padding",
    ):
        assert f"\n{label} " in out
    assert f"sha256/{long_cert.spki_pin}" in out  # whole, ready to paste
    assert "CN=dotclient test CA" in out


def test_probe_verdicts_and_exit_codes(
    unbound: UnboundServer,
    ca_file: str,
    closed_port: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = ["--name", "a.example.test", "--json"]
    # The session's certificate lives one day: a warning (exit 1), still authenticated.
    code, out, _ = run(capsys, "probe", spec(unbound), "--ca-file", ca_file, *name)
    doc = json.loads(out)
    assert (code, doc["verdict"]) == (1, "WARN") and "expires in" in doc["reason"]
    # Not trusted without the test CA: FAIL, but the chain and pins are still shown.
    code, out, _ = run(capsys, "probe", spec(unbound), *name)
    doc = json.loads(out)
    assert (code, doc["verdict"]) == (4, "FAIL") and doc["authenticated"] is False
    assert "certificate verification failed" in doc["reason"] and len(doc["pins"]) == 2
    # The name is checked: the certificate has no 'other.test'.
    code, out, _ = run(
        capsys, "probe", f"127.0.0.1:{unbound.port}#other.test", "--ca-file", ca_file, *name
    )
    doc = json.loads(out)
    assert code == 4 and doc["name_matches"] is False
    # Pinned to the leaf's own key, a self-signed-style pin-only check passes.
    leaf_pin = doc["pins"][0]
    code, out, _ = run(
        capsys,
        "probe",
        spec(unbound),
        "--pin",
        leaf_pin,
        "--pin-only",
        "--expiry-warning",
        "0",
        *name,
    )
    assert code == 0, json.loads(out)["reason"]
    code, out, _ = run(capsys, "probe", f"127.0.0.1:{closed_port}", "--json")
    doc = json.loads(out)
    assert (code, doc["verdict"], doc["tcp"]["reachable"]) == (3, "FAIL", False)
    code, _, err = run(capsys, "probe", "127.0.0.1:0")
    assert code == 2 and "invalid port" in err


def test_probe_needs_rich_for_its_table_and_says_so(
    unbound: UnboundServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich now fails
    code, _, err = run(capsys, "probe", spec(unbound))
    assert code == 2 and "pip install 'dotclient[cli]'" in err


# -- bulk -------------------------------------------------------------------------------

NAMES = """\
a.example.test
www.example.test AAAA
# a comment, and a blank line

nx.example.test
example.test MX
bad.example.test NOTATYPE
"""


def records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_bulk_writes_one_json_line_per_name(
    unbound: UnboundServer,
    ca_file: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = tmp_path / "names.txt"
    names.write_text(NAMES)
    code, out, err = run(
        capsys, "bulk", str(names), "--server", spec(unbound), "--ca-file", ca_file
    )
    assert code == 1  # the bad type line is a failed name
    by_index = {r["index"]: r for r in records(out)}
    assert sorted(by_index) == [1, 2, 5, 6, 7]  # input line numbers
    a = by_index[1]
    assert set(a) == {"index", "name", "type", "rcode", "answers", "server", "elapsed", "error"}
    assert a["name"] == "a.example.test" and a["type"] == "A" and a["rcode"] == "NOERROR"
    assert sorted(a["answers"]) == ["192.0.2.1", "192.0.2.2"]  # type: ignore[arg-type]
    assert a["server"] == spec(unbound) and a["error"] is None
    assert isinstance(a["elapsed"], float)
    assert by_index[2]["answers"] == ["2001:db8::1"]  # the CNAME chain followed
    # Addresses come from the wire (Response.addresses()), the rest from the RRset:
    # the same texts as the RRset's (unbound rotates the order between answers; that
    # addresses() keeps the RRset's order is tests/fuzz/test_lean_answer.py's).
    with dotclient.Client(spec(unbound), ca_file=ca_file) as client:
        rrset = client.resolve("a.example.test").rrset
        assert rrset is not None
        assert sorted(a["answers"]) == sorted(rdata.to_text() for rdata in rrset)  # type: ignore[arg-type]
    assert by_index[5]["rcode"] == "NXDOMAIN" and by_index[5]["answers"] == []
    assert by_index[6]["answers"] == ["10 mail.example.test."]
    assert by_index[7]["rcode"] is None and "unknown record type" in str(by_index[7]["error"])
    assert "5 names in" in err and "4 answered (" in err and "1 failed" in err
    assert "━" not in err  # no progress bar when standard error is not a terminal


def test_bulk_resume_skips_names_already_written(
    unbound: UnboundServer, ca_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = tmp_path / "names.txt"
    names.write_text("".join(f"n{i}.example.test\n" for i in range(1, 301)))
    output = tmp_path / "out.jsonl"
    done = [
        {"index": i, "name": f"n{i}.example.test", "rcode": "NXDOMAIN"} for i in range(1, 301, 3)
    ]
    # A run cut short: lines in completion order, the last one torn mid-write.
    output.write_text("".join(json.dumps(d) + "\n" for d in done) + '{"index": 2, "na')
    argv = ["bulk", str(names), "-s", spec(unbound), "--ca-file", ca_file, "-o", str(output)]
    code, _, err = run(capsys, *argv, "--resume")
    assert code == 0 and "200 names in" in err and "100 skipped" in err
    indices = [r["index"] for r in records(output.read_text())]
    assert sorted(indices) == list(range(1, 301))  # each exactly once, the torn one redone
    code, _, err = run(capsys, *argv, "--resume")
    assert code == 0 and "0 names in" in err and "300 skipped" in err
    code, _, err = run(capsys, "bulk", str(names), "--resume")
    assert code == 2 and "--resume needs --output" in err


def test_bulk_reads_stdin_and_spreads_over_servers(
    unbound: UnboundServer,
    unbound_factory: Callable[..., UnboundServer],
    ca_file: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = unbound_factory()
    monkeypatch.setattr(
        sys, "stdin", io.StringIO("".join(f"n{i}.example.test\n" for i in range(40)))
    )
    servers = f"{spec(unbound)},{spec(other)}"
    code, out, err = run(capsys, "bulk", "-", "--servers", servers, "--ca-file", ca_file)
    assert code == 0
    used = [r["server"] for r in records(out)]
    assert used.count(spec(unbound)) == used.count(spec(other)) == 20
    assert "answered by: " in err


def test_bulk_retries_timeouts_on_the_next_server(
    unbound: UnboundServer,
    silent_server: str,
    ca_file: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = tmp_path / "names.txt"
    names.write_text("".join(f"n{i}.example.test\n" for i in range(6)))
    argv = ["bulk", str(names), "-s", silent_server, "-s", spec(unbound), "--ca-file", ca_file]
    code, out, err = run(capsys, *argv, "--timeout", "0.5")
    result = records(out)
    assert code == 0 and all(r["server"] == spec(unbound) for r in result)
    # The 3 names dealt to the silent server moved on to the next (the client's
    # failovers); an answered name does not say where it went first.
    assert "3 retries" in err and not any("retries" in r for r in result)
    code, out, err = run(capsys, *argv, "--timeout", "0.5", "--retries", "0")
    failed = [r for r in records(out) if r["error"]]
    assert code == 1 and len(failed) == 3
    assert all(str(r["error"]).startswith("Timeout: ") for r in failed)
    code, out, _ = run(
        capsys, "bulk", str(names), "-s", silent_server, "--timeout", "0.3", "--retries", "0"
    )
    assert code == 3  # every name failed, on the network: that error's code


@pytest.mark.timing
def test_bulk_rate_limit(
    unbound: UnboundServer, ca_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = tmp_path / "names.txt"
    names.write_text("".join(f"n{i}.example.test\n" for i in range(31)))
    started = time.monotonic()
    code, out, _ = run(
        capsys, "bulk", str(names), "-s", spec(unbound), "--ca-file", ca_file, "--rate", "60"
    )
    took = time.monotonic() - started
    assert code == 0 and len(records(out)) == 31
    # The bucket starts with one token and gains 60 a second: the 31st query cannot go
    # before 0.5 s, however fast the machine; 31 queries take far less than 5 s.
    assert 0.4 < took < 5


def test_bulk_progress_bar(
    unbound: UnboundServer, ca_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = tmp_path / "names.txt"
    names.write_text("".join(f"n{i}.example.test\n" for i in range(50)))
    argv = ["bulk", str(names), "-s", spec(unbound), "--ca-file", ca_file, "--progress"]
    code, _, err = run(capsys, *argv)
    assert code == 0 and "50/50" in err and "q/s" in err and "ETA" in err


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_bulk_streams_a_large_list_in_constant_memory(
    unbound: UnboundServer, ca_file: str, tmp_path: Path
) -> None:
    # 200,000 names piped in; memory read at 10,000 and 40,000 answers must stay flat
    # (holding the names or the results would add tens of MB). Then Ctrl-C: the output
    # so far is whole JSON lines.
    output = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dotclient", "bulk", "-", "-s", spec(unbound)]
        + ["--ca-file", ca_file, "-o", str(output), "--concurrency", "100"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(),
    )
    assert proc.stdin is not None and proc.stderr is not None

    def feed() -> None:
        assert proc.stdin is not None
        try:
            for start in range(0, 200_000, 1000):
                block = "".join(f"n{i}.example.test\n" for i in range(start, start + 1000))
                proc.stdin.write(block.encode())
            proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass  # interrupted before reading it all: that is the point

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()

    def wait_for(count: int) -> None:
        # 40,000 answers take ~8 s on a loaded 2-core machine: 150 s is a deadline for a
        # hang, not a speed test.
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            if output.exists() and output.read_bytes().count(b"\n") >= count:
                return
            time.sleep(0.2)
        raise AssertionError(f"fewer than {count} answers in 150 s")

    try:
        wait_for(10_000)
        early = _rss_kib(proc.pid)
        wait_for(40_000)
        late = _rss_kib(proc.pid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        feeder.join(timeout=10)
        with contextlib.suppress(OSError):
            proc.stdin.close()
        proc.stderr.close()
    assert late - early < 8 * 1024, f"RSS grew from {early} to {late} KiB"
    lines = output.read_bytes().splitlines()
    assert len(lines) >= 40_000 and all(json.loads(line)["rcode"] for line in lines)


# -- the entry points -------------------------------------------------------------------


def test_python_m_dotclient(unbound: UnboundServer, ca_file: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dotclient", "a.example.test", f"@{spec(unbound)}"]
        + ["--ca-file", ca_file, "--json"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rcode"] == "NOERROR"
    version = subprocess.run(
        [sys.executable, "-m", "dotclient", "--version"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert version.stdout.startswith("dotclient ")


def test_import_dotclient_needs_no_rich() -> None:
    code = "import sys, dotclient, dotclient.cli; print('rich' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
    )
    assert done.stdout.strip() == "False"


def test_connection_and_sni_options_reach_the_client(
    unbound: UnboundServer, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = f"127.0.0.1:{unbound.port}#dot.test"
    base = ["a.example.test", f"@{spec}", "--ca-file", ca_file, "--json"]
    for extra in (["--keepalive", "--no-resumption", "--idle-timeout", "2"], ["--no-sni"]):
        assert main([*base, *extra]) == 0
        assert json.loads(capsys.readouterr().out)["rcode"] == "NOERROR"
    assert main([*base, "--sni", "other.test"]) == 0  # the name checked stays dot.test
    capsys.readouterr()
    assert main([*base, "--idle-timeout", "0"]) == 2
    assert main(["probe", spec, "--ca-file", ca_file, "--keepalive", "--json"]) in (0, 1)


def test_bulk_stops_on_ctrl_c_while_its_input_pipe_stays_open(
    unbound: UnboundServer, ca_file: str, tmp_path: Path
) -> None:
    # A producer that has not finished (nor closed the pipe): Ctrl-C must not wait for
    # a read that never returns.
    output = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dotclient", "bulk", "-", "-s", spec(unbound)]
        + ["--ca-file", ca_file, "-o", str(output)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(),
    )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        proc.stdin.write(b"a.example.test\n" * 600)  # more than one batch, then nothing
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while not (output.exists() and output.read_bytes().count(b"\n") >= 512):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stderr.close()
    lines = output.read_bytes().splitlines()
    assert all(json.loads(line)["rcode"] == "NOERROR" for line in lines)
