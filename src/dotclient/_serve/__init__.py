"""``dotclient serve``: a local stub resolver forwarding plain DNS to DoT (private).

Sans-I/O pieces (:mod:`._message`, :mod:`._cache`, :mod:`._access`,
:mod:`._settings`) and the asyncio shell (:mod:`._server`); the command is in
``dotclient._cli.serve``.
"""
