"""Hyperparameter tuning with Optuna, on a validation carve-out of a training set only.

`tune(model_name, train, …)` sees nothing but the training interactions it is given: it carves a
validation part out of them with `tastemaker.data.validation_split`, fits each trial's model on the
rest and scores it on the validation part (RMSE/MAE for ``protocol_kind="rating"``, ranking metrics
for ``"topn"``). Test data never reaches it; `training_part(dataset, "u1")` resolves a data set and a
split name to the training half, so callers never hold the test half either.

Search spaces are plain data, the same format in code and in TOML files::

    [tune.space]
    n_factors = {low = 16, high = 256, log = true}      # int range (both ends integers)
    reg = {low = 0.005, high = 0.2, log = true}         # float range (step = … optional)
    similarity = {choices = ["cosine", "pearson_baseline"]}
    n_epochs = 30                                        # a plain value is held fixed
    baseline.reg_items = {low = 1.0, high = 50.0}       # nested settings by dotted name

`SEARCH_SPACES[name](trial)` samples one setting of a model's default space. `TuneResult.to_toml`
writes the best setting as a ``[model]`` file that ``tastemaker train --config`` reads, with the
tuning record (metric, value, validation, data fingerprint) as comments at the top.

Requires the ``tune`` extra (optuna).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel

from tastemaker.data.datasets import Dataset
from tastemaker.data.interactions import Interactions
from tastemaker.data.splits import VALIDATION_METHODS, validation_split
from tastemaker.errors import ConfigError, DataError, TastemakerError, require
from tastemaker.evaluation.metrics import RANKING_METRICS
from tastemaker.evaluation.protocols import PROTOCOLS, rating_scores, topn_scores
from tastemaker.models.registry import create_model, get_model_class, model_names
from tastemaker.progress import progress_bars, track

if TYPE_CHECKING:  # pragma: no cover
    import optuna

ProtocolKind = Literal["rating", "topn"]
Space = Mapping[str, Any]
"""A search space as data: dotted parameter name → range ``{low, high[, log, step, type]}``,
``{choices = [...]}`` or a fixed value (nested tables are flattened to dotted names)."""

# --- default search spaces -----------------------------------------------------------------------

DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "popularity": {
        "kind": {"choices": ["count", "rating"]},
        "damping": {"low": 0.1, "high": 200.0, "log": True},
    },
    "demographic_popularity": {
        "shrinkage": {"low": 1.0, "high": 1000.0, "log": True},
        "weight": {"low": 0.1, "high": 1.5},
        "positive_threshold": {"choices": [3.0, 4.0]},
    },
    "baseline": {
        "n_epochs": {"low": 3, "high": 30},
        "reg_users": {"low": 0.5, "high": 50.0, "log": True},
        "reg_items": {"low": 0.5, "high": 50.0, "log": True},
    },
    "biased_mf": {
        "n_factors": {"low": 8, "high": 256, "log": True},
        "n_epochs": {"low": 10, "high": 60},
        "learning_rate": {"low": 0.002, "high": 0.05, "log": True},
        "reg": {"low": 0.005, "high": 0.2, "log": True},
        "init_std": {"low": 0.005, "high": 0.2, "log": True},
    },
    "item_knn": {
        "similarity": {"choices": ["pearson_baseline", "cosine", "msd"]},
        "shrinkage": {"low": 0.0, "high": 500.0},
        "k": {"low": 10, "high": 200, "log": True},
        "min_k": {"low": 1, "high": 10},
        "neighbors": {"choices": ["all", "positive"]},
    },
    "ease": {
        "l2": {"low": 10.0, "high": 3000.0, "log": True},
        "weighting": {"choices": ["binary", "value"]},
    },
    "svdpp": {
        "n_factors": {"low": 8, "high": 200, "log": True},
        "n_epochs": {"low": 10, "high": 60},
        "learning_rate": {"low": 0.001, "high": 0.03, "log": True},
        "reg": {"low": 0.005, "high": 0.2, "log": True},
        "reg_bias": {"low": 0.002, "high": 0.2, "log": True},
        "reg_implicit": {"low": 0.0005, "high": 0.5, "log": True},
        "learning_rate_implicit": {"low": 0.0005, "high": 0.03, "log": True},
        "init_std": {"low": 0.003, "high": 0.1, "log": True},
    },
    "time_svdpp": {
        "n_factors": {"low": 8, "high": 200, "log": True},
        "n_epochs": {"low": 10, "high": 60},
        "learning_rate": {"low": 0.001, "high": 0.03, "log": True},
        "reg": {"low": 0.005, "high": 0.2, "log": True},
        "reg_implicit": {"low": 0.0005, "high": 0.5, "log": True},
        "learning_rate_implicit": {"low": 0.0005, "high": 0.03, "log": True},
        "lr_drift": {"low": 0.0, "high": 0.0001},
        "reg_drift": {"low": 0.1, "high": 50.0, "log": True},
        "lr_day": {"low": 0.0005, "high": 0.02, "log": True},
        "reg_day": {"low": 0.001, "high": 0.5, "log": True},
    },
    "als": {
        "factors": {"low": 16, "high": 256, "log": True},
        "regularization": {"low": 0.01, "high": 100.0, "log": True},
        "iterations": {"low": 5, "high": 50},
        "alpha": {"low": 0.1, "high": 50.0, "log": True},
        "weighting": {"choices": ["binary", "value", "log"]},
    },
    "bpr": {
        "factors": {"low": 16, "high": 256, "log": True},
        "learning_rate": {"low": 0.001, "high": 0.2, "log": True},
        "regularization": {"low": 0.0001, "high": 0.1, "log": True},
        "iterations": {"low": 20, "high": 500, "log": True},
    },
    "item_cf": {
        "similarity": {"choices": ["cosine", "tfidf", "bm25"]},
        "k": {"low": 10, "high": 1000, "log": True},
        "neighborhood": {"choices": ["target", "source"]},
        "shrink": {"low": 0.0, "high": 200.0},
        "asymmetry": {"low": 0.0, "high": 1.0},
        "weighting": {"choices": ["binary", "value", "log"]},
    },
    "rp3beta": {
        "alpha": {"low": 0.1, "high": 2.0},
        "beta": {"low": 0.0, "high": 1.0},
        "k": {"low": 10, "high": 1000, "log": True},
        "normalize": {"choices": [False, True]},
        "weighting": {"choices": ["binary", "value", "log"]},
    },
    "slim": {
        "alpha": {"low": 0.00001, "high": 0.1, "log": True},
        "l1_ratio": {"low": 0.001, "high": 1.0, "log": True},
        "k": {"low": 10, "high": 500, "log": True},
    },
    "nmf": {
        "n_factors": {"low": 5, "high": 100, "log": True},
        "n_epochs": {"low": 50, "high": 300},
        "reg_users": {"low": 0.005, "high": 0.5, "log": True},
        "reg_items": {"low": 0.005, "high": 0.5, "log": True},
    },
    "hybrid_mf": {
        "n_factors": {"low": 16, "high": 256, "log": True},
        "n_epochs": {"low": 5, "high": 100, "log": True},
        "learning_rate": {"low": 0.005, "high": 0.2, "log": True},
        "loss": {"choices": ["warp", "bpr"]},
        "max_sampled": {"low": 5, "high": 50},
        "item_alpha": {"low": 1e-8, "high": 1e-3, "log": True},
        "user_alpha": {"low": 1e-8, "high": 1e-3, "log": True},
    },
    "slope_one": {
        "weighted": {"choices": [True, False]},
    },
    "co_clustering": {
        "n_user_clusters": {"low": 1, "high": 10},
        "n_item_clusters": {"low": 1, "high": 10},
        "n_epochs": {"low": 10, "high": 60},
        "shrinkage": {"low": 0.0, "high": 10.0},
        "n_init": {"choices": [1, 3, 5]},
    },
    "two_tower": {
        "embedding_dim": {"low": 16, "high": 256, "log": True},
        "n_epochs": {"low": 5, "high": 60, "log": True},
        "learning_rate": {"low": 0.0005, "high": 0.03, "log": True},
        "batch_size": {"choices": [256, 512, 1024, 2048]},
        "temperature": {"low": 0.02, "high": 1.0, "log": True},
        "id_dropout": {"low": 0.0, "high": 0.5},
    },
    "content_knn": {
        "weighting": {"choices": ["uniform", "value", "centered"]},
        "tfidf_ngrams": {"low": 1, "high": 2},
        "tfidf_min_df": {"low": 1, "high": 3},
        "tfidf_sublinear_tf": {"choices": [True, False]},
    },
    "autorec": {
        "hidden": {"low": 100, "high": 1000, "log": True},
        "reg": {"low": 1.0, "high": 1000.0, "log": True},
        "n_epochs": {"low": 20, "high": 300, "log": True},
        "optimizer": {"choices": ["rprop", "adam"]},
    },
    "bayesian_mf": {
        "n_factors": {"low": 5, "high": 40, "log": True},
        "n_samples": {"low": 30, "high": 200, "log": True},
        "noise_precision": {"low": 0.5, "high": 3.0, "log": True},
        "prior_strength": {"low": 0.5, "high": 10.0, "log": True},
        "implicit_users": {"choices": [True, False]},
        "implicit_items": {"choices": [True, False]},
    },
}
"""Each model's default search space, as data (the format of a TOML ``[tune.space]`` table)."""


