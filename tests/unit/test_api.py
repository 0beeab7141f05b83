"""The public surface: exported names and docstrings (the generated sync client is
checked in tests/servers/test_api_io.py, which needs a process)."""

from __future__ import annotations

import inspect

import pytest

import dotclient

PUBLIC = [
    "PRESETS",
    "AllServersFailed",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ClientOptions",
    "ClientStats",
    "ConnectError",
    "ConnectionLost",
    "DoTError",
    "InvalidServerSpec",
    "NetworkError",
    "ProtocolError",
    "RcodeError",
    "Response",
    "Server",
    "ServerState",
    "TLSError",
    "TLSInfo",
    "Timeout",
    "aresolve",
    "parse_server",
    "resolve",
]


def _isort_key(name: str) -> tuple[int, str]:
    # RUF022's isort-style order: CONSTANTS, then Classes, then functions, each by ASCII.
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_pinned() -> None:
    assert dotclient.__all__ == PUBLIC
    assert PUBLIC == sorted(PUBLIC, key=_isort_key)
    assert len(set(PUBLIC)) == len(PUBLIC)


def test_all_names_exist_and_nothing_else_public_is_exported() -> None:
    for name in PUBLIC:
        assert hasattr(dotclient, name), name
    exported = {
        name
        for name, value in vars(dotclient).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert exported == set(PUBLIC)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from dotclient import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(PUBLIC)


def _own_doc(obj: object) -> str | None:
    """The docstring written for ``obj`` itself (not inherited, not dataclass-generated)."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        if doc and doc.startswith(f"{obj.__name__}("):  # dataclass's generated signature
            return None
        return doc
    return getattr(obj, "__doc__", None)


@pytest.mark.parametrize("name", [n for n in PUBLIC if n != "PRESETS"])
def test_public_names_have_docstrings(name: str) -> None:
    doc = _own_doc(getattr(dotclient, name))
    assert doc is not None and len(doc.strip()) > 20, name


def test_presets_is_documented_data() -> None:
    # A dict has no docstring of its own: check the presets are the documented ones.
    assert set(dotclient.PRESETS) == {"cloudflare", "google", "quad9"}
    assert all(isinstance(s, dotclient.Server) for s in dotclient.PRESETS.values())
    doc = dotclient.parse_server.__doc__ or ""
    for name in dotclient.PRESETS:
        assert f'"{name}"' in doc


def _public_members(cls: type) -> list[tuple[str, object]]:
    members = []
    for attr, value in vars(cls).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, property):
            members.append((attr, value.fget))
        elif isinstance(value, (staticmethod, classmethod)):
            members.append((attr, value.__func__))
        elif inspect.isfunction(value):
            members.append((attr, value))
    return members


@pytest.mark.parametrize("name", [n for n in PUBLIC if inspect.isclass(getattr(dotclient, n))])
def test_public_methods_have_docstrings(name: str) -> None:
    cls = getattr(dotclient, name)
    missing = [attr for attr, func in _public_members(cls) if not (func.__doc__ or "").strip()]
    assert missing == [], f"{name}: {missing}"


def test_module_docstring_and_version() -> None:
    assert dotclient.__doc__ and "RFC 7858" in dotclient.__doc__
    assert isinstance(dotclient.__version__, str)
    assert dotclient.__version__.count(".") >= 2
