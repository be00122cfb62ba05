"""Content-similarity candidates through `tastemaker.content.ContentIndex` — the path for new SKUs.

A new item has no interactions, so no co-purchase, trending or learned embedding can surface it;
its text can. `ContentSource` searches a `ContentIndex` of item text vectors (TF-IDF or MiniLM)
with the query's context items (the product page: "similar items") or, without them, the user's
profile — the recency-weighted mean of the vectors of their history. ``only`` restricts the
answers to a subset, typically the new SKUs (``catalog.launch >= today − 30 days``, or items with
no interactions yet), so this source spends its quota where the others cannot reach. With
``only``, the subset's vectors are gathered once and a query scores just them (cheap at 2M items);
without it, every query scores the whole index exactly — for a large catalogue put dense content
vectors into an `AnnSource` instead.

Items are indices into the item space given as `items` (a `Catalog`, a `Vocabulary` or an id
array); the content index is keyed by the same external ids. When the catalogue grows (an item
upsert added to both), call `refresh(items)` to re-map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from tastemaker.content import ContentIndex, TfidfEncoder, profiles
from tastemaker.content.encoders import TextEncoder
from tastemaker.errors import DataError
from tastemaker.retrieval.base import Candidates, Query, as_items, recency_weights, select_top


class ContentSource:
    """Nearest items by text-vector cosine similarity to the context items or the user's profile."""

    def __init__(self, index: ContentIndex, items: Any, *, only: np.ndarray | None = None,
                 half_life_days: float | None = 60.0, exclude_context: bool = True, name: str = "content") -> None:
        self.index = index
        self.half_life_days = half_life_days
        self.exclude_context = exclude_context
        self.name = name
        self.refresh(items, only=only)

    @classmethod
    def from_texts(cls, texts: Sequence[str], items: Any, *, encoder: TextEncoder | None = None,
                   **kwargs: Any) -> ContentSource:
        """Fit `encoder` (default: TF-IDF of words and word pairs) on the texts of the item space, in
        its order, and index them."""
        ids = _ids_of(items)
        if len(texts) != len(ids):
            raise DataError(f"{len(texts)} texts for {len(ids)} items: pass one text per item, in item order")
        encoder = encoder or TfidfEncoder(ngrams=2, min_df=1)
        encoder.fit(list(texts))
        index = ContentIndex(encoder)
        index.add(ids.tolist(), texts=list(texts))
        return cls(index, items, **kwargs)

    def refresh(self, items: Any, *, only: np.ndarray | None = None) -> None:
        """Re-map item indices to the content index (after items were added to either)."""
        self._resolver = items
        ids = _ids_of(items)
        self._pos = self.index.positions(ids)  # content position of each item index, -1 if absent
        self._item_of_pos = np.full(len(self.index), -1, dtype=np.int64)
        has = self._pos >= 0
        self._item_of_pos[self._pos[has]] = np.flatnonzero(has)
        self._only_items = self._only_rows = None
        if only is not None:
            only = np.asarray(only, dtype=bool)
            if only.shape != (len(ids),):
                raise DataError(f"only has shape {only.shape}, expected ({len(ids)},)")
            # the subset's vectors, gathered once: a query then costs O(subset), not O(catalogue)
            self._only_items = np.flatnonzero(only & has)
            self._only_rows = self.index.matrix[self._pos[self._only_items]]
        self.only = only

    @property
    def n_items(self) -> int:
        return len(self._pos)

    def query_vector(self, query: Query) -> np.ndarray | None:
        """The (unit) search vector: mean of the context items, else the user's history profile."""
        if len(query.items):
            seeds, w = as_items(query.items, self.n_items), np.ones(len(query.items))
        elif len(query.history):
            seeds = as_items(query.history, self.n_items)
            times = query.history_times
            now = query.now if query.now is not None else (float(times.max()) if times is not None else 0.0)
            w = recency_weights(times, now, self.half_life_days, len(seeds))
        else:
            return None
        pos = self._pos[seeds]
        ok = pos >= 0
        if not ok.any():
            return None
        mix = sp.csr_matrix((w[ok], (np.zeros(int(ok.sum()), dtype=np.int64), pos[ok])), shape=(1, len(self.index)))
        prof = profiles(self.index.matrix, mix)[0]
        return prof if np.any(prof) else None

    def _allowed_positions(self, query: Query) -> np.ndarray:
        keep = query.keep_mask(self.n_items)
        keep = np.ones(self.n_items, dtype=bool) if keep is None else keep
        if self.only is not None:
            keep &= self.only
        if self.exclude_context and len(query.items):
            keep[as_items(query.items, self.n_items)] = False
        mask = np.zeros(len(self.index), dtype=bool)
        pos = self._pos[keep]
        mask[pos[pos >= 0]] = True
        return mask

    def retrieve(self, query: Query, k: int) -> Candidates:
        v = self.query_vector(query)
        if v is None or k < 1:
            return Candidates.empty(self.name)
        if self._only_items is not None:
            cand = self._only_items
            scores = np.asarray(self._only_rows @ v, dtype=np.float64).ravel()
            keep = query.keeps(cand)
            if self.exclude_context and len(query.items):
                keep &= ~np.isin(cand, query.items)
            pos, vals = select_top(scores, k, keep)
            return Candidates(cand[pos], vals, self.name)
        hits = self.index.search(v.reshape(1, -1), k, candidates=self._allowed_positions(query))[0]
        pos = self.index.positions(hits.ids)
        items = self._item_of_pos[pos]
        ok = (items >= 0) & np.isfinite(hits.scores)
        return Candidates(items[ok], hits.scores[ok], self.name)

    def score(self, query: Query, items: np.ndarray) -> np.ndarray:
        items = as_items(items, self.n_items)
        out = np.full(len(items), np.nan, dtype=np.float32)
        v = self.query_vector(query)
        if v is None:
            return out
        pos = self._pos[items]
        ok = pos >= 0
        if ok.any():
            rows = self.index.matrix[pos[ok]]
            out[ok] = np.asarray(rows @ v).ravel()
        return out


def _ids_of(items: Any) -> np.ndarray:
    ids = getattr(items, "ids", items)
    return np.asarray(ids)


__all__ = ["ContentSource"]
