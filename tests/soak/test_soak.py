"""The soak (benchmarks/soak.py) in a short form: queries from many callers while the
server is killed and restarted, with no query lost, hung or wrongly answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import dotclient

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def run_soak(tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run the soak script in a process of its own (its leak checks count that
    process's file descriptors and threads) on the dotclient these tests import."""
    env = dict(os.environ)
    here = str(Path(dotclient.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
    report_file = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, str(SOAK), *args, "--json", str(report_file)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    print(done.stdout)  # shown with -rP or on failure: the figures, failures included
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(report_file.read_text())
    return report


# Each run: 3,000 queries, a kill and then a graceful stop, from 200 tasks or 32 threads.
SHORT = ("--queries", "3000", "--restarts", "2", "--how", "alternate", "--seed", "7858")
MODES = pytest.mark.parametrize(
    "mode",
    [
        pytest.param(["--concurrency", "200"], id="async"),
        pytest.param(["--threads", "32"], id="threads"),
    ],
)


def assert_sound(report: dict[str, Any]) -> None:
    """Nothing wrong, hung, lost, left unrun or leaked; every restart done, and queries
    were in flight at each one."""
    restarts = report["restarts"]
    assert [(r["how"], r["done"]) for r in restarts] == [("kill", True), ("graceful", True)]
    assert all(r["running"] > 0 for r in restarts)
    assert report["wrong"] == report["hung"] == report["lost"] == report["not_run"] == 0
    assert report["other"] == {}
    assert all(not found for found in report["leaks"].values()), report["leaks"]
    assert report["answered"] == report["queries"] - sum(report["failed"].values())
    assert report["ok"] is True


@pytest.mark.unbound
@pytest.mark.usefixtures("unbound")  # skip (or fail in CI) without unbound; starts its own
@MODES
def test_soak_with_a_kill_and_a_restart(tmp_path: Path, mode: list[str]) -> None:
    report = run_soak(tmp_path, *mode, *SHORT, "--max-seconds", "60")
    assert_sound(report)
    # A failure must be a clear error, and few: with a 5 s timeout and downtimes under
    # 1.5 s the client should ride out each restart (resends, reconnect back-off).
    assert sum(report["failed"].values()) <= report["queries"] // 100, report["failed_examples"]


@pytest.mark.unbound
@pytest.mark.usefixtures("unbound")
@MODES
def test_soak_with_two_servers_fails_over(tmp_path: Path, mode: list[str]) -> None:
    """Server 0 is killed, later server 1 stopped: one is always up, so no query fails."""
    report = run_soak(tmp_path, *mode, *SHORT, "--servers", "2", "--max-seconds", "60")
    assert_sound(report)
    assert [r["server"] for r in report["restarts"]] == [0, 1]
    assert report["failed"] == {}, report["failed_examples"]
    assert report["stats"]["failovers"] > 0
    # Both served: server 0 before its kill, server 1 at least while 0 was down.
    responses = [server["responses"] for server in report["servers"]]
    assert len(responses) == 2 and all(responses), responses
    assert sum(responses) == report["queries"]


def load_soak_module() -> Any:
    """benchmarks/soak.py as a module, for its pure parts."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("soak", module)
    spec.loader.exec_module(module)
    return module


def test_the_schedule_follows_counts_not_the_clock() -> None:
    """However fast the queries go, every restart happens with queries to come, and
    the next one waits for answers after the previous server came back."""
    soak = load_soak_module()
    plan = [
        soak.Restart(after=1000, how="kill", downtime=0.5),
        soak.Restart(after=2000, how="graceful", downtime=0.5),
    ]
    schedule = soak.Schedule(3000, plan)
    assert schedule.gap == 500
    assert [schedule.take() for _ in range(3000)] == list(range(3000))
    # A fast machine: all 3,000 taken before any restart. The run goes on.
    assert not schedule.due(0, 999) and schedule.due(0, 1000)
    assert schedule.take() == 3000
    plan[0].done, plan[0].done_when_back = True, 2900
    # Restart 1 waits for 500 more answers after restart 0's server was back.
    assert not schedule.due(1, 3399) and schedule.due(1, 3400)
    assert schedule.take() == 3001
    plan[1].done = True
    assert schedule.take() is None  # planned count reached and every restart done
    # A slow machine: nothing taken past the plan when the restarts are done early.
    early = soak.Schedule(10, [])
    assert [early.take() for _ in range(11)] == [*range(10), None]
    stopped = soak.Schedule(10, [soak.Restart(after=5, how="kill", downtime=0.2)])
    stopped.stop()
    assert stopped.take() is None
