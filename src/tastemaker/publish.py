"""Publishing a model to the feature/vector store: versioned bulk load, atomic switch, safe clean-up.

`publish(model, store)` takes a bundle folder, a ``models:/NAME@alias`` URI (resolved to a pinned
version and fetched from the registry) or a fitted `Recommender`, and writes what serving reads
from the store:

- ``user_vectors`` / ``item_vectors``: the model's embeddings (``user_vectors``/``item_vectors``
  of two-tower and hybrid models) or factors (``user_factors``/``item_factors`` of MF, ALS, BPR,
  SVD++, …), exactly as the model holds them, so ``user_item_dot`` is the model's interaction term;
- ``item_features``: ``popularity`` (training interactions per item) and ``bias`` (the item bias,
  for models that have one), plus any caller columns (`item_features=`, a frame indexed by id);
- ``user_features``: ``history`` (training interactions per user) and ``bias`` (when the model has
  one), plus any caller columns (`user_features=`).

Everything goes into a new store version while the current one keeps serving; then one atomic
`activate` switches readers over, and `collect_garbage` deletes retired versions whose grace period
is over (the previous version stays readable for the store's `grace_seconds`, so requests that
resolved it just before the switch finish on complete data; `keep` retired versions stay for a
rollback). A failed load drops its half-written version and leaves the current one serving. The
versioning itself is the store's (`tastemaker.store`); this module only decides what to load.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tastemaker.errors import DataError, TastemakerError

VECTOR_ATTRIBUTES = (("user_vectors", "item_vectors"), ("user_factors", "item_factors"))
STALE_LOADING_SECONDS = 3600.0


@dataclass
class Table:
    """Rows for one store table: ids, a float32 (n, width) matrix and column names (features only)."""

    ids: list[str]
    values: np.ndarray
    columns: tuple[str, ...] | None = None


@dataclass
class PublishReport:
    """What `publish` did: the store version it made current, rows per table, how fast it loaded,
    the version it replaced and the versions it deleted (or left for their grace period)."""

    store: str
    namespace: str
    version: int
    previous: int | None
    model: str
    model_name: str
    rows: dict[str, int]
    vectors: int
    load_seconds: float
    vectors_per_s: float  # vectors loaded per second of loading the two vector tables
    rows_per_s: float
    switch_ms: float
    collected: list[int] = field(default_factory=list)
    retained: list[int] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        prev = "none" if self.previous is None else f"v{self.previous}"
        rows = ", ".join(f"{t} {n:,}" for t, n in self.rows.items() if n)
        return (f"published {self.model} to {self.store} namespace {self.namespace!r} as v{self.version} "
                f"(was {prev}): {rows} in {self.load_seconds:.2f} s ({self.vectors_per_s:,.0f} vectors/s, "
                f"{self.rows_per_s:,.0f} rows/s); switch {self.switch_ms:.1f} ms; "
                f"deleted {self.collected or 'none'}, kept {self.retained or 'none'}")


def model_tables(model: Any, *, item_features: Any = None, user_features: Any = None) -> dict[str, Table]:
    """The store tables a fitted `Recommender` publishes (see the module docstring)."""
    users = model.user_vocab.ids
    items = model.item_vocab.ids
    user_ids = users.astype(str).tolist()
    item_ids = items.astype(str).tolist()
    out: dict[str, Table] = {}
    for u_attr, i_attr in VECTOR_ATTRIBUTES:
        u, i = getattr(model, u_attr, None), getattr(model, i_attr, None)
        if u is None or i is None:
            continue
        u, i = np.asarray(u), np.asarray(i)
        if u.ndim == 2 and i.ndim == 2 and u.shape == (len(user_ids), i.shape[1]) and len(i) == len(item_ids):
            out["user_vectors"] = Table(user_ids, np.ascontiguousarray(u, dtype=np.float32))
            out["item_vectors"] = Table(item_ids, np.ascontiguousarray(i, dtype=np.float32))
            break
    i_cols = {"popularity": np.asarray(model.item_counts, dtype=np.float32)}
    u_cols = {"history": np.asarray(model.user_history_counts(), dtype=np.float32)}
    for cols, attr, n in ((i_cols, "item_bias", len(item_ids)), (u_cols, "user_bias", len(user_ids))):
        b = getattr(model, attr, None)
        if b is not None and np.ndim(b) == 1 and len(b) == n:
            cols["bias"] = np.asarray(b, dtype=np.float32)
    out["item_features"] = _features(item_ids, i_cols, item_features, "item_features")
    out["user_features"] = _features(user_ids, u_cols, user_features, "user_features")
    return out


def _features(ids: list[str], cols: dict[str, np.ndarray], extra: Any, table: str) -> Table:
    """The model's columns for `ids`, joined with a caller's frame (indexed by id; extra ids are added,
    missing values are 0)."""
    if extra is None:
        return Table(ids, np.column_stack(list(cols.values())).astype(np.float32), tuple(cols))
    import pandas as pd

    frame = extra if isinstance(extra, pd.DataFrame) else pd.DataFrame(extra)
    frame = frame.copy()
    frame.index = frame.index.astype(str)
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()][0]
        raise DataError(f"{table}: id {dup!r} appears more than once", hint="one row per id")
    clash = set(map(str, frame.columns)) & set(cols)
    if clash:
        raise DataError(f"{table}: columns {sorted(clash)} clash with the model's own",
                        hint="rename them (the model publishes " + ", ".join(cols) + ")")
    numeric = frame.select_dtypes(include=["number", "bool"])
    dropped = [str(c) for c in frame.columns if c not in numeric.columns]
    if dropped:
        raise DataError(f"{table}: columns {dropped} are not numeric; the store holds float32 rows",
                        hint="encode them (one-hot, codes) before publishing")
    base = pd.DataFrame(cols, index=pd.Index(ids, dtype=str))
    joined = base.join(numeric.astype(np.float32), how="outer").fillna(0.0)
    return Table(joined.index.astype(str).tolist(), joined.to_numpy(dtype=np.float32),
                 tuple(map(str, joined.columns)))


def publish(model: str | Path | Any, store: str | Any = "memory://", namespace: str = "default", *,
            registry_uri: str | None = None, cache_dir: str | Path | None = None, item_features: Any = None,
            user_features: Any = None, batch_size: int = 10_000, keep: int = 1, grace_seconds: float | None = None,
            stale_loading_s: float = STALE_LOADING_SECONDS, meta: Mapping[str, Any] | None = None) -> PublishReport:
    """Load `model` into `store` under a new version, switch to it atomically, clean up old versions.

    model: a bundle folder, a ``models:/NAME@alias`` or ``models:/NAME/VERSION`` URI, or a fitted
        `Recommender`. store: a URL (``redis://host:port/db``, ``memory://``) or a `FeatureStore`.
    keep: retired versions kept for a rollback; older retired versions are deleted once their grace
        period (`grace_seconds`, default the store's) is over. Versions left ``loading`` for longer
        than `stale_loading_s` by crashed publishes are deleted too.
    """
    from tastemaker.models.base import Recommender
    from tastemaker.registry import resolve_model
    from tastemaker.store import FeatureStore, open_store

    if isinstance(model, Recommender):
        loaded, model_id, registered = model, f"<in-memory {model.name}>", None
    else:
        folder, model_id, registered = resolve_model(model, registry_uri=registry_uri, cache_dir=cache_dir)
        loaded = Recommender.load(folder)
    tables = model_tables(loaded, item_features=item_features, user_features=user_features)
    notes = []
    if "item_vectors" not in tables:
        notes.append(f"model {loaded.name!r} has no user/item vectors or factors: only features were published")
    own = not isinstance(store, FeatureStore)
    st = open_store(store, namespace=namespace) if own else store
    try:
        return _load_and_switch(st, tables, loaded, model_id, registered, notes, batch_size=batch_size, keep=keep,
                                grace_seconds=grace_seconds, stale_loading_s=stale_loading_s, meta=meta)
    finally:
        if own:
            st.close()


def _load_and_switch(st: Any, tables: dict[str, Table], model: Any, model_id: str, registered: Any,
                     notes: list[str], *, batch_size: int, keep: int, grace_seconds: float | None,
                     stale_loading_s: float, meta: Mapping[str, Any] | None) -> PublishReport:
    from tastemaker import __version__

    info = {"model": model_id, "model_name": model.name, "fingerprint": model.data_info.get("fingerprint"),
            "published": datetime.now(UTC).isoformat(timespec="seconds"), "tastemaker": __version__,
            "tables": {t: {"rows": len(tb.ids), "width": int(tb.values.shape[1])} for t, tb in tables.items()},
            **({"registry_version": registered.version, "run_id": registered.run_id} if registered else {}),
            **dict(meta or {})}
    previous = st.current_version()
    v = st.create_version(info)
    rows: dict[str, int] = {}
    t0 = time.perf_counter()
    try:
        vector_seconds = 0.0
        for name, tb in tables.items():
            t = time.perf_counter()
            rows[name] = st.bulk_load(name, tb.ids, tb.values, columns=tb.columns, version=v, batch_size=batch_size)
            if name.endswith("_vectors"):
                vector_seconds += time.perf_counter() - t
        load_seconds = time.perf_counter() - t0
        for name, tb in tables.items():
            have = st.count(name, version=v)
            if have != len(tb.ids):
                raise DataError(f"{name}: {have} rows in store version {v} after loading {len(tb.ids)}")
        t1 = time.perf_counter()
        st.activate(v)
        switch_ms = (time.perf_counter() - t1) * 1000.0
    except BaseException:
        # when the store is away the version stays 'loading', and a later publish removes it
        with contextlib.suppress(TastemakerError):
            st.drop_version(v, force=True)
        raise
    collected = st.collect_garbage(keep=keep, grace_seconds=grace_seconds)
    abandoned = []
    now = time.time()
    for old in st.versions():
        if old.state == "loading" and old.version != v and old.created + stale_loading_s < now:
            st.drop_version(old.version, force=True)
            abandoned.append(old.version)
    retained = [i.version for i in st.versions() if i.state == "retired"]
    vectors = rows.get("user_vectors", 0) + rows.get("item_vectors", 0)
    total = sum(rows.values())
    return PublishReport(store=_redact(getattr(st, "url", None) or f"{st.backend}://"), namespace=st.namespace,
                         version=v, previous=previous, model=model_id, model_name=model.name, rows=rows,
                         vectors=vectors, load_seconds=load_seconds,
                         vectors_per_s=vectors / vector_seconds if vector_seconds > 0 else 0.0,
                         rows_per_s=total / load_seconds if load_seconds > 0 else 0.0, switch_ms=switch_ms,
                         collected=collected, retained=retained, abandoned=abandoned, notes=notes)


def _redact(url: str) -> str:
    """A store URL without its password."""
    import re

    return re.sub(r"//[^/@]*@", "//***@", url)


__all__ = ["PublishReport", "Table", "model_tables", "publish"]
