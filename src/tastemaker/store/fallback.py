"""`ResilientStore`: a primary store (Redis) with an embedded fallback, for serving through outages.

Reads go to the primary; when it is unreachable they are answered by the fallback (a
`MemoryStore`, usually holding a mirror of what the service needs) and the returned `Rows` carry a
`degraded` reason. After a failure the primary is not tried again for `retry_interval` seconds
(a circuit breaker), so an outage costs one timeout, not one per request; then a single read
probes it. Writes go to the primary and, with `mirror_writes`, to the fallback too; version
management (create, activate, drop) needs the primary.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from tastemaker.store.base import FeatureStore, Rows, StoreError, StoreUnavailable, TableSchema, VersionInfo
from tastemaker.store.memory import MemoryStore


def mirror(source: FeatureStore, target: FeatureStore, *, tables: Sequence[str] | None = None,
           meta: dict[str, Any] | None = None) -> int:
    """Copy the current version of `source` into a new version of `target` and activate it there
    (the embedded fallback's copy of what Redis serves). Returns the rows copied."""
    from tastemaker.store.base import TABLES

    v = target.create_version({"mirror_of": f"{source.backend}:{source.namespace}",
                               "source_version": source.current_version(), **(meta or {})})
    total = 0
    for table in tables or TABLES:
        schema = source.schema(table)
        if schema is None:
            continue
        for ids, values in source.iter_rows(table):
            total += target.put_rows(table, ids, values, columns=schema.columns, version=v)
    target.activate(v)
    return total


class ResilientStore(FeatureStore):
    """Primary store with an embedded fallback; see the module docstring."""

    def __init__(self, primary: FeatureStore, fallback: FeatureStore | None = None, *, retry_interval: float = 2.0,
                 mirror_writes: bool = True) -> None:
        self.primary = primary
        self.fallback = fallback if fallback is not None else MemoryStore(namespace=primary.namespace)
        self.backend = f"{primary.backend}+{self.fallback.backend}"
        self.namespace = primary.namespace
        self.grace_seconds = primary.grace_seconds
        self.retry_interval = float(retry_interval)
        self.mirror_writes = bool(mirror_writes)
        self._down_until = 0.0
        self._reason: str | None = None
        self._lock = threading.Lock()
        self.failures = 0

    def __repr__(self) -> str:
        return f"ResilientStore({self.primary!r}, fallback={self.fallback!r})"

    @property
    def degraded(self) -> str | None:
        """Why reads currently go to the fallback (None while the primary is healthy)."""
        if self._reason is not None and time.monotonic() < self._down_until:
            return self._reason
        return None

    def _trip(self, exc: StoreUnavailable) -> str:
        with self._lock:
            self.failures += 1
            self._down_until = time.monotonic() + self.retry_interval
            self._reason = f"{exc}; serving from the embedded {self.fallback.backend} fallback"
            return self._reason

    def _read(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
        reason = self.degraded
        if reason is None:
            try:
                out = getattr(self.primary, name)(*args, **kwargs)
                self._reason = None
                return out, None
            except StoreUnavailable as exc:
                reason = self._trip(exc)
        kwargs.pop("version", None)
        try:
            return getattr(self.fallback, name)(*args, **kwargs), reason
        except StoreError as exc:
            raise StoreUnavailable(f"{reason}; but the fallback cannot answer either: {exc}") from exc

    def ping(self) -> None:
        try:
            self.primary.ping()
            self._reason = None
        except StoreUnavailable as exc:
            self._trip(exc)
            raise

    def get_rows(self, table: str, ids: Sequence[Any], *, version: int | None = None) -> Rows:
        rows, reason = self._read("get_rows", table, ids, version=version)
        if reason is None:
            return rows
        return Rows(rows.values, rows.found, rows.columns, rows.version, degraded=reason)

    def get_many(self, queries, *, version: int | None = None) -> list[Rows]:
        rows, reason = self._read("get_many", queries, version=version)
        if reason is None:
            return rows
        return [Rows(r.values, r.found, r.columns, r.version, degraded=reason) for r in rows]

    def schema(self, table: str, *, version: int | None = None) -> TableSchema | None:
        return self._read("schema", table, version=version)[0]

    def count(self, table: str, *, version: int | None = None) -> int:
        return self._read("count", table, version=version)[0]

    def current_version(self) -> int | None:
        return self._read("current_version")[0]

    def versions(self) -> list[VersionInfo]:
        return self._read("versions")[0]

    def put_rows(self, table: str, ids: Sequence[Any], values: Any, *, columns: Sequence[str] | None = None,
                 version: int | None = None) -> int:
        if self.mirror_writes and self.fallback.current_version() is not None:
            self.fallback.put_rows(table, ids, values, columns=columns)
        return self.primary.put_rows(table, ids, values, columns=columns, version=version)

    def delete_rows(self, table: str, ids: Sequence[Any], *, version: int | None = None) -> int:
        if self.mirror_writes and self.fallback.current_version() is not None:
            self.fallback.delete_rows(table, ids)
        return self.primary.delete_rows(table, ids, version=version)

    def create_version(self, meta: dict[str, Any] | None = None) -> int:
        return self.primary.create_version(meta)

    def activate(self, version: int) -> None:
        self.primary.activate(version)

    def drop_version(self, version: int, *, force: bool = False) -> int:
        return self.primary.drop_version(version, force=force)

    def close(self) -> None:
        self.primary.close()
        self.fallback.close()
