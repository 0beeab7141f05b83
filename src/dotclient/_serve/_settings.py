"""The settings of ``dotclient serve``: listening addresses and the TOML config file.

The config file (``--config FILE``) holds the same settings as the flags, named as the
flags are without the leading dashes and with ``_`` for ``-`` (``cache_size = 5000``,
``ca_file = "/etc/ssl/my-ca.pem"``, ``listen = ["127.0.0.1:5300"]``); a flag given on
the command line wins over the file. :data:`KEYS` lists every key and its type.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["DEFAULT_LISTEN", "KEYS", "load_config", "parse_listen"]

#: Where the stub listens when no ``--listen`` is given.
DEFAULT_LISTEN = ("127.0.0.1:53", "[::1]:53")

# key -> (type of a value, whether it is a list)
KEYS: dict[str, tuple[type, bool]] = {
    "listen": (str, True),
    "server": (str, True),
    "servers": (str, True),
    "strategy": (str, False),
    "server_timeout": (float, False),
    "timeout": (float, False),
    "ca_file": (str, False),
    "auth_name": (str, False),
    "pin": (str, True),
    "pin_only": (bool, False),
    "profile": (str, False),
    "sni": (str, False),
    "no_sni": (bool, False),
    "keepalive": (bool, False),
    "idle_timeout": (float, False),
    "no_resumption": (bool, False),
    "bootstrap": (str, True),
    "proxy": (str, False),
    "client_cert": (str, False),
    "client_key": (str, False),
    "source": (str, False),
    "cache_size": (int, False),
    "no_cache": (bool, False),
    "allow": (str, True),
    "metrics": (str, False),
}


def parse_listen(text: str, default_port: int = 53) -> tuple[str, int]:
    """``"127.0.0.1:5300"``, ``"[::1]:53"``, ``"127.0.0.1"`` or ``"::1"`` as (host,
    port); ValueError for anything else."""
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"not ADDR:PORT: {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise ValueError(f"no address in {text!r}")
    if port_text:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"not a port number (0-65535) in {text!r}")
        return host, int(port_text)
    return host, default_port


def _check(key: str, value: Any) -> Any:
    kind, many = KEYS[key]
    if many and isinstance(value, str):
        value = [value]
    values = value if many else [value]
    if many and not isinstance(value, list):
        raise ValueError(f"{key} must be a list of {kind.__name__}, not {value!r}")
    for item in values:
        ok = isinstance(item, kind) and not (kind is int and isinstance(item, bool))
        if kind is float and isinstance(item, int) and not isinstance(item, bool):
            ok = True
        if not ok:
            raise ValueError(f"{key} must be {'a list of ' if many else ''}{kind.__name__}")
    if kind is float:
        return [float(v) for v in value] if many else float(value)
    return value


def load_config(path: str) -> dict[str, Any]:
    """The settings in the TOML file at ``path``; ValueError naming the key or the line
    for an unknown key, a wrong type or bad TOML, OSError if it cannot be read."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ValueError(
                "--config needs the 'tomli' package on Python 3.10: pip install 'dotclient[serve]'"
            ) from None
    with open(path, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: {exc}") from None
    settings: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in KEYS:
            raise ValueError(f"{path}: unknown setting {raw_key!r}")
        try:
            settings[key] = _check(key, value)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return settings
