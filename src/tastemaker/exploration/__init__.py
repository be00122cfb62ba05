"""Bandit policies for exploration: `select` an action, log its propensity, `update` with the reward.

Only Beta-Bernoulli Thompson sampling for exploration slots lives here so far; the experimentation
work adds the other policies beside it.
"""

from tastemaker.exploration.thompson import ThompsonSlots

__all__ = ["ThompsonSlots"]
