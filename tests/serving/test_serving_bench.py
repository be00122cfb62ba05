"""The serve-latency harness on a tiny shop: its JSON shape, per-stage timings, HTTP rows, bulk load."""

from __future__ import annotations

import shutil

import numpy as np

from tastemaker.bench.serving import make_shop, run_bulk_load, run_serve_latency
from tastemaker.testing.redis_server import require_redis

METRICS = {"p50_ms", "p95_ms", "p99_ms", "rps", "errors", "memory_mb"}


def test_the_synthetic_shop_is_seeded_and_consistent():
    a = make_shop(500, n_users=50, dim=8, seed=3)
    b = make_shop(500, n_users=50, dim=8, seed=3)
    np.testing.assert_array_equal(a.item_vectors, b.item_vectors)
    assert a.item_ids[42] == "SKU-000042" and len(set(a.item_ids.tolist())) == 500
    np.testing.assert_allclose(np.linalg.norm(a.item_vectors, axis=1), 1.0, rtol=1e-5)
    assert a.item_features.shape == (500, 6) and a.columns["category"][0].count("/") == 2


def test_serve_latency_in_process_and_over_http_with_redis():
    require_redis()
    doc = run_serve_latency(3000, store="redis", n_requests=40, http=True, n_users=500, rate=40.0, wrk_seconds=2,
                            wrk_connections=2)
    assert doc["suite"] == "serve-latency" and doc["dataset"] == "synthetic-shop-3000"
    rows = {r["protocol"]: r for r in doc["rows"]}
    expected = {"in-process", "http-open-loop"} | ({"http-wrk"} if shutil.which("wrk") else set())
    assert set(rows) == expected
    for row in rows.values():
        assert set(row["metrics"]) >= METRICS, row["protocol"]
        assert row["metrics"]["errors"] == 0, row
        assert row["metrics"]["p50_ms"] <= row["metrics"]["p95_ms"] <= row["metrics"]["p99_ms"]
    inproc = rows["in-process"]
    assert set(inproc["stages"]) == {"retrieve", "features", "derive", "rank", "rules"}
    assert inproc["metrics"]["degraded"] == 0 and inproc["metrics"]["store_item_vectors_per_s"] > 0
    assert inproc["params"]["store"] == "redis" and inproc["params"]["candidates"] == 500
    # the real retrieval component: faiss IVF behind AnnSource, hard filters pushed into the search
    assert inproc["params"]["retrieval"].startswith("AnnSource") and "kind=ivf" in inproc["params"]["ann"]
    assert 0.5 < inproc["params"]["ann_filtered_share"] < 1.0
    assert rows["http-open-loop"]["params"]["server_workers"] >= 1
    assert "load_generator" in rows["http-open-loop"]["metrics"]


def test_bulk_load_reports_throughput_for_both_backends():
    require_redis()
    for store in ("memory", "redis"):
        out = run_bulk_load(2000, 8, store=store, batch_size=500)
        assert out["n"] == 2000 and out["vectors_per_s"] > 0 and out["store"] == store
