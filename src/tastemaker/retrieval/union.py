"""The union of candidate sources: per-source quotas, deduplication, every source's score kept.

`union(results, quotas=..., k=...)` merges the `Candidates` of several sources:

1. **quotas** — sources in the given order (their priority) each bring in up to ``quotas[name]``
   items *not already taken*, walking their own list best first; a source that runs dry leaves
   its unused quota to step 2;
2. **fill** — while fewer than `k` items are taken, the sources' remaining items are taken
   round-robin by rank (the best remaining of each source in turn), so no source's tail beats
   another's head;
3. **keep everything** — for every taken item, every source that returned it (at any rank, even
   beyond its quota) records its score and rank: a (n, n_sources) score matrix (NaN where a source
   did not return the item), a rank matrix (-1 there), the source that brought the item in
   (`origin`), and the sources' extra features (``"<source>.<feature>"``, NaN where absent).

The ranker reads these as features; `CandidateSet.tags(i)` lists an item's sources for traces.
`UnionRetriever` wraps it: it asks each source for its fetch size and returns the `CandidateSet`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tastemaker.errors import ConfigError
from tastemaker.retrieval.base import Candidates, CandidateSource, Query


@dataclass(frozen=True, eq=False)
class CandidateSet:
    """Merged candidates: `items` in the order they were taken, per-source scores and ranks."""

    items: np.ndarray  # int64 (n,)
    sources: tuple[str, ...]
    scores: np.ndarray  # float32 (n, n_sources), NaN where the source did not return the item
    ranks: np.ndarray  # int32 (n, n_sources), 0-based rank in the source's list, -1 where absent
    origin: np.ndarray  # int8 (n,), the source (column) whose quota or fill took the item
    features: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}: {int((self.origin == j).sum())}" for j, s in enumerate(self.sources))
        return f"CandidateSet({len(self)} items; taken from {counts})"

    def found_by(self, source: str) -> np.ndarray:
        """Mask of the items `source` returned (whether or not it took them)."""
        return self.ranks[:, self.sources.index(source)] >= 0

    def tags(self, i: int) -> list[str]:
        """The sources that returned item `i` (position in `items`)."""
        return [s for j, s in enumerate(self.sources) if self.ranks[i, j] >= 0]

    def score_of(self, source: str) -> np.ndarray:
        """Column of one source's scores (NaN where absent)."""
        return self.scores[:, self.sources.index(source)]

    def feature_matrix(self) -> tuple[list[str], np.ndarray]:
        """(names, (n, f) float32 matrix) of per-source scores, ranks (as 1-based, 0 = absent),
        a found-by count and the extra features — what a learned ranker reads."""
        names = [f"{s}.score" for s in self.sources] + [f"{s}.rank" for s in self.sources] + ["n_sources"]
        cols = [self.scores, (self.ranks + 1).astype(np.float32), (self.ranks >= 0).sum(axis=1, keepdims=True)]
        for name, arr in self.features.items():
            names.append(name)
            cols.append(np.asarray(arr, dtype=np.float32)[:, None])
        return names, np.hstack([np.asarray(c, dtype=np.float32) for c in cols])


