"""Blocking clients, generated from ``dotclient._async`` by ``scripts/unasync.py``."""
