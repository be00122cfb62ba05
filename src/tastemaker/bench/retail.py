"""`retail-rank`: the full ranking stage against single-signal baselines on UCI Online Retail.

    run_retail_bench(data_dir=None) -> dict   # the bench JSON document (suite "retail-rank")

Protocol ``retail-temporal`` (`tastemaker.evaluation.retail`): test window = the last 30 days
(from 2011-11-10), training = before; validation = the same split inside training (window from
2011-10-11). Candidates are the products seen in training, already-bought ones included.

Rows (each tuned on validation only, then refit on the whole training half and scored once):

- every retrieval source alone (the settings the union uses, chosen on validation by recall@100):
  ``repurchase``, ``copurchase``, ``trending``, ``content``, ``ann`` (ALS vectors);
- ``als`` (our implicit ALS, already-bought items ranked too), ``ease``;
- ``popularity`` (all time) and ``popularity-30d`` (distinct buyers in the last 30 days);
- ``buy-again``: the user's past products by recency-decayed purchase counts (half-life and
  counting unit tuned), ties broken by recent popularity;
- ``buy-again+als``: the per-user max-normalised buy-again score plus β × the max-normalised
  ALS score (β tuned);
- ``ranker``: union retrieval (500 candidates) → features (`tastemaker.ranking.features`) →
  LightGBM LambdaMART (`tastemaker.ranking.ranker`) ranking by P(purchase);
  ``ranker+ev``: the same with expected-value weighting (score = log P + w · log price, w chosen on
  validation).

The ranker learns from logged data of the windows before the test window: candidates and
features taken at the cut of a window, labels = bought in the window. A probe ranker trains on the
`RANKER_WINDOWS` windows before validation with early stopping on the validation window's NDCG@10
(`RANKER_SETTINGS` and `RANKER_WINDOWS` were chosen that way, on validation only); the final ranker
trains on those windows plus the validation window with the number of trees the probe found.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tastemaker.bench.suites import machine_info
from tastemaker.data.retail import RETAIL_FOLDER, RetailSplit, load_online_retail, retail_temporal_split
from tastemaker.errors import ConfigError
from tastemaker.evaluation.retail import DESCRIPTION, HEADLINE, NAME, evaluate_retail, retail_metrics, top_items
from tastemaker.ranking.features import FeatureBuilder
from tastemaker.ranking.ranker import Ranker, RankingData, collect, expected_value_scores
from tastemaker.retrieval import (
    AnnSource,
    ContentSource,
    CoPurchase,
    ExactIndex,
    Histories,
    Repurchase,
    Trending,
    UnionRetriever,
)

SOURCES: tuple[str, ...] = ("repurchase", "copurchase", "ann", "content", "trending")
SOURCE_SETTINGS: dict[str, dict[str, Any]] = {
    "repurchase": {"half_life_days": 365.0, "interval_weight": 0.0},
    "copurchase": {"similarity": "cosine", "half_life_days": 60.0, "shrink": 5.0, "top_k": 200},
    "trending": {"half_life_days": 7.0, "weight": "users"},
    "content": {"half_life_days": 365.0},
    "ann": {"factors": 128, "regularization": 10.0, "alpha": 10.0, "weighting": "log", "iterations": 15},
}
"""Each source's settings, chosen on the validation split by recall@100 (/work/notes/e1/REPORT.md)."""
QUOTAS: dict[str, int] = {s: 0 for s in SOURCES}
"""Union of 500: round-robin by rank without quotas — the best of five mixes on validation recall@500."""
N_CANDIDATES = 500
RANKER_WINDOWS = 2
"""Logged 30-day windows before validation the probe ranker learns from (the final one adds the validation
window). Chosen on validation NDCG@10 (probe trained on the n windows before validation, early stopping
there): 1 window 0.3308, 2 windows 0.3390, 3 windows 0.3380, 5 windows 0.3389."""
RANKER_SETTINGS: dict[str, Any] = {"objective": "lambdarank", "learning_rate": 0.05, "num_leaves": 31,
                                   "min_child_samples": 50, "n_estimators": 600, "early_stopping_rounds": 50}
