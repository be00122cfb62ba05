"""Popularity: the non-personalised baseline every other model must beat."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from tastemaker.data.interactions import Interactions
from tastemaker.models.base import ModelConfig, Reason, Recommender


class PopularityConfig(ModelConfig):
    kind: Literal["count", "rating"] = "count"
    """``count``: number of interactions (weighted); ``rating``: damped mean rating —
    (sum of ratings + damping × global mean) / (count + damping), so an item with three 5-star
    ratings does not beat one with three hundred 4.5s."""
    damping: float = Field(default=10.0, ge=0.0)


class Popularity(Recommender):
    """Same ranking for everyone: by count, or by damped mean rating (`kind="rating"`).

    With `kind="rating"` it also predicts ratings (the damped item mean)."""

    name = "popularity"
    Config = PopularityConfig

    @property
    def predicts_ratings(self) -> bool:  # type: ignore[override]
        return self.config.kind == "rating"

    def _fit(self, data: Interactions) -> None:
        w = data.effective_weights().astype(np.float64)
        counts = np.bincount(data.item_idx, weights=w, minlength=data.n_items)
        if self.config.kind == "count":
            self.item_scores = counts
        else:
            sums = np.bincount(data.item_idx, weights=w * data.values, minlength=data.n_items)
            d = self.config.damping
            self.item_scores = (sums + d * self.global_mean) / np.maximum(counts + d, 1e-12)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores, (len(users), len(self.item_scores)))

    def _score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.item_scores[items]

    def _explain(self, user: int, items: np.ndarray) -> list[Reason]:
        what = "most interactions" if self.config.kind == "count" else "best rated"
        return [Reason("popular", detail=what)] * len(items)

    def _get_state(self):
        return {"item_scores": self.item_scores}, {}

    def _set_state(self, arrays, meta):
        self.item_scores = arrays["item_scores"]
