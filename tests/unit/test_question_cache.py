"""Questions asked as strings are parsed once (``check_question``'s cache, issue 13)."""

from __future__ import annotations

import dns.name
import dns.rdataclass
import dns.rdatatype
import pytest

from dotclient._query import _QUESTIONS, _check_question, check_question

ASKED = [
    ("www.example.test", "A", "IN"),
    ("WWW.Example.Test.", "aaaa", 1),
    ("a.example.test", 28, dns.rdataclass.IN),
    ("a.example.test", dns.rdatatype.MX, "CH"),
    ("\\046.example.", "TXT", "IN"),
]


@pytest.mark.parametrize("asked", ASKED)
def test_cached_questions_are_what_parsing_gives(asked: tuple[str, object, object]) -> None:
    first = check_question(*asked)  # type: ignore[arg-type]
    again = check_question(*asked)  # type: ignore[arg-type]
    parsed = _check_question(*asked)  # type: ignore[arg-type]
    assert first == again == parsed
    assert first[0].labels == parsed[0].labels  # the case asked is kept
    assert type(first[1]) is dns.rdatatype.RdataType
    assert type(first[2]) is dns.rdataclass.RdataClass


def test_names_differing_in_case_keep_their_own_case() -> None:
    check_question("www.example.test", "A", "IN")
    name = check_question("WWW.example.test", "A", "IN")[0]
    assert name.labels[0] == b"WWW"


@pytest.mark.parametrize(
    "asked",
    [
        ("a..b", "A", "IN"),
        ("a.example", "NOPE", "IN"),
        ("a.example", "A", "NOPE"),
        ("a.", "IXFR", 1),
    ],
)
def test_bad_questions_raise_every_time_and_are_not_kept(asked: tuple[str, str, object]) -> None:
    for _ in range(2):
        with pytest.raises(ValueError):
            check_question(*asked)  # type: ignore[arg-type]
    assert asked not in _QUESTIONS


def test_a_name_object_is_taken_as_given() -> None:
    name = dns.name.from_text("a.example.")
    assert check_question(name, 1, 1)[0] is name  # a Name is taken as given, not cached
