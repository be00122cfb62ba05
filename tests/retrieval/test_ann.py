"""Vector indexes (exact, faiss, usearch): recall against exact search, filtered search, persistence,
and the ANN candidate source."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.bench.ann import markdown_table, recall_at_k, run_ann_bench
from tastemaker.data.catalog import synthetic_catalog, synthetic_embeddings
from tastemaker.errors import ArtifactError, ConfigError, DataError
from tastemaker.retrieval.ann import (
    AnnSource,
    ExactIndex,
    FaissIndex,
    UsearchIndex,
    default_index,
    exact_search,
    load_vector_index,
    make_index,
)
from tastemaker.retrieval.base import Query

N, DIM = 3000, 16


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return synthetic_embeddings(synthetic_catalog(N, seed=1), DIM, seed=1)


@pytest.fixture(scope="module")
def queries(vectors) -> np.ndarray:
    rng = np.random.default_rng(2)
    q = vectors[rng.choice(N, 40, replace=False)] + 0.2 * rng.standard_normal((40, DIM)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def factories():
    return {
        "faiss-hnsw": lambda: FaissIndex("hnsw", M=16, ef_construction=100, ef_search=64, threads=1),
        "faiss-ivf": lambda: FaissIndex("ivf", nlist=32, nprobe=16, threads=1),
        "faiss-flat": lambda: FaissIndex("flat"),
        "usearch": lambda: UsearchIndex(connectivity=16, expansion_add=100, expansion_search=64, threads=1),
        "usearch-f16": lambda: UsearchIndex(connectivity=16, expansion_add=100, expansion_search=64, dtype="f16",
                                            threads=1),
    }


@pytest.fixture(scope="module")
def built(vectors):
    return {name: make().build(vectors) for name, make in factories().items()}


def test_exact_search_matches_a_brute_force_reference(vectors, queries):
    labels, scores = exact_search(vectors, queries, 10)
    ref = vectors @ queries.T
    for r in range(len(queries)):
        order = np.lexsort((np.arange(N), -ref[:, r]))[:10]
        assert labels[r].tolist() == order.tolist()
        np.testing.assert_allclose(scores[r], ref[order, r], rtol=1e-5)
    lab, sc = exact_search(vectors[:5], queries[:2], 10)  # k beyond n: all rows, sorted
    assert lab.shape == (2, 5) and (np.diff(sc, axis=1) <= 0).all()


@pytest.mark.parametrize("name", list(factories()))
def test_approximate_indexes_find_the_exact_neighbours(built, queries, vectors, name):
    index = built[name]
    labels, scores = index.search(queries, 20)
    truth, _ = exact_search(vectors, queries, 20)
    assert recall_at_k(labels, truth) >= 0.9
    assert labels.shape == (len(queries), 20) and (labels >= 0).all()
    dots = np.einsum("qd,qkd->qk", queries, vectors[labels])
    np.testing.assert_allclose(scores, dots, atol=2e-2 if name.endswith("f16") else 1e-4)  # scores are inner products
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    assert index.memory_bytes() > 0 or name == "exact"


@pytest.mark.parametrize("name", list(factories()))
def test_filtered_search_returns_allowed_items_only(built, queries, vectors, name):
    index = built[name]
    rng = np.random.default_rng(3)
    for share, exact_below in ((0.02, 20_000), (0.3, 0)):  # the exact subset path, then the backend's own path
        index.exact_below = exact_below
        allowed = rng.random(N) < share
        labels, _ = index.search(queries, 10, allowed=allowed)
        valid = labels >= 0
        assert allowed[labels[valid]].all()
        rows = np.flatnonzero(allowed)
        truth = rows[exact_search(vectors[rows], queries, 10)[0]]
        assert recall_at_k(labels, truth) >= (0.999 if exact_below else 0.85)
    index.exact_below = 20_000
    none = index.search(queries[:2], 5, allowed=np.zeros(N, dtype=bool))[0]
    assert (none == -1).all()
    with pytest.raises(DataError, match="allowed mask has shape"):
        index.search(queries, 5, allowed=np.ones(N + 1, dtype=bool))


@pytest.mark.parametrize("name", ["faiss-hnsw", "faiss-ivf", "usearch"])
def test_save_and_load_give_the_same_answers(tmp_path, built, queries, name):
    index = built[name]
    index.save(tmp_path / name)
    back = load_vector_index(tmp_path / name)
    assert type(back) is type(index) and back.params() == index.params() and len(back) == N
    np.testing.assert_array_equal(back.search(queries, 10)[0], index.search(queries, 10)[0])


def test_load_rejects_what_is_not_an_index(tmp_path, built):
    with pytest.raises(ArtifactError, match=r"ann\.json is missing"):
        load_vector_index(tmp_path)
    built["faiss-hnsw"].save(tmp_path / "x")
    (tmp_path / "x" / "index.faiss").unlink()
    with pytest.raises(ArtifactError, match=r"index\.faiss is missing"):
        load_vector_index(tmp_path / "x")


def test_search_parameters_change_without_rebuild(vectors, queries):
    index = FaissIndex("hnsw", M=8, ef_construction=40, ef_search=16, threads=1).build(vectors)
    truth, _ = exact_search(vectors, queries, 50)
    low = recall_at_k(index.search(queries, 50)[0], truth)
    index.set_search_params(ef_search=400)
    assert recall_at_k(index.search(queries, 50)[0], truth) >= low
    assert index.params()["ef_search"] == 400


def test_bad_inputs_are_named():
    with pytest.raises(DataError, match="NaN"):
        ExactIndex().build(np.array([[1.0, np.nan]]))
    with pytest.raises(ConfigError, match="kind"):
        FaissIndex("lsh")
    with pytest.raises(ConfigError, match="unknown ANN backend"):
        make_index("annoy")
    with pytest.raises(ConfigError, match="empty"):
        _ = FaissIndex().vectors
    idx = ExactIndex().build(np.eye(3, dtype=np.float32))
    with pytest.raises(DataError, match="dimensions"):
        idx.search(np.ones((1, 4)), 1)
    assert isinstance(default_index(), FaissIndex) and default_index().kind == "ivf"


def test_ann_source_query_vectors_and_constraints(vectors):
    index = ExactIndex().build(vectors)
    users = np.stack([vectors[0], vectors[1]])
    src = AnnSource(index, user_vectors=users, half_life_days=None)
    got = src.retrieve(Query(user=1), 5)
    assert got.items[0] == 1 and got.source == "ann"
    # unknown user: the mean of the history's vectors
    hist = Query(user=-1, history=[10, 11], history_times=[0, 0])
    mean = (vectors[10] + vectors[11]) / 2
    assert src.retrieve(hist, 3).items.tolist() == exact_search(vectors, mean[None], 3)[0][0].tolist()
    # context items win over the user vector
    assert src.retrieve(Query(user=1, items=[42]), 1).items.tolist() == [42]
    allowed = np.zeros(N, dtype=bool)
    allowed[100:200] = True
    best = int(exact_search(vectors[100:200], users[:1], 1)[0][0, 0]) + 100
    got = src.retrieve(Query(user=0, allowed=allowed, exclude=[best]), 10)
    assert ((got.items >= 100) & (got.items < 200)).all() and len(got) == 10 and best not in got.items
    assert len(src.retrieve(Query(), 5)) == 0
    np.testing.assert_allclose(src.score(Query(user=0), np.array([0, 5])), vectors[[0, 5]] @ users[0], rtol=1e-5)
    assert np.isnan(src.score(Query(), np.array([0]))).all()


def test_recency_weighted_profile_leans_to_recent_items(vectors):
    src = AnnSource(ExactIndex().build(vectors), half_life_days=1.0)
    day = 86_400.0
    q = Query(history=[3, 4], history_times=[0.0, 10 * day], now=10 * day)
    assert src.retrieve(q, 1).items.tolist() == [4]


def test_bench_returns_the_bench_shape():
    res = run_ann_bench(2000, 8, n_queries=30, k=10, configs=[
        ("faiss", "hnsw", {"kind": "hnsw", "M": 8, "ef_construction": 40}, ({"ef_search": 16}, {"ef_search": 64}), 1),
        ("usearch", "hnsw", {"connectivity": 8, "expansion_add": 40}, ({"expansion_search": 64},), 0),
    ], filtered=0.2)
    assert res["suite"] == "ann-2000x8" and "cpu" in res["machine"]
    systems = [(r["system"], r["model"]) for r in res["rows"]]
    assert systems == [("numpy", "exact"), ("faiss", "hnsw"), ("faiss", "hnsw"), ("faiss", "hnsw+filter"),
                       ("usearch", "hnsw"), ("usearch", "hnsw+filter")]
    for r in res["rows"]:
        m = r["metrics"]
        assert set(m) >= {"recall@10", "p50_ms", "p95_ms", "p99_ms", "qps", "cpu_p50_ms", "cpu_p99_ms"}
        assert 0.0 <= m["recall@10"] <= 1.0 and m["p50_ms"] <= m["p95_ms"] <= m["p99_ms"]
        assert r["build_seconds"] >= 0 and r["memory_mb"] >= 0
    assert res["rows"][0]["metrics"]["recall@10"] == 1.0 and res["rows"][0]["metrics"]["recall@10_items"] == 1.0
    assert res["rows"][3]["params"]["ef_search"] == 64 and "recall@10_items" not in res["rows"][3]["metrics"]
    assert res["rows"][2]["metrics"]["recall@10"] >= res["rows"][1]["metrics"]["recall@10"] - 0.05
    assert markdown_table(res).count("\n") == len(res["rows"]) + 1
