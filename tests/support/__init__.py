"""Helpers shared by every tier of the test suite (importable as ``support.*``:
pyproject's ``pythonpath`` puts ``tests/`` on the path).

- :mod:`support.noio`: the guard of the pure tiers (no sockets, no processes);
- :mod:`support.memtls`: TLS handshakes in memory (``ssl.MemoryBIO``), no sockets;
- :mod:`support.responses`: the server and TLS details pure tests build responses with;
- :mod:`support.checks`: what tests check dotclient against (SPKI pins, option codes),
  written apart from dotclient's code;
- :mod:`support.modes`: one test body against the blocking and the asyncio API;
- :mod:`support.fakeserver`: a scriptable TLS server on 127.0.0.1, a handler per test;
- :mod:`support.gate`: a handler that holds answers until told, and event waits;
- :mod:`support.connparts`: microsocks, nginx with mTLS and a blackhole listener;
- :mod:`support.servers`: starting ``dotclient.testing`` servers, skipping (or failing
  under ``CI=true``) when one is not installed;
- :mod:`support.cli`: running the ``dotclient`` command in-process.

The fixtures live in ``tests/conftest.py`` (shared by every tier) and
``tests/servers/conftest.py`` (only the server tier's).
"""
