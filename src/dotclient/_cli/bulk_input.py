"""``dotclient bulk``'s input: the names file, and what ``--resume`` finds already done.

The input is read lazily (:func:`parse_lines`), so a list of any length streams in
constant memory. ``--resume`` reads the ``index`` of every line already in the output
file, with a one-byte check of its name and type, into a table (:class:`Done`, one byte
per input line: 1 MB per million names), so the output may be in any order and a run
interrupted anywhere picks up exactly the names it had not written. The input must be
the same, in the same order, as in the run being resumed; a line that does not match is
refused.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import dns.rdatatype

from .common import UsageError


@dataclass
class Line:
    """One input line with a name: its number, name, type, and what is wrong with it."""

    index: int  # 1-based input line number
    name: str
    rdtype: str
    problem: str | None = None


class Done:
    """Which input lines the output already has (``--resume``), one byte per line: 0 for
    not done, else a check of the name and type written for it, so that a resumed run
    can tell a different input (or the same names in another order) and refuse it."""

    _UNKNOWN = 255  # an output line without a name: nothing to check

    def __init__(self) -> None:
        self.marks = bytearray()
        self.count = 0
        self.seen = 0  # done lines met in the input so far

    @staticmethod
    def mark(name: str | None, rdtype: str | None) -> int:
        """The check byte of a name and type: 1 to 254, or 255 when one is missing."""
        if not isinstance(name, str) or not isinstance(rdtype, str):
            return Done._UNKNOWN
        return 1 + zlib.crc32(f"{name}\0{rdtype}".encode("utf-8", "replace")) % 254

    def add(self, index: int, name: str | None, rdtype: str | None) -> None:
        """Line ``index`` is in the output, written for ``name`` and ``rdtype``."""
        if index >= len(self.marks):
            self.marks.extend(bytes(max(index + 1 - len(self.marks), len(self.marks))))
        if not self.marks[index]:
            self.count += 1
        self.marks[index] = self.mark(name, rdtype)

    def __contains__(self, index: int) -> bool:
        return index < len(self.marks) and bool(self.marks[index])

    def check(self, line: Line) -> None:
        """Raise :class:`UsageError` unless ``line`` is what the output says it was."""
        mark = self.marks[line.index]
        if mark not in (self._UNKNOWN, self.mark(line.name, line.rdtype)):
            raise UsageError(
                f"--resume: line {line.index} of the input is {line.name} {line.rdtype}, "
                "but the output has another name there: resume with the same input, in "
                "the same order (and the same --type)"
            )
        self.seen += 1

    def check_end(self) -> None:
        """Raise :class:`UsageError` if the output has lines the input did not reach."""
        if self.seen < self.count:
            raise UsageError(
                f"--resume: the output has {self.count - self.seen} names that are not "
                "in the input: resume with the same input"
            )


def parse_lines(stream: IO[str], default_type: str) -> Iterator[Line]:
    """The input's names, lazily; blank and comment lines are skipped (not numbered out)."""
    for number, raw in enumerate(stream, 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        words = text.split()
        name = words[0]
        rdtype = words[1] if len(words) > 1 else default_type
        problem = None
        if len(words) > 2:
            problem = f"line {number}: expected 'NAME [TYPE]', got {text!r}"
        else:
            try:
                rdtype = dns.rdatatype.to_text(dns.rdatatype.from_text(rdtype))
            except Exception:  # dnspython raises several types for bad text
                problem = f"line {number}: unknown record type {rdtype!r}"
        yield Line(number, name, rdtype, problem)


def read_done(path: str) -> Done:
    """The input line numbers already in the output file; drops a torn last line."""
    done = Done()
    with open(path, "rb+") as f:
        good = 0
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # written in part when the last run stopped
            good += len(raw)
            try:
                record = json.loads(raw)
                index = record["index"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(index, int) and index > 0:
                done.add(index, record.get("name"), record.get("type"))
        f.truncate(good)
    return done


def check_resume(path: str, default_type: str, done: Done) -> None:
    """Before any query: every line the output has must be the input's line there."""
    rdtype = dns.rdatatype.to_text(dns.rdatatype.from_text(default_type))
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in parse_lines(f, rdtype):
            if line.index in done:
                done.check(line)
    done.check_end()
    done.seen = 0  # the run checks again as it reads


def refuse_input_as_output(path: str, output: str) -> None:
    """Writing the output over the input would destroy it (``-o`` truncates first)."""
    try:
        if path == "-":
            same = os.path.samestat(os.fstat(sys.stdin.fileno()), os.stat(output))
        else:
            same = os.path.samefile(path, output)
    except (OSError, ValueError, AttributeError):  # no such file yet; stdin not a file
        return
    if same:
        what = "standard input" if path == "-" else path
        raise UsageError(f"--output {output} is the input ({what}): it would be overwritten")


def count_names(path: str) -> int | None:
    """Lines with a name, for the ETA: a quick pass over a regular file."""
    try:
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return sum(1 for raw in f if raw.split(b"#", 1)[0].strip())
    except OSError:
        return None
