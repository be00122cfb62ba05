"""Benchmark suites: our models and the peers on the same splits, in the same run.

Peer settings are stated here once. Where a peer is "tuned", its settings were chosen on a
validation carve-out of the training fold (never the test fold), like ours.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tastemaker.bench.peers import ImplicitPeer, LightFMPeer, SurprisePeer
from tastemaker.errors import ConfigError
from tastemaker.evaluation.protocols import EvaluationResult, evaluate, get_protocol
from tastemaker.models.base import Recommender
from tastemaker.models.registry import create_model


@dataclass(frozen=True)
class Entry:
    """One row of a suite: who made the model, its display name and how to build a fresh one."""

    system: str
    model: str
    factory: Callable[[], Recommender]
    params: dict[str, Any] = field(default_factory=dict)
    protocols: tuple[str, ...] | None = None
    """The suite's protocols this row runs on (None: all) — a cold-user configuration has nothing to
    say about cold items."""


def ours(name: str, **params: Any) -> Entry:
    return Entry("tastemaker", name, lambda: create_model(name, params), params)


def surprise(algorithm: str, **params: Any) -> Entry:
    return Entry("surprise", algorithm, lambda: SurprisePeer(algorithm=algorithm, params=params), params)


def implicit(algorithm: str, label: str, alpha: float = 1.0, **params: Any) -> Entry:
    shown = {**params, "alpha": alpha} if algorithm == "als" else params
    return Entry("implicit", label, lambda: ImplicitPeer(algorithm=algorithm, params=params, alpha=alpha), shown)


def lightfm(label: str, features: str, epochs: int, **params: Any) -> Entry:
    return Entry("lightfm", label, lambda: LightFMPeer(features=features, epochs=epochs, params=params),
                 {"features": features, "epochs": epochs, **params})


# LightFM WARP settings: best NDCG@10 on validation_split(u1.base, user_holdout 20%, seed 0) of a small grid
# (no_components 32–128, epochs 20–100, learning_rate 0.01–0.05, item_alpha 0/1e-6): 0.2547 without
# features, 0.2501 with genres.
LIGHTFM_WARP = lightfm("WARP", "none", 60, no_components=64, learning_rate=0.02)
LIGHTFM_WARP_GENRES = lightfm("WARP+genres", "genres", 40, no_components=64, learning_rate=0.05)
LIGHTFM_WARP_ALL = lightfm("WARP+genres+demographics", "all", 40, no_components=64, learning_rate=0.05)


COLD_USER_HYBRID: dict[str, Any] = {"item_features": {}, "user_identity_dropout": 0.5, "positive_threshold": 4.0}
COLD_USER_TT: dict[str, Any] = {"user_identity": False, "item_features": {}, "positive_threshold": 4.0, "n_epochs": 4,
                                "block_dim": 8, "embedding_dim": 16}


# demographic_popularity/cold-user: best mean NDCG@10 over three cold-user validation carve-outs of the training part
# (validation_split(train, method="cold_user", seed=0, 1, 2); never the test users) of a grid over feature sets
# (inferred; without zip; + age×gender cross; zip prefix 1 or 2, zip weight 0.25 or 1), shrinkage 5–200, weight 0.3–1,
# positive threshold 3/4: 0.4298 (seeds 0/1/2: 0.3983 / 0.4450 / 0.4460) against popularity's 0.3763 (0.3592 /
# 0.3893 / 0.3803), hybrid_mf/cold-user's 0.4137 and two_tower/cold-user's 0.4168 there; the model's defaults
# (inferred features, shrinkage 50, weight 0.5) 0.4262. Adding it to the cold-user blend gained nothing there
# (best z-score blend 0.4306 with two_tower 0.5 + this 2.0, within the carve-outs' noise), so the blend is unchanged.
COLD_USER_DEMOGRAPHIC: dict[str, Any] = {
    "user_features": {"occupation": "multi_hot", "age": "bucket:18,25,35,45,50,56", "gender": "categorical",
                      "age*gender": "cross", "zip": "prefix:2"},
    "feature_weights": {"zip": 0.25}, "shrinkage": 20.0, "weight": 0.4}


# equal-weight z-score blend of the two cold-user models: on the cold-user validation carve-out of the training
# part it scored NDCG@10 0.4035 against 0.3951 / 0.3948 for the members and 0.3592 for popularity
COLD_USER_BLEND: dict[str, Any] = {"members": [{"name": "hybrid_mf", "params": COLD_USER_HYBRID},
                                               {"name": "two_tower", "params": COLD_USER_TT}],
                                   "weights": [1.0, 1.0]}


@dataclass(frozen=True)
class Suite:
    name: str
    protocols: tuple[str, ...]
    dataset: str
    ours: tuple[Entry, ...]
    peers: tuple[Entry, ...]
    counterparts: tuple[tuple[str, str], ...]
    """(our model, peer row) pairs compared in the ratio table."""
    headline: tuple[str, ...]
    """Metrics shown in the printed table (all are in the JSON)."""


SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite(
            name="ml100k-rating", protocols=("rating-folds",), dataset="ml-100k",
            ours=(ours("rating_blend"), ours("bayesian_mf"), ours("autorec"), ours("time_svdpp"), ours("svdpp"),
                  ours("biased_mf"), ours("item_knn"), ours("nmf"), ours("slope_one"), ours("co_clustering"),
                  ours("baseline"), ours("popularity", kind="rating")),
            peers=(
                surprise("BaselineOnly"), surprise("SVD"), surprise("SVDpp"),
                surprise("KNNBaseline", sim_options={"name": "pearson_baseline", "user_based": False}),
                surprise("SlopeOne"), surprise("NMF"), surprise("CoClustering"),
            ),
            counterparts=(("rating_blend", "surprise/SVDpp"), ("bayesian_mf", "surprise/SVDpp"),
                          ("baseline", "surprise/BaselineOnly"), ("biased_mf", "surprise/SVD"),
                          ("svdpp", "surprise/SVDpp"), ("time_svdpp", "surprise/SVDpp"),
                          ("item_knn", "surprise/KNNBaseline"), ("nmf", "surprise/NMF"),
                          ("slope_one", "surprise/SlopeOne"), ("co_clustering", "surprise/CoClustering")),
            headline=("rmse", "mae"),
        ),
        Suite(
            name="ml100k-topn", protocols=("topn-u1",), dataset="ml-100k",
            ours=(ours("popularity"), ours("rank_blend"), ours("ease"), ours("slim"), ours("als"), ours("item_cf"),
                  ours("rp3beta"),
                  ours("bpr"), ours("hybrid_mf"), ours("two_tower"), ours("content_knn"), ours("item_knn"),
                  ours("biased_mf")),
            # implicit's settings: best NDCG@10 of a grid on validation_split(u1.base, user_holdout 20%,
            # seed 0), never u1.test — ALS 0.2624 (factors 8–128, regularization 0.1–200, alpha 1–20),
            # BPR 0.1911, cosine 0.2217 and BM25 0.2289 (K 10–1000); EASE's default scored 0.2811 there.
            peers=(
                implicit("als", "ALS", alpha=2.0, factors=32, regularization=20.0, iterations=15),
                implicit("bpr", "BPR", factors=64, learning_rate=0.003, regularization=0.01, iterations=100),
                implicit("cosine", "cosine", K=1000),
                implicit("bm25", "BM25", K=400),
                LIGHTFM_WARP, LIGHTFM_WARP_GENRES,
            ),
            counterparts=(("ease", "implicit/ALS"), ("als", "implicit/ALS"), ("bpr", "implicit/BPR"),
                          ("item_cf", "implicit/cosine"), ("item_cf", "implicit/BM25"), ("ease", "lightfm/WARP"),
                          ("ease", "lightfm/WARP+genres")),
            headline=("ndcg@10", "precision@10", "recall@10", "map@10", "hr@10", "auc", "coverage@10"),
        ),
        Suite(
            name="ml100k-cold", protocols=("cold-items", "cold-users"), dataset="ml-100k",
            # the cold-user configurations were chosen on validation_split(..., method="cold_user") of the
            # training part: identity features off or dropped out so the towers lean on demographics
            ours=(ours("popularity"), ours("ease"), ours("content_knn"), ours("hybrid_mf"), ours("two_tower"),
                  Entry("tastemaker", "hybrid_mf/cold-user", lambda: create_model("hybrid_mf", COLD_USER_HYBRID),
                        COLD_USER_HYBRID, protocols=("cold-users",)),
                  Entry("tastemaker", "two_tower/cold-user", lambda: create_model("two_tower", COLD_USER_TT),
                        COLD_USER_TT, protocols=("cold-users",)),
                  Entry("tastemaker", "blend/cold-user", lambda: create_model("rank_blend", COLD_USER_BLEND),
                        COLD_USER_BLEND, protocols=("cold-users",)),
                  ours("demographic_popularity"),
                  Entry("tastemaker", "demographic_popularity/cold-user",
                        lambda: create_model("demographic_popularity", COLD_USER_DEMOGRAPHIC), COLD_USER_DEMOGRAPHIC,
                        protocols=("cold-users",))),
            peers=(LIGHTFM_WARP, LIGHTFM_WARP_GENRES, LIGHTFM_WARP_ALL),
            counterparts=(("hybrid_mf", "lightfm/WARP+genres"),
                          ("blend/cold-user", "lightfm/WARP+genres+demographics"),
                          ("hybrid_mf/cold-user", "lightfm/WARP+genres+demographics"),
                          ("two_tower/cold-user", "lightfm/WARP+genres+demographics"),
                          ("demographic_popularity/cold-user", "lightfm/WARP+genres+demographics")),
            headline=("ndcg@10", "recall@10", "hr@10", "auc", "coverage@10"),
        ),
    )
}


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise ConfigError(f"unknown bench suite {name!r}; known: {', '.join(SUITES)}") from None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    import numpy as np

    from tastemaker import __version__

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "os": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__, "tastemaker": __version__,
            "date": time.strftime("%Y-%m-%d")}


def run_suite(
    name: str,
    data,
    *,
    peers: bool | list[str] = False,
    models: list[str] | None = None,
    on_result: Callable[[EvaluationResult], None] | None = None,
) -> dict[str, Any]:
    """Run a suite on `data` (the suite's Dataset); returns the bench JSON document.

    `peers`: True for every peer of the suite, or a list of "system/model" names; `models`: a subset
    of our models (default: all)."""
    suite = get_suite(name)
    entries = [e for e in suite.ours if models is None or e.model in models]
    if models is not None:
        unknown = set(models) - {e.model for e in suite.ours}
        if unknown:
            raise ConfigError(f"suite {name} has no model(s) {sorted(unknown)}; it has "
                              f"{', '.join(e.model for e in suite.ours)}")
    if peers:
        wanted = None if peers is True else set(peers)
        known = {f"{p.system}/{p.model}": p for p in suite.peers}
        missing = set() if wanted is None else wanted - set(known)
        if missing:
            raise ConfigError(f"suite {name} has no peer(s) {sorted(missing)}; it has {', '.join(known)}")
        chosen = [p for key, p in known.items() if wanted is None or key in wanted]
        entries += chosen
    protocols = [get_protocol(p) for p in suite.protocols]
    rows: list[dict[str, Any]] = []
    compared: list[dict[str, Any]] = []
    for protocol in protocols:
        results = []
        for entry in entries:
            if entry.protocols is not None and protocol.name not in entry.protocols:
                continue
            result = evaluate(entry.factory, protocol, data, model_name=entry.model, system=entry.system,
                              params=entry.params)
            results.append(result)
            rows.append({"protocol": protocol.name, **result.row()})
            if on_result is not None:
                on_result(result)
        compared += [{"protocol": protocol.name, **c} for c in comparisons(suite, results)]
    return {
        "suite": suite.name,
        "protocol": ", ".join(p.name for p in protocols),
        "protocols": [{"name": p.name, "description": p.description} for p in protocols],
        "dataset": suite.dataset,
        "machine": machine_info(),
        "rows": rows,
        "comparisons": compared,
    }


def comparisons(suite: Suite, results: list[EvaluationResult]) -> list[dict[str, Any]]:
    """Ours vs counterpart peer: metric ratios and the fit-speed ratio (peer seconds / ours)."""
    by_key = {f"{r.system}/{r.model}": r for r in results}
    out = []
    for mine, theirs in suite.counterparts:
        a, b = by_key.get(f"tastemaker/{mine}"), by_key.get(theirs)
        if a is None or b is None:
            continue
        out.append({
            "ours": mine, "peer": theirs,
            "metric_ratio": {m: (a.metrics[m] / b.metrics[m] if b.metrics[m] else None) for m in suite.headline
                             if m in a.metrics and m in b.metrics},
            "fit_speedup": b.fit_seconds / a.fit_seconds if a.fit_seconds > 0 else None,
        })
    return out
