"""The fuzz tier runs behind the no-I/O guard: a test that makes a socket or starts a
process fails (tests/support/noio.py)."""

from support.noio import (  # noqa: F401 (pytest finds the hooks here)
    pytest_runtest_call,
    pytest_runtest_setup,
    pytest_runtest_teardown,
)
