"""The relevance vs diversity bench: the knobs move the metrics the right way, the relevance ends
agree with the plain model, and the document and PNG come out whole."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from tastemaker.bench.diversity import RerankTask, movielens_task, rerank_all, run_diversity_bench, sweep
from tastemaker.data.g1 import G1Clicks
from tastemaker.errors import ConfigError

LAMBDAS = (0.0, 0.5, 1.0)


def synthetic_g1(hours: int = 6, sessions_per_hour: int = 150, n_topics: int = 4, seed: int = 0) -> G1Clicks:
    """Sessions of 2-5 clicks, mostly on their user's topic; some articles appear every hour."""
    rng = np.random.default_rng(seed)
    t0 = 1_506_800_000_000
    topic_articles = [list(range(100 * t, 100 * t + 12)) for t in range(n_topics)]
    cols = {k: [] for k in ("user", "session", "start", "size", "article", "ts", "window")}
    sid = 0
    for h in range(hours):
        for t in range(n_topics):
            topic_articles[t] += [100 * t + 12 + 2 * h, 100 * t + 13 + 2 * h]  # fresh articles
        for _ in range(sessions_per_hour):
            sid += 1
            user = int(rng.integers(0, 250))
            size = int(rng.integers(2, 6))
            arts: list[int] = []
            while len(arts) < size:  # mostly the user's topic, sometimes another one
                topic = user % n_topics if rng.random() < 0.7 else int(rng.integers(n_topics))
                pool = np.array(topic_articles[topic])
                weights = 1.0 / np.arange(1, len(pool) + 1)
                a = int(rng.choice(pool, p=weights / weights.sum()))
                if a not in arts:
                    arts.append(a)
            start = t0 + h * 3_600_000 + int(rng.integers(0, 3_000_000))
            for j, a in enumerate(arts):
                cols["user"].append(user)
                cols["session"].append(sid)
                cols["start"].append(start)
                cols["size"].append(size)
                cols["article"].append(int(a))
                cols["ts"].append(start + 60_000 * j)
                cols["window"].append(h)
    n = len(cols["article"])
    return G1Clicks(user=np.array(cols["user"], np.int64), session=np.array(cols["session"], np.int64),
                    session_start=np.array(cols["start"], np.int64), session_size=np.array(cols["size"], np.int32),
                    article=np.array(cols["article"], np.int64), timestamp=np.array(cols["ts"], np.int64),
                    context=np.zeros((n, 6), np.int32), window=np.array(cols["window"], np.int32),
                    files=tuple(f"clicks_hour_{h:03d}.csv" for h in range(hours)))


def by(rows, dataset, method, lam):
    return next(r["metrics"] for r in rows if r["dataset"] == dataset and r["method"] == method
                and r["lambda"] == lam)


@pytest.fixture(scope="module")
def g1_doc(tmp_path_factory):
    png = tmp_path_factory.mktemp("div") / "tradeoff.png"
    doc = run_diversity_bench(datasets=("g1",), g1_clicks=synthetic_g1(), g1_descriptor_hours=4, lambdas=LAMBDAS,
                              n_candidates=30, g1_model="stan", g1_max_requests=None, g1_dim=4, g1_topics=4, png=png)
    return doc, png


def test_bench_document_and_png(g1_doc):
    doc, png = g1_doc
    assert doc["suite"] == "diversity" and "cpu" in doc["machine"]
    assert len(doc["rows"]) == 2 * len(LAMBDAS)
    assert set(doc["curves"]["g1"]) == {"mmr", "calibrated"}
    curve = doc["curves"]["g1"]["mmr"]
    assert curve["lambda"] == list(LAMBDAS) and len(curve["ndcg@10"]) == len(LAMBDAS)
    text = json.dumps(doc, allow_nan=False)  # plain JSON, no NaN
    assert json.loads(text)["rows"][0]["metrics"].keys() >= {"ndcg@10", "ild@10", "coverage@10", "novelty@10"}
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000 and doc["png"] == str(png)
    info = doc["datasets"]["g1"]
    assert info["requests"] > 100 and info["target_in_candidates"] > 0.5
    assert info["scored_hours"] == "4..5"


