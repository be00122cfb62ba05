"""Diversity re-rankers with one knob each: MMR and calibrated re-ranking (Steck 2018).

- **MMR** (maximal marginal relevance, Carbonell & Goldstein 1998) builds the list greedily,
  each time taking the item with the highest ``λ·rel(i) − (1−λ)·max_{j chosen} sim(i, j)``.
  λ = 1 is the relevance order; λ = 0 takes, at every step, the item least similar to what is
  already in the list (ties go to the more relevant item).
- **Calibrated re-ranking** (H. Steck, "Calibrated recommendations", RecSys 2018) builds the list
  greedily maximising ``(1−λ)·Σ rel(i) − λ·KL(p ‖ q̃)``, where p is the user's category
  distribution (from their history), q the category distribution of the list and
  q̃ = (1−α)·q + α·p (α = 0.01 keeps the divergence finite). As in the paper, λ = 0 is the
  relevance order and larger λ makes the list's mix of categories closer to the user's.

Relevance is min-max scaled to [0, 1] over the candidates before either trade-off, so λ means the
same thing whatever the scorer's scale.

Similarity for MMR comes from item vectors (cosine), from category paths (the share of leading
levels two paths have in common: ``home/kitchen/mugs`` and ``home/kitchen/pans`` are 2/3 alike) or
from a precomputed matrix. Category paths are turned into per-level integer codes by
`category_codes`, which the business-rules engine uses too.

The greedy loops are written as small state objects (`MMRState`, `CalibrationState`) with
``gains()`` and ``add(i)``, so the rules engine can interleave them with caps and reserved slots;
`mmr_rerank` and `calibrated_rerank` are the standalone functions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from tastemaker.errors import ConfigError

SEPARATOR = "/"
MAX_DEPTH = 8


# --- category paths as per-level codes ------------------------------------------------------------

class _CategoryTable:
    """Interns category paths: each path gets a row of codes, one per level prefix.

    ``home/kitchen/mugs`` → codes of ``home``, ``home/kitchen``, ``home/kitchen/mugs``, then -1.
    Two items share their first l levels exactly when their codes at level l are equal. Paths
    deeper than `MAX_DEPTH` levels are cut there. The table only grows (categories of a catalogue
    are a bounded set); lookups never add to it.
    """

    def __init__(self) -> None:
        self._prefix_ids: dict[str, int] = {}
        self._path_rows: dict[str, int] = {"": 0}
        self._rows = np.full((64, MAX_DEPTH), -1, dtype=np.int32)
        self._depths = np.zeros(64, dtype=np.int8)
        self._n_rows = 1  # row 0: the empty / missing path
        self._lock = threading.Lock()

    @staticmethod
    def normalise(path: str) -> str:
        return SEPARATOR.join(p for p in str(path).strip().split(SEPARATOR) if p)

    def _add_path(self, path: str) -> int:
        with self._lock:
            row = self._path_rows.get(path)
            if row is not None:
                return row
            parts = self.normalise(path).split(SEPARATOR)[:MAX_DEPTH] if path else []
            codes = []
            for i in range(len(parts)):
                prefix = SEPARATOR.join(parts[: i + 1])
                code = self._prefix_ids.get(prefix)
                if code is None:
                    code = len(self._prefix_ids)
                    self._prefix_ids[prefix] = code
                codes.append(code)
            if self._n_rows == len(self._rows):
                grown = np.full((2 * len(self._rows), MAX_DEPTH), -1, dtype=np.int32)
                grown[: self._n_rows] = self._rows
                self._rows = grown
                depths = np.zeros(2 * len(self._depths), dtype=np.int8)
                depths[: self._n_rows] = self._depths
                self._depths = depths
            row = self._n_rows
            self._rows[row, : len(codes)] = codes
            self._depths[row] = len(codes)
            self._n_rows += 1
            self._path_rows[path] = row
            return row

    def rows_of(self, paths: Iterable[str]) -> np.ndarray:
        get = self._path_rows.get
        rows = [get(p) for p in paths]
        if None in rows:
            rows = [r if r is not None else self._add_path(p) for r, p in zip(rows, paths, strict=True)]
        return np.asarray(rows, dtype=np.intp)

    def codes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        table, depths = self._rows, self._depths  # read once: a concurrent grow swaps whole arrays
        return table[rows], depths[rows].astype(np.int32)

    def prefix_code(self, prefix: str, *, add: bool = False) -> tuple[int, int]:
        """(code, depth) of a category prefix; code -1 when no item ever had it (and not `add`)."""
        parts = self.normalise(prefix).split(SEPARATOR)[:MAX_DEPTH]
        norm = SEPARATOR.join(parts)
        depth = len(parts) if norm else 0
        code = self._prefix_ids.get(norm)
        if code is None and add and norm:
            row = self._add_path(norm)
            code = int(self._rows[row, depth - 1])
        return (-1 if code is None else int(code)), depth


CATEGORIES = _CategoryTable()


def category_codes(paths: Sequence[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-level codes (n, MAX_DEPTH) int32, -1 past the path's depth, and the depths (n,)."""
    seq = paths.tolist() if isinstance(paths, np.ndarray) else list(paths)
    return CATEGORIES.codes(CATEGORIES.rows_of(["" if p is None else str(p) for p in seq]))


