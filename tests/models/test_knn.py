"""Item-kNN: conformance, similarities and predictions against slow pure-Python references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.models.baseline import Baseline
from tastemaker.models.knn import ItemKNN, item_similarity_blocks
from tastemaker.models.registry import create_model
from tastemaker.testing import check_recommender, holdout_rmse, random_holdout, synthetic_implicit, synthetic_ratings

CONFIGS = {
    "default": {},
    "cosine": {"similarity": "cosine", "k": 10},
    "msd-all": {"similarity": "msd", "neighbors": "all", "min_k": 2},
    "sparse": {"dense_max_items": 0, "max_neighbors": 8, "k": 5, "shrinkage": 10.0},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_conformance(name):
    check_recommender(lambda: ItemKNN(CONFIGS[name]))


# --- slow references -----------------------------------------------------------------------------

def _ratings(data: Interactions) -> dict[int, dict[int, float]]:
    """user index → {item index: rating}."""
    out: dict[int, dict[int, float]] = {}
    for u, i, r in zip(data.user_idx.tolist(), data.item_idx.tolist(), data.values.tolist(), strict=True):
        out.setdefault(u, {})[i] = r
    return out


def reference_similarity(data, model, similarity, shrinkage=100.0, min_support=1):
    """Pairwise loops over the users who rated both items (Surprise's definitions)."""
    by_user = _ratings(data)
    n = data.n_items

    def value(u, i, r):
        if similarity == "pearson_baseline":
            return r - (model.mu + model.user_bias[u] + model.item_bias[i])
        return r

    sim = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                sim[i, j] = 1.0
                continue
            common = [u for u, rs in by_user.items() if i in rs and j in rs]
            support = max(min_support, 2) if similarity == "pearson_baseline" else min_support
            if len(common) < support:
                continue
            vi = [value(u, i, by_user[u][i]) for u in common]
            vj = [value(u, j, by_user[u][j]) for u in common]
            if similarity == "msd":
                sim[i, j] = 1.0 / (sum((a - b) ** 2 for a, b in zip(vi, vj)) / len(common) + 1.0)
                continue
            denom = math.sqrt(sum(a * a for a in vi) * sum(b * b for b in vj))
            if denom == 0:
                continue
            s = sum(a * b for a, b in zip(vi, vj)) / denom
            if similarity == "pearson_baseline":
                s *= (len(common) - 1) / (len(common) - 1 + shrinkage)
            sim[i, j] = s
    return sim


def reference_predict(model, by_user, sim, u, i, *, k, min_k, positive=True):
    """r̂ = b_ui + Σ s (r − b) / Σ |s| over the k most similar rated items (ties: lower index)."""
    base = model.mu + model.user_bias[u] + model.item_bias[i]
    nbrs = []
    for j, r in sorted(by_user[u].items()):
        s = sim[i, j]
        if (s > 0) if positive else (s != 0):
            nbrs.append((abs(s), j, s, r - (model.mu + model.user_bias[u] + model.item_bias[j])))
    nbrs.sort(key=lambda t: (-t[0], t[1]))
    nbrs = nbrs[:k]
    if len(nbrs) < min_k or not nbrs:
        return base
    return base + sum(s * e for _, _, s, e in nbrs) / sum(abs(s) for _, _, s, _ in nbrs)


def _dense_sim(model) -> np.ndarray:
    return model.sim.astype(np.float64) if model.dense else model.sim_csc.toarray().astype(np.float64)


SMALL = {"n_users": 40, "n_items": 15, "per_user": 7, "seed": 3}


@pytest.mark.parametrize("storage", ["dense", "sparse"])
@pytest.mark.parametrize(("similarity", "extra"), [
    ("pearson_baseline", {}),
    ("pearson_baseline", {"shrinkage": 0.0, "min_support": 3}),
    ("cosine", {}),
    ("msd", {"min_support": 2}),
])
def test_similarity_matches_reference(similarity, extra, storage):
    data = synthetic_ratings(**SMALL)
    # sparse storage keeping every neighbour (negative ones too) must hold the full matrix
    sparse = {}
    if storage == "sparse":
        sparse = {"dense_max_items": 0, "max_neighbors": data.n_items, "neighbors": "all", "k": 5}
    model = ItemKNN(similarity=similarity, **extra, **sparse).fit(data)
    assert model.dense == (storage == "dense")
    ref = reference_similarity(data, model, similarity, shrinkage=model.config.shrinkage,
                               min_support=model.config.min_support)
    assert (ref != 0).sum() > data.n_items * 3, "the case must have many non-trivial pairs"
    np.testing.assert_allclose(_dense_sim(model), ref, atol=2e-7)


def test_similarity_is_sparse_product_not_dense_rating():
    """A rating equal to the baseline (residual 0) still counts as a co-rating."""
    data = Interactions.from_arrays([1, 1, 2, 2, 3, 3], ["a", "b", "a", "b", "a", "b"], [4, 4, 2, 2, 5, 5])
    model = ItemKNN(similarity="msd").fit(data)
    assert model.sim[0, 1] == pytest.approx(1.0)  # identical ratings over 3 common users


@pytest.mark.parametrize("similarity", ["pearson_baseline", "cosine", "msd"])
def test_sparse_blocks_equal_dense_blocks_with_cancelling_sums(similarity):
    # values where Σ v_ui v_uj and Σ v_ui² are exactly 0 for some co-rated pairs: the sparse
    # products drop those entries, the sparse path must still see the pair as co-rated
    dense_values = np.array([[1.0, 1.0, 0.0, 2.0], [1.0, -1.0, 0.0, 3.0], [2.0, 0.0, 1.0, -1.0],
                             [0.0, 1.0, -1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    rated = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 0]], dtype=bool)
    r, c = np.nonzero(rated)
    values = sp.csc_matrix((dense_values[r, c], (r, c)), shape=rated.shape)
    assert values.nnz == rated.sum()  # explicit zeros are ratings
    blocks = [np.array([0, 1]), np.array([2, 3])]
    opts = {"similarity": similarity, "shrinkage": 1.0, "min_support": 1}
    dense = np.vstack([b for _, b in item_similarity_blocks(values, blocks, **opts)])
    sparse = sp.vstack([b for _, b in item_similarity_blocks(values, blocks, sparse=True, **opts)]).toarray()
    np.testing.assert_allclose(sparse, dense, atol=1e-12)
    assert (dense != 0).sum() > 8


@pytest.mark.parametrize("config", [
    {},
    {"k": 3},
    {"k": 3, "neighbors": "all", "similarity": "pearson_baseline", "shrinkage": 5.0},
    {"k": 4, "min_k": 3, "similarity": "cosine"},
    {"k": 2, "similarity": "msd"},
])
def test_prediction_matches_reference(config):
    data = synthetic_ratings(**SMALL)
    model = ItemKNN(config).fit(data)
    sim = _dense_sim(model)
    by_user = _ratings(data)
    users = np.repeat(np.arange(data.n_users), data.n_items)
    items = np.tile(np.arange(data.n_items), data.n_users)
    got = model._score_pairs(users, items)
    ref = [reference_predict(model, by_user, sim, u, i, k=model.config.k, min_k=model.config.min_k,
                             positive=model.config.neighbors == "positive")
           for u, i in zip(users.tolist(), items.tolist())]
    np.testing.assert_allclose(got, ref, atol=1e-9)
    # the full score rows are the same numbers
    np.testing.assert_allclose(model._score(np.arange(data.n_users)).ravel(), got, rtol=0, atol=1e-12)


def test_blocked_computation_gives_the_same_model(monkeypatch):
    data = synthetic_ratings(**SMALL)
    users = np.repeat(np.arange(data.n_users), data.n_items)
    items = np.tile(np.arange(data.n_items), data.n_users)
    for config in ({"k": 3}, {"k": 3, "dense_max_items": 0, "max_neighbors": 5}):
        whole = ItemKNN(config).fit(data)
        monkeypatch.setattr("tastemaker.models.knn._BLOCK_CELLS", 4 * data.n_items)  # 4-item blocks
        blocked = ItemKNN(config).fit(data)
        monkeypatch.undo()
        np.testing.assert_array_equal(_dense_sim(blocked), _dense_sim(whole))
        monkeypatch.setattr("tastemaker.models.knn._BLOCK_CELLS", 3 * 7)  # target chunks of 3 items
        np.testing.assert_allclose(blocked._score_pairs(users, items), whole._score_pairs(users, items), atol=1e-12)
        np.testing.assert_allclose(blocked._score(np.arange(5)), whole._score(np.arange(5)), atol=1e-12)
        monkeypatch.undo()


@pytest.mark.parametrize("neighbors", ["positive", "all"])
def test_sparse_storage_keeps_top_neighbours_and_predicts_from_them(neighbors):
    data = synthetic_ratings(**SMALL)
    opts = {"k": 3, "min_k": 1, "shrinkage": 10.0, "neighbors": neighbors}
    dense = ItemKNN(opts).fit(data)
    full = ItemKNN(opts, dense_max_items=0, max_neighbors=data.n_items).fit(data)
    assert not full.dense and full.sim_csc is not None
    users = np.repeat(np.arange(data.n_users), data.n_items)
    items = np.tile(np.arange(data.n_items), data.n_users)
    np.testing.assert_allclose(full._score_pairs(users, items), dense._score_pairs(users, items), atol=1e-12)

    cut = ItemKNN(opts, dense_max_items=0, max_neighbors=4).fit(data)
    kept = cut.sim_csc.toarray().astype(np.float64)
    s = dense.sim.astype(np.float64)
    for i in range(data.n_items):
        row = kept[i][kept[i] != 0]
        cand = s[i][s[i] > 0] if neighbors == "positive" else s[i][s[i] != 0]
        best = cand[np.argsort(-np.abs(cand), kind="stable")[:4]]
        assert len(row) == len(best)
        np.testing.assert_allclose(np.sort(np.abs(row)), np.sort(np.abs(best)), rtol=1e-6)
        assert kept[i, i] == pytest.approx(1.0)
    assert (kept < 0).any() == (neighbors == "all")
    ref = [reference_predict(cut, _ratings(data), kept, u, i, k=3, min_k=1, positive=neighbors == "positive")
           for u, i in zip(users.tolist(), items.tolist())]
    np.testing.assert_allclose(cut._score_pairs(users, items), ref, atol=1e-9)


def test_fallbacks_are_baseline_parts():
    data = synthetic_ratings(extra_users=1, extra_items=1)
    model = ItemKNN().fit(data)
    user, item = data.user_vocab.ids[0], data.item_vocab.ids[0]
    pred = model.score([user, "ghost", "ghost", data.user_vocab.ids[-1], user],
                       ["nope", item, "nope", item, data.item_vocab.ids[-1]])
    assert pred.fallback.all()
    u, i = data.user_vocab.index(user), data.item_vocab.index(item)
    expected = [model.mu + model.user_bias[u], model.mu + model.item_bias[i], model.mu,
                model.mu + model.item_bias[i], model.mu + model.user_bias[u]]
    np.testing.assert_allclose(pred.values, expected)


def test_min_k_above_history_gives_baseline():
    data = synthetic_ratings()
    model = ItemKNN(min_k=1000, k=40).fit(data)
    base = Baseline().fit(data)
    users = data.user_vocab.ids[:5]
    for u in users:
        np.testing.assert_allclose(model.score(u, data.item_vocab.ids).values,
                                   base.score(u, data.item_vocab.ids).values, atol=1e-12)


def test_beats_baseline_on_holdout():
    train, held = random_holdout(synthetic_ratings(n_users=200, n_items=60, per_user=25, noise=0.2, seed=5), 0)
    err = {"knn": holdout_rmse(ItemKNN().fit(train), held), "baseline": holdout_rmse(Baseline().fit(train), held)}
    assert err["knn"] < err["baseline"] - 0.01, err


@pytest.mark.parametrize("neighbors", ["positive", "all"])
def test_explain_names_top_contributor_from_history(neighbors):
    data = synthetic_ratings(**SMALL)
    model = ItemKNN(k=5, neighbors=neighbors).fit(data)
    by_user = _ratings(data)
    sim = _dense_sim(model)
    u = 2
    user = data.user_vocab.ids[u]
    recs = model.recommend([user], k=6, explain=True)[0]
    hist = by_user[u]
    n_anchored = 0
    for item, reason in zip(recs.items.tolist(), recs.reasons):
        i = data.item_vocab.index(item)
        contrib = {}
        for j, r in hist.items():
            if sim[i, j] > 0 or (neighbors == "all" and sim[i, j] != 0):
                contrib[j] = (sim[i, j], sim[i, j] * (r - (model.mu + model.user_bias[u] + model.item_bias[j])))
        top = sorted(contrib, key=lambda j: (-abs(contrib[j][0]), j))[:5]
        similar = [j for j in top if contrib[j][0] > 0]
        best = max(similar, key=lambda j: contrib[j][1]) if similar else None
        if best is not None and contrib[best][1] > 0:
            n_anchored += 1
            assert reason.kind == "similar_to_history"
            assert data.item_vocab.index(reason.anchor) == best
            assert reason.anchor_value == hist[best]
            assert reason.text() == f"because you rated {reason.anchor} {hist[best]:g}"
        else:
            assert reason.kind == "popular"
    assert n_anchored > 0
    assert model.explain(user, ["nope"])[0].kind == "unknown_item"


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown key 'neighbours'"):
        ItemKNN(neighbours=20)
    with pytest.raises(ConfigError, match="k:"):
        ItemKNN(k=0)
    with pytest.raises(ConfigError, match="similarity"):
        ItemKNN(similarity="pearson")
    with pytest.raises(ConfigError, match="max_neighbors"):
        ItemKNN(k=50, max_neighbors=20)
    with pytest.raises(ConfigError, match="reg_items"):
        ItemKNN(baseline={"reg_items": -1})
    with pytest.raises(DataError, match="implicit"):
        ItemKNN().fit(synthetic_implicit())


def test_registry_and_nested_config_round_trip():
    model = create_model("item_knn", {"k": 7, "baseline": {"reg_items": 3.0}})
    assert isinstance(model, ItemKNN) and model.config.baseline.reg_items == 3.0
    again = ItemKNN(model.config.to_dict())
    assert again.config == model.config


@pytest.mark.parametrize("neighbors", ["positive", "all"])
def test_ties_at_the_kth_neighbour_prefer_lower_item_index(neighbors):
    model = ItemKNN(k=3, neighbors=neighbors)
    rng = np.random.default_rng(0)
    w = rng.choice([0.0, 0.2, 0.5, -0.5, 0.7, -0.9], size=(200, 60))
    cols, wk, used = model._neighbours(w)
    key = np.where(w > 0, w, -1.0) if neighbors == "positive" else np.where(w != 0, np.abs(w), -1.0)
    expected = np.argsort(-key, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(np.sort(cols, axis=1), np.sort(expected, axis=1))
    assert used.all() and np.all((wk > 0) if neighbors == "positive" else (wk != 0))
    assert (wk < 0).any() == (neighbors == "all")
