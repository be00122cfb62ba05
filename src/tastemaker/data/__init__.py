"""The data layer: interactions, id vocabularies, side features, loaders and splitters."""

from tastemaker.data.datasets import DATASETS, Dataset, load_dataset
from tastemaker.data.download import cache_dir, data_dir, fetch, md5sum, verify_md5
from tastemaker.data.features import SideFeatures
from tastemaker.data.generic import load_interactions
from tastemaker.data.interactions import DUPLICATE_POLICIES, Interactions
from tastemaker.data.movielens import VARIANTS, load_movielens
from tastemaker.data.splits import (
    VALIDATION_METHODS,
    Split,
    cold_item_split,
    cold_user_split,
    last_n_split,
    official_split,
    random_split,
    temporal_split,
    user_holdout,
    validation_split,
)
from tastemaker.data.vocabulary import UNKNOWN, Vocabulary

__all__ = [
    "DATASETS",
    "DUPLICATE_POLICIES",
    "UNKNOWN",
    "VALIDATION_METHODS",
    "VARIANTS",
    "Dataset",
    "Interactions",
    "SideFeatures",
    "Split",
    "Vocabulary",
    "cache_dir",
    "cold_item_split",
    "cold_user_split",
    "data_dir",
    "fetch",
    "last_n_split",
    "load_dataset",
    "load_interactions",
    "load_movielens",
    "md5sum",
    "official_split",
    "random_split",
    "temporal_split",
    "user_holdout",
    "validation_split",
    "verify_md5",
]
