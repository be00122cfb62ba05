"""Simulated experiments with known effects: exposure/event logs for `tastemaker ab analyze`, and
vectorised per-unit draws (thousands of replicates at once) that check the statistics.

The generative model (one `Scenario`), per unit (a user):

- new or returning (`returning_share`); returning units order more (`returning_order_boost`);
- activity a ~ Gamma(`activity_shape`, 1/shape) (mean 1), click propensity b ~ Gamma(4, 1/4), spend level s ~ LogNormal
  (mean 1, σ = `spend_sigma`): fixed traits, shared by the pre-period and the test period (so
  pre-period behaviour predicts test behaviour, which CUPED uses);
- requests = 1 + Poisson(`requests` · a), each showing `k` items: impressions = k · requests;
- clicks ~ Binomial(impressions, `ctr` · b · (1 + `ctr_lift` in treatment));
- orders ~ Poisson(`order_rate` · a · boost · (1 + `conversion_lift` in treatment)), each with
  1 + Poisson(`extra_items`) lines; a line's category follows the category weights, its item is
  uniform in the category and its value is the item's price · s · m, where m = 1 + `aov_lift` / r
  for lines in treatment inside `aov_segment` (e.g. ``category=electronics``) — r being the
  segment's expected share of revenue, so the overall AOV changes by exactly `aov_lift`.

`Scenario.truth()` gives the true relative effects; `simulate_units` draws replicates of per-unit
aggregates (no files); `simulate_logs` writes ``exposures.jsonl``, ``events.jsonl`` (the service's
event schema), ``pre.csv`` (pre-period per-user aggregates of the returning users),
``catalog.csv`` and ``experiment.toml``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from tastemaker.config import StrictConfig, write_toml
from tastemaker.errors import ConfigError

DEFAULT_CATEGORIES = {"electronics": (0.25, 120.0), "home": (0.30, 40.0), "fashion": (0.25, 50.0),
                      "books": (0.20, 15.0)}
START = 1_709_251_200.0  # 2024-03-01T00:00:00Z


class Scenario(StrictConfig):
    """A simulated experiment (see the module docstring for the model).

    treatment_share: the configured share of the treatment; actual_share: the share units really
    get (a different value simulates a sample ratio mismatch; default: the configured one).
    aov_segment: where the AOV effect happens: "category=NAME", "user_type=new|returning", both
    joined by a comma, or None for everywhere.
    """

    users: int = Field(24_000, ge=10)
    experiment: str = "reco-v2"
    control: str = "control"
    treatment: str = "treatment"
    treatment_share: float = Field(0.5, gt=0, lt=1)
    actual_share: float | None = Field(None, gt=0, lt=1)
    returning_share: float = Field(0.6, ge=0, le=1)
    activity_shape: float = Field(2.0, gt=0)
    returning_order_boost: float = Field(1.2, gt=0)
    new_order_boost: float = Field(0.7, gt=0)
    requests: float = Field(1.0, ge=0)
    k: int = Field(8, ge=1, le=100)
    ctr: float = Field(0.12, gt=0, lt=0.25)
    ctr_lift: float = Field(0.0, gt=-1)
    order_rate: float = Field(1.5, gt=0)
    conversion_lift: float = Field(0.0, gt=-1)
    aov_lift: float = Field(0.0, gt=-1)
    aov_segment: str | None = None
    extra_items: float = Field(0.5, ge=0)
    spend_sigma: float = Field(0.3, ge=0)
    categories: dict[str, tuple[float, float]] = Field(default_factory=lambda: dict(DEFAULT_CATEGORIES))
    items_per_category: int = Field(50, ge=1)
    days: float = Field(14.0, gt=0)
    start: float = START
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        self.segment_cells()
        m = self.aov_multiplier()
        if m <= 0.05:
            raise ValueError(f"aov_lift {self.aov_lift} cannot come from segment {self.aov_segment!r}: its revenue "
                             f"share is too small (the values there would have to be multiplied by {m:.3f})")
        return self

    # --- the truth -----------------------------------------------------------------------------------
    def segment_cells(self) -> tuple[set[str], set[str]]:
        """(categories, user types) where the AOV effect applies."""
        cats, types = set(self.categories), {"new", "returning"}
        if self.aov_segment:
            for part in self.aov_segment.split(","):
                key, _, value = part.partition("=")
                key, value = key.strip(), value.strip()
                if key == "category":
                    if value not in self.categories:
                        raise ValueError(f"aov_segment category {value!r} is not one of {sorted(self.categories)}")
                    cats = {value}
                elif key == "user_type":
                    if value not in ("new", "returning"):
                        raise ValueError(f"aov_segment user_type must be new or returning, got {value!r}")
                    types = {value}
                else:
                    raise ValueError(f"aov_segment parts are category=NAME or user_type=new|returning, got {part!r}")
        return cats, types

    def revenue_share(self) -> float:
        """The expected share of revenue inside `aov_segment` (control arm)."""
        cats, types = self.segment_cells()
        w = {c: wt * price for c, (wt, price) in self.categories.items()}
        share_c = sum(w[c] for c in cats) / sum(w.values())
        orders = {"new": (1 - self.returning_share) * self.new_order_boost,
                  "returning": self.returning_share * self.returning_order_boost}
        share_t = sum(orders[t] for t in types) / sum(orders.values())
        return share_c * share_t

    def aov_multiplier(self) -> float:
        """The factor on line values inside the segment that moves the overall AOV by `aov_lift`."""
        return 1.0 + self.aov_lift / self.revenue_share() if self.aov_lift else 1.0

    def conversion(self, treated: bool) -> float:
        """The true conversion (P(orders > 0)) of an arm: E over the activity a ~ Gamma(shape, 1/shape)
        and the user types."""
        lam = self.order_rate * (1 + (self.conversion_lift if treated else 0.0))
        p0 = 0.0
        for share, boost in ((self.returning_share, self.returning_order_boost),
                             (1 - self.returning_share, self.new_order_boost)):
            k = self.activity_shape
            p0 += share * (1.0 + lam * boost / k) ** -k
        return 1.0 - p0

    def truth(self) -> dict[str, float]:
        """The true relative effects of the treatment on each metric."""
        conv = self.conversion(True) / self.conversion(False) - 1.0
        return {"ctr": self.ctr_lift, "aov": self.aov_lift, "conversion": conv, "items_per_order": 0.0,
                "orders_per_user": self.conversion_lift,
                "revenue_per_user": (1 + self.conversion_lift) * (1 + self.aov_lift) - 1.0}

    def experiments_toml(self) -> dict[str, Any]:
        """The experiments config of this scenario (as a TOML document)."""
        return {"catalog": "catalog.csv", "experiment": {
            "name": self.experiment, "primary": ["ctr"], "secondary": ["conversion", "items_per_order"],
            "guardrails": [{"metric": "aov", "max_drop": 0.0}, {"metric": "revenue_per_user", "max_drop": 0.0}],
            "variants": [{"name": self.control, "share": 1 - self.treatment_share},
                         {"name": self.treatment, "share": self.treatment_share}]}}


# ================================================================================================
# drawing units
# ================================================================================================


def _catalog(scn: Scenario) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(item ids, category code per item, price per item, category names); prices in a category
    average exactly its configured mean."""
    rng = np.random.default_rng([scn.seed, 7])
    names = list(scn.categories)
    ids, cat, price = [], [], []
    for c, name in enumerate(names):
        p = rng.lognormal(0.0, 0.35, scn.items_per_category)
        p = p / p.mean() * scn.categories[name][1]
        for j in range(scn.items_per_category):
            ids.append(f"{name[:3]}{j:03d}")
            cat.append(c)
            price.append(round(float(p[j]), 2))
    return np.asarray(ids), np.asarray(cat, dtype=np.int64), np.asarray(price), names