"""LightGBM settings, chosen on validation (see the module docstring). Around them, validation NDCG@10 (probe
on 2 windows, no calibration; these settings 0.3390) is flat: num_leaves 15 / 63: 0.3409 / 0.3379;
min_child_samples 20 / 200: 0.3404 / 0.3360; rank_xendcg 0.3340; truncation_level 40 / 10: 0.3402 / 0.3357;
colsample_bytree 0.5: 0.3359; reg_lambda 10: 0.3386; learning_rate 0.02 (403 trees): 0.3399 — within the noise."""
VALUE_WEIGHT: float | None = None
"""w of the ``ranker+ev`` row; None: chosen on validation by `choose_value_weight`."""
VALUE_KIND = "price"
W_GRID: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)

GRIDS: dict[str, list[dict[str, Any]]] = {
    "als": [{"factors": f, "regularization": r, "alpha": a, "weighting": "log", "iterations": 15}
            for f in (64, 128) for r in (1.0, 10.0) for a in (5.0, 20.0)],
    "ease": [{"l2": l2} for l2 in (25.0, 50.0, 100.0, 200.0, 400.0, 800.0)],
    "buy-again": [{"half_life_days": h, "unit": u} for u in ("line", "day")
                  for h in (15.0, 30.0, 60.0, 120.0, 240.0, 480.0, None)],
    "buy-again+als": [{"beta": b} for b in (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5)],
}
"""Validation grids of the baselines (NDCG@10 on the validation window picks)."""
QUICK_GRIDS: dict[str, list[dict[str, Any]]] = {
    "als": GRIDS["als"][:1], "ease": [{"l2": 200.0}],
    "buy-again": [{"half_life_days": 120.0, "unit": "day"}, {"half_life_days": None, "unit": "day"}],
    "buy-again+als": [{"beta": 0.2}, {"beta": 0.5}],
}


# ================================================================================================
# the retrieval and feature stack of one split
# ================================================================================================


@dataclass(eq=False)
class RetailStack:
    """Retrieval sources, their union, the feature builder and histories fitted on `split.train`,
    with the clock at the split's cut."""

    split: RetailSplit
    sources: dict[str, Any]
    retriever: UnionRetriever
    builder: FeatureBuilder
    histories: Histories
    als: Any
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def now(self) -> float:
        return float(self.split.cut)

    @property
    def allowed(self) -> np.ndarray:
        return self.split.candidate_items

    def ranking_data(self, users: np.ndarray | None = None, *, labels: bool = True) -> RankingData:
        """Logged ranking data of the split's evaluation users (labels: bought in the window)."""
        users = self.split.users if users is None else users
        return collect(self.retriever, self.builder, self.histories, users,
                       labels=self.split.relevant() if labels else None, now=self.now, allowed=self.allowed,
                       k=N_CANDIDATES, value=VALUE_KIND)


def category_codes(split: RetailSplit) -> tuple[np.ndarray, np.ndarray]:
    """(leaf, department) integer codes per item of the split's item space from the category proxy
    of its training half (-1 for items without training rows)."""
    x = split.train.interactions
    frame = split.train.item_features.frame.reindex(x.item_vocab.ids)
    paths = frame["category"].fillna("").to_numpy(dtype=str)
    known = paths != ""
    leaf = np.full(len(paths), -1, dtype=np.int32)
    dep = np.full(len(paths), -1, dtype=np.int32)
    if known.any():
        _, leaf_codes = np.unique(paths[known], return_inverse=True)
        leaf[known] = leaf_codes
        _, dep_codes = np.unique(np.asarray([p.split("/", 1)[0] for p in paths[known].tolist()]), return_inverse=True)
        dep[known] = dep_codes
    return leaf, dep


def fit_als(split: RetailSplit, params: dict[str, Any]) -> Any:
    from tastemaker.models import create_model

    p = dict(params)
    model = create_model("als", num_threads=2, **p)
    return model.fit(split.train.interactions)


