"""The union step: quotas, dedup, round-robin fill, every source's score and rank kept."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.errors import ConfigError
from tastemaker.retrieval.base import Candidates, Query
from tastemaker.retrieval.union import UnionRetriever, describe, union

A = Candidates([1, 2, 3, 4], [0.9, 0.8, 0.7, 0.6], "a", {"age": np.array([1.0, 2.0, 3.0, 4.0])})
B = Candidates([2, 5, 6, 1], [5.0, 4.0, 3.0, 2.0], "b")
C = Candidates([7], [0.1], "c")


def test_quotas_take_new_items_in_source_order():
    cs = union([A, B, C], quotas={"a": 2, "b": 2, "c": 1})
    assert cs.items.tolist() == [1, 2, 5, 6, 7]  # b skips 2 (taken by a) and takes its next two
    assert cs.origin.tolist() == [0, 0, 1, 1, 2]
    assert cs.sources == ("a", "b", "c")


def test_every_source_keeps_its_score_and_rank_for_every_taken_item():
    cs = union([A, B, C], quotas={"a": 2, "b": 2, "c": 1})
    assert cs.score_of("b")[:2].tolist() == [2.0, 5.0]  # b returned 1 (rank 3) and 2 (rank 0)
    assert cs.ranks[:, 1].tolist() == [3, 0, 1, 2, -1]
    assert np.isnan(cs.score_of("a")[2:]).all()
    assert cs.tags(0) == ["a", "b"] and cs.tags(4) == ["c"]
    assert cs.found_by("a").tolist() == [True, True, False, False, False]
    assert cs.features["a.age"][:2].tolist() == [1.0, 2.0] and np.isnan(cs.features["a.age"][2])
    names, x = cs.feature_matrix()
    assert names[:3] == ["a.score", "b.score", "c.score"] and "n_sources" in names and "a.age" in names
    assert x.shape == (5, len(names)) and x[0, names.index("n_sources")] == 2


def test_fill_is_round_robin_after_quotas_and_respects_k():
    cs = union([A, B, C], quotas={"c": 1}, k=5)
    # c's quota; round 1: a→1, b→2, c dry; round 2: a→3 (2 is taken), b→5
    assert cs.items.tolist() == [7, 1, 2, 3, 5]
    assert union([A, B, C], quotas={"a": 1}, k=3, fill=False).items.tolist() == [1]
    everything = union([A, B, C])
    assert sorted(everything.items.tolist()) == [1, 2, 3, 4, 5, 6, 7]
    small = union([A, B], quotas={"a": 4, "b": 4}, k=3)
    assert small.items.tolist() == [1, 2, 3]
    assert describe(cs)["c"] == {"taken": 1, "returned": 1, "only_here": 1}


def test_union_errors_and_empty_sources():
    with pytest.raises(ConfigError, match="same source tag"):
        union([A, A])
    with pytest.raises(ConfigError, match="unknown sources"):
        union([A], quotas={"z": 1})
    empty = union([Candidates.empty("a"), B], quotas={"a": 3, "b": 1}, k=2)
    assert empty.items.tolist() == [2, 5]


class Fixed:
    """A stand-in source with fixed answers and scores."""

    def __init__(self, name, items, scores, n_items=10):
        self.name, self._items, self._scores, self.n_items = name, np.array(items), np.array(scores), n_items
        self.asked: list[int] = []

    def retrieve(self, query, k):
        self.asked.append(k)
        keep = query.keep_mask(self.n_items)
        ok = np.ones(len(self._items), bool) if keep is None else keep[self._items]
        return Candidates(self._items[ok][:k], self._scores[ok][:k], self.name)

    def score(self, query, items):
        return np.full(len(items), 0.25, dtype=np.float32)


def test_union_retriever_fetches_merges_and_fills_scores():
    a, b = Fixed("a", [1, 2, 3], [3, 2, 1]), Fixed("b", [3, 4], [9, 8])
    ur = UnionRetriever([a, b], {"a": 2, "b": 1}, fetch={"b": 7})
    cs = ur.retrieve(Query(exclude=[2]))
    assert a.asked == [50] and b.asked == [7]
    assert cs.items.tolist() == [1, 3, 4]
    filled = ur.fill_scores(Query(), cs)
    assert filled.scores[0, 1] == pytest.approx(0.25) and filled.scores[1, 1] == 9.0
    assert np.isnan(cs.scores[0, 1])  # the original is untouched
    with pytest.raises(ConfigError, match="share a name"):
        UnionRetriever([a, a], {})
