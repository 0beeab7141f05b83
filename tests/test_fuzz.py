"""Fuzzing the protocol core: streams of answers, broken streams, mutated answers, round trips.

Properties over DoTProtocol with real queries in flight (both the lean ``send_question``
path and the ``send_query`` path), and a run of the fuzz target in ``fuzz/``. The
decoder-only and lean-versus-dnspython properties on fixed answers are in
``test_protocol.py``; these add whole connections, structured damage and edge sizes.

``DOTCLIENT_FUZZ_SCALE=N`` multiplies every example budget here by N for a longer local
run (the defaults keep this file under 20 s in CI).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import dns.exception
import pytest
from hypothesis import settings

from dotclient._protocol import DoTProtocol

SCALE = max(1, int(os.environ.get("DOTCLIENT_FUZZ_SCALE", "1")))


def budget(examples: int) -> settings:
    return settings(max_examples=examples * SCALE, deadline=None)


def _load_fuzz_target() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "fuzz" / "fuzz_protocol.py"
    spec = importlib.util.spec_from_file_location("fuzz_protocol", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


fuzz = _load_fuzz_target()

A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, OPT = 1, 2, 5, 6, 12, 15, 16, 28, 41
GENERIC = 65280  # a private-use type: dnspython keeps its RDATA as opaque bytes
KEEPALIVE, PADDING, COOKIE = 11, 12, 10


# -- the fuzz target ----------------------------------------------------------------------


def test_fuzz_target_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CI run: two seconds of the Hypothesis engine (atheris is not needed)."""
    argv = ["--engine", "hypothesis", "--seconds", "2", "--seed", "0"]
    assert fuzz.main([*argv, "--artifacts", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no failure" in out
    assert int(out.split("hypothesis: ", 1)[1].split(" runs", 1)[0]) >= 20
    assert list(tmp_path.iterdir()) == []


def test_fuzz_target_seed_corpus_and_replay(tmp_path: Path) -> None:
    assert fuzz.main(["--make-corpus", str(tmp_path)]) == 0
    seeds = sorted(tmp_path.iterdir())
    assert len(seeds) == len(fuzz.seed_inputs()) > 0
    for seed in seeds:
        assert fuzz.main(["--replay", str(seed)]) == 0
        given_input = fuzz.Input.decode(seed.read_bytes())
        assert fuzz.Input.decode(given_input.encode()) == given_input
        # the seeds answer every query: a fuzzer starts from inputs that go deep
        proto, sent = given_input.connect()
        for chunk in given_input.chunks():
            proto.receive_data(chunk)
        assert proto.answered == len(sent) == given_input.count


@pytest.mark.parametrize("bug", ["escaping-error", "unreported-answer", "accepts-anything"])
def test_fuzz_target_finds_planted_bugs(
    bug: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The target's checks can fail: each planted bug is found within seconds, saved,
    and its input replays the failure."""
    if bug == "escaping-error":
        skim = fuzz._protocol._skim

        def leaky_skim(wire: bytes, pos: int, strict: bool) -> Any:
            if len(wire) % 5 == 0:
                raise IndexError("planted")
            return skim(wire, pos, strict)

        monkeypatch.setattr(fuzz._protocol, "_skim", leaky_skim)
    elif bug == "unreported-answer":
        receive = DoTProtocol.receive_data

        def forgetful(self: DoTProtocol, data: bytes) -> list[int]:
            return receive(self, data)[1:]

        monkeypatch.setattr(DoTProtocol, "receive_data", forgetful)
    else:
        monkeypatch.setattr(DoTProtocol, "_lean_accept", lambda self, wire, template: True)
    argv = ["--engine", "hypothesis", "--seconds", "20", "--seed", "3"]
    assert fuzz.main([*argv, "--artifacts", str(tmp_path)]) == 1
    (crash,) = tmp_path.iterdir()
    assert "FAILED" in capsys.readouterr().err
    with pytest.raises((IndexError, AssertionError, dns.exception.DNSException)):
        fuzz.TestOneInput(crash.read_bytes())
