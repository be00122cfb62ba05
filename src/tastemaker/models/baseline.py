"""Baseline predictor: global mean + regularised user and item biases (Koren 2010, §2.1).

The ALS solver is the one Surprise's `BaselineOnly` uses (alternating closed-form updates with
separate regularisation for items and users), vectorised with `np.bincount`; `sgd` is offered too.
`fit_biases` is shared by every model that starts from baseline estimates (e.g. item-kNN).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from tastemaker.data.interactions import Interactions
from tastemaker.models.base import ModelConfig, Reason, Recommender


class BaselineConfig(ModelConfig):
    method: Literal["als", "sgd"] = "als"
    n_epochs: int = Field(default=10, ge=1)
    reg_users: float = Field(default=15.0, ge=0.0)
    """ALS: λ for user biases (Surprise's reg_u)."""
    reg_items: float = Field(default=10.0, ge=0.0)
    """ALS: λ for item biases (Surprise's reg_i)."""
    learning_rate: float = Field(default=0.005, gt=0.0)
    """SGD only."""
    reg: float = Field(default=0.02, ge=0.0)
    """SGD only: λ for both biases."""


def fit_biases(data: Interactions, config: BaselineConfig | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Global mean, user biases and item biases of explicit ratings (indexed like `data`)."""
    cfg = config or BaselineConfig()
    u, i = data.user_idx, data.item_idx
    r = data.values.astype(np.float64)
    mu = float(r.mean())
    bu = np.zeros(data.n_users)
    bi = np.zeros(data.n_items)
    n_u = np.bincount(u, minlength=data.n_users)
    n_i = np.bincount(i, minlength=data.n_items)
    if cfg.method == "als":
        for _ in range(cfg.n_epochs):
            bi = np.bincount(i, weights=r - mu - bu[u], minlength=data.n_items) / (cfg.reg_items + n_i)
            bu = np.bincount(u, weights=r - mu - bi[i], minlength=data.n_users) / (cfg.reg_users + n_u)
    else:
        from tastemaker.models._kernels import sgd_biases

        rng = np.random.default_rng(cfg.seed)
        for _ in range(cfg.n_epochs):
            order = rng.permutation(len(r))
            sgd_biases(u[order], i[order], r[order], mu, bu, bi, cfg.learning_rate, cfg.reg)
    return mu, bu, bi


def bias_fallback(mu: float, user_bias: np.ndarray, item_bias: np.ndarray, users: np.ndarray,
                  items: np.ndarray) -> np.ndarray:
    """μ + b_u + b_i for user/item index pairs, a bias counting 0 where the index is -1 (unknown):
    the `_fallback_values` of the bias-based rating models."""
    bu = np.where(users >= 0, user_bias[np.maximum(users, 0)], 0.0)
    bi = np.where(items >= 0, item_bias[np.maximum(items, 0)], 0.0)
    return mu + bu + bi


class Baseline(Recommender):
    """r̂(u, i) = μ + b_u + b_i. Unknown users get μ + b_i, unknown items μ + b_u."""

    name = "baseline"
    Config = BaselineConfig
    predicts_ratings = True

    def _fit(self, data: Interactions) -> None:
        self.mu, self.user_bias, self.item_bias = fit_biases(data, self.config)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.mu + self.user_bias[users, None] + self.item_bias[None, :]

    def _score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.mu + self.user_bias[users] + self.item_bias[items]

    def _fallback_values(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return bias_fallback(self.mu, self.user_bias, self.item_bias, users, items)

    def _explain(self, user: int, items: np.ndarray) -> list[Reason]:
        return [Reason("popular", detail="rated above average by everyone")] * len(items)

    def _get_state(self):
        return {"user_bias": self.user_bias, "item_bias": self.item_bias}, {"mu": self.mu}

    def _set_state(self, arrays, meta):
        self.user_bias, self.item_bias, self.mu = arrays["user_bias"], arrays["item_bias"], float(meta["mu"])
