"""Shared conformance checks and small synthetic data sets for tests (not imported at run time)."""

from tastemaker.testing.conformance import CHECKS, check_recommender
from tastemaker.testing.synthetic import synthetic_implicit, synthetic_ratings

__all__ = ["CHECKS", "check_recommender", "synthetic_implicit", "synthetic_ratings"]
