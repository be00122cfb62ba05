"""Approximate nearest-neighbour search over item embeddings behind one `VectorIndex` interface,
and `AnnSource`, the candidate source built on it.

Backends (all score by inner product — cosine similarity for unit-length vectors — higher is better):

- `FaissIndex` (faiss-cpu): ``kind="hnsw"`` (IndexHNSWFlat), ``"ivf"`` (IndexIVFFlat) or ``"flat"`` (exact);
  filtered search passes an `IDSelectorBitmap` into the search, so the graph walk skips
  disallowed items;
- `UsearchIndex` (usearch): HNSW with f32 / f16 / i8 storage; its Python API has no filter
  callback, so filtered search over-fetches and filters, doubling the fetch until k allowed items
  are found;
- `ExactIndex` (numpy): brute force, the reference for recall and the right choice below ~50k items.

Hard constraints (`allowed`, a boolean mask over all items — in stock, region, category…) are
served the same way by every backend: when few items are allowed (≤ `exact_below`, default
20,000) the index searches exactly over just those rows, which is both faster and exact; otherwise
the backend's filtered search runs. A query never returns a disallowed item.

**Default: faiss IVF-Flat** (about 2·sqrt(n) lists — 2,048 at 1M — and nprobe = 64; `default_index`).
Chosen on `tastemaker.bench.ann` at 1M × 64-d (clustered unit vectors, 1,000 user queries; table,
settings and command in /work/notes/e1/ANN.md). The deciding fact is the query distribution: a
user's vector mixes several categories and lies *off* the item manifold, where graph indexes
navigate badly. Recall@100 against exact search on user queries, with the querying thread's CPU
time per query (two shared cores):

- faiss IVF, nprobe 64: 0.979 at 0.44 ms (p99 0.58 ms); nprobe 128: 0.995 at 0.79 ms;
  nprobe 32 (faster, below target): 0.936 at 0.24 ms;
- faiss HNSW (M 32, efConstruction 200): 0.59 at efSearch 512 (1.0 ms), 0.81 at 2048 (4.2 ms);
- usearch HNSW (same settings): 0.55 at 512 (1.5 ms), 0.79 at 2048 (5.5 ms).

For item-vector queries ("similar items") all three reach ≥ 0.99. IVF also builds far faster
(35 s vs 12 min for faiss HNSW and 15 min for usearch), holds the least memory (252 MB vs 504 MB
and 760 MB) and keeps its recall under filters: the IDSelector runs inside the scan and filtered
queries probe up to 4× more lists as the filter narrows (0.987 / 0.996 / 0.995 at 50 / 10 / 3 %
of items allowed), while usearch can only over-fetch (0.69 at 10 %). HNSW stays available
(``FaissIndex("hnsw")``, `UsearchIndex`) for item-to-item lookups, where it is as accurate and
needs no training.

Indexes save to a folder: ``ann.json`` (backend, parameters, sizes), the library's own index file
(``index.faiss`` / ``index.usearch``) and ``vectors.npy`` (the raw vectors, for exact filtered
search and for scoring; loaded memory-mapped). No pickle.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from tastemaker.errors import ArtifactError, ConfigError, DataError, require
from tastemaker.retrieval.base import Candidates, Query, as_items, recency_weights

MANIFEST = "ann.json"
VECTORS = "vectors.npy"
_BLOCK = 1 << 24  # (query, item) cells per exact-search block


class VectorIndex(ABC):
    """A nearest-neighbour index over the rows of one float32 matrix; row i is item index i.

    `search(queries, k, allowed=...)` returns ``(labels, scores)``, both (n_queries, k): item
    indices best first (-1 past the end) and inner-product scores (-inf past the end).
    """

    backend: ClassVar[str]

    def __init__(self, *, exact_below: int = 20_000, threads: int | None = None) -> None:
        self.exact_below = int(exact_below)
        self.threads = threads
        self._vectors: np.ndarray | None = None

    # --- building -----------------------------------------------------------------------------
    def build(self, vectors: np.ndarray) -> VectorIndex:
        """Index the rows of `vectors` (float32, C-contiguous; no copy when already so)."""
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] == 0:
            raise DataError(f"vectors must be a non-empty 2-D array, got shape {v.shape}")
        if not np.isfinite(v).all():
            raise DataError("vectors contain NaN or infinite values", hint="fix the embeddings before indexing")
        self._vectors = v
        self._build(v)
        return self

    @abstractmethod
    def _build(self, vectors: np.ndarray) -> None: ...

    @property
    def vectors(self) -> np.ndarray:
        if self._vectors is None:
            raise ConfigError("the index is empty: call build(vectors) or load a saved index")
        return self._vectors

    def __len__(self) -> int:
        return 0 if self._vectors is None else len(self._vectors)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    # --- searching ----------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, *,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items by inner product for each query row, optionally among `allowed` items only."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.dim:
            raise DataError(f"queries have {q.shape[1]} dimensions, the index {self.dim}")
        if k < 1:
            raise ConfigError(f"k must be at least 1 (got {k})")
        n = len(self)
        kk = min(int(k), n)
        if allowed is None:
            labels, scores = self._search(q, kk)
        else:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (n,):
                raise DataError(f"allowed mask has shape {allowed.shape}, expected ({n},)")
            n_allowed = self._mask_entry(allowed)[1]
            if n_allowed == 0:
                labels, scores = np.full((len(q), 0), -1, np.int64), np.full((len(q), 0), -np.inf, np.float32)
            elif n_allowed == n:
                labels, scores = self._search(q, kk)
            elif n_allowed <= self.exact_below:
                rows = np.flatnonzero(allowed)
                labels, scores = exact_search(self.vectors[rows], q, min(kk, n_allowed))
                labels = np.where(labels >= 0, rows[np.maximum(labels, 0)], -1)
            else:
                labels, scores = self._search_filtered(q, min(kk, n_allowed), allowed, n_allowed)
        return _pad(labels, scores, kk)

    _MASKS_KEPT = 4

    def _mask_entry(self, allowed: np.ndarray) -> list[Any]:
        """``[mask, number allowed, packed bitmap or None]`` for an `allowed` mask. A read-only mask
        that owns its data (e.g. `RetrievalSource`'s fixed hard-constraint mask) is taken as fixed:
        its count and bitmap are computed once and kept (for the last few such masks), instead of
        once per query over every item."""
        fixed = not allowed.flags.writeable and allowed.flags.owndata
        if not fixed:
            return [allowed, int(np.count_nonzero(allowed)), None]
        cache: dict[int, list[Any]] = self.__dict__.setdefault("_mask_cache", {})
        entry = cache.get(id(allowed))
        if entry is None or entry[0] is not allowed:  # the entry holds the mask, so its id is not reused
            entry = [allowed, int(np.count_nonzero(allowed)), None]
            while len(cache) >= self._MASKS_KEPT:
                cache.pop(next(iter(cache)))
            cache[id(allowed)] = entry
        return entry

    def _packed_mask(self, allowed: np.ndarray) -> np.ndarray:
        """`allowed` as a little-endian bitmap (faiss `IDSelectorBitmap`), kept for fixed masks."""
        entry = self._mask_entry(allowed)
        bitmap = entry[2]
        if bitmap is None:
            bitmap = np.packbits(allowed, bitorder="little")
            if not allowed.flags.writeable and allowed.flags.owndata:
                bitmap.setflags(write=False)
                entry[2] = bitmap
        return bitmap

    @abstractmethod
    def _search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def _search_filtered(self, q: np.ndarray, k: int, allowed: np.ndarray,
                         n_allowed: int) -> tuple[np.ndarray, np.ndarray]:
        """Over-fetch and filter, doubling the fetch until k allowed items are found (per query)."""
        n = len(self)
        out_l = np.full((len(q), k), -1, dtype=np.int64)
        out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
        for r in range(len(q)):
            fetch = min(n, max(2 * k, math.ceil(1.5 * k * n / n_allowed)))
            while True:
                labels, scores = self._search(q[r:r + 1], fetch)
                lab = labels[0]
                ok = (lab >= 0) & allowed[np.maximum(lab, 0)]
                if ok.sum() >= k or fetch >= n:
                    break
                if fetch >= 8 * self.exact_below:  # the graph keeps missing allowed items: go exact
                    rows = np.flatnonzero(allowed)
                    lab2, sc2 = exact_search(self.vectors[rows], q[r:r + 1], k)
                    lab, scores, ok = np.where(lab2[0] >= 0, rows[np.maximum(lab2[0], 0)], -1), sc2, lab2[0] >= 0
                    break
                fetch = min(n, fetch * 2)
            take = np.flatnonzero(ok)[:k]
            out_l[r, :len(take)] = lab[take]
            out_s[r, :len(take)] = scores[0][take]
        return out_l, out_s

    # --- reporting and persistence ------------------------------------------------------------
    @abstractmethod
    def memory_bytes(self) -> int:
        """Bytes the library's index holds (not counting the caller's vectors array)."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The settings that define the index (JSON-able)."""

    @abstractmethod
    def set_search_params(self, **params: Any) -> None:
        """Change query-time settings (e.g. ef_search, nprobe) without rebuilding."""

    def save(self, directory: str | Path) -> Path:
        """Write ``ann.json``, the library's index file and ``vectors.npy`` to `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / VECTORS, self.vectors, allow_pickle=False)
        self._save_index(directory)
        meta = {"backend": self.backend, "params": self.params(), "n": len(self), "dim": self.dim,
                "exact_below": self.exact_below}
        (directory / MANIFEST).write_text(json.dumps(meta, indent=1))
        return directory

    @abstractmethod
    def _save_index(self, directory: Path) -> None: ...

    @abstractmethod
    def _load_index(self, directory: Path) -> None: ...


def load_vector_index(directory: str | Path, *, mmap: bool = True) -> VectorIndex:
    """Read an index written by `VectorIndex.save` (any backend)."""
    directory = Path(directory)
    mpath = directory / MANIFEST
    if not mpath.is_file():
        raise ArtifactError(f"{directory} holds no vector index: {MANIFEST} is missing")
    try:
        meta = json.loads(mpath.read_text())
        backend, params = meta["backend"], dict(meta["params"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{mpath}: not a vector-index manifest ({exc})") from None
    classes = {c.backend: c for c in (ExactIndex, FaissIndex, UsearchIndex)}
    if backend not in classes:
        raise ArtifactError(f"{mpath}: unknown backend {backend!r}; known: {', '.join(classes)}")
    index = classes[backend](**params, exact_below=int(meta.get("exact_below", 20_000)))
    vectors = np.load(directory / VECTORS, mmap_mode="r" if mmap else None, allow_pickle=False)
    if vectors.shape != (meta["n"], meta["dim"]):
        raise ArtifactError(f"{directory / VECTORS} has shape {vectors.shape}, the manifest says "
                            f"({meta['n']}, {meta['dim']})")
    index._vectors = vectors
    index._load_index(directory)
    return index


def make_index(backend: str = "faiss", **params: Any) -> VectorIndex:
    """An unbuilt index: ``backend`` is "faiss" (default: HNSW), "usearch" or "exact"."""
    classes = {"faiss": FaissIndex, "usearch": UsearchIndex, "exact": ExactIndex}
    if backend not in classes:
        raise ConfigError(f"unknown ANN backend {backend!r}; use one of {', '.join(classes)}")
    return classes[backend](**params)


# ------------------------------------------------------------------------------------------------
# exact
# ------------------------------------------------------------------------------------------------
def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k rows of `vectors` by inner product for each query, best first (ties: lower index)."""
    n = len(vectors)
    k = min(k, n)
    q = np.atleast_2d(queries).astype(np.float32, copy=False)
    out_l = np.full((len(q), k), -1, dtype=np.int64)
    out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    if k == 0:
        return out_l, out_s
    step = max(1, _BLOCK // max(n, 1))
    for start in range(0, len(q), step):
        s = q[start:start + step] @ np.asarray(vectors).T
        if k < n:
            part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(n), s.shape)
        vals = np.take_along_axis(s, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        out_l[start:start + len(s)] = np.take_along_axis(part, order, axis=1)
        out_s[start:start + len(s)] = np.take_along_axis(vals, order, axis=1)
    return out_l, out_s


class ExactIndex(VectorIndex):
    """Brute-force inner-product search in numpy (the recall reference)."""

    backend = "exact"

    def _build(self, vectors: np.ndarray) -> None:
        pass

    def _search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return exact_search(self.vectors, q, k)

    def memory_bytes(self) -> int:
        return 0

    def params(self) -> dict[str, Any]:
        return {}

    def set_search_params(self, **params: Any) -> None:
        if params:
            raise ConfigError(f"the exact index has no search parameters (got {sorted(params)})")

    def _save_index(self, directory: Path) -> None:
        pass

    def _load_index(self, directory: Path) -> None:
        pass


# ------------------------------------------------------------------------------------------------
# faiss
# ------------------------------------------------------------------------------------------------
class FaissIndex(VectorIndex):
    """faiss-cpu index: ``kind`` "ivf" (default: IndexIVFFlat; `nlist` lists — default about
    2·sqrt(n) — of which `nprobe` are scanned per query; k-means trained on `train_size` sampled
    vectors, default max(100k, 64·nlist)), "hnsw" (IndexHNSWFlat: M, ef_construction, ef_search)
    or "flat" (exact). Build uses `threads` OpenMP threads (default: all cores); a single query
    runs on the calling thread."""

    backend = "faiss"

    def __init__(self, kind: Literal["hnsw", "ivf", "flat"] = "ivf", *, M: int = 32, ef_construction: int = 200,
                 ef_search: int = 128, nlist: int | None = None, nprobe: int = 64, train_size: int | None = None,
                 seed: int = 0, exact_below: int = 20_000, threads: int | None = None) -> None:
        super().__init__(exact_below=exact_below, threads=threads)
        if kind not in ("hnsw", "ivf", "flat"):
            raise ConfigError(f"faiss index kind {kind!r} is not one of 'hnsw', 'ivf', 'flat'")
        self.kind = kind
        self.M, self.ef_construction, self.ef_search = int(M), int(ef_construction), int(ef_search)
        self.nlist, self.nprobe, self.seed = nlist, int(nprobe), int(seed)
        self.train_size = None if train_size is None else int(train_size)
        self._faiss = require("faiss", "ann")
        self._index: Any = None

    def _build(self, vectors: np.ndarray) -> None:
        faiss = self._faiss
        n, d = vectors.shape
        with _omp_threads(faiss, self.threads):
            if self.kind == "hnsw":
                index = faiss.IndexHNSWFlat(d, self.M, faiss.METRIC_INNER_PRODUCT)
                index.hnsw.efConstruction = self.ef_construction
                index.add(vectors)
            elif self.kind == "ivf":
                # about 2·sqrt(n) lists (2,048 at 1M vectors), at least 39 training points each
                nlist = self.nlist or max(1, min(n // 39, round(2 * math.sqrt(n))))
                self.nlist = nlist
                train = self.train_size or max(100_000, 64 * nlist)
                quantizer = faiss.IndexFlatIP(d)
                index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
                rng = np.random.default_rng(self.seed)
                sample = vectors if n <= train else vectors[np.sort(rng.choice(n, train, False))]
                index.cp.seed = self.seed
                index.train(np.ascontiguousarray(sample))
                index.add(vectors)
                self._quantizer = quantizer  # the IVF index points at it: keep it alive
            else:
                index = faiss.IndexFlatIP(d)
                index.add(vectors)
        self._index = index
        self.set_search_params()

    def set_search_params(self, *, ef_search: int | None = None, nprobe: int | None = None) -> None:
        if ef_search is not None:
            self.ef_search = int(ef_search)
        if nprobe is not None:
            self.nprobe = int(nprobe)
        if self._index is None:
            return
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = self.ef_search
        elif self.kind == "ivf":
            self._index.nprobe = self.nprobe

    def _search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        params = None
        if self.kind == "hnsw" and k > self.ef_search:
            params = self._faiss.SearchParametersHNSW(efSearch=k)
        with _omp_threads(self._faiss, 1 if len(q) == 1 else self.threads):
            scores, labels = self._index.search(q, k, params=params)
        return labels.astype(np.int64), scores.astype(np.float32)

    def _search_filtered(self, q: np.ndarray, k: int, allowed: np.ndarray,
                         n_allowed: int) -> tuple[np.ndarray, np.ndarray]:
        faiss = self._faiss
        bitmap = self._packed_mask(allowed)
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        if self.kind == "hnsw":
            # the walk skips disallowed results but still visits them: widen the beam as the filter narrows
            widen = max(1.0, math.sqrt(len(allowed) / n_allowed))
            ef = int(min(max(self.ef_search, k) * widen, 4 * self.ef_search + k))
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(ef, k))
        elif self.kind == "ivf":
            # the probed lists hold only the allowed share of items: probe more lists as the filter narrows
            widen = min(4.0, math.sqrt(len(allowed) / n_allowed))
            params = faiss.SearchParametersIVF(sel=selector, nprobe=min(self.nlist, round(self.nprobe * widen)))
        else:
            params = faiss.SearchParameters(sel=selector)
        with _omp_threads(faiss, 1 if len(q) == 1 else self.threads):
            scores, labels = self._index.search(q, k, params=params)
        del bitmap  # the selector points into it: keep it alive until here
        return labels.astype(np.int64), scores.astype(np.float32)

    def memory_bytes(self) -> int:
        if self._index is None:
            return 0
        return int(self._faiss.serialize_index(self._index).nbytes)

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, "M": self.M, "ef_construction": self.ef_construction, "ef_search": self.ef_search,
                "nlist": self.nlist, "nprobe": self.nprobe, "train_size": self.train_size, "seed": self.seed}

    def _save_index(self, directory: Path) -> None:
        self._faiss.write_index(self._index, str(directory / "index.faiss"))

    def _load_index(self, directory: Path) -> None:
        path = directory / "index.faiss"
        if not path.is_file():
            raise ArtifactError(f"{path} is missing")
        self._index = self._faiss.read_index(str(path))
        if self._index.ntotal != len(self) or self._index.d != self.dim:
            raise ArtifactError(f"{path} holds {self._index.ntotal} × {self._index.d} vectors, "
                                f"{VECTORS} {len(self)} × {self.dim}")
        self.set_search_params()


class _omp_threads:
    """Set faiss's OpenMP thread count for a block (None: leave it)."""

    def __init__(self, faiss: Any, threads: int | None) -> None:
        self.faiss, self.threads = faiss, threads

    def __enter__(self) -> None:
        if self.threads is not None:
            self.before = self.faiss.omp_get_max_threads()
            self.faiss.omp_set_num_threads(int(self.threads))

    def __exit__(self, *exc: object) -> None:
        if self.threads is not None:
            self.faiss.omp_set_num_threads(self.before)


# ------------------------------------------------------------------------------------------------
# usearch
# ------------------------------------------------------------------------------------------------
class UsearchIndex(VectorIndex):
    """usearch HNSW: `connectivity` (M), `expansion_add` (efConstruction), `expansion_search` (ef),
    `dtype` of the stored vectors ("f32", "f16" or "i8"). Filtered search over-fetches."""

    backend = "usearch"

    def __init__(self, *, connectivity: int = 32, expansion_add: int = 200, expansion_search: int = 128,
                 dtype: Literal["f32", "f16", "i8"] = "f32", exact_below: int = 20_000,
                 threads: int | None = None) -> None:
        super().__init__(exact_below=exact_below, threads=threads)
        if dtype not in ("f32", "f16", "i8"):
            raise ConfigError(f"usearch dtype {dtype!r} is not one of 'f32', 'f16', 'i8'")
        self.connectivity, self.expansion_add = int(connectivity), int(expansion_add)
        self.expansion_search, self.dtype = int(expansion_search), dtype
        self._usearch = require("usearch.index", "ann")
        self._index: Any = None

    def _new(self, dim: int) -> Any:
        return self._usearch.Index(ndim=dim, metric="ip", dtype=self.dtype, connectivity=self.connectivity,
                                   expansion_add=self.expansion_add, expansion_search=self.expansion_search)

    def _build(self, vectors: np.ndarray) -> None:
        index = self._new(vectors.shape[1])
        index.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=self.threads or 0)
        self._index = index

    def set_search_params(self, *, expansion_search: int | None = None) -> None:
        if expansion_search is not None:
            self.expansion_search = int(expansion_search)
        if self._index is not None:
            self._index.expansion_search = self.expansion_search

    def _search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        m = self._index.search(q, k, threads=1 if len(q) == 1 else (self.threads or 0))
        keys = np.atleast_2d(np.asarray(m.keys)).astype(np.int64)
        dist = np.atleast_2d(np.asarray(m.distances)).astype(np.float32)
        counts = np.atleast_1d(np.asarray(getattr(m, "counts", [keys.shape[1]])))
        labels = np.full((len(q), k), -1, dtype=np.int64)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        for r in range(len(q)):
            c = int(min(counts[r] if r < len(counts) else keys.shape[1], k, keys.shape[1]))
            labels[r, :c] = keys[r, :c]
            scores[r, :c] = 1.0 - dist[r, :c]  # usearch's "ip" distance is 1 − dot
        return labels, scores

    def memory_bytes(self) -> int:
        return 0 if self._index is None else int(self._index.memory_usage)

    def params(self) -> dict[str, Any]:
        return {"connectivity": self.connectivity, "expansion_add": self.expansion_add,
                "expansion_search": self.expansion_search, "dtype": self.dtype}

    def _save_index(self, directory: Path) -> None:
        self._index.save(str(directory / "index.usearch"))

    def _load_index(self, directory: Path) -> None:
        path = directory / "index.usearch"
        if not path.is_file():
            raise ArtifactError(f"{path} is missing")
        index = self._new(self.dim)
        index.load(str(path))
        if len(index) != len(self):
            raise ArtifactError(f"{path} holds {len(index)} vectors, {VECTORS} {len(self)}")
        self._index = index
        self.set_search_params()


