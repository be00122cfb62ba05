"""Synthetic bandit problems with known expected rewards, and a loop that measures a policy's regret.

- `BernoulliBandit`: K actions with fixed success rates (no context).
- `LinearBandit`: K actions, a random unit context x each round, success rate
  ``0.5 + scale · x·θ_a`` (θ_a unit vectors), so the best action depends on the context and every
  action has the same average rate: a non-contextual policy cannot beat uniform by much.

`run_bandit(policy, env, n_rounds, seed)` plays the policy against the environment and returns the
per-round regret (best expected reward minus the chosen action's), the chosen actions and their
propensities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tastemaker.errors import ConfigError
from tastemaker.exploration.base import Policy


class BernoulliBandit:
    """Fixed success rates `means`, one per action (actions are 0..K-1); the context is None."""

    def __init__(self, means: list[float] | np.ndarray) -> None:
        self.means = np.asarray(means, dtype=np.float64)
        if self.means.ndim != 1 or len(self.means) < 2 or ((self.means < 0) | (self.means > 1)).any():
            raise ConfigError("BernoulliBandit means must be at least two rates in [0, 1]")
        self.n_actions = len(self.means)

    def context(self, rng: np.random.Generator) -> None:
        return None

    def expected(self, context: None) -> np.ndarray:
        return self.means

    def features(self, context: None, action: int) -> None:
        return None


class LinearBandit:
    """Success rate ``0.5 + scale · x·θ_a`` for a unit context x ~ uniform on the sphere.

    With ``shared=True`` the policy sees per-action rows ``x ⊗ e_a``-style features instead: row a
    is x placed in block a of a (K·d) vector, so one shared linear model can represent every θ_a.
    """

    def __init__(self, n_actions: int = 5, dim: int = 5, *, scale: float = 0.45, seed: int = 0,
                 shared: bool = False) -> None:
        if not 0 < scale <= 0.5:
            raise ConfigError(f"LinearBandit scale must be in (0, 0.5] so that rates stay in [0, 1], got {scale}")
        rng = np.random.default_rng(seed)
        theta = rng.standard_normal((n_actions, dim))
        self.theta = theta / np.linalg.norm(theta, axis=1, keepdims=True)
        self.scale = float(scale)
        self.n_actions = int(n_actions)
        self.dim = int(dim)
        self.shared = bool(shared)

    def context(self, rng: np.random.Generator) -> np.ndarray:
        x = rng.standard_normal(self.dim)
        x /= np.linalg.norm(x)
        if not self.shared:
            return x
        rows = np.zeros((self.n_actions, self.n_actions * self.dim))
        for a in range(self.n_actions):
            rows[a, a * self.dim:(a + 1) * self.dim] = x
        return rows

    def _x(self, context: np.ndarray) -> np.ndarray:
        return context[0, : self.dim] if self.shared else context

    def expected(self, context: np.ndarray) -> np.ndarray:
        return 0.5 + self.scale * self.theta @ self._x(context)

    def features(self, context: np.ndarray, action: int) -> np.ndarray:
        """What `update` takes for `action`: the context vector, or the action's row when shared."""
        return context[action] if self.shared else context


@dataclass(frozen=True)
class BanditRun:
    """Per-round outcomes of `run_bandit`."""

    regret: np.ndarray  # best expected reward − chosen action's expected reward
    actions: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray

    @property
    def cumulative_regret(self) -> np.ndarray:
        return np.cumsum(self.regret)


def run_bandit(policy: Policy | None, env: BernoulliBandit | LinearBandit, n_rounds: int, *, seed: int = 0
               ) -> BanditRun:
    """Play `policy` (None: uniform random choice) for `n_rounds` rounds; rewards are Bernoulli draws."""
    rng = np.random.default_rng(seed)
    actions = list(range(env.n_actions))
    regret = np.empty(n_rounds)
    chosen = np.empty(n_rounds, dtype=np.int64)
    props = np.empty(n_rounds)
    rewards = np.empty(n_rounds)
    for t in range(n_rounds):
        ctx = env.context(rng)
        q = env.expected(ctx)
        if policy is None:
            a, p = int(rng.integers(env.n_actions)), 1.0 / env.n_actions
        else:
            d = policy.select(ctx, actions, rng=rng)
            a, p = int(d.action), d.propensity
        r = float(rng.random() < q[a])
        if policy is not None:
            policy.update(env.features(ctx, a), a, r)
        regret[t] = q.max() - q[a]
        chosen[t], props[t], rewards[t] = a, p, r
    return BanditRun(regret, chosen, props, rewards)
