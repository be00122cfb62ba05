"""Contextual bandits with linear reward models: LinUCB (Li et al. 2010) and linear Thompson sampling
(Agrawal & Goyal 2013).

Both keep ridge-regression statistics ``A = l2·I + Σ x xᵀ`` (as its inverse, updated by
Sherman-Morrison) and ``b = Σ r x``, so θ̂ = A⁻¹ b. Two layouts:

- **disjoint** (default, Li et al.'s Algorithm 1): one model per action; `context` is the request's
  feature vector x of shape (d,), shared by all actions; ``update(x, action, r)``.
- **shared** (``shared=True``): one model for all actions; `context` is an (n_actions, d) matrix with
  one feature row per candidate (user × item features), so new actions need no history; ``update``
  takes the **chosen action's row** (d,) as its context.

LinUCB scores ``x·θ̂ + α·sqrt(xᵀA⁻¹x)`` and picks the maximum (propensity 1, or 1/m for m ties).
Linear Thompson sampling draws θ̃ ~ N(θ̂, v²A⁻¹) and picks the best x·θ̃. Its choice probabilities
are estimated from `draws` joint samples of the scores, taken with noise fixed between updates
(seeded by the policy seed and the update count), and the choice is drawn from those shares — so
the logged propensity is exactly the probability of the choice, as in `ThompsonSlots`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tastemaker.errors import ConfigError, DataError
from tastemaker.exploration.base import ChoiceLog, Policy, argmax_ties


class _Ridge:
    """Per-key (or single) ridge statistics: A⁻¹ and b."""

    def __init__(self, dim: int, l2: float) -> None:
        self.dim = dim
        self.l2 = l2
        self.a_inv: dict[str, np.ndarray] = {}
        self.b: dict[str, np.ndarray] = {}

    def get(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        a_inv = self.a_inv.get(key)
        if a_inv is None:
            return np.eye(self.dim) / self.l2, np.zeros(self.dim)
        return a_inv, self.b[key]

    def stacked(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        parts = [self.get(k) for k in keys]
        return np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts])

    def add(self, key: str, x: np.ndarray, reward: float) -> None:
        a_inv, b = self.get(key)
        ax = a_inv @ x
        self.a_inv[key] = a_inv - np.outer(ax, ax) / (1.0 + x @ ax)
        self.b[key] = b + reward * x

    def to_dict(self) -> dict[str, Any]:
        return {k: {"a_inv": self.a_inv[k].tolist(), "b": self.b[k].tolist()} for k in self.a_inv}

    def load(self, data: Mapping[str, Any]) -> None:
        for k, v in data.items():
            self.a_inv[str(k)] = np.asarray(v["a_inv"], dtype=np.float64).reshape(self.dim, self.dim)
            self.b[str(k)] = np.asarray(v["b"], dtype=np.float64).reshape(self.dim)


_SHARED = "*"


class _LinearPolicy(Policy):
    contextual = True

    def __init__(self, dim: int, *, l2: float = 1.0, shared: bool = False, seed: int = 0,
                 logger: ChoiceLog | None = None) -> None:
        super().__init__(seed=seed, logger=logger)
        if isinstance(dim, bool) or int(dim) < 1:
            raise ConfigError(f"{type(self).__name__} dim must be a positive integer, got {dim!r}")
        if not float(l2) > 0:
            raise ConfigError(f"{type(self).__name__} l2 must be > 0, got {l2!r}")
        self.dim = int(dim)
        self.l2 = float(l2)
        self.shared = bool(shared)
        self.ridge = _Ridge(self.dim, self.l2)

    def _features(self, context: Any, n_actions: int) -> np.ndarray:
        """(n_actions, d) feature rows for the candidates."""
        x = np.asarray(context, dtype=np.float64)
        if self.shared:
            if x.shape != (n_actions, self.dim):
                raise DataError(f"a shared {self.name} needs an ({n_actions}, {self.dim}) context (one feature row "
                                f"per action), got shape {x.shape}")
        elif x.shape != (self.dim,):
            raise DataError(f"{self.name} needs a context vector of shape ({self.dim},), got shape {x.shape}",
                            hint="pass shared=True for one feature row per action")
        if not np.isfinite(x).all():
            raise DataError(f"{self.name} context holds non-finite values")
        return x if self.shared else np.broadcast_to(x, (n_actions, self.dim))

    def _moments(self, context: Any, actions: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Posterior mean score (n,), its variance factor xᵀA⁻¹x (n,) and the feature rows."""
        x = self._features(context, len(actions))
        if self.shared:
            a_inv, b = self.ridge.get(_SHARED)
            theta = a_inv @ b
            return x @ theta, np.einsum("nd,de,ne->n", x, a_inv, x), x
        a_inv, b = self.ridge.stacked([str(a) for a in actions])
        theta = np.einsum("nde,ne->nd", a_inv, b)
        return np.einsum("nd,nd->n", x, theta), np.einsum("nd,nde,ne->n", x, a_inv, x), x

    def theta(self, action: Any = None) -> np.ndarray:
        """θ̂ of an action (disjoint) or of the shared model."""
        a_inv, b = self.ridge.get(_SHARED if self.shared else str(action))
        return a_inv @ b

    def update(self, context: Any, action: Any, reward: float) -> None:
        x = np.asarray(context, dtype=np.float64)
        if x.shape != (self.dim,):
            what = "the chosen action's feature row" if self.shared else "the context vector"
            raise DataError(f"{self.name}.update needs {what} of shape ({self.dim},), got shape {x.shape}")
        self.ridge.add(_SHARED if self.shared else str(action), x, self._reward(reward))
        self.t += 1

    def _settings(self) -> dict[str, Any]:
        return {"dim": self.dim, "l2": self.l2, "shared": self.shared}

    def _state(self) -> dict[str, Any]:
        return {"models": self.ridge.to_dict()}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.ridge.load(state.get("models", {}))


