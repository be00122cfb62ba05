"""The retail-temporal protocol's metrics (`tastemaker.evaluation.retail`) on a tiny shop written to
tmp, every number computed by hand: products never seen in training stay in the denominators."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tastemaker.data.retail import load_online_retail, retail_temporal_split
from tastemaker.errors import DataError
from tastemaker.evaluation.retail import (
    HEADLINE,
    evaluate_retail,
    retail_metrics,
    revenue_recall_at_k,
    top_items,
)

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROWS = [  # products A=10001, B=10002, C=10003 sold before the window; D=10004 only in it
    "1,10001,A,1,2011-01-01 10:00:00,1.0,1,UK",
    "2,10002,B,1,2011-01-05 10:00:00,2.0,1,UK",
    "3,10002,B,1,2011-01-10 10:00:00,2.0,2,UK",
    "4,10003,C,1,2011-01-12 10:00:00,3.0,2,UK",
    # the 7-day window from 2011-01-21
    "5,10001,A,2,2011-01-25 10:00:00,1.0,1,UK",  # user 1 spends 2 on A ...
    "5,10004,D,1,2011-01-25 10:00:00,6.0,1,UK",  # ... and 6 on D, a product never seen in training
    "6,10003,C,1,2011-01-22 10:00:00,3.0,2,UK",  # user 2 spends 3 on C ...
    "7,10002,B,3,2011-01-27 10:00:00,2.0,2,UK",  # ... and 6 on B
    "8,10001,A,1,2011-01-26 10:00:00,1.0,3,UK",  # user 3: only in the window, not evaluated
]
A, B, C, D = 0, 1, 2, 3


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    path = tmp_path_factory.mktemp("retail") / "tiny.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in ROWS))
    s = retail_temporal_split(load_online_retail(path), window_days=7)
    assert s.train.interactions.item_vocab.ids.tolist() == ["10001", "10002", "10003", "10004"]
    assert s.users.tolist() == [0, 1] and s.candidate_items.tolist() == [True, True, True, False]
    return s


def test_retail_metrics_by_hand(split):
    # user 1 (relevant A, D): A at rank 2; user 2 (relevant B, C): B at rank 1
    rec = np.array([[B, A], [B, A]])
    means, per_user = retail_metrics(rec, split, per_user=True)
    ideal = 1 + 1 / np.log2(3)  # two relevant products each
    np.testing.assert_allclose(per_user["ndcg@10"], [1 / np.log2(3) / ideal, 1 / ideal])
    assert means["ndcg@10"] == pytest.approx(0.5)
    # D was never sold before the window, but it is relevant: recall 1/2, not 1/1
    np.testing.assert_allclose(per_user["recall@20"], [0.5, 0.5])
    np.testing.assert_allclose(per_user["hit@10"], [1, 1])
    np.testing.assert_allclose(per_user["precision@10"], [0.1, 0.1])
    np.testing.assert_allclose(per_user["map@10"], [0.5 / 2, 1.0 / 2])
    # spend: user 1 A 2 + D 6 = 8, user 2 C 3 + B 6 = 9 -> 2/8 and 6/9
    np.testing.assert_allclose(per_user["revenue_recall@20"], [2 / 8, 6 / 9])
    assert means["revenue_recall@20"] == pytest.approx((0.25 + 6 / 9) / 2)
    assert means["coverage@10"] == pytest.approx(2 / 3)  # A, B of the 3 products seen in training
    assert set(means) == set(HEADLINE)
    # a perfect list for the products that could be recommended still misses D
    best = retail_metrics(np.array([[A, -1], [B, C]]), split)
    assert best["recall@20"] == pytest.approx((0.5 + 1.0) / 2)
    assert best["revenue_recall@20"] == pytest.approx((0.25 + 1.0) / 2)
    assert best["ndcg@10"] == pytest.approx((1 / ideal + 1.0) / 2)
    with pytest.raises(DataError, match=r"recommended has shape \(3, 2\); expected \(2, k\)"):
        retail_metrics(np.zeros((3, 2), dtype=int), split)


def test_revenue_recall_at_k_by_hand():
    spend = sp.csr_matrix(np.array([[2.0, 0, 0, 6], [0, 6, 3, 0], [0, 0, 0, 0]]))
    rec = np.array([[B, A, C], [B, A, -1], [A, -1, -1]])
    np.testing.assert_allclose(revenue_recall_at_k(rec, spend, 3), [0.25, 6 / 9, np.nan])
    np.testing.assert_allclose(revenue_recall_at_k(rec, spend, 1), [0.0, 6 / 9, np.nan])
    np.testing.assert_allclose(revenue_recall_at_k(np.array([[D, A], [C, B], [B, C]]), spend, 2), [1, 1, np.nan])
    with pytest.raises(DataError, match="2-D"):
        revenue_recall_at_k(np.array([1, 2]), spend, 2)
    with pytest.raises(DataError, match="2 recommendation rows but spend has 3 rows"):
        revenue_recall_at_k(rec[:2], spend, 2)
    with pytest.raises(DataError, match="item index 7 but the catalogue has 4 items"):
        revenue_recall_at_k(np.array([[7], [0], [0]]), spend, 1)
    with pytest.raises(DataError, match="lists item 3 more than once"):  # would count D's spend twice
        revenue_recall_at_k(np.array([[D, D], [0, 1], [0, 1]]), spend, 2)


def test_evaluate_retail_and_top_items(split):
    scores = np.array([[0.1, 0.9, 0.5, 9.0], [0.2, 0.2, np.nan, 9.0]])
    rec = top_items(scores, k=3, allowed=split.candidate_items)
    # D is not a candidate; NaN never counts; ties go to the lower index; short rows are -1 padded
    assert rec.tolist() == [[B, C, A], [A, B, -1]]
    assert top_items(np.array([[1.0, 2.0]]), k=4).tolist() == [[1, 0, -1, -1]]
    out = evaluate_retail(lambda users: rec[np.searchsorted(split.users, users)], split, bootstrap=50)
    assert out["metrics"] == retail_metrics(rec, split) and out["recommended"].tolist() == rec.tolist()
    assert set(out["ci95"]) == set(HEADLINE) - {"coverage@10"}
    lo, hi = out["ci95"]["recall@20"]
    assert lo <= out["metrics"]["recall@20"] <= hi
    assert evaluate_retail(lambda users: rec, split, bootstrap=0)["ci95"] == {}