def codes_at_depth(codes: np.ndarray, depths: np.ndarray, depth: int) -> np.ndarray:
    """The code of each path cut at `depth` levels (a shallower path keeps its own last level)."""
    level = np.minimum(depths, depth) - 1
    out = codes[np.arange(len(codes)), np.maximum(level, 0)]
    return np.where(level >= 0, out, -1)


# --- similarity rows ------------------------------------------------------------------------------

class VectorSimilarity:
    """Cosine similarity between item vectors (rows are L2-normalised once)."""

    def __init__(self, vectors: np.ndarray) -> None:
        v = np.asarray(vectors, dtype=np.float64)
        if v.ndim != 2:
            raise ValueError(f"item vectors must be a 2-d array (items × dims), got shape {v.shape}")
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        self.v = v / np.where(norms > 0, norms, 1.0)

    def row(self, j: int) -> np.ndarray:
        return self.v @ self.v[j]


class CategorySimilarity:
    """Share of leading category levels two items have in common (0 for unknown categories)."""

    def __init__(self, codes: np.ndarray, depths: np.ndarray) -> None:
        self.codes = codes
        self.depths = depths
        self._levels = np.ascontiguousarray(codes.T)  # (levels, n): one comparison per level
        self._inv: dict[int, np.ndarray] = {}

    @classmethod
    def from_paths(cls, paths: Sequence[str] | np.ndarray) -> CategorySimilarity:
        return cls(*category_codes(paths))

    def row(self, j: int) -> np.ndarray:
        dj = int(self.depths[j])
        if dj == 0:
            return np.zeros(len(self.codes))
        inv = self._inv.get(dj)
        if inv is None:
            inv = self._inv[dj] = 1.0 / np.maximum(self.depths, dj)
        # codes are of whole prefixes, so the levels that match are exactly the leading shared ones
        levels, mine = self._levels, self.codes[j]
        shared = (levels[0] == mine[0]) * inv
        for lv in range(1, dj):
            shared += (levels[lv] == mine[lv]) * inv
        return shared


def category_similarity_matrix(codes: np.ndarray, depths: np.ndarray) -> np.ndarray:
    """(n, n) `CategorySimilarity` between every pair, for n category code rows (float32)."""
    n = len(codes)
    shared = np.zeros((n, n), dtype=np.int8)
    for lv in range(int(depths.max()) if n else 0):
        col = np.where(codes[:, lv] >= 0, codes[:, lv], -1 - np.arange(n))  # past its depth an item matches nothing
        shared += (col[:, None] == col[None, :]).view(np.int8)
    np.fill_diagonal(shared, depths)  # an item shares all its own levels (and none past its depth)
    inv = (1.0 / np.maximum(depths, 1)).astype(np.float32)
    return shared * np.minimum(inv[:, None], inv[None, :])


