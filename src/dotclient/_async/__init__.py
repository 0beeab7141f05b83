"""asyncio clients; the source that ``dotclient._sync`` is generated from."""
