"""The session-model contract: incremental updates on every click, recommendations for a session prefix.

Session models differ from `tastemaker.models.base.Recommender` (fit once on a user × item matrix,
then score users): a news portal's readers are mostly anonymous sessions and the catalogue grows
every hour, so a session model is the object a service holds and feeds click by click:

- ``update(session_id, item, timestamp, context)`` absorbs one click; ``update_many(...)`` absorbs a
  batch and leaves exactly the state the same clicks given one by one would (tested);
- ``recommend(prefix_items, k, timestamp=..., context=..., exclude=..., session=...)`` returns
  ``(item ids, scores)``, best first, over the articles seen so far, without the prefix's own
  articles unless ``exclude_prefix=False``. An unknown article in the prefix is ignored; an empty
  or unknown prefix is answered by whatever the model has for it (popularity models answer
  always; the kNN family may return fewer than k items): unknown ids are an outcome, never an error;
- ``save(path)`` / ``SessionModel.load(path)``: plain arrays + JSON (`tastemaker.artifacts`).

Ids are integers (articles, sessions); timestamps are seconds since the epoch (floats allowed).
Context is the request's (environment, device, os, country, region, referrer) codes: a dict with
some of those keys, a sequence of six ints, or None.

The state lives in numpy arrays laid out by `_kernels` (NamedTuples of arrays); this module owns
their allocation, growth and (de)serialisation, described once in `SPECS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Self

import numpy as np

from tastemaker.artifacts import read_bundle, write_bundle
from tastemaker.config import StrictConfig
from tastemaker.errors import ArtifactError, ConfigError, DataError
from tastemaker.models.session import _kernels as K

CONTEXT_FIELDS: tuple[str, ...] = ("environment", "device", "os", "country", "region", "referrer")
"""The request context a session model may use, in the order of context arrays."""

_CTX_SHIFT = 1 << 40
_CTX_CHUNK = 200_000  # rows encoded at a time (bounds the temporary arrays of a replay)


# ================================================================================================
# Growable id index
# ================================================================================================

def _as_ids(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(np.mod(arr, 1) == 0):
            return arr.astype(np.int64)
        raise DataError(f"{what} ids must be integers, got {arr.dtype} values such as {arr.ravel()[:3].tolist()}",
                        hint="map string ids to integers first (e.g. with tastemaker.data.Vocabulary)")
    return arr.astype(np.int64, copy=False).ravel()


class GrowableIndex:
    """External int64 id -> dense index (0, 1, 2, … in order of first sight), growing without copies.

    `tastemaker.data.Vocabulary.extend` returns a new vocabulary and rebuilds its dict: O(n) per
    call, O(n²) when a stream adds one article or session at a time. Here the ids live in an
    open-addressing hash table (numba) and an array, both grown by doubling: amortised O(1) per new
    id, and the whole index is plain arrays (saved without pickle, rebuilt on load).
    """

    def __init__(self, capacity: int = 1024) -> None:
        capacity = max(16, int(capacity))
        h = _pow2(2 * capacity)
        self._st = K.IndexState(np.zeros(h, np.int64), np.full(h, K.EMPTY, np.int32),
                                np.zeros(capacity, np.int64), np.zeros(1, np.int64))

    def __len__(self) -> int:
        return int(self._st.n[0])

    @property
    def ids(self) -> np.ndarray:
        """External ids in index order (a read-only view)."""
        view = self._st.ids[: len(self)]
        view.flags.writeable = False
        return view

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._st)

    def lookup(self, ids: Any, what: str = "item") -> np.ndarray:
        """Dense indices (int32), -1 for ids never added."""
        ext = _as_ids(ids, what)
        out = np.empty(len(ext), np.int32)
        K.index_lookup(self._st.keys, self._st.vals, ext, out)
        return out

    def add(self, ids: Any, what: str = "item") -> np.ndarray:
        """Dense indices (int32) of `ids`, appending unseen ids in order of first occurrence."""
        ext = _as_ids(ids, what)
        out = self.lookup(ext, what)
        missing = out < 0
        if missing.any():
            n_new = len(np.unique(ext[missing]))
            self._reserve(len(self) + n_new)
            K.index_add(self._st.keys, self._st.vals, self._st.ids, self._st.n, ext, out)
        return out

    def _reserve(self, n: int) -> None:
        st = self._st
        if n > len(st.ids):
            ids = np.zeros(max(n, 2 * len(st.ids)), np.int64)
            ids[: len(self)] = st.ids[: len(self)]
            st = st._replace(ids=ids)
        if 2 * n > len(st.keys):
            h = _pow2(max(2 * n, 2 * len(st.keys)))
            keys, vals = np.zeros(h, np.int64), np.full(h, K.EMPTY, np.int32)
            K.rehash(st.keys, st.vals, keys, vals)
            st = st._replace(keys=keys, vals=vals)
        self._st = st

    def to_array(self) -> np.ndarray:
        return self._st.ids[: len(self)].copy()

    @classmethod
    def from_array(cls, ids: np.ndarray) -> GrowableIndex:
        index = cls(max(1024, len(ids)))
        dense = index.add(np.asarray(ids, np.int64))
        if len(index) != len(ids) or not np.array_equal(dense, np.arange(len(ids))):
            raise ArtifactError("saved id index holds duplicate ids")
        return index


def _pow2(n: int) -> int:
    return 1 << max(4, (int(n) - 1).bit_length())


class ContextIndex:
    """(field, value) -> context slot, one slot per distinct value of each context field."""

    def __init__(self) -> None:
        self.index = GrowableIndex(64)

    def __len__(self) -> int:
        return len(self.index)

    def encode(self, contexts: Any, n: int, *, add: bool) -> np.ndarray:
        """Context slots (n, 6) int32 of `contexts` for n clicks; -1 where a field is missing or unknown."""
        if isinstance(contexts, np.ndarray) and contexts.ndim == 2 and n > _CTX_CHUNK:
            return np.concatenate([self.encode(contexts[lo:lo + _CTX_CHUNK], min(_CTX_CHUNK, n - lo), add=add)
                                   for lo in range(0, n, _CTX_CHUNK)])
        codes = _context_codes(contexts, n)
        keys = (np.arange(len(CONTEXT_FIELDS), dtype=np.int64)[None, :] * _CTX_SHIFT + codes).ravel()
        present = (codes != _MISSING).ravel()
        out = np.full(keys.shape, -1, np.int32)
        if present.any():
            fn = self.index.add if add else self.index.lookup
            out[present] = fn(keys[present], "context")
        return out.reshape(n, len(CONTEXT_FIELDS))


_MISSING = np.iinfo(np.int64).min


def _context_codes(contexts: Any, n: int) -> np.ndarray:
    """(n, 6) int64 codes, `_MISSING` where absent. Accepts None, a (n, 6) array, a sequence of six
    ints (one click), a mapping field -> int (one click) or field -> array (n clicks)."""
    out = np.full((n, len(CONTEXT_FIELDS)), _MISSING, np.int64)
    if contexts is None:
        return out
    if isinstance(contexts, Mapping):
        unknown = set(contexts) - set(CONTEXT_FIELDS)
        if unknown:
            raise DataError(f"unknown context field(s) {sorted(unknown)}",
                            hint=f"use some of {', '.join(CONTEXT_FIELDS)}")
        for f, name in enumerate(CONTEXT_FIELDS):
            if name in contexts and contexts[name] is not None:
                col = np.asarray(contexts[name])
                if col.ndim == 0:
                    col = np.full(n, col)
                if col.shape != (n,):
                    raise DataError(f"context field {name!r} has {col.size} values for {n} clicks")
                out[:, f] = _int_column(col, name)
        return out
    arr = np.asarray(contexts)
    if arr.ndim == 1 and n == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape != (n, len(CONTEXT_FIELDS)):
        raise DataError(f"context must be shaped ({n}, {len(CONTEXT_FIELDS)}) (one row of "
                        f"{', '.join(CONTEXT_FIELDS)} per click), got shape {arr.shape}",
                        hint="or pass a dict field -> value(s), or None")
    for f, name in enumerate(CONTEXT_FIELDS):
        out[:, f] = _int_column(arr[:, f], name)
    return out


def _int_column(col: np.ndarray, name: str) -> np.ndarray:
    if col.dtype.kind in "iu":
        return col.astype(np.int64)
    if col.dtype.kind == "f" and np.all(np.isfinite(col)) and np.all(np.mod(col, 1) == 0):
        return col.astype(np.int64)
    raise DataError(f"context field {name!r} must hold integer codes, got {col.dtype}")


# ================================================================================================
# State layout: one spec per array field
# ================================================================================================
# dims: "I" items, "S" sessions, "C" stored clicks, "NS" context slots (grown by the Python side);
# "PE"/"PH" pair entries / pair hash slots, "WE"/"WB" window entries / buckets (grown on a "full"
# code from a kernel); "TOP"/"CTOP" fixed top-list lengths; ints are fixed sizes.

class Spec(NamedTuple):
    dims: tuple
    dtype: Any
    fill: Any
    saved: bool = True


_I32, _I64, _F64, _U8 = np.int32, np.int64, np.float64, np.uint8
_WS = {"ws": Spec(("I",), _F64, 0.0, False), "touched": Spec(("I",), _I32, 0, False),
       "excl": Spec(("I",), _U8, 0, False)}

SPECS: dict[type, dict[str, Any]] = {
    K.SessState: {
        "sess_len": Spec(("S",), _I32, 0), "sess_head": Spec(("S",), _I32, -1), "sess_tail": Spec(("S",), _I32, -1),
        "sess_time": Spec(("S",), _F64, -np.inf), "c_item": Spec(("C",), _I32, -1), "c_sess": Spec(("C",), _I32, -1),
        "c_next": Spec(("C",), _I32, -1), "c_prev_item": Spec(("C",), _I32, -1),
        "item_head": Spec(("I",), _I32, -1), "item_nsess": Spec(("I",), _I32, 0),
        "cnt": Spec((2,), _I64, 0), "lim": Spec((1,), _I64, 0),
    },
    K.PairState: {
        "keys": Spec(("PH",), _I64, 0, False), "slots": Spec(("PH",), _I32, -1, False),
        "e_dst": Spec(("PE",), _I32, -1), "e_val": Spec(("PE",), _F64, 0.0), "e_next": Spec(("PE",), _I32, -1),
        "row_head": Spec(("I",), _I32, -1), "row_len": Spec(("I",), _I32, 0),
        "cnt": Spec((1,), _I64, 0), "f": Spec((2,), _F64, np.nan), "p": Spec((3,), _F64, 0.0),
    },
    K.PopState: {
        "val": Spec(("I",), _F64, 0.0), "clicks": Spec(("I",), _I64, 0), "first_seen": Spec(("I",), _F64, np.inf),
        "traffic0": Spec(("I",), _I64, 0), "seen_order": Spec(("I",), _I32, -1),
        "top_items": Spec(("TOP",), _I32, -1), "top_vals": Spec(("TOP",), _F64, 0.0),
        "top_pos": Spec(("I",), _I32, -1), "cnt": Spec((3,), _I64, 0), "f": Spec((3,), _F64, 0.0),
    },
    K.WinState: {
        "e_item": Spec(("WE",), _I32, -1), "e_cnt": Spec(("WE",), _I32, 0), "e_next": Spec(("WE",), _I32, -1),
        "e_bucket": Spec(("WE",), _I64, -1), "item_last": Spec(("I",), _I32, -1),
        "bucket_head": Spec(("WB",), _I32, -1), "cnt": Spec((4,), _I64, 0), "f": Spec((2,), _F64, 0.0),
    },
    K.CtxState: {
        "val": Spec(("NS", "I"), _F64, 0.0), "total": Spec(("NS",), _F64, 0.0),
        "top_items": Spec(("NS", "CTOP"), _I32, -1), "top_vals": Spec(("NS", "CTOP"), _F64, 0.0),
        "top_pos": Spec(("NS", "I"), _I32, -1), "ntop": Spec(("NS",), _I64, 0), "f": Spec((3,), _F64, 0.0),
    },
    K.KnnWork: {
        "pw": Spec(("I",), _F64, 0.0, False), "ppos": Spec(("I",), _I32, 0, False),
        "stamp": Spec(("S",), _I32, 0, False), "qn": Spec((1,), _I64, 0, False),
    },
    K.PopModel: {"pop": K.PopState, **_WS},
    K.WinModel: {"win": K.WinState, **_WS},
    K.CtxModel: {"pop": K.PopState, "ctx": K.CtxState, "p": Spec((1,), _F64, 1.0), **_WS},
    K.AgeModel: {"pop": K.PopState, "p": Spec((2,), _F64, 0.0), **_WS},
    K.PairModel: {"ss": K.SessState, "pairs": K.PairState, "p": Spec((2,), _F64, 0.0), **_WS},
    K.KnnModel: {"ss": K.SessState, "p": Spec((K.KNN_PARAMS,), _F64, 0.0), "work": K.KnnWork, **_WS},
    K.HybridModel: {
        "ss": K.SessState, "knn_p": Spec((K.KNN_PARAMS,), _F64, 0.0), "knn_work": K.KnnWork,
        "knn_ws": Spec(("I",), _F64, 0.0, False), "knn_touched": Spec(("I",), _I32, 0, False),
        "pairs": K.PairState, "pair_p": Spec((2,), _F64, 0.0),
        "pair_ws": Spec(("I",), _F64, 0.0, False), "pair_touched": Spec(("I",), _I32, 0, False),
        "pop": K.PopState, "ctx": K.CtxState, "hp": Spec((K.HYBRID_PARAMS,), _F64, 0.0), **_WS,
    },
}


def explore_spec(base_cls: type) -> dict[str, Any]:
    """Layout of an explorer around a base model state of type `base_cls`."""
    return {"base": base_cls, "pop": K.PopState, "xp": Spec((K.X_PARAMS,), _F64, 0.0),
            "cand": Spec(("XC",), _I32, 0, False), "alpha": Spec(("XC",), _F64, 0.0, False),
            "beta": Spec(("XC",), _F64, 0.0, False)}


def _spec_of(cls: type, base_cls: type | None = None) -> dict[str, Any]:
    if cls is K.ExploreModel:
        return explore_spec(base_cls)
    return SPECS[cls]


def _shape(spec: Spec, caps: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else int(caps[d]) for d in spec.dims)


def build_state(cls: type, caps: Mapping[str, int], saved: Mapping[str, np.ndarray] | None = None,
                prefix: str = "", types: Mapping[str, type] | None = None) -> Any:
    """Allocate a state of type `cls` with capacities `caps`; copy saved arrays (trimmed) in front."""
    types = types or {}
    fields = {}
    for name, spec in _spec_of(cls, types.get(prefix + "base")).items():
        path = prefix + name
        if isinstance(spec, type):
            fields[name] = build_state(spec, caps, saved, path + ".", types)
            continue
        shape = _shape(spec, caps)
        arr = np.full(shape, spec.fill, dtype=spec.dtype)
        if saved is not None and spec.saved:
            if path not in saved:
                raise ArtifactError(f"saved session model lacks array {path!r}")
            src = saved[path]
            if src.ndim != arr.ndim or any(s > d for s, d in zip(src.shape, arr.shape)):
                raise ArtifactError(f"saved array {path!r} has shape {src.shape}, larger than {arr.shape}")
            arr[tuple(slice(0, s) for s in src.shape)] = src
        fields[name] = arr
    state = cls(**fields)
    return _rebuild_tables(state)


def _rebuild_tables(state: Any) -> Any:
    """Refill the pair hash tables from their rows (they are not saved)."""
    if isinstance(state, K.PairState):
        state.keys[:] = 0
        state.slots[:] = K.EMPTY
        K.pairs_rebuild(state.keys, state.slots, state.e_dst, state.e_next, state.row_head)
        return state
    if _is_state(state):
        return type(state)(*(_rebuild_tables(v) if _is_state(v) else v for v in state))
    return state


def _is_state(obj: Any) -> bool:
    return isinstance(obj, tuple) and hasattr(obj, "_fields")


def grow_state(state: Any, caps: Mapping[str, int], types: Mapping[str, type] | None = None,
               prefix: str = "") -> Any:
    """Return `state` with every array at least `caps` along its growable dims (contents kept)."""
    types = types or {}
    spec_map = _spec_of(type(state), types.get(prefix + "base"))
    fields = {}
    changed = False
    for name, spec in spec_map.items():
        value = getattr(state, name)
        if isinstance(spec, type):
            new = grow_state(value, caps, types, prefix + name + ".")
        else:
            want = tuple(max(cur, int(caps[d])) if isinstance(d, str) and d in caps else cur
                         for d, cur in zip(spec.dims, value.shape))
            if want != value.shape:
                new = np.full(want, spec.fill, dtype=spec.dtype)
                new[tuple(slice(0, s) for s in value.shape)] = value
            else:
                new = value
        changed |= new is not value
        fields[name] = new
    if not changed:
        return state
    new_state = type(state)(**fields)
    if isinstance(new_state, K.PairState) and new_state.keys is not state.keys:
        return _rebuild_tables(new_state)
    return new_state


def find_parts(state: Any, cls: type) -> list[Any]:
    found = [state] if isinstance(state, cls) else []
    for v in state:
        if _is_state(v):
            found += find_parts(v, cls)
    return found


def used_sizes(state: Any) -> dict[str, int]:
    """How much of each data-driven dim is in use (for trimming what is saved and compared)."""
    used: dict[str, int] = {}
    for ss in find_parts(state, K.SessState):
        used["C"] = int(ss.cnt[0])
    for ps in find_parts(state, K.PairState):
        used["PE"] = int(ps.cnt[0])
    for win in find_parts(state, K.WinState):
        used["WE"] = int(win.cnt[0])
        used["WB"] = int(win.e_bucket[: used["WE"]].max()) + 1 if used["WE"] else 0
    return used


def flatten_state(state: Any, sizes: Mapping[str, int], types: Mapping[str, type] | None = None,
                  prefix: str = "") -> dict[str, np.ndarray]:
    """The saved arrays of a state, named by path ("ss.c_item"), trimmed to `sizes` along named dims."""
    types = types or {}
    out: dict[str, np.ndarray] = {}
    for name, spec in _spec_of(type(state), types.get(prefix + "base")).items():
        value = getattr(state, name)
        if isinstance(spec, type):
            out.update(flatten_state(value, sizes, types, prefix + name + "."))
        elif spec.saved:
            cut = tuple(slice(0, sizes[d]) if isinstance(d, str) and d in sizes else slice(None) for d in spec.dims)
            out[prefix + name] = value[cut]
    return out


# ================================================================================================
# The base class
# ================================================================================================

INITIAL_CAPS: dict[str, int] = {"I": 1024, "S": 1024, "C": 4096, "NS": 64, "PE": 4096, "PH": 8192, "WE": 4096,
                                "WB": 256, "TOP": 200, "CTOP": 100, "XC": 64}
"""Starting capacities of a new model's arrays (each grows by doubling); tests shrink them to exercise growth."""


