"""The feature/vector store protocol: float32 rows by id, in tables, under model versions.

A store holds, per *model version*, four tables of float32 rows keyed by external id (as
strings): ``item_vectors``, ``user_vectors`` (embeddings, one fixed width per table and version)
and ``item_features``, ``user_features`` (numeric feature rows with named columns). A version is
loaded while another serves and then made current in one atomic step::

    v = store.create_version({"model": "als", "trained": "2024-05-01"})
    store.bulk_load("item_vectors", ids, vectors, version=v)       # the old version still serves
    store.activate(v)                                              # atomic switch of `current`
    store.collect_garbage()                                        # drops retired versions after a grace period

Lifecycle of a version: ``loading`` (created, being filled) → ``current`` (served) → ``retired``
(replaced by a newer current; still readable for `grace_seconds`, so a request that resolved the old
version just before the switch finishes on complete data) → deleted by `collect_garbage`.
Reads and writes without `version=` go to the current version.

Backends: `tastemaker.store.memory.MemoryStore` (embedded, in-process, the default) and
`tastemaker.store.redis.RedisStore`. `open_store(url)` picks one from a URL. Both raise
`StoreUnavailable` when the backend cannot be reached, so a caller can degrade (see
`tastemaker.store.fallback.ResilientStore`).
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tastemaker.errors import ConfigError, DataError, TastemakerError

TABLES = ("item_vectors", "user_vectors", "item_features", "user_features")
Table = Literal["item_vectors", "user_vectors", "item_features", "user_features"]
STATES = ("loading", "current", "retired")
DEFAULT_GRACE_SECONDS = 60.0
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class StoreError(TastemakerError):
    """A store operation that cannot be done as asked (unknown version, switching to a deleted one, ...)."""


class StoreUnavailable(StoreError):
    """The store's backend cannot be reached (connection refused, timeout): callers may degrade."""


@dataclass(frozen=True)
class Rows:
    """Rows fetched for a list of ids, in the order asked.

    `values` is (n, width) float32 with zeros where an id was not found; `found` says which were.
    `columns` names the columns of feature tables (None for vectors). `degraded` is a reason when the
    rows came from a fallback instead of the configured backend.
    """

    values: np.ndarray
    found: np.ndarray
    columns: tuple[str, ...] | None = None
    version: int | None = None
    degraded: str | None = None

    def __len__(self) -> int:
        return len(self.found)


@dataclass(frozen=True)
class TableSchema:
    """Width (and column names, for feature tables) of one table in one version."""

    width: int
    columns: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "columns": list(self.columns) if self.columns is not None else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableSchema:
        cols = d.get("columns")
        return cls(int(d["width"]), tuple(cols) if cols is not None else None)


@dataclass
class VersionInfo:
    """One model version: its state, times (unix seconds) and the caller's metadata."""

    version: int
    state: str = "loading"
    created: float = field(default_factory=time.time)
    activated: float | None = None
    retired: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "state": self.state, "created": self.created, "activated": self.activated,
                "retired": self.retired, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VersionInfo:
        return cls(int(d["version"]), d.get("state", "loading"), float(d.get("created", 0.0)), d.get("activated"),
                   d.get("retired"), dict(d.get("meta") or {}))


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise ConfigError(f"store namespace must be 1–64 characters of letters, digits, '_', '.', '-' "
                          f"(got {namespace!r})")
    return namespace


def check_table(table: str) -> str:
    if table not in TABLES:
        raise ConfigError(f"unknown store table {table!r}; tables: {', '.join(TABLES)}")
    return table


def as_ids(ids: Sequence[Any] | np.ndarray) -> list[str]:
    """Ids as a list of strings (the store compares ids as strings, like the rules engine)."""
    if isinstance(ids, np.ndarray):
        return ids.astype(str).tolist()
    if isinstance(ids, (str, bytes)):
        raise DataError("ids must be a sequence of ids, not one string", hint="wrap a single id in a list")
    return [str(i) for i in ids]


def as_rows(values: Any, n: int, table: str) -> np.ndarray:
    """Values as a C-contiguous little-endian float32 (n, width) matrix, checked finite."""
    arr = np.ascontiguousarray(np.asarray(values, dtype="<f4"))
    if arr.ndim == 1 and n == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise DataError(f"{table}: {n} ids but values of shape {arr.shape}", hint="pass one row per id")
    if arr.shape[1] < 1:
        raise DataError(f"{table}: rows must have at least one column")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise DataError(f"{table}: row {bad} contains NaN or infinite values",
                        hint="encode missing features explicitly (e.g. 0 plus a 'missing' indicator column)")
    return arr


