"""The serving pipeline: retrieve → features → score → rules → top-k, composed from stage objects.

A `Pipeline` runs a list of stages on one `PipelineRequest`. Every stage is an object with a
``name`` and a ``run(request, candidates) -> CandidateSet`` method; the pipeline times each one and
records a `StageTrace` (candidates in and out, milliseconds, notes), so a response can show what
every stage did and a benchmark can time them separately. The same pipeline object serves HTTP
requests and offline evaluation.

Stages here are thin adapters — no model logic:

- `Retrieve`: the union of `CandidateSource`s (each returning ids, scores and a source tag) with a
  per-source quota; sources are adapters over a `Recommender` (`ModelSource`), a `ContentIndex`
  (`ContentSource`), a popularity vector (`PopularSource`) or anything with ``retrieve(request, n)``
  (the ANN and co-visitation sources of `tastemaker.retrieval` plug in here);
- `StoreFeatures`: feature rows and vectors of the candidates (and the user) from a `FeatureStore`;
- `Score`: any `Scorer` (``score(request, candidates) -> scores``), e.g. `LinearScorer`, or the
  LightGBM ranker of `tastemaker.ranking`;
- `Rules`: the business rules engine (`RuleSet` / `RuleSetHolder`) on the candidates' attributes
  from an `AttributeTable`; it leaves a per-item trace of which rule moved what;
- `TopK`: the cut to k when no rules stage does it.

`build_pipeline(PipelineConfig, Resources)` composes one from a typed config; `register_source`
and `register_scorer` add new kinds by name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import Field

from tastemaker.config import StrictConfig
from tastemaker.errors import ConfigError, DataError
from tastemaker.store.idindex import IdLookup

# ================================================================================================
# request, candidates, result
# ================================================================================================


@dataclass
class Constraints:
    """A request's own hard constraints (applied by the rules stage, or by `TopK` without rules)."""

    price_min: float | None = None
    price_max: float | None = None
    categories: Sequence[str] | None = None
    exclude_categories: Sequence[str] = ()
    brands: Sequence[str] | None = None
    exclude_items: Collection[str] = ()


@dataclass
class PipelineRequest:
    """One request. `user_id` None means anonymous; `history` is the context's recent items (most
    recent last); `item_id` asks for items similar to that one. `seen` and `purchased` are filled
    by the caller from what it knows of the user. Stages write to `notes`, `fallback` and
    `degraded` through the methods below, and may memoise per-request lookups in `cache` (e.g.
    the user's vector, fetched once by retrieval and reused by feature assembly)."""

    user_id: str | None = None
    k: int = 20
    history: Sequence[str] = ()
    item_id: str | None = None
    seen: Collection[str] = frozenset()
    purchased: Collection[str] = frozenset()
    constraints: Constraints = field(default_factory=Constraints)
    region: str | None = None
    now: Any = None
    request_id: str | None = None
    trace: bool = False
    exclude_seen: bool = True
    fallback: str | None = None
    degraded: str | None = None
    notes: list[str] = field(default_factory=list)
    rules_version: str | None = None
    exploration: list[dict[str, Any]] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)

    def use_fallback(self, reason: str) -> None:
        """Mark the request as answered by a fallback path (unknown user, no history, ...)."""
        if self.fallback is None:
            self.fallback = reason

    def degrade(self, reason: str) -> None:
        """Mark the request as served in degraded mode (a backend unreachable)."""
        if self.degraded is None:
            self.degraded = reason


@dataclass
class CandidateSet:
    """Candidates as columns: `ids` (str), `scores` (float64, higher is better), `sources` (the
    tag of the source that found each, '+'-joined when several did) and `features` (named float
    columns aligned with ids). `extras` are per-item dicts the response shows (rule flags, trace)."""

    ids: np.ndarray
    scores: np.ndarray
    sources: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    extras: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids).astype(str, copy=False)  # no copy when already text (`take`)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        self.sources = np.asarray(self.sources).astype(str, copy=False) if len(self.ids) else np.zeros(0, dtype=str)
        n = len(self.ids)
        if self.scores.shape != (n,) or self.sources.shape != (n,):
            raise DataError(f"candidate set: {n} ids but scores {self.scores.shape} and sources {self.sources.shape}")
        for name, col in self.features.items():
            if len(col) != n:
                raise DataError(f"candidate feature {name!r} has {len(col)} values for {n} candidates")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> CandidateSet:
        return cls(np.zeros(0, dtype=str), np.zeros(0), np.zeros(0, dtype=str))

    @classmethod
    def of(cls, ids: Sequence[Any], scores: Sequence[float], source: str) -> CandidateSet:
        ids = np.asarray(ids).astype(str)
        return cls(ids, np.asarray(scores, dtype=np.float64), np.full(len(ids), source))

    def take(self, idx: np.ndarray) -> CandidateSet:
        idx = np.asarray(idx, dtype=np.int64)
        return CandidateSet(self.ids[idx], self.scores[idx], self.sources[idx],
                            {k: v[idx] for k, v in self.features.items()},
                            None if self.extras is None else [self.extras[i] for i in idx])

    def with_scores(self, scores: np.ndarray) -> CandidateSet:
        return CandidateSet(self.ids, scores, self.sources, self.features, self.extras)

    def matrix(self, columns: Sequence[str]) -> np.ndarray:
        """Features as an (n, len(columns)) float32 matrix in the order given (NaN where absent)."""
        out = np.full((len(self), len(columns)), np.nan, dtype=np.float32)
        for j, c in enumerate(columns):
            col = self.features.get(c)
            if col is not None:
                out[:, j] = col
        return out


@dataclass
class StageTrace:
    """What one stage did to one request."""

    stage: str
    kind: str
    n_in: int
    n_out: int
    ms: float
    notes: list[str] = field(default_factory=list)
    cpu_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "kind": self.kind, "n_in": self.n_in, "n_out": self.n_out,
                "ms": round(self.ms, 3), "notes": list(self.notes)}


