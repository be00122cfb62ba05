"""Analysis of one experiment: per-variant metrics, tests, guardrails, segments and the decision.

For each treatment against the control and each metric (primary, secondary, guardrail):

- the ratio (or per-unit mean) per arm, its delta-method variance, the Welch test of the
  difference, CIs of the difference and of the relative lift (`stats.compare_arrays`);
- CUPED with the pre-period data when given (the headline numbers are then CUPED's);
- a percentile bootstrap CI of the lift (units reweighted, Bayesian bootstrap);
- the sequential trace: at `looks` equally spaced times, the always-valid (mSPRT) p-value and
  the confidence-sequence interval, safe to read at every look;
- Holm (or BH) adjustment over the primary metrics of every treatment (the decision family).

Then the SRM check (χ² of units per arm, p < srm_alpha), guardrails (fail when the whole CI of
the relative change is worse than −max_drop), segment deep-dives (new vs returning users,
category: the lift inside each segment, the segment's share of the total change against its share
of the metric, and a heterogeneity test per dimension that finds the segment a loss comes from)
and the decision — "ship", "don't ship" or "investigate" — with its reasons,
the segment that drives a loss and a suggested next test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from tastemaker.experiments.config import ExperimentConfig, ExperimentsConfig, MetricSpec
from tastemaker.experiments.logs import UnitData, load_categories, load_events, load_exposures, load_pre
from tastemaker.experiments.stats import (
    Comparison,
    adjust_pvalues,
    always_valid_p,
    bootstrap_lift_ci,
    compare_arrays,
    cs_radius,
    sample_size,
    srm_test,
)

SHIP, DONT_SHIP, INVESTIGATE = "ship", "don't ship", "investigate"
DIMENSION_LABELS = {"user_type": "user type", "category": "category"}


def _f(v: Any) -> float | None:
    """A JSON-safe float (None for NaN/inf)."""
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


@dataclass
class MetricResult:
    """One metric of one treatment against the control. `lift*` and `p` are the headline numbers
    (CUPED's when pre-period data was given); `plain`, `cuped`, `bootstrap` and `sequential` hold
    each method's own; `p_adjusted` is the multiplicity-adjusted p of a primary metric."""

    metric: str
    label: str
    role: str
    treatment: str
    control: str
    higher_is_better: bool
    value_c: float | None
    value_t: float | None
    diff: float | None
    lift: float | None
    lift_low: float | None
    lift_high: float | None
    p: float | None
    n_t: int
    n_c: int
    s2_t: float | None
    s2_c: float | None
    method: str
    plain: dict[str, Any]
    cuped: dict[str, Any] | None = None
    bootstrap: list[float | None] | None = None
    sequential: dict[str, Any] | None = None
    p_adjusted: float | None = None
    significant: bool = False
    guardrail: dict[str, Any] | None = None

    @property
    def better(self) -> bool | None:
        """True when the change is in the good direction, False when bad, None when flat."""
        if self.diff is None or self.diff == 0:
            return None
        return (self.diff > 0) == self.higher_is_better

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["better"] = self.better
        return d


def _summary(c: Comparison) -> dict[str, Any]:
    return {"value_c": _f(c.value_c), "value_t": _f(c.value_t), "diff": _f(c.diff), "se": _f(c.se),
            "low": _f(c.low), "high": _f(c.high), "lift": _f(c.lift), "lift_low": _f(c.lift_low),
            "lift_high": _f(c.lift_high), "p": _f(c.p), "df": _f(c.df)}


@dataclass
class AnalysisResult:
    """Everything the analysis found; `to_dict()` is the JSON report."""

    experiment: str
    variants: list[str]
    control: str
    counts: dict[str, int]
    srm: dict[str, Any]
    metrics: list[MetricResult]
    segments: dict[str, list[dict[str, Any]]]
    decisions: list[dict[str, Any]]
    looks: list[float]
    data: dict[str, Any]
    warnings: list[str]
    settings: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str, treatment: str | None = None) -> MetricResult:
        for m in self.metrics:
            if m.metric == name and (treatment is None or m.treatment == treatment):
                return m
        raise KeyError(f"no result for metric {name!r}")

    def decision(self, treatment: str | None = None) -> dict[str, Any]:
        """The decision for a treatment (the first one by default)."""
        for d in self.decisions:
            if treatment is None or d["treatment"] == treatment:
                return d
        raise KeyError(f"no decision for {treatment!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "variants": self.variants, "control": self.control,
                "counts": self.counts, "srm": self.srm, "decisions": self.decisions,
                "metrics": [m.to_dict() for m in self.metrics], "segments": self.segments,
                "looks": self.looks, "data": self.data, "warnings": self.warnings, "settings": self.settings}


