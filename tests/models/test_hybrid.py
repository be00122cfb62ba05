"""hybrid_mf: conformance, the WARP/BPR kernel against a slow reference, cold-start ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from tastemaker.data import cold_item_split, cold_user_split
from tastemaker.errors import ConfigError
from tastemaker.models import create_model
from tastemaker.models._kernels import hybrid_epoch
from tastemaker.models.hybrid import HybridMF
from tastemaker.testing import CHECKS, check_cold_users_beat_popularity, cold_item_auc, synthetic_implicit
from tastemaker.testing.cold_start import synthetic_cold_start

SMALL = {"n_factors": 8, "n_epochs": 5}
CONFIGS = {
    "warp-features": SMALL,
    "bpr-sgd-identity-only": {**SMALL, "loss": "bpr", "optimizer": "sgd", "learning_rate": 0.05,
                              "item_features": {}, "user_features": {}},
    "warp-features-only-l1": {**SMALL, "item_identity": False, "item_normalize": "l1", "user_normalize": "l2",
                              "positive_threshold": 3.0, "identity_dropout": 0.5, "item_alpha": 1e-4},
}


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_conformance(config, check):
    check(lambda: HybridMF(CONFIGS[config]))


# --- the kernel against a slow reference ------------------------------------------------------

def reference_epoch(users, items, weights, xu, xi, positives, negatives, drop_user, drop_item, n_uid, n_iid,
                    U, V, Vb, aU, aV, aVb, warp, n_candidates, lr, user_alpha, item_alpha, adagrad, max_loss):
    """LightFM's WARP / BPR step as plain Python over lists: xu/xi are lists of [(feature, value)] rows."""
    k = len(U[0])

    def represent(rows, r, skip, E, B):
        vec, bias = [0.0] * k, 0.0
        for j, w in rows[r]:
            if j < skip:
                continue
            if B is not None:
                bias += w * B[j]
            for f in range(k):
                vec[f] += w * E[j][f]
        return vec, bias

    def step(rows, r, skip, E, B, accE, accB, grad, grad_bias, alpha):
        for j, w in rows[r]:
            if j < skip:
                continue
            for f in range(k):
                g = w * grad[f] + alpha * E[j][f]
                if adagrad:
                    E[j][f] -= lr / math.sqrt(accE[j][f]) * g
                    accE[j][f] += g * g
                else:
                    E[j][f] -= lr * g
            if B is None:
                continue
            g = w * grad_bias + alpha * B[j]
            if adagrad:
                B[j] -= lr / math.sqrt(accB[j]) * g
                accB[j] += g * g
            else:
                B[j] -= lr * g

    total = 0.0
    for s, (u, i) in enumerate(zip(users, items)):
        skip_u = n_uid if drop_user[s] else 0
        skip_i = n_iid if drop_item[s] else 0
        uv, _ = represent(xu, u, skip_u, U, None)
        pv, pb = represent(xi, i, skip_i, V, Vb)
        pos = pb
        for f in range(k):
            pos += uv[f] * pv[f]
        loss, neg, nv = 0.0, None, None
        for t, j in enumerate(negatives[s]):
            if j in positives[u]:
                continue
            nv, nb = represent(xi, j, skip_i, V, Vb)
            score = nb
            for f in range(k):
                score += uv[f] * nv[f]
            if warp:
                if score > pos - 1.0:
                    loss = min(weights[s] * math.log(max(1.0, math.floor((n_candidates - 1) / (t + 1)))), max_loss)
                    total += loss
                    neg = j
                    break
            else:
                x = score - pos
                loss = weights[s] / (1.0 + math.exp(-x))
                total += weights[s] * (max(x, 0.0) + math.log1p(math.exp(-abs(x))))
                neg = j
                break
        if neg is None or loss == 0.0:
            continue
        g_user = [loss * (nv[f] - pv[f]) for f in range(k)]
        step(xi, i, skip_i, V, Vb, aV, aVb, [-loss * uv[f] for f in range(k)], -loss, item_alpha)
        step(xi, neg, skip_i, V, Vb, aV, aVb, [loss * uv[f] for f in range(k)], loss, item_alpha)
        step(xu, u, skip_u, U, None, aU, None, g_user, 0.0, user_alpha)
    return total


