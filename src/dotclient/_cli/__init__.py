"""The ``dotclient`` command's parts; :mod:`dotclient.cli` is the entry point."""
