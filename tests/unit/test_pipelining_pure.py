"""The pool's options refused before any I/O (pipelining against servers:
tests/servers/test_pipelining.py)."""

from __future__ import annotations

from typing import Any

import pytest

import dotclient


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("max_in_flight", 0, ValueError),
        ("max_in_flight", 65536, ValueError),
        ("max_in_flight", 1.5, TypeError),
        ("max_connections", 0, ValueError),
        ("idle_timeout", 0, ValueError),
        ("idle_timeout", "1", TypeError),
    ],
)
def test_bad_pool_options_are_refused_before_io(option: str, value: Any, error: type) -> None:
    for cls in (dotclient.Client, dotclient.AsyncClient):
        with pytest.raises(error, match=option):
            cls("127.0.0.1", **{option: value})