def _tiny_case(seed):
    """5 users × 7 items; features = identity block then shared features with fractional values."""
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 5, 7, 3
    xu = sp.hstack([sp.identity(n_users), sp.csr_matrix(rng.random((n_users, 2)) * (rng.random((n_users, 2)) < 0.6))])
    xi = sp.hstack([sp.identity(n_items), sp.csr_matrix(rng.random((n_items, 3)) * (rng.random((n_items, 3)) < 0.5))])
    xu, xi = sp.csr_matrix(xu), sp.csr_matrix(xi)
    dense = (rng.random((n_users, n_items)) < 0.35).astype(float)
    dense[np.arange(n_users), np.arange(n_users)] = 1.0
    pos = sp.csr_matrix(dense)
    pos.sort_indices()
    users, items = (x.astype(np.int64) for x in pos.nonzero())
    n = len(users)
    negatives = rng.integers(0, n_items, (n, 4))
    negatives[0, :2] = items[0]  # a positive first: it must be skipped (WARP still counts the try)
    state = {
        "U": rng.normal(0, 0.4, (xu.shape[1], k)), "V": rng.normal(0, 0.4, (xi.shape[1], k)),
        "Vb": rng.normal(0, 0.2, xi.shape[1]),
        "aU": 1.0 + rng.random((xu.shape[1], k)), "aV": 1.0 + rng.random((xi.shape[1], k)),
        "aVb": 1.0 + rng.random(xi.shape[1]),
    }
    case = {"users": users, "items": items, "weights": rng.uniform(0.5, 2.0, n), "xu": xu, "xi": xi, "pos": pos,
            "negatives": negatives, "drop_user": rng.random(n) < 0.3, "drop_item": rng.random(n) < 0.3,
            "n_uid": n_users, "n_iid": n_items, "n_candidates": n_items}
    return case, state


def _int64(m: sp.csr_matrix) -> sp.csr_matrix:
    m.indptr, m.indices = m.indptr.astype(np.int64), m.indices.astype(np.int64)
    return m


def _rows(m: sp.csr_matrix):
    return [list(zip(m[r].indices.tolist(), m[r].data.tolist())) for r in range(m.shape[0])]


@pytest.mark.parametrize("warp", [True, False], ids=["warp", "bpr"])
@pytest.mark.parametrize("adagrad", [True, False], ids=["adagrad", "sgd"])
@pytest.mark.parametrize("seed", [0, 1])
def test_kernel_matches_reference(warp, adagrad, seed):
    case, state = _tiny_case(seed)
    lr, ua, ia, max_loss = 0.2, 0.01, 0.02, 1.5
    ref = {name: arr.tolist() for name, arr in state.items()}
    got = {name: arr.copy() for name, arr in state.items()}
    xu, xi, pos = case["xu"], case["xi"], case["pos"]
    positives = [set(pos[u].indices.tolist()) for u in range(pos.shape[0])]
    for epoch in range(2):
        negatives = np.roll(case["negatives"], epoch, axis=1)
        total = hybrid_epoch(
            case["users"], case["items"], case["weights"], xu.indptr.astype(np.int64), xu.indices.astype(np.int64),
            xu.data, xi.indptr.astype(np.int64), xi.indices.astype(np.int64), xi.data, pos.indptr.astype(np.int64),
            pos.indices.astype(np.int64), negatives, case["drop_user"], case["drop_item"], case["n_uid"],
            case["n_iid"], got["U"], got["V"], got["Vb"], got["aU"], got["aV"], got["aVb"], warp,
            case["n_candidates"], lr, ua, ia, adagrad, max_loss, np.empty((6, 3)))
        want = reference_epoch(
            case["users"].tolist(), case["items"].tolist(), case["weights"].tolist(), _rows(xu), _rows(xi),
            positives, negatives.tolist(), case["drop_user"].tolist(), case["drop_item"].tolist(), case["n_uid"],
            case["n_iid"], ref["U"], ref["V"], ref["Vb"], ref["aU"], ref["aV"], ref["aVb"], warp,
            case["n_candidates"], lr, ua, ia, adagrad, max_loss)
        assert total > 0, "the case must make updates"
        np.testing.assert_allclose(total, want, rtol=1e-12)
        for name in state:
            np.testing.assert_allclose(got[name], np.array(ref[name]), rtol=1e-12, atol=1e-14, err_msg=name)
    assert not np.allclose(got["V"], state["V"]), "parameters must move"
    if not adagrad:
        assert np.array_equal(got["aV"], state["aV"]), "plain SGD leaves the Adagrad accumulators alone"


