"""NMF: conformance, the rating-pass kernel and the whole fit against slow references and Surprise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError
from tastemaker.models import create_model
from tastemaker.models._kernels import nmf_accumulate
from tastemaker.models.baseline import Baseline
from tastemaker.models.nmf import NMF, NMFConfig, multiplicative_step
from tastemaker.testing import CHECKS, holdout_rmse, random_holdout, synthetic_ratings


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
@pytest.mark.parametrize("biased", [False, True], ids=["plain", "biased"])
def test_conformance(check, biased):
    check(lambda: NMF(biased=biased))


# --- slow references --------------------------------------------------------------------------

def reference_epoch(users, items, ratings, order, mu, bu, bi, P, Q, biased, lr_b, reg_b, reg_u, reg_i):
    """One epoch of Surprise's NMF in plain Python (rating pass, then the multiplicative updates)."""
    k = len(P[0])
    user_num = [[0.0] * k for _ in P]
    user_den = [[0.0] * k for _ in P]
    item_num = [[0.0] * k for _ in Q]
    item_den = [[0.0] * k for _ in Q]
    sse = 0.0
    for row in order:
        u, i, r = users[row], items[row], ratings[row]
        est = mu + bu[u] + bi[i] + sum(Q[i][f] * P[u][f] for f in range(k))
        err = r - est
        sse += err * err
        if biased:
            bu[u] += lr_b * (err - reg_b * bu[u])
            bi[i] += lr_b * (err - reg_b * bi[i])
        for f in range(k):
            user_num[u][f] += Q[i][f] * r
            user_den[u][f] += Q[i][f] * est
            item_num[i][f] += P[u][f] * r
            item_den[i][f] += P[u][f] * est
    for u in range(len(P)):
        n = users.count(u)
        for f in range(k):
            if P[u][f] != 0 and n:
                P[u][f] *= user_num[u][f] / (user_den[u][f] + n * reg_u * P[u][f])
    for i in range(len(Q)):
        n = items.count(i)
        for f in range(k):
            if Q[i][f] != 0 and n:
                Q[i][f] *= item_num[i][f] / (item_den[i][f] + n * reg_i * Q[i][f])
    return sse


@pytest.mark.parametrize("biased", [False, True])
def test_kernel_accumulates_the_reference_sums(biased):
    rng = np.random.default_rng(0)
    n_users, n_items, n, k = 5, 6, 18, 3
    pairs = rng.choice(n_users * n_items, size=n, replace=False)
    users, items = (pairs // n_items).astype(np.int64), (pairs % n_items).astype(np.int64)
    ratings = rng.integers(1, 6, n).astype(np.float64)
    P, Q = rng.uniform(0, 1, (n_users, k)), rng.uniform(0, 1, (n_items, k))
    bu, bi = rng.normal(0, 0.1, n_users), rng.normal(0, 0.1, n_items)
    mu = 3.5 if biased else 0.0
    if not biased:
        bu[:], bi[:] = 0.0, 0.0
    sums = [np.zeros((n_users, k)), np.zeros((n_users, k)), np.zeros((n_items, k)), np.zeros((n_items, k))]
    order = rng.permutation(n)
    sse = nmf_accumulate(users, items, ratings, order, mu, bu.copy(), bi.copy(), P, Q, biased, 0.05, 0.1, *sums)
    want = [np.zeros_like(s) for s in sums]
    want_bu, want_bi = bu.copy(), bi.copy()
    sse_ref = 0.0
    for row in order:
        u, i, r = users[row], items[row], ratings[row]
        est = mu + want_bu[u] + want_bi[i] + float(Q[i] @ P[u])
        sse_ref += (r - est) ** 2
        if biased:
            want_bu[u] += 0.05 * ((r - est) - 0.1 * want_bu[u])
            want_bi[i] += 0.05 * ((r - est) - 0.1 * want_bi[i])
        want[0][u] += Q[i] * r
        want[1][u] += Q[i] * est
        want[2][i] += P[u] * r
        want[3][i] += P[u] * est
    assert sse == pytest.approx(sse_ref, rel=1e-12)
    for got, w in zip(sums, want, strict=True):
        np.testing.assert_allclose(got, w, rtol=1e-12)


@pytest.mark.parametrize("biased", [False, True])
def test_fit_is_the_reference_algorithm(biased):
    data = synthetic_ratings(n_users=9, n_items=8, per_user=4, seed=2, extra_users=1)
    cfg = NMFConfig(n_factors=3, n_epochs=4, biased=biased, reg_users=0.1, reg_items=0.04, learning_rate_bias=0.02,
                    reg_bias=0.05, seed=3)
    model = NMF(cfg).fit(data)
    rng = np.random.default_rng(cfg.seed)
    P = rng.uniform(0, 1, (data.n_users, 3)).tolist()
    Q = rng.uniform(0, 1, (data.n_items, 3)).tolist()
    bu, bi = [0.0] * data.n_users, [0.0] * data.n_items
    ratings = data.values.astype(np.float64).tolist()
    mu = float(np.mean(ratings)) if biased else 0.0
    users, items = data.user_idx.tolist(), data.item_idx.tolist()
    for _ in range(cfg.n_epochs):
        order = rng.permutation(len(ratings)).tolist() if biased else list(range(len(ratings)))
        reference_epoch(users, items, ratings, order, mu, bu, bi, P, Q, biased, 0.02, 0.05, 0.1, 0.04)
    np.testing.assert_allclose(model.user_factors, P, rtol=1e-10)
    np.testing.assert_allclose(model.item_factors, Q, rtol=1e-10)
    if biased:
        np.testing.assert_allclose(model.user_bias, bu, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(model.item_bias, bi, rtol=1e-10, atol=1e-14)
    assert (model.user_factors >= 0).all() and (model.item_factors >= 0).all()


def test_matches_surprise_nmf_from_the_same_start():
    """Surprise's NMF, rebuilt from our pieces with its initial factors and rating order."""
    import surprise

    data = synthetic_ratings(n_users=12, n_items=10, per_user=5, seed=3)
    frame = pd.DataFrame({"u": data.user_idx, "i": data.item_idx, "r": data.values.astype(np.float64)})
    trainset = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5))).build_full_trainset()
    algo = surprise.NMF(n_factors=4, n_epochs=5, random_state=0).fit(trainset)
    rows = list(trainset.all_ratings())
    users = np.array([u for u, _, _ in rows], dtype=np.int64)
    items = np.array([i for _, i, _ in rows], dtype=np.int64)
    ratings = np.array([r for _, _, r in rows])
    rng = np.random.RandomState(0)
    P, Q = rng.uniform(0, 1, (trainset.n_users, 4)), rng.uniform(0, 1, (trainset.n_items, 4))
    n_u, n_i = np.bincount(users)[:, None], np.bincount(items)[:, None]
    zeros_u, zeros_i = np.zeros(trainset.n_users), np.zeros(trainset.n_items)
    for _ in range(5):
        sums = [np.zeros_like(P), np.zeros_like(P), np.zeros_like(Q), np.zeros_like(Q)]
        nmf_accumulate(users, items, ratings, np.arange(len(rows)), 0.0, zeros_u, zeros_i, P, Q, False, 0.0, 0.0,
                       *sums)
        multiplicative_step(P, sums[0], sums[1] + n_u * 0.06 * P)
        multiplicative_step(Q, sums[2], sums[3] + n_i * 0.06 * Q)
    np.testing.assert_allclose(P, algo.pu, rtol=1e-10)
    np.testing.assert_allclose(Q, algo.qi, rtol=1e-10)