@dataclass
class ResultItem:
    item_id: str
    position: int
    score: float
    sources: list[str]
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, trace: bool) -> dict[str, Any]:
        out = {"item_id": self.item_id, "position": self.position, "score": self.score, "sources": self.sources}
        extras = self.extras if trace else {k: v for k, v in self.extras.items() if k != "trace"}
        out.update(extras)
        return out


@dataclass
class PipelineResult:
    """The final list with the request's fallback/degraded reasons and every stage's trace."""

    items: list[ResultItem]
    stages: list[StageTrace]
    fallback: str | None = None
    degraded: str | None = None
    notes: list[str] = field(default_factory=list)
    rules_version: str | None = None
    exploration: list[dict[str, Any]] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    pipeline: str = ""

    @property
    def item_ids(self) -> list[str]:
        return [it.item_id for it in self.items]

    @property
    def timings_ms(self) -> dict[str, float]:
        return {s.stage: s.ms for s in self.stages}


# ================================================================================================
# protocols
# ================================================================================================


@runtime_checkable
class Stage(Protocol):
    """A pipeline stage: takes the candidates so far and returns the next ones."""

    name: str

    def run(self, request: PipelineRequest, candidates: CandidateSet) -> CandidateSet: ...


@runtime_checkable
class CandidateSource(Protocol):
    """A retrieval source: up to `n` candidates for a request, best first, tagged with `name`."""

    name: str

    def retrieve(self, request: PipelineRequest, n: int) -> CandidateSet: ...


@runtime_checkable
class Scorer(Protocol):
    """Scores candidates (higher is better); e.g. a learned ranker over `candidates.features`."""

    def score(self, request: PipelineRequest, candidates: CandidateSet) -> np.ndarray: ...


# ================================================================================================
# the pipeline
# ================================================================================================


class Pipeline:
    """Stages run in order on one request; see the module docstring."""

    def __init__(self, stages: Sequence[Stage], *, name: str = "pipeline", k: int = 20) -> None:
        if not stages:
            raise ConfigError("a pipeline needs at least one stage")
        for s in stages:
            if not isinstance(s, Stage):
                raise ConfigError(f"{s!r} is not a pipeline stage: it needs a `name` and run(request, candidates)")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"pipeline stage names must be unique, got {names}")
        self.stages = list(stages)
        self.name = name
        self.k = int(k)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}: {' → '.join(s.name for s in self.stages)})"

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"pipeline {self.name!r} has no stage {name!r}; stages: {[s.name for s in self.stages]}")

    def run(self, request: PipelineRequest) -> PipelineResult:
        """Run every stage in order and return the final list with every stage's trace."""
        if request.k < 1:
            raise ConfigError(f"k must be at least 1, got {request.k}")
        cands = CandidateSet.empty()
        traces: list[StageTrace] = []
        for stage in self.stages:
            before = len(cands)
            n_notes = len(request.notes)
            c0 = time.thread_time()
            t0 = time.perf_counter()
            cands = stage.run(request, cands)
            ms = (time.perf_counter() - t0) * 1000.0
            traces.append(StageTrace(stage.name, type(stage).__name__, before, len(cands), ms,
                                     request.notes[n_notes:], (time.thread_time() - c0) * 1000.0))
        cands = cands.take(np.arange(min(len(cands), request.k)))
        items = [ResultItem(str(cands.ids[i]), i + 1, float(cands.scores[i]), str(cands.sources[i]).split("+"),
                            dict(cands.extras[i]) if cands.extras is not None else {}) for i in range(len(cands))]
        return PipelineResult(items, traces, request.fallback, request.degraded, list(request.notes),
                              request.rules_version, list(request.exploration), pipeline=self.name)


# ================================================================================================
# sources
# ================================================================================================


def _exclusions(request: PipelineRequest) -> set[str]:
    out = set(map(str, request.constraints.exclude_items))
    if request.exclude_seen:
        out.update(map(str, request.seen))
    if request.item_id is not None:
        out.add(str(request.item_id))
    return out


class ModelSource:
    """Candidates from a fitted `Recommender` (the MovieLens-style path).

    Known users get the model's top-n (seen items excluded). For an unknown user (or an anonymous
    request) the source gives nothing and marks the request with the reason (``unknown_user``,
    ``anonymous``), so other sources (content from the session's history) or the retrieval
    fallback (popular items) answer. A similar-items request uses the model's `similar_items`
    when it has one, else gives nothing.
    """

    def __init__(self, model: Any, *, name: str = "model") -> None:
        self.model = model
        self.name = name
        self._int_ids = bool(getattr(model.item_vocab, "is_integer", False))

    def _ext(self, x: str) -> Any:
        if self._int_ids:
            try:
                return int(x)
            except (TypeError, ValueError):
                return x
        return x

    def retrieve(self, request: PipelineRequest, n: int) -> CandidateSet:
        if request.item_id is not None:
            similar = getattr(self.model, "similar_items", None)
            if similar is None:
                return CandidateSet.empty()
            ids, scores = similar(self._ext(request.item_id), n)
            return CandidateSet.of(ids, scores, self.name)
        user = self._ext(request.user_id) if request.user_id is not None else None
        excl = _exclusions(request)
        exclude = {user: [self._ext(i) for i in excl]} if excl else None
        if user is None:
            request.use_fallback("anonymous")
            return CandidateSet.empty()
        if self.model.user_vocab.index(user) < 0:
            request.use_fallback("unknown_user")
            return CandidateSet.empty()
        recs = self.model.recommend([user], n, exclude_seen=request.exclude_seen, exclude=exclude)[0]
        if recs.fallback is not None:  # a known user without history: the model's popularity
            request.use_fallback(str(recs.fallback))
            return CandidateSet.of(recs.items, recs.scores, "popular")
        return CandidateSet.of(recs.items, recs.scores, self.name)