# ================================================================================================
# the analysis
# ================================================================================================


def analyze(data: UnitData, experiment: ExperimentConfig | None = None, *, seed: int = 0) -> AnalysisResult:
    """Analyse one experiment's units (see the module docstring)."""
    exp = experiment or data.experiment
    variants = exp.variant_names
    ci = variants.index(exp.control_name)
    present = data.present()
    counts = {v: int((present & (data.variant == i)).sum()) for i, v in enumerate(variants)}
    srm = srm_test([counts[v] for v in variants], [v.share for v in exp.variants], threshold=exp.srm_alpha)
    agg = data.aggregates()
    roles = exp.roles()
    specs = {name: exp.metric(name) for name in roles}
    t0, t1 = data.time_range
    looks = [float(t0 + (t1 - t0) * (k + 1) / exp.looks) for k in range(exp.looks)] if t1 > t0 else [t1]
    look_aggs = [data.aggregates(cutoff=t) for t in looks[:-1]] + [agg]
    look_present = [data.present(cutoff=t) for t in looks[:-1]] + [present]

    results: list[MetricResult] = []
    segments: dict[str, list[dict[str, Any]]] = {}
    cat_aggs: dict[int, dict[str, np.ndarray]] | None = None
    for ti, tname in enumerate(variants):
        if ti == ci:
            continue
        mask_t = present & (data.variant == ti)
        mask_c = present & (data.variant == ci)
        for name, role in roles.items():
            results.append(_metric(data, exp, specs[name], role, tname, variants[ci], agg, mask_t, mask_c,
                                   look_aggs, look_present, looks, ti, ci))
        if exp.bootstrap and mask_t.sum() > 1 and mask_c.sum() > 1:
            _bootstrap(results, tname, specs, agg, mask_t, mask_c, exp, seed)
        if "category" in exp.segments and data.categories and cat_aggs is None:
            cat_aggs = {k: data.aggregates(category=k) for k in range(len(data.categories))}
        segs: list[dict[str, Any]] = []
        for name, role in roles.items():
            if role in ("primary", "guardrail"):
                segs.extend(_segments(data, exp, specs[name], agg, cat_aggs or {}, mask_t, mask_c))
        segments[tname] = segs

    _adjust(results, exp)
    for r in results:
        _guardrail(r, exp)
    t_first, t_last = data.time_range
    info = {"units": int(data.n), "units_analysed": int(present.sum()), "units_mixed": data.mixed,
            "events": data.events_total, "events_unmatched": data.events_unmatched,
            "events_before_exposure": data.events_before_exposure, "start": t_first, "end": t_last,
            "days": (t_last - t_first) / 86400.0, "categories": data.categories,
            "pre_period": data.pre is not None, "user_types": data.returning is not None}
    decisions = [_decide(exp, t, [r for r in results if r.treatment == t], srm, segments.get(t, []), info, data)
                 for t in variants if t != variants[ci]]
    warnings = list(data.warnings)
    if data.events_unmatched:
        warnings.append(f"{data.events_unmatched} of {data.events_total} events belong to no exposed unit of this "
                        "experiment and were ignored")
    if data.events_before_exposure:
        warnings.append(f"{data.events_before_exposure} events happened before their unit's first exposure and were "
                        "ignored (they cannot be effects of the treatment)")
    settings = {"alpha": exp.alpha, "correction": exp.correction, "decision_basis": exp.decision_basis,
                "srm_alpha": exp.srm_alpha, "sequential_tau": exp.sequential_tau, "bootstrap": exp.bootstrap,
                "primary": exp.primary, "secondary": exp.secondary,
                "guardrails": [g.to_dict() for g in exp.guardrails], "shares": {v.name: v.share for v in exp.variants}}
    return AnalysisResult(exp.name, variants, variants[ci], counts, srm, results, segments, decisions, looks, info,
                          warnings, settings)


