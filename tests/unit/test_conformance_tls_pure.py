"""TLS requirements of RFC 7858, RFC 8310 and RFC 6125 that need no server: dotclient's
contexts turn the common-name fallback off, and pins in the strict profile do not warn.
Against real servers: tests/interop/test_conformance_tls.py."""

from __future__ import annotations

import warnings

import dotclient
from dotclient._tls import TLSPolicy, format_pin


def test_dotclients_contexts_turn_the_common_name_fallback_off(ca_file: str) -> None:
    policy = TLSPolicy(dotclient.Server("127.0.0.1", auth_name="dot.test"), ca_file=ca_file)
    assert all(not a.context.hostname_checks_common_name for a in policy.attempts())


def test_pins_in_the_strict_profile_do_not_warn(ca_file: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        options = {"ca_file": ca_file, "pins": [format_pin(b"\x01" * 32)]}
        dotclient.Client("127.0.0.1#dot.test", **options).close()
        dotclient.Client("127.0.0.1#dot.test", ca_file=ca_file, profile="opportunistic").close()
