"""I/O backends: the only code that touches sockets, ``ssl`` wrapping and asyncio.

``_async.py`` and ``_sync.py`` offer the same names (``open_tls_stream``, a stream with
``read``/``write``/close, and a lock), so the client code in ``dotclient._async`` is
written once and ``dotclient._sync`` is generated from it by ``scripts/unasync.py``.
"""