def _xy(agg: dict[str, np.ndarray], spec: MetricSpec) -> tuple[np.ndarray, np.ndarray | None]:
    return agg[spec.numerator], None if not spec.is_ratio else agg[spec.denominator]


def _metric(data: UnitData, exp: ExperimentConfig, spec: MetricSpec, role: str, tname: str, cname: str,
            agg: dict[str, np.ndarray], mask_t: np.ndarray, mask_c: np.ndarray, look_aggs: list, look_present: list,
            looks: list[float], ti: int, ci: int) -> MetricResult:
    y, x = _xy(agg, spec)
    plain = compare_arrays(y, x, mask_t, mask_c, alpha=exp.alpha)
    z = data.covariate(spec.numerator, spec.denominator)
    cuped = compare_arrays(y, x, mask_t, mask_c, z=z, alpha=exp.alpha) if z is not None else None
    head = cuped if cuped is not None else plain
    cuped_d = None
    if cuped is not None:
        cuped_d = _summary(cuped)
        with np.errstate(invalid="ignore", divide="ignore"):
            cuped_d["variance_reduction"] = _f(1.0 - (cuped.se / plain.se) ** 2)
            cuped_d["ci_width_ratio"] = _f((cuped.lift_high - cuped.lift_low) / (plain.lift_high - plain.lift_low))
    seq = _sequential(data, exp, spec, look_aggs, look_present, looks, ti, ci, head, z is not None)
    return MetricResult(spec.name, spec.title, role, tname, cname, spec.higher_is_better, _f(head.value_c),
                        _f(head.value_t), _f(head.diff), _f(head.lift), _f(head.lift_low), _f(head.lift_high),
                        _f(head.p), int(head.n_t), int(head.n_c), _f(head.s2_t), _f(head.s2_c),
                        "cuped" if cuped is not None else "plain", _summary(plain), cuped_d, None, seq)


def _sequential(data: UnitData, exp: ExperimentConfig, spec: MetricSpec, look_aggs: list, look_present: list,
                looks: list[float], ti: int, ci: int, head: Comparison, use_z: bool) -> dict[str, Any]:
    diffs, variances, rows = [], [], []
    z = data.covariate(spec.numerator, spec.denominator) if use_z else None
    for t, agg, present in zip(looks, look_aggs, look_present):
        mt = present & (data.variant == ti)
        mc = present & (data.variant == ci)
        y, x = _xy(agg, spec)
        c = compare_arrays(y, x, mt, mc, z=z, alpha=exp.alpha) if mt.sum() > 1 and mc.sum() > 1 else None
        diffs.append(np.nan if c is None else float(c.diff))
        variances.append(np.nan if c is None else float(c.var_t + c.var_c))
        rows.append({"at": t, "n_t": int(mt.sum()), "n_c": int(mc.sum()),
                     "lift": None if c is None else _f(c.lift), "p": None if c is None else _f(c.p),
                     "value_c": None if c is None else _f(c.value_c)})
    d = np.asarray(diffs)
    v = np.asarray(variances)
    tau2 = (exp.sequential_tau * abs(float(head.value_c))) ** 2 if np.isfinite(head.value_c) else np.nan
    ok = np.isfinite(d) & np.isfinite(v) & (v > 0)
    p_av = np.ones(len(d))
    if ok.any() and tau2 > 0:
        p_av = always_valid_p(np.where(ok, d, 0.0), np.where(ok, v, 1.0), tau2)
    radius = cs_radius(np.where(ok, v, np.nan), tau2, exp.alpha) if tau2 > 0 else np.full(len(d), np.nan)
    # Per-unit metrics accumulate over time, so the estimand of an early look is not the final one:
    # each look gets its own confidence sequence interval (no running intersection). The running
    # minimum of the p-value is valid under the null of no effect at any time.
    for k, row in enumerate(rows):
        vc = row["value_c"]
        row["p_always_valid"] = _f(p_av[k])
        if vc and ok[k] and np.isfinite(radius[k]):
            row["cs_low"], row["cs_high"] = _f((d[k] - radius[k]) / abs(vc)), _f((d[k] + radius[k]) / abs(vc))
        else:
            row["cs_low"] = row["cs_high"] = None
    last = rows[-1] if rows else {}
    return {"p_always_valid": _f(p_av[-1]) if len(p_av) else None, "lift_low": last.get("cs_low"),
            "lift_high": last.get("cs_high"), "tau": _f(np.sqrt(tau2)) if tau2 == tau2 else None, "looks": rows}


