"""demographic_popularity: conformance, a hand-computed example, shrinkage, persistence, fallbacks."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tastemaker.data import cold_user_split
from tastemaker.data.features import SideFeatures
from tastemaker.data.interactions import Interactions
from tastemaker.data.vocabulary import Vocabulary
from tastemaker.errors import ConfigError
from tastemaker.models import create_model
from tastemaker.models.base import Recommender
from tastemaker.models.demographic import DemographicPopularity
from tastemaker.testing import CHECKS, check_cold_users_beat_popularity
from tastemaker.testing.cold_start import synthetic_cold_start

CONFIGS = {
    "defaults": {},
    "threshold-3-tempered": {"positive_threshold": 3.0, "weight": 0.3, "shrinkage": 5.0},
}


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_conformance(config, check):
    check(lambda: DemographicPopularity(CONFIGS[config]))


def two_groups(extra_users: dict[str, str | None] | None = None) -> Interactions:
    """Group a likes x, group b likes y; z is rated low by a1. a3 and b3 (and `extra_users`: id → group,
    None for no feature row) have no history."""
    extra = extra_users or {}
    users = ["a1", "a2", "b1", "b2", "a1"]
    items = ["x", "x", "y", "y", "z"]
    ratings = [5.0, 5.0, 5.0, 4.0, 2.0]
    groups = {"a1": "a", "a2": "a", "b1": "b", "b2": "b", "a3": "a", "b3": "b",
              **{u: g for u, g in extra.items() if g is not None}}
    frame = pd.DataFrame({"group": list(groups.values())}, index=pd.Index(list(groups), name="user"))
    return Interactions.from_arrays(
        users, items, ratings, user_vocab=Vocabulary(["a1", "a2", "b1", "b2", "a3", "b3", *extra]),
        item_vocab=Vocabulary(["x", "y", "z"]), explicit=True, rating_scale=(1.0, 5.0),
        user_features=SideFeatures(frame))


def test_hand_computed_scores_give_each_group_its_favourite():
    model = DemographicPopularity(user_features={"group": "categorical"}, shrinkage=1.0, weight=1.0).fit(two_groups())
    # N = 4 users with history; liked (≥ 4): x by 2, y by 2, z by 0 → p = (n + ½) / (N + 1) = .5, .5, .1
    # group a (2 users): n_a(x) = 2, n_a(y) = n_a(z) = 0 → p_a = (n_a + 1·p) / (2 + 1) = 5/6, 1/6, 1/30
    # score = log p + log(p_a / p) = log p_a
    a3 = model.score(["a3"] * 3, ["x", "y", "z"])
    assert not a3.fallback.any()
    np.testing.assert_allclose(a3.values, np.log([5 / 6, 1 / 6, 1 / 30]))
    np.testing.assert_allclose(model.score(["b3"] * 3, ["x", "y", "z"]).values, np.log([1 / 6, 5 / 6, 1 / 30]))
    recs = model.recommend(["a3", "b3"], k=3, explain=True)
    assert recs[0].items.tolist() == ["x", "y", "z"] and recs[0].fallback is None
    assert recs[1].items.tolist() == ["y", "x", "z"]
    assert recs[0].reasons[0].text() == "popular with users like you: group a"
    assert recs[0].reasons[1].text() == "popular with everyone", "y is liked less by group a: no group to name"
    # a user with history gets the same scores, minus what they have seen
    assert model.recommend(["a2"], k=3)[0].items.tolist() == ["y", "z"]


def test_weight_scales_the_log_lift():
    data = two_groups()
    half = DemographicPopularity(user_features={"group": "categorical"}, shrinkage=1.0, weight=0.5).fit(data)
    p, p_a = np.array([0.5, 0.5, 0.1]), np.array([5 / 6, 1 / 6, 1 / 30])
    np.testing.assert_allclose(half.score(["a3"] * 3, ["x", "y", "z"]).values, np.log(p) + 0.5 * np.log(p_a / p))
    off = DemographicPopularity(user_features={"group": "categorical"}, feature_weights={"group": 0.0}).fit(data)
    np.testing.assert_allclose(off.score(["a3"] * 3, ["x", "y", "z"]).values, np.log(p))


def test_infinite_shrinkage_is_global_popularity():
    data = synthetic_cold_start(seed=1)
    train, _ = cold_user_split(data, 0.2, seed=0)
    huge = DemographicPopularity(shrinkage=1e12, weight=1.0).fit(train)
    plain = DemographicPopularity(user_features={}).fit(train)
    users = train.user_vocab.ids[:40]
    scores = huge.score_matrix(train.user_vocab.indices(users))
    np.testing.assert_allclose(scores, np.broadcast_to(plain.log_base, scores.shape), atol=1e-9)
    # and the global ranking is by the number of users who liked the item
    liked = np.bincount(train.item_idx[train.values >= 4.0], minlength=train.n_items)
    assert np.array_equal(np.argsort(-plain.log_base, kind="stable"), np.argsort(-liked, kind="stable"))
    # a small shrinkage does move cold users off the global ranking
    small = DemographicPopularity(shrinkage=1.0).fit(train)
    assert not np.allclose(small.score_matrix(train.user_vocab.indices(users)), scores, atol=1e-3)


def test_unknown_or_missing_feature_values_fall_back_to_global_popularity():
    data = two_groups({"c1": "c", "nobody": None})  # group c has no user with history; "nobody" has no row
    model = DemographicPopularity(user_features={"group": "categorical"}, shrinkage=1.0).fit(data)
    base = np.log([0.5, 0.5, 0.1])
    for user in ("c1", "nobody"):
        pred = model.score([user] * 3, ["x", "y", "z"])
        assert not pred.fallback.any(), f"{user} is known: scored, not a fallback"
        np.testing.assert_allclose(pred.values, base)
        assert {r.text() for r in model.explain(user, ["x", "y"])} == {"popular with everyone"}


def test_values_below_min_count_fall_back():
    data = two_groups()
    model = DemographicPopularity(user_features={"group": "categorical"}, shrinkage=1.0, min_count=3).fit(data)
    np.testing.assert_allclose(model.score(["a3"] * 3, ["x", "y", "z"]).values, np.log([0.5, 0.5, 0.1]))


def test_save_load_round_trip_keeps_feature_scores_and_reasons(tmp_path):
    data = synthetic_cold_start(seed=2)
    train, test = cold_user_split(data, 0.2, seed=0)
    model = DemographicPopularity(shrinkage=10.0, feature_weights={"age": 0.5}).fit(train)
    cold = data.user_vocab.ids[np.unique(test.user_idx)][:8].tolist()
    before = model.recommend(cold, k=6, explain=True)
    loaded = Recommender.load(model.save(tmp_path / "dp"))
    assert isinstance(loaded, DemographicPopularity) and loaded.config == model.config
    after = loaded.recommend(cold, k=6, explain=True)
    for x, y in zip(before, after, strict=True):
        assert x.items.tolist() == y.items.tolist()
        np.testing.assert_allclose(x.scores, y.scores)
        assert [r.text() for r in x.reasons] == [r.text() for r in y.reasons]
    assert any("group g" in r.text() for rec in after for r in rec.reasons), "reasons name the planted group"


def test_reasons_spell_out_crossed_values():
    data = two_groups()
    frame = data.user_features.frame
    data = replace(data, user_features=SideFeatures(frame.assign(g2=frame["group"].str.upper())))
    model = DemographicPopularity(user_features={"group": "categorical", "g2": "categorical", "group*g2": "cross"},
                                  shrinkage=1.0).fit(data)
    assert model.explain("a3", ["x"])[0].text() == (
        "popular with users like you: group a, g2 A, group a & g2 A")


def test_cold_users_beat_popularity_on_planted_groups():
    data = synthetic_cold_start(seed=3)
    train, test = cold_user_split(data, 0.2, seed=0)
    model = create_model("demographic_popularity", {"user_features": {"group": "categorical"}}).fit(train)
    check_cold_users_beat_popularity(model, train, test)


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="feature_weights names \\['zipcode'\\]"):
        DemographicPopularity(user_features={"group": "categorical"},
                              feature_weights={"zipcode": 0.0}).fit(two_groups())
    with pytest.raises(ConfigError, match="shrinkage"):
        DemographicPopularity(shrinkage=0.0)
    with pytest.raises(ConfigError, match="no rating is"):
        DemographicPopularity(positive_threshold=6.0).fit(two_groups())
    assert math.isfinite(DemographicPopularity(positive_threshold=5.0).fit(two_groups()).log_base.min())
