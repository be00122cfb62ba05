"""Feature/vector stores: float32 rows by id under model versions, switched atomically.

    from tastemaker.store import open_store
    store = open_store("redis://127.0.0.1:6379/0", namespace="shop")   # or open_store() for memory
    v = store.create_version({"model": "als"})
    store.bulk_load("item_vectors", ids, vectors, version=v)
    store.activate(v)
    store.get_item_vectors(["sku1", "sku2"]).values
"""

from tastemaker.store.base import (
    TABLES,
    FeatureStore,
    Rows,
    StoreError,
    StoreUnavailable,
    TableSchema,
    VersionInfo,
    open_store,
)
from tastemaker.store.fallback import ResilientStore
from tastemaker.store.memory import MemoryStore

__all__ = [
    "TABLES",
    "FeatureStore",
    "MemoryStore",
    "ResilientStore",
    "Rows",
    "StoreError",
    "StoreUnavailable",
    "TableSchema",
    "VersionInfo",
    "open_store",
]
