"""`Interactions`: user–item events on columnar arrays, with the id vocabularies."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tastemaker.data.features import SideFeatures
from tastemaker.data.vocabulary import Vocabulary
from tastemaker.errors import DataError, DataWarning

DuplicatePolicy = Literal["last", "first", "mean", "sum", "error", "keep"]
DUPLICATE_POLICIES: tuple[str, ...] = ("last", "first", "mean", "sum", "error", "keep")


@dataclass(frozen=True, eq=False)
class Interactions:
    """User–item events: one row per (user, item, value, timestamp, event type, weight).

    Rows refer to users and items by dense index into `user_vocab` / `item_vocab`. Splits of a
    data set share the vocabularies of the whole data set, so indices mean the same thing on
    both sides of a split. Arrays are read-only; every transformation returns a new object.

    `explicit` is True when `values` are ratings on `rating_scale`; implicit data has values
    that are counts or confidences (1.0 by default).
    """

    user_idx: np.ndarray
    item_idx: np.ndarray
    values: np.ndarray
    user_vocab: Vocabulary
    item_vocab: Vocabulary
    timestamps: np.ndarray | None = None
    event_types: np.ndarray | None = None
    event_names: tuple[str, ...] = ()
    weights: np.ndarray | None = None
    explicit: bool = True
    rating_scale: tuple[float, float] | None = None
    item_features: SideFeatures | None = None
    user_features: SideFeatures | None = None
    name: str = ""

    def __post_init__(self) -> None:
        n = len(self.user_idx)
        for label in ("item_idx", "values", "timestamps", "event_types", "weights"):
            arr = getattr(self, label)
            if arr is not None and len(arr) != n:
                raise ValueError(f"{label} has {len(arr)} rows, user_idx has {n}")
        if n:
            if self.user_idx.min() < 0 or self.user_idx.max() >= len(self.user_vocab):
                raise ValueError("user_idx out of the user vocabulary's range")
            if self.item_idx.min() < 0 or self.item_idx.max() >= len(self.item_vocab):
                raise ValueError("item_idx out of the item vocabulary's range")
        for label in ("user_idx", "item_idx", "values", "timestamps", "event_types", "weights"):
            arr = getattr(self, label)
            if arr is not None and arr.flags.writeable:
                arr = arr.copy()
                arr.setflags(write=False)
                object.__setattr__(self, label, arr)

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        users: Sequence[Any] | np.ndarray,
        items: Sequence[Any] | np.ndarray,
        values: Sequence[float] | np.ndarray | None = None,
        *,
        timestamps: Sequence[int] | np.ndarray | None = None,
        event_types: Sequence[str] | np.ndarray | None = None,
        weights: Sequence[float] | np.ndarray | None = None,
        user_vocab: Vocabulary | None = None,
        item_vocab: Vocabulary | None = None,
        explicit: bool | None = None,
        rating_scale: tuple[float, float] | None = None,
        duplicates: DuplicatePolicy = "last",
        item_features: SideFeatures | None = None,
        user_features: SideFeatures | None = None,
        name: str = "",
    ) -> Interactions:
        """Build from external ids. Vocabularies are built (sorted ids) unless given.

        When vocabularies are given, every id must be in them (a `DataError` names the first
        one that is not). `duplicates` decides what happens to repeated (user, item) pairs;
        see `dedupe`.
        """
        users = np.asarray(users)
        items = np.asarray(items)
        if users.shape != items.shape or users.ndim != 1:
            raise DataError(f"users and items must be 1-D and equally long, got {users.shape} and {items.shape}")
        n = len(users)
        if user_vocab is None:
            user_vocab, uidx = Vocabulary.encode(users)
        else:
            uidx = _known(user_vocab, users, "user")
        if item_vocab is None:
            item_vocab, iidx = Vocabulary.encode(items)
        else:
            iidx = _known(item_vocab, items, "item")
        if values is None:
            vals = np.ones(n, dtype=np.float32)
            explicit = False if explicit is None else explicit
        else:
            vals = np.asarray(values, dtype=np.float32)
            explicit = True if explicit is None else explicit
        ts = None if timestamps is None else np.asarray(timestamps, dtype=np.int64)
        ev, ev_names = None, ()
        if event_types is not None:
            names, codes = np.unique(np.asarray(event_types).astype(str), return_inverse=True)
            ev, ev_names = codes.astype(np.int8), tuple(names.tolist())
        w = None if weights is None else np.asarray(weights, dtype=np.float32)
        if explicit and rating_scale is None and n:
            rating_scale = (float(vals.min()), float(vals.max()))
        out = cls(
            user_idx=uidx.astype(np.int32),
            item_idx=iidx.astype(np.int32),
            values=vals,
            user_vocab=user_vocab,
            item_vocab=item_vocab,
            timestamps=ts,
            event_types=ev,
            event_names=ev_names,
            weights=w,
            explicit=bool(explicit),
            rating_scale=rating_scale,
            item_features=item_features,
            user_features=user_features,
            name=name,
        )
        return out.dedupe(duplicates)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        user: str = "user",
        item: str = "item",
        value: str | None = "rating",
        timestamp: str | None = "timestamp",
        event_type: str | None = None,
        weight: str | None = None,
        **kwargs: Any,
    ) -> Interactions:
        """Build from a DataFrame; column names default to user, item, rating, timestamp."""
        cols = {"user": user, "item": item, "value": value, "timestamp": timestamp,
                "event_type": event_type, "weight": weight}
        missing = [c for c in cols.values() if c is not None and c not in frame.columns]
        optional_missing = {timestamp} if timestamp == "timestamp" else set()
        optional_missing |= {value} if value == "rating" else set()
        really_missing = [c for c in missing if c not in optional_missing]
        if really_missing:
            raise DataError(
                f"missing column(s) {really_missing}; the frame has {list(frame.columns)}",
                hint="map your columns with user=, item=, value=, timestamp=",
            )

        def col(name: str | None):
            return None if name is None or name not in frame.columns else frame[name].to_numpy()

        return cls.from_arrays(
            col(user), col(item), col(value),
            timestamps=col(timestamp), event_types=col(event_type), weights=col(weight), **kwargs,
        )

    # --- basic properties ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.user_idx)

    def __repr__(self) -> str:
        kind = "explicit" if self.explicit else "implicit"
        return (f"Interactions({self.name or 'unnamed'}: {len(self):,} {kind} events, "
                f"{self.n_users:,} users × {self.n_items:,} items)")

    @property
    def n_users(self) -> int:
        return len(self.user_vocab)

    @property
    def n_items(self) -> int:
        return len(self.item_vocab)

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_users, self.n_items

    @cached_property
    def user_counts(self) -> np.ndarray:
        return np.bincount(self.user_idx, minlength=self.n_users)

    @cached_property
    def item_counts(self) -> np.ndarray:
        return np.bincount(self.item_idx, minlength=self.n_items)

    @property
    def active_users(self) -> np.ndarray:
        """Indices of users with at least one event here."""
        return np.flatnonzero(self.user_counts)

    @property
    def active_items(self) -> np.ndarray:
        return np.flatnonzero(self.item_counts)

    def effective_weights(self) -> np.ndarray:
        return np.ones(len(self), dtype=np.float32) if self.weights is None else self.weights

    # --- matrices -----------------------------------------------------------------------------
    def csr(self, *, binary: bool = False, weighted: bool = False) -> sp.csr_matrix:
        """User × item sparse matrix of values (1s when `binary`, times weights when `weighted`).

        Duplicate pairs (policy "keep") are summed.
        """
        data = np.ones(len(self), dtype=np.float32) if binary else self.values.astype(np.float32)
        if weighted and self.weights is not None:
            data = data * self.weights
        m = sp.csr_matrix((data, (self.user_idx, self.item_idx)), shape=self.shape, dtype=np.float32)
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m

    @cached_property
    def seen(self) -> sp.csr_matrix:
        """Binary user × item matrix of what each user has interacted with (cached)."""
        return self.csr(binary=True)

    # --- transformations ----------------------------------------------------------------------
    def select(self, rows: np.ndarray) -> Interactions:
        """Rows by boolean mask or index array; vocabularies and features are kept."""
        rows = np.asarray(rows)

        def take(arr):
            return None if arr is None else arr[rows]

        return replace(
            self,
            user_idx=self.user_idx[rows], item_idx=self.item_idx[rows], values=self.values[rows],
            timestamps=take(self.timestamps), event_types=take(self.event_types), weights=take(self.weights),
        )

    def with_name(self, name: str) -> Interactions:
        return replace(self, name=name)

    def binarize(self, threshold: float | None = None) -> Interactions:
        """Implicit copy: rows with value ≥ `threshold` (all rows when None), values set to 1."""
        out = self if threshold is None else self.select(self.values >= threshold)
        return replace(out, values=np.ones(len(out), dtype=np.float32), explicit=False, rating_scale=None)

    def reindex(self, user_vocab: Vocabulary, item_vocab: Vocabulary, *, drop_unknown: bool = True) -> Interactions:
        """Express these rows in other vocabularies (e.g. a trained model's).

        Rows whose user or item is unknown there are dropped (or raise when `drop_unknown` is
        False).
        """
        if user_vocab == self.user_vocab and item_vocab == self.item_vocab:
            return self
        u = user_vocab.indices(self.user_vocab.lookup(self.user_idx))
        i = item_vocab.indices(self.item_vocab.lookup(self.item_idx))
        keep = (u >= 0) & (i >= 0)
        if not drop_unknown and not keep.all():
            bad = int(np.flatnonzero(~keep)[0])
            raise DataError(f"row {bad} refers to a user or item outside the target vocabulary")
        moved = self.select(keep)
        return replace(moved, user_idx=u[keep].astype(np.int32), item_idx=i[keep].astype(np.int32),
                       user_vocab=user_vocab, item_vocab=item_vocab)

    def concat(self, other: Interactions) -> Interactions:
        """Rows of both (same vocabularies required)."""
        if other.user_vocab != self.user_vocab or other.item_vocab != self.item_vocab:
            other = other.reindex(self.user_vocab, self.item_vocab, drop_unknown=False)

        def cat(a, b):
            return None if a is None or b is None else np.concatenate([a, b])

        return replace(
            self,
            user_idx=np.concatenate([self.user_idx, other.user_idx]),
            item_idx=np.concatenate([self.item_idx, other.item_idx]),
            values=np.concatenate([self.values, other.values]),
            timestamps=cat(self.timestamps, other.timestamps),
            event_types=cat(self.event_types, other.event_types) if self.event_names == other.event_names else None,
            weights=cat(self.weights, other.weights),
        )

    def dedupe(self, policy: DuplicatePolicy = "last") -> Interactions:
        """Resolve repeated (user, item) pairs.

        - ``last`` (default): keep the latest event (by timestamp, else by row order) — a user who
          re-rates a movie changed their mind;
        - ``first``: keep the earliest; ``mean``: average the values; ``sum``: add values and
          weights (implicit counts);
        - ``error``: raise a `DataError` naming the first repeated pair;
        - ``keep``: leave them (event logs, where repeats are the signal).

        A `DataWarning` says how many rows were merged.
        """
        if policy not in DUPLICATE_POLICIES:
            raise DataError(f"unknown duplicate policy {policy!r}", hint=f"use one of {DUPLICATE_POLICIES}")
        if policy == "keep" or len(self) < 2:
            return self
        key = self.user_idx.astype(np.int64) * self.n_items + self.item_idx
        order = np.lexsort((self.timestamps, key)) if self.timestamps is not None else np.argsort(key, kind="stable")
        k_sorted = key[order]
        dup = np.zeros(len(self), dtype=bool)
        dup[1:] = k_sorted[1:] == k_sorted[:-1]
        if not dup.any():
            return self
        n_dup = int(dup.sum())
        if policy == "error":
            row = int(order[np.flatnonzero(dup)[0]])
            u = self.user_vocab.lookup([self.user_idx[row]])[0].item()
            i = self.item_vocab.lookup([self.item_idx[row]])[0].item()
            raise DataError(
                f"{n_dup} duplicate (user, item) pairs, first: user {u!r}, item {i!r} (row {row})",
                hint="choose duplicates='last', 'first', 'mean', 'sum' or 'keep'",
            )
        warnings.warn(f"{n_dup} duplicate (user, item) rows merged with policy {policy!r}", DataWarning, stacklevel=3)
        starts = np.flatnonzero(~dup)
        if policy in ("first", "last"):
            ends = np.append(starts[1:], len(order)) - 1
            pick = order[starts if policy == "first" else ends]
            return self.select(np.sort(pick))
        group = np.cumsum(~dup) - 1
        first_rows = order[starts]
        sums = np.bincount(group, weights=self.values[order].astype(np.float64))
        out = self.select(first_rows)
        if policy == "mean":
            vals = sums / np.bincount(group)
        else:
            vals = sums
        w = None
        if self.weights is not None:
            w = np.bincount(group, weights=self.weights[order].astype(np.float64)).astype(np.float32)
            if policy == "mean":
                w = w / np.bincount(group)
        ts = None if self.timestamps is None else np.maximum.reduceat(self.timestamps[order], starts)
        return replace(out, values=vals.astype(np.float32), weights=w, timestamps=ts)

    # --- export / identity --------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """External ids and columns as a DataFrame."""
        data: dict[str, Any] = {
            "user": self.user_vocab.lookup(self.user_idx),
            "item": self.item_vocab.lookup(self.item_idx),
            "value": self.values,
        }
        if self.timestamps is not None:
            data["timestamp"] = self.timestamps
        if self.event_types is not None:
            data["event_type"] = np.asarray(self.event_names, dtype=object)[self.event_types]
        if self.weights is not None:
            data["weight"] = self.weights
        return pd.DataFrame(data)

    def fingerprint(self) -> str:
        """sha256 of the rows and vocabularies: what a model was trained on, for its manifest."""
        h = hashlib.sha256()
        for arr in (self.user_idx, self.item_idx, self.values, self.timestamps, self.weights, self.event_types):
            h.update(b"\x00" if arr is None else np.ascontiguousarray(arr).tobytes())
        for vocab in (self.user_vocab, self.item_vocab):
            h.update(np.ascontiguousarray(vocab.ids).tobytes())
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        """Counts, density and (explicit data) the rating histogram."""
        pos_u = self.user_counts[self.user_counts > 0]
        pos_i = self.item_counts[self.item_counts > 0]

        def spread(counts: np.ndarray) -> dict[str, float]:
            if not len(counts):
                return {"min": 0, "median": 0.0, "max": 0}
            return {"min": int(counts.min()), "median": float(np.median(counts)), "max": int(counts.max())}

        out: dict[str, Any] = {
            "name": self.name,
            "events": len(self),
            "users": len(pos_u),
            "items": len(pos_i),
            "density": len(self) / max(len(pos_u) * len(pos_i), 1),
            "explicit": self.explicit,
            "events_per_user": spread(pos_u),
            "events_per_item": spread(pos_i),
        }
        if self.explicit and len(self):
            vals, counts = np.unique(self.values, return_counts=True)
            out["rating_histogram"] = {f"{v:g}": int(c) for v, c in zip(vals, counts, strict=True)}
            out["mean_rating"] = float(self.values.mean())
        if self.timestamps is not None and len(self):
            out["first_timestamp"] = int(self.timestamps.min())
            out["last_timestamp"] = int(self.timestamps.max())
        return out


def _known(vocab: Vocabulary, ids: np.ndarray, what: str) -> np.ndarray:
    idx = vocab.indices(ids)
    if (idx < 0).any():
        row = int(np.flatnonzero(idx < 0)[0])
        raise DataError(f"{what} id {ids[row].item()!r} (row {row}) is not in the given {what} vocabulary",
                        hint=f"build the vocabulary from all {what}s or drop unknown rows")
    return idx
