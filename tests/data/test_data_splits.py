"""Splitter invariants: a partition of the input, shared vocabularies, fractions, seeds, time and cold rules."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tastemaker.data import (
    Interactions,
    Split,
    cold_item_split,
    cold_user_split,
    last_n_split,
    random_split,
    temporal_split,
    user_holdout,
    validation_split,
)
from tastemaker.errors import ConfigError, DataError


def _rows(data: Interactions) -> Counter:
    ts = data.timestamps if data.timestamps is not None else np.zeros(len(data), dtype=np.int64)
    return Counter(zip(data.user_idx.tolist(), data.item_idx.tolist(), data.values.tolist(), ts.tolist()))


def _assert_partition(data: Interactions, split: Split) -> None:
    train, test = split
    assert isinstance(split, Split)
    for half in split:
        assert half.user_vocab is data.user_vocab and half.item_vocab is data.item_vocab
        assert half.item_features is data.item_features and half.user_features is data.user_features
        assert half.rating_scale == data.rating_scale and half.explicit == data.explicit
    assert len(train) > 0 and len(test) > 0
    assert _rows(train) + _rows(test) == _rows(data)  # union = input, every row once
    assert not set(zip(train.user_idx.tolist(), train.item_idx.tolist())) & set(
        zip(test.user_idx.tolist(), test.item_idx.tolist()))  # disjoint


def _same(a: Split, b: Split) -> bool:
    return a.test.fingerprint() == b.test.fingerprint() and a.train.fingerprint() == b.train.fingerprint()


# --- random ----------------------------------------------------------------------------------------
def test_random_split(ratings):
    split = random_split(ratings, 0.25, seed=1)
    _assert_partition(ratings, split)
    assert len(split.test) == round(0.25 * len(ratings))
    assert _same(split, random_split(ratings, 0.25, seed=1))
    assert not _same(split, random_split(ratings, 0.25, seed=2))


# --- per-user holdout ------------------------------------------------------------------------------
def test_user_holdout_n(ratings):
    split = user_holdout(ratings, n=3, seed=0)
    _assert_partition(ratings, split)
    assert (split.test.user_counts == 3).all()  # every user has 12 events
    assert (split.train.user_counts == 9).all()
    assert _same(split, user_holdout(ratings, n=3, seed=0))
    assert not _same(split, user_holdout(ratings, n=3, seed=1))


def test_user_holdout_fraction_and_min_train():
    users = [1] * 10 + [2] * 3 + [3] * 1
    data = Interactions.from_arrays(users, list(range(14)), np.arange(14) % 5 + 1.0, timestamps=np.arange(14))
    split = user_holdout(data, fraction=0.3, seed=0)
    _assert_partition(data, split)
    test_counts = dict(zip(data.user_vocab.lookup(np.arange(3)).tolist(), split.test.user_counts.tolist()))
    assert test_counts == {1: 3, 2: 1, 3: 0}  # 0.3·10 = 3; 0.3·3 → at least 1; user 3 would have no train left
    strict = user_holdout(data, n=1, min_train=5)
    assert strict.test.user_counts.tolist() == [1, 0, 0]


def test_user_holdout_needs_n_or_fraction_not_both(ratings):
    with pytest.raises(DataError, match="not both"):
        user_holdout(ratings, n=1, fraction=0.2)
    with pytest.raises(DataError, match="n=0"):
        user_holdout(ratings, n=0)
    with pytest.raises(DataError, match="enough events"):
        user_holdout(ratings, n=12)


# --- temporal --------------------------------------------------------------------------------------
def test_temporal_split_by_cut(ratings):
    cut = int(np.median(ratings.timestamps))
    split = temporal_split(ratings, cut=cut)
    _assert_partition(ratings, split)
    assert split.test.timestamps.min() >= cut > split.train.timestamps.max()


def test_temporal_split_by_fraction(ratings):
    split = temporal_split(ratings, fraction=0.2)
    _assert_partition(ratings, split)
    assert split.test.timestamps.min() > split.train.timestamps.max()
    assert len(split.test) == round(0.2 * len(ratings))  # synthetic timestamps are distinct


def test_temporal_split_accepts_a_date():
    data = Interactions.from_arrays([1, 1, 2], [1, 2, 1], timestamps=[1704067199, 1704067200, 1704067201])
    split = temporal_split(data, cut="2024-01-01")
    assert split.test.timestamps.tolist() == [1704067200, 1704067201]


def test_temporal_split_errors(ratings):
    no_time = Interactions.from_arrays([1, 2], [1, 2])
    with pytest.raises(DataError, match="needs timestamps"):
        temporal_split(no_time, fraction=0.5)
    with pytest.raises(DataError, match="every event in test"):
        temporal_split(ratings, cut=0)
    with pytest.raises(DataError, match="not both"):
        temporal_split(ratings, cut=5, fraction=0.2)


# --- last n ----------------------------------------------------------------------------------------
def test_last_n_split(ratings):
    split = last_n_split(ratings, n=2)
    _assert_partition(ratings, split)
    assert (split.test.user_counts == 2).all()
    for u in range(ratings.n_users):
        assert split.test.timestamps[split.test.user_idx == u].min() >= split.train.timestamps[
            split.train.user_idx == u].max()


def test_last_n_ties_go_by_row_order_and_short_histories_stay_in_train():
    # user 1: three events, the last two share a timestamp; user 2 has a single event
    data = Interactions.from_arrays([1, 1, 1, 2], [10, 11, 12, 10], [1.0, 2.0, 3.0, 4.0], timestamps=[5, 9, 9, 1])
    split = last_n_split(data, n=1)
    _assert_partition(data, split)
    assert split.test.item_vocab.lookup(split.test.item_idx).tolist() == [12]  # the later row wins the tie
    assert split.train.user_counts.tolist() == [2, 1]


def test_last_n_needs_timestamps():
    with pytest.raises(DataError, match="needs timestamps"):
        last_n_split(Interactions.from_arrays([1, 1], [1, 2]))


# --- cold users / items ----------------------------------------------------------------------------
def test_cold_user_split(ratings):
    split = cold_user_split(ratings, 0.25, seed=4)
    _assert_partition(ratings, split)
    train_users, test_users = set(split.train.active_users), set(split.test.active_users)
    assert not train_users & test_users
    assert len(test_users) == 15 and len(train_users) == 45
    assert _same(split, cold_user_split(ratings, 0.25, seed=4))
    assert not _same(split, cold_user_split(ratings, 0.25, seed=5))


def test_cold_item_split(ratings):
    split = cold_item_split(ratings, 0.2, seed=0)
    _assert_partition(ratings, split)
    train_items, test_items = set(split.train.active_items), set(split.test.active_items)
    assert not train_items & test_items
    assert len(test_items) == round(0.2 * len(ratings.active_items))
    assert _same(split, cold_item_split(ratings, 0.2, seed=0))


# --- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["random", "user_holdout", "temporal", "last_n", "cold_user", "cold_item"])
def test_validation_split_carves_from_the_training_half_only(ratings, method):
    train, test = random_split(ratings, 0.2, seed=0)
    fit, valid = validation_split(train, method=method, seed=0)
    _assert_partition(train, Split(fit, valid))
    assert not _rows(valid) & _rows(test)  # nothing of the test half is used for tuning


def test_validation_split_arguments(ratings):
    _fit, valid = validation_split(ratings, method="user_holdout", n=2)
    assert (valid.user_counts == 2).all()
    assert len(validation_split(ratings, method="random", fraction=0.1).test) == round(0.1 * len(ratings))
    with pytest.raises(ConfigError, match="'random', 'user_holdout'"):
        validation_split(ratings, method="kfold")
    with pytest.raises(ConfigError, match="fraction="):
        validation_split(ratings, method="random", n=3)


def test_validation_split_on_an_official_fold(ml100k):
    train, test = ml100k.split("u1")
    fit, valid = validation_split(train, method="user_holdout", fraction=0.1, seed=0)
    assert len(fit) + len(valid) == 80_000
    assert not _rows(valid) & _rows(test)


# --- impossible requests ---------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, "0.2"])
def test_fractions_outside_the_open_unit_interval(ratings, fraction):
    for call in (lambda: random_split(ratings, fraction), lambda: user_holdout(ratings, fraction=fraction),
                 lambda: temporal_split(ratings, fraction=fraction), lambda: cold_user_split(ratings, fraction),
                 lambda: cold_item_split(ratings, fraction)):
        with pytest.raises(DataError, match="strictly between 0 and 1"):
            call()


def test_too_little_data(ratings):
    tiny = Interactions.from_arrays([1, 2], [1, 2])
    with pytest.raises(DataError, match="too few"):
        random_split(tiny, 0.1)
    with pytest.raises(DataError, match="too few"):
        cold_user_split(tiny, 0.1)
    with pytest.raises(DataError, match="without events"):
        user_holdout(ratings.select(np.zeros(len(ratings), dtype=bool)), n=1)
