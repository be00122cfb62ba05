"""Offline evaluation metrics: rating error, top-k ranking accuracy, AUC and beyond-accuracy measures.

Every metric is a plain function of (recommendations, truth), vectorised over users with numpy and
scipy so that 10^5 users × k = 100 take well under a second per metric.

Conventions shared by the ranking metrics
-----------------------------------------
``recommended``
    integer array (n_users, k_max) of item indices, best first, padded with -1 where a user got
    fewer than k_max items. A -1 is an empty slot: it is never a hit, but it still takes its rank.
    An item may appear at most once in a row.
``relevant``
    scipy sparse matrix (n_users, n_items), row j belonging to row j of ``recommended``. Its stored
    entries that are > 0 are the relevant items; the value is the item's gain (graded relevance).
    Stored zeros and negative values are not relevant.

``k``
    the cut-off. When k exceeds the list length (or a row is padded), the missing slots count as
    misses: precision@k still divides by k and nDCG/AP still normalise by min(k, n_relevant), so
    a short list is never rewarded for being short.

Per-user metrics return float64 arrays of length n_users, NaN for users without relevant items,
so that averaging with ``np.nanmean`` (or ``stats.bootstrap_ci``) skips them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tastemaker.errors import DataError

__all__ = [
    "RANKING_METRICS",
    "auc",
    "average_precision_at_k",
    "catalog_coverage",
    "gini_index",
    "hit_rate_at_k",
    "intra_list_diversity",
    "mae",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "reciprocal_rank_at_k",
    "rmse",
]

#: names accepted by `ranking_metrics`, in their default order
RANKING_METRICS = ("precision", "recall", "ndcg", "map", "mrr", "hr")

# dense cells one AUC chunk may hold (rows × items); bounds memory to a few hundred MB
_AUC_CHUNK_CELLS = 4_000_000


# --- rating error ---------------------------------------------------------------------------------

def _error_inputs(predicted, actual) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if p.shape != a.shape:
        raise DataError(f"predicted has shape {p.shape} but actual has shape {a.shape}",
                        hint="pass one prediction per actual rating, in the same order")
    if p.size == 0:
        raise DataError("no ratings to compare (empty arrays)", hint="evaluate on a non-empty test set")
    for name, x in (("predicted", p), ("actual", a)):
        bad = ~np.isfinite(x)
        if bad.any():
            raise DataError(f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or inf), first at "
                            f"position {int(np.flatnonzero(bad.ravel())[0])}",
                            hint="use the model's fallback prediction for pairs it cannot score")
    return p, a


def rmse(predicted, actual) -> float:
    """Root mean squared error of rating predictions.

    Raises `DataError` (a ValueError) when the shapes differ, the arrays are empty or hold NaN/inf.
    """
    p, a = _error_inputs(predicted, actual)
    return float(np.sqrt(np.mean((p - a) ** 2)))


def mae(predicted, actual) -> float:
    """Mean absolute error of rating predictions (same input rules as `rmse`)."""
    p, a = _error_inputs(predicted, actual)
    return float(np.mean(np.abs(p - a)))


# --- input checks shared by the top-k metrics ------------------------------------------------------

def _check_k(k) -> int | None:
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer (or None for the whole list), got {k!r}")
    return int(k)


def _as_recommended(recommended, n_items: int | None = None, k: int | None = None) -> np.ndarray:
    """Validate the (n_users, k_max) item-index matrix and return its first k columns."""
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise DataError(f"recommended must be 2-D (n_users, k), got {rec.ndim}-D with shape {rec.shape}",
                        hint="pass one row of item indices per user, padded with -1")
    if rec.size and not np.issubdtype(rec.dtype, np.integer):
        raise DataError(f"recommended must hold integer item indices, got dtype {rec.dtype}",
                        hint="use the indices from recommend_indices(), padded with -1")
    rec = rec.astype(np.int64, copy=False)
    if k is not None:
        rec = rec[:, :k]
    if rec.size:
        low = int(rec.min())
        if low < -1:
            raise DataError(f"recommended holds the index {low}; item indices are >= 0 and -1 marks padding")
        high = int(rec.max())
        if n_items is not None and high >= n_items:
            raise DataError(f"recommended holds item index {high} but the catalogue has {n_items} items",
                            hint="recommendations and truth must share the same item vocabulary")
        if rec.shape[1] > 1:
            s = np.sort(rec, axis=1)
            dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
            if dup.any():
                row = int(np.flatnonzero(dup.any(axis=1))[0])
                item = int(s[row, 1:][dup[row]][0])
                raise DataError(f"recommended row {row} lists item {item} more than once",
                                hint="each item may appear at most once in a user's list")
    return rec


def _as_relevant(relevant, n_users: int) -> sp.csr_array:
    """Canonical CSR with only the relevant (> 0) entries, sorted indices, float64 gains."""
    if sp.issparse(relevant):
        rel = sp.csr_array(relevant, dtype=np.float64, copy=True)
    else:
        dense = np.asarray(relevant)
        if dense.ndim != 2:
            raise DataError(f"relevant must be a 2-D (n_users, n_items) sparse matrix, got shape {dense.shape}")
        rel = sp.csr_array(dense.astype(np.float64))
    if rel.shape[0] != n_users:
        raise DataError(f"relevant has {rel.shape[0]} rows but recommended has {n_users}",
                        hint="row j of relevant must be the truth for row j of recommended")
    rel.sum_duplicates()
    if not np.isfinite(rel.data).all():
        raise DataError("relevant holds non-finite gains (NaN or inf)", hint="store finite positive gains")
    rel.data[rel.data < 0] = 0.0
    rel.eliminate_zeros()
    rel.sort_indices()
    return rel


@dataclass
class _Ranked:
    """Gains of each recommended slot plus what the normalisers need (shared by the ranking metrics)."""

    gains: np.ndarray  # (n_users, kk) float64 gain of the item at each slot, 0 where not relevant
    n_relevant: np.ndarray  # (n_users,) int64
    relevant: sp.csr_array

    def cut(self, k: int) -> np.ndarray:
        return self.gains[:, :k]

    def finish(self, values: np.ndarray) -> np.ndarray:
        out = np.asarray(values, dtype=np.float64)
        out[self.n_relevant == 0] = np.nan
        return out


def _rank(recommended, relevant, k: int) -> _Ranked:
    rec0 = np.asarray(recommended)
    if rec0.ndim != 2:
        _as_recommended(rec0)  # raises the shape error
    n_users = rec0.shape[0]
    rel = _as_relevant(relevant, n_users)
    n_items = rel.shape[1]
    rec = _as_recommended(rec0, n_items, k)
    n_rel = np.diff(rel.indptr).astype(np.int64)
    gains = np.zeros(rec.shape, dtype=np.float64)
    if rel.nnz and rec.size:
        # one global sorted key per relevant (user, item); look every recommended slot up in it
        rel_rows = np.repeat(np.arange(n_users, dtype=np.int64), n_rel)
        rel_keys = rel_rows * n_items + rel.indices.astype(np.int64)
        valid = rec >= 0
        keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + rec
        pos = np.minimum(np.searchsorted(rel_keys, keys), rel.nnz - 1)
        hit = valid & (rel_keys[pos] == keys)
        gains[hit] = rel.data[pos[hit]]
    return _Ranked(gains, n_rel, rel)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


# --- per-user ranking metrics (computed from a _Ranked) -------------------------------------------

def _precision(r: _Ranked, k: int) -> np.ndarray:
    return r.finish(np.count_nonzero(r.cut(k), axis=1) / k)


def _recall(r: _Ranked, k: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return r.finish(np.count_nonzero(r.cut(k), axis=1) / r.n_relevant)


def _ndcg(r: _Ranked, k: int, graded: bool) -> np.ndarray:
    g = r.cut(k)
    disc = _discounts(k)
    if graded:
        dcg = g @ disc[: g.shape[1]]
        # ideal: each user's gains sorted descending, the first k of them discounted
        rel = r.relevant
        rows = np.repeat(np.arange(rel.shape[0]), r.n_relevant)
        order = np.lexsort((-rel.data, rows))
        rank_in_row = np.arange(rel.nnz) - rel.indptr[rows]
        keep = rank_in_row < k
        idcg = np.bincount(rows[keep], weights=rel.data[order][keep] * disc[rank_in_row[keep]],
                           minlength=rel.shape[0])
    else:
        dcg = (g > 0) @ disc[: g.shape[1]]
        ideal = np.concatenate(([0.0], np.cumsum(disc)))
        idcg = ideal[np.minimum(r.n_relevant, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return r.finish(dcg / idcg)


def _average_precision(r: _Ranked, k: int) -> np.ndarray:
    hits = r.cut(k) > 0
    prec_at_i = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return r.finish(np.sum(prec_at_i * hits, axis=1) / np.minimum(r.n_relevant, k))


def _reciprocal_rank(r: _Ranked, k: int) -> np.ndarray:
    hits = r.cut(k) > 0
    first = np.argmax(hits, axis=1)
    return r.finish(np.where(hits.any(axis=1), 1.0 / (first + 1.0), 0.0))


def _hit_rate(r: _Ranked, k: int) -> np.ndarray:
    return r.finish(np.any(r.cut(k) > 0, axis=1).astype(np.float64))


def precision_at_k(recommended, relevant, k: int) -> np.ndarray:
    """Per-user precision@k: relevant items among the first k recommended, divided by k.

    The denominator is always k, even when fewer than k items were recommended (padding with -1
    counts as a miss), so a short list is not rewarded for being short. NaN for users without
    relevant items.
    """
    k = _check_k(k)
    return _precision(_rank(recommended, relevant, k), k)


def recall_at_k(recommended, relevant, k: int) -> np.ndarray:
    """Per-user recall@k: relevant items among the first k recommended / the user's number of relevant items."""
    k = _check_k(k)
    return _recall(_rank(recommended, relevant, k), k)


