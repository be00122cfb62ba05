"""Evaluation protocols, defined once by name and run the same way for our models and peers.

- ``rating-folds``: train on uN.base, test on uN.test for N = 1..5 (MovieLens 100K official
  folds); RMSE and MAE per fold and their mean.
- ``topn-u1``: train on u1.base; a u1.test rating ≥ 4 is relevant; rank every item the user did not
  rate in u1.base; users with at least one relevant item; k = 10.
- ``cold-items``: 20% of the items (seeded) are held out with all their events; each test user's
  held-out items rated ≥ 4 are relevant and only held-out items are ranked — pure collaborative
  filtering is at chance, side features (genres, year, title) must do the work.
- ``cold-users``: 20% of the users (seeded) are held out entirely; their ratings ≥ 4 are relevant
  and every training item is ranked — demographics must do the work.
- ``rating-holdout`` / ``topn-holdout`` / ``topn-temporal``: the same measurements on any data set
  (e.g. one read by the generic loader) with a seeded random 20% holdout, a per-user 20% holdout, or
  a global time cut at the last 20% of events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from tastemaker.data.datasets import Dataset
from tastemaker.data.interactions import Interactions
from tastemaker.data.splits import Split, cold_item_split, cold_user_split, random_split, temporal_split, user_holdout
from tastemaker.errors import ConfigError
from tastemaker.evaluation.metrics import (
    auc,
    catalog_coverage,
    gini_index,
    intra_list_diversity,
    mae,
    novelty,
    ranking_metrics,
    rmse,
)
from tastemaker.evaluation.stats import Estimate, bootstrap_ci
from tastemaker.models.base import Recommender
from tastemaker.progress import track

Kind = Literal["rating", "topn"]


@dataclass(frozen=True)
class Protocol:
    """A named way to split data and score a model on it."""

    name: str
    kind: Kind
    description: str
    splits: Callable[[Dataset | Interactions], list[tuple[str, Split]]]
    k: int = 10
    relevance_threshold: float | None = 4.0
    """Top-N: a test event is relevant when its value ≥ this (explicit data); None = every test event."""
    cold_items: bool = False
    """Top-N: rank only the items of the test set (the held-out, cold items)."""


def _dataset_split(names: tuple[str, ...]) -> Callable[[Dataset | Interactions], list[tuple[str, Split]]]:
    def splits(data: Dataset | Interactions) -> list[tuple[str, Split]]:
        if not isinstance(data, Dataset) or not set(names) <= set(data.splits):
            what = data.name if isinstance(data, Dataset) else "these interactions"
            raise ConfigError(f"this protocol needs the official splits {', '.join(names)}, which {what} lacks; "
                              "use rating-holdout, topn-holdout or topn-temporal")
        return [(n, data.split(n)) for n in names]

    return splits


def _interactions(data: Dataset | Interactions) -> Interactions:
    return data.interactions if isinstance(data, Dataset) else data


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("rating-folds", "rating", "MovieLens 100K official folds u1..u5: RMSE/MAE, mean of the five",
                 _dataset_split(("u1", "u2", "u3", "u4", "u5"))),
        Protocol("topn-u1", "topn", "train u1.base; u1.test ratings ≥ 4 relevant; rank all unrated items; k=10",
                 _dataset_split(("u1",))),
        Protocol("cold-items", "topn", "20% of items held out entirely (seed 0); rank only them; test ratings ≥ 4 "
                 "relevant", lambda d: [("cold-items", cold_item_split(_interactions(d), 0.2, seed=0))],
                 cold_items=True),
        Protocol("cold-users", "topn", "20% of users held out entirely (seed 0); rank all items; their ratings ≥ 4 "
                 "relevant", lambda d: [("cold-users", cold_user_split(_interactions(d), 0.2, seed=0))]),
        Protocol("rating-holdout", "rating", "seeded random 20% of ratings held out",
                 lambda d: [("holdout", random_split(_interactions(d), 0.2, seed=0))]),
        Protocol("topn-holdout", "topn", "per-user 20% holdout (seeded); holdout values ≥ 4 relevant on explicit "
                 "data, every holdout event on implicit data",
                 lambda d: [("holdout", user_holdout(_interactions(d), fraction=0.2, seed=0))]),
        Protocol("topn-temporal", "topn", "global time cut: the last 20% of events are the test set",
                 lambda d: [("temporal", temporal_split(_interactions(d), fraction=0.2))]),
    )
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ConfigError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None


@dataclass
class FoldResult:
    fold: str
    metrics: dict[str, float]
    fit_seconds: float
    predict_seconds: float


@dataclass
class EvaluationResult:
    """What one model scored on one protocol. `per_user` (top-N, first fold) feeds paired tests."""

    protocol: str
    model: str
    system: str
    params: dict[str, Any]
    metrics: dict[str, float]
    folds: list[FoldResult]
    ci: dict[str, Estimate] = field(default_factory=dict)
    per_user: dict[str, np.ndarray] = field(default_factory=dict)
    users: np.ndarray | None = None

    @property
    def fit_seconds(self) -> float:
        return float(np.mean([f.fit_seconds for f in self.folds]))

    @property
    def predict_seconds(self) -> float:
        return float(np.mean([f.predict_seconds for f in self.folds]))

    def row(self) -> dict[str, Any]:
        """One row of the bench JSON."""
        return {
            "system": self.system,
            "model": self.model,
            "params": self.params,
            "metrics": _nan_to_none(self.metrics),
            "ci95": {k: [v.low, v.high] for k, v in self.ci.items()},
            "folds": [{"fold": f.fold, **_nan_to_none(f.metrics), "fit_seconds": f.fit_seconds,
                       "predict_seconds": f.predict_seconds} for f in self.folds],
            "fit_seconds": self.fit_seconds,
            "predict_seconds": self.predict_seconds,
        }


def rating_scores(model: Recommender, test: Interactions) -> tuple[dict[str, float], np.ndarray, float]:
    """RMSE/MAE of `model` on `test` (index pairs in the model's vocabularies), the per-pair
    predictions and the seconds prediction took. Test timestamps, when present, reach time-aware
    models (a rating's time is known when it is asked for; its value is not)."""
    test = test.reindex(model.user_vocab, model.item_vocab)
    t0 = time.perf_counter()
    pred = model.predict_indices(test.user_idx, test.item_idx, test.timestamps)
    seconds = time.perf_counter() - t0
    return {"rmse": rmse(pred, test.values), "mae": mae(pred, test.values)}, pred, seconds


def relevance_matrix(test: Interactions, threshold: float | None) -> tuple[np.ndarray, sp.csr_matrix]:
    """Users with at least one relevant test event and their (users × items) relevance rows."""
    rel = test if threshold is None or not test.explicit else test.select(test.values >= threshold)
    users = np.unique(rel.user_idx)
    rows = np.searchsorted(users, rel.user_idx)
    matrix = sp.csr_matrix((np.ones(len(rel), dtype=np.float32), (rows, rel.item_idx)),
                           shape=(len(users), test.n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return users.astype(np.int64), matrix


def topn_scores(model: Recommender, train: Interactions, test: Interactions, k: int,
                threshold: float | None, *, cold_items: bool = False,
                ) -> tuple[dict[str, float], dict[str, np.ndarray], np.ndarray, float]:
    """Ranking metrics at k plus AUC and beyond-accuracy metrics; returns (means, per-user, users, seconds).

    With `cold_items`, only the items that occur in `test` are candidates (the cold-items protocol).
    """
    test = test.reindex(model.user_vocab, model.item_vocab)
    users, relevant = relevance_matrix(test, threshold)
    candidates = None
    if cold_items:
        candidates = np.zeros(model.n_items, dtype=bool)
        candidates[test.item_idx] = True
    t0 = time.perf_counter()
    items, _, _ = model.recommend_indices(users, k, exclude_seen=True, candidates=candidates)
    seconds = time.perf_counter() - t0
    per_user = ranking_metrics(items, relevant, k)
    full = model.score_matrix(users)
    allowed = ~model.train_matrix[users].toarray().astype(bool)
    if candidates is not None:
        allowed &= candidates
    per_user["auc"] = auc(full, relevant, allowed)
    item_vectors = None
    if train.item_features is not None and train.item_features.multi_hot:
        item_vectors = train.item_features.feature_matrix(model.item_vocab)
    if item_vectors is not None and item_vectors.shape[1]:
        per_user[f"ild@{k}"] = intra_list_diversity(items, item_vectors, k)
    popularity = np.asarray((model.train_matrix > 0).sum(axis=0)).ravel()
    per_user[f"novelty@{k}"] = novelty(items, popularity, model.n_users, k)
    means = {name: _nanmean(vals) for name, vals in per_user.items()}
    means[f"coverage@{k}"] = catalog_coverage(items, model.n_items, k)
    means[f"gini@{k}"] = gini_index(items, model.n_items, k)
    return means, per_user, users, seconds


def _nan_to_none(metrics: dict[str, float]) -> dict[str, float | None]:
    """NaN (a metric undefined for every user) becomes null in the JSON, which has no NaN."""
    return {k: (None if v != v else v) for k, v in metrics.items()}


def _nanmean(values: np.ndarray) -> float:
    """Mean over users where the metric is defined; NaN (no warning) when it is defined for none."""
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def evaluate(
    factory: Callable[[], Recommender],
    protocol: Protocol | str,
    data: Dataset | Interactions,
    *,
    model_name: str | None = None,
    system: str = "tastemaker",
    params: dict[str, Any] | None = None,
    bootstrap: int = 1000,
) -> EvaluationResult:
    """Fit a fresh model from `factory()` on each split of `protocol` and score it."""
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    folds: list[FoldResult] = []
    per_user: dict[str, np.ndarray] = {}
    users = None
    ci: dict[str, Estimate] = {}
    name = model_name
    splits = protocol.splits(data)
    for fold, (train, test) in track(splits, f"{protocol.name}", total=len(splits)):
        model = factory()
        name = name or model.name
        if protocol.kind == "rating" and not model.predicts_ratings:
            raise ConfigError(f"{name} ranks items but does not predict ratings, so {protocol.name} cannot score it; "
                              "use a top-N protocol (topn-u1, topn-holdout, topn-temporal)")
        params = params if params is not None else model.config.to_dict()
        t0 = time.perf_counter()
        model.fit(train)
        fit_seconds = time.perf_counter() - t0
        if protocol.kind == "rating":
            metrics, _, predict_seconds = rating_scores(model, test)
        else:
            metrics, fold_users, fold_users_idx, predict_seconds = topn_scores(
                model, train, test, protocol.k, protocol.relevance_threshold, cold_items=protocol.cold_items)
            if not per_user:
                per_user, users = fold_users, fold_users_idx
                ci = {m: bootstrap_ci(v, n_resamples=bootstrap) for m, v in fold_users.items()}
        folds.append(FoldResult(fold, metrics, fit_seconds, predict_seconds))
    names = folds[0].metrics.keys()
    mean = {m: float(np.mean([f.metrics[m] for f in folds])) for m in names}
    return EvaluationResult(protocol=protocol.name, model=name or "", system=system, params=params or {},
                            metrics=mean, folds=folds, ci=ci, per_user=per_user, users=users)