def _bootstrap(results: list[MetricResult], tname: str, specs: dict[str, MetricSpec], agg: dict[str, np.ndarray],
               mask_t: np.ndarray, mask_c: np.ndarray, exp: ExperimentConfig, seed: int) -> None:
    names = sorted({a for s in specs.values() for a in (s.numerator, s.denominator) if a != "units"})
    col = {a: j for j, a in enumerate(names)}
    cols = np.column_stack([agg[a] for a in names])
    pairs = [(col[s.numerator], col[s.denominator] if s.is_ratio else None) for s in specs.values()]
    cis = bootstrap_lift_ci(cols[mask_t], cols[mask_c], pairs, replicates=exp.bootstrap, alpha=exp.alpha, seed=seed)
    by_name = dict(zip(specs, cis))
    for r in results:
        if r.treatment == tname:
            lo, hi = by_name[r.metric]
            r.bootstrap = [_f(lo), _f(hi)]


def _adjust(results: list[MetricResult], exp: ExperimentConfig) -> None:
    """Multiplicity adjustment over the primary family (every primary metric of every treatment)."""
    prim = [r for r in results if r.role == "primary"]
    adj = adjust_pvalues([np.nan if r.p is None else r.p for r in prim], exp.correction)
    seq = adjust_pvalues([np.nan if r.sequential is None or r.sequential["p_always_valid"] is None
                          else r.sequential["p_always_valid"] for r in prim], exp.correction)
    for r, a, s in zip(prim, adj, seq):
        r.p_adjusted = _f(a)
        if r.sequential is not None:
            r.sequential["p_always_valid_adjusted"] = _f(s)
    for r in results:
        p = r.p_adjusted if r.role == "primary" else r.p
        if exp.decision_basis == "sequential" and r.sequential is not None:
            p = r.sequential.get("p_always_valid_adjusted") if r.role == "primary" else r.sequential["p_always_valid"]
        r.significant = p is not None and p < exp.alpha


def _interval(r: MetricResult, exp: ExperimentConfig) -> tuple[float | None, float | None]:
    if exp.decision_basis == "sequential" and r.sequential is not None:
        return r.sequential["lift_low"], r.sequential["lift_high"]
    return r.lift_low, r.lift_high


def _guardrail(r: MetricResult, exp: ExperimentConfig) -> None:
    """fail: the whole CI of the lift is worse than −max_drop; warn: the estimate is; pass otherwise."""
    for g in exp.guardrails:
        if g.metric != r.metric:
            continue
        lo, hi = _interval(r, exp)
        tol = g.max_drop
        if lo is None or hi is None or r.lift is None:
            status = "unknown"
        elif r.higher_is_better:
            status = "fail" if hi < -tol else "warn" if r.lift < -tol else "pass"
        else:
            status = "fail" if lo > tol else "warn" if r.lift > tol else "pass"
        r.guardrail = {"max_drop": tol, "status": status}


# ================================================================================================
# segments
# ================================================================================================


