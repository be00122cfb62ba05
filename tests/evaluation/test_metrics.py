"""Tests of tastemaker.evaluation.metrics: hand-computed cases, references (sklearn, slow Python), edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, ndcg_score, roc_auc_score
from sklearn.metrics.pairwise import cosine_similarity

from tastemaker.errors import DataError
from tastemaker.evaluation import metrics as M
from tastemaker.evaluation.metrics import (
    auc,
    average_precision_at_k,
    catalog_coverage,
    gini_index,
    hit_rate_at_k,
    intra_list_diversity,
    mae,
    ndcg_at_k,
    novelty,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    reciprocal_rank_at_k,
    rmse,
)

L2 = math.log2


def csr(rows: list[dict[int, float]], n_items: int) -> sp.csr_array:
    """Sparse relevance matrix from one {item: gain} dict per user."""
    r = [u for u, d in enumerate(rows) for _ in d]
    c = [i for d in rows for i in d]
    v = [g for d in rows for g in d.values()]
    return sp.csr_array((np.array(v, dtype=float), (np.array(r, dtype=int), np.array(c, dtype=int))),
                        shape=(len(rows), n_items))


# --- rating error ---------------------------------------------------------------------------------

def test_rmse_mae_hand_computed():
    # errors: 1-2=-1, 2-2=0, 3-5=-2 -> squared 1, 0, 4 -> mean 5/3; absolute mean 3/3
    assert rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(math.sqrt(5 / 3))
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert isinstance(rmse(np.array([1.0]), np.array([1.0])), float)


@pytest.mark.parametrize("fn", [rmse, mae])
@pytest.mark.parametrize(("p", "a"), [([1, 2], [1, 2, 3]), ([], []), ([1, np.nan], [1, 2]), ([1, 2], [np.inf, 2])])
def test_rating_error_rejects_bad_input(fn, p, a):
    with pytest.raises(ValueError):
        fn(p, a)


# --- the shared hand-computed ranking case --------------------------------------------------------

# 4 users, 6 items.
#  u0: list [0, 1, 2, 3]    relevant {1: 3, 3: 1, 5: 2}
#  u1: list [4, 5, -1, -1]  relevant {4: 1, 0: 1}     (padded list)
#  u2: list [1, 0, 3, 2]    relevant {2: 1}
#  u3: list [0, 1, 2, 3]    relevant {}               -> NaN everywhere
REC = np.array([[0, 1, 2, 3], [4, 5, -1, -1], [1, 0, 3, 2], [0, 1, 2, 3]])
REL = csr([{1: 3.0, 3: 1.0, 5: 2.0}, {4: 1.0, 0: 1.0}, {2: 1.0}, {}], 6)


def assert_close(actual, expected):
    np.testing.assert_allclose(actual, np.array(expected, dtype=float), rtol=1e-12, atol=1e-12, equal_nan=True)


def test_precision_hand_computed():
    # @4: u0 hits {1, 3} -> 2/4; u1 hit {4} -> 1/4 (denominator k although only 2 were listed); u2 hit {2} -> 1/4
    assert_close(precision_at_k(REC, REL, 4), [2 / 4, 1 / 4, 1 / 4, np.nan])
    # @3: u0 hit {1} -> 1/3; u1 1/3; u2 none -> 0
    assert_close(precision_at_k(REC, REL, 3), [1 / 3, 1 / 3, 0.0, np.nan])
    # k beyond the list length: @10 divides by 10
    assert_close(precision_at_k(REC, REL, 10), [2 / 10, 1 / 10, 1 / 10, np.nan])


def test_recall_hand_computed():
    # @4: u0 2 of 3 relevant; u1 1 of 2; u2 1 of 1
    assert_close(recall_at_k(REC, REL, 4), [2 / 3, 1 / 2, 1.0, np.nan])
    assert_close(recall_at_k(REC, REL, 1), [0.0, 1 / 2, 0.0, np.nan])


def test_ndcg_binary_hand_computed():
    # u0: hits at ranks 2, 4 -> DCG = 1/log2(3) + 1/log2(5); IDCG over min(4, 3) = 3 -> 1 + 1/log2(3) + 1/log2(4)
    u0 = (1 / L2(3) + 1 / L2(5)) / (1 + 1 / L2(3) + 1 / L2(4))
    # u1: hit at rank 1 -> DCG 1; IDCG over 2 -> 1 + 1/log2(3)
    u1 = 1 / (1 + 1 / L2(3))
    # u2: hit at rank 4 -> 1/log2(5); IDCG over 1 -> 1
    u2 = 1 / L2(5)
    assert_close(ndcg_at_k(REC, REL, 4), [u0, u1, u2, np.nan])
    assert u0 == pytest.approx(0.498189, abs=1e-6)


def test_ndcg_graded_hand_computed():
    # u0: item 1 (gain 3) at rank 2, item 3 (gain 1) at rank 4 -> DCG 3/log2(3) + 1/log2(5)
    #     IDCG: gains sorted 3, 2, 1 -> 3/log2(2) + 2/log2(3) + 1/log2(4)
    u0 = (3 / L2(3) + 1 / L2(5)) / (3 + 2 / L2(3) + 1 / L2(4))
    # @2: DCG 3/log2(3); IDCG over the best 2 gains 3, 2 -> 3 + 2/log2(3)
    u0_2 = (3 / L2(3)) / (3 + 2 / L2(3))
    # u1, u2 have gain 1 only: same as binary
    assert_close(ndcg_at_k(REC, REL, 4, graded=True), [u0, 1 / (1 + 1 / L2(3)), 1 / L2(5), np.nan])
    assert_close(ndcg_at_k(REC, REL, 2, graded=True)[0], u0_2)
    assert u0 == pytest.approx(0.487933, abs=1e-6)


def test_average_precision_hand_computed():
    # u0: hits at rank 2 (precision 1/2) and rank 4 (2/4) -> (1/2 + 1/2) / min(4, 3)
    # u1: hit at rank 1 (1/1) -> 1 / min(4, 2); u2: hit at rank 4 (1/4) -> 1/4 / 1
    assert_close(average_precision_at_k(REC, REL, 4), [1 / 3, 1 / 2, 1 / 4, np.nan])
    # @2: u0 hit at rank 2 -> (1/2) / min(2, 3) ; u1 1/min(2,2); u2 none
    assert_close(average_precision_at_k(REC, REL, 2), [1 / 4, 1 / 2, 0.0, np.nan])


def test_reciprocal_rank_and_hit_rate_hand_computed():
    assert_close(reciprocal_rank_at_k(REC, REL, 4), [1 / 2, 1.0, 1 / 4, np.nan])
    assert_close(reciprocal_rank_at_k(REC, REL, 3), [1 / 2, 1.0, 0.0, np.nan])
    assert_close(hit_rate_at_k(REC, REL, 3), [1.0, 1.0, 0.0, np.nan])
    assert_close(hit_rate_at_k(REC, REL, 1), [0.0, 1.0, 0.0, np.nan])


def test_padding_slot_takes_its_rank():
    rec = np.array([[-1, 2, -1]])
    rel = csr([{2: 1.0}], 3)
    assert_close(reciprocal_rank_at_k(rec, rel, 3), [1 / 2])
    assert_close(precision_at_k(rec, rel, 3), [1 / 3])
    assert_close(ndcg_at_k(rec, rel, 3), [1 / L2(3)])
    # an all-padding list is all misses (not NaN: the user has relevant items)
    assert_close(recall_at_k(np.full((1, 3), -1), rel, 3), [0.0])


def test_stored_zeros_and_negative_gains_are_not_relevant():
    rel = sp.csr_array((np.array([0.0, -2.0, 1.0]), (np.array([0, 0, 0]), np.array([0, 1, 2]))), shape=(1, 3))
    rec = np.array([[0, 1, 2]])
    assert_close(recall_at_k(rec, rel, 3), [1.0])  # one relevant item (2) only
    assert_close(precision_at_k(rec, rel, 3), [1 / 3])
    # a user whose only stored entries are zeros has no relevant items
    assert_close(precision_at_k(rec, sp.csr_array((np.array([0.0]), (np.array([0]), np.array([1]))), shape=(1, 3)), 3),
          [np.nan])


def test_dense_and_boolean_relevance_accepted():
    dense = REL.toarray()
    assert_close(ndcg_at_k(REC, dense, 4), ndcg_at_k(REC, REL, 4))
    assert_close(recall_at_k(REC, sp.csr_matrix(dense > 0), 4), recall_at_k(REC, REL, 4))


def test_ranking_metrics_keys_and_values():
    out = ranking_metrics(REC, REL, 4)
    assert list(out) == ["precision@4", "recall@4", "ndcg@4", "map@4", "mrr@4", "hr@4"]
    assert_close(out["ndcg@4"], ndcg_at_k(REC, REL, 4))
    assert_close(out["map@4"], average_precision_at_k(REC, REL, 4))
    assert_close(out["mrr@4"], reciprocal_rank_at_k(REC, REL, 4))
    many = ranking_metrics(REC, REL, [2, 10], metrics=("ndcg", "recall"), graded=True)
    assert set(many) == {"ndcg@2", "recall@2", "ndcg@10", "recall@10"}
    assert_close(many["ndcg@2"], ndcg_at_k(REC, REL, 2, graded=True))
    assert_close(many["recall@10"], recall_at_k(REC, REL, 10))


def test_ranking_input_errors():
    with pytest.raises(ValueError, match="unknown ranking metric"):
        ranking_metrics(REC, REL, 3, metrics=("ndcg", "auc"))
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k must be"):
            precision_at_k(REC, REL, k)
    with pytest.raises(DataError, match="more than once"):
        precision_at_k(np.array([[1, 2, 1]]), csr([{1: 1.0}], 3), 3)
    with pytest.raises(DataError, match="catalogue has 6 items"):
        precision_at_k(np.array([[6, 0], [0, 1], [0, 1], [0, 1]]), REL, 2)
    with pytest.raises(DataError, match="rows"):
        recall_at_k(REC[:3], REL, 2)
    with pytest.raises(DataError, match="integer"):
        recall_at_k(REC.astype(float), REL, 2)
    with pytest.raises(DataError, match="-1 marks padding"):
        recall_at_k(np.array([[-2, 1], [0, 1], [0, 1], [0, 1]]), REL, 2)
    with pytest.raises(DataError, match="2-D"):
        recall_at_k(np.array([0, 1]), csr([{1: 1.0}], 3), 2)
    with pytest.raises(DataError, match="non-finite"):
        recall_at_k(REC[:1], sp.csr_array(np.array([[np.nan, 1, 0, 0, 0, 0]])), 2)


def test_duplicates_allowed_in_padding():
    rec = np.array([[3, -1, -1]])
    assert_close(hit_rate_at_k(rec, csr([{3: 1.0}], 4), 3), [1.0])


# --- references: sklearn and a slow pure-Python implementation ------------------------------------

def test_ndcg_matches_sklearn_without_ties():
    rng = np.random.default_rng(1)
    n_users, n_items = 25, 30
    scores = np.stack([rng.permutation(n_items) for _ in range(n_users)]).astype(float)  # distinct: no ties
    recommended = np.argsort(-scores, axis=1)
    graded = rng.integers(0, 5, size=(n_users, n_items)) * (rng.random((n_users, n_items)) < 0.3)
    graded[:, 0] = np.maximum(graded[:, 0], 1)  # every user has a relevant item (sklearn scores 0 otherwise)
    binary = (graded > 0).astype(float)
    for k in (1, 5, 10, 30):
        ours_b = ndcg_at_k(recommended, sp.csr_array(binary), k)
        ours_g = ndcg_at_k(recommended, sp.csr_array(graded.astype(float)), k, graded=True)
        ref_b = [ndcg_score(binary[u:u + 1], scores[u:u + 1], k=k) for u in range(n_users)]
        ref_g = [ndcg_score(graded[u:u + 1], scores[u:u + 1], k=k) for u in range(n_users)]
        np.testing.assert_allclose(ours_b, ref_b, rtol=1e-10)
        np.testing.assert_allclose(ours_g, ref_g, rtol=1e-10)
    # graded differs from binary somewhere on this data, so the flag is not ignored
    assert not np.allclose(ndcg_at_k(recommended, sp.csr_array(graded.astype(float)), 5, graded=True),
                           ndcg_at_k(recommended, sp.csr_array(graded.astype(float)), 5))


def test_full_list_average_precision_matches_sklearn():
    # with the whole catalogue ranked and no ties, AP@n_items = sklearn's average precision
    rng = np.random.default_rng(2)
    n_users, n_items = 20, 25
    scores = rng.random((n_users, n_items))
    truth = rng.random((n_users, n_items)) < 0.25
    truth[:, 3] = True
    ours = average_precision_at_k(np.argsort(-scores, axis=1), sp.csr_array(truth.astype(float)), n_items)
    ref = [average_precision_score(truth[u], scores[u]) for u in range(n_users)]
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def reference(rec_row, gains: dict[int, float], k: int) -> dict[str, float]:
    """Per-user metrics, one obvious loop each."""
    if not gains:
        return dict.fromkeys(("precision", "recall", "ndcg", "gndcg", "map", "mrr", "hr"), math.nan)
    items = [int(i) for i in rec_row[:k]]
    hits = [i >= 0 and i in gains for i in items]
    n_rel = len(gains)
    dcg = sum(1 / L2(r + 2) for r, h in enumerate(hits) if h)
    idcg = sum(1 / L2(r + 2) for r in range(min(k, n_rel)))
    gdcg = sum(gains[i] / L2(r + 2) for r, (i, h) in enumerate(zip(items, hits)) if h)
    gidcg = sum(g / L2(r + 2) for r, g in enumerate(sorted(gains.values(), reverse=True)[:k]))
    ap, found = 0.0, 0
    for r, h in enumerate(hits):
        if h:
            found += 1
            ap += found / (r + 1)
    first = next((r for r, h in enumerate(hits) if h), None)
    return {
        "precision": sum(hits) / k,
        "recall": sum(hits) / n_rel,
        "ndcg": dcg / idcg,
        "gndcg": gdcg / gidcg,
        "map": ap / min(k, n_rel),
        "mrr": 0.0 if first is None else 1 / (first + 1),
        "hr": float(any(hits)),
    }


def random_case(rng, n_users, n_items, k_max, p_rel):
    rec = np.full((n_users, k_max), -1, dtype=np.int64)
    truth = []
    for u in range(n_users):
        length = int(rng.integers(0, min(k_max, n_items) + 1))
        rec[u, :length] = rng.choice(n_items, size=length, replace=False)
        chosen = np.flatnonzero(rng.random(n_items) < p_rel)
        truth.append({int(i): float(rng.integers(1, 6)) for i in chosen})
    return rec, truth


def check_against_reference(rec, truth, n_items, ks):
    rel = csr(truth, n_items)
    for k in ks:
        out = ranking_metrics(rec, rel, k)
        graded = ndcg_at_k(rec, rel, k, graded=True)
        ref = [reference(rec[u], truth[u], k) for u in range(len(truth))]
        for name in ("precision", "recall", "ndcg", "map", "mrr", "hr"):
            assert_close(out[f"{name}@{k}"], [r[name] for r in ref])
        assert_close(graded, [r["gndcg"] for r in ref])


def test_ranking_metrics_match_python_reference_on_random_data():
    rng = np.random.default_rng(3)
    rec, truth = random_case(rng, n_users=120, n_items=40, k_max=15, p_rel=0.12)
    truth[::10] = [{}] * 12
    assert any(not t for t in truth) and (rec == -1).any()  # the data exercises NaN users and padding
    check_against_reference(rec, truth, 40, ks=(1, 3, 10, 15, 25))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 12), st.integers(1, 8), st.integers(1, 10))
def test_ranking_metrics_match_reference_hypothesis(seed, n_users, n_items, k_max, k):
    rng = np.random.default_rng(seed)
    rec, truth = random_case(rng, n_users, n_items, k_max, p_rel=float(rng.uniform(0, 0.6)))
    check_against_reference(rec, truth, n_items, ks=(k,))


def test_metric_identities_on_random_data():
    rng = np.random.default_rng(4)
    rec, truth = random_case(rng, 200, 50, 20, 0.1)
    rel = csr(truth, 50)
    out = ranking_metrics(rec, rel, 20)
    n_rel = np.array([len(t) for t in truth], dtype=float)
    ok = n_rel > 0
    # hits = precision * k = recall * n_relevant
    assert_close((out["precision@20"] * 20)[ok], (out["recall@20"] * n_rel)[ok])
    for v in out.values():
        assert np.isnan(v[~ok]).all() and ((v[ok] >= 0) & (v[ok] <= 1)).all()
    assert (out["mrr@20"][ok] <= out["hr@20"][ok]).all()


# --- AUC -----------------------------------------------------------------------------------------

def test_auc_hand_computed_with_tie():
    # positive item 1 (0.8) vs negatives 0 (0.9: loses), 2 (0.8: tie, 1/2), 3 (0.1: wins) -> (0 + 1/2 + 1) / 3
    scores = np.array([[0.9, 0.8, 0.8, 0.1]])
    assert_close(auc(scores, csr([{1: 1.0}], 4)), [0.5])
    # leaving the tied item out of the candidates: (0 + 1) / 2
    cand = np.array([[True, True, False, True]])
    assert_close(auc(scores, csr([{1: 1.0}], 4), cand), [0.5])
    # leaving the better negative out instead: (1/2 + 1) / 2
    assert_close(auc(scores, csr([{1: 1.0}], 4), np.array([[False, True, True, True]])), [0.75])


def test_auc_nan_without_positives_or_negatives():
    scores = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    rel = csr([{}, {0: 1.0, 1: 1.0, 2: 1.0}, {0: 1.0}], 3)
    assert_close(auc(scores, rel), [np.nan, np.nan, 1.0])
    # a relevant item outside the candidates is not a positive
    cand = np.array([[True] * 3, [True] * 3, [False, True, True]])
    assert_close(auc(scores, rel, cand), [np.nan, np.nan, np.nan])


def test_auc_matches_sklearn_with_ties_and_candidates(monkeypatch):
    rng = np.random.default_rng(5)
    n_users, n_items = 40, 30
    scores = rng.integers(0, 6, size=(n_users, n_items)).astype(float)  # many ties
    scores[0, :5] = [np.inf, -np.inf, -np.inf, np.inf, 2.0]
    truth = rng.random((n_users, n_items)) < 0.2
    truth[:, 1] = True
    cand = rng.random((n_users, n_items)) < 0.8
    cand[:, :3] = True
    rel = sp.csr_array(truth.astype(float))
    ref = []
    for u in range(n_users):
        y = truth[u, cand[u]]
        ref.append(roc_auc_score(y, np.clip(scores[u, cand[u]], -1e300, 1e300)) if 0 < y.sum() < y.size else np.nan)
    ours = auc(scores, rel, cand)
    assert_close(ours, ref)
    # chunked processing gives the same answer
    monkeypatch.setattr(M, "_AUC_CHUNK_CELLS", 3 * n_items)
    assert_close(auc(scores, rel, cand), ours)
    assert_close(auc(scores, rel), [roc_auc_score(truth[u], np.clip(scores[u], -1e300, 1e300)) for u in range(n_users)])


def test_auc_input_errors():
    scores = np.zeros((2, 3))
    rel = csr([{0: 1.0}, {1: 1.0}], 3)
    with pytest.raises(DataError, match="shape"):
        auc(scores, csr([{0: 1.0}, {1: 1.0}], 4))
    with pytest.raises(DataError, match="candidates"):
        auc(scores, rel, np.ones((2, 3)))
    bad = scores.copy()
    bad[1, 2] = np.nan
    with pytest.raises(DataError, match=r"scores\[1, 2\] is NaN"):
        auc(bad, rel)
    # a NaN outside the candidates is fine
    assert_close(auc(bad, rel, np.array([[True] * 3, [True, True, False]])), [0.5, 0.5])


# --- beyond accuracy ------------------------------------------------------------------------------

def test_catalog_coverage():
    rec = np.array([[0, 1], [1, 2], [-1, -1]])
    assert catalog_coverage(rec, 5) == pytest.approx(3 / 5)  # items {0, 1, 2} of 5
    assert catalog_coverage(rec, 5, k=1) == pytest.approx(2 / 5)  # items {0, 1}
    with pytest.raises(DataError, match="catalogue has 2 items"):
        catalog_coverage(rec, 2)
    with pytest.raises(ValueError, match="n_items"):
        catalog_coverage(rec, 0)


def gini_reference(counts):
    """Mean absolute difference over all ordered pairs / (2 × mean)."""
    c = np.asarray(counts, dtype=float)
    return np.abs(c[:, None] - c[None, :]).sum() / (2 * c.size**2 * c.mean())


def test_gini_index():
    # counts: item0 2, item1 1, item2 1, item3 0 -> sorted [0, 1, 1, 2], total 4;
    # weights 2i - n - 1 = -3, -1, 1, 3 -> (0 - 1 + 1 + 6) / (4 * 4) = 0.375
    assert gini_index(np.array([[0, 1], [0, 2]]), 4) == pytest.approx(0.375)
    assert gini_reference([2, 1, 1, 0]) == pytest.approx(0.375)
    assert gini_index(np.array([[0, 1], [2, 3]]), 4) == pytest.approx(0.0)  # uniform
    assert gini_index(np.array([[0], [0]]), 4) == pytest.approx(3 / 4)  # one item: (n - 1) / n
    assert gini_index(np.array([[0, 1], [0, 2]]), 4, k=1) == pytest.approx(0.75)  # only item 0 in the top 1
    assert math.isnan(gini_index(np.full((2, 2), -1), 4))
    rng = np.random.default_rng(6)
    rec, _ = random_case(rng, 60, 30, 8, 0.0)
    counts = np.bincount(rec[rec >= 0], minlength=30)
    assert gini_index(rec, 30) == pytest.approx(gini_reference(counts), rel=1e-12)


def test_intra_list_diversity_hand_computed():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    rec = np.array([[0, 1, 2], [0, 3, -1], [2, -1, -1], [-1, -1, -1], [0, 2, -1]])
    # [0, 1, 2]: 1 - cos = 1 (0,1), 1 - 1/√2 (0,2), 1 - 1/√2 (1,2) -> mean (3 - √2) / 3
    # [0, 3]: zero vector -> similarity 0 -> 1;  [2] and [] -> NaN;  [0, 2] -> 1 - 1/√2
    expected = [(3 - math.sqrt(2)) / 3, 1.0, np.nan, np.nan, 1 - 1 / math.sqrt(2)]
    assert_close(intra_list_diversity(rec, vectors), expected)
    assert_close(intra_list_diversity(rec, sp.csr_array(vectors)), expected)
    # k=2 cuts [0, 1, 2] to [0, 1]
    assert intra_list_diversity(rec, vectors, k=2)[0] == pytest.approx(1.0)


def test_intra_list_diversity_matches_pairwise_reference():
    rng = np.random.default_rng(7)
    vectors = (rng.random((30, 6)) < 0.4).astype(float)  # genre-like multi-hot, some rows all zero
    vectors[0] = 0
    rec, _ = random_case(rng, 50, 30, 10, 0.0)
    sim = cosine_similarity(vectors)  # sklearn gives 0 for zero vectors
    ref = []
    for row in rec:
        items = row[row >= 0]
        pairs = [(a, b) for i, a in enumerate(items) for b in items[i + 1:]]
        ref.append(np.mean([1 - sim[a, b] for a, b in pairs]) if pairs else np.nan)
    np.testing.assert_allclose(intra_list_diversity(rec, vectors), ref, atol=1e-12)


def test_novelty_hand_computed():
    # n_users 8, popularity [8, 4, 2, 0] -> self-information -log2(p/8) = [0, 1, 2, 3] (0 counts as 1)
    pop = np.array([8, 4, 2, 0])
    rec = np.array([[0, 1, -1], [2, 3, -1], [-1, -1, -1], [0, 1, 3]])
    assert_close(novelty(rec, pop, 8), [0.5, 2.5, np.nan, 4 / 3])
    assert_close(novelty(rec, pop, 8, k=1), [0.0, 2.0, np.nan, 0.0])
    with pytest.raises(DataError, match="n_users is 4"):
        novelty(rec, pop, 4)
    with pytest.raises(DataError, match="catalogue has 4 items"):
        novelty(np.array([[4]]), pop, 8)
    with pytest.raises(DataError, match=">= 0"):
        novelty(rec, np.array([1, -1, 0, 0]), 8)