# --- parameter specs -------------------------------------------------------------------------------

_RANGE_KEYS = {"low", "high", "log", "step", "type"}
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class ParamSpec:
    """One searched (or fixed) parameter: a float/int range, a list of choices, or a fixed value."""

    name: str
    kind: Literal["float", "int", "categorical", "fixed"]
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    value: Any = None

    @classmethod
    def parse(cls, name: str, raw: Any) -> ParamSpec:
        """A spec from its data form; a `ConfigError` names the parameter and what is wrong."""
        where = f"search space parameter {name!r}"
        if not isinstance(raw, Mapping):
            return cls(name, "fixed", value=raw)
        if "choices" in raw:
            if set(raw) != {"choices"}:
                extra = sorted(set(raw) - {"choices"})
                raise ConfigError(f"{where}: {{choices = [...]}} takes no other keys, found {extra}")
            choices = raw["choices"]
            if not isinstance(choices, list | tuple) or not choices:
                raise ConfigError(f"{where}: choices must be a non-empty list, got {choices!r}")
            bad = [c for c in choices if not isinstance(c, _SCALARS)]
            if bad:
                raise ConfigError(f"{where}: choices must be strings, numbers or booleans, got {bad!r}")
            return cls(name, "categorical", choices=tuple(choices))
        unknown = set(raw) - _RANGE_KEYS
        if unknown or not {"low", "high"} <= set(raw):
            raise ConfigError(f"{where}: expected {{low = …, high = …}} (optional log, step, type) or "
                              f"{{choices = [...]}}, got {dict(raw)!r}")
        low, high, log, step = raw["low"], raw["high"], raw.get("log", False), raw.get("step")
        for key, v in (("low", low), ("high", high), ("step", step)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)):
                raise ConfigError(f"{where}: {key} must be a finite number, got {v!r}")
        if not isinstance(log, bool):
            raise ConfigError(f"{where}: log must be true or false, got {log!r}")
        kind = raw.get("type")
        if kind is None:
            kind = "int" if all(isinstance(v, int) for v in (low, high) if v is not None) and (
                step is None or isinstance(step, int)) else "float"
        if kind not in ("int", "float"):
            raise ConfigError(f"{where}: type must be 'int' or 'float', got {kind!r}")
        if kind == "int" and not all(float(v).is_integer() for v in (low, high, step) if v is not None):
            raise ConfigError(f"{where}: an int range needs integer low, high and step, got {dict(raw)!r}")
        if not low < high:
            raise ConfigError(f"{where}: low ({low!r}) must be below high ({high!r})")
        if log and low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0, got low = {low!r}")
        if log and step is not None:
            raise ConfigError(f"{where}: give log or step, not both")
        if step is not None and step <= 0:
            raise ConfigError(f"{where}: step must be positive, got {step!r}")
        if kind == "int":
            low, high, step = int(low), int(high), None if step is None else int(step)
        else:
            low, high, step = float(low), float(high), None if step is None else float(step)
        return cls(name, kind, low=low, high=high, log=log, step=step)

    def suggest(self, trial: optuna.Trial) -> Any:
        """Ask the trial for a value of this parameter."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        return self.value

    def probe_values(self) -> list[Any]:
        """Values to check against the model's config before searching (ends of a range, every choice)."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices)
        return [self.low, self.high]

    def contains(self, value: Any) -> bool:
        """Whether `value` lies in this space (used to start the search from the model's defaults)."""
        if self.kind == "categorical":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if self.kind in ("float", "int"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            if self.kind == "int" and not float(value).is_integer():
                return False
            if not self.low <= value <= self.high:
                return False
            return self.step is None or float((value - self.low) / self.step).is_integer()
        return False

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"one of {list(self.choices)}"
        if self.kind == "fixed":
            return f"= {self.value!r}"
        extra = ", log" if self.log else (f", step {self.step}" if self.step else "")
        return f"{self.kind} in [{self.low}, {self.high}]{extra}"


class SearchSpace:
    """A parsed search space: `specs` by dotted name. Call it with an Optuna trial to sample a setting."""

    def __init__(self, specs: Mapping[str, ParamSpec]) -> None:
        self.specs = dict(specs)

    @classmethod
    def parse(cls, space: Space) -> SearchSpace:
        if not isinstance(space, Mapping):
            raise ConfigError(f"a search space is a table of parameters, got {type(space).__name__}")
        return cls({name: ParamSpec.parse(name, raw) for name, raw in _flatten_space(space).items()})

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        return {name: spec.suggest(trial) for name, spec in self.specs.items()}

    @property
    def searched(self) -> list[str]:
        return [n for n, s in self.specs.items() if s.kind != "fixed"]

    def without(self, names: list[str]) -> SearchSpace:
        """The space minus parameters equal to, or nested under, any of `names`."""
        return SearchSpace({n: s for n, s in self.specs.items()
                            if not any(n == f or n.startswith(f + ".") for f in names)})

    def __repr__(self) -> str:
        return "SearchSpace(" + ", ".join(f"{n} {s.describe()}" for n, s in self.specs.items()) + ")"


def _flatten_space(space: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in space.items():
        name = f"{prefix}{key}"
        if isinstance(raw, Mapping) and not ({"choices", "low", "high"} & set(raw)):
            if not raw:
                raise ConfigError(f"search space parameter {name!r} is an empty table")
            out.update(_flatten_space(raw, name + "."))
        else:
            out[name] = raw
    return out


SEARCH_SPACES: dict[str, Callable[[optuna.Trial], dict[str, Any]]] = {
    name: SearchSpace.parse(spec) for name, spec in DEFAULT_SPACES.items()
}
"""Model name → a function sampling one setting from an Optuna trial (dotted names for nested settings)."""


# --- nested parameter helpers ------------------------------------------------------------------

def _flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"parameter {name!r} nests under {p!r}, which is set to a plain value")
        node[leaf] = _plain(value)
    return out


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _plain(value: Any) -> Any:
    """Python scalars for TOML and JSON (Optuna and numpy may hand back numpy types)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _config_field(config_cls: type[BaseModel], dotted: str) -> None:
    """Raise a `ConfigError` unless `dotted` names a setting of the config class (nested by dots)."""
    cls: Any = config_cls
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        fields = cls.model_fields if isinstance(cls, type) and issubclass(cls, BaseModel) else None
        if fields is None or part not in fields:
            known = ", ".join(fields) if fields else "(none: it is a plain setting)"
            where = ".".join(parts[:depth]) or config_cls.__name__
            raise ConfigError(f"{dotted!r} is not a setting of {where}; known settings: {known}")
        cls = fields[part].annotation


# --- resolving data -----------------------------------------------------------------------------

def training_part(data: Dataset | Interactions, split: str | None = None) -> Interactions:
    """The training interactions to tune on — never a test part.

    `split` is an official split of a `Dataset` (``"u1"`` … of MovieLens 100K: its training half),
    a single-split protocol name (``"topn-u1"``, ``"rating-holdout"``, ``"topn-holdout"``,
    ``"topn-temporal"``: that protocol's training half, so tuning and evaluation share it), or
    ``"full"`` (every interaction: then no held-out evaluation on this data is untouched by tuning).
    Default: ``"u1"`` when the data set has it, else ``"full"``.
    """
    is_dataset = isinstance(data, Dataset)
    if not is_dataset and not isinstance(data, Interactions):
        raise DataError(f"training_part() takes a Dataset or Interactions, not {type(data).__name__}")
    if split is None:
        split = "u1" if is_dataset and "u1" in data.splits else "full"
    if split == "full":
        return data.interactions if is_dataset else data
    if is_dataset and split in data.splits:
        return data.split(split).train
    if split in PROTOCOLS:
        parts = PROTOCOLS[split].splits(data)
        if len(parts) != 1:
            names = ", ".join(name for name, _ in parts)
            raise ConfigError(f"protocol {split!r} has several splits ({names}); tune on one of them by name")
        return parts[0][1].train
    official = ", ".join(data.splits) if is_dataset and data.splits else "none"
    singles = ", ".join(n for n in PROTOCOLS if n != "rating-folds")
    raise ConfigError(f"unknown split {split!r}; official splits of this data: {official}; "
                      f"single-split protocols: {singles}; or 'full'")


# --- results ------------------------------------------------------------------------------------

@dataclass
class TrialRecord:
    """One trial: its sampled parameters (dotted names), the objective (None unless complete) and the
    validation metrics (of the carve-outs scored before a pruned trial stopped)."""

    number: int
    params: dict[str, Any]
    value: float | None
    seconds: float
    state: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    """Why a failed trial failed (e.g. the model diverged with these settings)."""


@dataclass
class TuneResult:
    """What a tuning run found, and how it was measured."""

    model: str
    metric: str
    direction: Literal["minimize", "maximize"]
    best_params: dict[str, Any]
    """Fixed settings plus the best trial's sampled ones, nested as a model config takes them."""
    best_value: float
    best_trial: int
    trials: list[TrialRecord]
    protocol_kind: ProtocolKind
    validation: dict[str, Any]
    seed: int
    k: int
    threshold: float | None
    data_name: str
    data_fingerprint: str
    n_train: int
    seconds: float
    searched: list[str] = field(default_factory=list)
    fixed_params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    def rows(self, *, sort: bool = True) -> list[dict[str, Any]]:
        """One flat dict per trial (trial, state, value, seconds, metrics, params), best first when sorted."""
        rows = [{"trial": t.number, "state": t.state, "value": t.value, "seconds": t.seconds, **t.metrics,
                 **{f"param.{k}": v for k, v in t.params.items()}, **({"error": t.error} if t.error else {})}
                for t in self.trials]
        if not sort:
            return rows
        sign = 1.0 if self.direction == "minimize" else -1.0
        return sorted(rows, key=lambda r: (r["value"] is None, sign * (r["value"] or 0.0), r["trial"]))

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["n_trials"] = self.n_trials
        return _plain(doc)

    def header_lines(self) -> list[str]:
        """The tuning record, one line each (written as TOML comments by `to_toml`)."""
        validation = ", ".join(f"{k}={v}" for k, v in self.validation.items())
        completed = sum(t.state == "complete" for t in self.trials)
        where = "rating prediction"
        if self.protocol_kind == "topn":
            where = f"top-{self.k}" + (f", relevant ≥ {self.threshold:g}" if self.threshold is not None else "")
        return [
            f"tastemaker tune: best of {self.n_trials} trials ({completed} complete) for {self.model}, "
            f"Optuna TPE seed {self.seed}",
            f"metric: {self.metric} = {self.best_value:.6f} ({self.direction}, trial {self.best_trial}, "
            f"{where})",
            f"validation: {validation} — carved out of the training data only",
            f"training data: {self.data_name or '(unnamed)'}, {self.n_train} interactions, "
            f"sha256 {self.data_fingerprint}",
            f"searched: {', '.join(self.searched) or '(nothing)'}",
            f"written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by tastemaker {_version()}",
        ]

    def to_toml(self, path: str | Path) -> Path:
        """Write the best setting as ``tastemaker train --config`` reads it ([model] name, [model.params])."""
        import tomli_w

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = tomli_w.dumps({"model": {"name": self.model, "params": _drop_none(self.best_params)}})
        header = "".join(f"# {line}\n" for line in self.header_lines())
        path.write_text(header + "\n" + body)
        return path


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    return obj


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tastemaker")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "(source)"


# --- metrics -------------------------------------------------------------------------------------

def _metric_names(kind: ProtocolKind, k: int) -> list[str]:
    if kind == "rating":
        return ["rmse", "mae"]
    return [*(f"{m}@{k}" for m in RANKING_METRICS), "auc", f"coverage@{k}", f"novelty@{k}", f"gini@{k}",
            f"ild@{k}"]


def _resolve_metric(metric: str | None, kind: ProtocolKind, k: int) -> tuple[str, Literal["minimize", "maximize"]]:
    known = _metric_names(kind, k)
    if metric is None:
        metric = "rmse" if kind == "rating" else f"ndcg@{k}"
    metric = metric.lower()
    if metric not in known and f"{metric}@{k}" in known:
        metric = f"{metric}@{k}"
    if metric not in known:
        raise ConfigError(f"metric {metric!r} is not measured by the {kind} protocol (k={k}); "
                          f"choose from {', '.join(known)}")
    minimize = metric in ("rmse", "mae") or metric.startswith("gini@")
    return metric, "minimize" if minimize else "maximize"


# --- spaces for a model -------------------------------------------------------------------------

def resolve_space(model_name: str, space: Space | SearchSpace | Callable | None = None,
                  params: Mapping[str, Any] | None = None) -> Callable[[optuna.Trial], dict[str, Any]]:
    """The search space to use for `model_name`, checked against its config class.

    `space` (data or `SearchSpace`) replaces the default space; without it the default space is
    used, minus any setting that `params` holds fixed. Every range end and choice is checked to be
    a valid value of the model's config, so a bad space fails before the first trial. A callable
    `space` is used as given (it is checked when trials run).
    """
    names = model_names()
    if model_name not in names:
        raise ConfigError(f"unknown model {model_name!r}; known models: {', '.join(names)}")
    if space is None and model_name not in DEFAULT_SPACES:
        tunable = ", ".join(sorted(DEFAULT_SPACES))
        raise ConfigError(f"{model_name} has no default search space; give one ([tune.space] in a TOML file, "
                          f"or space=...). Models with a default space: {tunable}")
    cls = get_model_class(model_name)
    fixed = dict(params or {})
    if callable(space) and not isinstance(space, SearchSpace):
        return space
    if space is None:
        parsed = SearchSpace.parse(DEFAULT_SPACES[model_name]).without(list(_flatten_params(fixed)))
    else:
        parsed = space if isinstance(space, SearchSpace) else SearchSpace.parse(space)
        clash = [n for n in parsed.specs if any(n == f or n.startswith(f + ".") or f.startswith(n + ".")
                                                for f in _flatten_params(fixed))]
        if clash:
            raise ConfigError(f"{', '.join(clash)}: set both as a fixed parameter and in the search space; "
                              "keep one of the two")
    if not parsed.searched:
        raise ConfigError(f"the search space of {model_name} has nothing to search (every parameter is fixed)")
    check_space(model_name, parsed, fixed, config_cls=cls.Config)
    return parsed


def check_space(model_name: str, space: SearchSpace, params: Mapping[str, Any] | None = None, *,
                config_cls: type[BaseModel] | None = None) -> None:
    """Raise a `ConfigError` unless every parameter of `space` is a setting of the model and every range
    end, choice and fixed value is a valid value for it (with `params` held fixed)."""
    config_cls = config_cls or get_model_class(model_name).Config
    fixed = dict(params or {})
    for name, spec in space.specs.items():
        _config_field(config_cls, name)
        for value in spec.probe_values():
            try:
                config_cls.parse(_merge(fixed, _nest({name: value})), source=f"{model_name} config")
            except ConfigError as exc:
                raise ConfigError(f"search space of {model_name}: {name} = {value!r} ({spec.describe()}) is not "
                                  f"allowed — {exc}") from None


def _defaults_in_space(space: Callable, config_cls: type[BaseModel], fixed: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(space, SearchSpace):
        return {}
    defaults = _flatten_params(config_cls.parse(dict(fixed)).model_dump())
    return {name: defaults[name] for name, spec in space.specs.items()
            if spec.kind != "fixed" and name in defaults and spec.contains(defaults[name])}


# --- the tuner ----------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_optuna(optuna_mod) -> Iterator[None]:
    before = optuna_mod.logging.get_verbosity()
    optuna_mod.logging.set_verbosity(optuna_mod.logging.ERROR)  # failed trials are reported in TuneResult
    try:
        yield
    finally:
        optuna_mod.logging.set_verbosity(before)


def _validation_settings(validation: Mapping[str, Any] | None, kind: ProtocolKind) -> dict[str, Any]:
    settings = dict(validation or {})
    unknown = set(settings) - {"method", "fraction", "n", "seed", "repeats"}
    if unknown:
        raise ConfigError(f"unknown validation setting(s) {sorted(unknown)}; use method, fraction, n, seed, repeats")
    method = settings.setdefault("method", "random" if kind == "rating" else "user_holdout")
    if method not in VALIDATION_METHODS:
        raise ConfigError(f"unknown validation method {method!r}; use one of {', '.join(VALIDATION_METHODS)}")
    if "n" not in settings and method != "last_n":
        settings.setdefault("fraction", 0.2)
    settings.setdefault("seed", 0)
    repeats = settings.setdefault("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"validation repeats must be an integer ≥ 1, got {repeats!r}")
    return {key: settings[key] for key in ("method", "fraction", "n", "seed", "repeats") if key in settings}


def tune(
    model_name: str,
    train: Interactions,
    *,
    protocol_kind: ProtocolKind = "rating",
    metric: str | None = None,
    n_trials: int = 30,
    timeout: float | None = None,
    seed: int = 0,
    validation: Mapping[str, Any] | None = None,
    space: Space | SearchSpace | Callable[[optuna.Trial], dict[str, Any]] | None = None,
    params: Mapping[str, Any] | None = None,
    k: int = 10,
    threshold: float | None = 4.0,
    pruner: bool = False,
    start_from_defaults: bool = True,
    on_trial: Callable[[TrialRecord], None] | None = None,
) -> TuneResult:
    """Search `model_name`'s settings with Optuna (TPE, seeded) on validation data carved out of `train`.

    `train` is a training set only (use `training_part(dataset, "u1")`): each trial fits on
    ``validation_split(train, **validation)``'s first part and is scored on its second. `metric`
    defaults to ``rmse`` (rating) or ``ndcg@k`` (topn, `threshold` marks relevant ratings on explicit
    data). `validation`: ``method`` (default ``random`` for rating, ``user_holdout`` for topn),
    ``fraction`` (0.2) or ``n``, ``seed`` (0), ``repeats`` (1: with more, each trial is scored on that
    many carve-outs with seeds seed, seed+1, … and the mean counts; `pruner` then stops poor trials
    early with Optuna's MedianPruner). `space` replaces the model's default space (`SEARCH_SPACES`);
    `params` are held fixed. With `start_from_defaults`, the first trial is the model's default
    setting (where it lies in the space), so the result is never worse than the defaults on
    validation. A trial whose fit raises a tastemaker error (e.g. SGD diverged) is recorded as failed
    and the search goes on. `timeout` (seconds) stops starting new trials after the first; `on_trial`
    sees each finished trial.
    """
    optuna = require("optuna", "tune")
    if isinstance(train, Dataset):
        raise DataError("tune() takes the training interactions only, not a Dataset",
                        hint="pass training_part(dataset, 'u1') (or another split) so no test data is in reach")
    if not isinstance(train, Interactions):
        raise DataError(f"tune() takes Interactions, not {type(train).__name__}")
    if protocol_kind not in ("rating", "topn"):
        raise ConfigError(f"protocol_kind must be 'rating' or 'topn', got {protocol_kind!r}")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError(f"n_trials must be an integer ≥ 1, got {n_trials!r}")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    metric, direction = _resolve_metric(metric, protocol_kind, k)
    fixed = _plain(dict(params or {}))
    sampler_fn = resolve_space(model_name, space, fixed)
    cls = get_model_class(model_name)
    if protocol_kind == "rating" and not cls.predicts_ratings:
        raise ConfigError(f"{model_name} ranks items but does not predict ratings; tune it with protocol_kind='topn'")
    settings = _validation_settings(validation, protocol_kind)
    split_args = {key: settings[key] for key in ("method", "fraction", "n") if key in settings}
    carves = [validation_split(train, **split_args, seed=settings["seed"] + r) for r in range(settings["repeats"])]

    def score(model, fit_part: Interactions, val_part: Interactions) -> dict[str, float]:
        if protocol_kind == "rating":
            return rating_scores(model, val_part)[0]
        return topn_scores(model, fit_part, val_part, k, threshold)[0]

    def objective(trial) -> float:
        sampled = _plain(sampler_fn(trial))
        flat = _flatten_params(sampled)
        trial.set_user_attr("params", flat)
        config = _merge(fixed, _nest(flat))
        t0 = time.perf_counter()
        measured: list[dict[str, float]] = []
        for r, (fit_part, val_part) in enumerate(carves):
            model = create_model(model_name, config)
            try:
                with progress_bars(False):
                    model.fit(fit_part)
                measured.append(score(model, fit_part, val_part))
            except TastemakerError as exc:  # e.g. SGD diverged at this learning rate: the trial fails
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
                trial.set_user_attr("seconds", time.perf_counter() - t0)
                return float("nan")
            if metric not in measured[-1]:
                raise ConfigError(f"metric {metric!r} was not measured (got {', '.join(measured[-1])})")
            running = float(np.mean([m[metric] for m in measured]))
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            if len(carves) > 1:
                trial.report(running, r)
                if r + 1 < len(carves) and trial.should_prune():
                    trial.set_user_attr("metrics", _mean_metrics(measured))
                    raise optuna.TrialPruned()
        trial.set_user_attr("metrics", _mean_metrics(measured))
        return float(np.mean([m[metric] for m in measured]))

    with _quiet_optuna(optuna):
        study = optuna.create_study(
            direction=direction,
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5) if pruner else optuna.pruners.NopPruner(),
        )
        if start_from_defaults:
            defaults = _defaults_in_space(sampler_fn, cls.Config, fixed)
            if defaults:
                study.enqueue_trial(defaults)
        started = time.perf_counter()
        records: list[TrialRecord] = []
        for _ in track(range(n_trials), f"tuning {model_name}", total=n_trials):
            if timeout is not None and records and time.perf_counter() - started >= timeout:
                break
            study.optimize(objective, n_trials=1)
            frozen = study.trials[-1]
            record = TrialRecord(
                number=frozen.number,
                params=frozen.user_attrs.get("params", _plain(dict(frozen.params))),
                value=float(frozen.value) if frozen.state.name == "COMPLETE" else None,
                seconds=float(frozen.user_attrs.get("seconds", 0.0)),
                state=frozen.state.name.lower(),
                metrics=frozen.user_attrs.get("metrics", {}),
                error=frozen.user_attrs.get("error"),
            )
            records.append(record)
            if on_trial is not None:
                on_trial(record)
        seconds = time.perf_counter() - started
    complete = [t for t in records if t.state == "complete" and t.value is not None]
    if not complete:
        errors = [t.error for t in records if t.error]
        why = f"; the first error: {errors[0]}" if errors else ""
        raise ConfigError(f"no trial of {model_name} finished ({len(records)} tried: "
                          f"{', '.join(sorted({t.state for t in records}))}){why}; check the search space and data")
    sign = 1.0 if direction == "minimize" else -1.0
    best = min(complete, key=lambda t: (sign * t.value, t.number))
    return TuneResult(
        model=model_name, metric=metric, direction=direction,
        best_params=_merge(fixed, _nest(best.params)), best_value=best.value, best_trial=best.number,
        trials=records, protocol_kind=protocol_kind, validation=settings, seed=seed, k=k,
        threshold=threshold, data_name=train.name or "", data_fingerprint=train.fingerprint(),
        n_train=len(train), seconds=seconds,
        searched=sampler_fn.searched if isinstance(sampler_fn, SearchSpace) else list(
            dict.fromkeys(n for t in records for n in t.params)),
        fixed_params=fixed,
    )


def _mean_metrics(measured: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([m[key] for m in measured])) for key in measured[0]}


# --- TOML input -----------------------------------------------------------------------------------

@dataclass
class TuneFile:
    """What a tuning TOML file holds: an optional model name, fixed params and a search space."""

    name: str | None
    params: dict[str, Any]
    space: dict[str, Any] | None


def read_tune_file(path: str | Path) -> TuneFile:
    """Read ``[model] name``, ``[model.params]`` (held fixed) and ``[tune.space]`` from a TOML file.

    The ``[model]`` part is the format `TuneResult.to_toml` writes and ``tastemaker train`` reads.
    """
    from tastemaker.config import read_toml

    doc = read_toml(path)
    unknown = set(doc) - {"model", "tune"}
    model = doc.get("model", {})
    tune_table = doc.get("tune", {})
    bad = sorted(unknown | {f"model.{k}" for k in set(model) - {"name", "params"}}
                 | {f"tune.{k}" for k in set(tune_table) - {"space"}})
    if bad:
        raise ConfigError(f"{path}: unexpected {', '.join(bad)}; a tuning file has [model] name, [model.params] "
                          "(fixed settings) and [tune.space] (the search space)")
    space = tune_table.get("space")
    if space is not None and not isinstance(space, dict):
        raise ConfigError(f"{path}: [tune.space] must be a table of parameters")
    return TuneFile(name=model.get("name"), params=dict(model.get("params", {})), space=space)
