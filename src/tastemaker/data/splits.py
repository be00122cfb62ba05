"""Train/test splitters. Every one returns ``Split(train, test)``.

Both halves keep the input's vocabularies and side features (so an index means the same user or
item on both sides), every input row lands in exactly one half, and row order is kept. Seeded
splitters are deterministic for a given `seed`.

Tune hyperparameters on `validation_split` of a training half, never on a test half.
"""

from __future__ import annotations

import numbers
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from tastemaker.data.datasets import Dataset

VALIDATION_METHODS: tuple[str, ...] = ("random", "user_holdout", "temporal", "last_n", "cold_user", "cold_item")


class Split(NamedTuple):
    """A train half and a test half of the same events."""

    train: Interactions
    test: Interactions


def official_split(dataset: Dataset, name: str) -> Split:
    """A split the data set ships with (e.g. ``u1`` … ``u5``, ``ua``, ``ub`` of MovieLens 100K)."""
    return dataset.split(name)


def random_split(data: Interactions, test_fraction: float = 0.2, *, seed: int = 0) -> Split:
    """A uniformly random `test_fraction` of the events (rounded) goes to test."""
    _check_fraction(test_fraction, "test_fraction")
    n = len(data)
    n_test = _round(test_fraction * n)
    if n_test == 0 or n_test == n:
        raise DataError(f"{n} events are too few to hold out test_fraction={test_fraction:g} (that is {n_test})",
                        hint="use more data or another fraction")
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[:n_test]] = True
    return _by_mask(data, mask)


def user_holdout(
    data: Interactions,
    *,
    n: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
    min_train: int = 1,
) -> Split:
    """Per user, hold out `n` random events, or a `fraction` of them (at least one), for test.

    Give `n` or `fraction` (default: ``fraction=0.2``). A user keeps everything in train when
    holding out would leave fewer than `min_train` events in train. Users with no events here
    are simply absent from both halves.
    """
    if n is not None and fraction is not None:
        raise DataError("give n or fraction, not both")
    if n is not None:
        _check_count(n, "n")
    else:
        fraction = 0.2 if fraction is None else fraction
        _check_fraction(fraction, "fraction")
    _check_count(min_train, "min_train", minimum=0)
    _check_nonempty(data)
    counts = data.user_counts
    if n is not None:
        k = np.full(len(counts), n, dtype=np.int64)
    else:
        k = np.maximum(1, np.floor(fraction * counts + 0.5).astype(np.int64))
    k = np.where(counts - k >= min_train, k, 0)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(data)), data.user_idx))
    rank = _rank_in_group(data.user_idx[order], counts)
    mask = np.zeros(len(data), dtype=bool)
    mask[order] = rank < k[data.user_idx[order]]
    if not mask.any():
        raise DataError(
            f"no user has enough events to hold any out (most events of one user: {int(counts.max())}, "
            f"min_train={min_train})",
            hint="lower n or min_train",
        )
    return _by_mask(data, mask)


def temporal_split(
    data: Interactions,
    *,
    cut: int | float | str | datetime | None = None,
    fraction: float | None = None,
) -> Split:
    """A global time cut: events at or after the cut go to test, earlier ones to train.

    Give `cut` (seconds since the epoch, or a date/time, taken as UTC when naive) or `fraction`
    (the cut is put where that fraction of the events, rounded, is at or after it; ties at the
    cut all go to test). Default: ``fraction=0.2``.
    """
    ts = _require_timestamps(data, "temporal_split")
    if cut is not None and fraction is not None:
        raise DataError("give cut or fraction, not both")
    if cut is None:
        fraction = 0.2 if fraction is None else fraction
        _check_fraction(fraction, "fraction")
        n_test = _round(fraction * len(ts))
        if n_test == 0:
            raise DataError(f"{len(ts)} events are too few to hold out fraction={fraction:g}",
                            hint="use more data or a larger fraction")
        cut_s = int(np.sort(ts)[len(ts) - n_test])
    else:
        cut_s = _to_seconds(cut)
    mask = ts >= cut_s
    if mask.all() or not mask.any():
        side = "test" if mask.all() else "train"
        raise DataError(
            f"the cut at {cut_s} puts every event in {side}; timestamps run from {int(ts.min())} to {int(ts.max())}",
            hint="choose a cut inside that range (with fraction=, many events share the earliest timestamp)",
        )
    return _by_mask(data, mask)