class MatrixSimilarity:
    """A precomputed (n, n) similarity matrix."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.m = np.asarray(matrix)
        if self.m.dtype.kind != "f":
            self.m = self.m.astype(np.float64)

    def row(self, j: int) -> np.ndarray:
        return self.m[j]


def minmax(x: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] (all zeros when the values are all equal)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return x.copy()
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _check_lambda(lam: float, what: str) -> float:
    lam = float(lam)
    if not 0.0 <= lam <= 1.0:
        raise ConfigError(f"{what} lambda must be in [0, 1], got {lam!r}")
    return lam


# --- MMR --------------------------------------------------------------------------------------------

class MMRState:
    """Greedy MMR over n items: ``gains()`` for every item, ``add(j)`` after choosing j."""

    def __init__(self, relevance: np.ndarray, similarity, lam: float) -> None:
        self.lam = _check_lambda(lam, "MMR")
        self.rel = minmax(relevance)
        self.sim = similarity
        self._lrel = self.lam * self.rel
        self._pen: np.ndarray | None = None  # (1 − λ) · max similarity to the chosen items
        # a whole matrix is scaled once; rows computed on demand are scaled as they come
        self._scaled = (1.0 - self.lam) * similarity.m if isinstance(similarity, MatrixSimilarity) else None

    def add(self, j: int) -> None:
        row = self._scaled[j] if self._scaled is not None else (1.0 - self.lam) * self.sim.row(j)
        if self._pen is None:
            self._pen = row.astype(np.float64)
        else:
            np.maximum(self._pen, row, out=self._pen)

    def max_similarity(self, j: int) -> float:
        if self._pen is None or self.lam == 1.0:
            return 0.0
        return float(self._pen[j] / (1.0 - self.lam))

    def gains(self) -> np.ndarray:
        return self._lrel if self._pen is None else self._lrel - self._pen


def _similarity(n: int, vectors, categories, similarity):
    given = [x is not None for x in (vectors, categories, similarity)]
    if sum(given) != 1:
        raise ValueError("pass exactly one of vectors=, categories= or similarity=")
    if vectors is not None:
        sim = VectorSimilarity(vectors)
        m = len(sim.v)
    elif categories is not None:
        sim = CategorySimilarity.from_paths(categories)
        m = len(sim.codes)
    else:
        sim = MatrixSimilarity(similarity)
        m = sim.m.shape[0]
        if sim.m.shape != (n, n):
            raise ValueError(f"similarity must be ({n}, {n}), got {sim.m.shape}")
    if m != n:
        raise ValueError(f"{m} item descriptions for {n} relevance scores")
    return sim


def mmr_rerank(relevance: np.ndarray, k: int, lam: float, *, vectors: np.ndarray | None = None,
               categories: Sequence[str] | None = None, similarity: np.ndarray | None = None) -> np.ndarray:
    """Indices of the top-k by maximal marginal relevance.

    Args:
        relevance: (n,) relevance scores (any scale; min-max scaled internally).
        k: list length.
        lam: 1 = relevance order, 0 = most diverse (each pick least similar to the chosen ones).
        vectors / categories / similarity: exactly one — item vectors (cosine), category paths
            (shared leading levels) or an (n, n) similarity matrix.
    """
    rel = np.asarray(relevance, dtype=np.float64)
    n = len(rel)
    state = MMRState(rel, _similarity(n, vectors, categories, similarity), lam)
    order = np.argsort(-rel, kind="stable")  # ties in the gains go to the more relevant item
    left = np.ones(n, dtype=bool)
    out = []
    for _ in range(min(k, n)):
        g = np.where(left, state.gains(), -np.inf)[order]
        j = int(order[int(np.argmax(g))])
        out.append(j)
        left[j] = False
        state.add(j)
    return np.asarray(out, dtype=np.intp)


# --- calibration ------------------------------------------------------------------------------------

class CalibrationState:
    """Greedy calibrated re-ranking (Steck 2018) over n items.

    `item_dist` is (n, G): each item's distribution over G categories (rows sum to 1; one-hot for a
    single category); `target` is the user's distribution p over the same G categories. When every
    item has at most one category the gains are computed per category (G + 1 values) instead of
    per item.
    """

    def __init__(self, relevance: np.ndarray, item_dist: np.ndarray, target: np.ndarray, lam: float,
                 alpha: float = 0.01) -> None:
        self.lam = _check_lambda(lam, "calibration")
        if not 0.0 < alpha < 1.0:
            raise ConfigError(f"calibration alpha must be in (0, 1), got {alpha!r}")
        p = np.asarray(target, dtype=np.float64)
        if p.ndim != 1 or p.sum() <= 0 or (p < 0).any():
            raise ValueError("the target category distribution must be non-negative with a positive sum")
        p = p / p.sum()
        support = p > 0  # KL(p || q) only sums over categories the user has
        self.p = p[support]
        self.logp = np.log(self.p)
        self.dist = np.asarray(item_dist, dtype=np.float64)[:, support]
        self.alpha = float(alpha)
        self.rel = minmax(relevance)
        self._lrel = (1.0 - self.lam) * self.rel
        self.q_sum = np.zeros(len(self.p))
        self.m = 0
        d = self.dist
        self._group: np.ndarray | None = None
        if len(d) and ((d == 0) | (d == 1)).all() and (d.sum(axis=1) <= 1).all():
            # one category per item: group g (or G for "none of the user's categories")
            self._group = np.where(d.any(axis=1), d.argmax(axis=1), d.shape[1])
            self._steps = np.vstack([np.eye(d.shape[1]), np.zeros(d.shape[1])])

    def kl(self, q_sum: np.ndarray, m: int) -> np.ndarray:
        q = q_sum / max(m, 1)
        qt = (1.0 - self.alpha) * q + self.alpha * self.p
        return (self.p * (self.logp - np.log(qt))).sum(axis=-1)

    def add(self, j: int) -> None:
        self.q_sum = self.q_sum + self.dist[j]
        self.m += 1

    def current_kl(self) -> float:
        return float(self.kl(self.q_sum, self.m))

    def gains(self) -> np.ndarray:
        if self._group is not None:
            kl = self.kl(self.q_sum[None, :] + self._steps, self.m + 1)[self._group]
        else:
            kl = self.kl(self.q_sum[None, :] + self.dist, self.m + 1)
        return self._lrel - self.lam * kl


def calibrated_rerank(relevance: np.ndarray, item_dist: np.ndarray, target: np.ndarray, k: int, lam: float,
                      *, alpha: float = 0.01) -> np.ndarray:
    """Indices of the top-k by calibrated re-ranking (Steck 2018).

    Args:
        relevance: (n,) scores (min-max scaled internally).
        item_dist: (n, G) each item's distribution over G categories (e.g. normalised multi-hot genres).
        target: (G,) the user's category distribution (e.g. from their history), any positive scale.
        k: list length.
        lam: 0 = relevance order, 1 = closest category mix to `target`.
        alpha: Steck's smoothing of the list distribution towards the target.
    """
    rel = np.asarray(relevance, dtype=np.float64)
    if np.asarray(item_dist).shape[0] != len(rel):
        raise ValueError(f"item_dist has {np.asarray(item_dist).shape[0]} rows for {len(rel)} items")
    state = CalibrationState(rel, item_dist, target, lam, alpha)
    order = np.argsort(-rel, kind="stable")
    left = np.ones(len(rel), dtype=bool)
    out = []
    for _ in range(min(k, len(rel))):
        g = np.where(left, state.gains(), -np.inf)[order]
        j = int(order[int(np.argmax(g))])
        out.append(j)
        left[j] = False
        state.add(j)
    return np.asarray(out, dtype=np.intp)


def category_distribution(codes: np.ndarray, profile: Mapping[str, float], depth: int
                          ) -> tuple[np.ndarray, np.ndarray] | None:
    """One-hot item distributions and the target for calibration at a category depth.

    `codes` are the items' codes cut at `depth` (`codes_at_depth`); `profile` maps category paths
    to weights (e.g. purchase counts). Profile paths are cut at `depth` and merged. Returns
    (item_dist (n, G), target (G,)) or None when no profile category is known.
    """
    weights: dict[int, float] = {}
    for path, w in profile.items():
        w = float(w)
        if not w > 0:
            continue
        norm = CATEGORIES.normalise(path)
        cut = SEPARATOR.join(norm.split(SEPARATOR)[:depth])
        code, _ = CATEGORIES.prefix_code(cut)
        if code >= 0:
            weights[code] = weights.get(code, 0.0) + w
    if not weights:
        return None
    support = np.fromiter(weights.keys(), dtype=np.int64, count=len(weights))
    target = np.fromiter(weights.values(), dtype=np.float64, count=len(weights))
    item_dist = (codes[:, None] == support[None, :]).astype(np.float64)
    return item_dist, target
