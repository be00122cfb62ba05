"""Co-clustering: conformance, the vectorised reassignment against Surprise's loops, and Surprise itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError
from tastemaker.models import create_model
from tastemaker.models.baseline import Baseline
from tastemaker.models.coclustering import CoClustering, best_clusters, cluster_means, coclustering_epoch
from tastemaker.testing import CHECKS, holdout_rmse, random_holdout, synthetic_ratings


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_conformance(check):
    check(lambda: CoClustering())


# --- slow reference: Surprise's CoClustering.fit loops in plain Python --------------------------

def reference_means(rows, cu, ci, n_cu, n_ci, mu):
    def mean(groups, n):
        out = []
        for g in range(n):
            vals = [r for key, r in groups if key == g]
            out.append(sum(vals) / len(vals) if vals else mu)
        return out

    avg_u = mean([(cu[u], r) for u, _, r in rows], n_cu)
    avg_i = mean([(ci[i], r) for _, i, r in rows], n_ci)
    avg_co = mean([(cu[u] * n_ci + ci[i], r) for u, i, r in rows], n_cu * n_ci)
    return avg_u, avg_i, [avg_co[c * n_ci:(c + 1) * n_ci] for c in range(n_cu)]


def reference_epoch(rows, user_mean, item_mean, cu, ci, n_cu, n_ci, mu):
    avg_u, avg_i, avg_co = reference_means(rows, cu, ci, n_cu, n_ci, mu)
    cu, ci = list(cu), list(ci)
    for u in sorted({u for u, _, _ in rows}):
        errors = []
        for c in range(n_cu):
            errors.append(sum((r - (avg_co[c][ci[i]] + user_mean[u] - avg_u[c] + item_mean[i] - avg_i[ci[i]])) ** 2
                              for uu, i, r in rows if uu == u))
        cu[u] = int(np.argmin(errors))
    for i in sorted({i for _, i, _ in rows}):
        errors = []
        for d in range(n_ci):
            errors.append(sum((r - (avg_co[cu[u]][d] + user_mean[u] - avg_u[cu[u]] + item_mean[i] - avg_i[d])) ** 2
                              for u, ii, r in rows if ii == i))
        ci[i] = int(np.argmin(errors))
    return cu, ci


def _rows(data):
    return list(zip(data.user_idx.tolist(), data.item_idx.tolist(), data.values.astype(float).tolist(), strict=True))


def test_epochs_match_the_reference_loops():
    data = synthetic_ratings(n_users=25, n_items=18, per_user=6, seed=1, extra_users=2, extra_items=1)
    rows = _rows(data)
    users, items, ratings = data.user_idx.astype(np.int64), data.item_idx.astype(np.int64), data.values.astype(float)
    mu = float(ratings.mean())
    n_u, n_i = np.bincount(users, minlength=data.n_users), np.bincount(items, minlength=data.n_items)
    um = np.where(n_u > 0, np.bincount(users, ratings, data.n_users) / np.maximum(n_u, 1), mu)
    im = np.where(n_i > 0, np.bincount(items, ratings, data.n_items) / np.maximum(n_i, 1), mu)
    rng = np.random.default_rng(0)
    cu, ci = rng.integers(4, size=data.n_users), rng.integers(3, size=data.n_items)
    ref_cu, ref_ci = cu.tolist(), ci.tolist()
    for _ in range(5):
        cu, ci = coclustering_epoch(users, items, ratings, um, im, cu, ci, 4, 3, mu, n_u > 0, n_i > 0)
        ref_cu, ref_ci = reference_epoch(rows, um.tolist(), im.tolist(), ref_cu, ref_ci, 4, 3, mu)
        assert cu.tolist() == ref_cu and ci.tolist() == ref_ci
    for got, want in zip(cluster_means(users, items, ratings, cu, ci, 4, 3, mu),
                         reference_means(rows, ref_cu, ref_ci, 4, 3, mu), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_best_clusters_against_brute_force():
    rng = np.random.default_rng(2)
    rows, other = rng.integers(0, 6, 50), rng.integers(0, 3, 50)
    residual, M = rng.normal(size=50), rng.normal(size=(4, 3))
    got = best_clusters(rows, other, residual, M, 6)
    for r in range(6):
        mine = rows == r
        errors = [np.sum((residual[mine] - M[c, other[mine]]) ** 2) for c in range(4)]
        assert got[r] == int(np.argmin(errors))


def test_fit_matches_surprise_from_the_same_start():
    """Surprise's CoClustering, with its initial clusters, ends in the same clusters and means."""
    import surprise

    data = synthetic_ratings(n_users=40, n_items=25, per_user=8, seed=3)
    frame = pd.DataFrame({"u": data.user_idx, "i": data.item_idx, "r": data.values.astype(np.float64)})
    trainset = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5))).build_full_trainset()
    algo = surprise.CoClustering(n_cltr_u=3, n_cltr_i=4, n_epochs=6, random_state=5).fit(trainset)
    u = np.array([trainset.to_inner_uid(x) for x in frame.u])
    i = np.array([trainset.to_inner_iid(x) for x in frame.i])
    r = frame.r.to_numpy()
    rng = np.random.RandomState(5)
    cu = rng.randint(3, size=trainset.n_users).astype(np.int64)
    ci = rng.randint(4, size=trainset.n_items).astype(np.int64)
    um, im = np.bincount(u, r) / np.bincount(u), np.bincount(i, r) / np.bincount(i)
    for _ in range(6):
        cu, ci = coclustering_epoch(u, i, r, um, im, cu, ci, 3, 4, r.mean())
    np.testing.assert_array_equal(cu, algo.cltr_u)
    np.testing.assert_array_equal(ci, algo.cltr_i)
    avg_u, avg_i, avg_co = cluster_means(u, i, r, cu, ci, 3, 4, r.mean())
    np.testing.assert_allclose(avg_co, algo.avg_cocltr, rtol=1e-12)
    np.testing.assert_allclose(avg_u, algo.avg_cltr_u, rtol=1e-12)
    np.testing.assert_allclose(avg_i, algo.avg_cltr_i, rtol=1e-12)


