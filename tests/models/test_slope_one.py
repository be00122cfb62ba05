"""Slope One: conformance, the item × item matrices and predictions against slow references and Surprise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError
from tastemaker.models import create_model
from tastemaker.models.baseline import Baseline
from tastemaker.models.slope_one import SlopeOne, co_rating_matrices
from tastemaker.testing import CHECKS, holdout_rmse, random_holdout, synthetic_ratings


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
@pytest.mark.parametrize("weighted", [True, False], ids=["weighted", "unweighted"])
def test_conformance(check, weighted):
    check(lambda: SlopeOne(weighted=weighted))


def _by_user(data: Interactions) -> dict[int, dict[int, float]]:
    out: dict[int, dict[int, float]] = {}
    for u, i, r in zip(data.user_idx.tolist(), data.item_idx.tolist(), data.values.tolist(), strict=True):
        out.setdefault(u, {})[i] = r
    return out


def test_co_rating_matrices_against_loops():
    data = synthetic_ratings(n_users=20, n_items=12, per_user=5, seed=1)
    freq, dev_sum = co_rating_matrices(data.csr())
    want_c = np.zeros((12, 12))
    want_s = np.zeros((12, 12))
    for rated in _by_user(data).values():
        for i, ri in rated.items():
            for j, rj in rated.items():
                if i != j:
                    want_c[i, j] += 1
                    want_s[i, j] += ri - rj
    np.testing.assert_array_equal(freq, want_c)
    np.testing.assert_allclose(dev_sum, want_s, atol=1e-12)
    assert freq.dtype == np.int32


def reference_prediction(rated: dict[int, float], i: int, freq, dev_sum, weighted: bool, baseline: float):
    """Lemire & Maclachlan's formulas over R_i(u) = rated items sharing a rater with i (not i)."""
    relevant = [j for j in rated if j != i and freq[i, j] > 0]
    if not relevant:
        return baseline
    if weighted:
        return (sum((dev_sum[i, j] / freq[i, j] + rated[j]) * freq[i, j] for j in relevant)
                / sum(freq[i, j] for j in relevant))
    return np.mean(list(rated.values())) + sum(dev_sum[i, j] / freq[i, j] for j in relevant) / len(relevant)


@pytest.mark.parametrize("weighted", [True, False])
def test_predictions_match_the_reference(weighted):
    data = synthetic_ratings(n_users=30, n_items=25, per_user=6, seed=2)
    model = SlopeOne(weighted=weighted).fit(data)
    rated = _by_user(data)
    users = np.repeat(np.arange(data.n_users), data.n_items)
    items = np.tile(np.arange(data.n_items), data.n_users)
    keep = model.scorable_items()[items]
    users, items = users[keep], items[keep]
    want = [reference_prediction(rated[u], i, model.freq, model.dev_sum, weighted,
                                 model.mu + model.user_bias[u] + model.item_bias[i])
            for u, i in zip(users.tolist(), items.tolist(), strict=True)]
    np.testing.assert_allclose(model._score_pairs(users, items), want, rtol=1e-10)
    rows = model._score(np.arange(data.n_users))
    np.testing.assert_allclose(rows[users, items], want, rtol=1e-10)


def test_no_common_raters_gives_the_baseline():
    # users 0/1 rate items A, B; user 2 rates C only: C shares no rater with A or B
    data = Interactions.from_arrays([0, 0, 1, 1, 2], ["A", "B", "A", "B", "C"], [5.0, 3.0, 4.0, 2.0, 1.0],
                                    rating_scale=(1.0, 5.0))
    model = SlopeOne().fit(data)
    base = Baseline().fit(data)
    pred = model.score([0, 2], ["C", "A"])
    assert not pred.fallback.any()
    np.testing.assert_allclose(pred.values, base.score([0, 2], ["C", "A"]).values, rtol=1e-12)
    # A is rated 2 above B by both users: user 0's B = 3 → A = 5; weighted Slope One is exact here
    assert model.score([1], ["A"]).values[0] == pytest.approx(4.0)


