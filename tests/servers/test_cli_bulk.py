"""``dotclient bulk`` against a slow server, on slow input, and when stopped (issue 15).

A loopback unbound answers in a tenth of a millisecond, so a ``bulk`` that runs one
query at a time looks as fast as one that runs 64; :class:`DelayedServer` holds every
query for a while and counts how many it holds at once, which is what is asserted.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from dotclient.testing import DelayedServer, IssuedCert, UnboundServer

from support.cli import run, spec

SRC = Path(__file__).resolve().parents[2] / "src"


def records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def start_bulk(*argv: str, stdout: int | IO[bytes] = subprocess.PIPE) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dotclient", "bulk", *argv],
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )


def close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


class LineReader:
    """Lines of a pipe, read by a thread, so that a test can wait for the next one."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe: IO[bytes]) -> None:
        for line in pipe:
            self.lines.put(line)
        self.lines.put(b"")

    def next(self, timeout: float = 30.0) -> bytes:
        return self.lines.get(timeout=timeout)


@pytest.fixture
def delayed(server_cert: IssuedCert, unbound: UnboundServer) -> Iterator[DelayedServer]:
    """A DoT server answering each query 0.25 s late (the session's unbound behind it)."""
    with DelayedServer(server_cert, (unbound.host, unbound.port), delay=0.25) as server:
        yield server


