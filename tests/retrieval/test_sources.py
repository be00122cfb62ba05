"""Co-purchase, trending, repurchase and content sources, each against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.data.catalog import Catalog
from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.retrieval.base import CandidateSource, Histories, Query
from tastemaker.retrieval.content import ContentSource
from tastemaker.retrieval.copurchase import CoPurchase
from tastemaker.retrieval.repurchase import Repurchase
from tastemaker.retrieval.trending import Trending

DAY = 86_400


def events(users, items, times, values=None, n_items=None) -> Interactions:
    from tastemaker.data.vocabulary import Vocabulary

    n = n_items or (max(items) + 1)
    return Interactions.from_arrays(users, items, values, timestamps=times, explicit=False, duplicates="keep",
                                    item_vocab=Vocabulary(np.arange(n)),
                                    user_vocab=Vocabulary(np.arange(max(users) + 1)))


# --- co-purchase ------------------------------------------------------------------------------
# baskets: {0,1,2}, {0,1}, {1,3}, {4} (single item: no pairs)
BASKET_ROWS = dict(users=[0, 0, 0, 1, 1, 2, 2, 3], items=[0, 1, 2, 0, 1, 1, 3, 4], times=[0] * 8)
BASKETS = np.array([10, 10, 10, 11, 11, 12, 12, 13])


def test_copurchase_counts_and_cosine_by_hand():
    data = events(**BASKET_ROWS)
    cp = CoPurchase.fit(data, BASKETS, similarity="count", basket_weight="none", shrink=0.0)
    m = cp.neighbours.toarray()
    assert m[0, 1] == 2 and m[1, 0] == 2 and m[1, 3] == 1 and m[0, 3] == 0 and m[0, 0] == 0
    cos = CoPurchase.fit(data, BASKETS, similarity="cosine", basket_weight="none", shrink=0.0).neighbours.toarray()
    # n_0 = 2, n_1 = 3 (baskets holding them; the one-item basket has weight 0 but item 4 has no pairs anyway)
    assert cos[0, 1] == pytest.approx(2 / np.sqrt(2 * 3))
    cond = CoPurchase.fit(data, BASKETS, similarity="conditional", basket_weight="none", shrink=0.0).neighbours
    assert cond[1, 3] == pytest.approx(1 / 3) and cond[3, 1] == pytest.approx(1.0)
    jac = CoPurchase.fit(data, BASKETS, similarity="jaccard", basket_weight="none", shrink=0.0).neighbours
    assert jac[0, 1] == pytest.approx(2 / (2 + 3 - 2))
    # inverse-log weights: the 3-item basket counts 1/log2(4) = 0.5, the 2-item ones 1/log2(3)
    w = CoPurchase.fit(data, BASKETS, similarity="count").neighbours
    assert w[0, 1] == pytest.approx(0.5 + 1 / np.log2(3), rel=1e-6) and w[0, 2] == pytest.approx(0.5)


def test_copurchase_queries_with_context_items_or_history():
    data = events(**BASKET_ROWS)
    cp = CoPurchase.fit(data, BASKETS, similarity="count", basket_weight="none", half_life_days=None)
    got = cp.similar(0, 5)
    assert got.items.tolist() == [1, 2] and got.scores.tolist() == [2.0, 1.0]
    both = cp.retrieve(Query(items=[0, 3]), 5)
    assert both.items.tolist() == [1, 2] and both.scores.tolist() == [3.0, 1.0]  # 2 (from 0) + 1 (from 3)
    hist = cp.retrieve(Query(history=[0, 3], history_times=[0, 0]), 5)
    assert hist.items.tolist() == both.items.tolist()
    blocked = cp.retrieve(Query(items=[0], exclude=[1]), 5)
    assert blocked.items.tolist() == [2]
    assert len(cp.retrieve(Query(), 5)) == 0
    np.testing.assert_allclose(cp.score(Query(items=[0]), np.array([1, 4, 2])), [2.0, 0.0, 1.0])


def test_copurchase_recency_top_k_and_state():
    data = events(**BASKET_ROWS)
    cp = CoPurchase.fit(data, BASKETS, similarity="count", basket_weight="none", half_life_days=1.0, top_k=1)
    assert (np.diff(cp.neighbours.indptr) <= 1).all()
    assert cp.neighbours[1].indices.tolist() == [0]  # item 1's strongest partner
    # item 3 bought long ago counts less than item 0 bought now
    q = Query(history=[0, 2], history_times=[10 * DAY, 0], now=10 * DAY)
    scores = CoPurchase.fit(data, BASKETS, similarity="count", basket_weight="none", half_life_days=1.0).score(
        q, np.array([1]))
    assert scores[0] == pytest.approx(2.0 + 2.0**-10)
    back = CoPurchase.from_state(*cp.get_state())
    assert (back.neighbours != cp.neighbours).nnz == 0 and back.half_life_days == 1.0


def test_copurchase_default_baskets_are_user_days():
    data = events([0, 0, 0, 1, 1], [0, 1, 2, 0, 1], [0, 100, 3 * DAY, 5, 50])
    cp = CoPurchase.fit(data, similarity="count", basket_weight="none")
    m = cp.neighbours.toarray()
    assert m[0, 1] == 2 and m[0, 2] == 0  # item 2 was bought on another day
    gap = CoPurchase.fit(data, similarity="count", basket_weight="none", session_gap_hours=100).neighbours
    assert gap[0, 2] == 1
    with pytest.raises(DataError, match="basket ids"):
        CoPurchase.fit(data, np.arange(3))
    with pytest.raises(ConfigError, match="similarity"):
        CoPurchase.fit(data, similarity="pmi")


# --- trending -----------------------------------------------------------------------------------
def test_trending_decays_by_half_life():
    data = events([0, 1, 2, 3], [0, 0, 1, 2], [10 * DAY, 3 * DAY, 9 * DAY, 10 * DAY], values=[1, 1, 5, 1])
    tr = Trending.fit(data, half_life_days=1.0)
    np.testing.assert_allclose(tr.scores, [1 + 2.0**-7, 0.5, 1.0])
    assert tr.retrieve(Query(), 2).items.tolist() == [0, 2]
    by_value = Trending.fit(data, half_life_days=1.0, weight="value")
    assert by_value.retrieve(Query(), 1).items.tolist() == [1]  # 5 × 0.5
    window = Trending.fit(data, half_life_days=None, window_days=2)
    np.testing.assert_allclose(window.scores, [1, 1, 1])
    alltime = Trending.fit(data, half_life_days=None)
    np.testing.assert_allclose(alltime.scores, [2, 1, 1])


def test_trending_users_weight_counts_each_user_once():
    data = events([0, 0, 0, 1], [0, 0, 0, 1], [0, 1, 2, 2])
    tr = Trending.fit(data, half_life_days=None, weight="users")
    np.testing.assert_allclose(tr.scores, [1, 1])


def test_trending_update_matches_a_refit_and_constraints_apply():
    data = events([0, 1, 2, 3, 4], [0, 1, 1, 2, 0], [0, DAY, 2 * DAY, 3 * DAY, 4 * DAY])
    early = Trending.fit(data.select(np.arange(3)), half_life_days=2.0)
    early.update(data.item_idx[3:], data.timestamps[3:])
    full = Trending.fit(data, half_life_days=2.0)
    np.testing.assert_allclose(early.scores, full.scores)
    assert early.now == full.now
    keep = np.array([False, True, True])
    assert full.retrieve(Query(allowed=keep), 5).items.tolist() == [1, 2]
    later = full.retrieve(Query(now=full.now + 2 * DAY), 1)
    assert later.scores[0] == pytest.approx(full.scores.max() / 2)
    with pytest.raises(DataError, match="timestamps"):
        Trending.fit(Interactions.from_arrays([0], [0], explicit=False), half_life_days=1.0)


# --- repurchase -----------------------------------------------------------------------------------
def test_repurchase_recency_frequency_and_interval_by_hand():
    # user 0 buys item 0 every 10 days (days 0, 10, 20); item 1 once on day 29; "now" is day 30
    data = events([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 0, 0], [0, 10 * DAY, 20 * DAY, 29 * DAY, 0, 40 * DAY])
    rp = Repurchase.fit(data, half_life_days=10.0, interval_weight=0.0, now=30 * DAY)
    # gaps: user 0 item 0: 10, 10; user 1 item 0: 40 -> global median log gap = log(10)
    assert rp.global_log_gap == pytest.approx(np.log(10))
    hist = Histories.from_interactions(data)
    q = hist.query(0, now=30 * DAY)
    sig = rp.signals(q)
    assert sig.loc[0, "purchases"] == 3 and sig.loc[0, "days_since_last"] == pytest.approx(10)
    assert sig.loc[0, "recency_frequency"] == pytest.approx(2.0**-3 + 2.0**-2 + 2.0**-1)
    assert sig.loc[1, "recency_frequency"] == pytest.approx(2.0**-0.1)
    assert sig.loc[0, "due_ratio"] == pytest.approx(10 / sig.loc[0, "expected_interval_days"])
    got = rp.retrieve(q, 5)
    assert got.items.tolist() == [1, 0] and set(got.features) >= {"days_since_last", "due_ratio", "purchases"}
    assert got.features["purchases"].tolist() == [1, 3]
    # the interval signal lifts the item that is due (item 0, bought 10 days ago, every 10 days)
    due = Repurchase.fit(data, half_life_days=10.0, interval_weight=5.0, now=30 * DAY)
    assert due.retrieve(q, 5).items.tolist() == [0, 1]


def test_repurchase_only_returns_history_and_scores_zero_elsewhere():
    data = events([0, 0, 1], [0, 1, 2], [0, DAY, DAY])
    rp = Repurchase.fit(data)
    q = Query(history=[0, 1], history_times=[0, DAY], now=2 * DAY)
    assert set(rp.retrieve(q, 10).items.tolist()) == {0, 1}
    assert rp.score(q, np.array([2, 1]))[0] == 0.0 and rp.score(q, np.array([2, 1]))[1] > 0
    assert rp.retrieve(q.with_constraints(exclude=np.array([1])), 10).items.tolist() == [0]
    assert len(rp.retrieve(Query(), 10)) == 0
    with pytest.raises(ConfigError, match="timestamps"):
        rp.retrieve(Query(history=[0]), 3)
    back = Repurchase.from_state(*rp.get_state())
    np.testing.assert_allclose(back.item_log_gap, rp.item_log_gap)


# --- content ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shop() -> Catalog:
    return Catalog.build(["m1", "m2", "k1", "k2", "new-mug", "new-kettle"],
                         text=["red ceramic mug", "blue ceramic mug", "steel kettle", "electric kettle",
                               "green ceramic mug", "copper electric kettle"])


def test_content_similar_items_and_new_sku_only(shop: Catalog):
    src = ContentSource.from_texts(shop.texts(), shop)
    got = src.retrieve(Query(items=[0]), 2)
    assert 0 not in got.items and set(got.items.tolist()) <= {1, 4}
    new = np.array([False, False, False, False, True, True])
    only_new = ContentSource.from_texts(shop.texts(), shop, only=new)
    assert only_new.retrieve(Query(history=[3], history_times=[0]), 1).items.tolist() == [5]
    assert only_new.retrieve(Query(history=[0, 1], history_times=[0, 0]), 1).items.tolist() == [4]
    assert len(src.retrieve(Query(), 3)) == 0
    s = src.score(Query(items=[0]), np.array([1, 2]))
    assert s[0] > s[1] >= 0


def test_content_refresh_after_an_upsert(shop: Catalog):
    src = ContentSource.from_texts(shop.texts(), shop)
    grown = Catalog.build([*shop.ids.tolist(), "new-teapot"], text=[*shop.texts(), "ceramic teapot"])
    src.index.add(["new-teapot"], texts=["ceramic teapot"])
    src.refresh(grown)
    assert src.n_items == 7
    assert 6 in src.retrieve(Query(items=[0]), 6).items.tolist()
    with pytest.raises(DataError, match="one text per item"):
        ContentSource.from_texts(["a"], shop)


def test_every_source_follows_the_protocol(shop: Catalog):
    data = events(**BASKET_ROWS)
    for src in (CoPurchase.fit(data, BASKETS), Trending.fit(data), Repurchase.fit(data),
                ContentSource.from_texts(shop.texts(), shop)):
        assert isinstance(src, CandidateSource)
