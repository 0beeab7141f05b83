"""``dotclient query`` as dig and kdig users type it (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

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


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["a.example.test", "NOTATYPE"], "unknown record type 'NOTATYPE'"),
        (["a.example.test", "A", "AAAA"], "AAAA is not followed by a name"),
        (["MX", "AAAA", "a.example.test"], "two record types before a name"),
        (["-x", "not-an-address"], "-x 'not-an-address': not an IPv4 or IPv6 address"),
        (["a..example.test"], "'a..example.test' is not a domain name"),
    ],
)
def test_bad_words_are_one_line_usage_errors(
    words: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *words, "@127.0.0.1:1")
    assert (code, out) == (2, "") and message in err and err.count("\n") == 1, err


def test_usage_errors_are_json_under_json(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["a.example.test", "--json", "--no-such-option"],
        ["a.example.test", "--json", "@127.0.0.1:99999"],
        ["probe", "127.0.0.1:1", "--json", "--name", "a..b"],
        ["a.example.test", "--json", "--short"],  # --short was silently dropped
    ):
        code, out, err = run(capsys, *argv)
        doc = json.loads(out)
        assert code == 2 and doc["exit_code"] == 2 and doc["error"].startswith("UsageError: ")
        assert err == ""


def test_error_messages_name_the_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "a.example.test", "@127.0.0.1:1", "--pin-only")
    assert code == 2 and "--pin-only needs at least one --pin" in err
    code, _, err = run(capsys, "a.example.test", "@127.0.0.1:1", "--pin", "sha256:abc")
    assert code == 2 and "--pin: invalid SPKI pin" in err and "sha256/BASE64" in err
    names = tmp_path / "names.txt"
    names.write_text("a.example.test\n")
    for option, value in (("--connections", "65"), ("--concurrency", "0"), ("--retries", "-1")):
        code, _, err = run(capsys, "bulk", str(names), "-s", "127.0.0.1:1", option, value)
        assert code == 2 and f"{option} must be" in err, err
        assert "max_connections" not in err
    monkeypatch.setenv("DOTCLIENT_SERVER", "127.0.0.1:99999")
    for argv in (["a.example.test"], ["probe"], ["bulk", str(names)]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "$DOTCLIENT_SERVER: invalid port '99999'" in err, err


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