def _pad(labels: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float32)
    bad = labels < 0
    if bad.any():
        scores = np.where(bad, -np.inf, scores).astype(np.float32)
    if labels.shape[1] < k:
        m = len(labels)
        labels = np.hstack([labels, np.full((m, k - labels.shape[1]), -1, np.int64)])
        scores = np.hstack([scores, np.full((m, k - scores.shape[1]), -np.inf, np.float32)])
    return labels, scores


# ------------------------------------------------------------------------------------------------
# the candidate source
# ------------------------------------------------------------------------------------------------
class AnnSource:
    """Candidates nearest to the user's vector in a `VectorIndex` of item embeddings.

    The query vector is the user's own embedding when `user_vectors` is given and the query's
    user is known (e.g. ALS user factors); otherwise the recency-weighted mean of the embeddings of
    the user's history (``half_life_days``; None weighs all equally), or of the context items when
    the query has them. No vector → no candidates. Scores are inner products. Hard constraints
    (`allowed`) go into the index's filtered search; `exclude` is removed after an over-fetch.
    """

    def __init__(self, index: VectorIndex, *, user_vectors: np.ndarray | None = None,
                 half_life_days: float | None = 30.0, name: str = "ann") -> None:
        self.index = index
        self.user_vectors = None if user_vectors is None else np.asarray(user_vectors, dtype=np.float32)
        if self.user_vectors is not None and self.user_vectors.shape[1] != index.dim:
            raise DataError(f"user vectors have {self.user_vectors.shape[1]} dimensions, the index {index.dim}")
        self.half_life_days = half_life_days
        self.name = name

    @property
    def n_items(self) -> int:
        return len(self.index)

    def query_vector(self, query: Query) -> np.ndarray | None:
        """The vector the query searches with, None when there is nothing to search with."""
        if len(query.items):
            items = as_items(query.items, self.n_items)
            return np.asarray(self.index.vectors[items], dtype=np.float32).mean(axis=0)
        if self.user_vectors is not None and 0 <= query.user < len(self.user_vectors):
            return self.user_vectors[query.user]
        if len(query.history):
            hist = as_items(query.history, self.n_items)
            now = query.now if query.now is not None else (
                float(query.history_times.max()) if query.history_times is not None else 0.0)
            w = recency_weights(query.history_times, now, self.half_life_days, len(hist)).astype(np.float32)
            v = w @ np.asarray(self.index.vectors[hist], dtype=np.float32)
            total = float(w.sum())
            return v / total if total > 0 else None
        return None

    def retrieve(self, query: Query, k: int) -> Candidates:
        v = self.query_vector(query)
        if v is None or k < 1:
            return Candidates.empty(self.name)
        n_ex = 0 if query.exclude is None else len(query.exclude)
        labels, scores = self.index.search(v[None, :], min(k + n_ex, self.n_items), allowed=query.allowed)
        lab, sc = labels[0], scores[0]
        ok = lab >= 0
        if n_ex:
            ok &= ~np.isin(lab, query.exclude)
        lab, sc = lab[ok][:k], sc[ok][:k]
        return Candidates(lab, sc, self.name)

    def score(self, query: Query, items: np.ndarray) -> np.ndarray:
        items = as_items(items, self.n_items)
        v = self.query_vector(query)
        if v is None:
            return np.full(len(items), np.nan, dtype=np.float32)
        return (np.asarray(self.index.vectors[items], dtype=np.float32) @ v).astype(np.float32)


def default_index(**params: Any) -> VectorIndex:
    """The default ANN index: faiss IVF-Flat, about 2·sqrt(n) lists, nprobe 64; see the module docstring."""
    return FaissIndex("ivf", **params)


__all__ = ["AnnSource", "ExactIndex", "FaissIndex", "UsearchIndex", "VectorIndex", "default_index", "exact_search",
           "load_vector_index", "make_index"]
