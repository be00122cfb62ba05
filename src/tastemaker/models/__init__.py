"""Scorers: every model follows the `Recommender` contract of `tastemaker.models.base`."""

from tastemaker.models.base import ModelConfig, Prediction, Reason, Recommendations, Recommender, UserRecommendations
from tastemaker.models.registry import create_model, get_model_class, model_names, register

__all__ = ["ModelConfig", "Prediction", "Reason", "Recommendations", "Recommender", "UserRecommendations",
           "create_model", "get_model_class", "model_names", "register"]
