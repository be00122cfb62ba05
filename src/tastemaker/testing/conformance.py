"""Conformance checks every `Recommender` must pass (scikit-learn's `check_estimator`, for us).

Use `check_recommender(factory)` where `factory()` returns a fresh, unfitted model; or iterate
over `CHECKS` to run each as its own test. Each check raises `AssertionError` with a message that
names the model and what broke.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tastemaker.data.interactions import Interactions
from tastemaker.errors import NotFittedError, NotSupportedError
from tastemaker.models.base import Recommender
from tastemaker.testing.synthetic import synthetic_ratings

Factory = Callable[[], Recommender]


def _data(**kw) -> Interactions:
    return synthetic_ratings(**kw)


def _fitted(factory: Factory, **kw) -> tuple[Recommender, Interactions]:
    data = _data(**kw)
    return factory().fit(data), data


def check_not_fitted(factory: Factory) -> None:
    model = factory()
    with pytest.raises(NotFittedError):
        model.recommend([1000], k=5)


def check_fit_returns_self_and_keeps_input(factory: Factory) -> None:
    data = _data()
    before = data.fingerprint()
    arrays = {k: getattr(data, k).copy() for k in ("user_idx", "item_idx", "values", "timestamps")}
    model = factory()
    assert model.fit(data) is model, f"{model.name}: fit() must return self"
    assert data.fingerprint() == before, f"{model.name}: fit() changed its input"
    for k, arr in arrays.items():
        assert np.array_equal(getattr(data, k), arr), f"{model.name}: fit() mutated {k}"
    assert model.data_info["fingerprint"] == before


def check_recommend_excludes_seen(factory: Factory) -> None:
    model, data = _fitted(factory)
    users = data.user_vocab.ids[:10]
    recs = model.recommend(users, k=10)
    seen = data.seen
    for rec in recs:
        assert rec.fallback is None, f"{model.name}: known user {rec.user} got fallback {rec.fallback}"
        u = data.user_vocab.index(rec.user)
        hist = set(data.item_vocab.lookup(seen[u].indices).tolist())
        got = rec.items.tolist()
        assert len(got) == 10, f"{model.name}: expected 10 items for user {rec.user}, got {len(got)}"
        assert len(set(got)) == len(got), f"{model.name}: duplicate items for user {rec.user}"
        assert not hist & set(got), f"{model.name}: recommended seen items {hist & set(got)} to {rec.user}"
        assert np.all(np.diff(rec.scores) <= 1e-12), f"{model.name}: scores not in descending order"
    with_seen = model.recommend(users[:1], k=model.n_items, exclude_seen=False)[0]
    assert len(with_seen) == int(model.scorable_items().sum()), (
        f"{model.name}: exclude_seen=False must rank every scorable item")


def check_unknown_user(factory: Factory) -> None:
    model, data = _fitted(factory)
    rec = model.recommend(["no-such-user"], k=5, explain=True)[0]
    assert rec.fallback == "unknown_user", f"{model.name}: unknown user must get fallback 'unknown_user'"
    assert len(rec) == 5
    assert rec.reasons is not None and all(r.kind == "unknown_user" for r in rec.reasons)
    top = int(np.argmax(data.item_counts))
    assert rec.items[0] == data.item_vocab.ids[top], f"{model.name}: fallback must start with the most popular item"
    pred = model.score(["no-such-user"], [data.item_vocab.ids[0]])
    assert pred.fallback[0] and "unknown user" in pred.reasons[0]
    assert np.isfinite(pred.values).all()


def check_unknown_item(factory: Factory) -> None:
    model, data = _fitted(factory)
    user = data.user_vocab.ids[0]
    pred = model.score([user, user], [data.item_vocab.ids[0], "no-such-item"])
    assert not pred.fallback[0] and pred.fallback[1], f"{model.name}: only the unknown item is a fallback"
    assert "unknown item" in pred.reasons[1]
    assert np.isfinite(pred.values).all(), f"{model.name}: fallback values must be finite"
    rec = model.recommend([user], k=5, candidates=["no-such-item", data.item_vocab.ids[1]], exclude_seen=False)[0]
    assert rec.items.tolist() == [data.item_vocab.ids[1]], f"{model.name}: unknown candidates must be ignored"


def check_empty_history(factory: Factory) -> None:
    data = _data(extra_users=2, extra_items=2)
    model = factory().fit(data)
    cold_user = data.user_vocab.ids[-1]
    rec = model.recommend([cold_user], k=5)[0]
    if model.scores_cold_users:
        assert len(rec) == 5
    else:
        assert rec.fallback == "no_history", f"{model.name}: a user without history must get 'no_history'"
        assert len(rec) == 5
    cold_item = data.item_vocab.ids[-1]
    warm_user = data.user_vocab.ids[0]
    pred = model.score([warm_user], [cold_item])
    assert np.isfinite(pred.values).all()
    if not model.scores_cold_items:
        assert pred.fallback[0], f"{model.name}: an item without data must be a fallback when scored"
        recs = model.recommend([warm_user], k=model.n_items)[0]
        assert cold_item not in recs.items.tolist(), f"{model.name}: items without data must not be ranked"


def check_k_larger_than_catalogue(factory: Factory) -> None:
    model, data = _fitted(factory, n_items=15, per_user=6)
    user = data.user_vocab.ids[0]
    rec = model.recommend([user], k=1000)[0]
    n_seen = data.seen[0].nnz
    expected = int(model.scorable_items().sum()) - n_seen
    assert len(rec) == expected, f"{model.name}: k > catalogue must return all {expected} unseen items, got {len(rec)}"
    with pytest.raises(ValueError):
        model.recommend([user], k=0)


def check_seeded_determinism(factory: Factory) -> None:
    data = _data()
    a = factory().fit(data)
    b = factory().fit(data)
    users = data.user_vocab.ids[:8]
    ra, rb = a.recommend(users, k=10), b.recommend(users, k=10)
    for x, y in zip(ra, rb, strict=True):
        assert x.items.tolist() == y.items.tolist(), f"{a.name}: two fits with the same seed differ"
        np.testing.assert_allclose(x.scores, y.scores, rtol=1e-6, atol=1e-9)


def check_save_load_roundtrip(factory: Factory) -> None:
    model, data = _fitted(factory, string_ids=True)
    users = [*data.user_vocab.ids[:6].tolist(), "ghost"]
    before = model.recommend(users, k=7, explain=True)
    pairs_u = data.user_vocab.ids[:5]
    pairs_i = data.item_vocab.ids[:5]
    s_before = model.score(pairs_u, pairs_i).values
    with tempfile.TemporaryDirectory() as tmp:
        path = model.save(Path(tmp) / "m")
        manifest = json.loads((path / "manifest.json").read_text())
        for key in ("model", "config", "vocabularies", "data", "versions", "format_version"):
            assert key in manifest, f"{model.name}: manifest lacks {key!r}"
        assert manifest["data"]["fingerprint"] == data.fingerprint()
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            assert all(npz[k].dtype.kind != "O" for k in npz.files)
        loaded = type(model).load(path)
        generic = Recommender.load(path)
    assert type(generic) is type(model)
    after = loaded.recommend(users, k=7, explain=True)
    for x, y in zip(before, after, strict=True):
        assert x.items.tolist() == y.items.tolist(), f"{model.name}: save → load changed recommendations"
        np.testing.assert_allclose(x.scores, y.scores, rtol=1e-6, atol=1e-9)
        assert x.fallback == y.fallback
        assert [r.text() for r in x.reasons] == [r.text() for r in y.reasons]
    np.testing.assert_allclose(loaded.score(pairs_u, pairs_i).values, s_before, rtol=1e-6, atol=1e-9)
    assert loaded.config == model.config


def check_scores_match_ranking(factory: Factory) -> None:
    model, data = _fitted(factory)
    user = data.user_vocab.ids[3]
    rec = model.recommend([user], k=8)[0]
    pairs = model.score([user] * len(rec), rec.items)
    np.testing.assert_allclose(pairs.values, rec.scores, rtol=1e-5, atol=1e-8,
                               err_msg=f"{model.name}: score() disagrees with recommend() scores")
    cands = data.item_vocab.ids[::3]
    sub = model.recommend([user], k=4, candidates=cands, exclude_seen=False)[0]
    assert set(sub.items.tolist()) <= set(cands.tolist())
    all_scores = model.score([user] * len(cands), cands).values
    order = np.argsort(-all_scores, kind="stable")[:4]
    np.testing.assert_allclose(np.sort(sub.scores)[::-1], all_scores[order], rtol=1e-5, atol=1e-8)


def check_predict_contract(factory: Factory) -> None:
    model, data = _fitted(factory)
    users, items = data.user_vocab.ids[:20], data.item_vocab.ids[:20]
    if model.predicts_ratings:
        pred = model.predict(users, items)
        lo, hi = data.rating_scale
        assert np.all((pred.values >= lo) & (pred.values <= hi)), f"{model.name}: predictions outside the scale"
        # a rating model must fit its training data better than the global mean
        train_pred = model.predict_indices(data.user_idx, data.item_idx)
        rmse = np.sqrt(np.mean((train_pred - data.values) ** 2))
        base = np.sqrt(np.mean((data.values.mean() - data.values) ** 2))
        assert rmse < base, f"{model.name}: training RMSE {rmse:.3f} not below the global mean's {base:.3f}"
    else:
        with pytest.raises(NotSupportedError):
            model.predict(users, items)


def check_explain(factory: Factory) -> None:
    model, data = _fitted(factory)
    rec = model.recommend([data.user_vocab.ids[0]], k=5, explain=True)[0]
    assert rec.reasons is not None and len(rec.reasons) == len(rec)
    hist = set(data.item_vocab.lookup(data.seen[0].indices).tolist())
    for reason in rec.reasons:
        assert reason.text(), f"{model.name}: empty reason"
        if reason.anchor is not None:
            assert reason.anchor in hist, f"{model.name}: reason anchor {reason.anchor} is not in the user's history"


def check_refit_forgets(factory: Factory) -> None:
    a = _data(seed=1)
    b = _data(seed=2)
    model = factory().fit(a).fit(b)
    fresh = factory().fit(b)
    users = b.user_vocab.ids[:5]
    for x, y in zip(model.recommend(users, k=5), fresh.recommend(users, k=5), strict=True):
        assert x.items.tolist() == y.items.tolist(), f"{model.name}: refitting kept state from the first fit"


CHECKS: dict[str, Callable[[Factory], None]] = {
    f.__name__: f
    for f in (
        check_not_fitted, check_fit_returns_self_and_keeps_input, check_recommend_excludes_seen,
        check_unknown_user, check_unknown_item, check_empty_history, check_k_larger_than_catalogue,
        check_seeded_determinism, check_save_load_roundtrip, check_scores_match_ranking,
        check_predict_contract, check_explain, check_refit_forgets,
    )
}


def check_recommender(factory: Factory) -> None:
    """Run every conformance check against models made by `factory`."""
    for check in CHECKS.values():
        check(factory)
