"""`MemoryStore`: the embedded, in-process store (the default; also the fallback when Redis is away).

Each table of each version is a growing float32 matrix plus an id → row dict, with a vectorised
index over it (`IdLookup`), so a batch read is a few array operations and one fancy-index.
Writers take a lock; readers do not (a reader sees a row either before or after a concurrent
write of it, and the current pointer is one attribute).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from tastemaker.store.base import (
    DEFAULT_GRACE_SECONDS,
    FeatureStore,
    Rows,
    StoreError,
    TableSchema,
    VersionInfo,
    as_ids,
    as_rows,
    check_namespace,
    check_schema,
    check_table,
    schema_for,
)
from tastemaker.store.idindex import IdLookup


class _Table:
    __slots__ = ("lookup", "matrix", "n", "pos", "schema")

    def __init__(self, schema: TableSchema) -> None:
        self.schema = schema
        self.pos: dict[str, int] = {}
        self.lookup = IdLookup(self.pos)
        self.matrix = np.zeros((0, schema.width), dtype=np.float32)
        self.n = 0

    def put(self, ids: list[str], arr: np.ndarray) -> None:
        rows = np.empty(len(ids), dtype=np.int64)
        fresh = []
        for j, i in enumerate(ids):
            p = self.pos.get(i)
            if p is None:
                p = self.n + len(fresh)
                fresh.append(i)
            rows[j] = p
        need = self.n + len(fresh)
        if need > self.matrix.shape[0]:
            grown = np.zeros((max(need, 2 * self.matrix.shape[0], 64), self.schema.width), dtype=np.float32)
            grown[:self.n] = self.matrix[:self.n]
            self.matrix = grown
        self.matrix[rows] = arr
        for j, i in enumerate(fresh):
            self.pos[i] = self.n + j
        self.n = need

    def get(self, ids: list[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = self.lookup.lookup(ids)
        found = rows >= 0
        out = self.matrix[np.where(found, rows, 0)] if self.n else np.zeros((len(ids), self.schema.width), np.float32)
        if not found.all():
            out[~found] = 0.0
        return out, found

    def delete(self, ids: list[str]) -> int:
        # rows are tombstoned (their slot is not reused); a reload into a new version compacts
        rows = [r for r in (self.pos.pop(i, None) for i in ids) if r is not None]
        self.lookup.forget(rows)
        return len(rows)


class MemoryStore(FeatureStore):
    """Embedded store: everything in this process, nothing survives a restart."""

    backend = "memory"

    def __init__(self, *, namespace: str = "default", grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        self.namespace = check_namespace(namespace)
        self.grace_seconds = float(grace_seconds)
        self._versions: dict[int, VersionInfo] = {}
        self._tables: dict[int, dict[str, _Table]] = {}
        self._current: int | None = None
        self._next = 1
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"MemoryStore(namespace={self.namespace!r}, current={self._current})"

    def ping(self) -> None:
        return None

    def create_version(self, meta: dict[str, Any] | None = None) -> int:
        with self._lock:
            v = self._next
            self._next += 1
            self._versions[v] = VersionInfo(v, meta=dict(meta or {}))
            self._tables[v] = {}
            return v

    def versions(self) -> list[VersionInfo]:
        return [VersionInfo.from_dict(self._versions[v].to_dict()) for v in sorted(self._versions)]

    def current_version(self) -> int | None:
        return self._current

    def _info(self, version: int) -> VersionInfo:
        info = self._versions.get(int(version))
        if info is None:
            raise StoreError(f"store memory:{self.namespace} has no version {version}; it has "
                             f"{sorted(self._versions) or 'none'}")
        return info

    def activate(self, version: int) -> None:
        with self._lock:
            info = self._info(version)
            now = time.time()
            old = self._current
            if old == info.version:
                return
            if old is not None and old in self._versions:
                self._versions[old].state = "retired"
                self._versions[old].retired = now
            info.state, info.activated, info.retired = "current", now, None
            self._current = info.version

    def drop_version(self, version: int, *, force: bool = False) -> int:
        with self._lock:
            info = self._info(version)
            if info.version == self._current:
                raise StoreError(f"version {version} is current: activate another version before dropping it")
            if self._retired_too_recently(info, force):
                raise StoreError(f"version {version} was retired {time.time() - (info.retired or 0):.1f} s ago, "
                                 f"inside the {self.grace_seconds:g} s grace period; wait, or pass force=True")
            rows = sum(len(t.pos) for t in self._tables[info.version].values())
            del self._versions[info.version]
            del self._tables[info.version]
            return rows

    def _table(self, table: str, version: int | None, *, create: TableSchema | None = None) -> _Table | None:
        check_table(table)
        v = self.resolve(version)
        tables = self._tables.get(v)
        if tables is None:
            self._info(v)
        t = tables.get(table)
        if create is not None:
            schema = check_schema(table, t.schema if t is not None else None, create, v)
            if t is None:
                t = tables[table] = _Table(schema)
            elif t.schema.columns is None and schema.columns is not None:
                t.schema = schema
        return t

    def schema(self, table: str, *, version: int | None = None) -> TableSchema | None:
        t = self._table(table, version)
        return None if t is None else t.schema

    def put_rows(self, table: str, ids: Sequence[Any], values: Any, *, columns: Sequence[str] | None = None,
                 version: int | None = None) -> int:
        ids_l = as_ids(ids)
        arr = as_rows(values, len(ids_l), table)
        schema = schema_for(table, arr, columns)
        with self._lock:
            t = self._table(table, version, create=schema)
            t.put(ids_l, arr)
        return len(ids_l)

    def get_rows(self, table: str, ids: Sequence[Any], *, version: int | None = None) -> Rows:
        v = self.resolve(version)
        t = self._table(table, v)
        # a numpy array of strings goes to the vectorised lookup as it is
        ids_l = ids if isinstance(ids, np.ndarray) and ids.dtype.kind == "U" and ids.ndim == 1 else as_ids(ids)
        if t is None:
            return Rows(np.zeros((len(ids_l), 0), np.float32), np.zeros(len(ids_l), bool), None, v)
        values, found = t.get(ids_l)
        return Rows(values, found, t.schema.columns, v)

    def delete_rows(self, table: str, ids: Sequence[Any], *, version: int | None = None) -> int:
        with self._lock:
            t = self._table(table, version)
            return 0 if t is None else t.delete(as_ids(ids))

    def count(self, table: str, *, version: int | None = None) -> int:
        t = self._table(table, version)
        return 0 if t is None else len(t.pos)

    def ids(self, table: str, *, version: int | None = None) -> list[str]:
        """Every id of a table (insertion order) — for exports and the embedded retrieval index."""
        t = self._table(table, version)
        return [] if t is None else list(t.pos)

    def iter_rows(self, table: str, *, version: int | None = None, chunk: int = 10_000):
        """Every row of a table as (ids, values) chunks."""
        ids, values = self.matrix(table, version=version)
        for start in range(0, len(ids), chunk):
            yield ids[start:start + chunk], values[start:start + chunk]

    def matrix(self, table: str, *, version: int | None = None) -> tuple[list[str], np.ndarray]:
        """(ids, rows) of a whole table, rows aligned with ids (a copy)."""
        t = self._table(table, version)
        if t is None:
            return [], np.zeros((0, 0), np.float32)
        ids = list(t.pos)
        return ids, t.matrix[np.fromiter(t.pos.values(), dtype=np.int64, count=len(ids))]