def _lines(scn: Scenario, rng: np.random.Generator, orders: np.ndarray, spend: np.ndarray, treat: np.ndarray,
           returning: np.ndarray, catalog: tuple) -> dict[str, np.ndarray]:
    """Order lines of every unit: unit index, order index (global), item, category, value."""
    _, _, item_price, names = catalog
    n_orders = int(orders.sum())
    order_unit = np.repeat(np.arange(len(orders)), orders.astype(np.int64))
    n_lines = 1 + rng.poisson(scn.extra_items, n_orders)
    line_order = np.repeat(np.arange(n_orders), n_lines)
    line_unit = order_unit[line_order]
    weights = np.asarray([scn.categories[c][0] for c in names], dtype=np.float64)
    cat = rng.choice(len(names), size=len(line_order), p=weights / weights.sum())
    per = scn.items_per_category
    item = cat * per + rng.integers(0, per, len(line_order))
    value = item_price[item] * spend[line_unit]
    if scn.aov_lift:
        cats, types = scn.segment_cells()
        in_cat = np.isin(cat, [names.index(c) for c in cats])
        ret = returning[line_unit]
        in_type = (ret if types == {"returning"} else ~ret) if len(types) == 1 else np.ones(len(ret), dtype=bool)
        value = np.where(treat[line_unit] & in_cat & in_type, value * scn.aov_multiplier(), value)
    return {"unit": line_unit, "order": line_order, "item": item, "category": cat, "value": value,
            "order_unit": order_unit}


