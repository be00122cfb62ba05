"""The relevance vs diversity bench: how much NDCG@10 each step of a diversity knob costs.

``run_diversity_bench(...)`` re-ranks the same candidate lists with MMR and with calibrated
re-ranking (Steck 2018) — `tastemaker.ranking.diversity.mmr_rerank` / `calibrated_rerank`, one knob
λ each — for every λ of a grid, and measures NDCG@10 against intra-list diversity (ILD@10),
catalogue coverage@10, novelty@10 and miscalibration (KL of the user's category mix from the
list's, Steck's measure) on two data sets:

``ml-100k`` (protocol topn-u1)
    EASE (default settings, tuned on a validation carve-out of u1.base) scores every item a test
    user has not rated in u1.base; its top `n_candidates` are re-ranked to k = 10; a u1.test
    rating ≥ 4 is relevant. Item vectors: the 19 genres (multi-hot; cosine for MMR and ILD);
    categories for calibration: the genres, each normalised to sum to 1; the user's target mix: the
    average over the movies they rated in u1.base.

``g1`` (the first `g1_hours` hourly files of the G1 news clicks)
    Sessions prepared as in the news bench (`tastemaker.evaluation.streaming.prepare_stream`:
    repeats removed, ≥ 2 clicks, first 20 clicks, 50/50 test/validation sessions). A session model
    (``stan`` by default, settings of the news bench) absorbs the stream hour by hour; in hours
    `descriptor_hours` and later, the last click of (a seeded sample of at most `max_requests`)
    test sessions is predicted from the session's earlier clicks by a model that holds the
    previous hours (the g1-stream protocol), and its top `n_candidates` articles are re-ranked.
    The clicks carry no article metadata, so item descriptors come from the clicks of the first
    `descriptor_hours` hours only (never the scored hours): article vectors are a truncated SVD of
    the article × session matrix (cosine for MMR and ILD), categories for calibration are k-means
    clusters of those vectors, and the user's target mix is the clusters of their earlier clicks
    (prefix and previous sessions). Only articles with a descriptor are candidates (articles first
    clicked in the scored hours have none); a target without one counts as a miss.
    Novelty uses sessions per article in the descriptor hours.

The document has the bench shape ``{"suite", "machine", "rows", ...}``: one row per (data set,
method, λ), plus ``"curves"`` (per data set and method, one list per metric over λ) and
``"datasets"`` (how each task was built). `plot_tradeoff` draws the curves as a PNG: one row of
panels per data set, NDCG@10 against each diversity measure, one line per method.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tastemaker.bench.suites import machine_info
from tastemaker.errors import ConfigError
from tastemaker.evaluation.metrics import catalog_coverage, intra_list_diversity, ndcg_at_k, novelty
from tastemaker.ranking.diversity import calibrated_rerank, mmr_rerank

SUITE = "diversity"
DATASETS: tuple[str, ...] = ("ml-100k", "g1")
METHODS: tuple[str, ...] = ("mmr", "calibrated")
DEFAULT_LAMBDAS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
LAMBDA_MEANING = {
    "mmr": "λ·relevance − (1−λ)·max similarity to the list: λ = 1 is the relevance order, 0 the most diverse",
    "calibrated": "(1−λ)·relevance − λ·KL(user mix ‖ list mix): λ = 0 is the relevance order, 1 the best calibrated",
}
CALIBRATION_ALPHA = 0.01
G1_STAN = {"k": 500, "sample_size": 500, "lambda_spw": 0.5, "lambda_snh_hours": 2.0, "lambda_inh": 4.0}
"""STAN as the news bench runs it (its settings were tuned there on validation sessions only)."""


@dataclass(eq=False)
class RerankTask:
    """Per-request candidate lists and everything the metrics need, in one item index space.

    `candidates[r]` are item indices (best first by `relevance[r]`, padded with -1); `relevant` is
    (n_requests, n_columns) with n_columns ≥ n_items (extra columns: targets that are no item);
    `targets[r]` the request's category mix (all zeros: unknown, calibration keeps the relevance
    order).
    """

    name: str
    candidates: np.ndarray
    relevance: np.ndarray
    relevant: sp.csr_matrix
    item_vectors: np.ndarray
    item_dist: np.ndarray
    targets: np.ndarray
    popularity: np.ndarray
    n_popularity_users: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return len(self.item_vectors)

    @property
    def n_requests(self) -> int:
        return len(self.candidates)


def _cosine(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=1, keepdims=True)
    u = v / np.where(n > 0, n, 1.0)
    return u @ u.T


def _miscalibration(recommended: np.ndarray, item_dist: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Steck's KL(p ‖ q̃) per request (NaN where the target is unknown or the list empty)."""
    valid = recommended >= 0
    dist = np.where(valid[..., None], item_dist[np.where(valid, recommended, 0)], 0.0)
    m = valid.sum(axis=1, keepdims=True)
    q = dist.sum(axis=1) / np.maximum(m, 1)
    tsum = targets.sum(axis=1, keepdims=True)
    p = targets / np.where(tsum > 0, tsum, 1.0)
    qt = (1.0 - CALIBRATION_ALPHA) * q + CALIBRATION_ALPHA * p
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(qt)), 0.0)
    return np.where((tsum[:, 0] > 0) & (m[:, 0] > 0), terms.sum(axis=1), np.nan)


