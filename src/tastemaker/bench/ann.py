"""ANN benchmark: faiss and usearch against exact search on synthetic catalogue embeddings.

Data: `synthetic_catalog(n_vectors)` + `synthetic_embeddings(dim)` — unit vectors clustered by
category and brand, as learned item embeddings are (uniformly random vectors would be a worst
case no real catalogue has). Queries: `n_queries` synthetic users' vectors (recency-weighted means
of their purchase histories, plus noise), which are *not* in the index.

Metrics per configuration: recall@k against exact inner-product search (mean over queries of
|ANN ∩ exact| / k), single-query latency p50/p95/p99 in ms (one query per call, one thread — a
serving request) as wall-clock time and as the querying thread's CPU time (which a loaded
machine does not inflate), qps (= 1000 / mean wall latency, one thread), build seconds (all
threads the process may use, `build_threads`), memory (the library's own count: faiss's
serialised index size, usearch's `memory_usage`) and the process's resident-memory growth while
building.

A second recall, ``recall@k_items``, uses queries that are item vectors themselves ("similar
items"). The user vectors lie off the item manifold (a mix of several categories), the case
known to be hard for graph indexes (HNSW): the two recalls differ a lot for them.

Each configuration builds once; query-time settings (ef / nprobe) are swept on the same build,
so rows sharing a build share `build_seconds`.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tastemaker.bench.suites import machine_info
from tastemaker.retrieval.ann import ExactIndex, FaissIndex, UsearchIndex, VectorIndex, exact_search

# (system, model, build parameters, query-time settings swept on that build, index of the setting the
# filtered run uses)
Config = tuple[str, str, dict[str, Any], Sequence[dict[str, Any]], int]
DEFAULT_CONFIGS: tuple[Config, ...] = (
    ("faiss", "ivf", {"kind": "ivf", "nlist": 2048, "train_size": 131_072},
     ({"nprobe": 16}, {"nprobe": 32}, {"nprobe": 64}, {"nprobe": 128}, {"nprobe": 256}), 2),
    ("faiss", "hnsw", {"kind": "hnsw", "M": 32, "ef_construction": 200},
     ({"ef_search": 128}, {"ef_search": 512}, {"ef_search": 2048}), 1),
    ("usearch", "hnsw", {"connectivity": 32, "expansion_add": 200, "dtype": "f32"},
     ({"expansion_search": 128}, {"expansion_search": 512}, {"expansion_search": 2048}), 1),
)
"""The configurations of the 1M-vector run in /work/notes/e1 (see ANN.md there)."""


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096
    except OSError:  # pragma: no cover - not Linux
        return 0


def bench_data(n_vectors: int, dim: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(item vectors, query vectors) for the benchmark (see the module docstring)."""
    from tastemaker.data.catalog import synthetic_catalog, synthetic_embeddings, synthetic_users

    catalog = synthetic_catalog(n_vectors, seed)
    vectors = synthetic_embeddings(catalog, dim, seed)
    users = synthetic_users(catalog, n_queries, seed + 1, mean_history=15.0)
    queries = users.user_embeddings(vectors, seed=seed + 2, noise=0.3)
    return vectors, queries


def _make(system: str, params: dict[str, Any], threads: int | None) -> VectorIndex:
    if system == "faiss":
        return FaissIndex(**params, threads=threads)
    if system == "usearch":
        return UsearchIndex(**params, threads=threads)
    if system == "exact":
        return ExactIndex()
    raise ValueError(f"unknown system {system!r}")


def _latencies(index: VectorIndex, queries: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, wall ms, thread-CPU ms) of one query per call."""
    labels = np.empty((len(queries), k), dtype=np.int64)
    wall = np.empty(len(queries))
    cpu = np.empty(len(queries))
    index.search(queries[:1], k, allowed=allowed)  # warm-up
    for i in range(len(queries)):
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        lab, _ = index.search(queries[i:i + 1], k, allowed=allowed)
        wall[i] = time.perf_counter_ns() - t0
        cpu[i] = time.thread_time_ns() - c0
        labels[i] = lab[0]
    return labels, wall / 1e6, cpu / 1e6


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over rows of |found ∩ truth| / |truth| (−1 entries ignored)."""
    hits = [len(np.intersect1d(f[f >= 0], t[t >= 0])) / max(int((t >= 0).sum()), 1) for f, t in zip(found, truth)]
    return float(np.mean(hits))


