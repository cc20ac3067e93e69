"""Stores: where tenants' messages, status history, opt-outs and keys live."""

from __future__ import annotations

from smsgate.errors import ConfigError
from smsgate.store.base import MessageUpdate, Store

__all__ = ["MessageUpdate", "Store", "open_store"]


def open_store(url: str = "sqlite:///smsgate.db") -> Store:
    """Open (and migrate) a store by URL.

    * ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
      ``sqlite:///:memory:``
    * ``memory://``
    """
    if url.startswith("sqlite://"):
        from smsgate.store.sqlite import SQLiteStore

        path = url[len("sqlite://") :]
        if path.startswith("/"):
            path = path[1:]
        store: Store = SQLiteStore(path or ":memory:")
    elif url.startswith("memory://"):
        from smsgate.store.memory import MemoryStore

        store = MemoryStore()
    else:
        raise ConfigError(
            f"unsupported store URL {url.split('://')[0]!r}://...; use sqlite:///path.db or memory://"
        )
    store.migrate()
    return store