def test_kernel_skips_positives_and_warp_weighs_by_tries():
    """One sample, one factor: the weight log⌊(N-1)/t⌋ falls with the number t of candidates tried."""
    xu, xi = (_int64(sp.csr_matrix(np.eye(n))) for n in (1, 4))
    pos = _int64(sp.csr_matrix(np.array([[1.0, 1.0, 0.0, 0.0]])))
    weights_seen = []
    for negatives in ([[2, 3, 3]], [[1, 2, 3]], [[1, 1, 2]]):  # violator found at try 1, 2, 3
        V = np.zeros((4, 1))
        Vb = np.array([0.0, 0.0, 0.5, 0.5])  # negatives score 0.5 > 0 - 1: every non-positive violates
        total = hybrid_epoch(np.array([0]), np.array([0]), np.array([1.0]), xu.indptr, xu.indices, xu.data,
                             xi.indptr, xi.indices, xi.data, pos.indptr, pos.indices, np.array(negatives),
                             np.array([False]), np.array([False]), 1, 4, np.ones((1, 1)), V, Vb, np.ones((1, 1)),
                             np.ones((4, 1)), np.ones(4), True, 101, 0.1, 0.0, 0.0, False, 10.0, np.empty((6, 1)))
        weights_seen.append(total)
    assert weights_seen == [math.log(100), math.log(50), math.log(33)]


# --- the model ----------------------------------------------------------------------------------

def test_registered_and_config_errors():
    model = create_model("hybrid_mf", {"n_factors": 4})
    assert isinstance(model, HybridMF) and model.config.n_factors == 4
    with pytest.raises(ConfigError, match="loss"):
        HybridMF(loss="hinge")
    with pytest.raises(ConfigError, match="positive_threshold"):
        HybridMF(positive_threshold=9.0, **SMALL).fit(synthetic_cold_start())
    with pytest.raises(ConfigError, match="no feature column 'colour'"):
        HybridMF(item_features={"colour": "categorical"}, **SMALL).fit(synthetic_cold_start())


def test_full_identity_dropout_leaves_identity_embeddings_untrained():
    data = synthetic_cold_start(seed=1)
    a = HybridMF(identity_dropout=1.0, user_identity_dropout=1.0, **SMALL).fit(data)
    b = HybridMF(n_factors=8, n_epochs=1, identity_dropout=1.0, user_identity_dropout=1.0).fit(data)
    n_i, n_u = a.item_encoder.identity_size, a.user_encoder.identity_size
    assert n_i == data.n_items and n_u == data.n_users
    assert np.array_equal(a.item_embeddings[:n_i], b.item_embeddings[:n_i]), "identity rows stay at their init"
    assert np.array_equal(a.user_embeddings[:n_u], b.user_embeddings[:n_u])
    assert not np.array_equal(a.item_embeddings[n_i:], b.item_embeddings[n_i:]), "feature rows train"


@pytest.mark.parametrize(("loss", "n_epochs"), [("warp", 10), ("bpr", 30)])
def test_learns_clustered_tastes(loss, n_epochs):
    data = synthetic_implicit(n_users=120, n_items=60, per_user=10, seed=2)
    model = HybridMF(loss=loss, n_factors=16, n_epochs=n_epochs, learning_rate=0.05).fit(data)
    recs = model.recommend(data.user_vocab.ids, k=5)
    same = [np.mean((r.items % 4) == (r.user % 4)) for r in recs]
    assert np.mean(same) > 0.7, f"{loss}: only {np.mean(same):.2f} of the top-5 are of the user's cluster (chance 0.25)"


def test_ranks_items_nobody_rated_from_their_features():
    data = synthetic_cold_start(seed=0)
    train, test = cold_item_split(data, 0.2, seed=0)
    assert (train.item_counts[np.unique(test.item_idx)] == 0).all()
    with_features = cold_item_auc(HybridMF(n_factors=16, n_epochs=15, identity_dropout=0.3).fit(train), test)
    pure_cf = cold_item_auc(HybridMF(n_factors=16, n_epochs=15, item_features={}).fit(train), test)
    assert with_features > 0.85, f"cold-item AUC {with_features:.3f} from genres and titles"
    assert pure_cf == pytest.approx(0.5), "without features every cold item looks the same"


def test_ranks_for_users_who_rated_nothing_from_their_features():
    data = synthetic_cold_start(seed=3)
    train, test = cold_user_split(data, 0.2, seed=0)
    model = HybridMF(n_factors=16, n_epochs=15, user_identity_dropout=0.3).fit(train)
    users = check_cold_users_beat_popularity(model, train, test)
    rec = model.recommend([data.user_vocab.ids[users[0]]], k=5)[0]
    assert rec.fallback is None, "a user with features but no history is scored, not a fallback"