class SessionModelConfig(StrictConfig):
    """Settings shared by every session model (subclasses add theirs)."""


class SessionModel(ABC):
    """Base of every incremental session model (see the module docstring for the contract).

    A subclass sets `name`, `Config`, the state type `State`, and implements `_init_state(caps)`
    (allocate via `build_state` and write its parameters into the parameter arrays).
    """

    name: ClassVar[str] = "session"
    Config: ClassVar[type[StrictConfig]] = SessionModelConfig
    State: ClassVar[type]
    uses_sessions: ClassVar[bool] = True
    uses_context: ClassVar[bool] = False
    _registry: ClassVar[dict[str, type[SessionModel]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            SessionModel._registry[cls.name] = cls

    def __init__(self, config: StrictConfig | Mapping[str, Any] | None = None, **params: Any) -> None:
        if isinstance(config, StrictConfig):
            if params:
                config = config.model_copy(update=params)
            self.config = type(self).Config.parse(config.to_dict(), source=self.name)
        else:
            self.config = type(self).Config.parse(dict(config or {}), source=self.name, **params)
        self.items = GrowableIndex()
        self.sessions = GrowableIndex()
        self.contexts = ContextIndex()
        self.n_clicks = 0
        self._caps = self._initial_caps()
        self._state = self._init_state(self._caps)

    # --- subclass hooks ---------------------------------------------------------------------------
    def _initial_caps(self) -> dict[str, int]:
        return dict(INITIAL_CAPS)

    @abstractmethod
    def _init_state(self, caps: dict[str, int]) -> Any:
        """A fresh state (no clicks) with the model's parameters written in."""

    def _types(self) -> dict[str, type]:
        """Types of polymorphic sub-states by path (the explorer's base)."""
        return {}

    def _mask_context(self, ctx: np.ndarray) -> np.ndarray:
        """Blank (-1) the context fields the model is not configured to use (`context_fields`)."""
        fields = getattr(self.config, "context_fields", None)
        if fields is None:
            return ctx
        keep = np.array([f in fields for f in CONTEXT_FIELDS])
        ctx[:, ~keep] = -1
        return ctx

    def _on_choice(self, record: dict[str, Any]) -> None:
        """Called for each exploration choice a recommend call makes (the explorer logs it)."""
        return None

    # --- properties -------------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        """Articles the model has an index for (seen in updates)."""
        return len(self.items)

    @property
    def n_sessions(self) -> int:
        return len(self.sessions)

    @property
    def nbytes(self) -> int:
        """Memory held by the model's arrays (state, workspace and indices)."""
        total = self.items.nbytes + self.sessions.nbytes + self.contexts.index.nbytes

        def walk(st: Any) -> int:
            return sum(walk(v) if _is_state(v) else v.nbytes for v in st)

        return total + walk(self._state)

    def params(self) -> dict[str, Any]:
        return self.config.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.n_items} articles, {self.n_sessions} sessions, {self.n_clicks} clicks)"

    # --- updates ----------------------------------------------------------------------------------
    def update(self, session_id: Any, item: Any, timestamp: float, context: Any = None) -> None:
        """Absorb one click."""
        self.update_many([session_id], [item], [timestamp], None if context is None else _one_context(context))

    def update_many(self, session_ids: Any, items: Any, timestamps: Any, contexts: Any = None) -> None:
        """Absorb clicks in the given order (same final state as calling `update` on each in turn)."""
        items_arr = _as_ids(items, "item")
        n = len(items_arr)
        sess_arr = _as_ids(session_ids, "session") if self.uses_sessions else np.zeros(n, np.int64)
        times = np.asarray(timestamps, dtype=np.float64).ravel()
        if len(sess_arr) != n or len(times) != n:
            raise DataError(f"update_many got {len(sess_arr)} session ids, {n} items and {len(times)} timestamps",
                            hint="pass one session id, item and timestamp per click")
        if n == 0:
            return
        bad = ~np.isfinite(times)
        if bad.any():
            raise DataError(f"timestamp of click {int(np.flatnonzero(bad)[0])} is not finite",
                            hint="timestamps are seconds since the epoch")
        dense_items = self.items.add(items_arr, "item")
        dense_sess = self.sessions.add(sess_arr, "session") if self.uses_sessions else np.zeros(n, np.int32)
        if self.uses_context:
            ctx = self._mask_context(self.contexts.encode(contexts, n, add=True))
        else:
            ctx = np.full((n, len(CONTEXT_FIELDS)), -1, np.int32)
        self._absorb(dense_sess, dense_items, times, ctx)

    def _reserve(self, n_new_clicks: int) -> None:
        caps = self._caps
        want = {"I": len(self.items), "S": len(self.sessions), "NS": len(self.contexts),
                "C": self._stored_clicks() + n_new_clicks}
        grow = {d: max(v, 2 * caps[d]) for d, v in want.items() if v > caps[d]}
        if grow:
            caps.update(grow)
            self._state = grow_state(self._state, caps, self._types())

    def _stored_clicks(self) -> int:
        parts = find_parts(self._state, K.SessState)
        return int(parts[0].cnt[0]) if parts else 0

    def _absorb(self, sess: np.ndarray, items: np.ndarray, times: np.ndarray, ctx: np.ndarray) -> None:
        """Absorb dense clicks, growing data-driven structures when a kernel reports them full."""
        self._reserve(len(items))
        start = 0
        while True:
            start, code = K.absorb_many(self._state, sess, items, times, ctx, start)
            if code == 0:
                break
            self._grow_full(code)
        self.n_clicks += len(items)

    def _grow_full(self, code: int) -> None:
        caps = self._caps
        if code == K.FULL_PAIRS:
            caps["PE"] *= 2
            caps["PH"] = max(caps["PH"], _pow2(2 * caps["PE"]))
        elif code == K.FULL_WINDOW_ENTRIES:
            caps["WE"] *= 2
        elif code == K.FULL_WINDOW_BUCKETS:
            win = find_parts(self._state, K.WinState)[0]
            caps["WB"] = max(2 * caps["WB"], int(win.e_bucket[: win.cnt[0]].max(initial=0)) + 2)
        else:  # pragma: no cover - kernels return only the codes above
            raise RuntimeError(f"unknown kernel code {code}")
        self._state = grow_state(self._state, caps, self._types())

    # --- recommendations --------------------------------------------------------------------------
    def recommend(
        self,
        prefix_items: Sequence[Any] | np.ndarray,
        k: int = 20,
        *,
        timestamp: float,
        context: Any = None,
        exclude: Sequence[Any] | np.ndarray | None = None,
        exclude_prefix: bool = True,
        session: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k articles after the session prefix `prefix_items` (oldest first) at time `timestamp`.

        Returns (article ids, scores), best first; possibly fewer than k (even none) when the model
        has nothing for this prefix. `exclude` lists further ids never to return; `session` (the
        prefix's own session id, when the model has absorbed its clicks) keeps the session from
        being its own neighbour.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        if timestamp is None or not np.isfinite(float(timestamp)):
            raise DataError(f"timestamp must be a finite number of seconds, got {timestamp!r}")
        prefix = self.items.lookup(np.asarray(list(prefix_items) if not isinstance(prefix_items, np.ndarray)
                                              else prefix_items, dtype=np.int64).ravel())
        excl = (self.items.lookup(np.asarray(list(exclude), dtype=np.int64)) if exclude is not None
                and len(exclude) else np.empty(0, np.int32))
        ctx = (self._mask_context(self.contexts.encode(_one_context(context), 1, add=False))[0]
               if self.uses_context and context is not None else np.full(len(CONTEXT_FIELDS), -1, np.int32))
        self_sess = int(self.sessions.lookup([session], "session")[0]) if session is not None else -1
        out_items = np.empty(int(k), np.int32)
        out_scores = np.empty(int(k), np.float64)
        logrow = np.full(4, -1.0)
        n = K.recommend_one(self._state, prefix, float(timestamp), ctx, np.int64(self_sess), np.int64(k), excl,
                            bool(exclude_prefix), out_items, out_scores, logrow)
        ids = self.items.ids[out_items[:n]].copy()
        if logrow[0] >= 0:
            self._on_choice({"timestamp": float(timestamp), "session": session,
                             "item": int(self.items.ids[int(logrow[0])]), "slot": int(logrow[3]),
                             "propensity": float(logrow[1]), "n_candidates": int(logrow[2])})
        return ids, out_scores[:n].copy()

    # --- state, save and load ---------------------------------------------------------------------
    def _sizes(self) -> dict[str, int]:
        return {"I": len(self.items), "S": len(self.sessions), "NS": len(self.contexts), **used_sizes(self._state)}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The model's state as named plain arrays, trimmed to what is in use (what `save` writes)."""
        arrays = flatten_state(self._state, self._sizes(), self._types())
        arrays["index.items"] = self.items.to_array()
        arrays["index.sessions"] = self.sessions.to_array()
        arrays["index.contexts"] = self.contexts.index.to_array()
        return arrays

    def _manifest(self) -> dict[str, Any]:
        return {"kind": "session-model", "model": self.name, "params": self.params(), "n_clicks": self.n_clicks}

    def save(self, path: str | Path) -> Path:
        """Write the model as a plain-data bundle (arrays.npz + manifest.json)."""
        return write_bundle(path, self._manifest(), self.state_arrays())

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Load a bundle written by `save`; `SessionModel.load` picks the saved model's class."""
        manifest, arrays = read_bundle(path)
        if manifest.get("kind") != "session-model":
            raise ArtifactError(f"{path} does not hold a session model (kind {manifest.get('kind')!r}); "
                                "load it with tastemaker.models.base.Recommender.load")
        name = manifest.get("model")
        model_cls = SessionModel._registry.get(name)
        if model_cls is None:
            raise ArtifactError(f"{path}: unknown session model {name!r}; known: {', '.join(sorted(cls._registry))}")
        if cls is not SessionModel and not issubclass(model_cls, cls):
            raise ArtifactError(f"{path} holds a {name!r} model, not a {cls.__name__}")
        model = model_cls._from_manifest(manifest)
        model._restore(arrays, manifest)
        return model

    @classmethod
    def _from_manifest(cls, manifest: dict[str, Any]) -> SessionModel:
        return cls(manifest.get("params") or {})

    def _restore(self, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> None:
        try:
            self.items = GrowableIndex.from_array(arrays.pop("index.items"))
            self.sessions = GrowableIndex.from_array(arrays.pop("index.sessions"))
            self.contexts = ContextIndex()
            self.contexts.index = GrowableIndex.from_array(arrays.pop("index.contexts"))
        except KeyError as exc:
            raise ArtifactError(f"saved session model lacks its id index {exc}") from None
        sizes = {d: max(v, 16) for d, v in {"I": len(self.items), "S": len(self.sessions),
                                            "NS": len(self.contexts)}.items()}
        caps = dict(self._initial_caps())
        for d, v in sizes.items():
            caps[d] = max(caps[d], v)
        for name, arr in arrays.items():
            spec = _lookup_spec(type(self._state), name, self._types())
            if spec is None:
                raise ArtifactError(f"saved session model has an unexpected array {name!r}")
            for d, s in zip(spec.dims, arr.shape):
                if isinstance(d, str) and d not in ("I", "S", "NS"):
                    caps[d] = max(caps[d], int(s))
        caps["PH"] = max(caps["PH"], _pow2(2 * caps["PE"]))
        self._caps = caps
        self._state = build_state(type(self._state), caps, arrays, types=self._types())
        self.n_clicks = int(manifest.get("n_clicks", 0))


def _lookup_spec(cls: type, path: str, types: Mapping[str, type], prefix: str = "") -> Spec | None:
    head, _, rest = path.partition(".")
    spec = _spec_of(cls, types.get(prefix + "base")).get(head)
    if spec is None:
        return None
    if isinstance(spec, type):
        return _lookup_spec(spec, rest, types, prefix + head + ".") if rest else None
    return spec if not rest else None


def _one_context(context: Any) -> Any:
    """A single click's context as accepted by `ContextIndex.encode` with n = 1."""
    if context is None or isinstance(context, Mapping):
        return context
    arr = np.asarray(context)
    return arr.reshape(1, -1)


def create_session_model(name: str, params: Mapping[str, Any] | None = None) -> SessionModel:
    """A fresh session model by registered name (see `SESSION_MODELS`)."""
    import tastemaker.models.session  # noqa: F401  (registers the model classes)

    try:
        cls = SessionModel._registry[name]
    except KeyError:
        raise ConfigError(f"unknown session model {name!r}; known: {', '.join(sorted(SessionModel._registry))}") \
            from None
    return cls(dict(params or {}))
