"""The ``retail-temporal`` protocol: top-N scoring of a time-split shop (UCI Online Retail).

Protocol (issue 5, the ``retail-rank`` bench):

- data: Online Retail cleaned as `tastemaker.data.retail.load_online_retail` does (396,241 rows);
- test window: the last 30 calendar days (from 2011-11-10 00:00); training: everything before;
  validation: the same split made inside training (window from 2011-10-11) — every setting is
  chosen there, never on the test window;
- users: at least one purchase in training and one in the window;
- relevant: the distinct products a user bought in the window — products bought before count
  (repurchase is the signal in retail), products never seen in training stay in the denominator;
- candidates: the products seen in training, already-bought ones included;
- metrics: NDCG@10, recall@20, hit@10, precision@10, MAP@10 (`tastemaker.evaluation.metrics`),
  revenue-weighted recall@20 (the share of the user's window spend on the recommended products,
  `revenue_recall_at_k`) and coverage@10 (distinct recommended products / candidate products).

`retail_metrics(recommended, split)` scores one (n_users, k) matrix of item indices, row j for
user ``split.users[j]``; `evaluate_retail(recommend, split)` calls a recommend function and adds
95 % bootstrap intervals. This protocol does not fit `tastemaker.evaluation.protocols.evaluate`
(which fits a `Recommender` and excludes seen items); `PROTOCOL` describes it for listings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from tastemaker.errors import DataError
from tastemaker.evaluation.metrics import _as_recommended, catalog_coverage, ranking_metrics
from tastemaker.evaluation.stats import bootstrap_ci

NAME = "retail-temporal"
DESCRIPTION = ("Online Retail, cleaned; test = the last 30 days (from 2011-11-10), train = before, validation = the "
               "same split inside training; users with purchases in both; relevant = distinct products bought in "
               "the window (repeats count, unseen products stay in the denominator); candidates = products seen in "
               "training, already-bought included")
HEADLINE: tuple[str, ...] = ("ndcg@10", "recall@20", "hit@10", "precision@10", "map@10", "revenue_recall@20",
                             "coverage@10")
"""The protocol's metrics, in the order the bench prints them."""
K_MAX = 20


@dataclass(frozen=True)
class RetailProtocol:
    """What ``retail-temporal`` is, for listings next to `tastemaker.evaluation.protocols.PROTOCOLS`."""

    name: str = NAME
    kind: str = "topn"
    description: str = DESCRIPTION
    k: int = 10
    window_days: int = 30
    metrics: tuple[str, ...] = HEADLINE


PROTOCOL = RetailProtocol()


def revenue_recall_at_k(recommended: np.ndarray, spend: sp.spmatrix, k: int) -> np.ndarray:
    """Per-user share of the window spend that falls on the first k recommended items.

    `recommended` is (n_users, ≥ k) item indices (-1 = empty slot, each item at most once per
    row); `spend` is (n_users, n_items) revenue, row j for row j of `recommended`. NaN for users
    who spent nothing."""
    rec = np.asarray(recommended, dtype=np.int64)
    if rec.ndim != 2:
        raise DataError(f"recommended must be a 2-D (users, k) array, got shape {rec.shape}")
    m = sp.csr_matrix(spend, dtype=np.float64)
    if m.shape[0] != rec.shape[0]:
        raise DataError(f"{rec.shape[0]} recommendation rows but spend has {m.shape[0]} rows")
    # indices inside the item space, no item twice in a row (it would count its spend twice)
    rec = _as_recommended(rec, m.shape[1], k)
    total = np.asarray(m.sum(axis=1)).ravel()
    rows = np.repeat(np.arange(rec.shape[0]), rec.shape[1])
    cols = rec.ravel()
    ok = cols >= 0
    got = np.zeros(rec.size)
    got[ok] = np.asarray(m[rows[ok], cols[ok]]).ravel()
    hit = got.reshape(rec.shape).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hit / np.where(total > 0, total, 1.0), np.nan)


def retail_metrics(recommended: np.ndarray, split: Any, *, per_user: bool = False,
                   ) -> dict[str, float] | tuple[dict[str, float], dict[str, np.ndarray]]:
    """The protocol's metrics for `recommended` ((len(split.users), ≥ 20) item indices, best first,
    -1 padded), row j for user ``split.users[j]``. With `per_user`, also the per-user arrays."""
    users = split.users
    rec = np.asarray(recommended, dtype=np.int64)
    if rec.ndim != 2 or rec.shape[0] != len(users):
        raise DataError(f"recommended has shape {rec.shape}; expected ({len(users)}, k): one row per evaluation user")
    if rec.shape[1] < K_MAX:
        rec = np.hstack([rec, np.full((len(rec), K_MAX - rec.shape[1]), -1, dtype=np.int64)])
    rel = split.relevant()[users]
    spend = split.spend()[users]
    pu = ranking_metrics(rec, rel, (10, 20), ("ndcg", "recall", "hr", "precision", "map"))
    out = {"ndcg@10": pu["ndcg@10"], "recall@20": pu["recall@20"], "hit@10": pu["hr@10"],
           "precision@10": pu["precision@10"], "map@10": pu["map@10"],
           "revenue_recall@20": revenue_recall_at_k(rec, spend, 20)}
    means = {name: float(np.nanmean(v)) for name, v in out.items()}
    means["coverage@10"] = catalog_coverage(rec, int(rel.shape[1]), 10) * rel.shape[1] / max(
        int(split.candidate_items.sum()), 1)
    return (means, out) if per_user else means


def evaluate_retail(recommend: Callable[[np.ndarray], np.ndarray], split: Any, *, bootstrap: int = 1000,
                    ) -> dict[str, Any]:
    """Call ``recommend(users) -> (len(users), 20) item indices`` on the split's evaluation users and
    score it: ``{"metrics", "ci95", "predict_seconds"}`` (bootstrap 95 % intervals over users)."""
    t0 = time.perf_counter()
    rec = recommend(split.users)
    seconds = time.perf_counter() - t0
    means, per_user = retail_metrics(rec, split, per_user=True)
    ci = {}
    if bootstrap:
        for name, values in per_user.items():
            est = bootstrap_ci(values[~np.isnan(values)], n_resamples=bootstrap)
            ci[name] = [est.low, est.high]
    return {"metrics": means, "ci95": ci, "predict_seconds": seconds, "recommended": rec}


def top_items(scores: np.ndarray, k: int = K_MAX, allowed: np.ndarray | None = None) -> np.ndarray:
    """(n_users, k) indices of the best scores per row (ties: lower index), -1 where fewer are finite/allowed."""
    s = np.array(scores, dtype=np.float64, copy=True)
    if allowed is not None:
        s[:, ~np.asarray(allowed, dtype=bool)] = -np.inf
    s[~np.isfinite(s)] = -np.inf
    kk = min(k, s.shape[1])
    part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
    vals = np.take_along_axis(s, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    idx = np.where(np.isfinite(np.take_along_axis(vals, order, axis=1)), idx, -1)
    if kk < k:
        idx = np.hstack([idx, np.full((len(idx), k - kk), -1, dtype=idx.dtype)])
    return idx.astype(np.int64)


__all__ = ["DESCRIPTION", "HEADLINE", "NAME", "PROTOCOL", "RetailProtocol", "evaluate_retail", "retail_metrics",
           "revenue_recall_at_k", "top_items"]