def test_multiplicative_step_leaves_zero_factors_and_empty_rows():
    f = np.array([[1.0, 0.0], [2.0, 3.0]])
    multiplicative_step(f, np.array([[2.0, 5.0], [1.0, 1.0]]), np.array([[4.0, 1.0], [0.0, 2.0]]))
    np.testing.assert_array_equal(f, [[0.5, 0.0], [2.0, 1.5]])


# --- the model ----------------------------------------------------------------------------------

def _nonnegative_low_rank(seed: int) -> Interactions:
    """Ratings 1 + 4·p_uᵀq_i + noise with non-negative factors concentrated on one of three tastes
    each: a user loves the items of their taste and dislikes the rest, which biases cannot fit."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 200, 60
    P = np.eye(3)[np.arange(n_users) % 3] * rng.uniform(0.7, 1.0, (n_users, 1))
    Q = np.eye(3)[np.arange(n_items) % 3] * rng.uniform(0.7, 1.0, (n_items, 1))
    raw = 1 + 4 * P @ Q.T
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=20, replace=False):
            rows.append((u, int(i), float(np.clip(np.rint(raw[u, i] + rng.normal(0, 0.3)), 1, 5))))
    return Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "rating"]), rating_scale=(1.0, 5.0))


@pytest.mark.parametrize("biased", [False, True])
def test_beats_baseline_on_non_negative_structure(biased):
    train, test = random_holdout(_nonnegative_low_rank(0), 0)
    nmf = holdout_rmse(NMF(biased=biased, n_factors=3, n_epochs=100).fit(train), test)
    base = holdout_rmse(Baseline().fit(train), test)
    assert nmf < 0.9 * base, f"nmf RMSE {nmf:.4f} is not clearly below the baseline's {base:.4f}"


def test_predictions_are_the_formula_and_factors_stay_non_negative():
    data = synthetic_ratings(seed=5)
    for biased in (False, True):
        model = NMF(biased=biased).fit(data)
        assert (model.user_factors >= 0).all() and (model.item_factors >= 0).all()
        u, i = data.user_idx[:20], data.item_idx[:20]
        want = np.sum(model.user_factors[u] * model.item_factors[i], axis=1)
        if biased:
            want += model.mu + model.user_bias[u] + model.item_bias[i]
        np.testing.assert_allclose(model.score(data.user_vocab.lookup(u), data.item_vocab.lookup(i)).values, want,
                                   rtol=1e-12)


@pytest.mark.parametrize("biased", [False, True])
def test_fallbacks_use_baseline_biases(biased):
    data = synthetic_ratings(extra_users=1, extra_items=1)
    model = NMF(biased=biased).fit(data)
    user, item = data.user_vocab.ids[2], data.item_vocab.ids[3]
    pred = model.score(["ghost", user, "ghost"], [item, "no-such-item", "no-such-item"])
    assert pred.fallback.all()
    mu = model.mu if biased else data.values.mean()
    np.testing.assert_allclose(pred.values, [mu + model.item_bias[3], mu + model.user_bias[2], mu], rtol=1e-6)
    assert model.user_bias[2] != 0 and model.item_bias[3] != 0


@pytest.mark.parametrize("bad", [{"n_factors": 0}, {"reg_users": -1.0}, {"init_low": -0.5}, {"init_high": 0.0},
                                 {"reg_pu": 0.1}])
def test_invalid_config_is_rejected(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        NMF(**bad)


def test_init_range_must_be_increasing():
    with pytest.raises(ConfigError, match="init_high"):
        NMF(init_low=0.5, init_high=0.2)


def test_registry_and_config_round_trip():
    model = create_model("nmf", {"n_factors": 7}, biased=True)
    assert isinstance(model, NMF) and model.predicts_ratings
    assert NMF(model.config.to_dict()).config == model.config
