#!/usr/bin/env python3
"""Generate the blocking client from the asyncio one (the httpcore approach).

    python scripts/unasync.py          # rewrite src/dotclient/_sync/*.py
    python scripts/unasync.py --check  # exit 1 if they are out of date (CI runs this)

The asyncio code in src/dotclient/_async/ is the source; every fix lands there once.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "dotclient"
SOURCE = ROOT / "_async"
TARGET = ROOT / "_sync"

# Applied in order, each as a whole-word regex.
SUBS = [
    (r"from \.\._backends\._async import", "from .._backends._sync import"),
    (r"from \.\._backends import _async as backend", "from .._backends import _sync as backend"),
    (r"AsyncLock", "Lock"),
    (r"AsyncStream", "SyncStream"),
    (r"AsyncConnection", "Connection"),
    (r"AsyncServerPool", "ServerPool"),
    (r"AsyncClient", "Client"),
    (r"async def", "def"),
    (r"async with", "with"),
    (r"async for", "for"),
    (r"await ", ""),
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"aclose", "close"),
    (r"aresolve", "resolve"),
    (r"StopAsyncIteration", "StopIteration"),
    (
        r"This file is the asyncio version; ``dotclient/_sync/(\w+)\.py`` is generated from it",
        r"This file is generated from ``dotclient/_async/\1.py``",
    ),
    (
        r"by ``scripts/unasync.py`` \(which CI runs with ``--check``\)\. Edit this one\.",
        "by ``scripts/unasync.py``. Do not edit it: edit that one.",
    ),
    (r"asyncio clients", "blocking clients"),
]


def _word(pattern: str) -> re.Pattern[str]:
    # Whole words only: "aclose" must not touch "_aclose_later" or "x.aclosed".
    head = r"(?<![\w])" if pattern[0].isalnum() or pattern[0] == "_" else ""
    tail = r"(?!\w)" if pattern[-1].isalnum() or pattern[-1] == "_" else ""
    return re.compile(head + pattern + tail)


COMPILED = [(_word(pattern), repl) for pattern, repl in SUBS]


def unasync(text: str) -> str:
    """Apply the substitutions to one file's text."""
    for pattern, repl in COMPILED:
        text = pattern.sub(repl, text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if _sync is out of date")
    args = parser.parse_args()
    stale = []
    for source in sorted(SOURCE.glob("*.py")):
        if source.name == "__init__.py":
            continue
        target = TARGET / source.name
        expected = unasync(source.read_text())
        actual = target.read_text() if target.exists() else ""
        if actual == expected:
            continue
        if args.check:
            stale.append(target)
            sys.stdout.writelines(
                difflib.unified_diff(
                    actual.splitlines(True),
                    expected.splitlines(True),
                    str(target),
                    f"unasync({source.name})",
                )
            )
        else:
            target.write_text(expected)
            print(f"wrote {target.relative_to(ROOT.parent.parent)}")
    if stale:
        print(f"\n{len(stale)} file(s) out of date: run python scripts/unasync.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