def rerank_all(task: RerankTask, method: str, lam: float, k: int) -> np.ndarray:
    """(n_requests, k) item indices after re-ranking every request's candidates (-1 padded)."""
    out = np.full((task.n_requests, k), -1, dtype=np.int64)
    for r in range(task.n_requests):
        cand = task.candidates[r]
        cand = cand[cand >= 0]
        if len(cand) == 0:
            continue
        rel = task.relevance[r, : len(cand)]
        if method == "mmr":
            idx = mmr_rerank(rel, k, lam, similarity=_cosine(task.item_vectors[cand]))
        elif method == "calibrated":
            if task.targets[r].sum() > 0:
                idx = calibrated_rerank(rel, task.item_dist[cand], task.targets[r], k, lam, alpha=CALIBRATION_ALPHA)
            else:
                idx = np.argsort(-rel, kind="stable")[:k]
        else:
            raise ConfigError(f"unknown re-ranking method {method!r}; known: {', '.join(METHODS)}")
        out[r, : len(idx)] = cand[idx]
    return out


def list_metrics(task: RerankTask, recommended: np.ndarray, k: int) -> dict[str, float]:
    """NDCG@k, ILD@k, coverage@k, novelty@k and miscalibration@k of re-ranked lists."""
    rel = task.relevant
    ndcg = ndcg_at_k(recommended, rel, k)
    return {
        f"ndcg@{k}": float(np.nanmean(ndcg)),
        f"ild@{k}": float(np.nanmean(intra_list_diversity(recommended, task.item_vectors, k))),
        f"coverage@{k}": catalog_coverage(recommended, task.n_items, k),
        f"novelty@{k}": float(np.nanmean(novelty(recommended, task.popularity, task.n_popularity_users, k))),
        f"miscalibration@{k}": float(np.nanmean(_miscalibration(recommended[:, :k], task.item_dist, task.targets))),
    }


