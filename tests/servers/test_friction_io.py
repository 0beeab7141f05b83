"""Issue 15's friction list, against a server: TLSInfo shows pins as pins are written.
The rest of the list is in tests/unit/test_friction.py."""

from __future__ import annotations

import dotclient
from dotclient.testing import IssuedCert, UnboundServer


def test_tls_info_shows_pins_as_pins_are_written(
    unbound: UnboundServer, ca_file: str, server_cert: IssuedCert
) -> None:
    with dotclient.Client(f"127.0.0.1:{unbound.port}#dot.test", ca_file=ca_file) as client:
        tls = client.resolve("a.example.test").tls
    assert tls.pins[0] == f"sha256/{server_cert.spki_pin}" and len(tls.pins) == 2
    text = repr(tls)
    assert f"sha256/{server_cert.spki_pin}" in text and "certificates=2" in text
    assert "\\x" not in text and len(text) < 400  # no DER