def build_stack(split: RetailSplit, *, settings: dict[str, dict[str, Any]] | None = None, als: Any = None,
                ) -> RetailStack:
    """Fit every source and the feature builder on `split.train` (clock: the split's cut)."""
    settings = {**SOURCE_SETTINGS, **(settings or {})}
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    train = split.train
    x = train.interactions
    now = float(split.cut)

    def tick(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 2)

    s = time.perf_counter()
    rep = Repurchase.fit(x, now=now, **settings["repurchase"])
    tick("repurchase", s)
    s = time.perf_counter()
    cp = dict(settings["copurchase"])
    fitp = {k: cp.pop(k) for k in ("similarity", "shrink", "top_k", "basket_weight") if k in cp}
    cop = CoPurchase.fit(x, train.baskets(), now=now, **fitp, **cp)
    tick("copurchase", s)
    s = time.perf_counter()
    tre = Trending.fit(x, now=now, **settings["trending"])
    tick("trending", s)
    s = time.perf_counter()
    cat = train.catalog()
    con = ContentSource.from_texts(cat.texts(), cat, **settings["content"])
    tick("content", s)
    s = time.perf_counter()
    als = als if als is not None else fit_als(split, settings["ann"])
    ann = AnnSource(ExactIndex().build(als.item_factors), user_vectors=als.user_factors)
    tick("ann (als)", s)
    sources = {"repurchase": rep, "copurchase": cop, "ann": ann, "content": con, "trending": tre}
    for name, src in sources.items():
        src.name = name
    retriever = UnionRetriever([sources[n] for n in SOURCES], QUOTAS, k=N_CANDIDATES,
                               fetch={n: N_CANDIDATES for n in SOURCES})
    s = time.perf_counter()
    leaf, dep = category_codes(split)
    builder = FeatureBuilder.fit(x, price=cat.price, category=leaf, department=dep, revenue=train.revenue, now=now)
    tick("features", s)
    return RetailStack(split, sources, retriever, builder, Histories.from_interactions(x), als,
                       round(time.perf_counter() - t0, 2), timings)


# ================================================================================================
# baselines (score matrices over the evaluation users)
# ================================================================================================


def _recent_popularity(split: RetailSplit, days: float = 30.0) -> np.ndarray:
    x = split.train.interactions
    recent = x.timestamps >= split.cut - days * 86_400
    key = np.unique(x.user_idx[recent].astype(np.int64) * x.n_items + x.item_idx[recent])
    return np.bincount(key % x.n_items, minlength=x.n_items).astype(np.float64)


def buy_again_scores(split: RetailSplit, users: np.ndarray, *, half_life_days: float | None,
                     unit: str = "day") -> np.ndarray:
    """(len(users), n_items) recency-decayed purchase counts (per order line or per distinct day),
    plus a tie-break by distinct buyers of the last 30 days (< 1e-3 of one purchase)."""
    x = split.train.interactions
    age = (split.cut - x.timestamps) / 86_400.0
    w = np.exp2(-age / half_life_days) if half_life_days else np.ones(len(x))
    rows = np.arange(len(x))
    if unit == "day":
        key = (x.user_idx.astype(np.int64) * x.n_items + x.item_idx) * 100_000 + x.timestamps // 86_400
        _, rows = np.unique(key, return_index=True)
    elif unit != "line":
        raise ConfigError(f"buy-again unit {unit!r}: use 'line' or 'day'")
    m = sp.csr_matrix((w[rows], (x.user_idx[rows], x.item_idx[rows])), shape=x.shape)
    m.sum_duplicates()
    pop = _recent_popularity(split)
    pop = pop / max(pop.max(), 1.0)
    s = m[users].toarray()
    return s * (1.0 + 1e-9 * pop) + 1e-30 * pop  # ties (same days, same counts) go to the recently popular


def _max_norm(s: np.ndarray) -> np.ndarray:
    top = np.max(np.where(np.isfinite(s), s, -np.inf), axis=1, keepdims=True)
    return s / np.where(top > 0, top, 1.0)


def model_scores(model: Any, users: np.ndarray) -> np.ndarray:
    """A fitted Recommender's scores of every item for `users` (already-bought items not excluded)."""
    return model.score_matrix(users)


def source_recommend(stack: RetailStack, name: str, k: int = 20) -> np.ndarray:
    """Top k of one retrieval source alone for the split's users (-1 padded when it has fewer)."""
    src = stack.sources[name]
    users = stack.split.users
    out = np.full((len(users), k), -1, dtype=np.int64)
    for j, u in enumerate(users):
        got = src.retrieve(stack.histories.query(int(u), now=stack.now, allowed=stack.allowed), k)
        out[j, :len(got)] = got.items[:k]
    return out


