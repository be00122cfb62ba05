"""Hybrid matrix factorisation over side features (LightFM's model), trained with WARP or BPR.

A user is the sum of the embeddings of its features, an item likewise, with a bias per item
feature: with x_u, x_i the encoded feature rows (`FeatureEncoder`: an identity column per id with
training data, then genres, decade, title words, age group, gender, occupation, zip region, …),

    e_u = Σ_j x_uj·U_j,   e_i = Σ_j x_ij·V_j,   b_i = Σ_j x_ij·b_j,   score(u, i) = e_u·e_i + b_i.

Training follows Kula (2015) and LightFM's Cython loop, as the compiled kernel
`_kernels.hybrid_epoch`: for each positive (u, i), in a fresh seeded order each epoch, sampled
negatives are tried until one violates the margin (WARP, Weston et al. 2011: the number of tries
estimates the positive's rank and weighs the step by log ⌊(N-1)/tries⌋) or the first one is taken
(BPR), and every feature embedding of u, i and the negative takes an Adagrad (or SGD) step.

Items and users without training data have no identity column, so they are represented by their
side features alone: the model ranks items nobody has rated yet and users who have not rated
anything (cold start). `identity_dropout` / `user_identity_dropout` leave the identity columns out
of a fraction of the training steps, so the feature embeddings also learn to stand on their own.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from tastemaker.data.encoders import FeatureEncoder
from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError
from tastemaker.models.base import ModelConfig, Reason, Recommender
from tastemaker.progress import track

_CHUNK = 1 << 18  # samples per kernel call: bounds the pre-drawn negatives' memory


class FeatureModelConfig(ModelConfig):
    """Settings shared by the models that use side features (hybrid_mf, two_tower)."""

    item_features: dict[str, str] | None = None
    """Item feature columns → encoder specs (``multi_hot``, ``categorical``, ``text``, ``bucket:10``,
    ``prefix:2``, …; see `tastemaker.data.encoders`). None infers them from the data; {} uses none."""
    user_features: dict[str, str] | None = None
    """User feature columns → encoder specs, as `item_features`."""
    item_identity: bool = True
    """Give every item with training data its own feature (column) besides its side features."""
    user_identity: bool = True
    """Give every user with training data its own feature besides its side features."""
    min_count: int = Field(default=5, ge=1)
    """Categorical values (and buckets, zip prefixes) seen fewer times share one "other" feature."""
    positive_threshold: float | None = None
    """Explicit data: only ratings ≥ this are positives to learn from (None: every interaction)."""


def encode_sides(
    data: Interactions, cfg: FeatureModelConfig, *, user_normalize: str | None = None,
    item_normalize: str | None = None,
) -> tuple[FeatureEncoder, sp.csr_matrix, FeatureEncoder, sp.csr_matrix]:
    """Fit the user and item encoders of `cfg` on `data`; returns (user encoder, user rows, item encoder,
    item rows), rows aligned to the vocabularies. Identity columns go to ids with training data."""
    users = FeatureEncoder(cfg.user_features, identity=cfg.user_identity, min_count=cfg.min_count,
                           normalize=user_normalize)
    items = FeatureEncoder(cfg.item_features, identity=cfg.item_identity, min_count=cfg.min_count,
                           normalize=item_normalize)
    Xu = users.fit_transform(data.user_features, data.user_vocab,
                             identity_ids=data.user_vocab.ids[data.user_counts > 0])
    Xi = items.fit_transform(data.item_features, data.item_vocab,
                             identity_ids=data.item_vocab.ids[data.item_counts > 0])
    return users, Xu, items, Xi


def positives(data: Interactions, threshold: float | None) -> Interactions:
    """The interactions a ranking model learns from: ratings ≥ `threshold` on explicit data, else all."""
    if threshold is None or not data.explicit:
        return data
    pos = data.select(data.values >= threshold)
    if len(pos) == 0:
        raise ConfigError(f"no rating is ≥ positive_threshold={threshold:g} (ratings span "
                          f"{data.values.min():g}–{data.values.max():g}): lower it or set it to None")
    return pos


class HybridMFConfig(FeatureModelConfig):
    """Defaults chosen on MovieLens 100K validation carve-outs only (never a test fold): the u1.base
    per-user 20% holdout for ranking, and cold-item / cold-user carve-outs of the cold splits' training
    sides for items and users without data. Pure CF settings (no side features) rank known items a
    little better there (NDCG@10 0.261 against 0.250); these defaults keep the features so that the
    same model also ranks the unseen (cold-item AUC 0.77). For users known only by their demographics
    (the cold-users protocol) ``{"item_features": {}, "user_identity_dropout": 0.5,
    "positive_threshold": 4.0}`` scored best there (NDCG@10 0.395 against popularity's 0.359 and
    0.382 for these defaults)."""

    n_factors: int = Field(default=64, ge=1)
    """Length of the feature embeddings."""
    loss: Literal["warp", "bpr"] = "warp"
    """WARP (rank-weighted, samples until a margin violation) or BPR (one negative per positive)."""
    n_epochs: int = Field(default=30, ge=1)
    """Passes over the positives."""
    positive_threshold: float | None = 3.0
    """Explicit data: only ratings ≥ this are positives to learn from (None: every interaction)."""
    learning_rate: float = Field(default=0.028, gt=0.0)
    """Step size (Adagrad: the initial one)."""
    optimizer: Literal["adagrad", "sgd"] = "adagrad"
    """Adagrad per-parameter steps (LightFM's default) or plain SGD."""
    item_alpha: float = Field(default=0.0, ge=0.0)
    """L2 penalty on the item feature embeddings and biases touched by a step."""
    user_alpha: float = Field(default=0.0, ge=0.0)
    """L2 penalty on the user feature embeddings touched by a step."""
    max_sampled: int = Field(default=10, ge=1)
    """Negatives tried per positive (WARP); BPR uses the first that is not a positive."""
    max_loss: float = Field(default=10.0, gt=0.0)
    """Cap of one WARP step's rank weight."""
    identity_dropout: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of training steps in which the items' identity features are left out."""
    user_identity_dropout: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of training steps in which the user's identity feature is left out."""
    user_normalize: Literal["l1", "l2"] | None = "l1"
    """Scale each user's encoded feature row to unit norm (None: one per active feature); l1 makes
    a user the mean of its features' embeddings, which suits users known only by demographics."""
    item_normalize: Literal["l1", "l2"] | None = None
    """Scale each item's encoded feature row to unit norm (None: one per active feature)."""


class HybridMF(Recommender):
    """LightFM-style hybrid factorisation: users and items as sums of feature embeddings.

    Ranks cold items and cold users from their side features. Reasons name the liked history item
    whose representation points most nearly the way the recommended item's does.
    """

    name = "hybrid_mf"
    Config = HybridMFConfig
    scores_cold_users = True
    scores_cold_items = True

    def _fit(self, data: Interactions) -> None:
        from tastemaker.models._kernels import hybrid_epoch

        cfg: HybridMFConfig = self.config
        rng = np.random.default_rng(cfg.seed)
        self.user_encoder, Xu, self.item_encoder, Xi = encode_sides(data, cfg, user_normalize=cfg.user_normalize,
                                                                   item_normalize=cfg.item_normalize)
        pos = positives(data, cfg.positive_threshold)
        pos_matrix = pos.csr(binary=True)
        pos_matrix.sort_indices()
        users = pos.user_idx.astype(np.int64)
        items = pos.item_idx.astype(np.int64)
        weights = pos.effective_weights().astype(np.float64)
        candidates = np.flatnonzero(data.item_counts > 0)
        k = cfg.n_factors
        U = (rng.random((Xu.shape[1], k)) - 0.5) / k
        V = (rng.random((Xi.shape[1], k)) - 0.5) / k
        Vb = np.zeros(Xi.shape[1])
        acc_U, acc_V, acc_Vb = np.ones_like(U), np.ones_like(V), np.ones_like(Vb)
        work = np.empty((6, k))
        uf = (Xu.indptr.astype(np.int64), Xu.indices.astype(np.int64), Xu.data.astype(np.float64))
        itf = (Xi.indptr.astype(np.int64), Xi.indices.astype(np.int64), Xi.data.astype(np.float64))
        pm = (pos_matrix.indptr.astype(np.int64), pos_matrix.indices.astype(np.int64))
        n_uid, n_iid = self.user_encoder.identity_size, self.item_encoder.identity_size
        losses: list[float] = []
        for epoch in track(range(cfg.n_epochs), f"{self.name}: {cfg.loss.upper()} epochs", total=cfg.n_epochs):
            order = rng.permutation(len(users))
            total = 0.0
            for start in range(0, len(order), _CHUNK):
                rows = order[start:start + _CHUNK]
                negatives = candidates[rng.integers(0, len(candidates), (len(rows), cfg.max_sampled))]
                drop_user = rng.random(len(rows)) < cfg.user_identity_dropout
                drop_item = rng.random(len(rows)) < cfg.identity_dropout
                total += hybrid_epoch(users[rows], items[rows], weights[rows], *uf, *itf, *pm, negatives,
                                      drop_user, drop_item, n_uid, n_iid, U, V, Vb, acc_U, acc_V, acc_Vb,
                                      cfg.loss == "warp", len(candidates), cfg.learning_rate, cfg.user_alpha,
                                      cfg.item_alpha, cfg.optimizer == "adagrad", cfg.max_loss, work)
            if not (np.isfinite(total) and np.isfinite(V).all()):
                raise ConfigError(f"{self.name} diverged in epoch {epoch + 1}: decrease learning_rate "
                                  f"(now {cfg.learning_rate:g}) or increase item_alpha / user_alpha")
            losses.append(float(total / max(len(users), 1)))
        self.epoch_loss = losses
        self.user_embeddings, self.item_embeddings, self.item_feature_bias = U, V, Vb
        self.user_vectors = np.asarray(Xu @ U)
        self.item_vectors = np.asarray(Xi @ V)
        self.item_bias = np.asarray(Xi @ Vb).ravel()

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.user_vectors[users] @ self.item_vectors.T + self.item_bias[None, :]

    def _score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", self.user_vectors[users], self.item_vectors[items]) + self.item_bias[items]

    def _explain(self, user: int, items: np.ndarray) -> list[Reason]:
        return self._explain_by_vectors(user, items, self.item_vectors)

    def _get_state(self):
        arrays = {"user_vectors": self.user_vectors, "item_vectors": self.item_vectors, "item_bias": self.item_bias,
                  "user_embeddings": self.user_embeddings, "item_embeddings": self.item_embeddings,
                  "item_feature_bias": self.item_feature_bias}
        meta = {"user_encoder": self.user_encoder.to_state(), "item_encoder": self.item_encoder.to_state(),
                "epoch_loss": self.epoch_loss}
        return arrays, meta

    def _set_state(self, arrays, meta):
        for name in ("user_vectors", "item_vectors", "item_bias", "user_embeddings", "item_embeddings",
                     "item_feature_bias"):
            setattr(self, name, arrays[name])
        self.user_encoder = FeatureEncoder.from_state(meta["user_encoder"])
        self.item_encoder = FeatureEncoder.from_state(meta["item_encoder"])
        self.epoch_loss = [float(x) for x in meta.get("epoch_loss", [])]


__all__ = ["FeatureModelConfig", "HybridMF", "HybridMFConfig", "encode_sides", "positives"]
