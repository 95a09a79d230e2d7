"""Storage stage: one interface over SQLite (embedded default) and PostgreSQL, chosen by URL."""

from vigil.security.crypto import StoreKeys
from vigil.store.sql import SqlStore, hash_token

Store = SqlStore


def open_store(url: str, keys: StoreKeys | None = None) -> SqlStore:
    """Open (and create if needed) the store at sqlite:///path.db or postgresql://..."""
    return SqlStore(url, keys)


__all__ = ["SqlStore", "Store", "hash_token", "open_store"]
