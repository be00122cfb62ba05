"""The standalone diversity re-rankers (MMR, calibrated) and category-path similarity."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.errors import ConfigError
from tastemaker.ranking import calibrated_rerank, mmr_rerank
from tastemaker.ranking.diversity import (
    CalibrationState,
    CategorySimilarity,
    category_codes,
    category_similarity_matrix,
    codes_at_depth,
)


def test_category_similarity_is_the_share_of_shared_leading_levels():
    paths = ["a/b/c", "a/b/d", "a/b", "a/x/c", "b/b/c", "", "a//b/c/"]
    sim = CategorySimilarity.from_paths(paths)
    assert sim.row(0).tolist() == pytest.approx([1, 2 / 3, 2 / 3, 1 / 3, 0, 0, 1])
    assert sim.row(5).tolist() == [0] * 7  # unknown category: similar to nothing
    codes, depths = category_codes(paths)
    full = category_similarity_matrix(codes, depths)
    assert np.allclose(full, np.stack([sim.row(j) for j in range(len(paths))]))
    assert np.allclose(full, full.T)


def test_codes_at_depth_cut_paths_and_keep_shallow_ones():
    codes, depths = category_codes(["a/b/c", "a/b/d", "a", "a/e", ""])
    d2 = codes_at_depth(codes, depths, 2)
    assert d2[0] == d2[1] != d2[3] and d2[2] != d2[0] and d2[4] == -1
    d1 = codes_at_depth(codes, depths, 1)
    assert len(set(d1[:4].tolist())) == 1


def test_mmr_lambda_one_is_the_relevance_order():
    rng = np.random.default_rng(0)
    rel = rng.random(50)
    v = rng.normal(size=(50, 8))
    assert mmr_rerank(rel, 10, 1.0, vectors=v).tolist() == np.argsort(-rel, kind="stable")[:10].tolist()


def test_mmr_lambda_zero_picks_the_least_similar_items():
    cats = ["a/1", "a/1", "a/2", "b/1", "b/2", "c/1"]
    rel = np.array([6, 5, 4, 3, 2, 1], dtype=float)
    picked = mmr_rerank(rel, 4, 0.0, categories=cats).tolist()
    assert picked == [0, 3, 5, 2]  # one per top level first (best first), then the nearest-to-new level
    sim = np.eye(3) + 0.9 * (1 - np.eye(3))
    sim[0, 2] = sim[2, 0] = 0.1
    assert mmr_rerank(np.array([3.0, 2.0, 1.0]), 2, 0.0, similarity=sim).tolist() == [0, 2]


def test_mmr_trade_off_is_monotone_in_lambda():
    rng = np.random.default_rng(1)
    rel = rng.random(200)
    v = rng.normal(size=(200, 16))
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)

    def stats(lam):
        idx = mmr_rerank(rel, 10, lam, vectors=v)
        s = vn[idx] @ vn[idx].T
        return rel[idx].sum(), s[np.triu_indices(10, 1)].mean()

    r0, d0 = stats(0.0)
    r5, d5 = stats(0.5)
    r1, d1 = stats(1.0)
    assert r0 <= r5 <= r1  # more relevance as lambda grows ...
    assert d0 <= d5 <= d1  # ... and more similar items in the list


def test_mmr_argument_checks():
    with pytest.raises(ValueError, match="exactly one"):
        mmr_rerank(np.ones(3), 2, 0.5)
    with pytest.raises(ConfigError, match="lambda"):
        mmr_rerank(np.ones(3), 2, 1.5, categories=["a", "b", "c"])
    with pytest.raises(ValueError, match="2 item descriptions for 3"):
        mmr_rerank(np.ones(3), 2, 0.5, vectors=np.ones((2, 2)))


def _kl(p, q, alpha=0.01):
    qt = (1 - alpha) * q + alpha * p
    m = p > 0
    return float((p[m] * np.log(p[m] / qt[m])).sum())


def test_calibrated_lambda_zero_is_relevance_and_lambda_one_matches_the_target():
    rng = np.random.default_rng(2)
    n, g = 60, 3
    genre = rng.integers(0, g, n)
    dist = np.eye(g)[genre]
    rel = rng.random(n) + (genre == 0)  # genre 0 is the most relevant
    target = np.array([0.2, 0.5, 0.3])
    r0 = calibrated_rerank(rel, dist, target, 10, 0.0)
    assert r0.tolist() == np.argsort(-rel, kind="stable")[:10].tolist()
    kls = [_kl(target, dist[calibrated_rerank(rel, dist, target, 10, lam)].mean(0)) for lam in (0.0, 0.5, 0.99)]
    assert kls[0] > kls[1] >= kls[2]
    assert dist[calibrated_rerank(rel, dist, target, 10, 0.99)].sum(0).tolist() == [2, 5, 3]


def test_calibrated_multi_genre_items_and_one_hot_fast_path_agree():
    rng = np.random.default_rng(3)
    n = 30
    multi = rng.random((n, 4)) * (rng.random((n, 4)) < 0.5)
    multi[multi.sum(1) == 0, 0] = 1
    multi /= multi.sum(1, keepdims=True)
    out = calibrated_rerank(rng.random(n), multi, np.array([1, 2, 3, 4.0]), 8, 0.7)
    assert len(set(out.tolist())) == 8
    one_hot = np.eye(4)[rng.integers(0, 4, n)]
    one_hot[:3] = 0  # items outside every category dilute the list's mix
    rel = rng.random(n)
    fast = CalibrationState(rel, one_hot, np.array([1, 0, 2, 1.0]), 0.6)
    slow = CalibrationState(rel, one_hot, np.array([1, 0, 2, 1.0]), 0.6)
    slow._group = None
    assert fast._group is not None
    for j in (4, 9, 0):
        assert np.allclose(fast.gains(), slow.gains())
        fast.add(j)
        slow.add(j)