def ndcg_at_k(recommended, relevant, k: int, *, graded: bool = False) -> np.ndarray:
    """Per-user normalised discounted cumulative gain at k.

    DCG = Σ_{rank i ≤ k} gain_i / log2(i + 1); the gain is 1 for a relevant item (default) or the
    stored value in `relevant` when ``graded=True``. IDCG is the DCG of the user's best
    min(k, n_relevant) gains placed first, so a perfect list scores 1.
    """
    k = _check_k(k)
    return _ndcg(_rank(recommended, relevant, k), k, graded)


def average_precision_at_k(recommended, relevant, k: int) -> np.ndarray:
    """Per-user average precision at k (its mean over users is MAP@k).

    AP@k = Σ_{i ≤ k, item i relevant} precision@i / min(k, n_relevant).
    """
    k = _check_k(k)
    return _average_precision(_rank(recommended, relevant, k), k)


def reciprocal_rank_at_k(recommended, relevant, k: int) -> np.ndarray:
    """Per-user reciprocal rank of the first relevant item within the top k, 0 if none (mean: MRR@k)."""
    k = _check_k(k)
    return _reciprocal_rank(_rank(recommended, relevant, k), k)


def hit_rate_at_k(recommended, relevant, k: int) -> np.ndarray:
    """Per-user hit rate at k: 1.0 if any of the first k items is relevant, else 0.0."""
    k = _check_k(k)
    return _hit_rate(_rank(recommended, relevant, k), k)


