"""Beta-Bernoulli Thompson sampling over a changing set of items, with logged propensities.

An exploration slot shows one of a few fresh items. Each item (arm) has a Beta(α, β) posterior of
its success rate (click, add-to-cart, purchase: a reward in [0, 1]). Thompson sampling shows the
item whose posterior draw is highest; the probability of that choice — the propensity that
off-policy evaluation needs — has no closed form, so it is estimated by Monte Carlo:

- every arm keeps a fixed block of `draws` posterior samples, drawn (seeded by the policy seed and
  the arms' ids and posteriors) the first time the arm is seen with that posterior and reused
  across requests until its posterior changes (or the cache drops it);
- for a set of candidates, the share of rows of the (draws × candidates) sample table that each
  candidate wins is its estimated Thompson probability (the shares sum to 1 exactly);
- `select` then draws the item from those shares with the caller's `rng`.

So the logged propensity is *exactly* the probability with which this policy picked the item (never
zero for a picked item, which inverse-propensity estimators need), and it is within Monte-Carlo
error (about sqrt(p(1-p)/draws)) of the ideal Thompson probability.

`ThompsonSlots` is the engine (the business-rules engine calls it directly, item by item);
`BetaThompson` is the same sampler behind the common `Policy` contract
(``select(context, actions) -> Decision``, ``update(context, action, reward)``, choice log).
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tastemaker.errors import ConfigError
from tastemaker.exploration.base import ChoiceLog, Policy


class ThompsonSlots:
    """Beta-Bernoulli Thompson sampling with Monte-Carlo propensities.

    Args:
        prior: (α, β) of the Beta prior every unseen item starts from.
        draws: posterior samples per item used to estimate choice probabilities.
        seed: seeds the per-item sample blocks (the choice itself uses the `rng` given to `select`).
        cache_size: how many items' sample blocks are kept (the oldest are dropped first).
    """

    def __init__(self, prior: tuple[float, float] = (1.0, 1.0), *, draws: int = 256, seed: int = 0,
                 cache_size: int = 4096) -> None:
        alpha, beta = (float(v) for v in prior)
        if not (alpha > 0 and beta > 0 and np.isfinite(alpha) and np.isfinite(beta)):
            raise ConfigError(f"ThompsonSlots prior must be two positive numbers (alpha, beta), got {prior!r}")
        if int(draws) < 10:
            raise ConfigError(f"ThompsonSlots draws must be at least 10, got {draws!r}")
        self.prior = (alpha, beta)
        self.draws = int(draws)
        self.seed = int(seed)
        self.cache_size = int(cache_size)
        self._posterior: dict[str, tuple[float, float]] = {}
        self._samples: OrderedDict[tuple[str, float, float], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # --- state ----------------------------------------------------------------------------------

    def posterior(self, item: Any) -> tuple[float, float]:
        """(α, β) of the item's Beta posterior (the prior for an item never updated)."""
        return self._posterior.get(str(item), self.prior)

    def update(self, item: Any, reward: float) -> None:
        """Record a reward in [0, 1] for an item shown in an exploration slot (1 = success)."""
        r = float(reward)
        if not 0.0 <= r <= 1.0:
            raise ValueError(f"reward must be in [0, 1], got {reward!r}")
        key = str(item)
        with self._lock:
            a, b = self._posterior.get(key, self.prior)
            self._posterior[key] = (a + r, b + (1.0 - r))

    def to_dict(self) -> dict[str, Any]:
        """The policy as plain JSON-able data (settings and every posterior)."""
        return {"prior": list(self.prior), "draws": self.draws, "seed": self.seed,
                "posteriors": {k: list(v) for k, v in self._posterior.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThompsonSlots:
        """Rebuild a policy saved with `to_dict`."""
        out = cls(tuple(data.get("prior", (1.0, 1.0))), draws=int(data.get("draws", 256)),
                  seed=int(data.get("seed", 0)))
        for key, (a, b) in dict(data.get("posteriors", {})).items():
            out._posterior[str(key)] = (float(a), float(b))
        return out

    # --- choice ---------------------------------------------------------------------------------

    def propensities(self, candidates: Sequence[Any]) -> np.ndarray:
        """Estimated probability that Thompson sampling picks each candidate (sums to 1)."""
        keys = [str(c) for c in candidates]
        if not keys:
            return np.zeros(0)
        if len(set(keys)) != len(keys):
            raise ValueError("ThompsonSlots candidates must be distinct items")
        table = np.stack(self._blocks(keys), axis=1)  # (draws, n)
        wins = np.bincount(table.argmax(axis=1), minlength=len(keys))
        return wins / self.draws

    def select(self, candidates: Sequence[Any], rng: np.random.Generator) -> tuple[Any, float]:
        """Pick one candidate by Thompson sampling; returns (item, propensity of that choice)."""
        if len(candidates) == 0:
            raise ValueError("ThompsonSlots.select needs at least one candidate")
        p = self.propensities(candidates)
        i = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right"))
        i = min(i, len(p) - 1)
        while p[i] == 0.0:  # only reachable through float rounding at the upper edge
            i -= 1
        return candidates[i], float(p[i])

    def _blocks(self, keys: list[str]) -> list[np.ndarray]:
        """Each key's block of posterior draws, from the cache or drawn now (all misses in one go)."""
        post = self._posterior
        ck = [(k, *post.get(k, self.prior)) for k in keys]
        cache = self._samples
        blocks = [cache.get(c) for c in ck]
        miss = [j for j, b in enumerate(blocks) if b is None]
        if miss:
            seed = zlib.crc32(b"".join(c[0].encode("utf-8") + struct.pack("<dd", c[1], c[2])
                                       for c in (ck[j] for j in miss)))
            rng = np.random.default_rng([self.seed, seed])
            a = np.array([ck[j][1] for j in miss])[:, None]
            b = np.array([ck[j][2] for j in miss])[:, None]
            u = rng.random((len(miss), self.draws))
            # Beta(a, 1) = U^(1/a) and Beta(1, b) = 1 - U^(1/b): exact and much cheaper than the general
            # sampler, and the common case (fresh items at a (1, 1) prior, items with no success yet)
            closed = (a[:, 0] == 1.0) | (b[:, 0] == 1.0)
            drawn = np.where(b == 1.0, u ** (1.0 / a), 1.0 - u ** (1.0 / b))
            if not closed.all():
                rest = ~closed
                drawn[rest] = rng.beta(a[rest], b[rest], size=(int(rest.sum()), self.draws))
            drawn = drawn.astype(np.float32)
            with self._lock:
                for j, row in zip(miss, drawn, strict=True):
                    blocks[j] = row
                    cache[ck[j]] = row
                while len(cache) > self.cache_size:
                    cache.popitem(last=False)
        return blocks


class BetaThompson(Policy):
    """Beta-Bernoulli Thompson sampling as a `Policy` (rewards in [0, 1]; the context is ignored).

    The choice probabilities are `ThompsonSlots`' Monte-Carlo shares (see the module docstring), and
    the choice is drawn from them, so the logged propensity is the true probability of the choice.
    Scores are the posterior means α / (α + β).

    Args:
        prior: (α, β) of the Beta prior of an action never updated.
        draws: posterior samples per action behind the choice probabilities.
        cache_size: actions whose sample blocks are kept.
    """

    name = "beta_thompson"

    def __init__(self, prior: tuple[float, float] = (1.0, 1.0), *, draws: int = 256, cache_size: int = 4096,
                 seed: int = 0, logger: ChoiceLog | None = None) -> None:
        super().__init__(seed=seed, logger=logger)
        self.sampler = ThompsonSlots(tuple(prior), draws=draws, seed=seed, cache_size=cache_size)

    def _distribution(self, context: Any, actions: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        post = np.array([self.sampler.posterior(a) for a in actions])
        return post[:, 0] / post.sum(axis=1), self.sampler.propensities(actions)

    def update(self, context: Any, action: Any, reward: float) -> None:
        self.sampler.update(action, self._reward(reward, 0.0, 1.0))
        self.t += 1

    def posterior(self, action: Any) -> tuple[float, float]:
        """(α, β) of the action's posterior."""
        return self.sampler.posterior(action)

    def _settings(self) -> dict[str, Any]:
        return {"prior": list(self.sampler.prior), "draws": self.sampler.draws, "cache_size": self.sampler.cache_size}

    def _state(self) -> dict[str, Any]:
        return {"posteriors": self.sampler.to_dict()["posteriors"]}

    def _load_state(self, state: Mapping[str, Any]) -> None:
        for key, (a, b) in dict(state.get("posteriors", {})).items():
            self.sampler._posterior[str(key)] = (float(a), float(b))