def _segments(data: UnitData, exp: ExperimentConfig, spec: MetricSpec, agg: dict[str, np.ndarray],
              cat_aggs: dict[int, dict[str, np.ndarray]], mask_t: np.ndarray, mask_c: np.ndarray
              ) -> list[dict[str, Any]]:
    """Per segment: the metric inside it (lift, CI, p) and, where the metric decomposes, its
    contribution to the total difference (numerator restricted to the segment over the arm's whole
    denominator) as a share of the change, against its share of the control's value."""
    y, x = _xy(agg, spec)
    xt = (x[mask_t].sum() if x is not None else mask_t.sum())
    xc = (x[mask_c].sum() if x is not None else mask_c.sum())
    total_t, total_c = y[mask_t].sum() / xt if xt else np.nan, y[mask_c].sum() / xc if xc else np.nan
    total_diff = total_t - total_c
    out = []

    def add(dim: str, seg: str, ys: np.ndarray, xs: np.ndarray | None, st: np.ndarray, sc: np.ndarray,
            decomposes: bool) -> None:
        if st.sum() < 2 or sc.sum() < 2:
            return
        c = compare_arrays(ys, xs, st, sc, alpha=exp.alpha)
        row = {"dimension": dim, "segment": seg, "metric": spec.name, "n_t": int(st.sum()), "n_c": int(sc.sum()),
               "value_c": _f(c.value_c), "value_t": _f(c.value_t), "lift": _f(c.lift), "lift_se": _f(c.lift_se),
               "lift_low": _f(c.lift_low), "lift_high": _f(c.lift_high), "p": _f(c.p), "contribution": None,
               "share_of_change": None,
               "baseline_share": None, "excess_share": None}
        if decomposes and xt and xc:
            # the segment's part of the metric in each arm, over the arm's whole denominator
            part_t = ys[st].sum() / xt
            part_c = ys[sc].sum() / xc
            contribution = part_t - part_c
            row["contribution"] = _f(contribution)
            if total_diff and np.isfinite(total_diff) and total_c:
                row["share_of_change"] = _f(contribution / total_diff)
                row["baseline_share"] = _f(part_c / total_c)
                row["excess_share"] = _f(contribution / total_diff - part_c / total_c)
        out.append(row)

    if "user_type" in exp.segments and data.returning is not None:
        ret = data.returning
        for seg, sel in (("new", ~ret), ("returning", ret)):
            add("user_type", seg, y, x, mask_t & sel, mask_c & sel, True)
    if "category" in exp.segments:
        for k, name in enumerate(data.categories):
            ca = cat_aggs[k]
            ys = ca[spec.numerator]
            xs = None if not spec.is_ratio else ca[spec.denominator]
            add("category", name, ys, xs, mask_t, mask_c, data.additive(spec.numerator))
    return out


def heterogeneity(segments: list[dict[str, Any]], metric: str) -> dict[str, dict[str, float]]:
    """Per dimension, Cochran's Q test that the metric's lift differs between its segments
    (Q = Σ w (lift − pooled)², w = 1/SE², χ² with k − 1 df): {dimension: {"q", "df", "p"}}.
    Segments of one dimension share units (a user buys in several categories), which makes the test
    conservative, not liberal."""
    out = {}
    dims: dict[str, list[dict[str, Any]]] = {}
    for row in segments:
        if row["metric"] == metric and row["lift"] is not None and row.get("lift_se"):
            dims.setdefault(row["dimension"], []).append(row)
    for dim, rows in dims.items():
        if len(rows) < 2:
            continue
        lift = np.asarray([r["lift"] for r in rows])
        w = 1.0 / np.asarray([r["lift_se"] for r in rows]) ** 2
        pooled = (w * lift).sum() / w.sum()
        q = float((w * (lift - pooled) ** 2).sum())
        out[dim] = {"q": q, "df": len(rows) - 1, "p": float(sps.chi2.sf(q, len(rows) - 1))}
    return out


