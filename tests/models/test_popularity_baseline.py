"""Popularity and the baseline predictor: conformance and their arithmetic on hand-made cases."""

import numpy as np
import pytest

from tastemaker.data.interactions import Interactions
from tastemaker.models.baseline import Baseline, BaselineConfig, fit_biases
from tastemaker.models.popularity import Popularity
from tastemaker.testing import CHECKS

FACTORIES = {
    "popularity-count": lambda: Popularity(),
    "popularity-rating": lambda: Popularity(kind="rating", damping=5),
    "baseline-als": lambda: Baseline(),
    "baseline-sgd": lambda: Baseline(method="sgd", n_epochs=15),
}


@pytest.mark.parametrize("check", list(CHECKS), ids=list(CHECKS))
@pytest.mark.parametrize("factory", list(FACTORIES), ids=list(FACTORIES))
def test_conformance(factory, check):
    check_fn = CHECKS[check]
    check_fn(FACTORIES[factory])


def tiny() -> Interactions:
    return Interactions.from_arrays(["a", "a", "b", "b", "c"], ["x", "y", "x", "z", "x"], [5, 3, 4, 2, 5])


def test_popularity_rating_is_damped_mean():
    data = tiny()
    mu = 19 / 5
    model = Popularity(kind="rating", damping=2).fit(data)
    pred = model.predict(["a"], ["x"]).values[0]
    assert pred == pytest.approx((14 + 2 * mu) / (3 + 2))
    count = Popularity().fit(data)
    assert count.recommend(["zz"], k=1)[0].items.tolist() == ["x"]


def test_baseline_als_matches_a_loop_reference():
    data = tiny()
    cfg = BaselineConfig(n_epochs=3, reg_users=2.0, reg_items=1.0)
    mu, bu, bi = fit_biases(data, cfg)
    # reference: Surprise's BaselineOnly ALS written as plain loops
    rows = list(zip(data.user_idx.tolist(), data.item_idx.tolist(), data.values.tolist(), strict=True))
    ref_bu, ref_bi = [0.0] * 3, [0.0] * 3
    for _ in range(3):
        for i in range(3):
            rs = [(u, r) for u, j, r in rows if j == i]
            ref_bi[i] = sum(r - mu - ref_bu[u] for u, r in rs) / (1.0 + len(rs))
        for u in range(3):
            rs = [(j, r) for v, j, r in rows if v == u]
            ref_bu[u] = sum(r - mu - ref_bi[j] for j, r in rs) / (2.0 + len(rs))
    np.testing.assert_allclose(bu, ref_bu)
    np.testing.assert_allclose(bi, ref_bi)
    assert mu == pytest.approx(3.8)


def test_baseline_fallbacks_use_the_known_side():
    model = Baseline().fit(tiny())
    pred = model.predict(["a", "nobody", "a"], ["x", "x", "nothing"])
    mu, bu, bi = model.mu, model.user_bias, model.item_bias
    assert pred.values[0] == pytest.approx(mu + bu[0] + bi[0])
    assert pred.values[1] == pytest.approx(mu + bi[0])
    assert pred.values[2] == pytest.approx(mu + bu[0])
    assert pred.fallback.tolist() == [False, True, True]
