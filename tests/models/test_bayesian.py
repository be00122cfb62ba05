"""Tests of Bayesian MF (`bayesian_mf`): conformance, the Gibbs kernels against slow references, learning."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tastemaker.errors import ConfigError
from tastemaker.models import create_model
from tastemaker.models._kernels import bmf_gram, bmf_sample_features, bmf_sample_rows, bmf_sse
from tastemaker.models.baseline import Baseline
from tastemaker.models.bayesian import BayesianMF, _Block, _implicit_matrix, _normal_wishart, _truncate
from tastemaker.models.mf import BiasedMF
from tastemaker.testing import CHECKS, holdout_rmse, random_holdout, synthetic_ratings

SMALL = {"n_factors": 4, "n_samples": 8, "burn_in": 2}


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_conformance(check):
    check(lambda: BayesianMF(**SMALL))


# --- the conditional posterior updates against slow references --------------------------------

def _tiny(seed=0, n_ent=5, n_other=4, n_ratings=13, k=2):
    """A few ratings (entity, other, target) and the other side's factors."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_ent * n_other, size=n_ratings, replace=False)
    ent, other = (pairs // n_other).astype(np.int64), (pairs % n_other).astype(np.int64)
    targets = rng.normal(0, 1, n_ratings)
    Z = rng.normal(0, 0.5, (n_other, k))
    return rng, ent, other, targets, Z


def _csr(ent, other, targets, n_ent):
    order = np.argsort(ent, kind="stable")
    ptr = np.concatenate([[0], np.cumsum(np.bincount(ent, minlength=n_ent))]).astype(np.int64)
    return ptr, np.ascontiguousarray(other[order]), targets[order]


def _prior(rng, d):
    a = rng.normal(size=(d, d))
    prec = a @ a.T + d * np.eye(d)
    return prec, prec @ rng.normal(size=d)


def _draw(prec, h, eps):
    """Reference Gaussian draw: mean Λ⁻¹h plus L⁻ᵀ·eps (Λ = L Lᵀ) — textbook linear algebra."""
    L = np.linalg.cholesky(prec)
    return np.linalg.solve(prec, h) + np.linalg.solve(L.T, eps)


def test_gram_is_the_sum_of_outer_products():
    _, ent, other, targets, Z = _tiny()
    n, d = 5, Z.shape[1] + 1
    ptr, cols, t = _csr(ent, other, targets, n)
    G, c = np.full((n, d, d), 7.0), np.full((n, d), 7.0)  # stale values must be overwritten
    bmf_gram(ptr, cols, t, Z, G, c)
    for e in range(n):
        zs = [np.append(Z[o], 1.0) for o, ee in zip(other, ent, strict=True) if ee == e]
        ts = [tt for tt, ee in zip(targets, ent, strict=True) if ee == e]
        want_G = sum((np.outer(z, z) for z in zs), np.zeros((d, d)))
        want_c = sum((z * tt for z, tt in zip(zs, ts, strict=True)), np.zeros(d))
        np.testing.assert_allclose(G[e], want_G, atol=1e-12)
        np.testing.assert_allclose(c[e], want_c, atol=1e-12)


def test_row_update_is_the_conditional_posterior_from_the_raw_ratings():
    """x_e ~ N(Λ⁻¹h, Λ⁻¹), Λ = Λ₀ + α Σ z zᵀ, h = Λ₀μ₀ + α Σ z (t − z·s_e), z = [Z_o, 1] — written
    from the ratings themselves, with the same standard normal draws."""
    rng, ent, other, targets, Z = _tiny(seed=1)
    n, d, alpha = 5, Z.shape[1] + 1, 1.7
    ptr, cols, t = _csr(ent, other, targets, n)
    G, c = np.zeros((n, d, d)), np.zeros((n, d))
    bmf_gram(ptr, cols, t, Z, G, c)
    prec0, h0 = _prior(rng, d)
    s = rng.normal(0, 0.3, (n, d))
    eps = rng.normal(size=(n, d))
    x = np.zeros((n, d))
    bmf_sample_rows(G, c, s, alpha, prec0, h0, eps, x)
    for e in range(n):
        prec, h = prec0.copy(), h0.copy()
        for o, ee, tt in zip(other, ent, targets, strict=True):
            if ee == e:
                z = np.append(Z[o], 1.0)
                prec += alpha * np.outer(z, z)
                h += alpha * z * (tt - z @ s[e])
        np.testing.assert_allclose(x[e], _draw(prec, h, eps[e]), rtol=1e-10, atol=1e-12)


def test_feature_update_is_sequential_gibbs_from_the_raw_ratings():
    """Each φ_g in turn from its conditional given the ratings and every other vector (including the
    φ drawn just before it), with entity vectors x_e + Σ_g w_eg φ_g."""
    rng, ent, other, targets, Z = _tiny(seed=2)
    n, d, alpha, n_feat = 5, Z.shape[1] + 1, 0.9, 3
    ptr, cols, t = _csr(ent, other, targets, n)
    G, c = np.zeros((n, d, d)), np.zeros((n, d))
    bmf_gram(ptr, cols, t, Z, G, c)
    W = sp.random(n, n_feat, density=0.6, random_state=3, format="csr") + sp.csr_matrix(
        (np.ones(n), (np.arange(n), np.arange(n) % n_feat)), shape=(n, n_feat))
    W = W.tocsr()
    block = _Block("test", W)
    x = rng.normal(0, 0.3, (n, d))
    phi = rng.normal(0, 0.3, (n_feat, d))
    s = W @ phi
    prec0, h0 = _prior(rng, d)
    eps = rng.normal(size=(n_feat, d))
    ref_phi = phi.copy()
    bmf_sample_features(block.ptr, block.entities, block.weights, G, c, x, s, alpha, prec0, h0, eps, phi)
    Wd = W.toarray()
    for g in range(n_feat):
        prec, h = prec0.copy(), h0.copy()
        for o, e, tt in zip(other, ent, targets, strict=True):
            w = Wd[e, g]
            if w == 0:
                continue
            z = np.append(Z[o], 1.0)
            rest = x[e] + Wd[e] @ ref_phi - w * ref_phi[g]  # the entity vector without φ_g's share
            prec += alpha * w * w * np.outer(z, z)
            h += alpha * w * z * (tt - z @ rest)
        ref_phi[g] = _draw(prec, h, eps[g])
    np.testing.assert_allclose(phi, ref_phi, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s, Wd @ ref_phi, atol=1e-12)  # offsets kept up to date


def test_sse_kernel():
    rng = np.random.default_rng(4)
    users, items = rng.integers(0, 6, 20), rng.integers(0, 5, 20)
    ratings = rng.integers(1, 6, 20).astype(float)
    U, V = rng.normal(size=(6, 4)), rng.normal(size=(5, 4))
    pred = 3.1 + U[users, 3] + V[items, 3] + np.sum(U[users, :3] * V[items, :3], axis=1)
    assert bmf_sse(users, items, ratings, 3.1, U, V) == pytest.approx(np.sum((ratings - pred) ** 2), rel=1e-12)


def test_normal_wishart_draws_have_the_posterior_moments():
    """Mean of Λ draws is ν·W; the mean draw is centred on n·x̄/β."""
    rng = np.random.default_rng(5)
    X = rng.normal(0.5, 1.0, (30, 3))
    n, d, beta0 = 30, 3, 2.0
    xbar = X.mean(axis=0)
    w_inv = np.eye(d) + (X - xbar).T @ (X - xbar) + beta0 * n / (beta0 + n) * np.outer(xbar, xbar)
    draws = [_normal_wishart(rng, X, beta0) for _ in range(4000)]
    mean_prec = np.mean([p for _, p in draws], axis=0)
    np.testing.assert_allclose(mean_prec, (d + n) * np.linalg.inv(w_inv), rtol=0.05, atol=0.01)
    np.testing.assert_allclose(np.mean([m for m, _ in draws], axis=0), n * xbar / (beta0 + n), atol=0.02)


def test_implicit_matrix_rows_are_scaled_by_inverse_root_counts():
    m = _implicit_matrix(np.array([0, 0, 0, 0, 2]), np.array([1, 2, 3, 3, 0]), 3, 4).toarray()
    np.testing.assert_allclose(m, [[0, 1 / np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(3)], [0, 0, 0, 0], [1, 0, 0, 0]])


def test_truncation_keeps_the_leading_singular_subspace():
    rng = np.random.default_rng(6)
    A, B = rng.normal(size=(40, 12)), rng.normal(size=(30, 12))
    A[:, 6:] *= 1e-4  # numerically rank 6
    A2, B2 = _truncate(A, B, 6, rng)
    assert A2.shape == (40, 6) and B2.shape == (30, 6)
    np.testing.assert_allclose(A2 @ B2.T, A @ B.T, atol=1e-2)


# --- the model ----------------------------------------------------------------------------------

def _split(seed):
    return random_holdout(synthetic_ratings(n_users=200, n_items=60, per_user=20, seed=seed), seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_beats_biased_mf_and_baseline_on_held_out_ratings(seed):
    train, test = _split(seed)
    bayes = holdout_rmse(BayesianMF(n_factors=4, n_samples=40, burn_in=10).fit(train), test)
    assert bayes < 0.9 * holdout_rmse(Baseline().fit(train), test)
    assert bayes < holdout_rmse(BiasedMF().fit(train), test)


def test_predictions_are_the_stored_posterior_mean_and_rank_compresses_it():
    data = synthetic_ratings(seed=3)
    exact = BayesianMF(**SMALL).fit(data)
    assert exact.user_factors.shape[1] == SMALL["n_samples"] * (SMALL["n_factors"] + 2)
    u, i = data.user_idx[:40], data.item_idx[:40]
    want = exact.mu + np.sum(exact.user_factors[u].astype(float) * exact.item_factors[i], axis=1)
    got = exact.score(data.user_vocab.lookup(u), data.item_vocab.lookup(i))
    np.testing.assert_allclose(got.values, want, rtol=1e-6)
    errors = []
    for rank in (4, 16, 40):
        small = BayesianMF(**SMALL, rank=rank).fit(data)
        assert small.user_factors.shape[1] == rank
        diff = small.predict_indices(u, i) - exact.predict_indices(u, i)
        errors.append(np.sqrt(np.mean(diff**2)))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-3


def test_training_trace_and_fixed_or_sampled_noise():
    data = synthetic_ratings()
    fixed = BayesianMF(**SMALL, noise_precision=1.5).fit(data)
    assert fixed.alpha_trace == [1.5] * 10 and len(fixed.train_rmse) == 10
    sampled = BayesianMF(**SMALL, noise_precision=None).fit(data)
    assert len(set(sampled.alpha_trace)) > 1 and all(a > 0 for a in sampled.alpha_trace)
    assert sampled.train_rmse[-1] < sampled.train_rmse[0]


def test_implicit_terms_and_side_features_change_the_model():
    data = synthetic_ratings(seed=4)
    full = BayesianMF(**SMALL).fit(data)
    for off in ({"implicit_users": False}, {"implicit_items": False}, {"item_features": {}}):
        other = BayesianMF(**SMALL, **off).fit(data)
        assert not np.allclose(other.user_factors, full.user_factors), off


def test_fallbacks_use_posterior_mean_biases():
    data = synthetic_ratings(extra_users=1, extra_items=1)
    model = BayesianMF(**SMALL).fit(data)
    user, item = data.user_vocab.ids[2], data.item_vocab.ids[3]
    pred = model.score(["ghost", data.user_vocab.ids[-1], user, user, "ghost"],
                       [item, item, "no-such-item", data.item_vocab.ids[-1], "nothing"])
    assert pred.fallback.all()
    mu, bu, bi = model.mu, model.user_bias[2], model.item_bias[3]
    np.testing.assert_allclose(pred.values, [mu + bi, mu + bi, mu + bu, mu + bu, mu], rtol=1e-12)


def test_unknown_feature_column_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="shoe_size"):
        BayesianMF(**SMALL, item_features={"shoe_size": "categorical"}).fit(synthetic_ratings())


def test_other_seed_other_model_and_registry():
    data = synthetic_ratings()
    a, b = BayesianMF(**SMALL, seed=1).fit(data), BayesianMF(**SMALL, seed=2).fit(data)
    assert not np.array_equal(a.user_factors, b.user_factors)
    model = create_model("bayesian_mf", {"n_factors": 3})
    assert isinstance(model, BayesianMF) and model.predicts_ratings and model.config.n_factors == 3


@pytest.mark.parametrize("bad", [{"n_factors": 0}, {"n_samples": 0}, {"burn_in": -1}, {"noise_precision": 0.0},
                                 {"rank": 0}, {"n_sample": 3}])
def test_invalid_config_is_rejected(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        BayesianMF(**bad)