def sweep(task: RerankTask, *, methods: Sequence[str] = METHODS, lambdas: Sequence[float] = DEFAULT_LAMBDAS,
          k: int = 10, on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """One bench row per (method, λ) on `task`."""
    rows = []
    for method in methods:
        for lam in lambdas:
            t0 = time.perf_counter()
            rec = rerank_all(task, method, float(lam), k)
            seconds = time.perf_counter() - t0
            row = {"dataset": task.name, "method": method, "lambda": float(lam),
                   "metrics": list_metrics(task, rec, k), "requests": task.n_requests,
                   "rerank_seconds": round(seconds, 3),
                   "rerank_ms_per_request": round(1000 * seconds / max(task.n_requests, 1), 4)}
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


# --- MovieLens ------------------------------------------------------------------------------------

def movielens_task(dataset, *, split: str = "u1", n_candidates: int = 100, threshold: float = 4.0,
                   model: Any = "ease", params: Mapping[str, Any] | None = None) -> RerankTask:
    """EASE candidates for the test users of `split` (see the module docstring).

    `model` is a registered model name (fitted here on the split's training part, with `params`)
    or a `Recommender` already fitted on it.
    """
    from tastemaker.evaluation.protocols import relevance_matrix
    from tastemaker.models.registry import create_model

    train, test = dataset.split(split)
    if train.item_features is None or "genres" not in train.item_features.multi_hot:
        raise ConfigError("the MovieLens task needs the genres as item features (u.item)")
    t0 = time.perf_counter()
    rec = create_model(model, dict(params or {})).fit(train) if isinstance(model, str) else model
    fit_seconds = time.perf_counter() - t0
    model = model if isinstance(model, str) else rec.name
    test = test.reindex(rec.user_vocab, rec.item_vocab)
    users, relevant = relevance_matrix(test, threshold)
    scores = rec.score_matrix(users)
    seen = rec.train_matrix[users].toarray() > 0
    scores[seen] = -np.inf
    n = min(n_candidates, scores.shape[1])
    top = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    cand = np.take_along_axis(top, order, axis=1)
    rel = np.take_along_axis(top_scores, order, axis=1)
    cand = np.where(np.isfinite(rel), cand, -1)
    rel = np.where(np.isfinite(rel), rel, 0.0)
    genres = train.item_features.feature_matrix(rec.item_vocab, ["genres"]).astype(np.float64)
    gsum = genres.sum(axis=1, keepdims=True)
    item_dist = genres / np.where(gsum > 0, gsum, 1.0)
    history = (rec.train_matrix[users] > 0).astype(np.float64)
    targets = np.asarray(history @ item_dist)
    popularity = np.asarray((rec.train_matrix > 0).sum(axis=0)).ravel()
    return RerankTask(
        name="ml-100k", candidates=cand, relevance=rel, relevant=sp.csr_matrix(relevant), item_vectors=genres,
        item_dist=item_dist, targets=targets, popularity=popularity, n_popularity_users=rec.n_users,
        info={"protocol": f"topn-{split}", "candidates": f"{model} top {n} of the items the user did not rate",
              "model": model, "params": dict(params or {}), "fit_seconds": round(fit_seconds, 3),
              "relevant": f"test rating >= {threshold}", "item_vectors": "19 genres (multi-hot, cosine)",
              "categories": "genres, normalised per movie", "target_mix": "mean genre mix of the u1.base history",
              "users": len(users), "items": rec.n_items},
    )


# --- G1 -------------------------------------------------------------------------------------------

def _descriptors(items: np.ndarray, sessions: np.ndarray, dim: int, n_topics: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Article ids, SVD vectors, cluster one-hots and session counts from (article, session) clicks."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD

    ids, item_idx = np.unique(items, return_inverse=True)
    sids, sess_idx = np.unique(sessions, return_inverse=True)
    x = sp.csr_matrix((np.ones(len(items)), (item_idx, sess_idx)), shape=(len(ids), len(sids)))
    x.data[:] = 1.0
    x.sum_duplicates()
    x.data[:] = 1.0
    popularity = np.asarray(x.sum(axis=1)).ravel()
    # tf-idf-like damping of busy sessions, then the top singular directions
    sess_len = np.asarray(x.sum(axis=0)).ravel()
    x = x @ sp.diags(1.0 / np.sqrt(np.maximum(sess_len, 1.0)))
    dim = max(1, min(dim, min(x.shape) - 1))
    vectors = TruncatedSVD(n_components=dim, random_state=seed).fit_transform(x)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    n_topics = max(1, min(n_topics, len(ids)))
    labels = KMeans(n_clusters=n_topics, n_init=4, random_state=seed).fit_predict(unit)
    return ids, unit, np.eye(n_topics)[labels], popularity, len(sids)


def g1_task(clicks, *, descriptor_hours: int = 18, model: str = "stan", params: Mapping[str, Any] | None = None,
            n_candidates: int = 100, max_requests: int | None = 3000, dim: int = 32, n_topics: int = 20,
            seed: int = 0, progress: bool = False) -> RerankTask:
    """Session-model candidates on a G1 prefix (see the module docstring); `clicks` is a `G1Clicks`."""
    from tastemaker.evaluation.streaming import prepare_stream
    from tastemaker.models.session import create_session_model
    from tastemaker.progress import track

    stream = prepare_stream(clicks, seed=seed)
    if not 0 < descriptor_hours < stream.n_windows:
        raise ConfigError(f"descriptor_hours must be between 1 and {stream.n_windows - 1} (the hours loaded "
                          f"minus one), got {descriptor_hours}")
    row = stream.click_session()
    c_win = stream.window[row]
    early = c_win < descriptor_hours
    ids, vectors, dist, popularity, n_sessions = _descriptors(stream.item[early], stream.session_id[row[early]],
                                                              dim, n_topics, seed)
    index = {int(a): j for j, a in enumerate(ids.tolist())}

    # requests: the last click of test sessions of the scored hours, a seeded sample
    scored = np.flatnonzero(stream.test & (stream.window >= descriptor_hours))
    if max_requests is not None and len(scored) > max_requests:
        scored = np.sort(np.random.default_rng(seed).choice(scored, max_requests, replace=False))
    params = dict(G1_STAN if params is None and model == "stan" else params or {})
    sm = create_session_model(model, params)
    n_topic = dist.shape[1]
    user_mix: dict[int, np.ndarray] = {}
    cand = np.full((len(scored), n_candidates), -1, dtype=np.int64)
    rel = np.zeros((len(scored), n_candidates))
    targets = np.zeros((len(scored), n_topic))
    target_col = np.empty(len(scored), dtype=np.int64)
    by_window = np.searchsorted(stream.window[scored], np.arange(stream.n_windows + 1))
    t_rec = 0.0
    windows = range(stream.n_windows)
    for w in track(windows, "g1 diversity candidates", total=len(windows)) if progress else windows:
        rows_w = stream.window_rows(w)
        for j in range(by_window[w], by_window[w + 1]):
            s = scored[j]
            lo, hi = stream.s_off[s], stream.s_off[s + 1]
            prefix = stream.item[lo:hi - 1]
            t0 = time.perf_counter()
            got, sc = sm.recommend(prefix, int(n_candidates * 1.5) + 10, timestamp=float(stream.time[hi - 2]),
                                   context=stream.context[hi - 2].tolist())
            t_rec += time.perf_counter() - t0
            known = np.array([index.get(int(a), -1) for a in got.tolist()], dtype=np.int64)
            keep = known >= 0
            kk = known[keep][:n_candidates]
            cand[j, : len(kk)] = kk
            rel[j, : len(kk)] = sc[keep][:n_candidates]
            target_col[j] = index.get(int(stream.item[hi - 1]), len(ids))
            mix = user_mix.get(int(stream.user[s]), np.zeros(n_topic)).copy()
            pre = np.array([index.get(int(a), -1) for a in prefix.tolist()], dtype=np.int64)
            mix += dist[pre[pre >= 0]].sum(axis=0)
            targets[j] = mix
        if len(rows_w) == 0:
            continue
        lo, hi = stream.s_off[rows_w[0]], stream.s_off[rows_w[-1] + 1]
        sess = np.repeat(stream.session_id[rows_w], stream.lengths[rows_w])
        sm.update_many(sess, stream.item[lo:hi], np.minimum(stream.time[lo:hi], stream.update_time[w]),
                       stream.context[lo:hi] if sm.uses_context else None)
        users = np.repeat(stream.user[rows_w], stream.lengths[rows_w])
        known = np.array([index.get(int(a), -1) for a in stream.item[lo:hi].tolist()], dtype=np.int64)
        for u, a in zip(users[known >= 0].tolist(), known[known >= 0].tolist(), strict=True):
            m = user_mix.get(u)
            if m is None:
                m = user_mix[u] = np.zeros(n_topic)
            m += dist[a]
    relevant = sp.csr_matrix((np.ones(len(scored)), (np.arange(len(scored)), target_col)),
                             shape=(len(scored), len(ids) + 1))
    in_candidates = float(np.mean([(cand[j] == target_col[j]).any() for j in range(len(scored))])) \
        if len(scored) else float("nan")
    return RerankTask(
        name="g1", candidates=cand, relevance=rel, relevant=relevant, item_vectors=vectors, item_dist=dist,
        targets=targets, popularity=popularity, n_popularity_users=n_sessions,
        info={"protocol": "g1-stream (last click of test sessions, model holds the previous hours)",
              "hours": stream.n_windows, "descriptor_hours": descriptor_hours,
              "scored_hours": f"{descriptor_hours}..{stream.n_windows - 1}",
              "candidates": f"{model} top {n_candidates} articles that have a descriptor", "model": model,
              "params": params, "requests": len(scored),
              "targets_without_descriptor": float(np.mean(target_col == len(ids))) if len(scored) else None,
              "target_in_candidates": in_candidates,
              "item_vectors": f"truncated SVD ({vectors.shape[1]} dims) of article x session clicks of hours "
                              f"0..{descriptor_hours - 1}, cosine",
              "categories": f"{n_topic} k-means clusters of the article vectors",
              "target_mix": "clusters of the user's earlier clicks (previous sessions and the prefix)",
              "articles_with_descriptor": len(ids), "recommend_ms_per_request":
                  round(1000 * t_rec / max(len(scored), 1), 3), "stream": dict(stream.stats)},
    )


# --- the bench --------------------------------------------------------------------------------------

def _curves(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, list[float]]]]:
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for r in rows:
        c = out.setdefault(r["dataset"], {}).setdefault(r["method"], {"lambda": []})
        c["lambda"].append(r["lambda"])
        for m, v in r["metrics"].items():
            c.setdefault(m, []).append(v)
    return out


