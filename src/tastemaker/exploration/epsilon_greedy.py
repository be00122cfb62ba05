"""ε-greedy: the best mean reward so far with probability 1 − ε, a uniformly random action otherwise.

Exact propensities: an action gets ε/K, and the (1 − ε) share is split evenly between the actions
tied for the best mean. Actions never tried have mean `initial` (default +inf: each is tried once
before any is exploited). With `decay`, ε shrinks as ε_t = min(ε, decay / t) after t rewards
(Auer et al. 2002's ε_t = cK/(d²t) schedule), which makes the regret logarithmic instead of linear.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tastemaker.errors import ConfigError
from tastemaker.exploration.base import ArmStats, ChoiceLog, Policy


class EpsilonGreedy(Policy):
    """ε-greedy over the mean observed reward of each action.

    Args:
        epsilon: exploration probability (the cap of the decaying schedule with `decay`).
        decay: None for a constant ε; else ε_t = min(epsilon, decay / t) after t rewards.
        initial: the mean assumed for an action never tried (+inf: try every action once first).
    """

    name = "epsilon_greedy"

    def __init__(self, epsilon: float = 0.1, *, decay: float | None = None, initial: float = float("inf"),
                 seed: int = 0, logger: ChoiceLog | None = None) -> None:
        super().__init__(seed=seed, logger=logger)
        if not 0.0 <= float(epsilon) <= 1.0:
            raise ConfigError(f"epsilon must be in [0, 1], got {epsilon!r}")
        if decay is not None and not float(decay) > 0:
            raise ConfigError(f"decay must be a positive number (or None for a constant epsilon), got {decay!r}")
        self.epsilon = float(epsilon)
        self.decay = None if decay is None else float(decay)
        self.initial = float(initial)
        self.stats = ArmStats()

    def current_epsilon(self) -> float:
        """ε for the next decision."""
        if self.decay is None:
            return self.epsilon
        return min(self.epsilon, self.decay / max(self.t, 1))

    def _distribution(self, context: Any, actions: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        n, s = self.stats.arrays([str(a) for a in actions])
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(n > 0, s / np.maximum(n, 1), self.initial)
        eps = self.current_epsilon()
        best = means == means.max()
        probs = eps / len(actions) + (1.0 - eps) * best / best.sum()
        return means, probs

    def update(self, context: Any, action: Any, reward: float) -> None:
        self.stats.add(str(action), self._reward(reward))
        self.t += 1

    def _settings(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "decay": self.decay, "initial": self.initial}

    def _state(self) -> dict[str, Any]:
        return {"arms": self.stats.to_dict()}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.stats.load(state.get("arms", {}))
