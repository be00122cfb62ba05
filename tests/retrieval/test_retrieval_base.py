"""The candidate-source contract: Query, Candidates, select_top, Histories."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.data.interactions import Interactions
from tastemaker.errors import DataError
from tastemaker.retrieval.base import Candidates, Histories, Query, recency_weights, select_top


def test_query_normalises_and_validates():
    q = Query(user=3, history=[5, 1], history_times=[10, 20], items=7)
    assert q.history.dtype == np.int64 and q.items.tolist() == [7]
    with pytest.raises(DataError, match="history_times has 1"):
        Query(history=[1, 2], history_times=[1])
    with pytest.raises(DataError, match="boolean mask"):
        Query(allowed=np.array([1, 0, 1]))


def test_keep_mask_combines_allowed_and_exclude():
    assert Query().keep_mask(4) is None
    q = Query(allowed=np.array([True, True, False, True]), exclude=[1, 99])
    assert q.keep_mask(4).tolist() == [True, False, False, True]
    assert Query(exclude=[0]).keep_mask(3).tolist() == [False, True, True]
    with pytest.raises(DataError, match="covers 4 items"):
        q.keep_mask(5)
    assert q.allowed.tolist() == [True, True, False, True]  # not modified in place


def test_select_top_orders_breaks_ties_and_filters():
    s = np.array([0.5, 2.0, np.nan, 2.0, -np.inf, 1.0, 0.0])
    items, vals = select_top(s, 3)
    assert items.tolist() == [1, 3, 5] and vals.tolist() == [2.0, 2.0, 1.0]
    items, _ = select_top(s, 2, keep=np.array([1, 0, 1, 1, 1, 1, 1], dtype=bool))
    assert items.tolist() == [3, 5]
    items, _ = select_top(s, 10, positive=True)
    assert items.tolist() == [1, 3, 5, 0]
    ties = np.ones(10)
    assert select_top(ties, 4)[0].tolist() == [0, 1, 2, 3]
    assert len(select_top(s, 0)[0]) == 0


def test_candidates_shape_checks_top_and_ids():
    c = Candidates([3, 1, 2], [0.9, 0.5, 0.1], "x", {"f": np.array([1.0, 2.0, 3.0])})
    assert c.top(2).items.tolist() == [3, 1] and c.top(2).features["f"].tolist() == [1.0, 2.0]
    assert c.ids(np.array(["a", "b", "c", "d"])).tolist() == ["d", "b", "c"]
    with pytest.raises(ValueError, match="3 candidate items but 2 scores"):
        Candidates([1, 2, 3], [1.0, 2.0], "x")
    with pytest.raises(ValueError, match="feature 'f'"):
        Candidates([1], [1.0], "x", {"f": np.array([1.0, 2.0])})
    assert len(Candidates.empty("y")) == 0


def test_histories_slice_each_user_in_time_order():
    data = Interactions.from_arrays([2, 1, 2, 1, 3], [10, 11, 12, 10, 11], [1, 2, 3, 4, 5],
                                    timestamps=[50, 40, 10, 30, 20], explicit=False, duplicates="keep")
    h = Histories.from_interactions(data)
    u1 = data.user_vocab.index(1)
    items, times, values = h.of(u1)
    assert data.item_vocab.lookup(items).tolist() == [10, 11] and times.tolist() == [30, 40]
    assert values.tolist() == [4.0, 2.0]
    q = h.query(data.user_vocab.index(2), now=100.0)
    assert q.history_times.tolist() == [10, 50] and q.now == 100.0
    assert len(h.of(-1)[0]) == 0 and h.users.tolist() == [0, 1, 2]


def test_recency_weights_halve_per_half_life():
    w = recency_weights(np.array([0.0, 86_400.0, 2 * 86_400.0, 3 * 86_400.0]), 2 * 86_400.0, 1.0, 4)
    np.testing.assert_allclose(w, [0.25, 0.5, 1.0, 1.0])
    assert recency_weights(None, 0.0, 1.0, 3).tolist() == [1.0, 1.0, 1.0]
