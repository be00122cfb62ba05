"""Experiments declared in TOML: layers, variants with traffic shares, salts, metrics and guardrails.

A file holds one experiment (an ``[experiment]`` table) or several (``[[experiments]]`` tables, with
optional ``[[layers]]``)::

    [[layers]]
    name = "ranking"            # salt defaults to the name

    [[experiments]]
    name = "reco-v2"
    layer = "ranking"
    range = [0.0, 0.5]          # the share of the layer's hash space it takes (disjoint within a layer)
    primary = ["ctr"]
    guardrails = [{metric = "aov"}, {metric = "revenue_per_user", max_drop = 0.01}]

    [[experiments.variants]]
    name = "control"
    share = 0.5

    [[experiments.variants]]
    name = "treatment"
    share = 0.5
    [experiments.variants.pipeline]   # the service's pipeline for this variant (a PipelineConfig)
    name = "with-rules"
    rules = "treatment-rules.toml"

Experiments in one layer are mutually exclusive (disjoint ranges); experiments in different layers
overlap, and are independent because each layer hashes with its own salt.

Metrics are ratios of per-unit aggregates (`UNIT_AGGREGATES`): ``ctr`` = clicks / impressions,
``aov`` = revenue / orders, ``items_per_order`` = items / orders (delta method), and per-unit means
``conversion`` (share of units with an order), ``revenue_per_user``, ``orders_per_user``. Custom
metrics are declared in ``metrics = [{name = ..., numerator = ..., denominator = ...}]``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tastemaker.config import StrictConfig, read_toml
from tastemaker.errors import ConfigError
from tastemaker.pipeline import PipelineConfig

#: per-unit aggregates the analysis computes from the logs (numerators and denominators of metrics)
UNIT_AGGREGATES = ("units", "exposures", "impressions", "clicks", "views", "add_to_cart", "orders", "revenue",
                   "items", "converted")
#: aggregates that add up over categories (a category's share of them is a share of the whole)
ADDITIVE = frozenset({"impressions", "clicks", "views", "add_to_cart", "revenue", "items"})

Name = str


class MetricSpec(StrictConfig):
    """A metric: sum(numerator) / sum(denominator) over units (denominator "units": a per-unit mean).

    higher_is_better: direction of a good change (guardrails fail on a significant bad change).
    """

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    numerator: str
    denominator: str = "units"
    higher_is_better: bool = True
    label: str | None = None

    @field_validator("numerator", "denominator")
    @classmethod
    def _aggregate(cls, v: str) -> str:
        if v not in UNIT_AGGREGATES:
            raise ValueError(f"{v!r} is not a unit aggregate; use one of {', '.join(UNIT_AGGREGATES)}")
        return v

    @property
    def is_ratio(self) -> bool:
        """A ratio of two unit aggregates (delta method), not a per-unit mean."""
        return self.denominator != "units"

    @property
    def title(self) -> str:
        return self.label or self.name


BUILTIN_METRICS: dict[str, MetricSpec] = {m.name: m for m in (
    MetricSpec(name="ctr", numerator="clicks", denominator="impressions", label="CTR"),
    MetricSpec(name="conversion", numerator="converted", label="conversion"),
    MetricSpec(name="aov", numerator="revenue", denominator="orders", label="AOV"),
    MetricSpec(name="revenue_per_user", numerator="revenue", label="revenue per user"),
    MetricSpec(name="items_per_order", numerator="items", denominator="orders", label="items per order"),
    MetricSpec(name="orders_per_user", numerator="orders", label="orders per user"),
    MetricSpec(name="add_to_cart_rate", numerator="add_to_cart", denominator="impressions", label="add-to-cart rate"),
)}


class GuardrailConfig(StrictConfig):
    """A guardrail: the experiment must not make `metric` worse by more than `max_drop` (relative,
    0.01 = 1 %). It fails when the whole confidence interval of the relative change is worse."""

    metric: str
    max_drop: float = Field(0.0, ge=0.0, lt=1.0)


class VariantConfig(StrictConfig):
    """One arm. share: its share of the experiment's units (shares sum to 1). pipeline / model: what
    the service runs for it (default: the service's own pipeline and model). params: free-form
    settings handed back with the assignment (e.g. for the client)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=64)
    share: float = Field(gt=0.0, le=1.0)
    pipeline: PipelineConfig | None = None
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class LayerConfig(StrictConfig):
    """A layer: experiments in it are mutually exclusive; its salt makes it independent of other layers."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=64)
    salt: str | None = None

    @property
    def hash_salt(self) -> str:
        return self.salt or self.name


class ExperimentConfig(StrictConfig):
    """One experiment.

    layer / range: the layer it lives in and the share [lo, hi) of that layer's hash space it takes.
    salt: seeds the variant hash (default: the name); change it to reshuffle units for a rerun.
    unit: what is randomised: "user" (user id), "session" (anonymous session id) or "auto" (the user
        id when there is one, else the session id).
    variants: two or more arms; `control` names the baseline (default: the first).
    primary: the metric family the decision rests on (multiplicity-corrected by `correction`).
    secondary: reported, not decided on. guardrails: metrics that must not get worse.
    metrics: custom metric definitions (besides the built-in ones).
    alpha: significance level; srm_alpha: the sample-ratio-mismatch threshold (p below it = SRM).
    power / mde: sizing of the suggested next test (power at a relative minimum detectable effect).
    sequential_tau: the mSPRT mixture scale as a share of the control value (a plausible relative effect).
    decision_basis: "fixed" (fixed-horizon p-values; analyse once, at the planned end) or
        "sequential" (always-valid p-values and confidence sequences; peek as often as you like).
    looks: how many interim looks (equally spaced in time) the sequential trace shows.
    bootstrap: bootstrap replicates for percentile CIs (0 turns them off).
    segments: deep-dive dimensions: "user_type" (new vs returning) and "category".
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=64)
    layer: str = "default"
    range: tuple[float, float] = (0.0, 1.0)
    salt: str | None = None
    unit: Literal["auto", "user", "session"] = "auto"
    variants: list[VariantConfig] = Field(min_length=2)
    control: str | None = None
    primary: list[str] = Field(default_factory=lambda: ["ctr"], min_length=1)
    secondary: list[str] = Field(default_factory=lambda: ["conversion", "items_per_order"])
    guardrails: list[GuardrailConfig] = Field(default_factory=lambda: [GuardrailConfig(metric="aov"),
                                                                       GuardrailConfig(metric="revenue_per_user")])
    metrics: list[MetricSpec] = Field(default_factory=list)
    alpha: float = Field(0.05, gt=0.0, lt=0.5)
    srm_alpha: float = Field(0.001, gt=0.0, lt=0.5)
    correction: Literal["holm", "bh", "none"] = "holm"
    power: float = Field(0.8, gt=0.5, lt=1.0)
    mde: float = Field(0.02, gt=0.0, lt=1.0)
    sequential_tau: float = Field(0.05, gt=0.0)
    decision_basis: Literal["fixed", "sequential"] = "fixed"
    looks: int = Field(14, ge=1, le=200)
    bootstrap: int = Field(500, ge=0, le=100_000)
    segments: list[Literal["user_type", "category"]] = Field(default_factory=lambda: ["user_type", "category"])

    @field_validator("range")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"range must be [lo, hi) with 0 <= lo < hi <= 1, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        total = sum(v.share for v in self.variants)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"variant shares must sum to 1, they sum to {total:g} ({names})")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not a variant; variants: {names}")
        known = {**BUILTIN_METRICS, **{m.name: m for m in self.metrics}}
        for m in [*self.primary, *self.secondary, *(g.metric for g in self.guardrails)]:
            if m not in known:
                raise ValueError(f"unknown metric {m!r}; known: {', '.join(known)} (or declare it in `metrics`)")
        return self

    @property
    def hash_salt(self) -> str:
        return self.salt or self.name

    @property
    def control_name(self) -> str:
        return self.control or self.variants[0].name

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    def variant(self, name: str) -> VariantConfig:
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(f"experiment {self.name!r} has no variant {name!r}; variants: {self.variant_names}")

    def metric(self, name: str) -> MetricSpec:
        """The definition of a metric (custom ones first, then the built-in ones)."""
        for m in self.metrics:
            if m.name == name:
                return m
        if name in BUILTIN_METRICS:
            return BUILTIN_METRICS[name]
        raise ConfigError(f"unknown metric {name!r}; known: {', '.join(BUILTIN_METRICS)}")

    def roles(self) -> dict[str, str]:
        """metric name -> "primary" / "guardrail" / "secondary" (the first role wins)."""
        out: dict[str, str] = {}
        for m in self.primary:
            out.setdefault(m, "primary")
        for g in self.guardrails:
            out.setdefault(g.metric, "guardrail")
        for m in self.secondary:
            out.setdefault(m, "secondary")
        return out


