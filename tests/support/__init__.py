"""Helpers shared by every tier of the test suite (importable as ``support.*``).

- :mod:`support.memtls`: TLS handshakes in memory (``ssl.MemoryBIO``), no sockets;
- :mod:`support.modes`: one test body against the blocking and the asyncio API;
- :mod:`support.fakeserver`: a scriptable TLS server on 127.0.0.1, a handler per test;
- :mod:`support.gate`: a handler that holds answers until told, and event waits;
- :mod:`support.connparts`: microsocks, nginx with mTLS and a blackhole listener;
- :mod:`support.servers`: starting ``dotclient.testing`` servers, skipping (or failing
  under ``CI=true``) when one is not installed;
- :mod:`support.clienthello`: the cipher suites a TLS ClientHello offers.

The fixtures live in ``tests/conftest.py`` (shared) and each tier's ``conftest.py``.
"""
