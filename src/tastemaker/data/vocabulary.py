"""External id <-> dense index mapping, kept by every dataset split and every trained model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tastemaker.errors import ArtifactError

UNKNOWN = -1


def _as_id_array(ids: Iterable[Any]) -> np.ndarray:
    """Normalise ids to an int64 array when every id is integral, else a unicode array."""
    arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "b":
        raise TypeError("ids must be integers or strings, not booleans")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(np.mod(arr, 1) == 0):
            raise TypeError("float ids must be whole numbers; pass them as int or str")
        return arr.astype(np.int64)
    return arr.astype(str)


class Vocabulary:
    """An ordered set of external ids (ints or strings) with O(1) id -> index lookup.

    Index `i` is the position of `ids[i]`. Lookups of unknown ids return `UNKNOWN` (-1) rather
    than raising, so callers decide what an unknown id means (usually: a fallback with a reason).
    """

    __slots__ = ("_ids", "_index")

    def __init__(self, ids: Iterable[Any] = ()) -> None:
        arr = _as_id_array(ids)
        if arr.ndim != 1:
            raise ValueError("ids must be one-dimensional")
        index = {k: i for i, k in enumerate(arr.tolist())}
        if len(index) != len(arr):
            uniq, counts = np.unique(arr, return_counts=True)
            raise ValueError(f"duplicate ids in vocabulary, e.g. {uniq[counts > 1][:3].tolist()}")
        arr.setflags(write=False)
        self._ids = arr
        self._index = index

    @classmethod
    def encode(cls, values: Iterable[Any]) -> tuple[Vocabulary, np.ndarray]:
        """Build a vocabulary of the sorted distinct values and return it with their codes."""
        arr = _as_id_array(values)
        uniq, codes = np.unique(arr, return_inverse=True)
        return cls(uniq), codes.astype(np.int32)

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    @property
    def is_integer(self) -> bool:
        return self._ids.dtype.kind == "i"

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: Any) -> bool:
        return self._normalise(key) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and len(self) == len(other) and np.array_equal(self._ids, other._ids)

    def __hash__(self) -> int:  # pragma: no cover - vocabularies are not dict keys
        return hash((len(self), self._ids[:8].tobytes()))

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self._ids[:3].tolist()))
        return f"Vocabulary({len(self)} ids: {head}{', …' if len(self) > 3 else ''})"

    def _normalise(self, key: Any) -> Any:
        if self.is_integer:
            if isinstance(key, (int, np.integer)):
                return int(key)
            if isinstance(key, str) and key.strip().lstrip("-").isdigit():
                return int(key)
            return key
        return str(key)

    def index(self, key: Any) -> int:
        """Index of one id, or `UNKNOWN`."""
        return self._index.get(self._normalise(key), UNKNOWN)

    def indices(self, keys: Iterable[Any]) -> np.ndarray:
        """Indices of many ids (int64 array), `UNKNOWN` where an id is not known."""
        get = self._index.get
        norm = self._normalise
        keys = keys.tolist() if isinstance(keys, np.ndarray) else keys
        return np.fromiter((get(norm(k), UNKNOWN) for k in keys), dtype=np.int64)

    def lookup(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """External ids of indices."""
        return self._ids[np.asarray(indices, dtype=np.int64)]

    def extend(self, new_ids: Iterable[Any]) -> Vocabulary:
        """A vocabulary with unseen `new_ids` appended; existing indices are unchanged."""
        arr = _as_id_array(new_ids)
        fresh = [k for k in dict.fromkeys(arr.tolist()) if self._normalise(k) not in self._index]
        if not fresh:
            return self
        merged = np.concatenate([self._ids, _as_id_array(fresh).astype(self._ids.dtype)])
        return Vocabulary(merged)

    # --- plain-data round trip -------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"kind": "int" if self.is_integer else "str", "ids": self._ids.tolist()}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Vocabulary:
        try:
            kind, ids = obj["kind"], obj["ids"]
        except (KeyError, TypeError) as exc:
            raise ArtifactError("vocabulary entry needs 'kind' and 'ids'") from exc
        if kind == "int":
            return cls(np.asarray(ids, dtype=np.int64))
        if kind == "str":
            return cls(np.asarray(ids, dtype=str))
        raise ArtifactError(f"unknown vocabulary kind {kind!r} (expected 'int' or 'str')")
