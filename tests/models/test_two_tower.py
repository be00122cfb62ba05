"""two_tower: conformance, the loss and optimiser against numpy references, cold-start ranking."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tastemaker.data import cold_item_split, cold_user_split
from tastemaker.errors import ConfigError
from tastemaker.models import create_model
from tastemaker.models.two_tower import TwoTower, _Adam, in_batch_softmax_loss
from tastemaker.testing import CHECKS, check_cold_users_beat_popularity, cold_item_auc, synthetic_implicit
from tastemaker.testing.cold_start import synthetic_cold_start

SMALL = {"embedding_dim": 8, "block_dim": 8, "hidden_dim": 16, "n_epochs": 3, "batch_size": 64,
         "learning_rate": 0.01}
CONFIGS = {
    "features": SMALL,
    "identity-only-linear": {**SMALL, "item_features": {}, "user_features": {}, "hidden_dim": 0, "normalize": False,
                             "logq_correction": 0.0},
}


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_conformance(config, check):
    check(lambda: TwoTower(CONFIGS[config]))


# --- the loss and the optimiser against numpy -------------------------------------------------

def reference_loss(user_vecs, item_vecs, users, items, logq, temperature):
    """In-batch softmax with logQ correction written row by row."""
    total = 0.0
    for r in range(len(users)):
        logits = []
        for c in range(len(items)):
            if c != r and (users[c] == users[r] or items[c] == items[r]):
                continue
            logits.append((float(user_vecs[r] @ item_vecs[c]) / temperature - logq[items[c]], c == r))
        top = max(v for v, _ in logits)
        log_z = top + np.log(sum(np.exp(v - top) for v, _ in logits))
        total += log_z - next(v for v, own in logits if own)
    return total / len(users)


def test_in_batch_loss_matches_reference():
    rng = np.random.default_rng(0)
    users = np.array([0, 1, 2, 1, 3, 4])
    items = np.array([5, 2, 5, 7, 1, 0])  # user 1 twice, item 5 twice: masked as each other's negatives
    u, v = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    logq = np.log(rng.dirichlet(np.ones(8)))
    got = in_batch_softmax_loss(torch, torch.tensor(u @ v.T / 0.3), users, items, torch.tensor(logq))
    want = reference_loss(u, v, users, items, logq, 0.3)
    assert float(got) == pytest.approx(want, rel=1e-12)
    unmasked = reference_loss(u, v, np.arange(6), np.arange(6), np.zeros(8), 0.3)
    assert float(got) != pytest.approx(unmasked), "masking and logQ must change the loss"


def test_adam_matches_reference():
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(3, 2))
    target = rng.normal(size=(3, 2))
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = _Adam(torch, [p], lr=0.05, weight_decay=0.01)
    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t in range(1, 6):
        opt.zero_grad()
        ((p - torch.tensor(target)) ** 2).sum().backward()
        opt.step()
        g = 2 * (w - target) + 0.01 * w
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 0.05 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-12)


# --- the model ----------------------------------------------------------------------------------

def test_registered_and_config_errors():
    model = create_model("two_tower", {"embedding_dim": 4})
    assert isinstance(model, TwoTower) and model.config.embedding_dim == 4
    with pytest.raises(ConfigError, match="temperature"):
        TwoTower(temperature=0)
    with pytest.raises(ConfigError, match="user tower has no input"):
        TwoTower(user_identity=False, user_features={}, **SMALL).fit(synthetic_cold_start())


def test_learns_clustered_tastes():
    data = synthetic_implicit(n_users=120, n_items=60, per_user=10, seed=2)
    model = TwoTower({**SMALL, "n_epochs": 30}).fit(data)
    recs = model.recommend(data.user_vocab.ids, k=5)
    same = np.mean([np.mean((r.items % 4) == (r.user % 4)) for r in recs])
    assert same > 0.7, f"only {same:.2f} of the top-5 are of the user's cluster (chance 0.25)"
    assert model.epoch_loss[-1] < model.epoch_loss[0]


def test_saved_state_is_plain_arrays_and_json(tmp_path):
    model = TwoTower(SMALL).fit(synthetic_cold_start())
    path = model.save(tmp_path / "m")
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        names = set(npz.files)
    assert {"user_vectors", "item_vectors"} <= names
    assert any(n.startswith("weight.user.bags.") for n in names)
    assert any(n.startswith("weight.item.mlp.") for n in names)
    state = json.loads((path / "manifest.json").read_text())["state"]
    assert state["item_encoder"]["columns"] == {"genres": "multi_hot", "title": "text", "year": "quantile:20"}


def test_ranks_items_nobody_rated_from_their_features():
    data = synthetic_cold_start(seed=0)
    train, test = cold_item_split(data, 0.2, seed=0)
    config = {**SMALL, "n_epochs": 15, "id_dropout": 0.5}
    with_features = cold_item_auc(TwoTower(config).fit(train), test)
    pure_cf = cold_item_auc(TwoTower({**config, "item_features": {}}).fit(train), test)
    assert with_features > 0.85, f"cold-item AUC {with_features:.3f} from genres and titles"
    assert pure_cf == pytest.approx(0.5), "without features every cold item looks the same"


def test_ranks_for_users_who_rated_nothing_from_their_features():
    data = synthetic_cold_start(seed=3)
    train, test = cold_user_split(data, 0.2, seed=0)
    model = TwoTower({**SMALL, "n_epochs": 15, "user_id_dropout": 0.5}).fit(train)
    check_cold_users_beat_popularity(model, train, test)
