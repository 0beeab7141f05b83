"""The client options are defined once: ClientOptions (what callers type) and
ClientConfig (the checked fields, with their defaults and documentation) agree, and
help() shows every option with its documentation. No I/O."""

from __future__ import annotations

import dataclasses
import ssl

import pytest

import dotclient
from dotclient._config import OPTIONS_HELP, ClientConfig, ClientOptions, _field_docs
from dotclient._server import parse_server

FIELDS = [f.name for f in dataclasses.fields(ClientConfig) if f.init]


def test_the_keywords_are_the_fields_plus_what_server_specs_take() -> None:
    assert set(ClientOptions.__optional_keys__) == {*FIELDS, "auth_name", "pins"}
    assert not ClientOptions.__required_keys__


@pytest.mark.parametrize("name", FIELDS)
def test_every_option_is_documented_where_help_shows_it(name: str) -> None:
    doc = _field_docs()[name]
    assert len(doc) > 20
    for shown in (OPTIONS_HELP, dotclient.Client.__doc__, dotclient.AsyncClient.__doc__):
        assert f"* ``{name}``" in (shown or "")
    assert " ".join(doc.split()[:4]) in " ".join(OPTIONS_HELP.split())


def test_defaults_come_from_the_fields() -> None:
    given = ClientConfig.from_options("127.0.0.1")
    assert given == ClientConfig(servers=(parse_server("127.0.0.1"),))
    assert (given.timeout, given.max_in_flight, given.padding) == (5.0, 100, 128)
    assert given.server == given.servers[0] and len(given.policies) == 1


def test_options_are_normalised_once() -> None:
    config = ClientConfig.from_options(
        servers=["127.0.0.1", "::1"], timeout=2, padding=False, auth_name="dot.test"
    )
    assert config.timeout == 2.0 and isinstance(config.timeout, float)
    assert config.padding == 0
    assert [s.auth_name for s in config.servers] == ["dot.test", "dot.test"]
    assert config.capacity() == 100
    assert dataclasses.replace(config, strategy="round_robin").capacity() == 200


def test_resumption_is_off_with_a_context_of_ones_own() -> None:
    context = ssl.create_default_context()
    assert not ClientConfig.from_options("127.0.0.1", ssl_context=context).resumption
    assert ClientConfig.from_options("127.0.0.1").resumption


def test_the_bootstrap_client_shares_trust_profile_and_route() -> None:
    config = ClientConfig.from_options(
        "dot.test", bootstrap="127.0.0.1", timeout=3, profile="opportunistic", pins=None
    )
    options = config.bootstrap_options()
    assert options["servers"] == (parse_server("127.0.0.1"),)
    assert options["timeout"] == 3.0 and options["profile"] == "opportunistic"
    assert "pins" not in options and "bootstrap" not in options


def test_an_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'timout'"):
        ClientConfig.from_options("127.0.0.1", timout=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'policies'"):
        dotclient.Client("127.0.0.1", policies=())  # type: ignore[call-arg]


def test_the_config_is_frozen() -> None:
    config = ClientConfig.from_options("127.0.0.1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.timeout = 1.0  # type: ignore[misc]


def test_one_shot_functions_take_every_client_option() -> None:
    # Checked before any I/O, like the other options (tests/servers/test_misuse.py).
    with pytest.raises(ValueError, match="max_connections must be 1 to 64"):
        dotclient.resolve("a.test", server="127.0.0.1", max_connections=0)
