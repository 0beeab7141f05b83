"""``dotclient query`` as dig and kdig users type it (issue 15)."""

from __future__ import annotations

import json

import pytest

from dotclient.testing import UnboundServer

from support.cli import run, spec


def test_short_prints_every_answer_record_as_kdig_does(
    unbound: UnboundServer, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 15 bug 8: --short printed nothing for ANY and hid the CNAME chain.
    base = [f"@{spec(unbound)}", "--ca-file", ca_file, "--short"]
    code, out, _ = run(capsys, "www.example.test", *base)
    assert code == 0
    lines = out.splitlines()  # the chain in order; unbound rotates the A records
    assert lines[:2] == ["alias.example.test.", "a.example.test."]
    assert sorted(lines[2:]) == ["192.0.2.1", "192.0.2.2"]
    code, out, _ = run(capsys, "a.example.test", "ANY", *base)
    assert code == 0
    assert sorted(out.splitlines()) == ["192.0.2.1", "192.0.2.2", "2001:db8::1"], out


def test_dig_habits_several_names_types_first_classes_and_reverse(
    unbound: UnboundServer, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [f"@{spec(unbound)}", "--ca-file", ca_file, "--json"]
    # type before name, several names, class before type
    code, out, _ = run(
        capsys, "MX", "example.test", "a.example.test", "AAAA", "www.example.test", "IN", "A",
        *base,
    )  # fmt: skip
    assert code == 0
    questions = [(d["question"]["name"], d["question"]["type"]) for d in json.loads(out)]
    assert questions == [
        ("example.test.", "MX"),
        ("a.example.test.", "AAAA"),
        ("www.example.test.", "A"),
    ]
    code, out, _ = run(capsys, "version.bind", "ch", "txt", *base)  # unbound answers CH TXT
    doc = json.loads(out)
    assert (doc["question"]["class"], doc["question"]["type"]) == ("CH", "TXT")
    # -x: the PTR of the reverse name (a private range: unbound answers it locally)
    code, out, _ = run(capsys, "-x", "192.168.1.1", *base)
    doc = json.loads(out)
    assert doc["question"] == {"name": "1.1.168.192.in-addr.arpa.", "type": "PTR", "class": "IN"}
    # the worst exit code of the lookups; text blocks one after the other
    code, out, _ = run(
        capsys, "a.example.test", "nx.example.test", f"@{spec(unbound)}", "--ca-file", ca_file
    )
    assert code == 1 and out.count(";; QUESTION SECTION:") == 2


def test_probe_uses_dotclient_server(
    unbound: UnboundServer, ca_file: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("DOTCLIENT_SERVER", spec(unbound))
    code, out, _ = run(capsys, "probe", "--ca-file", ca_file, "--name", "a.example.test", "--json")
    assert json.loads(out)["server"] == spec(unbound)


def test_an_untrusted_ca_hints_at_ca_file(
    unbound: UnboundServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "a.example.test", f"@{spec(unbound)}")
    assert code == 4 and ";; hint: " in err and "--ca-file" in err
    code, out, _ = run(capsys, "probe", spec(unbound), "--name", "a.example.test")
    assert code == 4 and "--ca-file" in out.replace("\n", " ")
