"""Trending: recent popularity with exponential time decay.

Each event adds ``weight · 0.5 ** ((now − t) / half_life)`` to its item, where the weight is 1 per
event (``weight="events"``), the event's value (``"value"``, e.g. quantity) or 1 per distinct
user (``"users"``: a user's repeated purchases of one item count once, at their latest time).
Events older than `window_days` (when given) count nothing. With ``half_life_days=None`` and no
window, this is all-time popularity.

Decay multiplies every item's score by the same factor as the clock moves, so the order fixed at
`fit` stays right for any later query time until new events arrive; `update` adds them
(incrementally: older scores are decayed to the new clock first). The ranking is precomputed, so
a query costs a walk down the sorted list until k allowed items are found.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.retrieval.base import DAY, Candidates, Query, as_items

Weight = Literal["events", "value", "users"]


class Trending:
    """Time-decayed item popularity; build with `Trending.fit`."""

    def __init__(self, scores: np.ndarray, now: float, *, half_life_days: float | None = 7.0,
                 window_days: float | None = None, name: str = "trending") -> None:
        if half_life_days is not None and half_life_days <= 0:
            raise ConfigError(f"half_life_days must be positive (got {half_life_days})")
        self.half_life_days = half_life_days
        self.window_days = window_days
        self.now = float(now)
        self.name = name
        self._set(np.asarray(scores, dtype=np.float64))

    def _set(self, scores: np.ndarray) -> None:
        self.scores = scores
        self.order = np.lexsort((np.arange(len(scores)), -scores))
        self.order = self.order[scores[self.order] > 0]

    @classmethod
    def fit(cls, data: Interactions, *, half_life_days: float | None = 7.0, window_days: float | None = None,
            weight: Weight = "events", now: float | None = None, name: str = "trending") -> Trending:
        """Score every item from `data` at time `now` (default: the latest event)."""
        if weight not in ("events", "value", "users"):
            raise ConfigError(f"weight={weight!r}; use 'events', 'value' or 'users'")
        if data.timestamps is None and (half_life_days is not None or window_days is not None):
            raise DataError("trending with a half-life or window needs timestamps; this data has none",
                            hint="pass half_life_days=None, window_days=None for all-time popularity")
        ts = data.timestamps
        now_s = float(now if now is not None else (ts.max() if ts is not None and len(ts) else 0.0))
        out = cls(np.zeros(data.n_items), now_s, half_life_days=half_life_days, window_days=window_days, name=name)
        items, times, values = data.item_idx, ts, data.values.astype(np.float64)
        if weight == "users":
            key = data.user_idx.astype(np.int64) * data.n_items + items
            order = np.lexsort((times if times is not None else np.zeros(len(key)), key))
            last = np.ones(len(order), dtype=bool)
            last[:-1] = key[order][1:] != key[order][:-1]
            pick = order[last]
            items, values = items[pick], np.ones(len(pick))
            times = None if times is None else times[pick]
        elif weight == "events":
            values = np.ones(len(items))
        out._set(out._decayed(items, times, values, data.n_items))
        return out

    def _decayed(self, items: np.ndarray, times: np.ndarray | None, values: np.ndarray, n: int) -> np.ndarray:
        w = values.astype(np.float64)
        if times is not None:
            age = self.now - times.astype(np.float64)
            if self.window_days is not None:
                w = np.where(age <= self.window_days * DAY, w, 0.0)
            w = np.where(age < 0, 0.0, w)  # events after the clock do not count yet
            if self.half_life_days is not None:
                w = w * np.exp2(-np.maximum(age, 0.0) / (self.half_life_days * DAY))
        return np.bincount(items, weights=w, minlength=n)

    def update(self, items: np.ndarray, timestamps: np.ndarray, values: np.ndarray | None = None, *,
               now: float | None = None) -> None:
        """Add new events (item indices, seconds, weights default 1), moving the clock to `now`
        (default: the latest of them). With a window, events that left it are not subtracted:
        refit periodically to drop them."""
        items = as_items(items, len(self.scores))
        ts = np.asarray(timestamps, dtype=np.float64)
        new_now = float(now if now is not None else max(self.now, ts.max(initial=self.now)))
        scores = self.scores
        if self.half_life_days is not None and new_now > self.now:
            scores = scores * np.exp2(-(new_now - self.now) / (self.half_life_days * DAY))
        self.now = new_now
        vals = np.ones(len(items)) if values is None else np.asarray(values, dtype=np.float64)
        self._set(scores + self._decayed(items, ts, vals, len(scores)))

    @property
    def n_items(self) -> int:
        return len(self.scores)

    def retrieve(self, query: Query, k: int) -> Candidates:
        if query.allowed is None and (query.exclude is None or not len(query.exclude)):
            top = self.order[:k]
        else:  # walk down the ranking in growing chunks until k items pass the constraints
            found, start, step = [], 0, max(4 * k, 1024)
            while start < len(self.order) and sum(map(len, found)) < k:
                chunk = self.order[start:start + step]
                found.append(chunk[query.keeps(chunk)])
                start, step = start + step, step * 2
            top = np.concatenate(found)[:k] if found else self.order[:0]
        return Candidates(top, self._at(self.scores[top], query), self.name)

    def _at(self, scores: np.ndarray, query: Query) -> np.ndarray:
        """Scores decayed to the query's clock (same order, comparable magnitudes across time)."""
        if query.now is None or self.half_life_days is None or query.now <= self.now:
            return scores
        return scores * np.exp2(-(query.now - self.now) / (self.half_life_days * DAY))

    def score(self, query: Query, items: np.ndarray) -> np.ndarray:
        items = as_items(items, self.n_items)
        return self._at(self.scores[items], query).astype(np.float32)


__all__ = ["Trending"]