def baseline_scores(name: str, split: RetailSplit, params: dict[str, Any], users: np.ndarray,
                    cache: dict[str, Any]) -> np.ndarray:
    """Score matrix of baseline `name` with `params` on `split` (fits cached in `cache`)."""
    if name == "als":
        key = ("als", id(split), tuple(sorted(params.items())))
        if key not in cache:
            cache[key] = fit_als(split, params)
        return model_scores(cache[key], users)
    if name == "ease":
        from tastemaker.models import create_model

        model = create_model("ease", **params).fit(split.train.interactions)
        return model_scores(model, users)
    if name == "buy-again":
        return buy_again_scores(split, users, **params)
    if name == "buy-again+als":
        ba = _max_norm(buy_again_scores(split, users, **params["buy_again"]))
        als = baseline_scores("als", split, params["als"], users, cache)
        return ba + params["beta"] * _max_norm(np.where(np.isfinite(als), als, 0.0))
    if name == "popularity":
        x = split.train.interactions
        key = np.unique(x.user_idx.astype(np.int64) * x.n_items + x.item_idx)
        pop = np.bincount(key % x.n_items, minlength=x.n_items).astype(np.float64)
        return np.broadcast_to(pop, (len(users), len(pop)))
    if name == "popularity-30d":
        pop = _recent_popularity(split) + 1e-6 * _recent_popularity(split, 10_000.0)
        return np.broadcast_to(pop, (len(users), len(pop)))
    raise ConfigError(f"unknown baseline {name!r}")