def test_g1_knobs_move_the_metrics(g1_doc):
    rows = g1_doc[0]["rows"]
    # both relevance ends are the session model's own order
    assert by(rows, "g1", "mmr", 1.0) == by(rows, "g1", "calibrated", 0.0)
    assert by(rows, "g1", "mmr", 0.0)["ild@10"] > by(rows, "g1", "mmr", 1.0)["ild@10"] + 0.05
    assert by(rows, "g1", "mmr", 0.0)["ndcg@10"] < by(rows, "g1", "mmr", 1.0)["ndcg@10"]
    cal0, cal1 = by(rows, "g1", "calibrated", 0.0), by(rows, "g1", "calibrated", 1.0)
    assert cal1["miscalibration@10"] < 0.7 * cal0["miscalibration@10"]


@pytest.fixture(scope="module")
def movielens_rows(data_root):
    from tastemaker.data import load_dataset
    from tastemaker.evaluation.protocols import topn_scores
    from tastemaker.models.registry import create_model

    ml = load_dataset("ml-100k", data_root / "ml-100k")
    train, test = ml.split("u1")
    ease = create_model("ease").fit(train)
    plain, _, _, _ = topn_scores(ease, train, test, 10, 4.0)
    task = movielens_task(ml, model=ease)
    return sweep(task, lambdas=LAMBDAS), plain, task


def test_movielens_relevance_end_is_the_plain_ease_list(movielens_rows):
    rows, plain, task = movielens_rows
    for end in (by(rows, "ml-100k", "mmr", 1.0), by(rows, "ml-100k", "calibrated", 0.0)):
        assert end["ndcg@10"] == pytest.approx(plain["ndcg@10"], abs=1e-9)
        assert end["ild@10"] == pytest.approx(plain["ild@10"], abs=1e-9)
        assert end["coverage@10"] == pytest.approx(plain["coverage@10"], abs=1e-9)
        assert end["novelty@10"] == pytest.approx(plain["novelty@10"], abs=1e-9)
    assert task.n_requests == 456 and task.candidates.shape[1] == 100


def test_movielens_knobs_trade_ndcg_for_diversity(movielens_rows):
    rows = movielens_rows[0]
    m0, m5, m1 = (by(rows, "ml-100k", "mmr", lam) for lam in LAMBDAS)
    assert m0["ild@10"] > m5["ild@10"] > m1["ild@10"]
    assert m0["ndcg@10"] < m5["ndcg@10"] < m1["ndcg@10"]
    assert m0["coverage@10"] > m1["coverage@10"] and m0["novelty@10"] > m1["novelty@10"]
    c0, c5, c1 = (by(rows, "ml-100k", "calibrated", lam) for lam in LAMBDAS)
    assert c1["miscalibration@10"] < c5["miscalibration@10"] < c0["miscalibration@10"]
    assert c1["ndcg@10"] < c5["ndcg@10"] < c0["ndcg@10"]


def test_rerank_all_on_a_tiny_task():
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    dist = vectors / vectors.sum(axis=1, keepdims=True)
    task = RerankTask(
        name="tiny", candidates=np.array([[0, 1, 2, 3], [3, 2, -1, -1]]),
        relevance=np.array([[4.0, 3.0, 2.0, 1.0], [2.0, 1.0, 0.0, 0.0]]),
        relevant=sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 1]], dtype=float)), item_vectors=vectors,
        item_dist=dist, targets=np.array([[1.0, 1.0], [0.0, 0.0]]), popularity=np.array([3, 2, 1, 1]),
        n_popularity_users=4)
    assert rerank_all(task, "mmr", 1.0, 3).tolist() == [[0, 1, 2], [3, 2, -1]]
    assert rerank_all(task, "mmr", 0.0, 3).tolist()[0][:2] == [0, 2]  # the least similar item comes second
    # a 50/50 target: calibration takes the other category second
    assert rerank_all(task, "calibrated", 0.9, 2).tolist()[0] == [0, 2]
    assert rerank_all(task, "calibrated", 0.9, 2).tolist()[1] == [3, 2]  # no target: relevance order
    with pytest.raises(ConfigError, match="unknown re-ranking method"):
        rerank_all(task, "shuffle", 0.5, 2)
    with pytest.raises(ConfigError, match="lambdas"):
        run_diversity_bench(datasets=("g1",), lambdas=(1.5,))
    with pytest.raises(ConfigError, match="unknown diversity bench"):
        run_diversity_bench(datasets=("netflix",))
