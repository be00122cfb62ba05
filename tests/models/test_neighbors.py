"""ItemCF: conformance, similarities against a slow pure-Python reference and against implicit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError, NotSupportedError
from tastemaker.models.neighbors import (
    ItemCF,
    ItemCFConfig,
    bm25_vectors,
    item_similarity,
    tfidf_vectors,
    top_k_sparse,
)
from tastemaker.models.registry import create_model
from tastemaker.testing import CHECKS, check_beats_popularity

CONFIGS = {
    "default": {},
    "bm25-source-normalized": {"similarity": "bm25", "neighborhood": "source", "normalize": True, "k": 10},
    "cosine-threshold-binary": {"similarity": "cosine", "threshold": 4.0, "weighting": "binary", "shrink": 5.0},
}


@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_conformance(check, config):
    check(lambda: ItemCF(config))


# --- slow reference ----------------------------------------------------------------------------

def reference_weights(x: np.ndarray, cfg: ItemCFConfig) -> np.ndarray:
    """Item × item W by loops over users and items, as the definitions read."""
    n_users, n_items = x.shape
    count_u = [sum(1 for i in range(n_items) if x[u, i] != 0) for u in range(n_users)]
    idf = [math.log(n_items) - math.log(1 + c) for c in count_u]
    sums = [sum(x[u, i] for u in range(n_users)) for i in range(n_items)]
    mean_sum = sum(sums) / n_items
    v = [[0.0] * n_items for _ in range(n_users)]
    for u in range(n_users):
        for i in range(n_items):
            if x[u, i] == 0:
                continue
            if cfg.similarity == "cosine":
                v[u][i] = x[u, i]
            elif cfg.similarity == "tfidf":
                v[u][i] = math.sqrt(x[u, i]) * idf[u]
            else:
                length = 1 - cfg.bm25_b + cfg.bm25_b * sums[i] / mean_sum
                v[u][i] = x[u, i] * (cfg.bm25_k1 + 1) / (cfg.bm25_k1 * length + x[u, i]) * idf[u]

    def dot(i, j):
        return sum(v[u][i] * v[u][j] for u in range(n_users))

    def sim(i, j):  # history item i → recommended item j
        if cfg.similarity == "bm25":
            return dot(i, j)
        denom = dot(i, i) ** (1 - cfg.asymmetry) * dot(j, j) ** cfg.asymmetry + cfg.shrink
        return dot(i, j) / denom if denom > 0 else 0.0

    w = np.zeros((n_items, n_items))
    for a in range(n_items):
        if cfg.neighborhood == "target":  # the k best history items i for recommended item a
            cands = [(sim(i, a), i) for i in range(n_items) if i != a]
        else:  # the k best recommended items j for history item a
            cands = [(sim(a, j), j) for j in range(n_items) if j != a]
        cands = sorted((c for c in cands if c[0] > 0), key=lambda c: (-c[0], c[1]))[: cfg.k]
        total = sum(s for s, _ in cands)
        for s, b in cands:
            value = s / total if cfg.normalize else s
            if cfg.neighborhood == "target":
                w[b, a] = value
            else:
                w[a, b] = value
    return w


def _tiny(seed=0, n_users=12, n_items=7, weighted=True):
    rng = np.random.default_rng(seed)
    x = (rng.random((n_users, n_items)) < 0.45).astype(float)
    x[np.arange(n_items) % n_users, np.arange(n_items)] = 1.0
    x[np.arange(n_users), np.arange(n_users) % n_items] = 1.0
    if weighted:  # continuous values: no exact ties at the k-th neighbour
        x *= rng.uniform(0.5, 5.0, x.shape)
    return x


CASES = [
    {"similarity": "cosine", "k": 3, "neighborhood": "target", "shrink": 0.0},
    {"similarity": "cosine", "k": 3, "neighborhood": "source", "shrink": 2.0, "asymmetry": 0.8},
    {"similarity": "cosine", "k": 2, "neighborhood": "target", "shrink": 1.0, "asymmetry": 0.2, "normalize": True},
    {"similarity": "tfidf", "k": 4, "neighborhood": "target", "shrink": 0.5, "asymmetry": 0.3},
    {"similarity": "tfidf", "k": 2, "neighborhood": "source", "normalize": True},
    {"similarity": "bm25", "k": 3, "neighborhood": "target"},
    {"similarity": "bm25", "k": 4, "neighborhood": "source", "bm25_k1": 2.0, "bm25_b": 0.4, "normalize": True},
]


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_weights_match_reference(case):
    x = _tiny(seed=len(str(case)))
    cfg = ItemCFConfig(**case)
    w = item_similarity(sp.csr_matrix(x), cfg)
    expected = reference_weights(x, cfg)
    np.testing.assert_allclose(w.toarray(), expected, rtol=1e-10, atol=1e-12)
    kept = (expected > 0).sum(axis=0 if cfg.neighborhood == "target" else 1)
    assert kept.max() <= cfg.k


def test_model_scores_are_history_times_weights():
    x = _tiny(seed=3)
    u, i = np.nonzero(x)
    data = Interactions.from_arrays(u, i, x[u, i], explicit=False)
    model = ItemCF(similarity="tfidf", k=3, weighting="value", shrink=1.0).fit(data)
    xw = x.astype(np.float32).astype(float)  # Interactions keep values as float32
    xw /= xw[xw > 0].mean()
    np.testing.assert_allclose(model.x.toarray(), xw, rtol=1e-12)
    w = reference_weights(xw, model.config)
    users = np.arange(x.shape[0])
    np.testing.assert_allclose(model._score(users), xw @ w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model._score_pairs(u.astype(np.int64), i.astype(np.int64)), (xw @ w)[u, i],
                               rtol=1e-10, atol=1e-12)


def test_binary_without_truncation_matches_reference():
    x = _tiny(seed=5, weighted=False)  # many exact ties, but k = all items keeps every one
    for sim in ("cosine", "tfidf", "bm25"):
        cfg = ItemCFConfig(similarity=sim, k=x.shape[1], shrink=3.0)
        np.testing.assert_allclose(item_similarity(sp.csr_matrix(x), cfg).toarray(), reference_weights(x, cfg),
                                   rtol=1e-10, atol=1e-12)


def test_top_k_sparse_ties_go_to_lower_index_and_blocks_agree(monkeypatch):
    dense = np.array([[9.0, 2.0, 2.0, 2.0, 0.0], [1.0, 5.0, 1.0, -3.0, 1.0], [0.0, 0.0, 7.0, 0.0, 0.0],
                      [4.0, 4.0, 4.0, 4.0, 4.0], [np.nan, 1.0, 0.5, 0.0, 3.0]])
    w = top_k_sparse(lambda s, e: dense[s:e], 5, 2).toarray()
    expected = np.array([[0, 2, 2, 0, 0], [1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [4, 4, 0, 0, 0], [0, 1, 0.5, 0, 0]])
    np.testing.assert_array_equal(w, expected)
    monkeypatch.setattr("tastemaker.models.neighbors._BLOCK_CELLS", 2 * 5)  # blocks of two rows, one short
    np.testing.assert_array_equal(top_k_sparse(lambda s, e: dense[s:e], 5, 2).toarray(), expected)


@pytest.mark.parametrize("k", [1, 3, 6, 9])
def test_top_k_sparse_matches_sorting_with_many_ties(k):
    rng = np.random.default_rng(k)
    dense = rng.integers(-1, 4, (9, 9)).astype(float)  # small integers: ties everywhere
    got = top_k_sparse(lambda s, e: dense[s:e], 9, k).toarray()
    expected = np.zeros_like(dense)
    for i in range(9):
        cands = sorted(((dense[i, j], j) for j in range(9) if j != i and dense[i, j] > 0), key=lambda c: (-c[0], c[1]))
        for value, j in cands[:k]:
            expected[i, j] = value
    np.testing.assert_array_equal(got, expected)


# --- against implicit's definitions ------------------------------------------------------------

def test_vectors_match_implicit_weighting():
    from implicit.nearest_neighbours import bm25_weight, tfidf_weight

    x = sp.csr_matrix(_tiny(seed=7))
    np.testing.assert_allclose(bm25_vectors(x, 1.5, 0.6).toarray(), bm25_weight(x.T, 1.5, 0.6).T.toarray(),
                               rtol=1e-6)
    np.testing.assert_allclose(tfidf_vectors(x).toarray(), tfidf_weight(x.T).T.toarray(), rtol=1e-6)


@pytest.mark.filterwarnings("ignore:Method expects CSR input")  # implicit converts its own coo matrix
@pytest.mark.parametrize("similarity", ["cosine", "bm25"])
def test_source_neighbourhoods_match_implicit(similarity):
    """implicit keeps each history item's top K (itself included): ours with k = K − 1 off the diagonal."""
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

    x = sp.csr_matrix(_tiny(seed=11, n_users=30, n_items=12))
    peer = (CosineRecommender if similarity == "cosine" else BM25Recommender)(K=x.shape[1], num_threads=1)
    peer.fit(x, show_progress=False)
    theirs = peer.similarity.toarray()
    np.fill_diagonal(theirs, 0.0)
    ours = item_similarity(x, ItemCFConfig(similarity=similarity, neighborhood="source", k=x.shape[1], shrink=0.0,
                                                    asymmetry=0.5))
    np.testing.assert_allclose(ours.toarray(), theirs, rtol=1e-5, atol=1e-6)


