"""ALS and BPR through implicit: conformance, equality with implicit's own factors, confidence
weighting against a reference, plain-array artifacts that load without implicit."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DependencyError, NotSupportedError
from tastemaker.models.base import Recommender
from tastemaker.models.implicit_mf import ALS, BPR, confidence_matrix
from tastemaker.models.registry import create_model
from tastemaker.testing import CHECKS, check_beats_popularity, synthetic_ratings

# one thread: implicit's thread pool costs more than it saves on these tiny sets (and on a busy machine)
FACTORIES = {
    "als-default": lambda: ALS(num_threads=1),
    "als": lambda: ALS(factors=8, iterations=5, regularization=1.0, num_threads=1),
    "als-log-threshold": lambda: ALS(factors=8, iterations=5, weighting="log", threshold=3.0, alpha=4.0,
                                     num_threads=1),
    "bpr": lambda: BPR(factors=8, iterations=20),
}


@pytest.mark.parametrize("factory", list(FACTORIES.values()), ids=list(FACTORIES))
@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_conformance(check, factory):
    check(factory)


def test_confidence_matches_reference():
    data = synthetic_ratings(seed=3)
    model = ALS(alpha=3.0, weighting="log", threshold=2.0)
    model.train_matrix = data.csr()
    c = confidence_matrix(model._counted(), 3.0).toarray()
    kept = [(u, i, math.log1p(r)) for u, i, r in zip(data.user_idx.tolist(), data.item_idx.tolist(),
                                                     data.values.tolist(), strict=True) if r >= 2.0]
    mean = sum(v for _, _, v in kept) / len(kept)
    expected = np.zeros(data.shape)
    for u, i, v in kept:
        expected[u, i] = 1.0 + 3.0 * v / mean
    np.testing.assert_allclose(c, expected, rtol=1e-6)


def test_als_equals_implicit_factor_products():
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    data = synthetic_ratings(seed=1)
    model = ALS(factors=6, regularization=2.0, alpha=2.0, iterations=7, weighting="value", seed=5,
                num_threads=1).fit(data)
    conf = confidence_matrix(model._counted(), 2.0)  # checked against a reference above
    x = data.csr().toarray().astype(np.float64)
    np.testing.assert_allclose(conf.toarray(), np.where(x > 0, 1.0 + 2.0 * x / x[x > 0].mean(), 0.0), rtol=1e-6)
    with threadpool_limits(1, "blas"):
        peer = AlternatingLeastSquares(factors=6, regularization=2.0, alpha=1.0, iterations=7, random_state=5,
                                       num_threads=1)
        peer.fit(conf, show_progress=False)
    users = np.arange(data.n_users)
    np.testing.assert_allclose(model._score(users), peer.user_factors @ peer.item_factors.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(model.item_factors, peer.item_factors)


def test_bpr_equals_implicit_factor_products():
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    data = synthetic_ratings(seed=2)
    model = BPR(factors=6, learning_rate=0.05, regularization=0.02, iterations=30, seed=9).fit(data)
    peer = BayesianPersonalizedRanking(factors=6, learning_rate=0.05, regularization=0.02, iterations=30,
                                       random_state=9, num_threads=1)
    peer.fit(data.csr(binary=True), show_progress=False)
    assert model.item_factors.shape == (data.n_items, 7)  # implicit's item-bias column
    np.testing.assert_array_equal(model.user_factors, peer.user_factors)
    np.testing.assert_allclose(model._score(np.arange(data.n_users)), peer.user_factors @ peer.item_factors.T,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_save_load_identical_and_without_implicit(name, tmp_path, monkeypatch):
    data = synthetic_ratings(seed=4, string_ids=True)
    model = FACTORIES[name]().fit(data)
    path = model.save(tmp_path / name)
    monkeypatch.setitem(sys.modules, "implicit", None)  # loading and scoring need no implicit
    loaded = Recommender.load(path)
    np.testing.assert_array_equal(loaded.user_factors, model.user_factors)
    np.testing.assert_array_equal(loaded.item_factors, model.item_factors)
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(loaded.score_matrix(users), model.score_matrix(users))
    with pytest.raises(DependencyError, match=r"pip install 'tastemaker\[implicit\]'"):
        type(model)().fit(data)


def test_recovers_clusters_better_than_popularity():
    check_beats_popularity(lambda: ALS(factors=8, regularization=1.0, num_threads=1))
    check_beats_popularity(lambda: BPR(factors=8, learning_rate=0.05, iterations=200))


def test_threshold_cold_users_and_errors():
    data = Interactions.from_arrays([1, 1, 2, 2, 3], ["a", "b", "a", "c", "b"], [5, 2, 4, 5, 1])
    model = ALS(threshold=4, factors=2, num_threads=1).fit(data)
    assert model.scorable_items().tolist() == [True, False, True]
    assert model.recommend([3], k=2)[0].fallback == "no_history"
    with pytest.raises(ConfigError, match="factors"):
        ALS(factors=0)
    with pytest.raises(ConfigError, match="unknown key 'use_gpu'"):
        BPR(use_gpu=True)
    with pytest.raises(NotSupportedError):
        model.predict([1], ["a"])
    assert isinstance(create_model("bpr", {"factors": 4}), BPR)
    assert ALS(ALS(alpha=3.0).config.to_dict()).config.alpha == 3.0
