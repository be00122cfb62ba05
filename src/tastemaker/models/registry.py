"""Model names → classes. Built-in models are imported on first use; `register` adds your own."""

from __future__ import annotations

import importlib

from tastemaker.errors import ConfigError

BUILTIN: dict[str, str] = {
    "popularity": "tastemaker.models.popularity:Popularity",
    "demographic_popularity": "tastemaker.models.demographic:DemographicPopularity",
    "baseline": "tastemaker.models.baseline:Baseline",
    "biased_mf": "tastemaker.models.mf:BiasedMF",
    "item_knn": "tastemaker.models.knn:ItemKNN",
    "ease": "tastemaker.models.ease:EASE",
    # rating prediction, the Surprise family and beyond
    "svdpp": "tastemaker.models.svdpp:SVDpp",
    "time_svdpp": "tastemaker.models.timesvd:TimeSVDpp",
    "nmf": "tastemaker.models.nmf:NMF",
    "slope_one": "tastemaker.models.slope_one:SlopeOne",
    "co_clustering": "tastemaker.models.coclustering:CoClustering",
    "autorec": "tastemaker.models.autorec:AutoRec",
    "bayesian_mf": "tastemaker.models.bayesian:BayesianMF",
    "rating_blend": "tastemaker.models.blend:RatingBlend",
    # top-N ranking
    "als": "tastemaker.models.implicit_mf:ALS",
    "bpr": "tastemaker.models.implicit_mf:BPR",
    "item_cf": "tastemaker.models.neighbors:ItemCF",
    "rp3beta": "tastemaker.models.graph:RP3beta",
    "slim": "tastemaker.models.slim:SLIM",
    "hybrid_mf": "tastemaker.models.hybrid:HybridMF",
    "two_tower": "tastemaker.models.two_tower:TwoTower",
    "rank_blend": "tastemaker.models.blend:RankBlend",
    # content-based (scores items before their first interaction)
    "content_knn": "tastemaker.models.content:ContentKNN",
}

_REGISTERED: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a `Recommender` subclass available by its `name`."""
    if not getattr(cls, "name", ""):
        raise ConfigError(f"{cls.__name__} needs a class attribute `name` to be registered")
    _REGISTERED[cls.name] = cls
    return cls


def model_names(*, available: bool = False) -> list[str]:
    """Registered model names; with `available`, only those whose module imports here."""
    names = sorted({*BUILTIN, *_REGISTERED})
    if not available:
        return names
    out = []
    for name in names:
        try:
            get_model_class(name)
        except (ImportError, AttributeError):
            continue
        out.append(name)
    return out


def get_model_class(name: str) -> type:
    """The model class registered under `name`; a `ConfigError` lists the known names."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in BUILTIN:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    module, _, attr = BUILTIN[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    _REGISTERED[name] = cls
    return cls


def create_model(name: str, config: dict | None = None, **params):
    """Instantiate the model `name` with a config dict and/or keyword settings."""
    return get_model_class(name)(config, **params)