def tune_baseline(name: str, val: RetailSplit, grid: list[dict[str, Any]], cache: dict[str, Any],
                  extra: dict[str, Any] | None = None, say: Callable[[str], None] = lambda s: None,
                  ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The grid point with the best validation NDCG@10 (and every point's score)."""
    tried = []
    best, best_score = None, -1.0
    for params in grid:
        p = {**params, **(extra or {})}
        rec = top_items(baseline_scores(name, val, p, val.users, cache), allowed=val.candidate_items)
        score = retail_metrics(rec, val)["ndcg@10"]
        tried.append({"params": params, "ndcg@10": round(score, 5)})
        say(f"  validation {name} {params}: ndcg@10 {score:.4f}")
        if score > best_score:
            best, best_score = p, score
    return best or {}, tried


# ================================================================================================
# the ranker
# ================================================================================================


def ranker_recommend(stack: RetailStack, ranker: Ranker, data: RankingData, *, w: float = 0.0,
                     k: int = 20) -> np.ndarray:
    """Top k per evaluation user from logged `data` of `stack`'s split (rows grouped per user, in
    ``data.user`` order) scored by `ranker` with value weight `w`."""
    users = stack.split.users
    pos = {int(u): j for j, u in enumerate(users)}
    out = np.full((len(users), k), -1, dtype=np.int64)
    scores = ranker.score(data.x, names=data.names)
    off = data.offsets
    for g, u in enumerate(data.user):
        sl = slice(off[g], off[g + 1])
        s = expected_value_scores(scores[sl], ranker.calibration, None if data.value is None else data.value[sl], w)
        top = np.argsort(-s, kind="stable")[:k]
        out[pos[int(u)], :len(top)] = data.item[sl][top]
    return out


def choose_value_weight(stack: RetailStack, ranker: Ranker, data: RankingData, *, tolerance: float = 0.01,
                        grid: tuple[float, ...] = W_GRID) -> tuple[float, list[dict[str, float]]]:
    """The w with the highest validation revenue-weighted recall@20 among those whose NDCG@10 stays
    within `tolerance` (relative) of w = 0; returns it and the sweep."""
    sweep = []
    for w in grid:
        m = retail_metrics(ranker_recommend(stack, ranker, data, w=w), stack.split)
        sweep.append({"w": w, **{k: round(v, 5) for k, v in m.items()}})
    base = sweep[0]["ndcg@10"]
    ok = [r for r in sweep if r["ndcg@10"] >= (1 - tolerance) * base]
    best = max(ok, key=lambda r: (r["revenue_recall@20"], -r["w"]))
    return float(best["w"]), sweep


# ================================================================================================
# the benchmark
# ================================================================================================


def _row(model: str, params: dict[str, Any], result: dict[str, Any], fit_seconds: float,
         extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"protocol": NAME, "system": "tastemaker", "model": model, "params": params,
            "metrics": {k: round(float(v), 5) for k, v in result["metrics"].items()},
            "ci95": {k: [round(a, 5), round(b, 5)] for k, (a, b) in result.get("ci95", {}).items()},
            "fit_seconds": round(fit_seconds, 2), "predict_seconds": round(result.get("predict_seconds", 0.0), 2),
            **(extra or {})}


def run_retail_bench(data_dir: str | Path | None = None, *, quick: bool = False, bootstrap: int = 1000,
                     value_weight: float | None = VALUE_WEIGHT, ranker_settings: dict[str, Any] | None = None,
                     log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``retail-rank`` and return the bench JSON document (see the module docstring).

    `data_dir`: the ``online-retail`` folder, or the data folder holding it (default
    ``$TASTEMAKER_DATA_DIR/online-retail``). `quick` uses one-point grids and a small ranker (for
    tests; its numbers are not the bench's). `value_weight` fixes w of the ``ranker+ev`` row
    (default: chosen on validation)."""
    say = log or (lambda s: None)
    t_start = time.perf_counter()
    path = None
    if data_dir is not None:
        path = Path(data_dir)
        if (path / RETAIL_FOLDER).is_dir():
            path = path / RETAIL_FOLDER
    data = load_online_retail(path)
    split = retail_temporal_split(data)
    val = split.validation()
    windows = [val.validation()]  # the logged windows before validation, newest first
    while len(windows) < (1 if quick else RANKER_WINDOWS):
        windows.append(windows[-1].validation())
    say(f"loaded {len(data):,} rows; test users {len(split.users):,}, validation users {len(val.users):,}")
    grids = QUICK_GRIDS if quick else GRIDS
    rows: list[dict[str, Any]] = []
    cache: dict[str, Any] = {}

    def add(model: str, params: dict[str, Any], rec: np.ndarray, fit_seconds: float, t_pred: float,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
        res = evaluate_retail(lambda users: rec, split, bootstrap=bootstrap)
        res["predict_seconds"] = t_pred
        row = _row(model, params, res, fit_seconds, extra)
        rows.append(row)
        say(f"{model:16s} " + "  ".join(f"{m} {row['metrics'][m]:.4f}" for m in HEADLINE))
        return row

    # --- retrieval stacks (validation and test) and each source alone
    say("fitting the retrieval sources and features on each training half")
    stack = build_stack(split)
    vstack = build_stack(val)
    for name in SOURCES:
        t0 = time.perf_counter()
        rec = source_recommend(stack, name)
        add(name, {"source": name, **SOURCE_SETTINGS[name]}, rec, stack.timings.get(name, stack.timings.get(
            "ann (als)", 0.0)), time.perf_counter() - t0, {"kind": "retrieval source alone"})

    # --- baselines tuned on validation
    chosen: dict[str, dict[str, Any]] = {}
    tuning: dict[str, Any] = {}
    for name in ("als", "ease", "buy-again"):
        chosen[name], tuning[name] = tune_baseline(name, val, grids[name], cache, say=say)
    chosen["buy-again+als"], tuning["buy-again+als"] = tune_baseline(
        "buy-again+als", val, grids["buy-again+als"], cache,
        extra={"buy_again": chosen["buy-again"], "als": chosen["als"]}, say=say)
    for name in ("als", "ease", "popularity", "popularity-30d", "buy-again", "buy-again+als"):
        params = chosen.get(name, {})
        t0 = time.perf_counter()
        scores = baseline_scores(name, split, params, split.users, cache)
        fit_s = time.perf_counter() - t0
        rec = top_items(scores, allowed=split.candidate_items)
        add(name, params, rec, fit_s, 0.0, {"kind": "baseline", "validation_grid": tuning.get(name, [])})

    # --- the ranker: logged data of the validation window and the window before it
    say("collecting logged ranking data (500 candidates per user, features, labels)")
    t0 = time.perf_counter()
    train2 = RankingData.concat([build_stack(w).ranking_data() for w in windows])
    valid = vstack.ranking_data()
    test_data = stack.ranking_data()
    collect_seconds = time.perf_counter() - t0
    settings = {**RANKER_SETTINGS, **(ranker_settings or {})}
    if quick:
        settings.update(n_estimators=60, calibration_folds=2, early_stopping_rounds=20)
    say(f"training the ranker on the {len(windows)} window(s) before validation ({train2.n_groups} requests), "
        f"early stopping on "
        f"validation ({valid.n_groups} requests)")
    t0 = time.perf_counter()
    probe = Ranker(settings).fit(train2, valid)
    n_trees = probe.n_trees
    val_rec = ranker_recommend(vstack, probe, valid)
    val_metrics = retail_metrics(val_rec, val)
    w, sweep = (value_weight, []) if value_weight is not None else choose_value_weight(vstack, probe, valid)
    say(f"validation: ranker ndcg@10 {val_metrics['ndcg@10']:.4f} with {n_trees} trees; value weight w = {w}")
    final = Ranker({**settings, "n_estimators": n_trees, "early_stopping_rounds": 0, "value_weight": w}).fit(
        RankingData.concat([train2, valid]))
    fit_seconds = time.perf_counter() - t0
    calib_val = probe.calibration_report(valid)
    calib_test = final.calibration_report(test_data)
    for model, weight in (("ranker", 0.0), ("ranker+ev", w)):
        t0 = time.perf_counter()
        rec = ranker_recommend(stack, final, test_data, w=weight)
        add(model, {**settings, "n_estimators": n_trees, "value_weight": weight, "value": VALUE_KIND,
                    "candidates": N_CANDIDATES, "sources": list(SOURCES)}, rec,
            fit_seconds + collect_seconds, time.perf_counter() - t0,
            {"kind": "full ranker", "validation_ndcg@10": round(val_metrics["ndcg@10"], 5)})
    candidate_recall = _candidate_recall(test_data, split)

    best_other = max((r for r in rows if r["kind"] != "full ranker"), key=lambda r: r["metrics"]["ndcg@10"])
    ranker_row = next(r for r in rows if r["model"] == "ranker")
    blend_row = next(r for r in rows if r["model"] == "buy-again+als")
    summary = {
        "best_other_row": best_other["model"], "best_other_ndcg@10": best_other["metrics"]["ndcg@10"],
        "ranker_ndcg@10": ranker_row["metrics"]["ndcg@10"],
        "ratio_to_best_other": round(ranker_row["metrics"]["ndcg@10"] / best_other["metrics"]["ndcg@10"], 4),
        "target_ratio": 1.10,
        "blend_revenue_recall@20": blend_row["metrics"]["revenue_recall@20"],
        "ranker_revenue_recall@20": ranker_row["metrics"]["revenue_recall@20"],
        "ranker_ev_revenue_recall@20": next(r for r in rows if r["model"] == "ranker+ev")["metrics"][
            "revenue_recall@20"],
        "candidate_recall@500": round(candidate_recall, 5),
    }
    return {
        "suite": "retail-rank",
        "protocol": NAME,
        "protocols": [{"name": NAME, "description": DESCRIPTION}],
        "dataset": "online-retail",
        "data": {"test": split.describe(), "validation": val.describe(),
                 "ranker_training_windows": [w.describe() for w in windows]},
        "quick": quick,
        "machine": machine_info(),
        "wall_seconds": round(time.perf_counter() - t_start, 1),
        "rows": rows,
        "summary": summary,
        "ranker": {"trees": final.n_trees, "features": final.names, "importance": final.feature_importance(),
                   "value_weight_sweep_validation": sweep, "calibration_validation": calib_val,
                   "calibration_test": calib_test, "calibration": final.calibration.kind},
        "comparisons": [],
    }


def _candidate_recall(data: RankingData, split: RetailSplit) -> float:
    """Mean share of a user's relevant products among their 500 candidates."""
    rel = split.relevant()
    off = data.offsets
    out = []
    for g, u in enumerate(data.user):
        n_rel = rel.indptr[u + 1] - rel.indptr[u]
        if n_rel:
            out.append(float(data.y[off[g]:off[g + 1]].sum()) / n_rel)
    return float(np.mean(out)) if out else float("nan")


__all__ = ["GRIDS", "RANKER_SETTINGS", "SOURCES", "SOURCE_SETTINGS", "RetailStack", "build_stack",
           "buy_again_scores", "choose_value_weight", "ranker_recommend", "run_retail_bench"]
