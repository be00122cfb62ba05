"""The candidate-source contract: a `Query` in, `Candidates` (items, scores, source tag) out.

Every retrieval source answers one request at a time::

    source.retrieve(query, k)      -> Candidates   # its best k items, best first
    source.score(query, items)     -> np.ndarray   # its score for any items (NaN: no opinion)

Items are **indices** into one item space shared by every source of a pipeline — the catalogue's
rows (`tastemaker.data.catalog.Catalog`), which is also a trained model's item vocabulary when the
catalogue was built from it. `Candidates.ids(catalog)` turns them into external ids at the edge.

A `Query` carries what a request knows: the user's index in the source's user space (for sources
with per-user state such as ANN over user embeddings), the user's history (items, times, values —
so stateless sources work from fresh events the store just recorded), context items (the product
page, the cart), the clock, and the hard constraints (`allowed` mask, `exclude` list). Sources
apply the constraints themselves, so a filtered ANN search can push them into the index.

`score` exists for the ranker: the union keeps every source's score of every candidate it
returned; `score` fills in a source's opinion of candidates that another source brought in.

Histories are read from `Interactions` with `Histories` (one sort, then O(1) slices per user).

Not to be confused with `tastemaker.ranking.Candidates`, the rules engine's per-request table of
ids, scores and attributes: the pipeline turns the union's `CandidateSet` into that with
``ranking.Candidates(catalog.ids[items], scores, **catalog.candidate_columns(items))``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError

_EMPTY_I = np.empty(0, dtype=np.int64)
_EMPTY_F = np.empty(0, dtype=np.float32)
DAY = 86_400.0


@dataclass(frozen=True, eq=False)
class Query:
    """What one retrieval request knows.

    - `user`: the user's index in the sources' user space, -1 for an anonymous or unknown user;
    - `history`, `history_times`, `history_values`: the user's past events (item indices, seconds
      since the epoch, and e.g. quantities), in any order; times and values may be None;
    - `items`: context items (the product being viewed, the cart) for item-to-item sources;
    - `now`: the request time in seconds (None: each source uses the end of its training data);
    - `allowed`: boolean mask over all items — hard constraints (in stock, region, category…);
      None allows everything;
    - `exclude`: item indices never to return (e.g. already shown).
    """

    user: int = -1
    history: np.ndarray = field(default_factory=lambda: _EMPTY_I)
    history_times: np.ndarray | None = None
    history_values: np.ndarray | None = None
    items: np.ndarray = field(default_factory=lambda: _EMPTY_I)
    now: float | None = None
    allowed: np.ndarray | None = None
    exclude: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "history", np.asarray(self.history, dtype=np.int64).reshape(-1))
        object.__setattr__(self, "items", np.asarray(self.items, dtype=np.int64).reshape(-1))
        n = len(self.history)
        for name in ("history_times", "history_values"):
            arr = getattr(self, name)
            if arr is not None:
                arr = np.asarray(arr).reshape(-1)
                if len(arr) != n:
                    raise DataError(f"query {name} has {len(arr)} entries but the history has {n}")
                object.__setattr__(self, name, arr)
        if self.allowed is not None:
            allowed = np.asarray(self.allowed)
            if allowed.dtype != np.bool_ or allowed.ndim != 1:
                raise DataError("query.allowed must be a 1-D boolean mask over all items",
                                hint="build it with Catalog.mask(...) or np.zeros(n_items, bool)")
            object.__setattr__(self, "allowed", allowed)
        if self.exclude is not None:
            object.__setattr__(self, "exclude", np.asarray(self.exclude, dtype=np.int64).reshape(-1))

    def with_constraints(self, *, allowed: np.ndarray | None = None, exclude: np.ndarray | None = None) -> Query:
        """A copy with other hard constraints."""
        return replace(self, allowed=allowed, exclude=exclude)

    def keeps(self, items: np.ndarray) -> np.ndarray:
        """Mask of `items` (indices) that pass `allowed` and `exclude` — without building a mask over
        the whole catalogue, so a source that scores a few thousand items stays cheap at 2M items."""
        items = np.asarray(items, dtype=np.int64)
        ok = np.ones(len(items), dtype=bool)
        if self.allowed is not None:
            inside = (items >= 0) & (items < len(self.allowed))
            ok &= inside
            ok[inside] &= self.allowed[items[inside]]
        if self.exclude is not None and len(self.exclude):
            ok &= ~np.isin(items, self.exclude)
        return ok

    def keep_mask(self, n_items: int) -> np.ndarray | None:
        """Boolean mask over `n_items` combining `allowed` and `exclude`; None when unconstrained."""
        if self.allowed is None and (self.exclude is None or not len(self.exclude)):
            return None
        if self.allowed is not None:
            if len(self.allowed) != n_items:
                raise DataError(f"query.allowed covers {len(self.allowed)} items but the source knows {n_items}",
                                hint="build the mask over the same item space (catalogue) as the sources")
            keep = self.allowed.copy()
        else:
            keep = np.ones(n_items, dtype=bool)
        if self.exclude is not None and len(self.exclude):
            ex = self.exclude[(self.exclude >= 0) & (self.exclude < n_items)]
            keep[ex] = False
        return keep


@dataclass(frozen=True, eq=False)
class Candidates:
    """One source's answer: item indices best first, their scores (higher is better), the source tag,
    and optional per-candidate signals (`features`, arrays aligned with `items`) the ranker can use,
    e.g. ``days_since_last`` from the repurchase source."""

    items: np.ndarray
    scores: np.ndarray
    source: str
    features: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        items = np.asarray(self.items, dtype=np.int64).reshape(-1)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(items) != len(scores):
            raise ValueError(f"{len(items)} candidate items but {len(scores)} scores")
        for name, arr in self.features.items():
            if len(arr) != len(items):
                raise ValueError(f"candidate feature {name!r} has {len(arr)} entries, expected {len(items)}")
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "scores", scores)

    @classmethod
    def empty(cls, source: str) -> Candidates:
        return cls(_EMPTY_I, _EMPTY_F, source)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Candidates({self.source}: {len(self)} items)"

    def top(self, k: int) -> Candidates:
        """The first k candidates."""
        return Candidates(self.items[:k], self.scores[:k], self.source, {n: a[:k] for n, a in self.features.items()})

    def ids(self, catalog: Any) -> np.ndarray:
        """External ids of the items: `catalog` is a `Catalog`, a `Vocabulary` or an id array."""
        table = getattr(catalog, "ids", catalog)
        return np.asarray(table)[self.items]


@runtime_checkable
class CandidateSource(Protocol):
    """What the union (and the serving pipeline) needs from a retrieval source."""

    name: str
    """The source tag carried by every candidate it returns."""

    @property
    def n_items(self) -> int:
        """Size of the item space the source's indices refer to."""
        ...

    def retrieve(self, query: Query, k: int) -> Candidates:
        """Its best k items for the query (fewer when it knows fewer), constraints applied, best first."""
        ...

    def score(self, query: Query, items: np.ndarray) -> np.ndarray:
        """Its scores of `items` for the query, float32, NaN where it has no opinion."""
        ...


