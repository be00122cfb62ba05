"""Bandit policies for exploration: `select` an action, log its propensity, `update` with the reward.

One contract (`Policy`): ``select(context, actions) -> Decision(action, propensity, scores, …)`` and
``update(context, action, reward)``; every decision is logged with its propensity to the policy's
choice log (`ListLog`, `JsonlLog`, or anything with ``log(record)``).

- `EpsilonGreedy` (constant or decaying ε), `UCB1`, `BetaThompson` (Beta-Bernoulli Thompson
  sampling, Monte-Carlo propensities; `ThompsonSlots` is its engine, used by the business rules);
- `LinUCB` and `LinearThompson` for contexts (one model per action, or one shared model over
  per-action feature rows);
- `simulate`: Bernoulli and linear-contextual test problems and a regret loop.
"""

from tastemaker.exploration.base import ChoiceLog, Decision, JsonlLog, ListLog, Policy, read_jsonl
from tastemaker.exploration.epsilon_greedy import EpsilonGreedy
from tastemaker.exploration.linear import LinearThompson, LinUCB
from tastemaker.exploration.thompson import BetaThompson, ThompsonSlots
from tastemaker.exploration.ucb import UCB1

POLICIES: dict[str, type[Policy]] = {cls.name: cls for cls in (EpsilonGreedy, UCB1, BetaThompson, LinUCB,
                                                              LinearThompson)}
"""Policy classes by name (what `Policy.from_dict` reads)."""

__all__ = [
    "POLICIES",
    "UCB1",
    "BetaThompson",
    "ChoiceLog",
    "Decision",
    "EpsilonGreedy",
    "JsonlLog",
    "LinUCB",
    "LinearThompson",
    "ListLog",
    "Policy",
    "ThompsonSlots",
    "read_jsonl",
]