def last_n_split(data: Interactions, n: int = 1, *, min_train: int = 1) -> Split:
    """Per user, the last `n` events by time go to test (ties broken by row order).

    Users with fewer than ``n + min_train`` events keep everything in train.
    """
    ts = _require_timestamps(data, "last_n_split")
    _check_count(n, "n")
    _check_count(min_train, "min_train", minimum=0)
    _check_nonempty(data)
    counts = data.user_counts
    order = np.lexsort((np.arange(len(data)), ts, data.user_idx))
    users_sorted = data.user_idx[order]
    rank = _rank_in_group(users_sorted, counts)
    from_end = counts[users_sorted] - 1 - rank
    mask = np.zeros(len(data), dtype=bool)
    mask[order] = (from_end < n) & (counts[users_sorted] >= n + min_train)
    if not mask.any():
        raise DataError(f"no user has at least n + min_train = {n + min_train} events", hint="lower n or min_train")
    return _by_mask(data, mask)


def cold_user_split(data: Interactions, fraction: float = 0.2, *, seed: int = 0) -> Split:
    """A random `fraction` of the users (with events), with every event of theirs, goes to test."""
    return _cold(data, fraction, seed, data.user_idx, data.active_users, "users")


def cold_item_split(data: Interactions, fraction: float = 0.2, *, seed: int = 0) -> Split:
    """A random `fraction` of the items (with events), with every event on them, goes to test."""
    return _cold(data, fraction, seed, data.item_idx, data.active_items, "items")


def validation_split(
    train: Interactions,
    *,
    method: str = "user_holdout",
    fraction: float | None = None,
    n: int | None = None,
    seed: int = 0,
) -> Split:
    """Carve a validation set out of a training set, for tuning: ``Split(fit part, validation part)``.

    `method` is one of `VALIDATION_METHODS`: ``"random"``, ``"user_holdout"`` (`n` or
    `fraction` per user), ``"temporal"`` (the latest `fraction`), ``"last_n"`` (`n` per user),
    ``"cold_user"``, ``"cold_item"``. `fraction` defaults to 0.2 and `n` to 1 where they apply.
    """
    if method not in VALIDATION_METHODS:
        raise ConfigError(f"unknown validation method {method!r}; use one of {VALIDATION_METHODS}")
    counted = method in ("user_holdout", "last_n")
    if n is not None and not counted:
        raise ConfigError(f"method {method!r} takes fraction=, not n=")
    if method == "last_n":
        if fraction is not None:
            raise ConfigError("method 'last_n' takes n=, not fraction=")
        return last_n_split(train, 1 if n is None else n)
    if method == "user_holdout":
        return user_holdout(train, n=n, fraction=fraction, seed=seed)
    fraction = 0.2 if fraction is None else fraction
    if method == "random":
        return random_split(train, fraction, seed=seed)
    if method == "temporal":
        return temporal_split(train, fraction=fraction)
    if method == "cold_user":
        return cold_user_split(train, fraction, seed=seed)
    return cold_item_split(train, fraction, seed=seed)


# --- helpers -----------------------------------------------------------------------------------
def _by_mask(data: Interactions, test_mask: np.ndarray) -> Split:
    return Split(data.select(~test_mask), data.select(test_mask))


def _cold(data: Interactions, fraction: float, seed: int, idx: np.ndarray, active: np.ndarray, what: str) -> Split:
    _check_fraction(fraction, "fraction")
    n_hold = _round(fraction * len(active))
    if n_hold == 0 or n_hold == len(active):
        raise DataError(f"{len(active)} {what} with events are too few to hold out fraction={fraction:g}",
                        hint="use more data or another fraction")
    rng = np.random.default_rng(seed)
    held = rng.permutation(active)[:n_hold]
    return _by_mask(data, np.isin(idx, held))


def _rank_in_group(sorted_keys: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Position of each row within its run of equal keys (keys sorted, `counts` per key)."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.arange(len(sorted_keys)) - starts[sorted_keys]


def _round(x: float) -> int:
    return int(np.floor(x + 0.5))


def _check_fraction(fraction: float, name: str) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
        raise DataError(f"{name}={fraction!r} must be a number strictly between 0 and 1")


def _check_count(value: int, name: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise DataError(f"{name}={value!r} must be an integer ≥ {minimum}")


def _check_nonempty(data: Interactions) -> None:
    if len(data) == 0:
        raise DataError("cannot split data without events")


def _require_timestamps(data: Interactions, what: str) -> np.ndarray:
    if data.timestamps is None:
        raise DataError(f"{what} needs timestamps and {data.name or 'this data'} has none",
                        hint="load the data with a timestamp column, or use random_split / user_holdout")
    _check_nonempty(data)
    return data.timestamps


def _to_seconds(cut: int | float | str | datetime) -> int:
    if isinstance(cut, numbers.Real) and not isinstance(cut, bool):
        return int(np.floor(cut))
    try:
        stamp = pd.Timestamp(cut)
    except (ValueError, TypeError) as exc:
        raise DataError(f"cut={cut!r} is neither seconds since the epoch nor a date/time") from exc
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.timestamp() // 1)