class ContentSource:
    """Candidates from a `ContentIndex`: the profile of the request's history (or the user's recent
    items), or the neighbours of `request.item_id`. New SKUs are found here the moment they are added."""

    def __init__(self, index: Any, *, name: str = "content", lock: threading.Lock | None = None,
                 max_history: int = 50) -> None:
        self.index = index
        self.name = name
        self.lock = lock or threading.Lock()
        self.max_history = int(max_history)

    def retrieve(self, request: PipelineRequest, n: int) -> CandidateSet:
        excl = _exclusions(request)
        with self.lock:
            if request.item_id is not None:
                if request.item_id not in self.index:
                    return CandidateSet.empty()
                hits = self.index.similar_items(request.item_id, n, exclude=list(excl) or None)
            else:
                history = list(request.history)[-self.max_history:]
                if not history:
                    return CandidateSet.empty()
                hits = self.index.recommend(history, n, exclude=list(excl) or None)
        return CandidateSet.of(hits.ids, hits.scores, self.name)


class PopularSource:
    """The n most popular items: `ranking` is (ids, scores), or a function returning them (for live
    counts; it should cache its ranking, it is called per request)."""

    def __init__(self, ranking: tuple[Sequence[Any], Sequence[float]] | Callable[[], tuple[Any, Any]], *,
                 name: str = "popular") -> None:
        self.name = name
        self._get = ranking if callable(ranking) else None
        self._static = None if callable(ranking) else _ranked(*ranking)

    def retrieve(self, request: PipelineRequest, n: int) -> CandidateSet:
        ids, scores = self._static if self._static is not None else _ranked(*self._get())
        excl = _exclusions(request)
        out_i, out_s = [], []
        for i, s in zip(ids, scores):
            if i not in excl:
                out_i.append(i)
                out_s.append(s)
                if len(out_i) >= n:
                    break
        return CandidateSet.of(out_i, out_s, self.name)


def _ranked(ids, scores) -> tuple[list[str], list[float]]:
    ids = np.asarray(ids).astype(str)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    return ids[order].tolist(), scores[order].tolist()


# ================================================================================================
# stages
# ================================================================================================


