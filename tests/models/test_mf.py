"""Tests of the biased matrix factorisation model (`biased_mf`) and its SGD kernel."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.errors import ConfigError
from tastemaker.models import create_model
from tastemaker.models._kernels import sgd_mf_epoch
from tastemaker.models.baseline import Baseline
from tastemaker.models.mf import BiasedMF, BiasedMFConfig
from tastemaker.progress import progress_bars
from tastemaker.testing import CHECKS, holdout_rmse, random_holdout, synthetic_ratings


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_conformance(check):
    check(lambda: BiasedMF())


# --- the kernel against a slow reference ------------------------------------------------------

def reference_epoch(users, items, ratings, order, mu, bu, bi, P, Q, lr, reg):
    """One SGD epoch in plain Python floats and lists: the algorithm as written in the papers."""
    sse = 0.0
    for j in order:
        u, i = users[j], items[j]
        dot = 0.0
        for f in range(len(P[u])):
            dot += Q[i][f] * P[u][f]
        err = ratings[j] - (mu + bu[u] + bi[i] + dot)
        sse += err * err
        bu[u] += lr * (err - reg * bu[u])
        bi[i] += lr * (err - reg * bi[i])
        for f in range(len(P[u])):
            puf, qif = P[u][f], Q[i][f]
            P[u][f] += lr * (err * qif - reg * puf)
            Q[i][f] += lr * (err * puf - reg * qif)
    return sse


def _small_case(seed=0, n_users=6, n_items=5, n_ratings=18, k=3):
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, size=n_ratings, replace=False)
    users, items = (pairs // n_items).astype(np.int64), (pairs % n_items).astype(np.int64)
    ratings = rng.integers(1, 6, n_ratings).astype(np.float64)
    P, Q = rng.normal(0, 0.3, (n_users, k)), rng.normal(0, 0.3, (n_items, k))
    bu, bi = rng.normal(0, 0.1, n_users), rng.normal(0, 0.1, n_items)
    return users, items, ratings, bu, bi, P, Q


def test_kernel_matches_reference_exactly():
    users, items, ratings, bu, bi, P, Q = _small_case()
    mu = float(ratings.mean())
    ref = [bu.tolist(), bi.tolist(), P.tolist(), Q.tolist()]
    rng = np.random.default_rng(7)
    for lr, reg in ((0.05, 0.02), (0.1, 0.3)):  # two epochs, each in its own order
        order = rng.permutation(len(ratings))
        sse = sgd_mf_epoch(users, items, ratings, order, mu, bu, bi, P, Q, lr, reg)
        sse_ref = reference_epoch(users.tolist(), items.tolist(), ratings.tolist(), order.tolist(), mu, *ref,
                                  lr, reg)
        assert sse == sse_ref
        for got, want in zip((bu, bi, P, Q), ref, strict=True):
            assert np.array_equal(got, np.array(want))


def test_kernel_visits_ratings_in_the_given_order():
    users, items, ratings, bu, bi, P, Q = _small_case(seed=3)
    mu = float(ratings.mean())
    a = [x.copy() for x in (bu, bi, P, Q)]
    b = [x.copy() for x in (bu, bi, P, Q)]
    order = np.arange(len(ratings))
    sgd_mf_epoch(users, items, ratings, order, mu, *a, 0.1, 0.02)
    sgd_mf_epoch(users, items, ratings, order[::-1].copy(), mu, *b, 0.1, 0.02)
    assert not np.array_equal(a[2], b[2]), "SGD is order-dependent: reversing the order must change P"


def test_fit_is_the_reference_algorithm_in_seeded_shuffled_order():
    """fit() = factors from N(0, init_std²), zero biases, one seeded permutation per epoch."""
    data = synthetic_ratings(n_users=12, n_items=9, per_user=5, seed=4)
    cfg = BiasedMFConfig(n_factors=4, n_epochs=3, learning_rate=0.03, reg=0.05, init_std=0.2, seed=11)
    model = BiasedMF(cfg).fit(data)

    rng = np.random.default_rng(cfg.seed)
    P = rng.normal(0, cfg.init_std, (data.n_users, cfg.n_factors)).tolist()
    Q = rng.normal(0, cfg.init_std, (data.n_items, cfg.n_factors)).tolist()
    bu, bi = [0.0] * data.n_users, [0.0] * data.n_items
    ratings = data.values.astype(np.float64)
    mu = float(ratings.mean())
    sse = []
    for _ in range(cfg.n_epochs):
        order = rng.permutation(len(data)).tolist()
        sse.append(reference_epoch(data.user_idx.tolist(), data.item_idx.tolist(), ratings.tolist(), order, mu,
                                   bu, bi, P, Q, cfg.learning_rate, cfg.reg))
    assert model.mu == mu
    assert np.array_equal(model.user_bias, bu) and np.array_equal(model.item_bias, bi)
    assert np.array_equal(model.user_factors, P) and np.array_equal(model.item_factors, Q)
    assert model.epoch_rmse == [float(np.sqrt(s / len(data))) for s in sse]


# --- learning -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beats_baseline_on_held_out_ratings(seed):
    train, test = random_holdout(synthetic_ratings(n_users=200, n_items=60, per_user=20, seed=seed), seed)
    mf, base = holdout_rmse(BiasedMF().fit(train), test), holdout_rmse(Baseline().fit(train), test)
    assert mf < 0.9 * base, f"biased_mf RMSE {mf:.4f} is not clearly below the baseline's {base:.4f}"


def test_training_error_falls():
    model = BiasedMF().fit(synthetic_ratings())
    assert len(model.epoch_rmse) == model.config.n_epochs
    assert model.epoch_rmse[-1] < 0.8 * model.epoch_rmse[0]


def test_predictions_are_the_model_formula():
    data = synthetic_ratings(seed=5)
    model = BiasedMF(n_factors=6).fit(data)
    u, i = data.user_idx[:30], data.item_idx[:30]
    want = (model.mu + model.user_bias[u] + model.item_bias[i]
            + np.sum(model.user_factors[u] * model.item_factors[i], axis=1))
    got = model.score(data.user_vocab.lookup(u), data.item_vocab.lookup(i))
    assert not got.fallback.any()
    np.testing.assert_allclose(got.values, want, rtol=1e-12)
    rows = model._score(np.unique(u))
    np.testing.assert_allclose(rows[np.searchsorted(np.unique(u), u), i], want, rtol=1e-12)


def test_fallbacks_use_the_known_bias():
    data = synthetic_ratings(extra_users=1, extra_items=1)
    model = BiasedMF().fit(data)
    user, item = data.user_vocab.ids[2], data.item_vocab.ids[3]
    cold_user, cold_item = data.user_vocab.ids[-1], data.item_vocab.ids[-1]
    pred = model.score(["ghost", cold_user, user, user], [item, item, "no-such-item", cold_item])
    assert pred.fallback.all()
    mu, bu, bi = model.mu, model.user_bias[2], model.item_bias[3]
    np.testing.assert_allclose(pred.values, [mu + bi, mu + bi, mu + bu, mu + bu], rtol=1e-12)
    assert bu != 0 and bi != 0


def test_divergence_is_a_config_error_naming_the_learning_rate():
    with pytest.raises(ConfigError, match="learning_rate"):
        BiasedMF(learning_rate=50.0).fit(synthetic_ratings())


# --- determinism, config, progress --------------------------------------------------------------

def test_same_seed_same_model_other_seed_other_model():
    data = synthetic_ratings()
    a, b = BiasedMF(seed=3).fit(data), BiasedMF(seed=3).fit(data)
    c = BiasedMF(seed=4).fit(data)
    for name in ("user_factors", "item_factors", "user_bias", "item_bias"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.user_factors, c.user_factors)


@pytest.mark.parametrize("bad", [{"n_factors": 0}, {"n_epochs": 0}, {"learning_rate": 0.0}, {"reg": -0.1},
                                 {"init_std": 0.0}, {"n_factor": 10}])
def test_invalid_config_is_rejected(bad):
    key = next(iter(bad))
    with pytest.raises(ConfigError, match=key):
        BiasedMF(**bad)


def test_registry_and_config_round_trip():
    model = create_model("biased_mf", {"n_factors": 7}, reg=0.1)
    assert isinstance(model, BiasedMF) and model.predicts_ratings
    assert model.config.n_factors == 7 and model.config.reg == 0.1
    assert BiasedMF(model.config.to_dict()).config == model.config


def test_progress_bar_does_not_change_the_fit():
    data = synthetic_ratings()
    plain = BiasedMF().fit(data)
    with progress_bars():
        shown = BiasedMF().fit(data)
    assert np.array_equal(plain.item_factors, shown.item_factors)


# --- reasons ------------------------------------------------------------------------------------

def test_reason_is_the_liked_item_with_the_most_aligned_factors():
    data = synthetic_ratings(seed=6)
    model = BiasedMF(n_factors=40).fit(data)
    row = data.seen[0]
    hist = row.indices
    ratings = model.train_matrix[0].toarray().ravel()[hist]
    others = np.setdiff1d(np.arange(data.n_items), hist)
    target, against = others[:2]
    anchor = hist[np.argmax(ratings)]
    Q = np.zeros_like(model.item_factors)
    Q[hist, np.arange(len(hist))] = 1.0  # history items: orthonormal
    Q[target] = Q[anchor]
    Q[against, : len(hist)] = -1.0  # opposite to the whole history
    model.item_factors = Q
    reasons = model.explain(data.user_vocab.ids[0], data.item_vocab.ids[[target, against]])
    assert reasons[0].kind == "similar_to_history"
    assert reasons[0].anchor == data.item_vocab.ids[anchor]
    assert reasons[0].anchor_value == ratings.max()
    assert reasons[1].kind == "personal_taste"