def ranking_metrics(
    recommended,
    relevant,
    k: int | Sequence[int],
    metrics: Iterable[str] = RANKING_METRICS,
    *,
    graded: bool = False,
) -> dict[str, np.ndarray]:
    """Several per-user ranking metrics at once, sharing one relevance lookup.

    `k` is one cut-off or several; `metrics` names from ("precision", "recall", "ndcg", "map",
    "mrr", "hr"). Keys are "<name>@<k>", e.g. "ndcg@10"; values per-user arrays as returned by
    the single-metric functions (`graded` applies to ndcg).
    """
    ks = [k] if isinstance(k, (int, np.integer)) else list(k)
    if not ks:
        raise ValueError("k must be a positive integer or a non-empty sequence of them")
    ks = [_check_k(x) for x in ks]
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in names if m not in RANKING_METRICS]
    if unknown:
        raise ValueError(f"unknown ranking metric(s) {unknown}; choose from {list(RANKING_METRICS)}")
    funcs = {
        "precision": _precision,
        "recall": _recall,
        "ndcg": lambda r, kk: _ndcg(r, kk, graded),
        "map": _average_precision,
        "mrr": _reciprocal_rank,
        "hr": _hit_rate,
    }
    ranked = _rank(recommended, relevant, max(ks))
    return {f"{name}@{kk}": funcs[name](ranked, kk) for kk in ks for name in names}


# --- AUC -------------------------------------------------------------------------------------------

