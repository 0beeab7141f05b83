"""The client's private control-flow errors (``_NotSent``, ``_Stalled``) steer resends;
a caller only ever sees the documented ``ConnectionLost``."""

from __future__ import annotations

from typing import Any

import pytest

import dotclient
from dotclient._async import connection as async_connection
from dotclient._sync import connection as sync_connection
from dotclient.testing import UnboundServer

from support.modes import open_client


@pytest.mark.parametrize("private", ["_NotSent", "_Stalled"])
def test_a_query_that_runs_out_of_resends_raises_the_public_error(
    mode: str,
    private: str,
    unbound: UnboundServer,
    ca_file: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module: Any = sync_connection if mode == "sync" else async_connection
    error = getattr(module, private)
    connection = module.Connection if mode == "sync" else module.AsyncConnection

    def lost(self: Any, *args: Any) -> int:
        raise error(f"{private} from the test", server=self.server)

    async def alost(self: Any, *args: Any) -> int:
        return lost(self, *args)

    monkeypatch.setattr(connection, "send", lost if mode == "sync" else alost)
    with open_client(mode, f"127.0.0.1:{unbound.port}#dot.test", ca_file=ca_file) as client:
        with pytest.raises(dotclient.ConnectionLost) as caught:
            client.resolve("a.example.test")
    assert type(caught.value) is dotclient.ConnectionLost
    assert f"{private} from the test" in str(caught.value)