def run_ann_bench(
    n_vectors: int = 1_000_000,
    dim: int = 64,
    *,
    n_queries: int = 1000,
    k: int = 100,
    configs: Sequence[Config] | None = None,
    seed: int = 0,
    build_threads: int | None = None,
    filtered: float | None = 0.1,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Benchmark every configuration; returns ``{"suite", "machine", "setup", "rows": [...]}``.

    Each row: ``{"system", "model", "params", "metrics": {"recall@100", "p50_ms", "p95_ms", "p99_ms",
    "qps", "cpu_p50_ms", "cpu_p95_ms", "cpu_p99_ms", "recall@100_items"}, "build_seconds", "memory_mb",
    "rss_growth_mb"}`` (``recall@{k}`` for another k). Wall-clock latencies include time the process
    waited for a core; ``cpu_*`` count the querying thread's own CPU time, which other load on the
    machine does not inflate. With `filtered` (a share, default 0.1), the setting each configuration
    names is also run with a random mask allowing that share of the items (recall against exact search
    over the allowed items); those rows have model ``<model>+filter``.
    """
    configs = DEFAULT_CONFIGS if configs is None else configs
    t0 = time.perf_counter()
    vectors, queries = bench_data(n_vectors, dim, n_queries, seed)
    data_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    truth, _ = exact_search(vectors, queries, k)
    exact_batch_seconds = time.perf_counter() - t0
    allowed = truth_f = None
    if filtered:
        allowed = np.random.default_rng(seed + 3).random(n_vectors) < filtered
        kept = np.flatnonzero(allowed)
        truth_f = kept[exact_search(vectors[kept], queries, k)[0]]
    item_q = vectors[np.random.default_rng(seed + 4).choice(n_vectors, min(200, n_vectors), replace=False)]
    truth_items, _ = exact_search(vectors, item_q, k)
    rows_out: list[dict[str, Any]] = []

    def emit(row: dict[str, Any]) -> None:
        rows_out.append(row)
        if on_row is not None:
            on_row(row)

    exact = ExactIndex().build(vectors)
    _, wall, cpu = _latencies(exact, queries[: min(200, n_queries)], k)
    emit(_row("numpy", "exact", {}, 1.0, 1.0, wall, cpu, 0.0, 0.0, 0.0, k))

    for system, model, build_params, search_list, filter_with in configs:
        gc.collect()
        rss0 = _rss_bytes()
        index = _make(system, dict(build_params), build_threads)
        b0 = time.perf_counter()
        index.build(vectors)
        build_s = time.perf_counter() - b0
        rss_growth = (_rss_bytes() - rss0) / 2**20
        mem = index.memory_bytes() / 2**20
        for sp in search_list:
            index.set_search_params(**sp)
            labels, wall, cpu = _latencies(index, queries, k)
            items_recall = recall_at_k(index.search(item_q, k)[0], truth_items)
            emit(_row(system, model, {**build_params, **sp}, recall_at_k(labels, truth), items_recall, wall, cpu,
                      build_s, mem, rss_growth, k))
        if allowed is not None and truth_f is not None:
            sp = search_list[filter_with]
            index.set_search_params(**sp)
            found, wall, cpu = _latencies(index, queries, k, allowed)
            emit(_row(system, model + "+filter", {**build_params, **sp, "allowed_share": filtered},
                      recall_at_k(found, truth_f), None, wall, cpu, build_s, mem, rss_growth, k))
        del index
    return {
        "suite": f"ann-{n_vectors}x{dim}",
        "machine": machine_info(),
        "setup": {"n_vectors": n_vectors, "dim": dim, "n_queries": n_queries, "k": k, "seed": seed,
                  "build_threads": build_threads, "data_seconds": round(data_seconds, 2),
                  "exact_batch_seconds": round(exact_batch_seconds, 2), "filtered_share": filtered,
                  "load_average_at_end": _load_average()},
        "rows": rows_out,
    }


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def _row(system: str, model: str, params: dict[str, Any], recall: float, items_recall: float | None,
         wall_ms: np.ndarray, cpu_ms: np.ndarray, build_s: float, mem_mb: float, rss_mb: float,
         k: int) -> dict[str, Any]:
    p50, p95, p99 = np.percentile(wall_ms, [50, 95, 99])
    c50, c95, c99 = np.percentile(cpu_ms, [50, 95, 99])
    metrics = {f"recall@{k}": round(recall, 4), "p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3),
               "p99_ms": round(float(p99), 3), "qps": round(1000.0 / float(np.mean(wall_ms)), 1),
               "cpu_p50_ms": round(float(c50), 3), "cpu_p95_ms": round(float(c95), 3),
               "cpu_p99_ms": round(float(c99), 3)}
    if items_recall is not None:
        metrics[f"recall@{k}_items"] = round(items_recall, 4)
    return {"system": system, "model": model, "params": params, "metrics": metrics,
            "build_seconds": round(build_s, 2), "memory_mb": round(mem_mb, 1), "rss_growth_mb": round(rss_mb, 1)}


def markdown_table(result: dict[str, Any]) -> str:
    """The rows as a Markdown table."""
    k_key = next((m for m in result["rows"][0]["metrics"] if m.startswith("recall@")), "recall@100")
    lines = [f"| system | model | params | {k_key} (user queries) | {k_key} (item queries) | p50 ms | p95 ms | "
             "p99 ms | CPU p50 ms | CPU p99 ms | qps (1 thread) | build s | memory MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        m = r["metrics"]
        params = ", ".join(f"{a}={b}" for a, b in r["params"].items())
        items = m.get(f"{k_key}_items")
        shown = "—" if items is None else f"{items:.4f}"
        lines.append(f"| {r['system']} | {r['model']} | {params} | {m[k_key]:.4f} | {shown} | {m['p50_ms']:.2f} | "
                     f"{m['p95_ms']:.2f} | {m['p99_ms']:.2f} | {m.get('cpu_p50_ms', float('nan')):.2f} | "
                     f"{m.get('cpu_p99_ms', float('nan')):.2f} | {m['qps']:.0f} | {r['build_seconds']:.1f} | "
                     f"{r['memory_mb']:.0f} |")
    return "\n".join(lines)


__all__ = ["DEFAULT_CONFIGS", "bench_data", "markdown_table", "recall_at_k", "run_ann_bench"]