def run_diversity_bench(
    data_dir: str | Path | None = None,
    *,
    datasets: Sequence[str] = DATASETS,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    k: int = 10,
    n_candidates: int = 100,
    g1_hours: int = 24,
    g1_descriptor_hours: int = 18,
    g1_max_requests: int | None = 3000,
    g1_model: str = "stan",
    g1_dim: int = 32,
    g1_topics: int = 20,
    seed: int = 0,
    png: str | Path | None = None,
    movielens=None,
    g1_clicks=None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the relevance vs diversity bench; returns the bench JSON document (and writes `png`).

    `data_dir` is the data folder holding ``ml-100k/`` and ``globo-news-clicks/`` (default
    ``$TASTEMAKER_DATA_DIR``). `movielens` (a `Dataset`) and `g1_clicks` (a `G1Clicks`) replace
    the loaded data (tests pass small synthetic ones). `g1_dim` and `g1_topics` size the G1 article
    vectors and clusters. `log` receives one line per finished row.
    """
    unknown = set(datasets) - set(DATASETS)
    if unknown or not datasets:
        raise ConfigError(f"unknown diversity bench data set(s) {sorted(unknown)}; known: {', '.join(DATASETS)}")
    lams = [float(x) for x in lambdas]
    if not lams or any(not 0.0 <= x <= 1.0 for x in lams):
        raise ConfigError(f"lambdas must be values in [0, 1], got {list(lambdas)}")
    if isinstance(k, bool) or int(k) < 1 or int(n_candidates) < int(k):
        raise ConfigError(f"need 1 <= k <= n_candidates, got k={k}, n_candidates={n_candidates}")
    t_start = time.perf_counter()
    tasks: list[RerankTask] = []
    for name in datasets:
        t0 = time.perf_counter()
        if name == "ml-100k":
            if movielens is None:
                from tastemaker.data import load_dataset

                movielens = load_dataset("ml-100k", None if data_dir is None else Path(data_dir) / "ml-100k")
            task = movielens_task(movielens, n_candidates=n_candidates)
        else:
            if g1_clicks is None:
                from tastemaker.data.g1 import G1_FOLDER, load_g1

                g1_clicks = load_g1(None if data_dir is None else Path(data_dir) / G1_FOLDER, g1_hours)
            task = g1_task(g1_clicks, descriptor_hours=g1_descriptor_hours, model=g1_model,
                           n_candidates=n_candidates, max_requests=g1_max_requests, dim=g1_dim, n_topics=g1_topics,
                           seed=seed, progress=progress)
        task.info["build_seconds"] = round(time.perf_counter() - t0, 2)
        tasks.append(task)
        if log is not None:
            log(f"{task.name}: {task.n_requests} requests, {task.n_items} items ({task.info['build_seconds']} s)")

    def show(row: dict[str, Any]) -> None:
        if log is not None:
            m = row["metrics"]
            log(f"  {row['dataset']} {row['method']} λ={row['lambda']:.2f}: ndcg@{k} {m[f'ndcg@{k}']:.4f}, "
                f"ild@{k} {m[f'ild@{k}']:.4f}, coverage@{k} {m[f'coverage@{k}']:.4f}, "
                f"novelty@{k} {m[f'novelty@{k}']:.3f}")

    rows: list[dict[str, Any]] = []
    for task in tasks:
        rows += sweep(task, lambdas=lams, k=int(k), on_row=show)
    doc = {
        "suite": SUITE,
        "protocol": "re-rank the same candidates with MMR and calibrated re-ranking over a grid of λ",
        "machine": machine_info(),
        "setup": {"k": int(k), "n_candidates": int(n_candidates), "lambdas": lams, "seed": seed,
                  "lambda_meaning": LAMBDA_MEANING, "calibration_alpha": CALIBRATION_ALPHA,
                  "seconds": round(time.perf_counter() - t_start, 1)},
        "datasets": {t.name: t.info for t in tasks},
        "rows": rows,
        "curves": _curves(rows),
    }
    if png is not None:
        doc["png"] = str(plot_tradeoff(doc, png))
    return doc


def plot_tradeoff(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Draw NDCG@k against ILD, coverage, novelty (and miscalibration) per data set as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = int(doc["setup"]["k"])
    curves = doc["curves"]
    x_metrics = [f"ild@{k}", f"coverage@{k}", f"novelty@{k}", f"miscalibration@{k}"]
    titles = {f"ild@{k}": f"intra-list diversity@{k}", f"coverage@{k}": f"catalogue coverage@{k}",
              f"novelty@{k}": f"novelty@{k} (bits)", f"miscalibration@{k}": f"miscalibration@{k} (KL)"}
    styles = {"mmr": ("tab:blue", "o"), "calibrated": ("tab:orange", "s")}
    names = list(curves)
    fig, axes = plt.subplots(len(names), len(x_metrics), figsize=(4.2 * len(x_metrics), 3.6 * len(names)),
                             squeeze=False)
    for i, ds in enumerate(names):
        for j, xm in enumerate(x_metrics):
            ax = axes[i][j]
            for method, c in curves[ds].items():
                color, marker = styles.get(method, ("tab:gray", "^"))
                ys = c[f"ndcg@{k}"]
                ax.plot(c[xm], ys, marker=marker, color=color, label=method, ms=4, lw=1.3)
                # label the diversity end (the relevance end is the shared starred point)
                ends = (0, len(ys) - 1)
                div_end, rel_end = sorted(ends, key=lambda e: (ys[e] != ys[e], ys[e]))
                ax.annotate(f"λ={c['lambda'][div_end]:g}", (c[xm][div_end], ys[div_end]), fontsize=7,
                            textcoords="offset points", xytext=(4, 4), color=color)
                ax.plot([c[xm][rel_end]], [ys[rel_end]], marker="*", color="black", ms=9, ls="none",
                        label="relevance order" if method == next(iter(curves[ds])) else None)
            ax.set_xlabel(titles[xm])
            if j == 0:
                ax.set_ylabel(f"{ds}\nNDCG@{k}")
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.suptitle(f"Relevance vs diversity: MMR and calibrated re-ranking of the top {doc['setup']['n_candidates']} "
                 f"candidates, λ over {len(doc['setup']['lambdas'])} values", fontsize=11)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


__all__ = ["DATASETS", "DEFAULT_LAMBDAS", "METHODS", "RerankTask", "g1_task", "list_metrics", "movielens_task",
           "plot_tradeoff", "rerank_all", "run_diversity_bench", "sweep"]
