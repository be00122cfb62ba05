"""Tests of the learned blends (`rating_blend`, `rank_blend`): conformance, holdout discipline, weights, persistence."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from tastemaker.data.interactions import Interactions
from tastemaker.data.splits import validation_split
from tastemaker.errors import ConfigError
from tastemaker.models import create_model
from tastemaker.models.base import Recommender
from tastemaker.models.baseline import Baseline
from tastemaker.models.blend import (
    RankBlend,
    RatingBlend,
    blend_design,
    fit_pairwise_logistic,
    fit_ridge,
    normalized_scores,
    search_ndcg_weights,
)
from tastemaker.models.registry import register
from tastemaker.testing import CHECKS, holdout_rmse, random_holdout, synthetic_implicit, synthetic_ratings

MEMBERS = [{"name": "baseline"}, {"name": "biased_mf", "params": {"n_factors": 4, "n_epochs": 5}},
           {"name": "bayesian_mf", "params": {"n_factors": 3, "n_samples": 4, "burn_in": 1}}]


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_conformance(check):
    check(lambda: RatingBlend(members=MEMBERS))


# --- test members -------------------------------------------------------------------------------

def _a(u, i):
    return np.sin(u * 1.3) + np.cos(i * 0.7)


def _b(u, i):
    return ((u * 7 + i * 3) % 5) / 2.0


class _Formula(Recommender):
    """A 'model' whose prediction is a fixed function of the indices (it learns nothing)."""

    predicts_ratings = True
    formula = staticmethod(_a)

    def _fit(self, data):
        pass

    def _score(self, users):
        return self.formula(users[:, None].astype(float), np.arange(self.n_items)[None, :].astype(float))


@register
class FormulaA(_Formula):
    name = "_test_formula_a"


@register
class FormulaB(_Formula):
    name = "_test_formula_b"
    formula = staticmethod(_b)


@register
class Recorder(Baseline):
    """Baseline that records the (user, item) pairs it was fitted on and asked to predict."""

    name = "_test_recorder"
    log: ClassVar[list[tuple[str, set]]] = []

    def _fit(self, data):
        Recorder.log.append(("fit", set(zip(data.user_idx.tolist(), data.item_idx.tolist(), strict=True))))
        super()._fit(data)

    def predict_indices(self, users, items, timestamps=None):
        Recorder.log.append(("predict", set(zip(np.asarray(users).tolist(), np.asarray(items).tolist(), strict=True))))
        return super().predict_indices(users, items, timestamps)


# --- holdout discipline -----------------------------------------------------------------------------

def test_holdout_never_overlaps_the_members_fit_data_and_refit_sees_everything():
    data = synthetic_ratings(seed=1)
    everything = set(zip(data.user_idx.tolist(), data.item_idx.tolist(), strict=True))
    Recorder.log.clear()
    RatingBlend(members=[{"name": "_test_recorder"}], holdout_fraction=0.25, seed=3).fit(data)
    (kind1, fitted), (kind2, held), (kind3, refitted) = Recorder.log[:3]
    assert (kind1, kind2, kind3) == ("fit", "predict", "fit")
    assert fitted and held and not fitted & held, "the blend weights must be fitted on ratings the members never saw"
    assert fitted | held == everything
    assert 0.2 < len(held) / len(everything) < 0.3
    assert refitted == everything, "refit must use all the training data"
    Recorder.log.clear()
    RatingBlend(members=[{"name": "_test_recorder"}], holdout_fraction=0.25, seed=3, refit=False).fit(data)
    assert [k for k, _ in Recorder.log] == ["fit", "predict"]


def test_holdout_is_seeded():
    data = synthetic_ratings(seed=1)
    held = []
    for seed in (3, 3, 4):
        Recorder.log.clear()
        RatingBlend(members=[{"name": "_test_recorder"}], seed=seed).fit(data)
        held.append(Recorder.log[1][1])
    assert held[0] == held[1] and held[0] != held[2]


# --- weights --------------------------------------------------------------------------------------------

def test_ridge_recovers_a_known_mixture():
    rng = np.random.default_rng(0)
    X = rng.normal(3, 1, (2000, 3))
    y = 0.4 + 0.5 * X[:, 0] + 0.3 * X[:, 1] + 0.2 * X[:, 2] + rng.normal(0, 0.01, 2000)
    coef, intercept, mean, scale = fit_ridge(X, y, 0.0)
    np.testing.assert_allclose(coef / scale, [0.5, 0.3, 0.2], atol=0.01)
    np.testing.assert_allclose(intercept - (mean / scale) @ coef, 0.4, atol=0.05)
    shrunk, *_ = fit_ridge(X, y, 1e4)
    assert np.all(np.abs(shrunk) < np.abs(coef)), "the ridge penalty must shrink the weights"


def test_blend_recovers_the_mixture_its_members_make():
    rng = np.random.default_rng(1)
    pairs = rng.choice(50 * 40, size=1500, replace=False)
    users, items = pairs // 40, pairs % 40
    ratings = 1.0 + 0.7 * _a(users, items) + 0.3 * _b(users, items)
    data = Interactions.from_arrays(users, items, ratings, rating_scale=(-100.0, 100.0))
    blend = RatingBlend(members=[{"name": "_test_formula_a"}, {"name": "_test_formula_b"}], meta_features=False,
                        ridge=0.0).fit(data)
    np.testing.assert_allclose(list(blend.weights.values()), [0.7, 0.3], atol=1e-6)
    pred = blend.predict_indices(data.user_idx[:20], data.item_idx[:20])
    np.testing.assert_allclose(pred, data.values[:20], atol=1e-4)


def test_blend_design_with_meta_features():
    preds = np.array([[1.0, 2.0], [3.0, 4.0]])
    meta = np.array([[10.0, 20.0, 30.0], [1.0, 2.0, 3.0]])
    X = blend_design(preds, meta)
    assert X.shape == (2, 2 + 3 + 6)
    np.testing.assert_allclose(X[0], [1, 2, 10, 20, 30, 10, 20, 30, 20, 40, 60])
    assert blend_design(preds, None) is preds


def test_blend_beats_its_weaker_members_on_held_out_ratings():
    train, test = random_holdout(synthetic_ratings(n_users=200, n_items=60, per_user=20, seed=2), 2)
    blend = RatingBlend(members=[{"name": "baseline"}, {"name": "biased_mf"}]).fit(train)
    assert holdout_rmse(blend, test) < holdout_rmse(Baseline().fit(train), test)
    assert set(blend.holdout_rmse) == {"baseline", "biased_mf", "blend"}
    assert blend.holdout_rmse["blend"] <= min(blend.holdout_rmse["baseline"], blend.holdout_rmse["biased_mf"]) + 1e-3


# --- persistence ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("refit", [True, False])
def test_save_load_gives_identical_predictions(tmp_path, refit):
    data = synthetic_ratings(seed=4, extra_users=1)
    blend = RatingBlend(members=MEMBERS, refit=refit).fit(data)
    path = blend.save(tmp_path / "blend")
    loaded = Recommender.load(path)
    assert isinstance(loaded, RatingBlend) and [m.name for m in loaded.members] == [m.name for m in blend.members]
    users = np.r_[data.user_idx[:50], -1, len(data.user_vocab) - 1]
    items = np.r_[data.item_idx[:50], 0, 1]
    np.testing.assert_array_equal(loaded.predict_indices(users, items), blend.predict_indices(users, items))
    for a, b in zip(blend.members, loaded.members, strict=True):
        assert (a.train_matrix != b.train_matrix).nnz == 0, "members must keep the data they were fitted on"


# --- config ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("members", "message"), [
    ([], "at least one member"),
    ([{"name": "no_such_model"}], "no_such_model"),
    ([{"name": "ease"}], "does not predict ratings"),
    ([{"name": "biased_mf", "params": {"n_factor": 3}}], "n_factor"),
    ([{"name": "rating_blend"}], "cannot be a member"),
])
def test_invalid_members_are_config_errors(members, message):
    with pytest.raises(ConfigError, match=message):
        RatingBlend(members=members)


def test_registry_and_defaults():
    model = create_model("rating_blend")
    assert isinstance(model, RatingBlend) and model.predicts_ratings
    assert model.config.members[0].name == "bayesian_mf"
    with pytest.raises(ConfigError, match="holdout_fraction"):
        RatingBlend(holdout_fraction=1.0)


@register
class TimeAware(Baseline):
    """Baseline whose prediction at a time t adds t / 1e9 (to see the timestamps reach members)."""

    name = "_test_time_aware"

    def _score_pairs_at(self, users, items, timestamps):
        return self._score_pairs(users, items) + timestamps / 1e9


def test_timestamps_reach_time_aware_members():
    data = synthetic_ratings(seed=5)
    blend = RatingBlend(members=[{"name": "_test_time_aware"}], meta_features=False).fit(data)
    u, i = data.user_idx[:40], data.item_idx[:40]
    inside = blend.members[0].predict_indices(u, i) < 4.8  # away from the clip at the top of the scale
    u, i = u[inside], i[inside]
    plain = blend.predict_indices(u, i)
    later = blend.predict_indices(u, i, np.full(len(u), 10**8, dtype=np.int64))
    assert len(u) > 10
    np.testing.assert_allclose(later - plain, blend.weights["m0:_test_time_aware"] * 0.1, rtol=1e-6)


# --- rank blend -------------------------------------------------------------------------------------------

RANK_MEMBERS = [{"name": "popularity"}, {"name": "ease", "params": {"l2": 10.0}}]


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_rank_blend_conformance(check):
    check(lambda: RankBlend(members=RANK_MEMBERS, n_negatives=5))


@register
class Noise(Recommender):
    """Scores that carry no information: a fixed pseudo-random number per (user, item)."""

    name = "_test_noise"

    def _fit(self, data):
        pass

    def _score(self, users):
        return np.random.default_rng(7).random((self.n_users, self.n_items))[users]


@pytest.mark.parametrize("objective", ["ndcg", "pairwise"])
def test_rank_blend_weights_the_informative_member(objective):
    data = synthetic_implicit(n_users=120, n_items=50, per_user=12, seed=3)
    blend = RankBlend(members=[{"name": "ease", "params": {"l2": 10.0}}, {"name": "_test_noise"}],
                      objective=objective).fit(data)
    w = blend.weights
    assert w["m0:ease"] > 5 * abs(w["m1:_test_noise"])
    if objective == "ndcg":
        assert 0 < blend.holdout_ndcg <= 1


def test_ndcg_search_finds_the_perfect_member_and_mixes_complementary_ones():
    rng = np.random.default_rng(4)
    n_users, n_items = 60, 40
    truth = rng.normal(size=(n_users, n_items))
    relevant = sp.csr_matrix(truth > np.quantile(truth, 0.9, axis=1, keepdims=True))
    seen = np.zeros((n_users, n_items), dtype=bool)
    noise = rng.normal(size=(n_users, n_items))
    w, best = search_ndcg_weights([noise, truth], seen, relevant, 5)
    np.testing.assert_allclose(w, [0.0, 1.0])
    assert best == pytest.approx(1.0)
    a, b = truth + rng.normal(0, 1.5, truth.shape), truth + rng.normal(0, 1.5, truth.shape)
    w, best = search_ndcg_weights([a, b], seen, relevant, 5)
    singles = [search_ndcg_weights([x], seen, relevant, 5)[1] for x in (a, b)]
    assert np.all(w > 0) and best > max(singles) and w.sum() == pytest.approx(1.0)


def test_rank_blend_holdout_never_overlaps_the_members_fit_data():
    data = synthetic_ratings(seed=6)
    Recorder.log.clear()
    RankBlend(members=[{"name": "_test_recorder"}], holdout_fraction=0.3, seed=2, relevance_threshold=None).fit(data)
    fits = [pairs for kind, pairs in Recorder.log if kind == "fit"]
    _, holdout = validation_split(data, method="user_holdout", fraction=0.3, seed=2)
    held = set(zip(holdout.user_idx.tolist(), holdout.item_idx.tolist(), strict=True))
    assert len(fits) == 2 and held and not fits[0] & held
    assert fits[1] == set(zip(data.user_idx.tolist(), data.item_idx.tolist(), strict=True))


def test_pairwise_logistic_recovers_the_direction_of_a_known_ranker():
    rng = np.random.default_rng(0)
    true_w = np.array([2.0, -1.0, 0.5])
    x = rng.normal(size=(4000, 3))
    diffs = np.where((x @ true_w + rng.logistic(size=4000) > 0)[:, None], x, -x)  # rows oriented winner − loser
    w = fit_pairwise_logistic(diffs, 1e-4)
    assert w @ true_w / np.linalg.norm(w) / np.linalg.norm(true_w) > 0.99


def test_normalized_scores_are_per_user_z_scores():
    data = synthetic_ratings(extra_items=2)
    model = create_model("popularity").fit(data)
    z = normalized_scores(model, np.arange(5))
    finite = np.isfinite(model.score_matrix(np.arange(5)))
    assert not finite.all() and np.all(z[~finite] == -10.0)
    for row, ok in zip(z, finite, strict=True):
        assert abs(row[ok].mean()) < 1e-9 and abs(row[ok].std() - 1.0) < 1e-9


def test_rank_blend_with_fixed_weights_skips_the_holdout_and_scores_cold_users():
    from tastemaker.testing.cold_start import synthetic_cold_start

    data = synthetic_cold_start()
    members = [{"name": "hybrid_mf", "params": {"n_epochs": 3, "n_factors": 8}},
               {"name": "popularity", "params": {}}]
    model = RankBlend(members=members, weights=[1.0, 0.0]).fit(data)
    assert model.coef.tolist() == [1.0, 0.0]
    assert model.holdout_ndcg is None
    assert all(m.data_info["fingerprint"] == data.fingerprint() for m in model.members)
    # the only member with weight ranks users without history from their features
    assert model.scores_cold_users == model.members[0].scores_cold_users
    with pytest.raises(ConfigError, match="2 weights for 1 members"):
        RankBlend(members=members[:1], weights=[1.0, 1.0]).fit(data)
