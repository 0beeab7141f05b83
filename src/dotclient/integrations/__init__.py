"""Adapters that put DoT under existing Python code, one pooled client underneath each.

Each module imports its third-party library only when imported itself:

- :mod:`dotclient.integrations.dnspython`: ``DoTNameserver`` for dnspython's
  ``Resolver``, and ``make_resolver()`` / ``make_async_resolver()``.
- :mod:`dotclient.integrations.aiohttp`: ``DoTResolver`` for
  ``aiohttp.TCPConnector(resolver=...)`` (``pip install 'dotclient[aiohttp]'``).
- :mod:`dotclient.integrations.httpx`: ``DoTTransport`` and ``AsyncDoTTransport`` for
  ``httpx.Client(transport=...)`` (``pip install 'dotclient[httpx]'``).
- :mod:`dotclient.integrations.socket`: ``patch()``, routing ``socket.getaddrinfo``
  and friends through DoT.

Every adapter takes either ``client=`` (a :class:`dotclient.Client` or
:class:`dotclient.AsyncClient` that the caller owns and closes) or ``server=`` /
``servers=`` plus the client's options (``ca_file=``, ``pins=``, ``profile=``,
``timeout=``...), in which case it makes, owns and closes its client.
See ``docs/integrations.md``.
"""