def test_bulk_keeps_concurrency_queries_in_flight_against_a_slow_server(
    delayed: DelayedServer, ca_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 15 bug 1: with batches handed to one worker each, about one query was in
    # flight at a time, however large --concurrency.
    names = tmp_path / "names.txt"
    names.write_text("".join(f"n{i}.example.test\n" for i in range(128)))
    code, out, err = run(
        capsys, "bulk", str(names), "-s", spec(delayed), "--ca-file", ca_file, "-c", "32"
    )
    assert code == 0, err
    assert len(records(out)) == 128
    # Every worker's query is held 0.25 s at the server, and all 32 are sent within a
    # few milliseconds of each other: the server sees (nearly) all of them at once,
    # and never more than --concurrency.
    assert 24 <= delayed.max_in_flight <= 32, delayed.max_in_flight


def test_bulk_resolves_each_line_of_a_slow_producer_as_it_comes(
    unbound: UnboundServer, ca_file: str
) -> None:
    # Issue 15 bug 7: `tail -f log | dotclient bulk -` resolved nothing until 512 lines
    # or the end of the input had arrived.
    proc = start_bulk("-", "-s", spec(unbound), "--ca-file", ca_file, "--no-progress")
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        out = LineReader(proc.stdout)
        for index, name in enumerate(["a.example.test", "nx.example.test"], 1):
            proc.stdin.write(f"{name}\n".encode())
            proc.stdin.flush()  # and the pipe stays open
            record = json.loads(out.next())
            assert (record["index"], record["name"]) == (index, name)
        proc.stdin.close()
        assert out.next() == b""
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        close_pipes(proc)


def test_bulk_ctrl_c_says_how_far_it_got_and_how_to_resume(
    unbound: UnboundServer, ca_file: str, tmp_path: Path
) -> None:
    # Issue 15 bug 5 (a QueueFull traceback from the reader thread, now without a queue)
    # and the friction item: say how many names are done and how to go on.
    names = tmp_path / "names.txt"
    names.write_text("".join(f"n{i}.example.test\n" for i in range(20_000)))
    output = tmp_path / "out.jsonl"
    proc = start_bulk(
        str(names), "-s", spec(unbound), "--ca-file", ca_file, "-o", str(output),
        "--rate", "2000", "--no-progress",
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        while not (output.exists() and output.read_bytes().count(b"\n") >= 100):
            assert proc.poll() is None, proc.stderr.read()
            threading.Event().wait(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        close_pipes(proc)
    assert "Traceback" not in err, err
    written = output.read_bytes().count(b"\n")
    assert f"interrupted after {written} names" in err, err
    assert "to go on: dotclient bulk " in err and " --resume" in err and str(output) in err


def test_bulk_refuses_to_write_its_output_over_its_input(
    unbound: UnboundServer, ca_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 15 bug 4: `-o` naming the input truncated it, then resolved "0 names", exit 0.
    names = tmp_path / "names.txt"
    names.write_text("a.example.test\nnx.example.test\n")
    for output in (str(names), str(tmp_path / "." / "names.txt")):
        code, _, err = run(capsys, "bulk", str(names), "-s", spec(unbound), "-o", output)
        assert code == 2 and "is the input" in err and err.count("\n") == 1, err
    assert names.read_text() == "a.example.test\nnx.example.test\n"


def test_bulk_resume_refuses_another_input(
    unbound: UnboundServer,
    ca_file: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Issue 15 bug 12: the same names in another order were taken as done by index.
    names = tmp_path / "names.txt"
    names.write_text("".join(f"n{i}.example.test\n" for i in range(1, 11)))
    output = tmp_path / "out.jsonl"
    argv = ["bulk", "-s", spec(unbound), "--ca-file", ca_file, "-o", str(output), "--resume"]
    code, _, err = run(capsys, *argv, str(names))
    assert code == 0 and "10 names in" in err
    with output.open("r+") as f:  # a run cut short after its first 4 answers
        kept = [line for line in f if json.loads(line)["index"] <= 4]
        f.seek(0)
        f.truncate()
        f.writelines(kept)
    shuffled = tmp_path / "shuffled.txt"
    shuffled.write_text("".join(f"n{i}.example.test\n" for i in range(10, 0, -1)))
    code, _, err = run(capsys, *argv, str(shuffled))
    assert code == 2 and "line 1 of the input is n10.example.test A" in err, err
    shorter = tmp_path / "shorter.txt"
    shorter.write_text("n1.example.test\nn2.example.test\n")
    code, _, err = run(capsys, *argv, str(shorter))
    assert code == 2 and "2 names that are not in the input" in err, err
    monkeypatch.setattr(sys, "stdin", shuffled.open())  # checked as it is read
    code, _, err = run(capsys, *argv, "-")
    sys.stdin.close()
    assert code == 2 and "line 1 of the input is n10.example.test A" in err, err
    assert len(output.read_text().splitlines()) == 4  # nothing resolved by mistake
    code, _, err = run(capsys, *argv, str(names))  # the same input resumes
    assert code == 0 and "6 names in" in err and "4 skipped" in err
    assert sorted(r["index"] for r in records(output.read_text())) == list(range(1, 11))


def test_bulk_refuses_a_server_given_twice(
    unbound: UnboundServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 15 bug 14 (query already refused it, through the library).
    names = tmp_path / "names.txt"
    names.write_text("a.example.test\n")
    same = spec(unbound)
    for servers in (["-s", same, "-s", same], ["--servers", f"{same},{same}"]):
        code, _, err = run(capsys, "bulk", str(names), *servers)
        assert code == 2 and f"server {same} is listed twice" in err, err


def test_bulk_times_out_in_parallel_and_failed_names_carry_their_retries(
    server_cert: IssuedCert,
    unbound: UnboundServer,
    ca_file: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Issue 15 bug 1 with a silent server (197 names took 599 s, one after another), and
    # the friction item: a name that failed after its retries says how many it had.
    # Retries are the client's failover (strategy round_robin), so two silent servers:
    # each name waits --timeout on the one it was dealt, then moves on to the other.
    names = tmp_path / "names.txt"
    names.write_text("".join(f"n{i}.example.test\n" for i in range(16)))
    with contextlib.ExitStack() as stack:
        silent = [
            stack.enter_context(
                DelayedServer(server_cert, (unbound.host, unbound.port), delay=None)
            )
            for _ in range(2)
        ]
        code, out, err = run(
            capsys, "bulk", str(names), "-s", spec(silent[0]), "-s", spec(silent[1]),
            "--ca-file", ca_file, "-c", "16", "--timeout", "1", "--retries", "1",
        )  # fmt: skip
        # Not 16: the library holds back queries on connections that have answered
        # nothing yet (8 on the test machine). One at a time was the bug.
        assert all(server.max_in_flight >= 4 for server in silent), [
            server.max_in_flight for server in silent
        ]
    result = records(out)
    assert code == 3 and len(result) == 16
    assert all(r["retries"] == 1 and str(r["error"]).startswith("Timeout: ") for r in result)
    # Each name failed last on the server it moved on to: half of them on each.
    assert {r["server"] for r in result} == {spec(server) for server in silent}
    assert "16 retries" in err


@pytest.mark.timing
def test_bulk_retries_with_one_server_give_a_name_their_time(
    server_cert: IssuedCert,
    unbound: UnboundServer,
    ca_file: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # With one server there is nowhere to move on to: --retries N gives a name
    # --timeout x (1 + N) in all, the time its retries on that server had (the client
    # does not resend a query that timed out), and the name says it was not retried.
    names = tmp_path / "names.txt"
    names.write_text("n1.example.test\nn2.example.test\n")
    with DelayedServer(server_cert, (unbound.host, unbound.port), delay=None) as silent:
        started = time.monotonic()
        code, out, _ = run(
            capsys, "bulk", str(names), "-s", spec(silent), "--ca-file", ca_file,
            "--timeout", "0.4", "--retries", "2",
        )  # fmt: skip
        took = time.monotonic() - started
    result = records(out)
    assert code == 3 and len(result) == 2
    for record in result:
        assert str(record["error"]).startswith("Timeout: ") and "retries" not in record
        assert record["server"] == spec(silent)
    assert 1.2 <= took < 10, took
