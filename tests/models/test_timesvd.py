"""timeSVD++: conformance, the SGD kernel against a slow per-rating reference, time features, and
predictions with and without the time of each pair."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.models import create_model
from tastemaker.models._kernels import sgd_timesvdpp_epoch
from tastemaker.models.svdpp import SVDpp, user_grouped_order
from tastemaker.models.timesvd import DAY, TimeSVDpp
from tastemaker.testing import CHECKS, random_holdout, synthetic_ratings

ALL_ON = {"n_factors": 4, "n_epochs": 8, "n_bins": 4, "lr_bin": 0.01, "lr_scale": 0.005, "lr_drift": 0.001,
          "lr_day": 0.01}


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_conformance(check):
    check(lambda: TimeSVDpp(**ALL_ON))


@pytest.mark.parametrize("rule", ["last", "latest"])
def test_conformance_of_the_other_time_rules(rule):
    for check in (CHECKS["check_scores_match_ranking"], CHECKS["check_save_load_roundtrip"]):
        check(lambda: TimeSVDpp(**ALL_ON, predict_time=rule))


# --- the kernel against a slow reference ------------------------------------------------------

def reference_epoch(users, items, ratings, order, dev, bins, days, N, mu, bu, bi, alpha, bi_bin, bu_day, cu, cu_day,
                    P, Q, Y, lrs, regs):
    """timeSVD++ per-rating SGD in plain Python, every y_j of N(u) stepped on every rating."""
    lr_b, lr_a, lr_bin, lr_day, lr_c, lr, lr_y = lrs
    reg_b, reg_a, reg_bin, reg_day, reg_c, reg, reg_y = regs
    sse = 0.0
    k = len(P[0])
    for row in order:
        u, i, r, dv, b, d = users[row], items[row], ratings[row], dev[row], bins[row], days[row]
        sq = len(N[u]) ** 0.5
        z = [sum(Y[j][f] for j in N[u]) / sq for f in range(k)]
        item_b = bi[i] + bi_bin[i][b]
        scale = cu[u] + cu_day[d]
        est = mu + bu[u] + alpha[u] * dv + bu_day[d] + item_b * scale
        est += sum(Q[i][f] * (P[u][f] + z[f]) for f in range(k))
        err = r - est
        sse += err * err
        bu[u] += lr_b * (err - reg_b * bu[u])
        alpha[u] += lr_a * (err * dv - reg_a * alpha[u])
        bu_day[d] += lr_day * (err - reg_day * bu_day[d])
        bi[i] += lr_b * (err * scale - reg_b * bi[i])
        bi_bin[i][b] += lr_bin * (err * scale - reg_bin * bi_bin[i][b])
        cu[u] += lr_c * (err * item_b - reg_c * (cu[u] - 1.0))
        cu_day[d] += lr_c * (err * item_b - reg_c * cu_day[d])
        for f in range(k):
            puf, qif = P[u][f], Q[i][f]
            P[u][f] += lr * (err * qif - reg * puf)
            Q[i][f] += lr * (err * (puf + z[f]) - reg * qif)
            for j in N[u]:
                Y[j][f] += lr_y * (err * qif / sq - reg_y * Y[j][f])
    return sse


def test_kernel_equals_the_per_rating_update():
    rng = np.random.default_rng(0)
    n_users, n_items, n, k, n_bins, n_days = 5, 6, 20, 3, 3, 8
    pairs = rng.choice(n_users * n_items, size=n, replace=False)
    users, items = (pairs // n_items).astype(np.int64), (pairs % n_items).astype(np.int64)
    ratings = rng.integers(1, 6, n).astype(np.float64)
    dev = rng.normal(0, 2, n)
    bins = rng.integers(0, n_bins, n).astype(np.int64)
    days = rng.integers(0, n_days, n).astype(np.int64)
    seen = sp.csr_matrix((np.ones(n), (users, items)), shape=(n_users, n_items))
    N = [seen[u].indices.tolist() for u in range(n_users)]
    params = [rng.normal(0, 0.1, n_users), rng.normal(0, 0.1, n_items), rng.normal(0, 0.1, n_users),
              rng.normal(0, 0.1, (n_items, n_bins)), rng.normal(0, 0.1, n_days), rng.normal(1, 0.1, n_users),
              rng.normal(0, 0.1, n_days), rng.normal(0, 0.3, (n_users, k)), rng.normal(0, 0.3, (n_items, k)),
              rng.normal(0, 0.3, (n_items, k))]
    ref = [p.tolist() for p in params]
    lrs = np.array([0.03, 0.002, 0.02, 0.04, 0.01, 0.05, 0.02])
    regs = np.array([0.02, 1.0, 0.1, 0.05, 0.3, 0.04, 0.1])
    mu = float(ratings.mean())
    for _ in range(2):
        order = user_grouped_order(users, n_users, rng)
        sse = sgd_timesvdpp_epoch(users, items, ratings, order, dev, bins, days, seen.indptr.astype(np.int64),
                                  seen.indices.astype(np.int64), mu, *params, lrs, regs, np.empty((3, k)))
        sse_ref = reference_epoch(users.tolist(), items.tolist(), ratings.tolist(), order.tolist(), dev.tolist(),
                                  bins.tolist(), days.tolist(), N, mu, *ref, lrs.tolist(), regs.tolist())
        assert sse == pytest.approx(sse_ref, rel=1e-12)
        for got, want in zip(params, ref, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)


def test_time_features_against_loops():
    data = synthetic_ratings(n_users=8, n_items=10, per_user=5, seed=1)
    model = TimeSVDpp(n_factors=2, n_epochs=1, n_bins=7, beta=0.4).fit(data)
    times = data.timestamps
    lo, hi = int(times.min()), int(times.max())
    for u, t in zip(data.user_idx.tolist(), times.tolist(), strict=True):
        mean_t = np.mean(times[data.user_idx == u])
        diff = (t - mean_t) / DAY
        assert model._dev(np.array([u]), np.array([t]))[0] == pytest.approx(np.sign(diff) * abs(diff) ** 0.4)
        assert model._bin(np.array([t]))[0] == min(int((t - lo) / ((hi - lo + 1) / 7)), 6)
        d = model._day_index(np.array([u]), np.array([t]))[0]
        assert model.day_keys[d] == (u << 32) + t // DAY
    assert model._day_index(np.array([0]), np.array([hi + 30 * DAY]))[0] == -1, "an unseen day has no index"
    assert model.user_last_time[3] == times[data.user_idx == 3].max()


# --- predictions ------------------------------------------------------------------------------

def _formula(model, u, i, t, day_terms):
    dv = model._dev(np.array([u]), np.array([t]))[0]
    d = model._day_index(np.array([u]), np.array([t]))[0]
    if day_terms:
        b_day, c_day = (model.day_bias[d], model.day_scale[d]) if d >= 0 else (0.0, 0.0)
    else:
        b_day, c_day = model.user_day_bias[u], model.user_day_scale[u]
    b = model._bin(np.array([t]))[0]
    item_b = model.item_bias[i] + model.item_bin_bias[i, b]
    return (model.mu + model.user_bias[u] + model.drift[u] * dv + b_day + item_b * (model.user_scale[u] + c_day)
            + model.item_factors[i] @ model.user_factors[u])


def test_predictions_at_given_times_are_the_formula():
    data = synthetic_ratings(seed=4)
    model = TimeSVDpp(**ALL_ON).fit(data)
    u, i = data.user_idx[:25].astype(np.int64), data.item_idx[:25].astype(np.int64)
    t = data.timestamps[:25].copy()
    t[::3] += 40 * DAY  # days the users did not rate in training
    got = model.predict_indices(u, i, t)
    want = np.clip([_formula(model, *x, day_terms=True) for x in zip(u, i, t, strict=True)], 1, 5)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    by_id = model.predict(data.user_vocab.lookup(u), data.item_vocab.lookup(i), timestamps=t)
    np.testing.assert_allclose(by_id.values, got, rtol=1e-12)
    assert not by_id.fallback.any()
    assert not np.allclose(got, model.predict_indices(u, i)), "the time of each pair must matter"


@pytest.mark.parametrize("rule", ["neutral", "last", "latest"])
def test_predictions_without_times_follow_the_rule(rule):
    data = synthetic_ratings(seed=5)
    model = TimeSVDpp(**ALL_ON, predict_time=rule).fit(data)
    u, i = data.user_idx[:20].astype(np.int64), data.item_idx[:20].astype(np.int64)
    if rule == "neutral":
        times = np.rint(model.user_mean_time[u]).astype(np.int64)
    elif rule == "last":
        times = model.user_last_time[u]
    else:
        times = np.full(len(u), data.timestamps.max())
    raw = [_formula(model, *x, day_terms=rule != "neutral") for x in zip(u, i, times, strict=True)]
    np.testing.assert_allclose(model.score(data.user_vocab.lookup(u), data.item_vocab.lookup(i)).values, raw,
                               rtol=1e-12)
    if rule == "neutral":
        assert np.all(model._dev(u, times) == pytest.approx(0.0, abs=0.05))
    else:
        np.testing.assert_allclose(model.predict_indices(u, i), model.predict_indices(u, i, times), rtol=1e-12)


def test_the_rating_protocol_passes_test_timestamps():
    from tastemaker.evaluation.protocols import rating_scores

    data = synthetic_ratings(seed=7)
    train, test = data.select(np.arange(len(data)) % 5 != 0), data.select(np.arange(len(data)) % 5 == 0)
    model = TimeSVDpp(**ALL_ON).fit(train)
    _, pred, _ = rating_scores(model, test)
    np.testing.assert_allclose(pred, model.predict_indices(test.user_idx, test.item_idx, test.timestamps), rtol=1e-12)
    assert not np.allclose(pred, model.predict_indices(test.user_idx, test.item_idx))


def test_predict_with_one_time_broadcasts_it():
    data = synthetic_ratings(seed=8)
    model = TimeSVDpp(**ALL_ON).fit(data)
    user, items, t = data.user_vocab.ids[1], data.item_vocab.ids[:6], int(data.timestamps[3])
    got = model.predict(user, items, timestamps=t)
    want = model.predict_indices(np.full(6, 1), np.arange(6), np.full(6, t))
    np.testing.assert_allclose(got.values, want, rtol=1e-12)


def test_fallbacks_with_and_without_times():
    data = synthetic_ratings(extra_users=1, extra_items=1)
    model = TimeSVDpp(**ALL_ON).fit(data)
    users = np.array([-1, data.n_users - 1, 2, 2])
    items = np.array([3, 3, -1, data.n_items - 1])
    mu, bu, bi = model.mu, model.user_bias[2], model.item_bias[3]
    want = np.clip([mu + bi, mu + bi, mu + bu, mu + bu], 1, 5)
    np.testing.assert_allclose(model.predict_indices(users, items), want, rtol=1e-12)
    np.testing.assert_allclose(model.predict_indices(users, items, np.full(4, 1_000_000)), want, rtol=1e-12)
    pred = model.predict(["ghost", data.user_vocab.ids[2]], [data.item_vocab.ids[3], "no-such-item"],
                         timestamps=1_000_000)
    assert pred.fallback.all()
    np.testing.assert_allclose(pred.values, np.clip([mu + bi, mu + bu], 1, 5), rtol=1e-12)


def test_save_load_keeps_time_aware_predictions(tmp_path):
    data = synthetic_ratings(seed=6)
    model = TimeSVDpp(**ALL_ON).fit(data)
    u, i, t = data.user_idx[:30], data.item_idx[:30], data.timestamps[:30]
    loaded = TimeSVDpp.load(model.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict_indices(u, i, t), model.predict_indices(u, i, t), rtol=1e-12)
    np.testing.assert_allclose(loaded.predict_indices(u, i), model.predict_indices(u, i), rtol=1e-12)


# --- learning ---------------------------------------------------------------------------------

def _sessions(seed: int) -> Interactions:
    """Ratings made in three sessions per user (on different days), each with its own mood offset."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 150, 50
    bi = rng.normal(0, 0.5, n_items)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=24, replace=False)
        for s in range(3):
            mood = rng.normal(0, 0.8)
            day = 10_000 + rng.integers(0, 200)
            for j, i in enumerate(items[s * 8:(s + 1) * 8]):
                r = float(np.clip(np.rint(3.4 + bi[i] + mood + rng.normal(0, 0.3)), 1, 5))
                rows.append((u, int(i), r, day * DAY + 60 * j))
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    return Interactions.from_frame(frame, rating_scale=(1.0, 5.0))