def driver(segments: list[dict[str, Any]], metric: str, *, higher_is_better: bool = True,
           alpha: float = 0.05) -> dict[str, Any] | None:
    """The segment a change of `metric` comes from: in the dimension whose segments differ most
    significantly (Cochran's Q, p < alpha), the segment with the worst lift; None when the change
    is spread evenly (no dimension is heterogeneous)."""
    het = heterogeneity(segments, metric)
    sig = {d: h for d, h in het.items() if h["p"] < alpha}
    if not sig:
        return None
    dim = min(sig, key=lambda d: sig[d]["p"])
    rows = [r for r in segments if r["metric"] == metric and r["dimension"] == dim and r["lift"] is not None]
    worst = min(rows, key=lambda r: r["lift"]) if higher_is_better else max(rows, key=lambda r: r["lift"])
    return {**worst, "heterogeneity_p": sig[dim]["p"], "heterogeneity_q": sig[dim]["q"]}


# ================================================================================================
# the decision
# ================================================================================================


def _pct(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v * 100:+.{digits}f}%"


def _ci(lo: float | None, hi: float | None) -> str:
    return "[n/a]" if lo is None or hi is None else f"[{lo * 100:+.1f}%, {hi * 100:+.1f}%]"


def segment_phrase(seg: dict[str, Any]) -> str:
    return f"{DIMENSION_LABELS.get(seg['dimension'], seg['dimension'])} = {seg['segment']}"


def _decide(exp: ExperimentConfig, treatment: str, results: list[MetricResult], srm: dict[str, Any],
            segments: list[dict[str, Any]], info: dict[str, Any], data: UnitData) -> dict[str, Any]:
    reasons: list[str] = []
    prim = [r for r in results if r.role == "primary"]
    failing = [r for r in results if r.guardrail and r.guardrail["status"] == "fail"]
    warned = [r for r in results if r.guardrail and r.guardrail["status"] == "warn"]
    better = [r for r in prim if r.significant and r.better]
    worse = [r for r in prim if r.significant and r.better is False]
    corr = {"holm": "Holm-adjusted", "bh": "BH-adjusted", "none": "unadjusted"}[exp.correction]
    basis = "always-valid " if exp.decision_basis == "sequential" else ""

    def p_of(r: MetricResult) -> float | None:
        if exp.decision_basis == "sequential" and r.sequential:
            return r.sequential.get("p_always_valid_adjusted") or r.sequential["p_always_valid"]
        return r.p_adjusted if r.p_adjusted is not None else r.p

    if srm["flagged"]:
        verdict = INVESTIGATE
        reasons.append(f"sample ratio mismatch: units per variant {srm['observed']} against expected "
                       f"{[round(e) for e in srm['expected']]} (χ² = {srm['chi2']:.1f}, p = {srm['p']:.2g} < "
                       f"{srm['threshold']}): the split is broken, so no metric can be trusted")
    elif failing or worse:
        verdict = DONT_SHIP
    elif better:
        verdict = SHIP
    else:
        verdict = INVESTIGATE
    for r in failing:
        lo, hi = _interval(r, exp)
        tol = r.guardrail["max_drop"]
        allowed = f"a drop of at most {tol:.1%} is allowed" if tol else "no drop is allowed"
        reasons.append(f"guardrail {r.label} fails: {_pct(r.lift)} {_ci(lo, hi)}, significantly worse "
                       f"(p = {r.p:.2g}); {allowed}")
    for r in worse:
        reasons.append(f"primary metric {r.label} is worse: {_pct(r.lift)} {_ci(*_interval(r, exp))}, "
                       f"{corr} {basis}p = {p_of(r):.2g}")
    for r in better:
        reasons.append(f"primary metric {r.label} improves: {_pct(r.lift)} {_ci(*_interval(r, exp))}, "
                       f"{corr} {basis}p = {p_of(r):.2g}")
    if not better and not worse:
        reasons.append("no primary metric changed significantly (" + ", ".join(
            f"{r.label} {_pct(r.lift)} {_ci(*_interval(r, exp))}" for r in prim) + ")")
    for r in warned:
        reasons.append(f"guardrail {r.label} is down {_pct(r.lift)} {_ci(*_interval(r, exp))} but not significantly")

    # where the loss comes from
    drivers = []
    for r in [*failing, *worse]:
        d = driver(segments, r.metric, higher_is_better=r.higher_is_better, alpha=exp.alpha)
        if d is not None:
            drivers.append({"metric": r.metric, "label": r.label, **d})
        else:
            het = heterogeneity(segments, r.metric)
            if het:
                spread = ", ".join(f"{DIMENSION_LABELS.get(k, k)} p = {v['p']:.2g}" for k, v in het.items())
                reasons.append(f"no segment stands out for {r.label}: the change is spread across segments "
                               f"(heterogeneity {spread})")
    for d in drivers:
        text = (f"{d['label']} loss comes from {segment_phrase(d)}: {d['label']} there {_pct(d['lift'])} "
                f"{_ci(d['lift_low'], d['lift_high'])}")
        if d.get("share_of_change") is not None:
            text += (f"; it accounts for {d['share_of_change']:.0%} of the change while carrying "
                     f"{d['baseline_share']:.0%} of the control's {d['label']}")
        others = [s for s in segments if s["metric"] == d["metric"] and s["dimension"] == d["dimension"]
                  and s["segment"] != d["segment"]]
        if others:
            text += "; elsewhere: " + ", ".join(f"{s['segment']} {_pct(s['lift'])}" + ("" if (s["p"] or 1) < exp.alpha
                                                                                        else " (n.s.)")
                                                for s in others)
        text += f" (segments differ: heterogeneity p = {d['heterogeneity_p']:.2g})"
        d["text"] = text
    next_test = _next_test(exp, treatment, verdict, results, failing, worse, better, drivers, srm, info)
    return {"treatment": treatment, "control": exp.control_name, "verdict": verdict, "reasons": reasons,
            "failing_guardrails": [r.metric for r in failing], "primary_better": [r.metric for r in better],
            "primary_worse": [r.metric for r in worse], "drivers": drivers, "next_test": next_test}