def check_schema(table: str, old: TableSchema | None, new: TableSchema, version: int) -> TableSchema:
    """The schema a put must agree with: the first put of a table fixes its width and columns."""
    if table.endswith("_vectors") and new.columns is not None:
        raise DataError(f"{table} rows are vectors: they take no column names")
    if old is None:
        return new
    if old.width != new.width:
        raise DataError(f"{table} of version {version} holds rows of width {old.width}, got width {new.width}",
                        hint="all rows of a table in one version have the same width; load a new version to change it")
    if new.columns is not None and old.columns is not None and tuple(new.columns) != tuple(old.columns):
        raise DataError(f"{table} of version {version} has columns {list(old.columns)}, got {list(new.columns)}",
                        hint="load a new version to change the feature columns")
    return old


class FeatureStore(ABC):
    """The store protocol. Backends implement the abstract primitives; the rest is shared.

    Ids are compared as strings. Every method that takes `version` uses the current version when
    it is None (a `StoreError` says so when no version is current yet).
    """

    backend: str = ""
    namespace: str = "default"
    grace_seconds: float = DEFAULT_GRACE_SECONDS

    # --- primitives every backend implements ---------------------------------------------------
    @abstractmethod
    def ping(self) -> None:
        """Raise `StoreUnavailable` when the backend cannot be reached."""

    @abstractmethod
    def create_version(self, meta: dict[str, Any] | None = None) -> int:
        """A new, empty version in state ``loading`` (numbers increase and are never reused)."""

    @abstractmethod
    def versions(self) -> list[VersionInfo]:
        """Every version not yet deleted, oldest first."""

    @abstractmethod
    def current_version(self) -> int | None:
        """The version reads go to (None before the first `activate`)."""

    @abstractmethod
    def activate(self, version: int) -> None:
        """Make `version` current in one atomic step; the previous current becomes ``retired``."""

    @abstractmethod
    def drop_version(self, version: int, *, force: bool = False) -> int:
        """Delete a version's data; returns how many rows went. Refuses the current version, and a
        retired one still inside its grace period unless `force`."""

    @abstractmethod
    def schema(self, table: str, *, version: int | None = None) -> TableSchema | None:
        """Width and columns of a table (None while it is empty)."""

    @abstractmethod
    def put_rows(self, table: str, ids: Sequence[Any], values: Any, *, columns: Sequence[str] | None = None,
                 version: int | None = None) -> int:
        """Insert or replace rows; returns how many were written."""

    @abstractmethod
    def get_rows(self, table: str, ids: Sequence[Any], *, version: int | None = None) -> Rows:
        """Rows of `ids` in the order given; missing ids are zero rows with `found` False."""

    @abstractmethod
    def delete_rows(self, table: str, ids: Sequence[Any], *, version: int | None = None) -> int:
        """Delete rows; returns how many existed."""

    @abstractmethod
    def count(self, table: str, *, version: int | None = None) -> int:
        """Number of rows in a table."""

    def iter_rows(self, table: str, *, version: int | None = None, chunk: int = 10_000):
        """Every row of a table as (ids, values) chunks (backends that can list their rows)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its rows")

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release connections (the memory backend has none)."""

    # --- shared behaviour ----------------------------------------------------------------------
    def get_many(self, queries: Sequence[tuple[str, Sequence[Any]]], *, version: int | None = None) -> list[Rows]:
        """Several reads under one version, e.g. ``[("user_vectors", [u]), ("item_features", ids)]``
        (one round trip on Redis)."""
        v = self.resolve(version)
        return [self.get_rows(table, ids, version=v) for table, ids in queries]

    def bulk_load(self, table: str, ids: Sequence[Any], values: Any, *, columns: Sequence[str] | None = None,
                  version: int | None = None, batch_size: int = 10_000) -> int:
        """Load many rows in batches (pipelined on Redis); returns how many were written."""
        ids_l = as_ids(ids)
        arr = as_rows(values, len(ids_l), table)
        if len(set(ids_l)) != len(ids_l):
            raise DataError(f"{table}: duplicate ids in one bulk load")
        total = 0
        for start in range(0, len(ids_l), max(1, int(batch_size))):
            total += self.put_rows(table, ids_l[start:start + batch_size], arr[start:start + batch_size],
                                   columns=columns, version=version)
        return total

    def resolve(self, version: int | None) -> int:
        """`version`, or the current one when None (a `StoreError` when none is current)."""
        if version is not None:
            return int(version)
        cur = self.current_version()
        if cur is None:
            raise StoreError(f"store {self.backend}:{self.namespace} has no current version: load one with "
                             "create_version() + bulk_load() and switch to it with activate()")
        return cur

    def version_info(self, version: int) -> VersionInfo:
        for info in self.versions():
            if info.version == int(version):
                return info
        raise StoreError(f"store {self.backend}:{self.namespace} has no version {version}; it has "
                         f"{[v.version for v in self.versions()] or 'none'}")

    def collect_garbage(self, *, keep: int = 0, grace_seconds: float | None = None) -> list[int]:
        """Delete retired versions whose grace period is over, keeping the `keep` newest retired
        ones (for a quick rollback). Versions still ``loading`` are left alone. Returns the
        versions deleted."""
        grace = self.grace_seconds if grace_seconds is None else float(grace_seconds)
        now = time.time()
        retired = sorted((v for v in self.versions() if v.state == "retired"), key=lambda v: v.version)
        keep_set = {v.version for v in retired[len(retired) - keep:]} if keep > 0 else set()
        dropped = []
        for info in retired:
            if info.version in keep_set or (info.retired or 0.0) + grace > now:
                continue
            self.drop_version(info.version, force=True)
            dropped.append(info.version)
        return dropped

    def _retired_too_recently(self, info: VersionInfo, force: bool) -> bool:
        return not force and info.state == "retired" and (info.retired or 0.0) + self.grace_seconds > time.time()

    # --- named helpers ---------------------------------------------------------------------------
    def put_item_vectors(self, ids, vectors, *, version: int | None = None) -> int:
        return self.bulk_load("item_vectors", ids, vectors, version=version)

    def get_item_vectors(self, ids, *, version: int | None = None) -> Rows:
        return self.get_rows("item_vectors", ids, version=version)

    def put_user_vectors(self, ids, vectors, *, version: int | None = None) -> int:
        return self.bulk_load("user_vectors", ids, vectors, version=version)

    def get_user_vectors(self, ids, *, version: int | None = None) -> Rows:
        return self.get_rows("user_vectors", ids, version=version)

    def put_item_features(self, ids, values, columns: Sequence[str], *, version: int | None = None) -> int:
        return self.bulk_load("item_features", ids, values, columns=columns, version=version)

    def get_item_features(self, ids, *, version: int | None = None) -> Rows:
        return self.get_rows("item_features", ids, version=version)

    def put_user_features(self, ids, values, columns: Sequence[str], *, version: int | None = None) -> int:
        return self.bulk_load("user_features", ids, values, columns=columns, version=version)

    def get_user_features(self, ids, *, version: int | None = None) -> Rows:
        return self.get_rows("user_features", ids, version=version)

    def describe(self) -> dict[str, Any]:
        """Backend, namespace, current version and per-version table sizes (for /health and logs)."""
        cur = self.current_version()
        out: dict[str, Any] = {"backend": self.backend, "namespace": self.namespace, "current": cur, "versions": []}
        for info in self.versions():
            out["versions"].append({**info.to_dict(), "rows": {t: self.count(t, version=info.version) for t in TABLES}})
        return out


