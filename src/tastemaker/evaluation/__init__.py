"""Offline evaluation: metrics, statistics, protocols and reports."""

from tastemaker.evaluation.metrics import (
    auc,
    average_precision_at_k,
    catalog_coverage,
    gini_index,
    hit_rate_at_k,
    intra_list_diversity,
    mae,
    ndcg_at_k,
    novelty,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    reciprocal_rank_at_k,
    rmse,
)
from tastemaker.evaluation.protocols import PROTOCOLS, EvaluationResult, Protocol, evaluate, get_protocol
from tastemaker.evaluation.stats import Estimate, PairedComparison, bootstrap_ci, paired_test, summarize

__all__ = [
    "PROTOCOLS", "Estimate", "EvaluationResult", "PairedComparison", "Protocol", "auc", "average_precision_at_k",
    "bootstrap_ci", "catalog_coverage", "evaluate", "get_protocol", "gini_index", "hit_rate_at_k",
    "intra_list_diversity", "mae", "ndcg_at_k", "novelty", "paired_test", "precision_at_k", "ranking_metrics",
    "recall_at_k", "reciprocal_rank_at_k", "rmse", "summarize",
]
