"""UCB1 (Auer, Cesa-Bianchi & Fischer 2002): the action with the highest upper confidence bound.

Index of action a after t rewards in all: ``mean_a + c · sqrt(2 ln t / n_a)``; an action never tried
has index +inf, so each is tried once first. The choice is deterministic: the propensity is 1, or
1/m when m actions tie for the highest index (ties are broken uniformly at random). A deterministic
logging policy gives off-policy evaluation nothing to work with for the actions it never picks;
log with a stochastic policy (ε-greedy, Thompson) where the logs will be reused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tastemaker.errors import ConfigError
from tastemaker.exploration.base import ArmStats, ChoiceLog, Policy, argmax_ties


class UCB1(Policy):
    """UCB1 with an exploration constant `c` (1 is Auer et al.'s; rewards should lie in [0, 1])."""

    name = "ucb1"

    def __init__(self, c: float = 1.0, *, seed: int = 0, logger: ChoiceLog | None = None) -> None:
        super().__init__(seed=seed, logger=logger)
        if not float(c) >= 0:
            raise ConfigError(f"UCB1 c must be >= 0, got {c!r}")
        self.c = float(c)
        self.stats = ArmStats()

    def _distribution(self, context: Any, actions: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        n, s = self.stats.arrays([str(a) for a in actions])
        log_t = np.log(max(self.t, 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            index = np.where(n > 0, s / np.maximum(n, 1) + self.c * np.sqrt(2.0 * log_t / np.maximum(n, 1)), np.inf)
        return index, argmax_ties(index)

    def update(self, context: Any, action: Any, reward: float) -> None:
        self.stats.add(str(action), self._reward(reward))
        self.t += 1

    def _settings(self) -> dict[str, Any]:
        return {"c": self.c}

    def _state(self) -> dict[str, Any]:
        return {"arms": self.stats.to_dict()}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.stats.load(state.get("arms", {}))
