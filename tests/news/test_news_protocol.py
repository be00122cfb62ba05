"""Protocol mechanics on a tiny synthetic stream with hand-computed HR / NDCG / MRR."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from tastemaker.data.g1 import G1Clicks
from tastemaker.evaluation.metrics import hit_rate_at_k, ndcg_at_k, reciprocal_rank_at_k
from tastemaker.evaluation.streaming import mean_over_windows, prepare_stream, rank_metrics, run_protocol
from tastemaker.models.session import create_session_model

MS = 1000
T0 = 1_507_000_000 * MS
H = 3600 * MS
A, B, C, D = 101, 102, 103, 104


def make_g1(sessions: list[tuple[int, int, int, list[int], list[int]]]) -> G1Clicks:
    """sessions: (window, user, session id, articles, click offsets in ms from the window start)."""
    cols: dict[str, list] = {k: [] for k in ("user", "session", "start", "size", "article", "ts", "window")}
    for w, user, sid, arts, offsets in sessions:
        for art, off in zip(arts, offsets):
            cols["user"].append(user)
            cols["session"].append(sid)
            cols["start"].append(T0 + w * H + offsets[0])
            cols["size"].append(len(arts))
            cols["article"].append(art)
            cols["ts"].append(T0 + w * H + off)
            cols["window"].append(w)
    n = len(cols["user"])
    return G1Clicks(user=np.array(cols["user"]), session=np.array(cols["session"]),
                    session_start=np.array(cols["start"]), session_size=np.array(cols["size"], np.int32),
                    article=np.array(cols["article"]), timestamp=np.array(cols["ts"]),
                    context=np.tile(np.array([[4, 3, 20, 1, 20, 2]], np.int32), (n, 1)),
                    window=np.array(cols["window"], np.int32), files=("h0", "h1", "h2"))


MIN = 60 * MS
STREAM = make_g1([
    (0, 1, 11, [A, B], [0, MIN]),
    (0, 2, 12, [A, C], [2 * MIN, 3 * MIN]),
    (0, 3, 13, [B, A], [4 * MIN, 5 * MIN]),
    (1, 1, 14, [A, B], [1 * MIN, 2 * MIN]),  # user 1 returns
    (1, 4, 15, [C, D], [10 * MIN, 11 * MIN]),  # D first seen here: unreachable in g1-stream
    (2, 5, 16, [B, C, D], [4 * MIN, 5 * MIN, 6 * MIN]),
])


@pytest.fixture(scope="module")
def stream():
    return prepare_stream(STREAM, test_fraction=1.0)


def counts():
    return create_session_model("recent_popularity", {"half_life_hours": 0.0})


def test_g1_stream_by_hand(stream):
    # window 1, model = window 0 (A 3, B 2, C 1): s14 [A]->B rank 0; s15 [C]->D unseen, miss
    # window 2, model = windows 0-1 (A 4, B 3, C 2, D 1): s16 [B, C]->D ranks after A: rank 1
    result, model = run_protocol("g1-stream", counts, stream, progress=False)
    m = result.metrics
    assert m["hr@20"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["ndcg@20"] == pytest.approx((0.5 + 1 / math.log2(3)) / 2)
    assert m["mrr@20"] == pytest.approx((0.5 + 0.5) / 2)
    # every next click: window 1 as above; window 2: [B]->C rank 1 (A first), [B, C]->D rank 1
    assert m["hr@20[next_click]"] == pytest.approx(0.75)
    assert m["mrr@20[next_click]"] == pytest.approx((0.5 + 0.5) / 2)
    assert m["n[last_click]"] == 3 and m["n[next_click]"] == 4
    # fresh: D first seen in window 1 (miss there), 55 minutes before its click in window 2 (rank 1)
    assert m["hr@20[fresh<1h]"] == pytest.approx(0.5) and m["n[fresh<1h]"] == 2
    assert m["hr@20[returning]"] == pytest.approx(1.0) and m["n[returning]"] == 1
    assert m["hr@20[first_session]"] == pytest.approx(0.5)
    # window 2 is scored, never absorbed
    assert model.n_clicks == 10
    # coverage: last-click lists held B, C (window 1) and A, D (window 2): 4 of 4 articles
    assert m["coverage@20"] == pytest.approx(1.0)


def test_g1_live_by_hand(stream):
    # live: each click sees every earlier click. s14 [A]->B: A 4, B 2 -> rank 0;
    # s15 [C]->D: D unseen -> miss; s16 [B]->C: A 4, B 3, C 2 -> rank 1; [B, C]->D (seen once) -> rank 1
    result, model = run_protocol("g1-live", counts, stream, progress=False)
    m = result.metrics
    assert m["hr@20"] == pytest.approx(0.75) and m["mrr@20"] == pytest.approx(0.5)
    assert m["hr@20[next_click]"] == pytest.approx(0.75)
    assert model.n_clicks == STREAM.article.size  # live absorbs everything, window 2 included
    assert result.fit_seconds is None and result.replay_seconds > 0


def test_validation_half_and_window_selection(stream):
    val, _ = run_protocol("g1-stream", counts, stream, half="validation", progress=False)
    assert val.metrics["n[last_click]"] == 0 and math.isnan(val.metrics["hr@20"])
    only1, _ = run_protocol("g1-stream", counts, stream, windows=[1], progress=False)
    assert only1.metrics["hr@20"] == pytest.approx(0.5) and only1.metrics["n[last_click]"] == 2
    last_only, _ = run_protocol("g1-stream", counts, stream, every_click=False, progress=False)
    assert last_only.metrics["n[next_click]"] == 3 and last_only.metrics["hr@20"] == pytest.approx(0.75)


def test_rank_metrics_agree_with_the_metric_library():
    rng = np.random.default_rng(0)
    n, k, n_items = 200, 20, 50
    recommended = np.array([rng.permutation(n_items)[:k] for _ in range(n)])
    target = rng.integers(0, n_items, n)
    relevant = sp.csr_array((np.ones(n), (np.arange(n), target)), shape=(n, n_items))
    rank = np.array([np.flatnonzero(r == t)[0] if t in r else -1 for r, t in zip(recommended, target)])
    ours = rank_metrics(rank, k)
    np.testing.assert_allclose(ours["hr@20"], hit_rate_at_k(recommended, relevant, k))
    np.testing.assert_allclose(ours["ndcg@20"], ndcg_at_k(recommended, relevant, k))
    np.testing.assert_allclose(ours["mrr@20"], reciprocal_rank_at_k(recommended, relevant, k))


def test_mean_over_windows_weighs_windows_equally():
    values = np.array([1.0, 0.0, 0.0, 0.0, 1.0, np.nan])
    windows = np.array([1, 1, 1, 1, 3, 3])
    assert mean_over_windows(values, windows) == pytest.approx((0.25 + 1.0) / 2)
    assert math.isnan(mean_over_windows(np.array([np.nan]), np.array([0])))


def test_preparation_dedupes_drops_and_cuts():
    long = list(range(500, 530))
    raw = make_g1([
        (0, 1, 21, [A, A, B], [0, MIN, 2 * MIN]),  # repeated A removed
        (0, 2, 22, [C], [0]),  # one click: dropped
        (0, 3, 23, [C, C], [0, MIN]),  # one distinct click: dropped
        (1, 1, 24, long, [i * MIN for i in range(30)]),  # cut to 20
    ])
    st = prepare_stream(raw, seed=1)
    assert st.session_id.tolist() == [21, 24]
    assert st.lengths.tolist() == [2, 20]
    assert st.item[:2].tolist() == [A, B] and st.item[2:].tolist() == long[:20]
    assert st.first_session.tolist() == [True, False]
    assert st.stats["raw_sessions"] == 4 and st.stats["sessions"] == 2
    again = prepare_stream(raw, seed=1)
    assert np.array_equal(st.test, again.test)
    big = prepare_stream(make_g1([(0, u, 1000 + u, [A, B], [0, MIN]) for u in range(400)]), seed=0)
    assert 0.4 < big.test.mean() < 0.6