def auc(scores, relevant, candidates=None) -> np.ndarray:
    """Per-user ROC AUC of a full score matrix.

    `scores` is (n_users, n_items); positives are the relevant items, negatives every other
    candidate. `candidates` is a boolean mask of the same shape (or None for all items): items
    outside it (e.g. the user's training items) count as neither. Ties count 1/2, via average
    ranks. NaN for a user with no positive or no negative candidate. Scores of candidates must not
    be NaN (±inf is allowed). Rows are processed in chunks to bound memory.
    """
    s_all = np.asarray(scores)
    if s_all.ndim != 2:
        raise DataError(f"scores must be 2-D (n_users, n_items), got shape {s_all.shape}")
    n_users, n_items = s_all.shape
    rel = _as_relevant(relevant, n_users)
    if rel.shape != s_all.shape:
        raise DataError(f"relevant has shape {rel.shape} but scores has shape {s_all.shape}")
    cand_all = None
    if candidates is not None:
        cand_all = np.asarray(candidates)
        if cand_all.dtype != np.bool_ or cand_all.shape != s_all.shape:
            raise DataError(f"candidates must be a boolean mask of shape {s_all.shape}, got dtype "
                            f"{cand_all.dtype} and shape {cand_all.shape}")
    out = np.full(n_users, np.nan)
    if n_users == 0 or n_items == 0:
        return out
    step = max(1, _AUC_CHUNK_CELLS // n_items)
    col = np.arange(n_items)
    for start in range(0, n_users, step):
        stop = min(start + step, n_users)
        s = np.asarray(s_all[start:stop], dtype=np.float64)
        cand = np.ones(s.shape, dtype=bool) if cand_all is None else cand_all[start:stop]
        bad = np.isnan(s) & cand
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataError(f"scores[{start + r}, {c}] is NaN for a candidate item",
                            hint="give every candidate a score, or leave it out of candidates")
        pos = (rel[start:stop].toarray() > 0) & cand
        s = np.where(cand, s, np.nan)  # NaN sorts last: non-candidates come after each row's candidates
        order = np.argsort(s, axis=1, kind="stable")
        s_sorted = np.take_along_axis(s, order, axis=1)
        pos_sorted = np.take_along_axis(pos, order, axis=1)
        # tie groups within a row: a new group starts at column 0 or where the value changes
        new = np.ones(s.shape, dtype=bool)
        new[:, 1:] = s_sorted[:, 1:] != s_sorted[:, :-1]
        new_flat = new.ravel()
        first = np.flatnonzero(new_flat)
        last = np.append(first[1:] - 1, new_flat.size - 1)
        col_flat = np.broadcast_to(col, s.shape).ravel()
        mean_rank = (col_flat[first] + col_flat[last]) / 2.0 + 1.0  # 1-based average rank of each group
        ranks = mean_rank[np.cumsum(new_flat) - 1].reshape(s.shape)
        n_pos = pos.sum(axis=1)
        n_neg = cand.sum(axis=1) - n_pos
        rank_sum = np.sum(ranks * pos_sorted, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
        out[start:stop] = np.where((n_pos > 0) & (n_neg > 0), value, np.nan)
    return out


# --- beyond accuracy -------------------------------------------------------------------------------

def _item_counts(rec: np.ndarray, n_items: int) -> np.ndarray:
    items = rec[rec >= 0]
    return np.bincount(items, minlength=n_items)


def _check_n_items(n_items) -> int:
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1:
        raise ValueError(f"n_items must be a positive integer (the catalogue size), got {n_items!r}")
    return int(n_items)


def catalog_coverage(recommended, n_items: int, k: int | None = None) -> float:
    """Share of the catalogue recommended to at least one user: distinct items in the top k / n_items."""
    n_items = _check_n_items(n_items)
    rec = _as_recommended(recommended, n_items, _check_k(k))
    return float(np.count_nonzero(_item_counts(rec, n_items)) / n_items)


def gini_index(recommended, n_items: int, k: int | None = None) -> float:
    """Gini index of how often each catalogue item appears in the top-k lists.

    With the per-item counts c sorted ascending (items never recommended count 0),
    G = Σ_i (2i − n − 1) c_i / (n Σ c), i = 1..n. 0 means every item is recommended equally
    often; the maximum (n − 1)/n means a single item fills every list. NaN when nothing is
    recommended.
    """
    n_items = _check_n_items(n_items)
    rec = _as_recommended(recommended, n_items, _check_k(k))
    counts = np.sort(_item_counts(rec, n_items)).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    i = np.arange(1, n_items + 1, dtype=np.float64)
    return float(np.sum((2 * i - n_items - 1) * counts) / (n_items * total))


def _membership(rec: np.ndarray, n_items: int) -> sp.csr_array:
    """(n_users, n_items) 0/1 matrix of the items in each user's list."""
    rows, cols = np.nonzero(rec >= 0)
    return sp.csr_array((np.ones(rows.size), (rows, rec[rows, cols])), shape=(rec.shape[0], n_items))


def intra_list_diversity(recommended, item_vectors, k: int | None = None) -> np.ndarray:
    """Per-user intra-list diversity: mean over item pairs of the list of (1 − cosine similarity).

    `item_vectors` is an (n_items, d) dense or sparse matrix of item features (e.g. genre
    multi-hot or embeddings). A zero vector has similarity 0 with every item. NaN for lists with
    fewer than 2 items. Computed without forming the pairs: for unit vectors v,
    Σ_{pairs} cos = (‖Σ v‖² − Σ ‖v‖²) / 2.
    """
    if sp.issparse(item_vectors):
        vec = sp.csr_array(item_vectors, dtype=np.float64)
        if not np.isfinite(vec.data).all():
            raise DataError("item_vectors holds non-finite values (NaN or inf)")
        norms = np.sqrt(np.asarray(vec.multiply(vec).sum(axis=1)).ravel())
    else:
        vec = np.asarray(item_vectors, dtype=np.float64)
        if vec.ndim != 2:
            raise DataError(f"item_vectors must be 2-D (n_items, d), got shape {vec.shape}")
        if not np.isfinite(vec).all():
            raise DataError("item_vectors holds non-finite values (NaN or inf)")
        norms = np.linalg.norm(vec, axis=1)
    n_items = vec.shape[0]
    rec = _as_recommended(recommended, n_items, _check_k(k))
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    unit = sp.diags_array(inv) @ vec if sp.issparse(vec) else vec * inv[:, None]
    member = _membership(rec, n_items)
    summed = member @ unit
    if sp.issparse(summed):
        sq_sum = np.asarray(summed.multiply(summed).sum(axis=1)).ravel()
    else:
        sq_sum = np.einsum("ij,ij->i", summed, summed)
    self_sim = member @ (norms > 0).astype(np.float64)  # Σ ‖v‖² over the list: 1 per non-zero vector
    m = np.count_nonzero(rec >= 0, axis=1).astype(np.float64)
    pairs = m * (m - 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_sim = (sq_sum - self_sim) / 2.0 / pairs
    return np.where(m >= 2, 1.0 - mean_sim, np.nan)


def novelty(recommended, item_popularity, n_users: int, k: int | None = None) -> np.ndarray:
    """Per-user mean self-information of the recommended items, −log2(pop_i / n_users), in bits.

    `item_popularity[i]` is the number of (training) users who interacted with item i, at most
    n_users. Items with popularity 0 are treated as seen by one user (pop 1), which gives them
    the largest finite novelty log2(n_users) instead of infinity. NaN for empty lists.
    """
    pop = np.asarray(item_popularity)
    if pop.ndim != 1:
        raise DataError(f"item_popularity must be 1-D (n_items,), got shape {pop.shape}")
    if isinstance(n_users, bool) or not isinstance(n_users, (int, np.integer)) or n_users < 1:
        raise ValueError(f"n_users must be a positive integer (users in the popularity data), got {n_users!r}")
    pop = pop.astype(np.float64)
    if not np.isfinite(pop).all() or (pop < 0).any():
        raise DataError("item_popularity must hold finite counts >= 0")
    if (pop > n_users).any():
        raise DataError(f"item_popularity holds counts up to {pop.max():g} but n_users is {n_users}",
                        hint="count distinct users per item (not interactions), out of n_users users")
    rec = _as_recommended(recommended, pop.size, _check_k(k))
    info = -np.log2(np.maximum(pop, 1.0) / n_users)
    valid = rec >= 0
    total = np.where(valid, info[np.where(valid, rec, 0)], 0.0).sum(axis=1)
    m = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m > 0, total / m, np.nan)