class ExperimentsConfig(StrictConfig):
    """Every experiment running at once, with their layers. catalog: an item file (CSV/Parquet with
    item_id and category) the analysis uses to put items in categories (relative to the TOML file)."""

    layers: list[LayerConfig] = Field(default_factory=list)
    experiments: list[ExperimentConfig] = Field(min_length=1)
    catalog: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ExperimentsConfig:
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment names must be unique, got {names}")
        layer_names = [layer.name for layer in self.layers]
        if len(set(layer_names)) != len(layer_names):
            raise ValueError(f"layer names must be unique, got {layer_names}")
        by_layer: dict[str, list[ExperimentConfig]] = {}
        for e in self.experiments:
            by_layer.setdefault(e.layer, []).append(e)
        for layer, exps in by_layer.items():
            spans = sorted((e.range, e.name) for e in exps)
            for (a, na), (b, nb) in itertools.pairwise(spans):
                if b[0] < a[1]:
                    raise ValueError(f"experiments {na!r} {list(a)} and {nb!r} {list(b)} overlap in layer {layer!r}: "
                                     "experiments of one layer need disjoint ranges (or put one in another layer)")
        choosing = sorted({e.layer for e in self.experiments
                           if any(v.pipeline is not None or v.model is not None for v in e.variants)})
        if len(choosing) > 1:
            raise ValueError(f"variants in layers {choosing} all choose a pipeline or model and would fight over "
                             "a request: put those experiments in one layer (they are then mutually exclusive)")
        return self

    def layer(self, name: str) -> LayerConfig:
        for layer in self.layers:
            if layer.name == name:
                return layer
        return LayerConfig(name=name)

    def experiment(self, name: str | None = None) -> ExperimentConfig:
        """The experiment called `name` (or the only one)."""
        if name is None:
            if len(self.experiments) == 1:
                return self.experiments[0]
            raise ConfigError(f"several experiments are declared ({', '.join(e.name for e in self.experiments)}): "
                              "name the one to analyse")
        for e in self.experiments:
            if e.name == name:
                return e
        raise ConfigError(f"no experiment {name!r}; declared: {', '.join(e.name for e in self.experiments)}")

    @classmethod
    def load(cls, path: str | Path) -> ExperimentsConfig:
        """Read a TOML file holding ``[experiment]`` (one) or ``[[experiments]]`` (several)."""
        path = Path(path)
        data = read_toml(path)
        return cls.from_dict(data, source=str(path), base=path.parent)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "experiments", base: Path | None = None
                  ) -> ExperimentsConfig:
        """Validate a parsed TOML document (see `load`); relative paths resolve against `base`."""
        data = dict(data)
        if "experiment" in data:
            if "experiments" in data:
                raise ConfigError(f"{source}: use either [experiment] (one) or [[experiments]] (several), not both")
            data["experiments"] = [data.pop("experiment")]
        # validate the nested tables on their own first, so an error names the keys of its own table
        for i, e in enumerate(data.get("experiments") or []):
            if not isinstance(e, dict):
                continue
            where = f"{source}: experiment {e.get('name', i)!r}"
            for j, v in enumerate(e.get("variants") or []):
                if isinstance(v, dict):
                    VariantConfig.parse({"share": 1.0, **v} if "share" not in v else v,
                                        source=f"{where}, variant {v.get('name', j)!r}")
            ExperimentConfig.parse(e, source=where)
        out = cls.parse(data, source=source)
        if base is not None:
            if out.catalog is not None and not Path(out.catalog).is_absolute():
                out.catalog = str(base / out.catalog)
            for e in out.experiments:
                for v in e.variants:
                    if v.model is not None and not Path(v.model).is_absolute():
                        v.model = str(base / v.model)
                    p = v.pipeline
                    if p is not None and p.rules is not None and not Path(p.rules).is_absolute():
                        p.rules = str(base / p.rules)
        return out

    @classmethod
    def single(cls, variants: list[str], shares: list[float] | None = None, *, name: str = "experiment",
               **settings: Any) -> ExperimentsConfig:
        """One experiment with these variants (equal shares unless given) and default settings."""
        shares = shares or [1.0 / len(variants)] * len(variants)
        exp = ExperimentConfig.parse({"name": name, "variants": [{"name": v, "share": s}
                                                                 for v, s in zip(variants, shares, strict=True)],
                                      **settings}, source="experiment")
        return cls(experiments=[exp])
