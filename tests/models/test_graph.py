"""RP3beta: conformance and the random-walk weights against a slow pure-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError
from tastemaker.models.graph import RP3beta, rp3beta_weights
from tastemaker.models.registry import create_model
from tastemaker.testing import CHECKS, check_beats_popularity, synthetic_implicit

CONFIGS = {
    "default": {},
    "binary-k5-unnormalized": {"weighting": "binary", "k": 5, "normalize": False, "beta": 0.0, "alpha": 1.0},
}


@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_conformance(check, config):
    check(lambda: RP3beta(config))


def reference_weights(x: np.ndarray, alpha: float, beta: float, k: int, normalize: bool) -> np.ndarray:
    """Three-step walk item → user → item by explicit sums over users."""
    n_users, n_items = x.shape
    user_total = [sum(x[u]) for u in range(n_users)]
    degree = [sum(1 for u in range(n_users) if x[u, i] != 0) for i in range(n_items)]
    w = np.zeros((n_items, n_items))
    for i in range(n_items):
        row = []
        for j in range(n_items):
            if j == i or degree[j] == 0:
                continue
            walk = 0.0
            for u in range(n_users):
                if x[u, i] != 0 and x[u, j] != 0:
                    p_iu = 1.0 / degree[i]  # item → one of its users, uniformly
                    p_uj = x[u, j] / user_total[u]  # user → item in proportion to the value
                    walk += p_iu**alpha * p_uj**alpha
            score = walk / degree[j] ** beta
            if score > 0:
                row.append((score, j))
        row = sorted(row, key=lambda c: (-c[0], c[1]))[:k]
        total = sum(s for s, _ in row)
        for s, j in row:
            w[i, j] = s / total if normalize else s
    return w


def _tiny(seed=0, n_users=10, n_items=8):
    rng = np.random.default_rng(seed)
    x = (rng.random((n_users, n_items)) < 0.4).astype(float)
    x[np.arange(n_users), np.arange(n_users) % n_items] = 1.0
    x[:, -1] = 0.0  # an item nobody has
    return x * rng.uniform(0.5, 5.0, x.shape)  # continuous values: no exact ties at the k-th place


@pytest.mark.parametrize(("alpha", "beta", "k", "normalize"),
                         [(1.0, 0.0, 8, False), (0.75, 0.6, 3, True), (1.3, 0.25, 2, False), (0.5, 1.0, 4, True)])
def test_weights_match_reference(alpha, beta, k, normalize):
    x = _tiny(seed=k)
    w = rp3beta_weights(sp.csr_matrix(x), alpha, beta, k, normalize).toarray()
    np.testing.assert_allclose(w, reference_weights(x, alpha, beta, k, normalize), rtol=1e-10, atol=1e-14)
    assert np.all(np.diag(w) == 0) and np.all((w > 0).sum(axis=1) <= k)


def test_p3_rows_are_walk_probabilities():
    """With alpha = 1, beta = 0 and every neighbour kept, row i plus the walk's return to i sums to 1."""
    x = _tiny(seed=9)
    w = rp3beta_weights(sp.csr_matrix(x), 1.0, 0.0, x.shape[1], False).toarray()
    p_iu = (x != 0).T / np.maximum((x != 0).sum(axis=0), 1)[:, None]
    p_ui = x / x.sum(axis=1, keepdims=True)
    back = np.diag(p_iu @ p_ui)
    has_users = (x != 0).any(axis=0)
    np.testing.assert_allclose((w.sum(axis=1) + back)[has_users], 1.0, rtol=1e-12)


def test_model_scores_and_popularity_penalty():
    x = _tiny(seed=4)
    u, i = np.nonzero(x)
    data = Interactions.from_arrays(u, i, x[u, i], explicit=False)
    model = RP3beta(alpha=0.8, beta=0.5, k=4, weighting="binary", normalize=False).fit(data)
    xb = (x != 0).astype(float)
    expected = xb[:, : data.n_items] @ reference_weights(xb, 0.8, 0.5, 4, False)[: data.n_items, : data.n_items]
    np.testing.assert_allclose(model._score(np.arange(data.n_users)), expected, rtol=1e-10, atol=1e-14)

    # a larger beta moves recommendations towards less popular items
    train = synthetic_implicit(n_users=120, n_items=50, per_user=10, seed=1)
    users = np.arange(train.n_users)
    counts = train.item_counts

    def mean_popularity(beta):
        items, _, _ = RP3beta(beta=beta, k=50).fit(train).recommend_indices(users, 5)
        return counts[items].mean()

    assert mean_popularity(0.8) < mean_popularity(0.0)


def test_recovers_clusters_better_than_popularity():
    check_beats_popularity(lambda: RP3beta(k=30))


def test_config_errors_and_registry():
    with pytest.raises(ConfigError, match="alpha"):
        RP3beta(alpha=0)
    with pytest.raises(ConfigError, match="beta"):
        RP3beta(beta=-0.1)
    model = create_model("rp3beta", {"beta": 0.4, "k": 20})
    assert isinstance(model, RP3beta)
    assert RP3beta(model.config.to_dict()).config == model.config