def _draw(scn: Scenario, treat: np.ndarray, rng: np.random.Generator, catalog: tuple, *, pre: bool = True
          ) -> dict[str, Any]:
    """Per-unit aggregates (and order lines) of len(treat) units."""
    n = len(treat)
    returning = rng.random(n) < scn.returning_share
    activity = rng.gamma(scn.activity_shape, 1.0 / scn.activity_shape, n)
    click = rng.gamma(4.0, 0.25, n)
    sig = scn.spend_sigma
    spend = rng.lognormal(-sig * sig / 2.0, sig, n)
    boost = np.where(returning, scn.returning_order_boost, scn.new_order_boost)
    out: dict[str, Any] = {"returning": returning, "treat": treat}

    def period(treated: np.ndarray) -> dict[str, Any]:
        requests = 1 + rng.poisson(scn.requests * activity)
        impressions = requests * scn.k
        p = np.minimum(scn.ctr * click * np.where(treated, 1.0 + scn.ctr_lift, 1.0), 0.95)
        clicks = rng.binomial(impressions, p)
        rate = scn.order_rate * activity * boost * np.where(treated, 1.0 + scn.conversion_lift, 1.0)
        orders = rng.poisson(rate)
        lines = _lines(scn, rng, orders, spend, treated, returning, catalog)
        revenue = np.bincount(lines["unit"], weights=lines["value"], minlength=n)
        items = np.bincount(lines["unit"], minlength=n).astype(np.float64)
        return {"requests": requests, "impressions": impressions.astype(np.float64),
                "clicks": clicks.astype(np.float64), "orders": orders.astype(np.float64), "revenue": revenue,
                "items": items, "converted": (orders > 0).astype(np.float64), "units": np.ones(n), "lines": lines}

    out["test"] = period(treat)
    if pre:
        before = period(np.zeros(n, dtype=bool))
        keep = returning.astype(np.float64)
        out["pre"] = {k: v * keep for k, v in before.items() if k not in ("lines", "requests", "units")}
    return out


def simulate_units(scenario: Scenario, replicates: int, *, seed: int | None = None, pre: bool = False,
                   share: float | None = None) -> dict[str, np.ndarray]:
    """`replicates` independent experiments of `scenario.users` units as (replicates, users) arrays:
    ``treat`` (bool), ``returning`` and the aggregates impressions, clicks, orders, revenue, items,
    converted (and ``pre_<aggregate>`` with `pre`). Units are assigned to treatment with
    probability `share` (default: actual_share, else treatment_share)."""
    rng = np.random.default_rng(scenario.seed if seed is None else seed)
    p = share if share is not None else (scenario.actual_share or scenario.treatment_share)
    catalog = _catalog(scenario)
    n = scenario.users
    treat = rng.random(replicates * n) < p
    d = _draw(scenario, treat, rng, catalog, pre=pre)
    out = {"treat": treat.reshape(replicates, n), "returning": d["returning"].reshape(replicates, n)}
    for k in ("impressions", "clicks", "orders", "revenue", "items", "converted"):
        out[k] = d["test"][k].reshape(replicates, n)
        if pre:
            out["pre_" + k] = d["pre"][k].reshape(replicates, n)
    return out


# ================================================================================================
# writing logs
# ================================================================================================


def _iso(ts: np.ndarray) -> np.ndarray:
    ms = np.round(ts * 1000.0).astype("int64").astype("datetime64[ms]")
    return np.char.add(np.datetime_as_string(ms, unit="ms"), "Z")


