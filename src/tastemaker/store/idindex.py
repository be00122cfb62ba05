"""`IdLookup`: vectorised id → row lookup in front of an ``{id: row}`` dict.

A request looks up a few hundred string ids in tables of millions (store rows, item attributes).
One ``dict.get`` per id costs about a microsecond at that size (hashing a fresh string, then
cache misses in a big table), so 500 ids cost about half a millisecond. `IdLookup` keeps a
snapshot of the dict as numpy arrays — an open-addressing table of rows keyed by a 64-bit hash of
the id's characters, with 32 bits of a second, independent hash in the slot to confirm a hit — and
looks up a whole batch with a handful of vectorised operations.

The dict stays the source of truth: ids added after the snapshot, and rows forgotten since
(`forget`), are looked up in the dict. The snapshot is rebuilt, lazily on a lookup, once the dict
has grown by a quarter since the last one. Small dicts (under `min_size` ids) are not indexed.

Two different ids are taken as equal only when 95 bits of their hashes agree (a 2**-95 chance for a
given pair). Ids containing NUL characters, which numpy strings cannot hold, are never indexed:
a dict with one, or a query with one, uses the dict.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from itertools import repeat

import numpy as np

_MULT = np.random.default_rng(0x1D5EED).integers(0, 2**63, size=(2, 256), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_LOW32 = np.uint64(0xFFFFFFFF)
_HIGH32 = np.uint64(0xFFFFFFFF00000000)


def _multipliers(width: int) -> np.ndarray:
    global _MULT
    if width > _MULT.shape[1]:
        more = np.random.default_rng([0x1D5EED, width]).integers(0, 2**63, size=(2, width - _MULT.shape[1]),
                                                                  dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        _MULT = np.concatenate([_MULT, more], axis=1)
    return _MULT[:, :width]


def id_hashes(ids: np.ndarray) -> np.ndarray:
    """Two independent 64-bit hashes of each string of a numpy unicode array, as (n, 2) uint64:
    multilinear hashes of the code points (a random odd 64-bit multiplier per character position,
    so a string's padding, and so the array's string width, changes nothing), then a splitmix64
    finaliser."""
    n = len(ids)
    width = ids.dtype.itemsize // 4
    if not width or not n:
        h = np.zeros((n, 2), dtype=np.uint64)
    else:
        codes = np.ascontiguousarray(ids).view(np.uint32).reshape(n, width).astype(np.uint64)
        h = codes @ _multipliers(width).T
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


class _Snapshot:
    """An immutable open-addressing table (linear probing, load at most 1/2) for the ids of a dict
    at one time. A slot is two words: the id's first hash, and the top 32 bits of its second hash
    with its row + 1 in the low 32 bits (0: an empty slot) — one cache line answers a probe."""

    __slots__ = ("dead", "mask", "n", "slots")

    WINDOW = 8  # slots read per probe round (two cache lines)

    def __init__(self, keys: list[str], rows: np.ndarray) -> None:
        self.n = len(keys)
        h = id_hashes(np.asarray(keys, dtype=str))
        size = int(rows.max()) + 1 if len(rows) else 1
        if size >= 2**32 - 1:
            raise ValueError("IdLookup indexes rows below 2**32 - 1")
        self.dead = np.ones(size, dtype=bool)
        self.dead[rows] = False
        cap = 1 << max(4, int(np.ceil(np.log2(max(2 * len(keys), 1)))))
        self.mask = cap - 1
        self.slots = np.zeros((cap, 2), dtype=np.uint64)
        word = (h[:, 1] & _HIGH32) | (rows.astype(np.uint64) + np.uint64(1))
        pos = ((h[:, 0] >> np.uint64(32)) & np.uint64(self.mask)).astype(np.int64)
        todo = np.arange(len(keys))
        while len(todo):  # a round per probe distance
            p = pos[todo]
            free = np.flatnonzero(self.slots[p, 1] == 0)
            first_at, first = np.unique(p[free], return_index=True)  # one winner per free slot
            winners = todo[free[first]]
            self.slots[first_at, 0] = h[winners, 0] | np.uint64(1)  # never 0, the empty slot's
            self.slots[first_at, 1] = word[winners]
            placed = np.zeros(len(todo), dtype=bool)
            placed[free[first]] = True
            todo = todo[~placed]
            pos[todo] = (pos[todo] + 1) & self.mask

    def lookup(self, h: np.ndarray) -> np.ndarray:
        """Row of each hash pair ((n, 2) from `id_hashes`), -1 where none (or forgotten)."""
        n = len(h)
        out = np.full(n, -1, dtype=np.int64)
        key0 = h[:, 0] | np.uint64(1)
        key1 = h[:, 1] & _HIGH32
        start = ((key0 >> np.uint64(32)) & np.uint64(self.mask)).astype(np.int64)
        step = np.arange(self.WINDOW)
        act = None  # all of them
        while True:
            slot = self.slots[(start[:, None] + step) & self.mask]  # (m, WINDOW, 2)
            hit = (slot[:, :, 0] == key0[:, None]) & ((slot[:, :, 1] & _HIGH32) == key1[:, None])
            j = hit.argmax(axis=1)
            m = np.arange(len(j))
            found = hit[m, j]
            rows = (slot[m, j, 1] & _LOW32).astype(np.int64) - 1
            # the slots of an id are taken before it is placed, so an empty slot ends the search
            more = ~found & (slot[:, :, 1] != 0).all(axis=1)
            if act is None:
                out[found] = rows[found]
                act = np.flatnonzero(more)
            else:
                out[act[found]] = rows[found]
                act = act[more]
            if not len(act):
                break
            key0, key1, start = key0[more], key1[more], (start[more] + self.WINDOW) & self.mask
        hit_rows = np.flatnonzero(out >= 0)
        if len(hit_rows):
            r = out[hit_rows]
            out[hit_rows] = np.where(self.dead[r], -1, r)
        return out


class IdLookup:
    """Vectorised lookups of string ids in `pos` (an ``{id: row}`` dict owned by the caller).

    The caller calls `forget(rows)` when it deletes ids from `pos` (so the snapshot stops
    answering for them); additions and re-assignments of new ids need nothing.
    """

    def __init__(self, pos: dict[str, int], *, min_size: int = 4096, regrow: float = 1.25) -> None:
        self.pos = pos
        self.min_size = int(min_size)
        self.regrow = float(regrow)
        self._snap: _Snapshot | None = None
        self._unindexable = False
        self._lock = threading.Lock()

    def _snapshot(self) -> _Snapshot | None:
        n = len(self.pos)
        snap = self._snap
        if n < self.min_size or self._unindexable:
            return None
        if snap is not None and n <= self.regrow * snap.n:
            return snap
        with self._lock:
            snap = self._snap
            if snap is not None and len(self.pos) <= self.regrow * snap.n:
                return snap
            while True:
                try:
                    keys = list(self.pos)
                    rows = np.fromiter(map(self.pos.get, keys, repeat(-1, len(keys))), dtype=np.int64,
                                       count=len(keys))
                    break
                except RuntimeError:  # the dict changed size while copied: copy again
                    continue
            rows_ok = rows >= 0  # an id deleted while copied
            if not rows_ok.all():
                keys = [k for k, ok in zip(keys, rows_ok.tolist(), strict=True) if ok]
                rows = rows[rows_ok]
            arr = np.asarray(keys, dtype=str)
            if int(np.strings.str_len(arr).sum()) != sum(map(len, keys)):
                self._unindexable = True  # an id with NUL characters: numpy strings would lose them
                return None
            self._snap = snap = _Snapshot(keys, rows)
            return snap

    def forget(self, rows: Sequence[int] | np.ndarray) -> None:
        """Rows whose ids were removed from the dict (the snapshot no longer answers for them)."""
        snap = self._snap
        if snap is None:
            return
        r = np.asarray(rows, dtype=np.int64)
        r = r[(r >= 0) & (r < len(snap.dead))]
        snap.dead[r] = True

    def lookup(self, ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Row of each id (int64), -1 where it is not in the dict."""
        n = len(ids)
        snap = self._snapshot() if n >= 16 else None
        if snap is None:
            ids_l = ids.tolist() if isinstance(ids, np.ndarray) else ids
            return np.fromiter(map(self.pos.get, ids_l, repeat(-1, n)), dtype=np.int64, count=n)
        if isinstance(ids, np.ndarray) and ids.dtype.kind == "U":
            q = ids
        else:
            ids_l = list(ids)
            q = np.asarray(ids_l, dtype=str)
            if len(q) and int(np.strings.str_len(q).sum()) != sum(map(len, ids_l)):
                return np.fromiter(map(self.pos.get, ids_l, repeat(-1, n)), dtype=np.int64, count=n)
        out = snap.lookup(id_hashes(q))
        miss = np.flatnonzero(out < 0)
        if len(miss):  # added since the snapshot, re-added after a delete, or unknown
            get = self.pos.get
            strs = q[miss].tolist()
            out[miss] = np.fromiter(map(get, strs, repeat(-1, len(strs))), dtype=np.int64, count=len(strs))
        return out