class LinUCB(_LinearPolicy):
    """LinUCB: pick the highest ``x·θ̂ + alpha·sqrt(xᵀA⁻¹x)``.

    Args:
        dim: context dimension d.
        alpha: width of the confidence bound.
        l2: ridge penalty (A starts at l2·I).
        shared: one model over per-action feature rows instead of one model per action.
    """

    name = "linucb"

    def __init__(self, dim: int, alpha: float = 1.0, *, l2: float = 1.0, shared: bool = False, seed: int = 0,
                 logger: ChoiceLog | None = None) -> None:
        super().__init__(dim, l2=l2, shared=shared, seed=seed, logger=logger)
        if not float(alpha) >= 0:
            raise ConfigError(f"LinUCB alpha must be >= 0, got {alpha!r}")
        self.alpha = float(alpha)

    def _distribution(self, context: Any, actions: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        mean, var, _ = self._moments(context, actions)
        ucb = mean + self.alpha * np.sqrt(np.maximum(var, 0.0))
        return ucb, argmax_ties(ucb)

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "alpha": self.alpha}


class LinearThompson(_LinearPolicy):
    """Linear Thompson sampling: θ̃ ~ N(θ̂, v²A⁻¹), pick the best x·θ̃ (Monte-Carlo propensities).

    Args:
        dim: context dimension d.
        v: posterior scale (larger explores more).
        l2: ridge penalty (A starts at l2·I).
        shared: one model over per-action feature rows instead of one model per action.
        draws: joint score samples behind the choice probabilities.
    """

    name = "linear_thompson"

    def __init__(self, dim: int, v: float = 1.0, *, l2: float = 1.0, shared: bool = False, draws: int = 512,
                 seed: int = 0, logger: ChoiceLog | None = None) -> None:
        super().__init__(dim, l2=l2, shared=shared, seed=seed, logger=logger)
        if not float(v) > 0:
            raise ConfigError(f"LinearThompson v must be > 0, got {v!r}")
        if int(draws) < 10:
            raise ConfigError(f"LinearThompson draws must be at least 10, got {draws!r}")
        self.v = float(v)
        self.draws = int(draws)

    def _noise(self, cols: int) -> np.ndarray:
        # fixed between updates: the same state and context always give the same probabilities
        return np.random.default_rng([self.seed, self.t, cols]).standard_normal((self.draws, cols))

    def _distribution(self, context: Any, actions: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        mean, var, x = self._moments(context, actions)
        n = len(actions)
        if self.shared:
            a_inv, _ = self.ridge.get(_SHARED)
            chol = np.linalg.cholesky((a_inv + a_inv.T) / 2.0)
            samples = mean + self.v * (self._noise(self.dim) @ chol.T) @ x.T  # (draws, n), correlated
        else:
            samples = mean + self.v * np.sqrt(np.maximum(var, 0.0)) * self._noise(n)  # independent per action
        wins = np.bincount(samples.argmax(axis=1), minlength=n)
        return mean, wins / self.draws

    def _settings(self) -> dict[str, Any]:
        return {**super()._settings(), "v": self.v, "draws": self.draws}
