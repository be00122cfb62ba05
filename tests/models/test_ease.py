"""EASE: conformance, the closed form against a direct numpy formula, structure recovery."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError, NotSupportedError
from tastemaker.models.ease import EASE, ease_weights
from tastemaker.models.registry import create_model
from tastemaker.testing import check_beats_popularity, check_recommender, synthetic_implicit, synthetic_ratings

CONFIGS = {
    "default": {},
    "small-l2-float32": {"l2": 5.0, "dtype": "float32"},
    "threshold-value": {"l2": 50.0, "threshold": 2.0, "weighting": "value"},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_conformance(name):
    check_recommender(lambda: EASE(CONFIGS[name]))


def _tiny(seed=0, n_users=9, n_items=6):
    rng = np.random.default_rng(seed)
    x = (rng.random((n_users, n_items)) < 0.45).astype(float)
    x[np.arange(n_items) % n_users, np.arange(n_items)] = 1.0  # every item has data
    x[np.arange(n_users), np.arange(n_users) % n_items] = 1.0  # every user has history
    u, i = np.nonzero(x)
    return x, Interactions.from_arrays(u, i)


def direct_ease(x: np.ndarray, l2: float) -> np.ndarray:
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    return np.eye(x.shape[1]) - p @ np.diag(1.0 / np.diag(p))


@pytest.mark.parametrize("l2", [0.5, 3.0, 40.0])
def test_matches_direct_formula(l2):
    x, data = _tiny()
    model = EASE(l2=l2).fit(data)
    b = direct_ease(x, l2)
    np.testing.assert_allclose(model.weights, b, atol=1e-12)
    assert np.all(np.diag(model.weights) == 0.0)
    np.testing.assert_allclose(model._score(np.arange(data.n_users)), x @ b, atol=1e-12)
    # B solves min ||X − XB||² + λ||B||² with diag(B) = 0: the off-diagonal gradient is zero
    grad = -x.T @ (x - x @ b) + l2 * b
    off = ~np.eye(x.shape[1], dtype=bool)
    np.testing.assert_allclose(grad[off], 0.0, atol=1e-10)


def test_float32_and_blocked_assembly_agree(monkeypatch):
    rng = np.random.default_rng(1)
    x = (rng.random((60, 30)) < 0.2).astype(float)
    monkeypatch.setattr("tastemaker.models.ease._BLOCK_CELLS", 7 * 30)  # 7-column blocks, last one short
    b64 = ease_weights(x, 10.0, "float64")
    b32 = ease_weights(x, 10.0, "float32")
    assert b32.dtype == np.float32 and b64.dtype == np.float64
    np.testing.assert_allclose(b32, b64, atol=2e-5)
    np.testing.assert_allclose(b64, direct_ease(x, 10.0), atol=1e-12)


def test_threshold_and_value_weighting():
    ratings = [(1, "a", 5), (1, "b", 2), (2, "a", 4), (2, "c", 5), (3, "b", 1), (3, "c", 4), (4, "b", 2)]
    u, i, r = zip(*ratings)
    data = Interactions.from_arrays(list(u), list(i), list(r))
    model = EASE(threshold=4, weighting="value", l2=1.0).fit(data)
    # X keeps ratings ≥ 4 with their values; item "b" (never ≥ 4) and user 4 (nothing ≥ 4) drop out
    # (value weighting scales X to a mean of 1: the kept values 5, 4, 5, 4 average 4.5)
    x = np.array([[5.0, 0.0], [4.0, 5.0], [0.0, 4.0], [0.0, 0.0]]) / 4.5
    np.testing.assert_allclose(model.weights, direct_ease(x, 1.0), atol=1e-12)
    assert model.scorable_items().tolist() == [True, False, True]
    pred = model.score([1, 1], ["b", "c"])
    assert pred.fallback.tolist() == [True, False]
    assert pred.values[1] == pytest.approx((x @ direct_ease(x, 1.0))[0, 1])
    assert model.recommend([4], k=2)[0].fallback == "no_history"
    with pytest.raises(DataError, match="threshold"):
        EASE(threshold=6).fit(data)


def test_recovers_clusters_better_than_popularity():
    check_beats_popularity(lambda: EASE(l2=20.0))


def test_explain_names_largest_contribution():
    data = synthetic_ratings(seed=2)
    model = EASE(l2=30.0, weighting="binary").fit(data)
    u = 4
    user = data.user_vocab.ids[u]
    hist = data.seen[u].indices
    rated = dict(zip(data.item_idx[data.user_idx == u].tolist(), data.values[data.user_idx == u].tolist()))
    pos = {int(i): p for p, i in enumerate(model.active)}
    items = [data.item_vocab.ids[i] for i in model.active if i not in set(hist.tolist())]
    reasons = model.explain(user, items)
    assert sum(r.kind == "similar_to_history" for r in reasons) > len(items) // 2
    for item, reason in zip(items, reasons):
        i = data.item_vocab.index(item)
        contrib = np.array([model.weights[pos[j], pos[i]] for j in hist])
        if contrib.max() > 0:
            best = hist[int(np.argmax(contrib))]
            assert reason.kind == "similar_to_history"
            assert reason.anchor == data.item_vocab.ids[best]
            assert reason.anchor_value == rated[best]
        else:
            assert reason.kind == "personal_taste"
    assert model.explain(user, ["nope"])[0].kind == "unknown_item"


def test_explain_without_positive_contribution_is_personal_taste():
    # two disjoint groups of users and items: B is block-diagonal, so nothing links the groups
    users = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    items = ["a", "b", "b", "c", "a", "c", "d", "e", "e", "f", "d", "f"]
    model = EASE(l2=1.0).fit(Interactions.from_arrays(users, items))
    reasons = model.explain(0, ["c", "d", "f"])
    assert reasons[0].kind == "similar_to_history" and reasons[0].anchor in {"a", "b"}
    assert [r.kind for r in reasons[1:]] == ["personal_taste", "personal_taste"]


def test_implicit_anchor_has_no_value():
    data = synthetic_implicit()
    model = EASE().fit(data)
    reasons = model.recommend([0], k=5, explain=True)[0].reasons
    anchored = [r for r in reasons if r.kind == "similar_to_history"]
    assert anchored and all(r.anchor_value is None for r in anchored)
    assert anchored[0].text() == f"because you liked {anchored[0].anchor}"


def test_config_errors():
    with pytest.raises(ConfigError, match="l2"):
        EASE(l2=0)
    with pytest.raises(ConfigError, match="unknown key 'lambda_'"):
        EASE(lambda_=10)
    with pytest.raises(ConfigError, match="dtype"):
        EASE(dtype="float16")
    with pytest.raises(ConfigError, match=r"50 × 50 float64 matrix \(0\.0 GB\).*dtype='float32'"):
        EASE(max_memory_gb=1e-9).fit(synthetic_implicit(n_items=50))
    with pytest.raises(NotSupportedError):
        EASE().fit(synthetic_implicit()).predict([0], [0])


def test_registry_round_trip():
    model = create_model("ease", {"l2": 123.0, "threshold": 4})
    assert isinstance(model, EASE)
    assert EASE(model.config.to_dict()).config == model.config
