"""Shared learning checks: held-out splits and the "beats a simple baseline" comparisons model tests repeat.

The conformance checks (`tastemaker.testing.conformance`) test the contract; these test that a
model learns planted structure:

- rating models: `random_holdout` (each event held out with probability `fraction`) and
  `holdout_rmse`;
- top-N models: `check_beats_popularity` (hit rate@5 on clustered implicit data, against
  `Popularity`);
- feature-aware models: `cold_item_auc` and `check_cold_users_beat_popularity` (on a
  `cold_item_split` / `cold_user_split` of `synthetic_cold_start` data).
"""

from __future__ import annotations

import numpy as np

from tastemaker.data.interactions import Interactions
from tastemaker.evaluation.metrics import auc, ndcg_at_k
from tastemaker.evaluation.protocols import relevance_matrix
from tastemaker.models.base import Recommender
from tastemaker.models.popularity import Popularity
from tastemaker.testing.conformance import Factory
from tastemaker.testing.synthetic import synthetic_implicit


def random_holdout(data: Interactions, seed: int = 0, fraction: float = 0.2) -> tuple[Interactions, Interactions]:
    """(train, test): each event goes to test with probability `fraction` (a Bernoulli draw seeded by `seed`)."""
    held = np.random.default_rng(seed).random(len(data)) < fraction
    return data.select(~held), data.select(held)


def holdout_rmse(model: Recommender, test: Interactions) -> float:
    """RMSE of the fitted `model`'s predictions of the `test` ratings (indices shared with the training data)."""
    pred = model.predict_indices(test.user_idx, test.item_idx)
    return float(np.sqrt(np.mean((pred - test.values) ** 2)))


def check_beats_popularity(factory: Factory, *, margin: float = 0.05) -> tuple[float, float]:
    """Assert that `factory()` recovers planted taste clusters better than popularity; returns (ours, popularity).

    Data: `synthetic_implicit` (160 users in 4 clusters, 60 items, 12 events each); 3 events per
    user are held out. The score is the hit rate@5 of the held-out events (a share of the 3); the
    model must beat `Popularity` by more than `margin`.
    """
    data = synthetic_implicit(n_users=160, n_items=60, per_user=12, seed=4)
    rng = np.random.default_rng(0)
    held = np.zeros(len(data), dtype=bool)
    for u in range(data.n_users):
        rows = np.flatnonzero(data.user_idx == u)
        held[rng.choice(rows, size=3, replace=False)] = True
    train, test = data.select(~held), data.select(held)
    truth = {u: set(test.item_idx[test.user_idx == u].tolist()) for u in range(data.n_users)}
    users = np.arange(data.n_users)

    def hit_rate(model: Recommender) -> float:
        items, _, _ = model.fit(train).recommend_indices(users, 5)
        return float(np.mean([len(truth[u] & set(items[u].tolist())) / 3 for u in users]))

    ours, pop = hit_rate(factory()), hit_rate(Popularity())
    assert ours > pop + margin, (ours, pop)
    return ours, pop


def cold_item_auc(model: Recommender, test: Interactions, threshold: float = 4.0) -> float:
    """Mean per-user AUC of the fitted `model` ranking only the items of `test` (test ratings ≥ `threshold` relevant).

    For a cold-item split, those items have no training data: the AUC says how well the model
    ranks them from their features alone (0.5: no better than chance).
    """
    test = test.reindex(model.user_vocab, model.item_vocab)
    held = np.zeros(model.n_items, dtype=bool)
    held[np.unique(test.item_idx)] = True
    users, relevant = relevance_matrix(test, threshold)
    scores = model.score_matrix(users)
    return float(np.nanmean(auc(scores, relevant, np.broadcast_to(held, scores.shape).copy())))


def check_cold_users_beat_popularity(model: Recommender, train: Interactions, test: Interactions, *,
                                     ratio: float = 1.5, k: int = 10, threshold: float = 4.0) -> np.ndarray:
    """Assert that the fitted `model` beats popularity by `ratio` in NDCG@k for the `test` users, who have no training
    events (a cold-user split); returns those users (the model's indices).
    """
    pop = Popularity().fit(train)
    test = test.reindex(model.user_vocab, model.item_vocab)
    users, relevant = relevance_matrix(test, threshold)
    assert (train.user_counts[users] == 0).all()
    ours = ndcg_at_k(model.recommend_indices(users, k)[0], relevant, k).mean()
    base = ndcg_at_k(pop.recommend_indices(users, k)[0], relevant, k).mean()
    assert ours > ratio * base, f"cold-user NDCG@{k} {ours:.3f} vs popularity {base:.3f}"
    return users


__all__ = ["check_beats_popularity", "check_cold_users_beat_popularity", "cold_item_auc", "holdout_rmse",
           "random_holdout"]