def simulate_logs(scenario: Scenario, out_dir: str | Path) -> dict[str, Path]:
    """Write one simulated experiment's logs into `out_dir` (see the module docstring); returns the
    paths by name: exposures, events, pre, catalog, config."""
    from tastemaker.experiments.assignment import Assigner
    from tastemaker.experiments.config import ExperimentsConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scn = scenario
    rng = np.random.default_rng(scn.seed)
    catalog = _catalog(scn)
    item_ids, item_cat, item_price, names = catalog
    n = scn.users
    width = max(6, len(str(n)))
    units = np.asarray([f"u{i:0{width}d}" for i in range(n)])
    doc = scn.experiments_toml()
    config = ExperimentsConfig.from_dict(doc)
    if scn.actual_share is None:
        treat = Assigner(config).assign_many(scn.experiment, units) == scn.treatment
    else:
        treat = rng.random(n) < scn.actual_share
    d = _draw(scn, treat, rng, catalog, pre=True)
    t = d["test"]
    end = scn.start + scn.days * 86400.0
    first = scn.start + rng.random(n) * 0.85 * (end - scn.start)

    # requests and what they showed
    req = t["requests"].astype(np.int64)
    req_unit = np.repeat(np.arange(n), req)
    is_first = np.r_[True, req_unit[1:] != req_unit[:-1]]
    req_ts = np.where(is_first, first[req_unit],
                      first[req_unit] + rng.random(len(req_unit)) * (end - first[req_unit]))
    k = scn.k
    weights = np.asarray([scn.categories[c][0] for c in names])
    imp_req = np.repeat(np.arange(len(req_unit)), k)
    imp_cat = rng.choice(len(names), size=len(imp_req), p=weights / weights.sum())
    imp_item = imp_cat * scn.items_per_category + rng.integers(0, scn.items_per_category, len(imp_req))
    imp_pos = np.tile(np.arange(1, k + 1), len(req_unit))
    imp_unit = req_unit[imp_req]
    # which impressions were clicked: the unit's `clicks` of them, at random
    key = rng.random(len(imp_req))
    order = np.lexsort((key, imp_unit))
    starts = np.r_[0, np.cumsum(t["impressions"].astype(np.int64))[:-1]]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - starts[imp_unit[order]]
    clicked = rank < t["clicks"].astype(np.int64)[imp_unit]

    exp_path = out / "exposures.jsonl"
    req_ids = np.asarray([f"r{i:08d}" for i in range(len(req_unit))])
    variant = np.where(treat, scn.treatment, scn.control)
    share = {scn.treatment: scn.treatment_share, scn.control: 1 - scn.treatment_share}
    with exp_path.open("w") as fh:
        for r in range(len(req_unit)):
            u = req_unit[r]
            sl = slice(r * k, (r + 1) * k)
            items = [{"item_id": item_ids[i], "position": int(p), "propensity": 1.0}
                     for i, p in zip(imp_item[sl], imp_pos[sl])]
            fh.write(json.dumps({"kind": "exposure", "id": f"{req_ids[r]}:{scn.experiment}",
                                 "at": round(float(req_ts[r]), 3), "experiment": scn.experiment, "layer": "default",
                                 "variant": str(variant[u]), "share": share[str(variant[u])], "unit": "user",
                                 "unit_id": str(units[u]), "user_id": str(units[u]), "session_id": None,
                                 "returning": bool(d["returning"][u]), "request_id": str(req_ids[r]),
                                 "pipeline": str(variant[u]), "items": items}, separators=(",", ":")) + "\n")

    # events: clicks on shown items, purchases by order line (one session id per order)
    ci = np.flatnonzero(clicked)
    click_ts = req_ts[imp_req[ci]] + rng.uniform(1.0, 300.0, len(ci))
    lines = t["lines"]
    order_unit = lines["order_unit"]
    order_ts = first[order_unit] + rng.random(len(order_unit)) * (end - first[order_unit])
    line_ts = order_ts[lines["order"]] + 1.0
    ev_path = out / "events.jsonl"
    click_iso = _iso(click_ts)
    line_iso = _iso(line_ts)
    with ev_path.open("w") as fh:
        for j, i in enumerate(ci):
            fh.write(json.dumps({"event_id": f"c{j:08d}", "type": "click", "user_id": str(units[imp_unit[i]]),
                                 "item_id": str(item_ids[imp_item[i]]), "timestamp": str(click_iso[j]),
                                 "request_id": str(req_ids[imp_req[i]]), "position": int(imp_pos[i])},
                                separators=(",", ":")) + "\n")
        for j in range(len(lines["unit"])):
            fh.write(json.dumps({"event_id": f"p{j:08d}", "type": "purchase", "user_id": str(units[lines["unit"][j]]),
                                 "item_id": str(item_ids[lines["item"][j]]), "timestamp": str(line_iso[j]),
                                 "quantity": 1, "price": round(float(lines["value"][j]), 2),
                                 "session_id": f"o{int(lines['order'][j]):08d}"}, separators=(",", ":")) + "\n")

    import pandas as pd

    pre = d["pre"]
    ret = d["returning"]
    pre_path = out / "pre.csv"
    pd.DataFrame({"user_id": units[ret], **{c: pre[c][ret] for c in ("impressions", "clicks", "orders", "revenue",
                                                                      "items")}}).to_csv(pre_path, index=False)
    cat_path = out / "catalog.csv"
    pd.DataFrame({"item_id": item_ids, "category": np.asarray(names)[item_cat], "price": item_price}).to_csv(
        cat_path, index=False)
    cfg_path = write_toml(out / "experiment.toml", doc)
    (out / "scenario.json").write_text(json.dumps({"scenario": scn.to_dict(), "truth": scn.truth()}, indent=2))
    return {"exposures": exp_path, "events": ev_path, "pre": pre_path, "catalog": cat_path, "config": cfg_path}


def scenario_from_options(**options: Any) -> Scenario:
    """A `Scenario` from keyword options (None values ignored), as the CLI passes them."""
    try:
        return Scenario.parse({k: v for k, v in options.items() if v is not None}, source="ab simulate")
    except ConfigError:
        raise