class Retrieve:
    """Union of sources: each gets its quota (default: `n`); the union is cut to `n`.

    Scores of different sources are not comparable (a cosine, a popularity share, a model score),
    so by default the union ranks by weighted reciprocal-rank fusion: Σ weight(tag) / (60 + rank in
    that source). Candidates found through a fallback (tag ``popular``) weigh 0.5 unless `weights`
    says otherwise. ``fusion="max"`` keeps the best raw score instead. Every source's raw score
    stays a feature ``score_<tag>`` for a ranker. A source that fails with a store outage marks the
    request degraded and is skipped. When no source has anything, `fallback` (e.g. popular items)
    answers and the request says so."""

    RRF_K = 60.0
    DEFAULT_WEIGHTS: Mapping[str, float] = {"popular": 0.5}

    def __init__(self, sources: Sequence[CandidateSource], *, n: int = 500, quotas: Mapping[str, int] | None = None,
                 weights: Mapping[str, float] | None = None, fusion: Literal["rrf", "max"] = "rrf",
                 fallback: CandidateSource | None = None, name: str = "retrieve") -> None:
        if not sources:
            raise ConfigError("Retrieve needs at least one candidate source")
        if fusion not in ("rrf", "max"):
            raise ConfigError(f"fusion must be 'rrf' or 'max', got {fusion!r}")
        self.sources = list(sources)
        self.n = int(n)
        self.quotas = dict(quotas or {})
        self.weights = {**self.DEFAULT_WEIGHTS, **(weights or {})}
        self.fusion = fusion
        self.fallback = fallback
        self.name = name

    def run(self, request: PipelineRequest, candidates: CandidateSet) -> CandidateSet:
        from tastemaker.store.base import StoreUnavailable

        parts: list[CandidateSet] = [candidates] if len(candidates) else []
        for src in self.sources:
            t0 = time.perf_counter()
            try:
                got = src.retrieve(request, self.quotas.get(src.name, self.n))
            except StoreUnavailable as exc:
                request.degrade(f"source {src.name}: {exc}")
                request.notes.append(f"{self.name}: source {src.name} skipped (store unavailable)")
                continue
            if request.trace:
                request.notes.append(f"{self.name}: {src.name} gave {len(got)} in "
                                     f"{(time.perf_counter() - t0) * 1000:.2f} ms")
            if len(got):
                parts.append(got)
        if not parts and self.fallback is not None:
            got = self.fallback.retrieve(request, self.n)
            request.use_fallback(f"no personal candidates; {self.fallback.name} items")
            request.notes.append(f"{self.name}: no source had candidates; {len(got)} from {self.fallback.name}")
            if len(got):
                parts.append(got)
        if not parts:
            return CandidateSet.empty()
        if len(parts) == 1 and len(np.unique(parts[0].sources)) == 1:
            one = parts[0]
            feats = {**one.features, f"score_{one.sources[0]}": one.scores}
            return CandidateSet(one.ids, one.scores, one.sources, feats).take(np.arange(min(len(one), self.n)))
        return self._union(parts)

    def _union(self, parts: list[CandidateSet]) -> CandidateSet:
        ids = np.concatenate([p.ids for p in parts])
        tags = np.concatenate([p.sources for p in parts])
        raw = np.concatenate([p.scores for p in parts])
        if self.fusion == "rrf":
            ranks = np.concatenate([np.arange(1, len(p) + 1) for p in parts])
            w = np.asarray([self.weights.get(t, 1.0) for t in tags.tolist()]) if len(tags) else np.zeros(0)
            value = w / (self.RRF_K + ranks)
        else:
            value = raw
        # first occurrence order: unique ids, each candidate's slot
        uniq, first, inv = np.unique(ids, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        slot = np.empty(len(uniq), dtype=np.int64)
        slot[order] = np.arange(len(uniq))
        j = slot[inv]
        m = len(uniq)
        fused = np.zeros(m)
        if self.fusion == "rrf":
            np.add.at(fused, j, value)
        else:
            fused.fill(-np.inf)
            np.maximum.at(fused, j, value)
        feats: dict[str, np.ndarray] = {}
        tag_names = list(dict.fromkeys(tags.tolist()))
        found = np.zeros((len(tag_names), m), dtype=bool)
        for t_i, tag in enumerate(tag_names):
            sel = tags == tag
            col = np.zeros(m)
            col[j[sel]] = raw[sel]
            feats[f"score_{tag}"] = col
            found[t_i, j[sel]] = True
        if len(tag_names) == 1:
            sources = np.full(m, tag_names[0])
        else:
            bits = (found.astype(np.int64) << np.arange(len(tag_names))[:, None]).sum(axis=0)
            codes, back = np.unique(bits, return_inverse=True)
            names = np.asarray(["+".join(tn for t_i, tn in enumerate(tag_names) if c >> t_i & 1)
                                for c in codes.tolist()])
            sources = names[back]
        out = CandidateSet(uniq[order], fused, sources, feats)
        return out.take(np.argsort(-out.scores, kind="stable")[:self.n])


def user_vector(store: Any, request: PipelineRequest) -> np.ndarray | None:
    """The request user's vector from the store, fetched once per request (memoised in `request.cache`)."""
    if request.user_id is None:
        return None
    if "user_vector" not in request.cache:
        rows = store.get_rows("user_vectors", [request.user_id])
        if rows.degraded:
            request.degrade(rows.degraded)
        request.cache["user_vector"] = rows.values[0] if rows.found[0] else None
    return request.cache["user_vector"]


class StoreFeatures:
    """Adds features from a `FeatureStore`: every column of ``item_features`` (as ``item.<col>``),
    and, when both vector tables are loaded, ``user_item_dot`` (user vector · item vector). All reads
    go in one round trip (`get_many`). A store outage marks the request degraded; the features then
    come from the store's fallback (a `ResilientStore`) or are left out."""

    def __init__(self, store: Any, *, item_features: bool = True, vectors: bool = True,
                 name: str = "features") -> None:
        self.store = store
        self.item_features = item_features
        self.vectors = vectors
        self.name = name

    def run(self, request: PipelineRequest, candidates: CandidateSet) -> CandidateSet:
        from tastemaker.store.base import StoreError, StoreUnavailable

        if not len(candidates):
            return candidates
        feats = dict(candidates.features)
        ids = candidates.ids  # a numpy array of strings: the memory store looks it up vectorised
        queries: list[tuple[str, Any]] = []
        if self.item_features:
            queries.append(("item_features", ids))
        want_user = self.vectors and request.user_id is not None
        if want_user:
            if "user_vector" not in request.cache:
                queries.append(("user_vectors", [request.user_id]))
            queries.append(("item_vectors", ids))
        try:
            got = dict(zip([q[0] for q in queries], self.store.get_many(queries)))
        except StoreUnavailable as exc:
            request.degrade(str(exc))
            request.notes.append(f"{self.name}: store unavailable, features left out")
            got = {}
        except StoreError as exc:
            request.notes.append(f"{self.name}: {exc}")
            got = {}
        for rows in got.values():
            if rows.degraded:
                request.degrade(rows.degraded)
        rows = got.get("item_features")
        if rows is not None and rows.columns:
            for j, c in enumerate(rows.columns):
                feats[f"item.{c}"] = np.where(rows.found, rows.values[:, j], np.nan)
        if "user_vectors" in got:
            u = got["user_vectors"]
            request.cache["user_vector"] = u.values[0] if u.found[0] else None
        items = got.get("item_vectors")
        if want_user and items is not None:
            uvec = request.cache.get("user_vector")
            if uvec is None:
                request.notes.append(f"{self.name}: user {request.user_id!r} has no vector in the store")
            elif items.values.shape[1] == len(uvec):
                feats["user_item_dot"] = np.where(items.found, items.values @ uvec, np.nan)
        return CandidateSet(candidates.ids, candidates.scores, candidates.sources, feats, candidates.extras)


class LinearScorer:
    """score = Σ weight · feature (missing features count 0); the default stand-in for a learned ranker."""

    def __init__(self, weights: Mapping[str, float]) -> None:
        if not weights:
            raise ConfigError("LinearScorer needs at least one feature weight")
        self.weights = dict(weights)

    def score(self, request: PipelineRequest, candidates: CandidateSet) -> np.ndarray:
        cols = list(self.weights)
        x = np.nan_to_num(candidates.matrix(cols), nan=0.0)
        return x.astype(np.float64) @ np.asarray([self.weights[c] for c in cols], dtype=np.float64)


class Score:
    """Re-scores the candidates with a `Scorer` and sorts them by the new scores."""

    def __init__(self, scorer: Scorer, *, name: str = "score") -> None:
        self.scorer = scorer
        self.name = name

    def run(self, request: PipelineRequest, candidates: CandidateSet) -> CandidateSet:
        if not len(candidates):
            return candidates
        scores = np.asarray(self.scorer.score(request, candidates), dtype=np.float64)
        if scores.shape != (len(candidates),):
            raise DataError(f"scorer {type(self.scorer).__name__} returned {scores.shape} scores for "
                            f"{len(candidates)} candidates")
        scores = np.where(np.isfinite(scores), scores, -1e30)
        out = candidates.with_scores(scores)
        out.features = {**out.features, "retrieval_score": candidates.scores}
        return out.take(np.argsort(-scores, kind="stable"))


class AttributeTable:
    """Item attributes for the rules engine, by id, upsertable (a new SKU is one `upsert`).

    Columns are those of `tastemaker.ranking.Candidates` (price, margin, stock, category, brand,
    launch, tags, regions, promo, sponsored, campaign, consumable); missing values are unknown.
    Text and list columns are stored as integer codes into a table of distinct values, so millions
    of SKUs cost a few bytes each and a lookup of 500 candidates is a handful of fancy-indexes.
    """

    NUMERIC = ("price", "margin", "stock")
    TEXT = ("category", "brand", "campaign")
    FLAGS = ("promo", "sponsored", "consumable")
    LISTS = ("tags", "regions")
    COLUMNS = (*NUMERIC, *TEXT, "launch", *LISTS, *FLAGS)
    _CODED = (*TEXT, *LISTS)

    def __init__(self) -> None:
        self._pos: dict[str, int] = {}
        self._n = 0
        self._cap = 0
        self._cols: dict[str, np.ndarray] = {}
        self._values: dict[str, list[str]] = {c: [""] for c in self._CODED}
        self._codes: dict[str, dict[str, int]] = {c: {"": 0} for c in self._CODED}
        self._varr: dict[str, np.ndarray] = {}
        self._present: set[str] = set()
        self._lock = threading.Lock()
        self._lookup = IdLookup(self._pos)
        self._cat_map = np.zeros(0, dtype=np.intp)  # category code -> row of the rules' category table
        self._alloc(0)

    def __len__(self) -> int:
        return self._n

    def __contains__(self, item: Any) -> bool:
        return str(item) in self._pos

    @property
    def ids(self) -> list[str]:
        return list(self._pos)

    def some_ids(self, n: int) -> list[str]:
        out = []
        for i in self._pos:
            if len(out) >= n:
                break
            out.append(i)
        return out

    @classmethod
    def from_columns(cls, ids: Sequence[Any], **columns: Any) -> AttributeTable:
        """Bulk build from columns aligned with `ids` (vectorised; for millions of SKUs)."""
        t = cls()
        ids_a = np.asarray(ids).astype(str)
        n = len(ids_a)
        unknown = set(columns) - set(cls.COLUMNS)
        if unknown:
            raise ConfigError(f"unknown item attributes {sorted(unknown)}; known: {', '.join(cls.COLUMNS)}")
        t._pos = dict(zip(ids_a.tolist(), range(n)))
        if len(t._pos) != n:
            raise DataError("duplicate item ids in the attribute table")
        t._lookup = IdLookup(t._pos)
        t._alloc(n)
        t._n = n
        for name, col in columns.items():
            if col is None:
                continue
            if len(col) != n:
                raise DataError(f"attribute {name!r} has {len(col)} values for {n} ids")
            if name in cls._CODED:
                vals = [_text(v, name) for v in col] if name in cls.LISTS or not isinstance(col, np.ndarray) \
                    or col.dtype.kind not in "OU" else col
                uniq, inv = np.unique(np.asarray(vals, dtype=object).astype(str), return_inverse=True)
                codes = np.asarray([t._code(name, u) for u in uniq.tolist()], dtype=np.int32)
                t._cols[name][:n] = codes[inv]
            elif name == "launch":
                t._cols[name][:n] = np.asarray(col, dtype="datetime64[D]")
            elif name in cls.FLAGS:
                t._cols[name][:n] = np.asarray(col, dtype=bool)
            else:
                t._cols[name][:n] = np.asarray(col, dtype=np.float64)
            t._present.add(name)
        return t

    def _code(self, name: str, value: str) -> int:
        codes = self._codes[name]
        c = codes.get(value)
        if c is None:
            c = codes[value] = len(self._values[name])
            self._values[name].append(value)
            self._varr.pop(name, None)
        return c

    def _alloc(self, cap: int) -> None:
        fresh = {**{c: np.full(cap, np.nan) for c in self.NUMERIC},
                 **{c: np.zeros(cap, dtype=np.int32) for c in self._CODED},
                 "launch": np.full(cap, np.datetime64("NaT"), dtype="datetime64[D]"),
                 **{c: np.zeros(cap, dtype=bool) for c in self.FLAGS}}
        for c, arr in fresh.items():
            old = self._cols.get(c)
            if old is not None:
                arr[:len(old)] = old
            self._cols[c] = arr
        self._cap = cap

    def upsert(self, item_id: Any, **attrs: Any) -> bool:
        """Insert or update one item; returns True when it is new. `None` values leave a field as is."""
        unknown = set(attrs) - set(self.COLUMNS)
        if unknown:
            raise ConfigError(f"unknown item attributes {sorted(unknown)}; known: {', '.join(self.COLUMNS)}")
        key = str(item_id)
        with self._lock:
            pos = self._pos.get(key)
            new = pos is None
            if new:
                if self._n >= self._cap:
                    self._alloc(max(64, 2 * self._cap))
                pos = self._n
            for name, v in attrs.items():
                if v is None:
                    continue
                if name in self._CODED:
                    v = self._code(name, _text(v, name))
                elif name == "launch":
                    v = np.datetime64(v, "D")
                self._cols[name][pos] = v
                self._present.add(name)
            if new:
                self._pos[key] = pos
                self._n += 1
            return new

    def _value_array(self, name: str) -> np.ndarray:
        arr = self._varr.get(name)
        if arr is None:
            arr = self._varr[name] = np.asarray(self._values[name], dtype=str)
        return arr

    def get(self, item_id: Any) -> dict[str, Any] | None:
        pos = self._pos.get(str(item_id))
        if pos is None:
            return None
        out: dict[str, Any] = {}
        for name in sorted(self._present, key=self.COLUMNS.index):
            v = self._cols[name][pos]
            if name == "launch":
                out[name] = None if np.isnat(v) else str(v)
            elif name in self.NUMERIC:
                out[name] = None if np.isnan(v) else float(v)
            elif name in self.FLAGS:
                out[name] = bool(v)
            elif name in self.LISTS:
                out[name] = [t for t in self._values[name][v].split(",") if t]
            else:
                out[name] = self._values[name][v] or None
        return out

    def attributes(self, ids: Sequence[str] | np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
        """Columns for `ids` (only those some item has) and a mask of which ids are known."""
        with self._lock:  # an upsert may be growing the columns
            return self._attributes(self._lookup.lookup(ids))

    def rule_attributes(self, ids: Sequence[str] | np.ndarray) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None]:
        """`attributes`, plus each id's category as a row of the rules engine's category table
        (`tastemaker.ranking.diversity.CATEGORIES`; None without a category column), so the engine
        needs no string work on category paths."""
        with self._lock:
            rows = self._lookup.lookup(ids)
            cols, known = self._attributes(rows)
            cat_rows = None
            if "category" in self._present:
                codes = self._cols["category"][np.where(known, rows, 0)]
                if not known.all():
                    codes[~known] = 0
                cat_rows = self._category_rows()[codes]
            return cols, known, cat_rows

    def _category_rows(self) -> np.ndarray:
        """Row of the rules engine's category table for every category code (interned as they come)."""
        from tastemaker.ranking.diversity import CATEGORIES

        values = self._values["category"]
        if len(self._cat_map) < len(values):
            more = CATEGORIES.rows_of(values[len(self._cat_map):])
            self._cat_map = np.concatenate([self._cat_map, more]).astype(np.intp)
        return self._cat_map

    def _attributes(self, rows: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
        known = rows >= 0
        every = bool(known.all())
        safe = rows if every else np.where(known, rows, 0)
        cols: dict[str, Any] = {}
        for name in self._present:
            col = self._cols[name][safe]
            if name in self._CODED:
                if not every:
                    col[~known] = 0
                col = self._value_array(name)[col]
            elif not every:
                if name in self.NUMERIC:
                    col[~known] = np.nan
                elif name in self.FLAGS:
                    col[~known] = False
                else:
                    col[~known] = np.datetime64("NaT")
            cols[name] = col
        return cols, known


def _text(value: Any, name: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if name in AttributeTable.LISTS and not isinstance(value, str):
        return ",".join(str(v) for v in value)
    return str(value)


def catalog_indices(catalog: Any, ids: Sequence[Any]) -> np.ndarray:
    """Row of each id in `catalog` (-1 where unknown), comparing ids as strings; an id that cannot
    be one of an integer-keyed catalogue's ids is simply unknown."""
    q = np.asarray([str(i) for i in ids], dtype=str)
    if not len(q):
        return np.zeros(0, dtype=np.int64)
    if np.asarray(catalog.ids).dtype.kind in "iu":
        numeric = np.strings.isdigit(q)
        out = np.full(len(q), -1, dtype=np.int64)
        if numeric.any():
            out[numeric] = catalog.indices(q[numeric].astype(np.int64))
        return out
    return catalog.indices(q)


class CatalogAttributes:
    """Attributes from an immutable `tastemaker.data.catalog.Catalog`, with an `AttributeTable`
    overlay for upserts (new SKUs, changed prices) made while serving; the overlay wins."""

    def __init__(self, catalog: Any, overlay: AttributeTable | None = None) -> None:
        self.catalog = catalog
        self.overlay = overlay if overlay is not None else AttributeTable()

    def __len__(self) -> int:
        extra = int((catalog_indices(self.catalog, self.overlay.ids) < 0).sum()) if len(self.overlay) else 0
        return len(self.catalog) + extra

    def __contains__(self, item: Any) -> bool:
        return item in self.overlay or catalog_indices(self.catalog, [item])[0] >= 0

    def some_ids(self, n: int) -> list[str]:
        return [str(i) for i in self.catalog.ids[:n].tolist()]

    def upsert(self, item_id: Any, **attrs: Any) -> bool:
        known = item_id in self
        if str(item_id) not in self.overlay:
            i = int(catalog_indices(self.catalog, [item_id])[0])
            if i >= 0:  # start from the catalogue's values, so a partial update keeps the rest
                row = self.catalog.candidate_columns([i])
                base = {k: v[0] for k, v in row.items()}
                self.overlay.upsert(item_id, **{k: v for k, v in base.items() if k in AttributeTable.COLUMNS})
        self.overlay.upsert(item_id, **attrs)
        return not known

    def get(self, item_id: Any) -> dict[str, Any] | None:
        got = self.overlay.get(item_id)
        if got is not None:
            return got
        i = int(catalog_indices(self.catalog, [item_id])[0])
        if i < 0:
            return None
        row = self.catalog.row(i)
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items() if k != "id"}

    def attributes(self, ids: Sequence[str]) -> tuple[dict[str, Any], np.ndarray]:
        idx = catalog_indices(self.catalog, ids)
        known = idx >= 0
        cols = self.catalog.candidate_columns(np.where(known, idx, 0))
        if not known.all():
            bad = ~known
            for name, col in cols.items():
                if isinstance(col, list):
                    cols[name] = ["" if b else v for v, b in zip(col, bad)]
                elif col.dtype.kind == "f":
                    col[bad] = np.nan
                elif col.dtype.kind == "b":
                    col[bad] = False
                elif col.dtype.kind == "M":
                    col[bad] = np.datetime64("NaT")
                else:
                    col[bad] = ""
        if len(self.overlay):
            over, ov_known = self.overlay.attributes(ids)
            if ov_known.any():
                for name, col in over.items():
                    base = cols.get(name)
                    if base is None:
                        continue
                    base_a = np.asarray(base)
                    cols[name] = np.where(ov_known, np.asarray(col).astype(base_a.dtype)
                                          if base_a.dtype.kind != "U" else np.asarray(col), base_a)
                known = known | ov_known
        return cols, known


class RetrievalSource:
    """A `tastemaker.retrieval` source (item indices in a catalogue's item space, a `Query` in,
    `Candidates` out) as a pipeline `CandidateSource` (external ids). The user's index comes from
    `user_vocab` (a `Vocabulary`; unknown users query by their history); the request's history,
    context item and exclusions are mapped into the item space; the source's extra per-candidate
    signals become features ``<source>.<name>``.

    `allowed` pushes hard constraints into the source (an ANN source runs a filtered index search):
    a boolean mask over the catalogue's items (e.g. in stock and inside the rule file's price range,
    fixed for a catalogue version), or a function of the request returning one (None: no
    constraint). The rules stage still applies its filters; this only keeps the source from
    spending its quota on items they would drop."""

    def __init__(self, source: Any, catalog: Any, *, user_vocab: Any = None, name: str | None = None,
                 allowed: np.ndarray | Callable[[PipelineRequest], np.ndarray | None] | None = None) -> None:
        self.source = source
        self.catalog = catalog
        self.user_vocab = user_vocab
        self.name = name or source.name
        if allowed is not None and not callable(allowed):
            allowed = np.asarray(allowed)
            if allowed.dtype != np.bool_ or allowed.shape != (len(catalog.ids),):
                raise DataError(f"allowed must be a boolean mask over the catalogue's {len(catalog.ids):,} items, "
                                f"got {allowed.dtype} of shape {allowed.shape}")
            # a read-only copy: the index then counts and packs this fixed mask once, not per query
            allowed = allowed.copy()
            allowed.setflags(write=False)
        self.allowed = allowed

    def _indices(self, ids: Sequence[str]) -> np.ndarray:
        idx = catalog_indices(self.catalog, ids)
        return idx[idx >= 0]

    def retrieve(self, request: PipelineRequest, n: int) -> CandidateSet:
        from tastemaker.retrieval.base import Query

        user = -1
        if request.user_id is not None and self.user_vocab is not None:
            user = int(self.user_vocab.index(request.user_id))
        items = self._indices([request.item_id]) if request.item_id is not None else np.zeros(0, np.int64)
        excluded = _exclusions(request)
        excl = self._indices(sorted(excluded)) if excluded else np.zeros(0, np.int64)
        history = self._indices(list(request.history)) if len(request.history) else np.zeros(0, np.int64)
        allowed = self.allowed(request) if callable(self.allowed) else self.allowed
        query = Query(user=user, history=history, items=items, exclude=excl if len(excl) else None, allowed=allowed)
        got = self.source.retrieve(query, n)
        ids = np.asarray(self.catalog.ids)[got.items].astype(str)
        feats = {f"{self.name}.{k}": np.asarray(v, dtype=np.float64) for k, v in got.features.items()}
        return CandidateSet(ids, np.asarray(got.scores, dtype=np.float64), np.full(len(ids), self.name), feats)


class Rules:
    """The business rules engine as a stage: attributes from an `AttributeTable` (when given),
    the request's purchases, region and constraints go in a `RequestContext`; the result's items
    carry their flags and trace (``extras``)."""

    def __init__(self, rules: Any, attributes: AttributeTable | None = None, *, name: str = "rules") -> None:
        self.rules = rules
        self.attributes = attributes
        self.name = name

    def run(self, request: PipelineRequest, candidates: CandidateSet) -> CandidateSet:
        from tastemaker.ranking import Candidates, RequestContext

        if not len(candidates):
            return candidates
        cols: dict[str, Any] = {}
        cat_rows = None
        if isinstance(self.attributes, AttributeTable):
            cols, _known, cat_rows = self.attributes.rule_attributes(candidates.ids)
        elif self.attributes is not None:
            cols, _known = self.attributes.attributes(candidates.ids.tolist())
        c = request.constraints
        ctx = RequestContext(user_id=request.user_id, purchased=frozenset(map(str, request.purchased)),
                             region=request.region, now=request.now, price_min=c.price_min, price_max=c.price_max,
                             categories=list(c.categories) if c.categories else None,
                             exclude_categories=list(c.exclude_categories), brands=list(c.brands) if c.brands else None,
                             exclude_items=frozenset(map(str, c.exclude_items)), request_id=request.request_id)
        cands = Candidates(candidates.ids, candidates.scores, **cols)
        if cat_rows is not None:
            cands.set_category_rows(cat_rows)
        result = self.rules.rank(cands, ctx, k=request.k, trace=request.trace)
        request.notes.extend(f"{self.name}: {n}" for n in result.notes)
        request.rules_version = result.rules_version
        request.exploration = [e.to_dict() for e in result.exploration]
        index = {i: j for j, i in enumerate(candidates.ids.tolist())}
        idx = np.asarray([index[it.item_id] for it in result.items], dtype=np.int64)
        out = candidates.take(idx).with_scores(np.asarray([it.score for it in result.items], dtype=np.float64))
        extras = []
        for it in result.items:
            e: dict[str, Any] = {"relevance": it.relevance}
            for flag in ("sponsored", "pinned", "explored"):
                if getattr(it, flag):
                    e[flag] = True
            if it.campaign:
                e["campaign"] = it.campaign
            if it.propensity is not None:
                e["propensity"] = it.propensity
            if request.trace:
                e["trace"] = [t.to_dict() for t in it.trace]
            extras.append(e)
        out.extras = extras
        return out


def _apply_constraints(request: PipelineRequest, cands: CandidateSet,
                       attributes: AttributeTable | None) -> CandidateSet:
    """The request's constraints without a rules engine: exclusions always, price/category/brand
    when the attributes are known (otherwise a note says the constraint could not be applied)."""
    if not len(cands):
        return cands
    keep = np.ones(len(cands), dtype=bool)
    excl = _exclusions(request)
    if excl:
        keep &= ~np.isin(cands.ids, np.asarray(sorted(excl), dtype=str))
    c = request.constraints
    wanted = [x for x in ("price_min", "price_max", "categories", "brands") if getattr(c, x)]
    if wanted or c.exclude_categories:
        if attributes is None:
            request.notes.append(f"constraints {wanted} not applied: this pipeline has no item attributes")
        else:
            cols, known = attributes.attributes(cands.ids.tolist())
            price = cols.get("price")
            if c.price_min is not None:
                keep &= known & (price >= c.price_min) if price is not None else False
            if c.price_max is not None:
                keep &= known & (price <= c.price_max) if price is not None else False
            cat = cols.get("category")
            for prefixes, include in ((c.categories, True), (c.exclude_categories, False)):
                if prefixes:
                    cat_a = np.asarray(cat if cat is not None else np.full(len(cands), ""), dtype=str)
                    hit = np.zeros(len(cands), dtype=bool)
                    for p in prefixes:
                        hit |= (cat_a == p) | np.strings.startswith(cat_a, p.rstrip("/") + "/")
                    keep &= hit if include else ~hit
            if c.brands:
                brand = cols.get("brand")
                keep &= np.isin(np.asarray(brand, dtype=str), list(c.brands)) if brand is not None else False
    return cands.take(np.flatnonzero(keep))


class TopK:
    """Applies the request's constraints (exclusions; price/category/brand when `attributes` are
    given) and keeps the first k — for pipelines without a rules stage."""

    def __init__(self, attributes: AttributeTable | None = None, *, name: str = "topk") -> None:
        self.attributes = attributes
        self.name = name

    def run(self, request: PipelineRequest, candidates: CandidateSet) -> CandidateSet:
        out = _apply_constraints(request, candidates, self.attributes)
        return out.take(np.arange(min(len(out), request.k)))


# ================================================================================================
# typed config
# ================================================================================================


class SourceConfig(StrictConfig):
    """One retrieval source: `kind` is a registered source name ("model", "content", "popular",
    or one added with `register_source`), `quota` its share of the candidates (default: all n)."""

    kind: str
    name: str | None = None
    quota: int | None = Field(None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)


class ScorerConfig(StrictConfig):
    """The scorer: "none" keeps the retrieval scores, "linear" weights features, or a registered kind."""

    kind: str = "none"
    weights: dict[str, float] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)


class PipelineConfig(StrictConfig):
    """retrieve `n` candidates from `sources` → store features (when `features`) → `scorer` →
    rules (a rule file when `rules` is set, else the request's constraints only) → top `k`."""

    name: str = "default"
    n: int = Field(500, ge=1, le=100_000)
    k: int = Field(20, ge=1, le=10_000)
    sources: list[SourceConfig] = Field(default_factory=lambda: [SourceConfig(kind="model")])
    features: bool = False
    scorer: ScorerConfig = Field(default_factory=ScorerConfig)
    rules: str | None = None
    rules_mode: Literal["file", "watch"] = "watch"
    fallback: Literal["popular", "none"] = "popular"


@dataclass
class Resources:
    """What stages are built from: any may be None when a pipeline does not use it."""

    model: Any = None
    content_index: Any = None
    content_lock: threading.Lock = field(default_factory=threading.Lock)
    store: Any = None
    attributes: AttributeTable | None = None
    popular: Callable[[], tuple[Any, Any]] | None = None
    rules: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


SourceFactory = Callable[[SourceConfig, Resources], CandidateSource]
ScorerFactory = Callable[[ScorerConfig, Resources], Scorer]
_SOURCES: dict[str, SourceFactory] = {}
_SCORERS: dict[str, ScorerFactory] = {}


def register_source(kind: str, factory: SourceFactory) -> None:
    """Make a source kind available to `PipelineConfig.sources` (e.g. "ann", "copurchase")."""
    _SOURCES[kind] = factory


def register_scorer(kind: str, factory: ScorerFactory) -> None:
    """Make a scorer kind available to `PipelineConfig.scorer` (e.g. "lightgbm")."""
    _SCORERS[kind] = factory


def _need(res: Resources, attr: str, kind: str) -> Any:
    value = getattr(res, attr)
    if value is None:
        raise ConfigError(f"source/scorer {kind!r} needs a {attr.replace('_', ' ')}, and none was loaded")
    return value


register_source("model", lambda c, r: ModelSource(_need(r, "model", "model"), name=c.name or "model"))
register_source("content", lambda c, r: ContentSource(_need(r, "content_index", "content"), name=c.name or "content",
                                                       lock=r.content_lock, **c.params))
register_source("popular", lambda c, r: PopularSource(_need(r, "popular", "popular"), name=c.name or "popular"))
register_scorer("linear", lambda c, r: LinearScorer(c.weights))


def _retrieval_source(c: SourceConfig, r: Resources) -> CandidateSource:
    """kind "retrieval": a `tastemaker.retrieval` source object put in ``resources.extra["sources"]``
    under ``params.source`` (default: the config's name), over ``resources.extra["catalog"]``."""
    key = c.params.get("source", c.name)
    sources = r.extra.get("sources", {})
    if key not in sources:
        raise ConfigError(f"retrieval source {key!r} is not loaded; loaded: {sorted(sources) or 'none'}")
    if "catalog" not in r.extra:
        raise ConfigError("retrieval sources need resources.extra['catalog'] (a Catalog) for their item space")
    return RetrievalSource(sources[key], r.extra["catalog"], user_vocab=r.extra.get("user_vocab"),
                           name=c.name or sources[key].name)


register_source("retrieval", _retrieval_source)


def build_pipeline(config: PipelineConfig, resources: Resources) -> Pipeline:
    """Compose a `Pipeline` from its typed config and the loaded resources."""
    sources = []
    quotas = {}
    for sc in config.sources:
        factory = _SOURCES.get(sc.kind)
        if factory is None:
            raise ConfigError(f"unknown candidate source kind {sc.kind!r}; known: {', '.join(sorted(_SOURCES))}")
        src = factory(sc, resources)
        sources.append(src)
        if sc.quota is not None:
            quotas[src.name] = sc.quota
    fallback = None
    if config.fallback == "popular" and resources.popular is not None:
        fallback = PopularSource(resources.popular, name="popular")
    stages: list[Stage] = [Retrieve(sources, n=config.n, quotas=quotas, fallback=fallback)]
    if config.features:
        stages.append(StoreFeatures(_need(resources, "store", "features")))
    if config.scorer.kind != "none":
        factory = _SCORERS.get(config.scorer.kind)
        if factory is None:
            raise ConfigError(f"unknown scorer kind {config.scorer.kind!r}; known: none, {', '.join(sorted(_SCORERS))}")
        stages.append(Score(factory(config.scorer, resources)))
    rules = resources.rules
    if rules is None and config.rules is not None:
        from tastemaker.ranking import RuleSet

        rules = RuleSet.watch(config.rules) if config.rules_mode == "watch" else RuleSet.load(config.rules)
    if rules is not None:
        stages.append(Rules(rules, resources.attributes))
    else:
        stages.append(TopK(resources.attributes))
    return Pipeline(stages, name=config.name, k=config.k)