# --- behaviour -----------------------------------------------------------------------------------

def test_recovers_clusters_better_than_popularity():
    check_beats_popularity(lambda: ItemCF(k=20))


def test_explain_names_largest_contribution():
    x = _tiny(seed=2)
    u, i = np.nonzero(x)
    data = Interactions.from_arrays(u, i, x[u, i], explicit=False)
    model = ItemCF(k=4, weighting="value").fit(data)
    w = model.weights.toarray()
    hist = np.flatnonzero(x[0])
    items = [j for j in range(x.shape[1]) if j not in set(hist.tolist())]
    for j, reason in zip(items, model.explain(0, items)):
        contrib = model.x[0].toarray().ravel()[hist] * w[hist, j]
        if contrib.max() > 0:
            assert reason.kind == "similar_to_history" and reason.anchor == hist[int(np.argmax(contrib))]
            assert reason.anchor_value is None
        else:
            assert reason.kind == "personal_taste"


def test_threshold_and_errors():
    data = Interactions.from_arrays([1, 1, 2, 2, 3], ["a", "b", "a", "c", "b"], [5, 2, 4, 5, 1])
    model = ItemCF(threshold=4, k=5).fit(data)
    assert model.scorable_items().tolist() == [True, False, True]
    assert model.recommend([3], k=2)[0].fallback == "no_history"
    with pytest.raises(DataError, match="threshold"):
        ItemCF(threshold=6).fit(data)
    with pytest.raises(ConfigError, match="similarity"):
        ItemCF(similarity="jaccard")
    with pytest.raises(ConfigError, match="unknown key 'K'"):
        ItemCF(K=10)
    with pytest.raises(NotSupportedError):
        model.predict([1], ["a"])


def test_registry_round_trip():
    model = create_model("item_cf", {"k": 7, "similarity": "bm25"})
    assert isinstance(model, ItemCF)
    assert ItemCF(model.config.to_dict()).config == model.config