def schema_for(table: str, arr: np.ndarray, columns: Sequence[str] | None) -> TableSchema:
    """The schema of rows being put (checks that column names match the width)."""
    if columns is not None:
        cols = tuple(str(c) for c in columns)
        if len(cols) != arr.shape[1]:
            raise DataError(f"{table}: {len(cols)} column names for rows of width {arr.shape[1]}")
        if len(set(cols)) != len(cols):
            raise DataError(f"{table}: duplicate column names {sorted(c for c in set(cols) if cols.count(c) > 1)}")
        return TableSchema(arr.shape[1], cols)
    if table.endswith("_features"):
        raise DataError(f"{table}: feature rows need column names", hint="pass columns=[...] with one name per column")
    return TableSchema(arr.shape[1], None)


def open_store(url: str | None = None, *, namespace: str = "default", **kwargs: Any) -> FeatureStore:
    """A store from a URL: ``memory://`` (or None) for the embedded store, ``redis://host:port/db``."""
    if url is None or url in ("memory", "memory://"):
        from tastemaker.store.memory import MemoryStore

        return MemoryStore(namespace=namespace, **kwargs)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from tastemaker.store.redis import RedisStore

        return RedisStore(url, namespace=namespace, **kwargs)
    raise ConfigError(f"unknown store URL {url!r}: use 'memory://' or 'redis://host:port/db'")
