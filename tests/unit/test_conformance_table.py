"""docs/conformance.md stays true to the code: every test and code location it names
exists, every requirement has a status, and every one not held by construction names
at least one test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "conformance.md"
STATUSES = ("done", "partial", "deviation", "by construction")
_TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
_CODE = re.compile(r"`(src/dotclient/[\w/]+\.py)::([\w.]+)`")


def _rows() -> list[list[str]]:
    rows = []
    for line in TABLE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].isdigit():
            rows.append(cells)
    return rows


def _defines(path: Path, name: str) -> bool:
    pattern = rf"^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b|^\s*{re.escape(name)}\s*[:=]"
    return re.search(pattern, path.read_text(), re.MULTILINE) is not None


def test_the_table_has_every_row_numbered_and_with_a_status() -> None:
    rows = _rows()
    assert len(rows) >= 27
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        assert len(row) == 6, row
        assert row[3].startswith(STATUSES), row
        if not row[3].startswith("by construction"):
            assert _TEST.search(row[5]), f"row {row[0]} names no test"


@pytest.mark.parametrize(
    ("path", "name"),
    sorted({m.groups() for m in _TEST.finditer(TABLE.read_text())}),
)
def test_every_named_test_exists(path: str, name: str) -> None:
    assert name.startswith("test_")
    assert _defines(ROOT / path, name), f"{path} has no {name}"


@pytest.mark.parametrize(
    ("path", "name"),
    sorted({m.groups() for m in _CODE.finditer(TABLE.read_text())}),
)
def test_every_named_code_location_exists(path: str, name: str) -> None:
    for part in name.split("."):
        assert _defines(ROOT / path, part), f"{path} defines no {part}"


def test_the_checker_finds_a_missing_test(tmp_path: Path) -> None:
    """The control: a name that is not defined is reported."""
    module = tmp_path / "test_x.py"
    module.write_text("def test_here() -> None:\n    pass\nvalue = 1\n")
    assert _defines(module, "test_here") and _defines(module, "value")
    assert not _defines(module, "test_gone")


def test_the_readme_links_the_table() -> None:
    assert "(docs/conformance.md)" in (ROOT / "README.md").read_text()
