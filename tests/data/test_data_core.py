"""Vocabulary and Interactions basics: construction, dedupe policies, reindex, csr, fingerprint, read-only."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.data import UNKNOWN, Interactions, Vocabulary
from tastemaker.errors import DataError, DataWarning


# --- Vocabulary ----------------------------------------------------------------------------------
def test_vocabulary_maps_ids_both_ways():
    vocab = Vocabulary([30, 10, 20])
    assert vocab.is_integer and vocab.ids.dtype == np.int64
    assert vocab.index(10) == 1 and vocab.index("20") == 2 and vocab.index(99) == UNKNOWN
    assert vocab.indices([20, 30, 5]).tolist() == [2, 0, UNKNOWN]
    assert vocab.lookup([1, 0]).tolist() == [10, 30]
    assert 30 in vocab and 31 not in vocab


def test_vocabulary_of_strings_and_encode_sorts():
    vocab, codes = Vocabulary.encode(["b", "a", "b", "c"])
    assert vocab.ids.tolist() == ["a", "b", "c"]
    assert codes.tolist() == [1, 0, 1, 2]
    assert not vocab.is_integer


def test_vocabulary_rejects_duplicates_and_is_read_only():
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary([1, 2, 1])
    vocab = Vocabulary([1, 2])
    with pytest.raises(ValueError):
        vocab.ids[0] = 5


def test_vocabulary_extend_keeps_indices_and_round_trips_json():
    vocab = Vocabulary(["x", "y"])
    bigger = vocab.extend(["y", "z"])
    assert bigger.ids.tolist() == ["x", "y", "z"]
    assert bigger.index("x") == vocab.index("x")
    assert Vocabulary.from_json(bigger.to_json()) == bigger


# --- Interactions --------------------------------------------------------------------------------
def test_from_arrays_builds_sorted_vocabularies_and_infers_kind():
    data = Interactions.from_arrays(["u2", "u1", "u2"], [7, 5, 5], [4.0, 3.0, 5.0], timestamps=[3, 1, 2])
    assert data.user_vocab.ids.tolist() == ["u1", "u2"]
    assert data.item_vocab.ids.tolist() == [5, 7]
    assert data.explicit and data.rating_scale == (3.0, 5.0)
    assert data.shape == (2, 2) and len(data) == 3
    implicit = Interactions.from_arrays([1, 2], [1, 1])
    assert not implicit.explicit and implicit.values.tolist() == [1.0, 1.0]


def test_from_arrays_with_given_vocabulary_rejects_unknown_ids():
    with pytest.raises(DataError, match="item id 9"):
        Interactions.from_arrays([1], [9], user_vocab=Vocabulary([1]), item_vocab=Vocabulary([1, 2]))


def _dupes() -> dict:
    # user 1 rates item 1 twice: 2 at t=10, then 4 at t=20 (listed first)
    return dict(users=[1, 1, 2], items=[1, 1, 1], values=[4.0, 2.0, 3.0], timestamps=[20, 10, 5])


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("last", {(1, 1): 4.0, (2, 1): 3.0}), ("first", {(1, 1): 2.0, (2, 1): 3.0}),
     ("mean", {(1, 1): 3.0, (2, 1): 3.0}), ("sum", {(1, 1): 6.0, (2, 1): 3.0})],
)
def test_dedupe_policies_merge_repeated_pairs_with_a_warning(policy, expected):
    d = _dupes()
    with pytest.warns(DataWarning, match="1 duplicate"):
        data = Interactions.from_arrays(d["users"], d["items"], d["values"], timestamps=d["timestamps"],
                                        duplicates=policy)
    frame = data.to_frame()
    got = {(int(u), int(i)): float(v) for u, i, v in zip(frame["user"], frame["item"], frame["value"])}
    assert got == expected


def test_dedupe_keep_and_error():
    d = _dupes()
    kept = Interactions.from_arrays(d["users"], d["items"], d["values"], timestamps=d["timestamps"], duplicates="keep")
    assert len(kept) == 3
    assert kept.csr()[0, 0] == 6.0  # csr sums kept duplicates
    with pytest.raises(DataError, match=r"user 1, item 1"):
        Interactions.from_arrays(d["users"], d["items"], d["values"], duplicates="error")


def test_reindex_moves_rows_into_other_vocabularies():
    data = Interactions.from_arrays([1, 2], [10, 20], [3.0, 4.0])
    target_users, target_items = Vocabulary([2, 1, 3]), Vocabulary([20, 30])
    moved = data.reindex(target_users, target_items)
    assert len(moved) == 1  # item 10 is unknown there
    assert moved.user_vocab.lookup(moved.user_idx).tolist() == [2]
    assert moved.item_vocab.lookup(moved.item_idx).tolist() == [20]
    with pytest.raises(DataError):
        data.reindex(target_users, target_items, drop_unknown=False)


def test_csr_has_the_values_at_user_item_cells():
    data = Interactions.from_arrays([1, 1, 2], [5, 6, 6], [1.0, 2.0, 3.0])
    m = data.csr()
    assert m.shape == (2, 2)
    assert m.toarray().tolist() == [[1.0, 2.0], [0.0, 3.0]]
    assert data.csr(binary=True).toarray().tolist() == [[1.0, 1.0], [0.0, 1.0]]


def test_fingerprint_is_stable_and_sensitive():
    a = Interactions.from_arrays([1, 2], [1, 2], [3.0, 4.0], timestamps=[1, 2])
    b = Interactions.from_arrays([1, 2], [1, 2], [3.0, 4.0], timestamps=[1, 2])
    c = Interactions.from_arrays([1, 2], [1, 2], [3.0, 5.0], timestamps=[1, 2])
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert len(a.fingerprint()) == 64


def test_arrays_are_read_only():
    data = Interactions.from_arrays([1, 2], [1, 2], [3.0, 4.0], timestamps=[1, 2])
    for arr in (data.user_idx, data.item_idx, data.values, data.timestamps):
        with pytest.raises(ValueError):
            arr[0] = 0