def test_unweighted_matches_surprise_slope_one():
    import surprise

    data = synthetic_ratings(n_users=30, n_items=20, per_user=6, seed=3)
    frame = pd.DataFrame({"u": data.user_idx, "i": data.item_idx, "r": data.values.astype(np.float64)})
    trainset = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5))).build_full_trainset()
    algo = surprise.SlopeOne().fit(trainset)
    model = SlopeOne(weighted=False).fit(data)
    seen = data.seen.toarray().astype(bool)
    users, items = np.nonzero(~seen & model.scorable_items()[None, :])
    has_support = np.array([(model.freq[i, data.seen[u].indices] > 0).any() for u, i in zip(users, items, strict=True)])
    users, items = users[has_support], items[has_support]
    want = [algo.predict(int(u), int(i), clip=False).est for u, i in zip(users, items, strict=True)]
    np.testing.assert_allclose(model._score_pairs(users, items), want, rtol=1e-10)


def test_pairs_are_scored_in_chunks(monkeypatch):
    import tastemaker.models.slope_one as so

    data = synthetic_ratings(seed=4)
    model = SlopeOne().fit(data)
    users, items = data.user_idx.astype(np.int64), data.item_idx[::-1].astype(np.int64)
    whole = model._score_pairs(users, items)
    monkeypatch.setattr(so, "_CHUNK", 7)
    np.testing.assert_allclose(model._score_pairs(users, items), whole, rtol=1e-12)


def test_fallbacks_use_baseline_biases():
    data = synthetic_ratings(extra_users=1, extra_items=1)
    model = SlopeOne().fit(data)
    user, item = data.user_vocab.ids[2], data.item_vocab.ids[3]
    pred = model.score(["ghost", user], [item, "no-such-item"])
    assert pred.fallback.all()
    np.testing.assert_allclose(pred.values, [model.mu + model.item_bias[3], model.mu + model.user_bias[2]],
                               rtol=1e-12)


@pytest.mark.parametrize("weighted", [True, False])
def test_exact_on_additive_ratings(weighted):
    """Slope One's premise: r_ui = a_u + b_i is predicted exactly (the regularised baseline is not)."""
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, 40), rng.uniform(1, 4, 15)
    users, items = np.nonzero(rng.random((40, 15)) < 0.6)
    data = Interactions.from_arrays(users, items, a[users] + b[items], rating_scale=(1.0, 5.0))
    model = SlopeOne(weighted=weighted).fit(data)
    u, i = np.nonzero(~data.seen.toarray().astype(bool))
    u_idx, i_idx = data.user_vocab.indices(u.tolist()), data.item_vocab.indices(i.tolist())
    if not weighted:  # μ_u + mean deviation is exact when every rated item shares a rater with i
        full = np.array([(model.freq[ii, data.seen[uu].indices] > 0).all() for uu, ii in zip(u_idx, i_idx,
                                                                                             strict=True)])
        u, i, u_idx, i_idx = u[full], i[full], u_idx[full], i_idx[full]
    np.testing.assert_allclose(model.predict_indices(u_idx, i_idx), a[u] + b[i], rtol=1e-6)  # float32 ratings
    base = Baseline().fit(data).predict_indices(u_idx, i_idx)
    assert np.sqrt(np.mean((base - a[u] - b[i]) ** 2)) > 0.05


def test_learns_on_held_out_ratings():
    train, test = random_holdout(synthetic_ratings(n_users=200, n_items=60, per_user=20, seed=0), 0)
    rmse = holdout_rmse(SlopeOne().fit(train), test)
    assert rmse < 0.9 * np.sqrt(np.mean((train.values.mean() - test.values) ** 2))


def test_state_is_plain_arrays():
    model = SlopeOne().fit(synthetic_ratings())
    arrays, _ = model._get_state()
    assert set(arrays) == {"freq", "dev_sum", "bu", "bi"}
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    assert sp.issparse(model._binary) and model._binary.data.min() == 1.0


def test_unknown_setting_is_rejected():
    with pytest.raises(ConfigError, match="weighting"):
        SlopeOne(weighting=False)


def test_registry_and_config_round_trip():
    model = create_model("slope_one", {"weighted": False})
    assert isinstance(model, SlopeOne) and model.predicts_ratings
    assert SlopeOne(model.config.to_dict()).config == model.config


def test_catalogues_above_max_items_are_refused_with_the_memory_named():
    with pytest.raises(ConfigError, match="max_items=30"):
        SlopeOne(max_items=30).fit(synthetic_ratings(n_items=40))