def select_top(scores: np.ndarray, k: int, keep: np.ndarray | None = None, *,
               positive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores) of the k best entries of a 1-D score vector, best first, ties by lower index.

    `keep` masks entries out; NaN and -inf never count; with `positive`, only scores > 0 do.
    """
    s = np.asarray(scores)
    valid = np.isfinite(s)
    if positive:
        valid &= s > 0
    if keep is not None:
        valid &= keep
    cand = np.flatnonzero(valid)
    if k <= 0 or not len(cand):
        return _EMPTY_I, _EMPTY_F
    vals = s[cand]
    if len(cand) > k:
        part = np.argpartition(-vals, k - 1)[:k]
        kth = vals[part].min()
        # all entries tied with the k-th take part in the index tie-break
        part = np.union1d(part, np.flatnonzero(vals == kth)) if (vals == kth).sum() > 1 else part
        cand, vals = cand[part], vals[part]
    order = np.lexsort((cand, -vals))[:k]
    return cand[order].astype(np.int64), vals[order].astype(np.float32)


def as_items(items: Sequence[int] | np.ndarray, n_items: int) -> np.ndarray:
    """Item indices as int64, checked against the item space."""
    arr = np.asarray(items, dtype=np.int64).reshape(-1)
    if len(arr) and (arr.min() < 0 or arr.max() >= n_items):
        bad = arr[(arr < 0) | (arr >= n_items)][0]
        raise DataError(f"item index {int(bad)} is outside the item space of {n_items} items")
    return arr


def recency_weights(times: np.ndarray | None, now: float, half_life_days: float | None, n: int) -> np.ndarray:
    """0.5 ** (age / half-life) per event (events after `now` count fully); ones without times or half-life."""
    if times is None or half_life_days is None:
        return np.ones(n, dtype=np.float64)
    if half_life_days <= 0:
        raise ConfigError(f"half_life_days must be positive (got {half_life_days})")
    age = np.maximum(now - np.asarray(times, dtype=np.float64), 0.0)
    return np.exp2(-age / (half_life_days * DAY))


@dataclass(frozen=True, eq=False)
class Histories:
    """Per-user event histories from `Interactions`, sorted by user then time: O(1) access per user.

    `query(u, ...)` makes the `Query` of user index `u`; `users` lists those with events.
    """

    indptr: np.ndarray
    items: np.ndarray
    times: np.ndarray | None
    values: np.ndarray
    n_items: int

    @classmethod
    def from_interactions(cls, data: Interactions) -> Histories:
        ts = data.timestamps
        order = np.lexsort((ts, data.user_idx)) if ts is not None else np.argsort(data.user_idx, kind="stable")
        indptr = np.zeros(data.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(data.user_idx, minlength=data.n_users), out=indptr[1:])
        return cls(indptr=indptr, items=data.item_idx[order].astype(np.int64),
                   times=None if ts is None else ts[order].astype(np.int64),
                   values=data.values[order].astype(np.float32), n_items=data.n_items)

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def users(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.indptr) > 0)

    def of(self, u: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(items, times, values) of user `u`, oldest first (empty for unknown users)."""
        if u < 0 or u >= self.n_users:
            return _EMPTY_I, None if self.times is None else _EMPTY_I, _EMPTY_F
        sl = slice(self.indptr[u], self.indptr[u + 1])
        return self.items[sl], None if self.times is None else self.times[sl], self.values[sl]

    def query(self, u: int, **kwargs: Any) -> Query:
        """The `Query` of user `u` with their history; keyword arguments go to `Query`."""
        items, times, values = self.of(u)
        return Query(user=u, history=items, history_times=times, history_values=values, **kwargs)


__all__ = ["DAY", "CandidateSource", "Candidates", "Histories", "Query", "as_items", "recency_weights", "select_top"]
