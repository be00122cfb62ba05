"""SVD++: conformance, the lazy-y SGD kernel against the per-rating update, and against Surprise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError
from tastemaker.models import create_model
from tastemaker.models._kernels import sgd_svdpp_epoch
from tastemaker.models.baseline import Baseline
from tastemaker.models.svdpp import SVDpp, SVDppConfig, implicit_sums, user_grouped_order
from tastemaker.testing import CHECKS, holdout_rmse, random_holdout, synthetic_ratings


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_conformance(check):
    check(lambda: SVDpp(n_factors=8, n_epochs=10))


# --- the kernel against the slow per-rating update ----------------------------------------------

def reference_epoch(users, items, ratings, order, N, mu, bu, bi, P, Q, Y, lr_b, lr, lr_y, reg_b, reg, reg_y):
    """Surprise's SVDpp epoch in plain Python: the implicit sum recomputed and every y_j of N(u)
    stepped on every rating."""
    sse = 0.0
    k = len(P[0])
    for row in order:
        u, i, r = users[row], items[row], ratings[row]
        sq = len(N[u]) ** 0.5
        z = [sum(Y[j][f] for j in N[u]) / sq for f in range(k)]
        err = r - (mu + bu[u] + bi[i] + sum(Q[i][f] * (P[u][f] + z[f]) for f in range(k)))
        sse += err * err
        bu[u] += lr_b * (err - reg_b * bu[u])
        bi[i] += lr_b * (err - reg_b * bi[i])
        for f in range(k):
            puf, qif = P[u][f], Q[i][f]
            P[u][f] += lr * (err * qif - reg * puf)
            Q[i][f] += lr * (err * (puf + z[f]) - reg * qif)
            for j in N[u]:
                Y[j][f] += lr_y * (err * qif / sq - reg_y * Y[j][f])
    return sse


def _small_case(seed=0, n_users=6, n_items=7, n_ratings=25, k=3):
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, size=n_ratings, replace=False)
    users, items = (pairs // n_items).astype(np.int64), (pairs % n_items).astype(np.int64)
    ratings = rng.integers(1, 6, n_ratings).astype(np.float64)
    seen = sp.csr_matrix((np.ones(n_ratings), (users, items)), shape=(n_users, n_items))
    params = [rng.normal(0, 0.1, n_users), rng.normal(0, 0.1, n_items)]
    params += [rng.normal(0, 0.3, (n, k)) for n in (n_users, n_items, n_items)]
    return users, items, ratings, seen, params


@pytest.mark.parametrize("grouped", [True, False], ids=["user-grouped order", "any order"])
def test_kernel_equals_the_per_rating_update(grouped):
    users, items, ratings, seen, params = _small_case()
    mu = float(ratings.mean())
    N = [seen[u].indices.tolist() for u in range(seen.shape[0])]
    ref = [p.tolist() for p in params]
    rng = np.random.default_rng(1)
    for lrs in ((0.05, 0.04, 0.03, 0.02, 0.05, 0.1), (0.1, 0.02, 0.06, 0.0, 0.3, 0.02)):
        order = user_grouped_order(users, seen.shape[0], rng) if grouped else rng.permutation(len(ratings))
        sse = sgd_svdpp_epoch(users, items, ratings, order, seen.indptr.astype(np.int64),
                              seen.indices.astype(np.int64), mu, *params, *lrs, np.empty((3, 3)))
        sse_ref = reference_epoch(users.tolist(), items.tolist(), ratings.tolist(), order.tolist(), N, mu, *ref,
                                  *lrs)
        assert sse == pytest.approx(sse_ref, rel=1e-12)
        for got, want in zip(params, ref, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)


def test_fit_is_the_reference_algorithm_in_user_grouped_order():
    data = synthetic_ratings(n_users=10, n_items=8, per_user=4, seed=2)
    cfg = SVDppConfig(n_factors=3, n_epochs=3, learning_rate=0.02, learning_rate_implicit=0.01, reg=0.05,
                      reg_bias=0.01, reg_implicit=0.1, init_std=0.2, seed=9)
    model = SVDpp(cfg).fit(data)

    rng = np.random.default_rng(cfg.seed)
    P, Q, Y = (rng.normal(0, cfg.init_std, (n, cfg.n_factors)).tolist() for n in (data.n_users, data.n_items,
                                                                                 data.n_items))
    bu, bi = [0.0] * data.n_users, [0.0] * data.n_items
    ratings = data.values.astype(np.float64)
    mu = float(ratings.mean())
    N = [data.seen[u].indices.tolist() for u in range(data.n_users)]
    sse = []
    for _ in range(cfg.n_epochs):
        order = user_grouped_order(data.user_idx, data.n_users, rng).tolist()
        sse.append(reference_epoch(data.user_idx.tolist(), data.item_idx.tolist(), ratings.tolist(), order, N, mu,
                                   bu, bi, P, Q, Y, cfg.learning_rate, cfg.learning_rate,
                                   cfg.learning_rate_implicit, cfg.reg_bias, cfg.reg, cfg.reg_implicit))
    for got, want in ((model.user_bias, bu), (model.item_bias, bi), (model.raw_user_factors, P),
                      (model.item_factors, Q), (model.implicit_factors, Y)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(model.epoch_rmse, np.sqrt(np.array(sse) / len(data)), rtol=1e-10)


def test_kernel_reproduces_surprise_svdpp():
    """Started from Surprise's initial factors and run in its order (users by inner id, ratings in
    insertion order), the kernel gives Surprise's fitted parameters."""
    import surprise
    data = synthetic_ratings(n_users=15, n_items=12, per_user=5, seed=3)
    frame = pd.DataFrame({"u": data.user_idx, "i": data.item_idx, "r": data.values.astype(np.float64)})
    trainset = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5))).build_full_trainset()
    algo = surprise.SVDpp(n_factors=4, n_epochs=3, lr_all=0.01, reg_all=0.05, random_state=0).fit(trainset)

    rows = list(trainset.all_ratings())
    users = np.array([u for u, _, _ in rows], dtype=np.int64)
    items = np.array([i for _, i, _ in rows], dtype=np.int64)
    ratings = np.array([r for _, _, r in rows])
    seen = sp.csr_matrix((np.ones(len(rows)), (users, items)), shape=(trainset.n_users, trainset.n_items))
    rng = np.random.RandomState(0)
    P, Q, Y = (rng.normal(0, 0.1, (n, 4)) for n in (trainset.n_users, trainset.n_items, trainset.n_items))
    bu, bi = np.zeros(trainset.n_users), np.zeros(trainset.n_items)
    for _ in range(3):
        sgd_svdpp_epoch(users, items, ratings, np.arange(len(rows)), seen.indptr.astype(np.int64),
                        seen.indices.astype(np.int64), trainset.global_mean, bu, bi, P, Q, Y,
                        0.01, 0.01, 0.01, 0.05, 0.05, 0.05, np.empty((3, 4)))
    for got, want in ((bu, algo.bu), (bi, algo.bi), (P, algo.pu), (Q, algo.qi), (Y, algo.yj)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_user_grouped_order_is_a_permutation_with_contiguous_shuffled_users():
    users = np.repeat(np.arange(5), [3, 1, 4, 2, 5])
    rng = np.random.default_rng(0)
    a, b = user_grouped_order(users, 6, rng), user_grouped_order(users, 6, rng)
    for order in (a, b):
        assert sorted(order.tolist()) == list(range(len(users)))
        runs = users[order][np.r_[True, np.diff(users[order]) != 0]]
        assert len(runs) == len(set(runs.tolist())) == 5, "each user's rows must form one run"
    assert not np.array_equal(a, b)
    assert not np.array_equal(users[a], np.sort(users)), "users must be visited in a shuffled order"


def test_implicit_sums_against_a_loop():
    rng = np.random.default_rng(4)
    m = sp.random(7, 9, density=0.4, random_state=5, format="csr")
    m = sp.csr_matrix(sp.diags((np.arange(7) != 3).astype(float)) @ m)
    m.eliminate_zeros()
    assert m[3].nnz == 0
    Y = rng.normal(size=(9, 4))
    z = implicit_sums(m.indptr, m.indices, Y)
    for u in range(7):
        idx = m[u].indices
        want = Y[idx].sum(axis=0) / np.sqrt(len(idx)) if len(idx) else np.zeros(4)
        np.testing.assert_allclose(z[u], want, rtol=1e-12, atol=1e-15)


# --- the model ----------------------------------------------------------------------------------

def test_predictions_are_the_svdpp_formula():
    data = synthetic_ratings(seed=5)
    model = SVDpp(n_factors=6, n_epochs=5).fit(data)
    u, i = data.user_idx[:30], data.item_idx[:30]
    want = []
    for uu, ii in zip(u.tolist(), i.tolist(), strict=True):
        hist = data.seen[uu].indices
        eff = model.raw_user_factors[uu] + model.implicit_factors[hist].sum(axis=0) / np.sqrt(len(hist))
        want.append(model.mu + model.user_bias[uu] + model.item_bias[ii] + model.item_factors[ii] @ eff)
    got = model.score(data.user_vocab.lookup(u), data.item_vocab.lookup(i))
    assert not got.fallback.any()
    np.testing.assert_allclose(got.values, want, rtol=1e-12)


def test_fallbacks_use_the_known_bias():
    data = synthetic_ratings(extra_users=1, extra_items=1)
    model = SVDpp(n_factors=5, n_epochs=5).fit(data)
    user, item = data.user_vocab.ids[2], data.item_vocab.ids[3]
    pred = model.score(["ghost", data.user_vocab.ids[-1], user, user],
                       [item, item, "no-such-item", data.item_vocab.ids[-1]])
    assert pred.fallback.all()
    mu, bu, bi = model.mu, model.user_bias[2], model.item_bias[3]
    np.testing.assert_allclose(pred.values, [mu + bi, mu + bi, mu + bu, mu + bu], rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_beats_baseline_on_held_out_ratings(seed):
    train, test = random_holdout(synthetic_ratings(n_users=200, n_items=60, per_user=20, seed=seed), seed)
    svdpp = holdout_rmse(SVDpp(learning_rate=0.01, n_epochs=40).fit(train), test)
    base = holdout_rmse(Baseline().fit(train), test)
    assert svdpp < 0.9 * base, f"svdpp RMSE {svdpp:.4f} is not clearly below the baseline's {base:.4f}"


def test_implicit_feedback_carries_signal():
    """Even users rated item 0 and rate about 4, odd users never did and rate about 2. With the
    user biases held back by a heavy regularisation, whether u rated item 0 — visible only through
    N(u) — is what tells the groups apart: SVD++ beats the same model with its y_j pinned near zero
    (reg_implicit huge) on held-out ratings."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(300):
        marked = u % 2 == 0
        chosen = rng.choice(np.arange(1, 40), size=12, replace=False)
        if marked:
            chosen[0] = 0
        for i in chosen:
            rows.append((u, int(i), float(np.clip(3 + (1 if marked else -1) + rng.normal(0, 0.3), 1, 5))))
    data = Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "rating"]), rating_scale=(1.0, 5.0))
    test_mask = np.zeros(len(data), dtype=bool)
    test_mask[np.arange(len(data)) % 12 == 5] = True
    train, test = data.select(~test_mask), data.select(test_mask)
    with_y = holdout_rmse(SVDpp(n_factors=4, n_epochs=30, learning_rate=0.01, reg_bias=1.0).fit(train), test)
    without = holdout_rmse(SVDpp(n_factors=4, n_epochs=30, learning_rate=0.01, reg_bias=1.0, reg_implicit=99.0,
                                 learning_rate_implicit=0.01).fit(train), test)
    assert with_y < without - 0.02, (with_y, without)


def test_divergence_is_a_config_error_naming_the_learning_rate():
    with pytest.raises(ConfigError, match="learning_rate"):
        SVDpp(learning_rate=50.0, n_epochs=3).fit(synthetic_ratings())


def test_same_seed_same_model_other_seed_other_model():
    data = synthetic_ratings()
    a, b, c = (SVDpp(n_factors=4, n_epochs=3, seed=s).fit(data) for s in (3, 3, 4))
    assert np.array_equal(a.user_factors, b.user_factors) and np.array_equal(a.implicit_factors, b.implicit_factors)
    assert not np.array_equal(a.user_factors, c.user_factors)


@pytest.mark.parametrize("bad", [{"n_factors": 0}, {"learning_rate": 0.0}, {"reg_implicit": -1.0},
                                 {"learning_rate_implicit": 0.0}, {"reg_y": 0.1}])
def test_invalid_config_is_rejected(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        SVDpp(**bad)


def test_registry_and_config_round_trip():
    model = create_model("svdpp", {"n_factors": 7}, reg=0.1)
    assert isinstance(model, SVDpp) and model.predicts_ratings
    assert SVDpp(model.config.to_dict()).config == model.config