def union(results: Sequence[Candidates], *, quotas: Mapping[str, int] | None = None, k: int | None = None,
          fill: bool = True) -> CandidateSet:
    """Merge several sources' candidates (see the module docstring).

    `quotas` maps source names to their guaranteed share (default: everyone 0 — pure round-robin
    fill); `k` is the total (default: the sum of quotas, or all distinct items without quotas).
    With ``fill=False``, only quotas are taken.
    """
    names = tuple(r.source for r in results)
    if len(set(names)) != len(names):
        raise ConfigError(f"two results carry the same source tag: {names}; give each source its own name")
    quotas = dict(quotas or {})
    unknown = set(quotas) - set(names)
    if unknown:
        raise ConfigError(f"quotas name unknown sources {sorted(unknown)}; the results come from {list(names)}")
    if any(q < 0 for q in quotas.values()):
        raise ConfigError("quotas must not be negative")
    if k is None:
        k = sum(quotas.values()) if quotas else sum(len(r) for r in results)
    n_src = len(results)
    taken: dict[int, int] = {}  # item -> position
    order: list[int] = []
    origin: list[int] = []
    cursor = [0] * n_src

    def take_next(j: int) -> bool:
        items = results[j].items
        while cursor[j] < len(items):
            it = int(items[cursor[j]])
            cursor[j] += 1
            if it not in taken:
                taken[it] = len(order)
                order.append(it)
                origin.append(j)
                return True
        return False

    for j, r in enumerate(results):
        for _ in range(min(quotas.get(r.source, 0), k - len(order))):
            if not take_next(j):
                break
    if fill:
        active = list(range(n_src))
        while len(order) < k and active:
            still = []
            for j in active:
                if len(order) >= k:
                    break
                if take_next(j):
                    still.append(j)
            active = still
    items = np.asarray(order, dtype=np.int64)
    n = len(items)
    scores = np.full((n, n_src), np.nan, dtype=np.float32)
    ranks = np.full((n, n_src), -1, dtype=np.int32)
    features: dict[str, np.ndarray] = {}
    for j, r in enumerate(results):
        if not len(r) or not n:
            for fname in r.features:
                features[f"{r.source}.{fname}"] = np.full(n, np.nan, dtype=np.float32)
            continue
        pos = np.fromiter((taken.get(int(i), -1) for i in r.items), dtype=np.int64, count=len(r))
        hit = pos >= 0
        # a source listing an item twice keeps its best (first) rank
        first = np.zeros(len(r), dtype=bool)
        _, idx = np.unique(pos[hit], return_index=True)
        first[np.flatnonzero(hit)[idx]] = True
        scores[pos[first], j] = r.scores[first]
        ranks[pos[first], j] = np.flatnonzero(first).astype(np.int32)
        for fname, arr in r.features.items():
            col = np.full(n, np.nan, dtype=np.float32)
            col[pos[first]] = np.asarray(arr, dtype=np.float32)[first]
            features[f"{r.source}.{fname}"] = col
    return CandidateSet(items, names, scores, ranks, np.asarray(origin, dtype=np.int8), features)


class UnionRetriever:
    """Several sources behind one call: each source is asked for ``fetch[name]`` items (default: its
    quota, at least `min_fetch`), then `union` merges them with `quotas` into at most `k` items."""

    def __init__(self, sources: Sequence[CandidateSource], quotas: Mapping[str, int], *, k: int | None = None,
                 fetch: Mapping[str, int] | None = None, min_fetch: int = 50) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ConfigError(f"two sources share a name: {names}")
        unknown = set(quotas) - set(names)
        if unknown:
            raise ConfigError(f"quotas name unknown sources {sorted(unknown)}; sources: {names}")
        self.sources = list(sources)
        self.quotas = dict(quotas)
        self.k = int(k if k is not None else sum(self.quotas.values()))
        self.fetch = {s.name: max(min_fetch, self.quotas.get(s.name, 0)) for s in self.sources}
        self.fetch.update(fetch or {})

    def retrieve(self, query: Query, k: int | None = None) -> CandidateSet:
        results = [s.retrieve(query, self.fetch[s.name]) for s in self.sources]
        return union(results, quotas=self.quotas, k=self.k if k is None else k)

    def fill_scores(self, query: Query, cands: CandidateSet) -> CandidateSet:
        """Ask every source for its score of the candidates it did not return (the `score` hook)."""
        scores = cands.scores.copy()
        for j, s in enumerate(self.sources):
            missing = np.isnan(scores[:, j])
            if missing.any():
                scores[missing, j] = s.score(query, cands.items[missing])
        return CandidateSet(cands.items, cands.sources, scores, cands.ranks, cands.origin, cands.features)


def describe(cands: CandidateSet) -> dict[str, Any]:
    """Counts per source: taken, returned, returned only by it."""
    found = cands.ranks >= 0
    only = found & (found.sum(axis=1, keepdims=True) == 1)
    return {s: {"taken": int((cands.origin == j).sum()), "returned": int(found[:, j].sum()),
                "only_here": int(only[:, j].sum())} for j, s in enumerate(cands.sources)}


__all__ = ["CandidateSet", "UnionRetriever", "describe", "union"]
