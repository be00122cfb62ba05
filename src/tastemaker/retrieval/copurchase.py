"""Co-purchase ("bought together") item-to-item candidates from baskets.

Fitting counts, over baskets (invoices, orders, or sessions), how often two items are bought
together, turns counts into a similarity and keeps each item's `top_k` neighbours in a sparse
matrix (CSR, item × item). Large baskets say little about any one pair — a wholesaler's
200-line order is not 19,900 "bought together" signals — so each basket counts with weight
1 / log2(1 + size) by default (``basket_weight="inverse_log"``).

Similarities (n_i = weighted baskets holding i, c_ij = weighted baskets holding both):

- ``cosine``: c_ij / (sqrt(n_i · n_j) + shrink)  (default);
- ``conditional``: P(j | i) = c_ij / (n_i + shrink) — favours popular j;
- ``jaccard``: c_ij / (n_i + n_j − c_ij + shrink);
- ``count``: c_ij.

A query's score of item j is Σ_s w_s · sim(s, j) over its seed items s — the context items when
the query has them (product page, cart), else the user's history with recency weights
(``half_life_days``) times log(1 + value) when ``value_weight`` is on. Seeds are not excluded unless
``exclude_seeds``: in retail, what co-occurs with the rest of a user's history includes what they
buy again.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.retrieval.base import Candidates, Query, as_items, recency_weights, select_top

Similarity = Literal["cosine", "conditional", "jaccard", "count"]


class CoPurchase:
    """Item-to-item co-purchase neighbours; build with `CoPurchase.fit`."""

    def __init__(self, neighbours: sp.csr_matrix, *, half_life_days: float | None = 60.0, value_weight: bool = False,
                 exclude_seeds: bool = False, now: float | None = None, name: str = "copurchase") -> None:
        self.neighbours = sp.csr_matrix(neighbours, dtype=np.float32)
        if self.neighbours.shape[0] != self.neighbours.shape[1]:
            raise DataError(f"the neighbour matrix must be square, got {self.neighbours.shape}")
        self.half_life_days = half_life_days
        self.value_weight = value_weight
        self.exclude_seeds = exclude_seeds
        self.now = now
        self.name = name

    @classmethod
    def fit(
        cls,
        data: Interactions,
        baskets: np.ndarray | None = None,
        *,
        similarity: Similarity = "cosine",
        shrink: float = 5.0,
        top_k: int = 200,
        basket_weight: Literal["inverse_log", "none"] = "inverse_log",
        min_count: float = 0.0,
        session_gap_hours: float | None = None,
        **kwargs,
    ) -> CoPurchase:
        """Count co-occurrences in `baskets` (one basket id per row of `data`: e.g. the invoice).

        Without `baskets`, a basket is one user's events on one calendar day (UTC), or — with
        `session_gap_hours` — a run of their events with no gap longer than that. Pairs with a
        weighted count below `min_count` are dropped. Keyword arguments go to the constructor.
        """
        if similarity not in ("cosine", "conditional", "jaccard", "count"):
            raise ConfigError(f"similarity={similarity!r}; use cosine, conditional, jaccard or count")
        if top_k < 1:
            raise ConfigError(f"top_k must be at least 1 (got {top_k})")
        if basket_weight not in ("inverse_log", "none"):
            raise ConfigError(f"basket_weight={basket_weight!r}; use 'inverse_log' or 'none'")
        n = data.n_items
        basket = _baskets(data, baskets, session_gap_hours)
        # basket × item binary matrix (an item counted once per basket)
        _, b = np.unique(basket, return_inverse=True)
        x = sp.csr_matrix((np.ones(len(b), dtype=np.float32), (b, data.item_idx)), shape=(int(b.max()) + 1 if len(b)
                                                                                           else 0, n))
        x.sum_duplicates()
        x.data[:] = 1.0
        sizes = np.diff(x.indptr).astype(np.float64)
        w = 1.0 / np.log2(1.0 + sizes) if basket_weight == "inverse_log" else np.ones_like(sizes)
        w[sizes < 2] = 0.0  # a one-item basket has no pairs
        xw = sp.csr_matrix(sp.diags(w.astype(np.float32)) @ x)
        counts = sp.csr_matrix(x.T @ xw, dtype=np.float64)  # item × item weighted co-occurrence
        item_n = counts.diagonal().copy()
        counts.setdiag(0.0)
        counts.eliminate_zeros()
        if min_count > 0:
            counts.data[counts.data < min_count] = 0.0
            counts.eliminate_zeros()
        counts = counts.tocoo()
        i, j, c = counts.row, counts.col, counts.data
        if similarity == "cosine":
            s = c / (np.sqrt(item_n[i] * item_n[j]) + shrink)
        elif similarity == "conditional":
            s = c / (item_n[i] + shrink)
        elif similarity == "jaccard":
            s = c / (item_n[i] + item_n[j] - c + shrink)
        else:
            s = c
        sim = sp.csr_matrix((s.astype(np.float32), (i, j)), shape=(n, n))
        return cls(_top_per_row(sim, top_k), **kwargs)

    @property
    def n_items(self) -> int:
        return self.neighbours.shape[0]

    def similar(self, item: int, k: int = 10) -> Candidates:
        """The k items bought together with `item` most often (by similarity)."""
        return self.retrieve(Query(items=[item]), k)

    def _seed_weights(self, query: Query) -> tuple[np.ndarray, np.ndarray]:
        if len(query.items):
            seeds = as_items(query.items, self.n_items)
            return seeds, np.ones(len(seeds))
        seeds = as_items(query.history, self.n_items)
        if not len(seeds):
            return seeds, np.ones(0)
        times = query.history_times
        now = query.now if query.now is not None else (
            self.now if self.now is not None else (float(times.max()) if times is not None else 0.0))
        w = recency_weights(times, now, self.half_life_days, len(seeds))
        if self.value_weight and query.history_values is not None:
            w = w * np.log1p(np.maximum(np.asarray(query.history_values, dtype=np.float64), 0.0))
        return seeds, w

    def _scores(self, query: Query) -> tuple[np.ndarray, np.ndarray] | None:
        """(items, scores) of every item reachable from the seeds (sparse: cost follows the seeds'
        neighbour lists, not the catalogue size)."""
        seeds, w = self._seed_weights(query)
        if not len(seeds):
            return None
        uniq, inv = np.unique(seeds, return_inverse=True)
        ws = np.bincount(inv, weights=w)
        rows = self.neighbours[uniq]
        contrib = rows.data * np.repeat(ws, np.diff(rows.indptr))
        items, pos = np.unique(rows.indices, return_inverse=True)
        scores = np.bincount(pos, weights=contrib, minlength=len(items))
        if self.exclude_seeds:
            scores[np.isin(items, uniq)] = 0.0
        return items.astype(np.int64), scores

    def retrieve(self, query: Query, k: int) -> Candidates:
        found = self._scores(query)
        if found is None:
            return Candidates.empty(self.name)
        items, scores = found
        pos, vals = select_top(scores, k, query.keeps(items), positive=True)
        return Candidates(items[pos], vals, self.name)

    def score(self, query: Query, items: np.ndarray) -> np.ndarray:
        items = as_items(items, self.n_items)
        found = self._scores(query)
        if found is None:
            return np.full(len(items), np.nan, dtype=np.float32)
        reach, scores = found
        out = np.zeros(len(items), dtype=np.float32)
        if len(reach):
            pos = np.minimum(np.searchsorted(reach, items), len(reach) - 1)
            hit = reach[pos] == items
            out[hit] = scores[pos[hit]]
        return out

    def get_state(self) -> tuple[dict[str, np.ndarray], dict]:
        m = self.neighbours
        return ({"data": m.data, "indices": m.indices, "indptr": m.indptr},
                {"n_items": self.n_items, "half_life_days": self.half_life_days, "value_weight": self.value_weight,
                 "exclude_seeds": self.exclude_seeds, "now": self.now, "name": self.name})

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict) -> CoPurchase:
        n = int(meta["n_items"])
        m = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n, n))
        return cls(m, half_life_days=meta.get("half_life_days"), value_weight=bool(meta.get("value_weight")),
                   exclude_seeds=bool(meta.get("exclude_seeds")), now=meta.get("now"),
                   name=meta.get("name", "copurchase"))


def _baskets(data: Interactions, baskets: np.ndarray | None, gap_hours: float | None) -> np.ndarray:
    if baskets is not None:
        baskets = np.asarray(baskets)
        if len(baskets) != len(data):
            raise DataError(f"{len(baskets)} basket ids for {len(data)} rows: pass one per row")
        return baskets
    if data.timestamps is None:
        return data.user_idx.astype(np.int64)  # no times: a user's whole history is one basket
    ts = data.timestamps
    if gap_hours is None:
        return data.user_idx.astype(np.int64) * 1_000_000 + ts // 86_400
    order = np.lexsort((ts, data.user_idx))
    new = np.ones(len(data), dtype=bool)
    u, t = data.user_idx[order], ts[order]
    new[1:] = (u[1:] != u[:-1]) | (t[1:] - t[:-1] > gap_hours * 3600)
    out = np.empty(len(data), dtype=np.int64)
    out[order] = np.cumsum(new)
    return out


def _top_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row (ties: lower column)."""
    m = sp.csr_matrix(m)
    m.sort_indices()
    lengths = np.diff(m.indptr)
    if lengths.max(initial=0) <= k:
        return m
    rows = np.repeat(np.arange(m.shape[0]), lengths)
    order = np.lexsort((m.indices, -m.data, rows))
    rank = np.arange(len(order)) - np.repeat(m.indptr[:-1], lengths)
    keep = order[rank < k]
    keep.sort()
    out = sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)
    out.sort_indices()
    return out


__all__ = ["CoPurchase"]
