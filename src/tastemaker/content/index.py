"""`ContentIndex`: item vectors by external id, growing one item at a time, searched by dot product.

An item is added the moment its text exists (an article published, a SKU listed) and is
recommendable at once: nothing else is refitted. Queries are a vector, an item (its neighbours) or
a user profile — the weighted mean of the vectors of the user's history, optionally time-decayed.
Every query goes through `ContentIndex.search`, which calls `_top`: exact dot-product search in
numpy, the one place an approximate (ANN) search would plug in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tastemaker.artifacts import load_state, save_state
from tastemaker.content.encoders import Rows, TextEncoder, encoder_from_state
from tastemaker.errors import ArtifactError, ConfigError, DataError
from tastemaker.models.base import top_k

_CHUNK_CELLS = 1 << 24
"""Queries are scored in blocks of about this many (query, item) cells to bound memory."""


@dataclass(frozen=True)
class Hits:
    """Items found by a search, best first, with their dot-product scores."""

    ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def normalize_rows(rows: Rows) -> Rows:
    """Rows scaled to unit L2 norm (all-zero rows stay zero); float32, same kind (dense or CSR)."""
    if sp.issparse(rows):
        rows = sp.csr_matrix(rows, dtype=np.float32, copy=True)
        norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ rows)
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


def decay_weights(timestamps: np.ndarray, now: float | np.ndarray, half_life: float) -> np.ndarray:
    """Time-decay factors 0.5 ** ((now − t) / half_life); events after `now` count fully.
    `now` is one time or one per timestamp."""
    if half_life <= 0:
        raise ConfigError(f"half_life must be positive (got {half_life})")
    age = np.maximum(np.asarray(now, dtype=np.float64) - np.asarray(timestamps, dtype=np.float64), 0.0)
    return np.exp2(-age / float(half_life))


def profiles(matrix: Rows, weights: sp.csr_matrix) -> np.ndarray:
    """Profiles of several users at once: each row of `weights` (users × items) mixes item rows of
    `matrix`; the result is dense and scaled to unit length (all-zero where nothing is mixed in)."""
    mixed = weights.astype(np.float32) @ matrix
    mixed = mixed.toarray() if sp.issparse(mixed) else np.asarray(mixed)
    return normalize_rows(mixed)


class ContentIndex:
    """Item vectors by external id; add items at any time, query by vector, item or history.

    Vectors are stored as given after scaling each row to unit length (`normalize=False` in
    `add` keeps them as they are), so scores are cosine similarities. Storage is dense or sparse
    (CSR), fixed by the first `add` (sparse TF-IDF vectors stay sparse). With an `encoder`,
    items can be added from their text. Ids are ints or strings, as in `Vocabulary`.
    """

    def __init__(self, encoder: TextEncoder | None = None) -> None:
        self.encoder = encoder
        self._keys: list[Any] = []
        self._pos: dict[Any, int] = {}
        self._int_ids: bool | None = None
        self._dim: int | None = None
        self._sparse: bool | None = None
        self._dense = np.zeros((0, 0), dtype=np.float32)
        self._csr: sp.csr_matrix | None = None
        self._pending: list[sp.csr_matrix] = []
        self._ids: np.ndarray | None = None

    def __repr__(self) -> str:
        kind = "empty" if self._sparse is None else ("sparse" if self._sparse else "dense")
        return f"ContentIndex({len(self)} items, dim={self._dim}, {kind})"

    # --- ids ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, item: Any) -> bool:
        return self._lookup(item) >= 0

    @property
    def ids(self) -> np.ndarray:
        """External ids in insertion order (int64 or str array)."""
        if self._ids is None or len(self._ids) != len(self._keys):
            self._ids = np.asarray(self._keys, dtype=np.int64 if self._int_ids else str)
        return self._ids

    @property
    def dim(self) -> int | None:
        return self._dim

    def _key(self, item: Any) -> Any:
        if self._int_ids:
            if isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
                return int(item)
            if isinstance(item, str) and item.strip().lstrip("-").isdigit():
                return int(item)
            raise DataError(f"item id {item!r} is not an integer, but this index holds integer ids",
                            hint="use ids of one kind (all ints or all strings) per index")
        return str(item)

    def _lookup(self, item: Any) -> int:
        if self._int_ids is None:
            return -1
        try:
            return self._pos.get(self._key(item), -1)
        except DataError:
            return -1

    def positions(self, items: Sequence[Any]) -> np.ndarray:
        """Position of each id in the index (-1 where unknown)."""
        return np.fromiter((self._lookup(i) for i in _as_list(items)), dtype=np.int64)

    # --- adding -------------------------------------------------------------------------------
    def add(self, ids: Sequence[Any], vectors: Rows | None = None, *, texts: Sequence[str] | None = None,
            normalize: bool = True) -> np.ndarray:
        """Add items (or replace the vectors of ids already present) and return their positions.

        Give either `vectors` (one row per id) or `texts` (encoded with the index's encoder).
        """
        ids = _as_list(ids)
        if (vectors is None) == (texts is None):
            raise ConfigError("add() takes either vectors or texts, not both or neither")
        if texts is not None:
            if self.encoder is None:
                raise ConfigError("this ContentIndex has no encoder: pass vectors, or build it with "
                                  "ContentIndex(encoder) to add items from text")
            texts = _as_list(texts)
            if len(texts) != len(ids):
                raise DataError(f"{len(ids)} ids but {len(texts)} texts")
            vectors = self.encoder.encode(texts)
        rows = sp.csr_matrix(vectors, dtype=np.float32) if sp.issparse(vectors) else np.atleast_2d(
            np.asarray(vectors, dtype=np.float32))
        if rows.ndim != 2 or rows.shape[0] != len(ids):
            raise DataError(f"{len(ids)} ids but vectors of shape {rows.shape}: pass one row per id")
        if self._dim is not None and rows.shape[1] != self._dim:
            raise DataError(f"vectors have {rows.shape[1]} dimensions but this index holds {self._dim}",
                            hint="encode new items with the encoder the index was built with")
        if not sp.issparse(rows) and not np.isfinite(rows).all():
            raise DataError("vectors contain NaN or infinite values")
        if len(set(map(str, ids))) != len(ids):
            raise DataError("duplicate ids in one add() call")
        if len(ids) == 0:
            return np.empty(0, dtype=np.int64)
        if self._int_ids is None:
            self._int_ids = all(isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))
                                for i in ids)
            self._dim = rows.shape[1]
            self._sparse = sp.issparse(rows)
            if not self._sparse:
                self._dense = np.zeros((0, self._dim), dtype=np.float32)
        if normalize:
            rows = normalize_rows(rows)
        if self._sparse and not sp.issparse(rows):
            rows = sp.csr_matrix(rows)
        elif not self._sparse and sp.issparse(rows):
            rows = rows.toarray()
        keys = [self._key(i) for i in ids]
        pos = np.array([self._pos.get(k, -1) for k in keys], dtype=np.int64)
        old = pos >= 0
        if old.any():
            self._replace(pos[old], rows[np.flatnonzero(old)])
        fresh = np.flatnonzero(~old)
        if len(fresh):
            start = len(self._keys)
            for j, i in enumerate(fresh):
                self._pos[keys[i]] = start + j
                self._keys.append(keys[i])
            pos[fresh] = np.arange(start, start + len(fresh))
            self._append(rows[fresh])
        return pos

    def _append(self, rows: Rows) -> None:
        if self._sparse:
            self._pending.append(sp.csr_matrix(rows))
            return
        n_old = len(self._keys) - rows.shape[0]
        if len(self._keys) > self._dense.shape[0]:
            grown = np.zeros((max(len(self._keys), 2 * self._dense.shape[0], 64), self._dim), dtype=np.float32)
            grown[:n_old] = self._dense[:n_old]
            self._dense = grown
        self._dense[n_old:len(self._keys)] = rows

    def _replace(self, pos: np.ndarray, rows: Rows) -> None:
        if not self._sparse:
            self._dense[pos] = rows
            return
        m = self.matrix
        keep = np.ones(m.shape[0], dtype=np.float32)
        keep[pos] = 0.0
        place = sp.csr_matrix((np.ones(len(pos), dtype=np.float32), (pos, np.arange(len(pos)))),
                              shape=(m.shape[0], len(pos)))
        self._csr = sp.csr_matrix(sp.diags(keep) @ m + place @ sp.csr_matrix(rows))
        self._csr.sort_indices()

    @property
    def matrix(self) -> Rows:
        """All vectors, one row per item in insertion order (a view for dense storage)."""
        if self._sparse is None:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        if not self._sparse:
            return self._dense[:len(self._keys)]
        if self._pending:
            parts = ([self._csr] if self._csr is not None else []) + self._pending
            self._csr = sp.csr_matrix(sp.vstack(parts, format="csr", dtype=np.float32))
            self._pending = []
        return self._csr

    def vectors(self, items: Sequence[Any]) -> np.ndarray:
        """Dense vectors of known ids (a `DataError` names an unknown one)."""
        items = _as_list(items)
        pos = self.positions(items)
        if (pos < 0).any():
            raise DataError(f"item {items[int(np.flatnonzero(pos < 0)[0])]!r} is not in the content index",
                            hint="add it with index.add([id], texts=[text]) first")
        rows = self.matrix[pos]
        return rows.toarray() if sp.issparse(rows) else np.array(rows)

    # --- querying -----------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int = 10, *, candidates: Sequence[Any] | np.ndarray | None = None,
               exclude: Sequence[Any] | None = None) -> list[Hits]:
        """The k items with the highest dot product with each query row, best first.

        `candidates` limits the search to these ids (or a boolean mask over index positions);
        `exclude` removes ids. Ids unknown to the index are ignored in both. Every query of this
        class goes through here.
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        q = queries.toarray() if sp.issparse(queries) else np.asarray(queries, dtype=np.float32)
        q = np.atleast_2d(q).astype(np.float32, copy=False)
        if len(self) == 0:
            return [Hits(self.ids, np.empty(0)) for _ in range(q.shape[0])]
        if q.shape[1] != self._dim:
            raise DataError(f"query has {q.shape[1]} dimensions but this index holds {self._dim}")
        allowed = self._allowed(candidates, exclude)
        pos, scores = self._top(q, k, allowed)
        ids = self.ids
        return [Hits(ids[p[p >= 0]], s[p >= 0]) for p, s in zip(pos, scores, strict=True)]

    def _allowed(self, candidates, exclude) -> np.ndarray | None:
        if candidates is None and exclude is None:
            return None
        n = len(self)
        if candidates is None:
            allowed = np.ones(n, dtype=bool)
        elif isinstance(candidates, np.ndarray) and candidates.dtype == np.bool_:
            if candidates.shape != (n,):
                raise DataError(f"candidate mask has shape {candidates.shape}, expected ({n},)")
            allowed = candidates.copy()
        else:
            allowed = np.zeros(n, dtype=bool)
            pos = self.positions(candidates)
            allowed[pos[pos >= 0]] = True
        if exclude is not None:
            pos = self.positions(exclude)
            allowed[pos[pos >= 0]] = False
        return allowed

    def _top(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact search: (positions, scores) of the top k per query, padded with -1 / -inf.
        The swap point for an approximate index."""
        m = self.matrix
        n = m.shape[0]
        kk = min(k, n)
        out_pos = np.full((len(queries), kk), -1, dtype=np.int64)
        out_val = np.full((len(queries), kk), -np.inf)
        step = max(1, _CHUNK_CELLS // max(n, 1))
        for start in range(0, len(queries), step):
            block = queries[start:start + step]
            scores = np.asarray((m @ block.T).T, dtype=np.float64)
            if allowed is not None:
                scores[:, ~allowed] = -np.inf
            out_pos[start:start + len(block)], out_val[start:start + len(block)] = top_k(scores, kk)
        return out_pos, out_val

    def similar_to_vector(self, vector: np.ndarray, k: int = 10, *, candidates=None, exclude=None) -> Hits:
        """The k items most similar to one vector."""
        vector = vector.toarray() if sp.issparse(vector) else np.asarray(vector, dtype=np.float32)
        return self.search(vector.reshape(1, -1), k, candidates=candidates, exclude=exclude)[0]

    def similar_items(self, item: Any, k: int = 10, *, candidates=None, exclude=None) -> Hits:
        """The k items most similar to `item` (itself left out)."""
        vec = self.vectors([item])
        return self.search(vec, k, candidates=candidates, exclude=[item, *(_as_list(exclude) if exclude is not None
                                                                           else [])])[0]

    def similar_to_text(self, text: str, k: int = 10, *, candidates=None, exclude=None) -> Hits:
        """The k items most similar to a text (encoded with the index's encoder)."""
        if self.encoder is None:
            raise ConfigError("this ContentIndex has no encoder to encode text with")
        return self.similar_to_vector(self.encoder.encode([text]), k, candidates=candidates, exclude=exclude)

    def profile(self, history: Sequence[Any], weights: Sequence[float] | None = None, *,
                timestamps: Sequence[float] | None = None, half_life: float | None = None,
                now: float | None = None) -> np.ndarray:
        """A user profile: the weighted mean of the vectors of `history`, scaled to unit length.

        `weights` (default 1 each; negative ones push away) are multiplied, when `half_life` is
        given, by 0.5 ** ((now − timestamp) / half_life), `now` defaulting to the latest
        timestamp. Ids unknown to the index are skipped; an all-zero vector when none is known.
        """
        history = _as_list(history)
        w = np.ones(len(history)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(w) != len(history):
            raise DataError(f"{len(history)} history items but {len(w)} weights")
        if half_life is not None:
            if timestamps is None:
                raise ConfigError("a time-decayed profile (half_life) needs the timestamps of the history")
            ts = np.asarray(timestamps, dtype=np.float64)
            if len(ts) != len(history):
                raise DataError(f"{len(history)} history items but {len(ts)} timestamps")
            w = w * decay_weights(ts, ts.max(initial=0.0) if now is None else now, half_life)
        pos = self.positions(history)
        ok = pos >= 0
        mix = sp.csr_matrix((w[ok], (np.zeros(int(ok.sum()), dtype=np.int64), pos[ok])), shape=(1, len(self)))
        return profiles(self.matrix, mix)[0] if len(self) else np.zeros(self._dim or 0, dtype=np.float32)

    def recommend(self, history: Sequence[Any], k: int = 10, *, weights: Sequence[float] | None = None,
                  timestamps: Sequence[float] | None = None, half_life: float | None = None,
                  now: float | None = None, candidates=None, exclude=None, exclude_history: bool = True) -> Hits:
        """The k items closest to the profile of `history` (see `profile`), history left out by default."""
        prof = self.profile(history, weights, timestamps=timestamps, half_life=half_life, now=now)
        if not np.any(prof):
            return Hits(self.ids[:0], np.empty(0))
        drop = [*(_as_list(exclude) if exclude is not None else []), *(_as_list(history) if exclude_history else [])]
        return self.similar_to_vector(prof, k, candidates=candidates, exclude=drop or None)

    # --- plain-data state ---------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, JSON-able dict) holding the ids, the vectors and the encoder's state."""
        arrays: dict[str, np.ndarray] = {"ids": self.ids}
        m = self.matrix
        if self._sparse:
            arrays.update(vec_data=m.data, vec_indices=m.indices.astype(np.int32), vec_indptr=m.indptr.astype(np.int64))
        else:
            arrays["vectors"] = np.ascontiguousarray(m)
        meta: dict[str, Any] = {"dim": self._dim, "sparse": self._sparse, "int_ids": self._int_ids, "encoder": None}
        if self.encoder is not None:
            enc_arrays, enc_meta = self.encoder.get_state()
            arrays.update({f"encoder_{k}": v for k, v in enc_arrays.items()})
            meta["encoder"] = enc_meta
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> ContentIndex:
        """Rebuild an index from `get_state()` output."""
        encoder = None
        if meta.get("encoder"):
            enc_arrays = {k.removeprefix("encoder_"): v for k, v in arrays.items() if k.startswith("encoder_")}
            encoder = encoder_from_state(enc_arrays, meta["encoder"])
        index = cls(encoder)
        try:
            ids = arrays["ids"]
            if meta.get("sparse") is None:
                return index
            if meta["sparse"]:
                vectors = sp.csr_matrix((arrays["vec_data"], arrays["vec_indices"], arrays["vec_indptr"]),
                                        shape=(len(ids), int(meta["dim"])))
            else:
                vectors = arrays["vectors"]
        except KeyError as exc:
            raise ArtifactError(f"content index state lacks {exc}") from None
        index.add(ids.tolist() if meta.get("int_ids") else [str(i) for i in ids], vectors, normalize=False)
        if not meta.get("int_ids"):
            index._int_ids = False
        return index

    def save(self, directory: str | Path) -> Path:
        """Write the index (ids, vectors, encoder state) as arrays + JSON; no pickle."""
        return save_state(directory, "content_index", *self.get_state())

    @classmethod
    def load(cls, directory: str | Path) -> ContentIndex:
        """Read an index written by `save`."""
        return cls.from_state(*load_state(directory, "content_index"))


def _as_list(x: Any) -> list[Any]:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
        return [x]
    return list(x)


__all__ = ["ContentIndex", "Hits", "decay_weights", "normalize_rows", "profiles"]