@pytest.mark.parametrize("seed", [0, 1])
def test_session_biases_beat_svdpp_when_times_are_known(seed):
    train, test = random_holdout(_sessions(seed), seed)

    def rmse(pred):
        return float(np.sqrt(np.mean((pred - test.values) ** 2)))

    cfg = {"n_factors": 8, "n_epochs": 30, "learning_rate": 0.01}
    timed = TimeSVDpp(**cfg, lr_day=0.01, reg_day=0.02).fit(train)
    plain = rmse(SVDpp(**cfg).fit(train).predict_indices(test.user_idx, test.item_idx))
    with_times = rmse(timed.predict_indices(test.user_idx, test.item_idx, test.timestamps))
    assert with_times < 0.85 * plain, f"time_svdpp {with_times:.4f} vs svdpp {plain:.4f}"


# --- errors and config ------------------------------------------------------------------------

def test_data_without_timestamps_is_a_data_error():
    data = synthetic_ratings()
    bare = Interactions.from_arrays(data.user_vocab.lookup(data.user_idx), data.item_vocab.lookup(data.item_idx),
                                    data.values, rating_scale=(1.0, 5.0))
    with pytest.raises(DataError, match="timestamps"):
        TimeSVDpp().fit(bare)


def test_predict_needs_one_time_per_pair():
    data = synthetic_ratings()
    model = TimeSVDpp(n_factors=2, n_epochs=1).fit(data)
    with pytest.raises(ValueError, match="timestamps"):
        model.predict(data.user_vocab.ids[:3], data.item_vocab.ids[:3], timestamps=[1, 2])


def test_divergence_is_a_config_error_naming_the_learning_rates():
    with pytest.raises(ConfigError, match="lr_drift"):
        TimeSVDpp(learning_rate=50.0, n_epochs=3).fit(synthetic_ratings())


@pytest.mark.parametrize("bad", [{"n_bins": 0}, {"lr_day": -1.0}, {"beta": 0.0}, {"predict_time": "now"}])
def test_invalid_config_is_rejected(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        TimeSVDpp(**bad)


def test_registry_and_config_round_trip():
    model = create_model("time_svdpp", {"n_bins": 5}, lr_day=0.01)
    assert isinstance(model, TimeSVDpp) and model.predicts_ratings
    assert TimeSVDpp(model.config.to_dict()).config == model.config
