"""Peer adapters: they must report exactly what the peer library computes."""

import numpy as np
import pytest
import surprise

from tastemaker.bench.peers import ImplicitPeer, SurprisePeer
from tastemaker.errors import NotSupportedError
from tastemaker.testing import synthetic_implicit, synthetic_ratings


def test_surprise_adapter_predicts_what_surprise_predicts():
    data = synthetic_ratings()
    peer = SurprisePeer(algorithm="SVD", params={"n_factors": 5, "n_epochs": 5}).fit(data)
    u, i = data.user_idx[:50].astype(np.int64), data.item_idx[:50].astype(np.int64)
    ours = peer.predict_indices(u, i)
    theirs = [min(5.0, max(1.0, peer.algo.predict(int(a), int(b), clip=False).est)) for a, b in zip(u, i, strict=True)]
    np.testing.assert_allclose(ours, theirs)
    assert isinstance(peer.algo, surprise.SVD)


def test_surprise_adapter_lets_surprise_handle_unknown_ids():
    data = synthetic_ratings(extra_items=1)
    peer = SurprisePeer(algorithm="BaselineOnly").fit(data)
    cold_item = data.n_items - 1
    value = peer.predict_indices(np.array([0]), np.array([cold_item]))[0]
    # Surprise's BaselineOnly on an unknown item: global mean + user bias
    est = peer.algo.predict(0, "?", clip=False).est
    assert value == pytest.approx(est)


@pytest.mark.parametrize("algorithm", ["als", "bpr", "cosine"])
def test_implicit_adapter_ranks_unseen_items(algorithm):
    data = synthetic_implicit()
    params = {"K": 10} if algorithm == "cosine" else {"factors": 8, "iterations": 5}
    peer = ImplicitPeer(algorithm=algorithm, params=params).fit(data)
    items, scores, _ = peer.recommend_indices(np.arange(5), k=5)
    seen = data.seen
    for row, recs in enumerate(items):
        assert not set(recs.tolist()) & set(seen[row].indices.tolist())
        assert np.all(np.diff(scores[row]) <= 0)


def test_implicit_scores_are_the_factor_dot_products():
    data = synthetic_implicit()
    peer = ImplicitPeer(algorithm="als", params={"factors": 4, "iterations": 3}).fit(data)
    expected = peer.algo.user_factors[[2]] @ peer.algo.item_factors.T
    np.testing.assert_allclose(peer.score_matrix(np.array([2]))[0], expected[0], rtol=1e-6)


def test_peers_refuse_to_save(tmp_path):
    peer = SurprisePeer(algorithm="BaselineOnly").fit(synthetic_ratings())
    with pytest.raises(NotSupportedError, match="cannot be saved"):
        peer.save(tmp_path / "x")
