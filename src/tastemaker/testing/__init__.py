"""Shared conformance checks, learning checks and small synthetic data sets for tests (not imported at run time)."""

from tastemaker.testing.conformance import CHECKS, check_recommender
from tastemaker.testing.quality import (
    check_beats_popularity,
    check_cold_users_beat_popularity,
    cold_item_auc,
    holdout_rmse,
    random_holdout,
)
from tastemaker.testing.synthetic import synthetic_implicit, synthetic_ratings

__all__ = ["CHECKS", "check_beats_popularity", "check_cold_users_beat_popularity", "check_recommender",
           "cold_item_auc", "holdout_rmse", "random_holdout", "synthetic_implicit", "synthetic_ratings"]
