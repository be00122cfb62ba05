"""Tests of I-AutoRec (`autorec`): conformance, the masked loss and its gradient against NumPy, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tastemaker.errors import ConfigError
from tastemaker.models import create_model
from tastemaker.models.autorec import AutoRec, autorec_forward, autorec_loss
from tastemaker.models.baseline import Baseline
from tastemaker.testing import CHECKS, holdout_rmse, random_holdout, synthetic_ratings

SMALL = {"hidden": 16, "n_epochs": 30, "reg": 1.0, "learning_rate": 0.01}


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_conformance(check):
    check(lambda: AutoRec(**SMALL))


def _reference(R, M, V, b, W, c, reg):
    """Loss and gradients of the masked I-AutoRec objective, derived by hand:
    z = R Vᵀ + b, h = σ(z), O = h Wᵀ + c, L = Σ M⊙(O − R)² + λ/2(‖V‖² + ‖W‖²)."""
    z = R @ V.T + b
    h = 1 / (1 + np.exp(-z))
    out = h @ W.T + c
    err = (out - R) * M
    loss = np.sum(err**2) + reg / 2 * (np.sum(V**2) + np.sum(W**2))
    d_out = 2 * err
    d_W = d_out.T @ h + reg * W
    d_c = d_out.sum(axis=0)
    d_z = (d_out @ W) * h * (1 - h)
    d_V = d_z.T @ R + reg * V
    d_b = d_z.sum(axis=0)
    return out, loss, (d_V, d_b, d_W, d_c)


def test_masked_loss_and_gradient_match_the_hand_derivation():
    rng = np.random.default_rng(0)
    n_items, n_users, hidden, reg = 5, 4, 3, 0.7
    M = (rng.random((n_items, n_users)) < 0.5).astype(np.float64)
    R = rng.integers(1, 6, (n_items, n_users)) * M
    params = [rng.normal(0, 0.5, s) for s in ((hidden, n_users), hidden, (n_users, hidden), n_users)]
    out, loss, grads = _reference(R, M, *params, reg)
    tensors = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    got = autorec_loss(torch.tensor(R).to_sparse_csr(), torch.tensor(R), torch.tensor(M), *tensors, reg)
    got.backward()
    assert float(got.detach()) == pytest.approx(loss, rel=1e-12)
    for t, want in zip(tensors, grads, strict=True):
        np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(autorec_forward(R, *params), out, rtol=1e-12)  # the NumPy path scoring uses
    # only observed entries count: the loss is a sum over the observed (item, user) pairs
    observed = [(out[i, u] - R[i, u]) ** 2 for i, u in zip(*np.nonzero(M), strict=True)]
    penalty = reg / 2 * (np.sum(params[0] ** 2) + np.sum(params[2] ** 2))
    assert loss == pytest.approx(sum(observed) + penalty, rel=1e-12)
    assert len(observed) < M.size


def test_predictions_are_the_reconstruction_of_the_item_rows():
    data = synthetic_ratings(seed=2)
    model = AutoRec(**SMALL).fit(data)
    R = model.train_matrix.T.toarray()
    out = autorec_forward(R, model.V.astype(float), model.b, model.W.astype(float), model.c)
    u, i = data.user_idx[:30], data.item_idx[:30]
    got = model.score(data.user_vocab.lookup(u), data.item_vocab.lookup(i))
    assert not got.fallback.any()
    np.testing.assert_allclose(got.values, out[i, u], rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_beats_baseline_on_held_out_ratings(seed):
    train, test = random_holdout(synthetic_ratings(n_users=200, n_items=60, per_user=20, seed=seed), seed)
    auto = holdout_rmse(AutoRec(hidden=50, n_epochs=60, reg=5.0, learning_rate=0.01).fit(train), test)
    assert auto < 0.95 * holdout_rmse(Baseline().fit(train), test)


def test_training_loss_falls_and_fallbacks_use_biases():
    data = synthetic_ratings(extra_users=1, extra_items=1)
    model = AutoRec(**SMALL).fit(data)
    assert len(model.epoch_loss) == SMALL["n_epochs"] and model.epoch_loss[-1] < 0.5 * model.epoch_loss[0]
    user, item = data.user_vocab.ids[2], data.item_vocab.ids[3]
    pred = model.score(["ghost", user], [item, "no-such-item"])
    assert pred.fallback.all()
    np.testing.assert_allclose(pred.values, [model.mu + model.item_bias[3], model.mu + model.user_bias[2]])


def test_seeds_threads_and_torch_state():
    data = synthetic_ratings()
    torch.manual_seed(123)
    before = torch.get_num_threads()
    state = torch.random.get_rng_state()
    a = AutoRec(**SMALL, seed=1).fit(data)
    assert torch.equal(torch.random.get_rng_state(), state), "fit must not consume torch's global random state"
    assert torch.get_num_threads() == before
    b = AutoRec(**SMALL, seed=2).fit(data)
    assert not np.array_equal(a.W, b.W)
    assert isinstance(create_model("autorec", {"hidden": 8}), AutoRec)


def test_divergence_is_a_config_error():
    with pytest.raises(ConfigError, match="learning_rate"):
        AutoRec(hidden=8, n_epochs=20, optimizer="adam", learning_rate=1e30, reg=0.0).fit(synthetic_ratings())


@pytest.mark.parametrize("bad", [{"hidden": 0}, {"n_epochs": 0}, {"reg": -1.0}, {"optimizer": "sgd"}, {"hiden": 3}])
def test_invalid_config_is_rejected(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        AutoRec(**bad)
