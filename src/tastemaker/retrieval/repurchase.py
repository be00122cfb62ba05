"""Repurchase ("buy again") candidates: what the user bought before, scored by recency, frequency and
whether it is *due* given how often it is re-bought.

For a user and an item they bought, with purchase times t_1 < … < t_n (events, from the query's
history) and the query time `now`:

- recency-frequency  r = Σ_e v_e · 0.5 ** ((now − t_e) / half_life) — every purchase counts, recent
  ones more (v_e = 1, or log(1 + quantity) with ``value_weight``);
- expected interval τ: the geometric mean of the gaps between the user's distinct purchase days
  of that item, shrunk towards the item's typical gap (learned at `fit` from all users), itself
  shrunk towards the global typical gap — so one repeat does not set the rhythm alone;
- due ratio d = (now − t_n) / τ, and the interval signal g = exp(−(ln d)² / (2σ²)): 1 when the
  item is exactly due, smaller when bought too recently or long overdue;
- score = r · (1 + β · g). ``interval_weight`` β = 0 gives plain buy-again with recency decay.

Candidates carry the signals as features for the ranker: ``purchases``, ``days_since_last``,
``expected_interval_days``, ``due_ratio``, ``interval_signal``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError
from tastemaker.retrieval.base import DAY, Candidates, Query, as_items, select_top


class Repurchase:
    """Buy-again candidates from the query's history; `fit` learns the items' typical repurchase gaps."""

    def __init__(self, item_log_gap: np.ndarray, global_log_gap: float, *, half_life_days: float | None = 60.0,
                 interval_weight: float = 0.0, sigma: float = 1.0, user_shrink: float = 2.0,
                 value_weight: bool = False, now: float | None = None, name: str = "repurchase") -> None:
        if half_life_days is not None and half_life_days <= 0:
            raise ConfigError(f"half_life_days must be positive (got {half_life_days})")
        if sigma <= 0:
            raise ConfigError(f"sigma must be positive (got {sigma})")
        self.item_log_gap = np.asarray(item_log_gap, dtype=np.float64)
        self.global_log_gap = float(global_log_gap)
        self.half_life_days = half_life_days
        self.interval_weight = float(interval_weight)
        self.sigma = float(sigma)
        self.user_shrink = float(user_shrink)
        self.value_weight = value_weight
        self.now = now
        self.name = name

    @classmethod
    def fit(cls, data: Interactions, *, item_shrink: float = 5.0, **kwargs) -> Repurchase:
        """Learn each item's typical gap between repeat purchases (distinct days, in days) from `data`.

        An item's log-gap is the mean log gap of its repeat purchases, shrunk towards the global
        mean with weight `item_shrink` (pseudo-gaps). Keyword arguments go to the constructor; the
        clock defaults to the latest event.
        """
        if data.timestamps is None:
            raise ConfigError("repurchase needs timestamps; this data has none")
        gaps_item, log_gaps = _repeat_gaps(data.user_idx, data.item_idx, data.timestamps)
        n = data.n_items
        glob = float(np.median(log_gaps)) if len(log_gaps) else float(np.log(30.0))
        sums = np.bincount(gaps_item, weights=log_gaps, minlength=n)
        counts = np.bincount(gaps_item, minlength=n)
        item = (sums + item_shrink * glob) / (counts + item_shrink)
        kwargs.setdefault("now", float(data.timestamps.max()) if len(data) else None)
        return cls(item, glob, **kwargs)

    @property
    def n_items(self) -> int:
        return len(self.item_log_gap)

    def signals(self, query: Query) -> pd.DataFrame | None:
        """Per item of the history: purchases, days since last, expected interval, due ratio, interval
        signal, recency-frequency and score (a frame indexed by item index); None without history."""
        sig = self._signals(query)
        if sig is None:
            return None
        item = sig.pop("item")
        return pd.DataFrame(sig, index=pd.Index(item, name="item"))

    def _signals(self, query: Query) -> dict[str, np.ndarray] | None:
        items = as_items(query.history, self.n_items)
        if not len(items):
            return None
        times = query.history_times
        if times is None:
            raise ConfigError("repurchase needs the history's timestamps in the query")
        times = np.asarray(times, dtype=np.float64)
        now = query.now if query.now is not None else (self.now if self.now is not None else float(times.max()))
        age = np.maximum(now - times, 0.0)
        w = np.ones(len(items)) if self.half_life_days is None else np.exp2(-age / (self.half_life_days * DAY))
        if self.value_weight and query.history_values is not None:
            w = w * np.log1p(np.maximum(np.asarray(query.history_values, dtype=np.float64), 0.0))
        uniq, inv = np.unique(items, return_inverse=True)
        rf = np.bincount(inv, weights=w)
        purchases = np.bincount(inv)
        last = np.full(len(uniq), -np.inf)
        np.maximum.at(last, inv, times)
        # the user's own gaps per item (distinct days)
        g_item, g_log = _repeat_gaps(np.zeros(len(items), dtype=np.int64), items, times.astype(np.int64))
        pos = np.searchsorted(uniq, g_item)
        own_sum = np.bincount(pos, weights=g_log, minlength=len(uniq))
        own_n = np.bincount(pos, minlength=len(uniq))
        log_tau = (own_sum + self.user_shrink * self.item_log_gap[uniq]) / (own_n + self.user_shrink)
        tau_days = np.exp(log_tau)
        since = np.maximum(now - last, 0.0) / DAY
        due = np.maximum(since, 0.5) / tau_days
        signal = np.exp(-np.log(due) ** 2 / (2 * self.sigma**2))
        score = rf * (1.0 + self.interval_weight * signal)
        return {"item": uniq, "purchases": purchases, "days_since_last": since, "expected_interval_days": tau_days,
                "due_ratio": due, "interval_signal": signal, "recency_frequency": rf, "score": score}

    def retrieve(self, query: Query, k: int) -> Candidates:
        sig = self._signals(query)
        if sig is None:
            return Candidates.empty(self.name)
        uniq = sig["item"]
        pos, vals = select_top(sig["score"], k, query.keeps(uniq), positive=True)
        feats = {c: sig[c][pos].astype(np.float32) for c in
                 ("purchases", "days_since_last", "expected_interval_days", "due_ratio", "interval_signal")}
        return Candidates(uniq[pos], vals, self.name, feats)

    def score(self, query: Query, items: np.ndarray) -> np.ndarray:
        items = as_items(items, self.n_items)
        sig = self._signals(query)
        out = np.zeros(len(items), dtype=np.float32)  # never bought: a score of 0, not unknown
        if sig is None:
            return out
        uniq = sig["item"]
        pos = np.minimum(np.searchsorted(uniq, items), len(uniq) - 1)
        hit = uniq[pos] == items
        out[hit] = sig["score"][pos[hit]]
        return out

    def get_state(self) -> tuple[dict[str, np.ndarray], dict]:
        return ({"item_log_gap": self.item_log_gap},
                {"global_log_gap": self.global_log_gap, "half_life_days": self.half_life_days,
                 "interval_weight": self.interval_weight, "sigma": self.sigma, "user_shrink": self.user_shrink,
                 "value_weight": self.value_weight, "now": self.now, "name": self.name})

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict) -> Repurchase:
        meta = dict(meta)
        return cls(arrays["item_log_gap"], meta.pop("global_log_gap"), **meta)


def _repeat_gaps(users: np.ndarray, items: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(item, log gap in days) for each repeat purchase on a later day of the same (user, item)."""
    days = np.asarray(times, dtype=np.int64) // 86_400
    key = np.asarray(users, dtype=np.int64) * (int(np.max(items, initial=0)) + 1) + np.asarray(items, dtype=np.int64)
    order = np.lexsort((days, key))
    k, d = key[order], days[order]
    distinct = np.ones(len(k), dtype=bool)
    distinct[1:] = (k[1:] != k[:-1]) | (d[1:] != d[:-1])
    k, d, it = k[distinct], d[distinct], np.asarray(items)[order][distinct]
    same = k[1:] == k[:-1]
    gaps = (d[1:] - d[:-1])[same].astype(np.float64)
    return it[1:][same].astype(np.int64), np.log(gaps)


__all__ = ["Repurchase"]
