"""SLIM: conformance and the ElasticNet columns against a slow pure-Python coordinate descent."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError
from tastemaker.models.registry import create_model
from tastemaker.models.slim import SLIM, slim_weights
from tastemaker.testing import CHECKS, check_beats_popularity

CONFIGS = {
    "default": {},
    "one-thread-k5-value": {"n_jobs": 1, "k": 5, "weighting": "value", "alpha": 0.01, "l1_ratio": 0.5},
}


@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_conformance(check, config):
    check(lambda: SLIM(config))


def reference_column(x: np.ndarray, j: int, alpha: float, l1_ratio: float, sweeps: int = 5000) -> list[float]:
    """Cyclic coordinate descent on 1/(2n)‖x_j − Xw‖² + αρ‖w‖₁ + α(1−ρ)/2‖w‖², w ≥ 0, w_j = 0."""
    n_users, n_items = x.shape
    y = [x[u, j] for u in range(n_users)]
    w = [0.0] * n_items
    resid = y[:]
    for _ in range(sweeps):
        largest = 0.0
        for i in range(n_items):
            if i == j:
                continue
            col = [x[u, i] for u in range(n_users)]
            norm = sum(c * c for c in col) / n_users
            if norm == 0:
                continue
            rho = sum(col[u] * (resid[u] + col[u] * w[i]) for u in range(n_users)) / n_users
            new = max(0.0, rho - alpha * l1_ratio) / (norm + alpha * (1 - l1_ratio))
            for u in range(n_users):
                resid[u] -= col[u] * (new - w[i])
            largest = max(largest, abs(new - w[i]))
            w[i] = new
        if largest < 1e-13:
            break
    return w


def _tiny(seed=0, n_users=14, n_items=6):
    rng = np.random.default_rng(seed)
    x = (rng.random((n_users, n_items)) < 0.5).astype(float)
    x[np.arange(n_users), np.arange(n_users) % n_items] = 1.0
    return x


@pytest.mark.parametrize(("alpha", "l1_ratio"), [(0.01, 0.1), (0.003, 0.5), (0.02, 0.9)])
def test_columns_match_reference_coordinate_descent(alpha, l1_ratio):
    x = _tiny(seed=int(alpha * 1000))
    n = x.shape[1]
    w = slim_weights(sp.csr_matrix(x), alpha, l1_ratio, n, max_iter=100_000, tol=1e-12, n_jobs=2).toarray()
    expected = np.array([reference_column(x, j, alpha, l1_ratio) for j in range(n)]).T
    np.testing.assert_allclose(w, expected, atol=1e-8)
    assert np.all(np.diag(w) == 0) and np.all(w >= 0) and (w > 0).any()
    # the optimality (KKT) conditions of each column's problem hold
    n_users = x.shape[0]
    for j in range(n):
        grad = -x.T @ (x[:, j] - x @ w[:, j]) / n_users + alpha * (1 - l1_ratio) * w[:, j]
        others = np.arange(n) != j
        active = others & (w[:, j] > 0)
        np.testing.assert_allclose(grad[active], -alpha * l1_ratio, atol=1e-8)
        assert np.all(grad[others & ~active] >= -alpha * l1_ratio - 1e-8)


def test_top_k_keeps_largest_coefficients_and_threads_agree():
    x = (np.random.default_rng(3).random((40, 12)) < 0.35).astype(float)
    full = slim_weights(sp.csr_matrix(x), 0.001, 0.1, 12, max_iter=2000, tol=1e-10, n_jobs=1).toarray()
    top3 = slim_weights(sp.csr_matrix(x), 0.001, 0.1, 3, max_iter=2000, tol=1e-10, n_jobs=3).toarray()
    for j in range(12):
        order = np.lexsort((np.arange(12), -full[:, j]))[:3]
        keep = order[full[order, j] > 0]
        expected = np.zeros(12)
        expected[keep] = full[keep, j]
        np.testing.assert_array_equal(top3[:, j], expected)


def test_model_scores_are_history_times_weights():
    x = _tiny(seed=5)
    u, i = np.nonzero(x)
    data = Interactions.from_arrays(u, i)
    model = SLIM(alpha=0.005, l1_ratio=0.2, k=10, tol=1e-10, max_iter=10_000).fit(data)
    expected = np.array([reference_column(x, j, 0.005, 0.2) for j in range(x.shape[1])]).T
    np.testing.assert_allclose(model._score(np.arange(data.n_users)), x @ expected, atol=1e-7)


def test_recovers_clusters_better_than_popularity():
    check_beats_popularity(SLIM)


def test_config_errors_and_registry():
    with pytest.raises(ConfigError, match="l1_ratio"):
        SLIM(l1_ratio=0)
    with pytest.raises(ConfigError, match="alpha"):
        SLIM(alpha=-1)
    model = create_model("slim", {"alpha": 0.01, "k": 20})
    assert isinstance(model, SLIM)
    assert SLIM(model.config.to_dict()).config == model.config