# --- the model ----------------------------------------------------------------------------------

def test_predictions_are_the_formula():
    data = synthetic_ratings(seed=4)
    model = CoClustering(n_user_clusters=4, n_item_clusters=3).fit(data)
    u, i = data.user_idx[:30], data.item_idx[:30]
    c, d = model.user_cluster[u], model.item_cluster[i]
    want = (model.cocluster_mean[c, d] + model.user_mean[u] - model.user_cluster_mean[c] + model.item_mean[i]
            - model.item_cluster_mean[d])
    np.testing.assert_allclose(model.score(data.user_vocab.lookup(u), data.item_vocab.lookup(i)).values, want,
                               rtol=1e-12)


def test_restarts_keep_the_lowest_training_error():
    data = synthetic_ratings(seed=5)
    one = CoClustering(n_user_clusters=4, n_item_clusters=4, n_epochs=3, n_init=1).fit(data)
    many = CoClustering(n_user_clusters=4, n_item_clusters=4, n_epochs=3, n_init=6).fit(data)
    assert many.train_rmse <= one.train_rmse
    pred = many._score_pairs(data.user_idx.astype(np.int64), data.item_idx.astype(np.int64))  # unclipped
    assert many.train_rmse == pytest.approx(np.sqrt(np.mean((pred - data.values) ** 2)), rel=1e-6)


def test_shrinkage_pulls_means_towards_the_global_mean():
    data = synthetic_ratings(seed=6)
    model = CoClustering(shrinkage=5.0).fit(data)
    u = data.user_idx == 0
    r = data.values[u].astype(float)
    mu = float(data.values.mean())
    assert model.user_mean[0] == pytest.approx((r.sum() + 5 * mu) / (len(r) + 5))


def _taste_groups(seed: int) -> Interactions:
    """Three user groups × three item groups, each co-cluster with its own mean rating."""
    rng = np.random.default_rng(seed)
    table = np.array([[5.0, 2.0, 3.0], [1.0, 4.0, 3.0], [3.0, 3.0, 5.0]])
    rows = []
    for u in range(150):
        for i in rng.choice(60, size=15, replace=False):
            rows.append((u, int(i), float(np.clip(np.rint(table[u % 3, i % 3] + rng.normal(0, 0.4)), 1, 5))))
    return Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "rating"]), rating_scale=(1.0, 5.0))


def test_beats_baseline_on_co_cluster_structure():
    train, test = random_holdout(_taste_groups(0), 0)
    cc = holdout_rmse(CoClustering(n_user_clusters=3, n_item_clusters=3, n_init=5).fit(train), test)
    base = holdout_rmse(Baseline().fit(train), test)
    assert cc < 0.8 * base, f"co_clustering RMSE {cc:.4f} is not clearly below the baseline's {base:.4f}"


def test_fallbacks_are_the_known_mean():
    data = synthetic_ratings(extra_users=1, extra_items=1)
    model = CoClustering().fit(data)
    user, item = data.user_vocab.ids[2], data.item_vocab.ids[3]
    pred = model.score(["ghost", data.user_vocab.ids[-1], user, "ghost"], [item, item, "no-such-item", "nope"])
    assert pred.fallback.all()
    np.testing.assert_allclose(pred.values, [model.item_mean[3], model.item_mean[3], model.user_mean[2],
                                             data.values.mean()], rtol=1e-6)


@pytest.mark.parametrize("bad", [{"n_user_clusters": 0}, {"n_init": 0}, {"shrinkage": -1.0}, {"n_cltr_u": 3}])
def test_invalid_config_is_rejected(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        CoClustering(**bad)


def test_registry_and_config_round_trip():
    model = create_model("co_clustering", {"n_user_clusters": 7})
    assert isinstance(model, CoClustering) and model.predicts_ratings
    assert CoClustering(model.config.to_dict()).config == model.config