def _next_test(exp: ExperimentConfig, treatment: str, verdict: str, results: list[MetricResult],
               failing: list[MetricResult], worse: list[MetricResult], better: list[MetricResult],
               drivers: list[dict[str, Any]], srm: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    control = exp.control_name
    prim = next(r for r in results if r.role == "primary")
    n_now = prim.n_t + prim.n_c
    per_day = n_now / info["days"] if info.get("days") else None

    def size(r: MetricResult, delta: float | None) -> tuple[int, float | None]:
        if delta is None or r.s2_t is None or r.s2_c is None:
            return 0, None
        n = sample_size(delta, r.s2_t, r.s2_c, exp.alpha, exp.power)
        days = (2 * n / per_day) if per_day else None
        return n, days

    def when(n: int, days: float | None) -> str:
        return f"about {n:,} units per variant" + (f" (~{days:.0f} days at the current traffic)" if days else "")

    mde_delta = exp.mde * abs(prim.value_c) if prim.value_c else None
    if srm["flagged"]:
        text = (f"Do not test anything new yet: find why '{treatment}' and '{control}' got a different share of "
                "units than configured (assignment salt or config changed, redirects or crashes in one arm, bot "
                "filtering, exposure logging of one variant), fix it, and run an A/A test to confirm the split "
                "before rerunning this test.")
        return {"text": text, "kind": "fix_srm"}
    if failing or worse:
        bad = (failing or worse)[0]
        d = next((x for x in drivers if x["metric"] == bad.metric), None)
        gain = [r for r in better if r.metric != bad.metric]
        target = gain[0] if gain else prim
        delta = target.diff if gain else mde_delta
        n, days = size(target, abs(delta) if delta else None)
        what = f"the observed {target.label} lift of {_pct(target.lift)}" if gain else \
            f"a {exp.mde:.0%} change of {target.label}"
        guard = ", ".join(sorted({g.metric for g in exp.guardrails}))
        if d is not None:
            text = (f"Test '{treatment}' everywhere except {segment_phrase(d)} (which keeps the '{control}' "
                    f"experience, or gets a re-rank that protects {bad.label}) against '{control}': primary "
                    f"{target.label}, guardrails {guard}, with {segment_phrase(d)} reported on its own. That keeps "
                    f"the gain where it does no harm and checks that the {bad.label} loss was confined there. "
                    f"{when(n, days).capitalize()} detect {what} at {exp.power:.0%} power.")
            return {"text": text, "kind": "exclude_segment", "segment": {"dimension": d["dimension"],
                                                                          "value": d["segment"]},
                    "primary": target.metric, "units_per_variant": n, "days": _f(days)}
        text = (f"Test a version of '{treatment}' that protects {bad.label} (e.g. a price- or basket-aware re-rank "
                f"on top of it) against '{control}': primary {target.label}, guardrails {guard}. "
                f"{when(n, days).capitalize()} detect {what} at {exp.power:.0%} power.")
        return {"text": text, "kind": "protect_metric", "primary": target.metric, "units_per_variant": n,
                "days": _f(days)}
    if better:
        b = better[0]
        n, days = size(b, mde_delta)
        text = (f"Ramp '{treatment}' to 100% keeping a 5% holdout on '{control}' for a few weeks to confirm that "
                f"{b.label} {_pct(b.lift)} holds and the guardrails stay flat; then test the next idea against the "
                f"new baseline ({when(n, days)} detect a {exp.mde:.0%} change of {prim.label}).")
        return {"text": text, "kind": "ramp_with_holdout", "units_per_variant": n, "days": _f(days)}
    n, days = size(prim, mde_delta)
    more = max(n - min(prim.n_t, prim.n_c), 0)
    text = (f"Inconclusive at {min(prim.n_t, prim.n_c):,} units per variant: keep '{treatment}' running to "
            f"{when(n, days)} to detect a {exp.mde:.0%} change of {prim.label} at {exp.power:.0%} power "
            f"({more:,} more per variant), or test a bolder change.")
    return {"text": text, "kind": "extend", "units_per_variant": n, "days": _f(days)}


# ================================================================================================
# from files
# ================================================================================================


def analyze_logs(exposures: str | Path, events: str | Path, *, pre: str | Path | None = None,
                 config: ExperimentsConfig | str | Path | None = None, experiment: str | None = None,
                 catalog: str | Path | None = None, seed: int = 0) -> AnalysisResult:
    """Read the logs and analyse one experiment.

    Without a config the experiment is the only one in the exposure log, its variants are the ones
    logged (the first in sorted order, or "control" when present, is the control; equal shares are
    expected unless the exposures record a ``share``), with the default metrics and guardrails.
    """
    exp_log = load_exposures(exposures)
    ev = load_events(events)
    if isinstance(config, (str, Path)):
        config = ExperimentsConfig.load(config)
    if config is None:
        config = infer_config(exp_log.frame, experiment)
    exp = config.experiment(experiment if experiment is not None else
                            (None if len(config.experiments) == 1 else _only(exp_log.experiments())))
    cats = load_categories(catalog) if catalog else (load_categories(config.catalog) if config.catalog else None)
    pre_frame = load_pre(pre) if pre is not None else None
    data = UnitData(exp_log, ev, exp, categories=cats, pre=pre_frame)
    return analyze(data, exp, seed=seed)


def _only(names: list[str]) -> str | None:
    return names[0] if len(names) == 1 else None


def infer_config(frame: pd.DataFrame, experiment: str | None = None) -> ExperimentsConfig:
    """A config for the experiment in an exposure log when none is given (see `analyze_logs`)."""
    from tastemaker.errors import ConfigError

    names = sorted(frame["experiment"].dropna().unique().tolist())
    name = experiment or (names[0] if len(names) == 1 else None)
    if name is None:
        raise ConfigError(f"the exposure log holds several experiments ({', '.join(names)}): name one or pass "
                          "the experiments config")
    sub = frame[frame["experiment"] == name]
    variants = sorted(sub["variant"].astype(str).unique().tolist())
    if len(variants) < 2:
        raise ConfigError(f"experiment {name!r} has only variant(s) {variants} in the log: nothing to compare")
    if "control" in variants:
        variants.remove("control")
        variants.insert(0, "control")
    shares = None
    if "share" in sub.columns and sub["share"].notna().all():
        s = sub.groupby("variant")["share"].first()
        shares = [float(s[v]) for v in variants]
        if abs(sum(shares) - 1.0) > 1e-6:
            shares = None
    return ExperimentsConfig.single(variants, shares, name=name)
