"""`serve-latency`: the latency of the whole ranking stage, in process and over HTTP.

    run_serve_latency(2_000_000, store="redis", n_requests=10_000, http=True)

A seeded synthetic shop (SKUs with clustered embeddings, Zipf popularity, prices, margins, stock,
3-level categories, brands, launch dates, promo and sponsored flags; users with embeddings) is
published to the store (memory or Redis — bulk-load throughput is measured), then each request
runs the serving pipeline:

    retrieve 500   (ANN over item embeddings: 450, popular: 50)
    → features     (item feature rows + user and item vectors from the store: user·item)
    → ranker       (LightGBM LambdaMART scoring the 500; a linear scorer when lightgbm is absent)
    → rules        (docs/examples/rules.toml: filters, boosts, caps, pins, sponsored, MMR, exploration)
    → top 20

Retrieval is the production component: `tastemaker.retrieval.AnnSource` over the package's default
index (`default_index`: faiss IVF-Flat, about 2·sqrt(n) lists, nprobe 64 — the setting the ANN
bench chose) and the users' embeddings, behind the pipeline's `RetrievalSource` adapter; the rule
file's request-independent hard filters (in stock, price range, category allow/deny) go into the
index's filtered search as an `allowed` mask (`ann_source`). The index is built once and saved; the
HTTP server loads the saved copy. The ranker is a LightGBM model of production shape (100 trees,
31 leaves) fitted on synthetic labels at start-up — its scores are meaningless, its cost is real.
Pass `source_factory` / `scorer` to time other components.

Every stage is timed on its own (the pipeline's `StageTrace`). Over HTTP, uvicorn on loopback
serves the same pipeline (with the Redis store, one worker process per core, at most 2, sharing
the store; with the memory store one process, since each would hold its own copy) and a load
generator drives ``GET /recommendations``: wrk (closed loop: throughput and latency under
saturation) when installed, and an open-loop Python asyncio raw HTTP/1.1 generator at a fixed
rate (latency at that rate, measured from each request's scheduled send time so queueing counts,
at most 256 connections: a request that would need more counts as an error). The load
generators, Redis and the server share the machine's cores: ``server_cpu_ms_per_request`` (all
worker processes) is the load-independent cost.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tastemaker.pipeline import (
    AttributeTable,
    CandidateSet,
    Pipeline,
    PipelineRequest,
    PopularSource,
    Retrieve,
    Rules,
    Score,
    StoreFeatures,
)

REPO_RULES = Path(__file__).resolve().parents[3] / "docs" / "examples" / "rules.toml"
FEATURES = ("score_ann", "score_popular", "user_item_dot", "item.popularity", "item.price", "item.margin",
            "item.age_days", "item.promo", "item.price_rel")
ITEM_FEATURE_COLUMNS = ("popularity", "price", "margin", "age_days", "promo", "price_rel")


# ================================================================================================
# the synthetic shop
# ================================================================================================


@dataclass
class Shop:
    """A seeded synthetic catalogue and user base (arrays aligned with `item_ids` / `user_ids`)."""

    item_ids: np.ndarray
    user_ids: np.ndarray
    item_vectors: np.ndarray
    user_vectors: np.ndarray
    cluster: np.ndarray
    centroids: np.ndarray
    popularity: np.ndarray
    columns: dict[str, Any]
    item_features: np.ndarray
    seed: int
    seconds: float = 0.0
    user_purchases: dict[int, list[str]] = field(default_factory=dict)


def make_shop(n_skus: int, *, n_users: int = 100_000, dim: int = 32, n_clusters: int | None = None,
              seed: int = 0) -> Shop:
    """A synthetic shop of `n_skus` items (ids ``SKU-000042``) and `n_users` users (``U-000007``)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_clusters = n_clusters or max(16, int(np.sqrt(n_skus)))
    centroids = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    cluster = rng.integers(0, n_clusters, n_skus).astype(np.int32)
    vecs = centroids[cluster] + 0.35 * rng.normal(size=(n_skus, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ucl = rng.integers(0, n_clusters, n_users)
    uvecs = centroids[ucl] + 0.5 * rng.normal(size=(n_users, dim)).astype(np.float32)
    uvecs /= np.linalg.norm(uvecs, axis=1, keepdims=True)
    item_ids = np.char.add("SKU-", np.char.zfill(np.arange(n_skus).astype(str), 6))
    user_ids = np.char.add("U-", np.char.zfill(np.arange(n_users).astype(str), 6))
    popularity = (rng.pareto(1.2, n_skus) + 1.0).astype(np.float32)
    popularity /= popularity.max()
    price = np.round(np.exp(rng.normal(3.0, 0.9, n_skus)), 2).astype(np.float32)
    margin = np.clip(rng.beta(2, 5, n_skus), 0.01, 0.9).astype(np.float32)
    stock = np.where(rng.random(n_skus) < 0.08, 0, rng.integers(1, 200, n_skus)).astype(np.float32)
    top = rng.integers(0, 20, n_skus)
    mid = rng.integers(0, 10, n_skus)
    leaf = rng.integers(0, 10, n_skus)
    cat_names = np.asarray([f"dept{a}/aisle{b}/shelf{c}" for a in range(20) for b in range(10) for c in range(10)],
                           dtype=object)
    category = cat_names[top * 100 + mid * 10 + leaf]
    brand_names = np.asarray([f"brand{b}" for b in range(5000)], dtype=object)
    brand = brand_names[np.minimum(rng.zipf(1.3, n_skus) - 1, 4999)]
    today = np.datetime64("today", "D")
    age = rng.integers(0, 1500, n_skus)
    launch = today - age.astype("timedelta64[D]")
    promo = rng.random(n_skus) < 0.08
    sponsored = rng.random(n_skus) < 0.03
    campaign = np.where(sponsored, "camp-1", "").astype(object)
    consumable = rng.random(n_skus) < 0.15
    price_rel = (price / np.median(price)).astype(np.float32)
    feats = np.c_[popularity, price, margin, age.astype(np.float32), promo.astype(np.float32), price_rel]
    columns = {"price": price, "margin": margin, "stock": stock, "category": category, "brand": brand,
               "launch": launch, "promo": promo, "sponsored": sponsored, "campaign": campaign,
               "consumable": consumable}
    shop = Shop(item_ids, user_ids, vecs, uvecs, cluster, centroids, popularity, columns,
                np.ascontiguousarray(feats, dtype=np.float32), seed)
    shop.seconds = time.perf_counter() - t0
    return shop


def publish(shop: Shop, store: Any, *, batch_size: int = 10_000) -> dict[str, float]:
    """Load the shop into a new store version and switch to it; returns load throughput."""
    t0 = time.perf_counter()
    v = store.create_version({"bench": "serve-latency", "seed": shop.seed, "items": len(shop.item_ids)})
    t_vec = time.perf_counter()
    store.bulk_load("item_vectors", shop.item_ids, shop.item_vectors, version=v, batch_size=batch_size)
    vec_seconds = time.perf_counter() - t_vec
    store.bulk_load("item_features", shop.item_ids, shop.item_features, columns=ITEM_FEATURE_COLUMNS, version=v,
                    batch_size=batch_size)
    store.bulk_load("user_vectors", shop.user_ids, shop.user_vectors, version=v, batch_size=batch_size)
    store.activate(v)
    total = time.perf_counter() - t0
    rows = 2 * len(shop.item_ids) + len(shop.user_ids)
    return {"version": v, "load_seconds": total, "rows": rows, "rows_per_s": rows / total,
            "item_vectors_per_s": len(shop.item_ids) / vec_seconds}


# ================================================================================================
# stand-in stages
# ================================================================================================


def hard_constraint_mask(catalog: Any, rules: Any) -> np.ndarray | None:
    """The items the rule file's request-independent hard filters keep (stock, price range,
    category allow/deny), as a mask over `catalog` — what a filtered ANN search is given. None when
    the file has no such filter."""
    f = rules.spec.filters
    if not (f.in_stock or f.price_min is not None or f.price_max is not None or f.category_allow
            or f.category_deny):
        return None
    return catalog.mask(in_stock=f.in_stock, min_stock=int(np.ceil(f.min_stock)),
                        categories=list(f.category_allow) or None, exclude_categories=list(f.category_deny),
                        price_min=f.price_min, price_max=f.price_max)


@dataclass
class AnnParts:
    """The retrieval component the bench serves with, and how it was made."""

    source: Any
    index: Any
    build_seconds: float
    description: dict[str, Any]


def ann_source(shop: Shop, rules: Any = None, *, index_dir: str | Path | None = None,
               name: str = "ann") -> AnnParts:
    """The production ANN path over the shop: `tastemaker.retrieval.AnnSource` on the default index
    (faiss IVF-Flat, about 2·sqrt(n) lists, nprobe 64 — the ANN bench's choice) and the users'
    embeddings, behind the pipeline's `RetrievalSource` adapter (external ids in and out). The rule
    file's static hard filters go into the index's filtered search. With `index_dir` holding a
    saved index (`VectorIndex.save`) it is loaded instead of built (the HTTP server does this)."""
    from tastemaker.data.catalog import Catalog
    from tastemaker.data.vocabulary import Vocabulary
    from tastemaker.pipeline import RetrievalSource
    from tastemaker.retrieval import AnnSource, default_index, load_vector_index

    t0 = time.perf_counter()
    if index_dir is not None and (Path(index_dir) / "ann.json").is_file():
        index = load_vector_index(index_dir)
        if len(index) != len(shop.item_ids):
            raise RuntimeError(f"the saved index in {index_dir} holds {len(index):,} items, the shop "
                               f"{len(shop.item_ids):,}")
    else:
        index = default_index().build(shop.item_vectors)
    build_seconds = time.perf_counter() - t0
    catalog = Catalog.build(shop.item_ids, price=shop.columns["price"], stock=shop.columns["stock"],
                            category=shop.columns["category"], name="synthetic-shop")
    allowed = hard_constraint_mask(catalog, rules) if rules is not None else None
    source = RetrievalSource(AnnSource(index, user_vectors=shop.user_vectors, name=name), catalog,
                             user_vocab=Vocabulary(shop.user_ids), name=name, allowed=allowed)
    shown = {k: v for k, v in index.params().items() if k in ("kind", "nlist", "nprobe")}
    desc = {"ann": f"{type(index).__name__}({', '.join(f'{k}={v}' for k, v in shown.items())})",
            "ann_filtered_share": None if allowed is None else round(float(allowed.mean()), 4),
            "ann_build_seconds": round(build_seconds, 2)}
    return AnnParts(source, index, build_seconds, desc)


class LightGBMStandIn:
    """A LightGBM LambdaMART ranker fitted on synthetic labels (for timing), over `FEATURES`."""

    def __init__(self, *, n_trees: int = 100, leaves: int = 31, seed: int = 0) -> None:
        import lightgbm as lgb

        rng = np.random.default_rng(seed)
        n_q, per_q = 300, 50
        x = rng.normal(size=(n_q * per_q, len(FEATURES))).astype(np.float32)
        signal_ = x[:, 2] + 0.5 * x[:, 3] + 0.3 * x[:, 0] - 0.2 * x[:, 8] + rng.normal(scale=0.5, size=len(x))
        y = np.digitize(signal_, np.quantile(signal_, [0.7, 0.9, 0.97]))
        self.model = lgb.LGBMRanker(n_estimators=n_trees, num_leaves=leaves, learning_rate=0.1, verbose=-1,
                                    random_state=seed, n_jobs=1)
        self.model.fit(x, y, group=[per_q] * n_q)
        self.booster = self.model.booster_
        self.columns = list(FEATURES)
        self.n_trees = n_trees

    def score(self, request: PipelineRequest, candidates: CandidateSet) -> np.ndarray:
        return self.booster.predict(candidates.matrix(self.columns), num_threads=1)


class _DerivedFeatures:
    """Adds the request-relative features the ranker expects (price relative to the catalogue median
    is stored; missing source scores become 0)."""

    name = "derive"

    def run(self, request: PipelineRequest, candidates: CandidateSet) -> CandidateSet:
        n = len(candidates)
        for col in ("score_ann", "score_popular"):
            candidates.features.setdefault(col, np.zeros(n))
        return candidates


def bench_pipeline(shop: Shop, store: Any, *, ranker: str = "lightgbm", rules_path: str | Path | None = None,
                   source_factory: Callable[[Shop, Any], Any] | None = None, scorer: Any = None,
                   ann: AnnParts | None = None, index_dir: str | Path | None = None) -> tuple[Pipeline, dict[str, Any]]:
    """The serve-latency pipeline over `shop` and `store`; returns it with a description. The ANN
    source is `ann_source` (built, or loaded from `index_dir`) unless `ann` or `source_factory`
    gives another."""
    from tastemaker.ranking import RuleSet

    rules = RuleSet.load(rules_path or REPO_RULES)
    ann_desc: dict[str, Any] = {}
    if source_factory is not None:
        ann = None
        source = source_factory(shop, store)
    else:
        ann = ann or ann_source(shop, rules, index_dir=index_dir)
        source, ann_desc = ann.source, ann.description
    top_pop = np.argsort(-shop.popularity)[:2000]
    popular = PopularSource((shop.item_ids[top_pop], shop.popularity[top_pop]), name="popular")
    retrieve = Retrieve([source, popular], n=500, quotas={source.name: 450, "popular": 50}, fusion="max")
    if scorer is None:
        if ranker == "lightgbm":
            try:
                scorer = LightGBMStandIn()
            except ImportError:
                ranker = "linear"
        if ranker == "linear":
            from tastemaker.pipeline import LinearScorer

            scorer = LinearScorer({"user_item_dot": 1.0, "item.popularity": 0.5, "score_ann": 0.3})
    attributes = AttributeTable.from_columns(shop.item_ids, **shop.columns)
    stages = [retrieve, StoreFeatures(store), _DerivedFeatures(), Score(scorer, name="rank"),
              Rules(rules, attributes)]
    kind = type(getattr(source, "source", source)).__name__
    desc = {"retrieval": f"{kind} 450 + popular 50", **ann_desc, "ranker": type(scorer).__name__,
            "ranker_trees": getattr(scorer, "n_trees", None), "rules": str(rules_path or REPO_RULES),
            "store": getattr(store, "backend", type(store).__name__)}
    return Pipeline(stages, name="serve-latency", k=20), desc


# ================================================================================================
# measuring
# ================================================================================================


def rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default) in MiB, from /proc."""
    try:
        with open(f"/proc/{pid or 'self'}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def percentiles(ms: np.ndarray) -> dict[str, float]:
    if len(ms) == 0:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan")}
    p = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": round(float(p[0]), 3), "p95_ms": round(float(p[1]), 3), "p99_ms": round(float(p[2]), 3)}


def run_in_process(pipeline: Pipeline, shop: Shop, n_requests: int, *, seed: int = 1, warmup: int = 200,
                   k: int = 20) -> dict[str, Any]:
    """Run `n_requests` requests for random users one after another; latency per request and stage.

    Besides wall-clock percentiles, ``cpu_p50_ms``… give the CPU time of the request's thread: on a
    machine shared with other work, wall time includes waiting for a core, CPU time does not."""
    rng = np.random.default_rng(seed)
    users = shop.user_ids[rng.integers(0, len(shop.user_ids), n_requests + warmup)]
    errors = 0
    totals = np.empty(n_requests)
    cpu = np.empty(n_requests)
    stages: dict[str, list[float]] = {}
    stage_cpu: dict[str, list[float]] = {}
    degraded = 0
    t_start = None
    for j, u in enumerate(users):
        if j == warmup:
            t_start = time.perf_counter()
        req = PipelineRequest(user_id=str(u), k=k, request_id=f"r{j}")
        c0 = time.thread_time()
        t0 = time.perf_counter()
        try:
            res = pipeline.run(req)
        except Exception:
            errors += 1
            continue
        dt = (time.perf_counter() - t0) * 1000.0
        if j < warmup:
            continue
        totals[j - warmup] = dt
        cpu[j - warmup] = (time.thread_time() - c0) * 1000.0
        degraded += res.degraded is not None
        for st in res.stages:
            stages.setdefault(st.stage, []).append(st.ms)
            stage_cpu.setdefault(st.stage, []).append(st.cpu_ms or 0.0)
    wall = time.perf_counter() - (t_start or time.perf_counter())
    out = {**percentiles(totals), "mean_ms": round(float(totals.mean()), 3), "rps": round(n_requests / wall, 1),
           "errors": errors, "degraded": degraded, "memory_mb": round(rss_mb(), 1),
           **{f"cpu_{k}": v for k, v in percentiles(cpu).items()}}
    out["stages"] = {name: {**percentiles(np.asarray(v)), "mean_ms": round(float(np.mean(v)), 3),
                            **{f"cpu_{k}": x for k, x in percentiles(np.asarray(stage_cpu[name])).items()}}
                     for name, v in stages.items()}
    return out


# --- HTTP ------------------------------------------------------------------------------------------


def bench_app_from_env():
    """App factory for the benchmark's server process (``TASTEMAKER_BENCH`` holds its JSON spec)."""
    from tastemaker.pipeline import Resources
    from tastemaker.serving.app import create_app
    from tastemaker.serving.service import Service
    from tastemaker.serving.settings import ServeSettings

    spec = json.loads(os.environ["TASTEMAKER_BENCH"])
    shop = make_shop(spec["n_skus"], n_users=spec["n_users"], dim=spec["dim"], seed=spec["seed"])
    store = _open_store(spec["store"], spec["namespace"], publish_into=shop if spec["store"] == "memory" else None)
    pipeline, _ = bench_pipeline(shop, store, ranker=spec["ranker"], rules_path=spec.get("rules"),
                                 index_dir=spec.get("index_dir"))
    # each worker process keeps its own event log
    data_dir = Path(spec["data_dir"]) / f"worker-{os.getpid()}"
    settings = ServeSettings(data_dir=str(data_dir), fsync=True, max_k=100)
    service = Service(settings, Resources(store=store), pipeline)
    app = create_app(settings, service=service)
    (Path(spec["data_dir"]) / f"ready-{os.getpid()}").touch()  # start_server waits for every worker
    return app


def _open_store(kind: str, namespace: str, *, publish_into: Shop | None = None, redis_url: str | None = None):
    from tastemaker.store import MemoryStore
    from tastemaker.store.redis import RedisStore

    if kind == "memory":
        store = MemoryStore(namespace=namespace)
        if publish_into is not None:
            publish(publish_into, store)
        return store
    return RedisStore(redis_url or os.environ.get("TASTEMAKER_BENCH_REDIS", "redis://127.0.0.1:6379/0"),
                      namespace=namespace, pointer_ttl=1.0)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(spec: dict[str, Any], *, timeout: float = 900.0, log_path: Path | None = None,
                 workers: int = 1) -> tuple[Any, int]:
    """Start the benchmark server (uvicorn, uvloop/httptools when installed); `workers` > 1 runs that
    many worker processes behind one listening socket (each builds the shop and loads the index)."""
    port = _free_port()
    env = {**os.environ, "TASTEMAKER_BENCH": json.dumps(spec), "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "tastemaker.bench.serving:bench_app_from_env",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    for mod, opt in (("uvloop", ["--loop", "uvloop"]), ("httptools", ["--http", "httptools"])):
        if _importable(mod):
            cmd += opt
    log = open(log_path or os.devnull, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    import httpx

    ready_dir = Path(spec["data_dir"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the benchmark server exited with code {proc.returncode}"
                               + (f"; see {log_path}" if log_path else ""))
        try:
            if (httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
                    and len(list(ready_dir.glob("ready-*"))) >= workers):
                time.sleep(0.5 if workers > 1 else 0.0)  # the last worker's start-up hook
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the benchmark server did not answer within {timeout:.0f} s")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


WRK_SCRIPT = """
math.randomseed(42)
request = function()
  return wrk.format("GET", string.format("/recommendations?user_id=U-%06d&k=20", math.random(0, {n_users} - 1)))
end
response = function(status, headers, body)
  if status ~= 200 then bad = (bad or 0) + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format('WRKJSON {{"p50_us": %d, "p95_us": %d, "p99_us": %d, "requests": %d, '
    .. '"seconds": %f, "errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_status": %d, '
    .. '"errors_timeout": %d}}\\n',
    latency:percentile(50), latency:percentile(95), latency:percentile(99), summary.requests,
    summary.duration / 1e6, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
"""


def run_wrk(port: int, n_users: int, *, seconds: int = 30, connections: int = 4, threads: int = 1) -> dict[str, Any]:
    """Closed-loop load with wrk; latency percentiles and throughput."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(WRK_SCRIPT.replace("{n_users}", str(n_users)).replace("{{", "{").replace("}}", "}"))
        script = fh.name
    try:
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
                              "-s", script, f"http://127.0.0.1:{port}"], capture_output=True, text=True,
                             timeout=seconds + 60)
    finally:
        os.unlink(script)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    d = json.loads(line[len("WRKJSON "):])
    errors = sum(v for k, v in d.items() if k.startswith("errors_"))
    return {"p50_ms": d["p50_us"] / 1000, "p95_ms": d["p95_us"] / 1000, "p99_ms": d["p99_us"] / 1000,
            "rps": round(d["requests"] / d["seconds"], 1), "errors": errors, "requests": d["requests"],
            "connections": connections, "seconds": seconds}


class _Conn:
    """A minimal HTTP/1.1 keep-alive client connection (GET only) — much cheaper per request than
    httpx, so the load generator leaves the CPU to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Conn:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return cls(r, w)

    async def get(self, path: str) -> int:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def _open_loop(port: int, n_users: int, n_requests: int, rate: float, seed: int = 7,
                     max_connections: int = 256) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_requests)
    lat = np.full(n_requests, np.nan)
    errors = 0
    idle: list[_Conn] = []
    opened = 0
    start = time.perf_counter() + 0.05

    async def one(j: int) -> None:
        nonlocal errors, opened
        scheduled = start + j / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if idle:
            conn = idle.pop()
        else:
            if opened >= max_connections:
                errors += 1
                return
            opened += 1
            try:
                conn = await _Conn.open(port)
            except OSError:
                errors += 1
                return
        try:
            status = await conn.get(f"/recommendations?user_id=U-{users[j]:06d}&k=20")
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            conn.close()
            return
        lat[j] = (time.perf_counter() - scheduled) * 1000.0
        if status != 200:
            errors += 1
        idle.append(conn)

    await asyncio.gather(*(one(j) for j in range(n_requests)))
    wall = time.perf_counter() - start
    for c in idle:
        c.close()
    ok = lat[~np.isnan(lat)]
    return {**percentiles(ok), "rps": round(len(ok) / wall, 1), "errors": errors, "target_rps": rate,
            "requests": n_requests, "connections_opened": opened}


def process_tree(pid: int) -> list[int]:
    """`pid` and its living descendants (uvicorn's worker processes), from /proc."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            continue
    return out


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process and its living children have used (from /proc)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its living children, summed (MiB; shared pages count twice)."""
    return sum(x for x in (rss_mb(p) for p in process_tree(pid)) if x == x)


def run_open_loop(port: int, n_users: int, n_requests: int, rate: float) -> dict[str, Any]:
    """Open-loop load at a fixed `rate` (latency counted from each request's scheduled time).

    Runs in a thread of its own when this thread already runs an event loop (a notebook, or a
    Playwright sync session), where `asyncio.run` would refuse."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_open_loop(port, n_users, n_requests, rate))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _open_loop(port, n_users, n_requests, rate)).result()


# ================================================================================================
# the benchmark
# ================================================================================================


def run_serve_latency(n_skus: int, store: str = "memory", n_requests: int = 10_000, http: bool = False, *,
                      n_users: int = 100_000, dim: int = 32, seed: int = 0, ranker: str = "lightgbm",
                      rules: str | Path | None = None, rate: float = 200.0, wrk_seconds: int = 30,
                      wrk_connections: int = 4, load_generator: str = "auto", redis_url: str | None = None,
                      workers: int | None = None,
                      log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure the serving stage; returns the bench JSON document (rows: in-process, and with `http`
    an open-loop row at `rate` and a wrk row). `workers`: server processes (default: one per core, at
    most 2, with the Redis store — they share it; 1 with the memory store, which each would copy)."""
    from tastemaker.bench.suites import machine_info
    from tastemaker.errors import ConfigError

    if store not in ("memory", "redis"):
        raise ConfigError(f"store must be 'memory' or 'redis', got {store!r}")
    if load_generator not in ("auto", "wrk", "python"):
        raise ConfigError(f"load_generator must be 'auto', 'wrk' or 'python', got {load_generator!r}")
    say = log or (lambda s: None)
    namespace = f"bench-{os.getpid()}-{int(time.time())}"
    say(f"building a synthetic shop of {n_skus:,} SKUs and {n_users:,} users")
    shop = make_shop(n_skus, n_users=n_users, dim=dim, seed=seed)
    the_store = _open_store(store, namespace, redis_url=redis_url)
    if redis_url is not None:
        os.environ["TASTEMAKER_BENCH_REDIS"] = redis_url
    say(f"publishing to the {store} store")
    load = publish(shop, the_store)
    from tastemaker.ranking import RuleSet

    say("building the ANN index (faiss IVF-Flat, the retrieval package's default)")
    ann = ann_source(shop, RuleSet.load(rules or REPO_RULES))
    pipeline, desc = bench_pipeline(shop, the_store, ranker=ranker, rules_path=rules, ann=ann)
    params = {"n_skus": n_skus, "n_users": n_users, "dim": dim, "store": store, "k": 20, "candidates": 500,
              "seed": seed, **desc}
    rows = []
    try:
        say(f"in process: {n_requests:,} requests")
        t0 = time.perf_counter()
        res = run_in_process(pipeline, shop, n_requests)
        res["store_load_rows_per_s"] = round(load["rows_per_s"])
        res["store_item_vectors_per_s"] = round(load["item_vectors_per_s"])
        rows.append({"protocol": "in-process", "system": "tastemaker", "model": f"serve-pipeline/{store}",
                     "params": params, "metrics": _flat(res), "stages": res["stages"],
                     "fit_seconds": round(shop.seconds + load["load_seconds"] + ann.build_seconds, 2),
                     "predict_seconds": round(time.perf_counter() - t0, 2)})
        del pipeline
        if http:
            rows += _http_rows(ann, store, namespace, n_skus, n_users, dim, seed, ranker, rules, n_requests, rate,
                               wrk_seconds, wrk_connections, load_generator, params, say, workers)
    finally:
        if store == "redis":
            the_store.destroy_namespace()
        the_store.close()
    return {
        "suite": "serve-latency",
        "protocol": ", ".join(r["protocol"] for r in rows),
        "protocols": [{"name": "in-process", "description": "the pipeline called directly, one request at a time"},
                      {"name": "http-open-loop", "description": f"GET /recommendations over loopback at a fixed "
                       f"{rate:g} req/s (Python asyncio raw HTTP/1.1 generator, latency from the scheduled send time)"},
                      {"name": "http-wrk", "description": f"GET /recommendations over loopback, wrk closed loop, "
                       f"{wrk_connections} connections"}],
        "dataset": f"synthetic-shop-{n_skus}",
        "machine": {**machine_info(), "load_average": os.getloadavg()},
        "rows": rows,
        "comparisons": [],
    }


def _flat(res: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in res.items() if k != "stages"}
    for name, st in res.get("stages", {}).items():
        out[f"{name}_p99_ms"] = st["p99_ms"]
        out[f"{name}_cpu_p99_ms"] = st["cpu_p99_ms"]
    return out


def _http_rows(ann, store, namespace, n_skus, n_users, dim, seed, ranker, rules, n_requests, rate, wrk_seconds,
               wrk_connections, load_generator, params, say, workers=None) -> list[dict[str, Any]]:
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if store == "redis" else 1
    params = {**params, "server_workers": workers}
    data_dir = tempfile.mkdtemp(prefix="tm-bench-")
    index_dir = Path(data_dir) / "ann"
    ann.index.save(index_dir)  # the server loads it rather than building it again
    spec = {"n_skus": n_skus, "n_users": n_users, "dim": dim, "seed": seed, "store": store, "namespace": namespace,
            "ranker": ranker, "rules": str(rules) if rules else None, "data_dir": data_dir,
            "index_dir": str(index_dir)}
    say(f"starting the HTTP server ({workers} worker process{'es' if workers > 1 else ''}; each builds the same "
        "shop and loads the saved index)")
    t0 = time.perf_counter()
    log_path = Path(data_dir) / "server.log"
    proc, port = start_server(spec, log_path=log_path, workers=workers)
    startup = time.perf_counter() - t0
    rows = []
    try:
        say(f"open loop: {n_requests:,} requests at {rate:g}/s")
        t1 = time.perf_counter()
        cpu0 = process_cpu_seconds(proc.pid)
        res = run_open_loop(port, n_users, n_requests, rate)
        res["server_cpu_ms_per_request"] = round((process_cpu_seconds(proc.pid) - cpu0) * 1000 / n_requests, 3)
        res["memory_mb"] = round(tree_rss_mb(proc.pid), 1)
        res["load_generator"] = "python asyncio raw HTTP/1.1 keep-alive (open loop)"
        rows.append({"protocol": "http-open-loop", "system": "tastemaker", "model": f"serve-http/{store}",
                     "params": {**params, "rate": rate}, "metrics": res, "fit_seconds": round(startup, 2),
                     "predict_seconds": round(time.perf_counter() - t1, 2)})
        use_wrk = load_generator in ("auto", "wrk") and shutil.which("wrk") is not None
        if load_generator == "wrk" and not use_wrk:
            raise RuntimeError("wrk is not installed: apt-get install -y wrk, or use load_generator='python'")
        if use_wrk:
            say(f"wrk: {wrk_seconds} s, {wrk_connections} connections")
            t1 = time.perf_counter()
            cpu0 = process_cpu_seconds(proc.pid)
            res = run_wrk(port, n_users, seconds=wrk_seconds, connections=wrk_connections)
            res["server_cpu_ms_per_request"] = round((process_cpu_seconds(proc.pid) - cpu0) * 1000
                                                     / max(res["requests"], 1), 3)
            res["memory_mb"] = round(tree_rss_mb(proc.pid), 1)
            res["load_generator"] = "wrk (closed loop)"
            rows.append({"protocol": "http-wrk", "system": "tastemaker", "model": f"serve-http/{store}",
                         "params": params, "metrics": res, "fit_seconds": round(startup, 2),
                         "predict_seconds": round(time.perf_counter() - t1, 2)})
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
    return rows


def run_bulk_load(n: int, dim: int = 32, *, store: str = "redis", batch_size: int = 10_000, seed: int = 0,
                  redis_url: str | None = None) -> dict[str, Any]:
    """Bulk-load throughput: `n` float32 vectors of `dim` into a fresh version, then the switch."""
    rng = np.random.default_rng(seed)
    ids = np.char.add("SKU-", np.arange(n).astype(str))
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    s = _open_store(store, f"bench-load-{os.getpid()}", redis_url=redis_url)
    try:
        t0 = time.perf_counter()
        v = s.create_version({"bench": "bulk-load"})
        s.bulk_load("item_vectors", ids, vecs, version=v, batch_size=batch_size)
        t_load = time.perf_counter() - t0
        t1 = time.perf_counter()
        s.activate(v)
        t_switch = time.perf_counter() - t1
        check = s.get_item_vectors(ids[:1000].tolist())
        assert check.found.all() and np.array_equal(check.values, vecs[:1000])
        return {"store": store, "n": n, "dim": dim, "batch_size": batch_size, "seconds": round(t_load, 3),
                "vectors_per_s": round(n / t_load), "mb_per_s": round(n * dim * 4 / t_load / 2**20, 1),
                "switch_ms": round(t_switch * 1000, 3)}
    finally:
        if store == "redis":
            s.destroy_namespace()
        s.close()
