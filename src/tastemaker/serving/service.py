"""The service's core, free of HTTP: recommendations, similar items, events, item upserts, health.

`Service` holds one `Pipeline` (pluggable: a model bundle's candidates for the MovieLens-style path,
a retail pipeline of retrieval sources + features + ranker + rules for a store), the item
attributes, the content index, the feature store and the event log, plus `LiveState`: what the
events since start-up (and those replayed from the log) say about users and items. `app.py` maps
HTTP onto it; `errors.py` maps its exceptions onto HTTP status codes.

The model can be replaced while serving (`swap_model`; a `ModelWatcher` does it when the registry
alias the service follows moves): the new pipeline is built and warmed up first, then one attribute
assignment makes it current. Each request reads that attribute once, so a request in flight
finishes on the model it started with, and its response names that model (``model``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tastemaker.errors import ConfigError, DataError, TastemakerError
from tastemaker.pipeline import (
    AttributeTable,
    Constraints,
    Pipeline,
    PipelineConfig,
    PipelineRequest,
    PipelineResult,
    Resources,
    SourceConfig,
    build_pipeline,
)
from tastemaker.serving.events import EventLog, Submitted
from tastemaker.serving.settings import ServeSettings

log = logging.getLogger(__name__)

EVENT_WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}


class NotFound(TastemakerError, LookupError):
    """An id the service does not know (an item for similar-items, an item to read)."""


class Unavailable(TastemakerError):
    """The service cannot do this now (the event log cannot be written); the client may retry."""


class LiveState:
    """Users' recent events and items' event-weighted popularity, updated as events are logged."""

    def __init__(self, history_size: int = 200) -> None:
        self.history_size = int(history_size)
        self._history: dict[str, deque[tuple[str, str]]] = {}
        self._purchased: dict[str, set[str]] = {}
        self._popularity: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._ranked: tuple[float, list[str], list[float]] = (-1.0, [], [])
        self.events = 0

    def apply(self, event: dict[str, Any]) -> None:
        user, item, kind = str(event["user_id"]), str(event["item_id"]), str(event["type"])
        with self._lock:
            hist = self._history.get(user)
            if hist is None:
                hist = self._history[user] = deque(maxlen=self.history_size)
            hist.append((item, kind))
            if kind == "purchase":
                self._purchased.setdefault(user, set()).add(item)
            self._popularity[item] += EVENT_WEIGHTS.get(kind, 1.0)
            self.events += 1

    def knows(self, user: str) -> bool:
        return user in self._history

    def history(self, user: str | None) -> list[str]:
        """The user's recent items, oldest first, each once (its latest occurrence)."""
        if user is None:
            return []
        with self._lock:
            items = [i for i, _ in self._history.get(user, ())]
        return list(dict.fromkeys(reversed(items)))[::-1]

    def purchased(self, user: str | None) -> set[str]:
        if user is None:
            return set()
        with self._lock:
            return set(self._purchased.get(user, ()))

    def popular(self, n: int = 1000, ttl: float = 1.0) -> tuple[list[str], list[float]]:
        """The n items with the most event weight (cached for `ttl` seconds)."""
        at, ids, scores = self._ranked
        now = time.monotonic()
        if now - at < ttl:
            return ids, scores
        with self._lock:
            top = self._popularity.most_common(n)
        ids, scores = [i for i, _ in top], [float(s) for _, s in top]
        self._ranked = (now, ids, scores)
        return ids, scores


@dataclass(frozen=True)
class _Active:
    """What a request runs on, swapped as one object: the pipeline and the id of its model
    (``models:/NAME/VERSION`` for a registry model, the folder for a bundle, None without a model)."""

    pipeline: Pipeline
    model_id: str | None


@dataclass
class EventOutcome:
    event_id: str
    duplicate: bool
    warnings: list[str] = field(default_factory=list)


class Service:
    """See the module docstring. Build with `Service.from_settings(settings)` (loads everything the
    settings name) or pass a prebuilt `pipeline` and `resources`; then `start()`."""

    def __init__(self, settings: ServeSettings, resources: Resources, pipeline: Pipeline | None = None) -> None:
        self.settings = settings
        self.resources = resources
        self.live = LiveState(settings.history_size)
        self.events = EventLog(Path(settings.data_dir) / "events.log", fsync=settings.fsync, on_commit=self._apply)
        self.started = time.time()
        self.replayed = 0
        if resources.popular is None:
            resources.popular = self._popular
        self._config = None if pipeline is not None else default_pipeline_config(settings, resources)
        model_id = resources.extra.get("model_uri") or (settings.model if resources.model is not None else None)
        self._active = _Active(pipeline or build_pipeline(self._config, resources), model_id)
        self._swap_lock = threading.Lock()
        self.watcher = None
        self.experiments = None
        if settings.experiments:  # A/B assignment and the exposure log (tastemaker.serving.experiments)
            from tastemaker.serving.experiments import ExperimentHook

            self.experiments = ExperimentHook.from_settings(settings, resources)

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline requests run on now."""
        return self._active.pipeline

    @pipeline.setter
    def pipeline(self, value: Pipeline) -> None:
        self._active = _Active(value, self._active.model_id)

    @property
    def model_id(self) -> str | None:
        """The model serving now: ``models:/NAME/VERSION``, a bundle folder, or None."""
        return self._active.model_id

    def swap_model(self, model: Any, model_id: str) -> None:
        """Serve `model` from now on. The pipeline is rebuilt around it (from the same config and
        resources) and warmed up with one request before an atomic switch; requests in flight finish
        on the old model. Raises (and keeps the old model) when the new one cannot be built or run."""
        if self._config is None:
            raise ConfigError("this service runs a prebuilt pipeline, so it cannot rebuild it around a new model: "
                              "build the service from settings (a pipeline config) to swap models")
        with self._swap_lock:
            staged = replace(self.resources, model=model)
            pipeline = build_pipeline(self._config, staged)
            users = model.user_vocab.ids
            if len(users):
                pipeline.run(self._request(user_id=str(users[0]), k=1, exclude_seen=False))
            self.resources.model = model  # read by fallbacks and /health only; the pipeline holds its own
            self._active = _Active(pipeline, model_id)
        log.info("now serving model %s", model_id)

    @classmethod
    def from_settings(cls, settings: ServeSettings, *, pipeline: Pipeline | None = None) -> Service:
        """Load the model, catalogue, content index, store and rules the settings name; build the pipeline."""
        return cls(settings, load_resources(settings), pipeline)

    def start(self) -> Service:
        """Replay the event log into the live state and the catalogue, then accept writes; start
        following the registry alias when the model is ``models:/NAME@ALIAS``."""
        records = self.events.open()
        if self.experiments is not None:
            self.experiments.start()
        for rec in records:
            self._apply_one(rec)
        self.replayed = len(records)
        if self.events.truncated_bytes:
            log.warning("the event log had a torn last record (%d bytes), cut off", self.events.truncated_bytes)
        extra = self.resources.extra
        if extra.get("model_alias") and self.settings.model_poll_s > 0 and self.watcher is None:
            from tastemaker.serving.reload import ModelWatcher

            self.watcher = ModelWatcher(self, extra["registry"], extra["model_ref"], version=extra.get("model_version"),
                                        interval=self.settings.model_poll_s).start()
        return self

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self.events.close()
        if self.experiments is not None:
            self.experiments.close()
        rules = self.resources.rules
        if rules is not None and hasattr(rules, "stop"):
            rules.stop()
        if self.resources.store is not None:
            self.resources.store.close()

    # --- live state -----------------------------------------------------------------------------
    def _popular(self) -> tuple[list[str], list[float]]:
        ids, scores = self.live.popular()
        if ids:
            return ids, scores
        model = self.resources.model
        if model is not None:
            pop = model.popularity_scores()
            top = np.argsort(-pop, kind="stable")[:1000]
            return model.item_vocab.lookup(top).astype(str).tolist(), pop[top].tolist()
        attrs = self.resources.attributes
        if attrs is not None and len(attrs):
            ids = attrs.some_ids(1000)
            return ids, [0.0] * len(ids)
        return [], []

    def _apply(self, records: list[dict[str, Any]]) -> None:
        for rec in records:
            self._apply_one(rec)

    def _apply_one(self, rec: dict[str, Any]) -> None:
        kind = rec.get("kind")
        if kind == "event":
            self.live.apply(rec["event"])
        elif kind == "item":
            self._apply_item(rec["item_id"], rec["item"])
        else:
            log.warning("event log: unknown record kind %r ignored", kind)

    # --- reads ----------------------------------------------------------------------------------
    def _request(self, *, user_id: str | None, k: int | None, history: Sequence[str] = (), trace: bool = False,
                 constraints: Constraints | None = None, exclude_seen: bool | None = None, item_id: str | None = None,
                 region: str | None = None, request_id: str | None = None) -> PipelineRequest:
        k = self.settings.default_k if k is None else int(k)
        if not 1 <= k <= self.settings.max_k:
            raise DataError(f"k must be between 1 and {self.settings.max_k}, got {k}",
                            hint="ask for fewer items, or raise max_k in the serve settings")
        live_hist = self.live.history(user_id)
        known = set(live_hist)
        hist = [*live_hist, *[str(h) for h in history if str(h) not in known]]
        excl_seen = self.settings.exclude_seen if exclude_seen is None else exclude_seen
        return PipelineRequest(user_id=user_id, k=k, history=hist, item_id=item_id,
                               seen=frozenset(live_hist) if excl_seen else frozenset(),
                               purchased=frozenset(self.live.purchased(user_id)),
                               constraints=constraints or Constraints(), region=region,
                               request_id=request_id or uuid.uuid4().hex, trace=trace, exclude_seen=excl_seen)

    def recommend(self, *, user_id: str | None, k: int | None = None, history: Sequence[str] = (),
                  trace: bool = False, constraints: Constraints | None = None, exclude_seen: bool | None = None,
                  region: str | None = None, request_id: str | None = None,
                  session_id: str | None = None) -> tuple[PipelineRequest, PipelineResult]:
        """Recommendations for a user (or an anonymous context when `user_id` is None).

        With experiments configured, the user (else the anonymous `session_id`) is assigned to its
        variants, the variant's pipeline (if it names one) answers, and one exposure record per
        experiment is queued on the exposure log: ``req.cache["assignments"]`` lists the
        assignments, ``req.cache["exposures"]`` the log submissions (await them before answering).
        """
        req = self._request(user_id=user_id, k=k, history=history, trace=trace, constraints=constraints,
                            exclude_seen=exclude_seen, region=region, request_id=request_id)
        if user_id is None and not req.history:
            req.use_fallback("anonymous")
        active = self._active
        req.cache["model"] = active.model_id
        if self.experiments is None:
            return req, active.pipeline.run(req)
        pipeline, arms = self.experiments.choose(user_id, session_id)
        result = (pipeline or active.pipeline).run(req)
        req.cache["assignments"] = [a.to_dict() for a in arms]
        req.cache["exposures"] = self.experiments.expose(
            req, result, arms, session_id=session_id, returning=self.live.knows(user_id) if user_id else None)
        return req, result

    def knows_item(self, item_id: str) -> bool:
        res = self.resources
        if res.attributes is not None and item_id in res.attributes:
            return True
        if res.content_index is not None:
            with res.content_lock:
                if item_id in res.content_index:
                    return True
        if res.model is not None:
            return res.model.item_vocab.index(item_id) >= 0
        return False

    def similar(self, item_id: str, *, k: int | None = None, trace: bool = False,
                constraints: Constraints | None = None) -> tuple[PipelineRequest, PipelineResult]:
        """Items similar to `item_id` (a `NotFound` when no source knows it)."""
        if not self.knows_item(item_id):
            raise NotFound(f"item {item_id!r} is not in the catalogue, the content index or the model")
        req = self._request(user_id=None, k=k, trace=trace, constraints=constraints, exclude_seen=False,
                            item_id=item_id)
        active = self._active
        req.cache["model"] = active.model_id
        return req, active.pipeline.run(req)

    def item(self, item_id: str) -> dict[str, Any]:
        attrs = self.resources.attributes.get(item_id) if self.resources.attributes is not None else None
        if attrs is None:
            if self.knows_item(item_id):
                return {}
            raise NotFound(f"item {item_id!r} is not in the catalogue")
        return attrs

    # --- writes ---------------------------------------------------------------------------------
    def submit_events(self, events: Sequence[dict[str, Any]]) -> list[tuple[Submitted, list[str]]]:
        """Queue events (dicts of the `Event` schema) for the log; await each `future` before acking."""
        records, warnings = [], []
        for ev in events:
            w = []
            if not self.knows_item(str(ev["item_id"])):
                w.append(f"item {ev['item_id']!r} is not in the catalogue yet; the event is stored all the same")
            records.append({"kind": "event", "id": str(ev["event_id"]), "event": ev})
            warnings.append(w)
        subs = self.events.submit(records)
        return list(zip(subs, warnings))

    def submit_item(self, item_id: str, item: dict[str, Any]) -> tuple[Submitted, bool, list[str]]:
        """Validate an upsert, queue it for the log; returns (submitted, new, warnings). It is
        applied (attributes, content vector, store vector) once durable."""
        warnings = self._check_item(item_id, item)
        new = not self.knows_item(item_id)
        rec = {"kind": "item", "item_id": item_id, "item": item, "at": datetime.now(UTC).isoformat()}
        return self.events.submit([rec])[0], new, warnings

    def _item_text(self, item: dict[str, Any]) -> str:
        return " ".join(str(item[f]) for f in self.settings.text_fields if item.get(f))

    def _check_item(self, item_id: str, item: dict[str, Any]) -> list[str]:
        warnings = []
        index = self.resources.content_index
        vec = item.get("vector")
        if vec is not None and index is not None and index.dim is not None and len(vec) != index.dim:
            raise DataError(f"vector has {len(vec)} dimensions but the content index holds {index.dim}",
                            column="vector", hint="send a vector from the same embedding model, or text instead")
        text = self._item_text(item)
        if vec is None:
            if not text:
                warnings.append("no text and no vector: the item can be filtered and ranked by attributes but "
                                "content similarity cannot find it")
            elif index is None or index.encoder is None:
                warnings.append("this service has no text encoder: send a vector for content similarity")
            else:
                try:
                    enc = index.encoder.encode([text])
                except TastemakerError as exc:
                    raise DataError(f"the item's text cannot be encoded: {exc}") from None
                nnz = enc.nnz if hasattr(enc, "nnz") else int(np.count_nonzero(enc))
                if nnz == 0:
                    warnings.append("none of the item's words is known to the text encoder: content similarity "
                                    "cannot find it until the index is rebuilt")
        return warnings

    def _apply_item(self, item_id: str, item: dict[str, Any]) -> None:
        res = self.resources
        attrs = {k: item.get(k) for k in AttributeTable.COLUMNS if item.get(k) is not None}
        if res.attributes is None:
            res.attributes = AttributeTable()
        res.attributes.upsert(item_id, **attrs)
        index = res.content_index
        vec = item.get("vector")
        text = self._item_text(item)
        if index is not None:
            with res.content_lock:
                if vec is not None and (index.dim is None or len(vec) == index.dim):
                    index.add([item_id], np.asarray([vec], dtype=np.float32))
                elif vec is None and text and index.encoder is not None:
                    index.add([item_id], texts=[text])
        store = res.store
        if vec is not None and store is not None:
            try:
                schema = store.schema("item_vectors")
                if schema is not None and schema.width == len(vec):
                    store.put_rows("item_vectors", [item_id], np.asarray([vec], dtype=np.float32))
            except TastemakerError as exc:
                log.warning("item %s: vector not written to the store (%s)", item_id, exc)

    # --- health -----------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        res = self.resources
        store_info: dict[str, Any] | None = None
        status = "ok"
        if res.store is not None:
            store_info = {"backend": res.store.backend, "namespace": res.store.namespace, "reachable": True,
                          "degraded_reason": None}
            try:
                res.store.ping()
                store_info["current_version"] = res.store.current_version()
            except TastemakerError as exc:
                store_info.update(reachable=False, degraded_reason=f"{exc}")
                status = "degraded"
            reason = getattr(res.store, "degraded", None)
            if reason:
                store_info["degraded_reason"] = reason
                status = "degraded"
        rules = res.rules
        rules_info = None
        if rules is not None:
            rules_info = {"version": getattr(rules, "version", None), "source": str(getattr(rules, "path", "")) or None}
            err = getattr(rules, "last_error", None)
            if err is not None:
                rules_info["last_reload_error"] = str(err)
        model = res.model
        return {
            "status": status,
            "pipeline": repr(self.pipeline),
            "model": None if model is None else {"name": model.name, "users": model.n_users, "items": model.n_items,
                                                 "fingerprint": model.data_info.get("fingerprint"),
                                                 "uri": self.model_id, "follows": res.extra.get("model_alias"),
                                                 "watcher": None if self.watcher is None else self.watcher.status()},
            "items": None if res.attributes is None else len(res.attributes),
            "content_index": None if res.content_index is None else len(res.content_index),
            "store": store_info,
            "rules": rules_info,
            "events": {"logged": self.events.records, "replayed_at_start": self.replayed, "live": self.live.events,
                       "log": str(self.events.path)},
            "experiments": None if self.experiments is None else self.experiments.status(),
            "uptime_s": round(time.time() - self.started, 1),
        }


# ================================================================================================
# loading what the settings name
# ================================================================================================


def load_resources(settings: ServeSettings) -> Resources:
    """Load the model bundle, catalogue, content index, store and rules named by `settings`."""
    res = Resources()
    if settings.model:
        from tastemaker.models.base import Recommender
        from tastemaker.registry import ModelRef, ModelRegistry, is_model_uri

        if is_model_uri(settings.model):
            ref = ModelRef.parse(settings.model)
            registry = ModelRegistry(settings.registry_uri, cache_dir=Path(settings.data_dir) / "models")
            mv = registry.resolve(ref)
            res.model = Recommender.load(registry.fetch(mv))
            res.extra.update(model_uri=mv.uri, model_ref=ref.uri, model_version=mv.version, registry=registry,
                             model_alias=None if ref.pinned else ref.uri)
        else:
            res.model = Recommender.load(settings.model)
            res.extra["model_uri"] = str(settings.model)
    texts: list[str] | None = None
    ids: list[str] | None = None
    if settings.catalog:
        res.attributes, ids, texts = load_catalog(settings.catalog, settings.text_fields)
    if settings.content_index:
        from tastemaker.content import ContentIndex

        res.content_index = ContentIndex.load(settings.content_index)
    elif texts is not None and any(texts):
        from tastemaker.content import ContentIndex, TfidfEncoder

        encoder = TfidfEncoder(stop_words="english", sublinear_tf=True).fit(texts)
        res.content_index = ContentIndex(encoder)
        res.content_index.add(ids, texts=texts)
    res.store = open_serving_store(settings)
    if settings.rules:
        from tastemaker.ranking import RuleSet

        res.rules = RuleSet.watch(settings.rules)
    return res


def open_serving_store(settings: ServeSettings):
    """The settings' store; a Redis store is wrapped with an embedded fallback mirroring its
    current version (when `store_fallback`), so reads survive an outage."""
    from tastemaker.store import MemoryStore, ResilientStore, StoreUnavailable, open_store
    from tastemaker.store.fallback import mirror

    url = settings.store_url()
    if url in ("memory", "memory://"):
        return MemoryStore(namespace=settings.store_namespace)
    kwargs = {"socket_timeout": settings.store_timeout_s, "connect_timeout": settings.store_timeout_s} \
        if url.startswith(("redis", "unix")) else {}
    primary = open_store(url, namespace=settings.store_namespace, **kwargs)
    if not settings.store_fallback:
        return primary
    fallback = MemoryStore(namespace=settings.store_namespace)
    try:
        if primary.current_version() is not None:
            rows = mirror(primary, fallback)
            log.info("mirrored %d rows of %s into the embedded fallback", rows, url)
    except StoreUnavailable as exc:
        log.warning("store %s unreachable at start (%s): serving from the embedded fallback", url, exc)
    return ResilientStore(primary, fallback, retry_interval=settings.store_retry_s)


def _launch_dates(column, path: Path) -> np.ndarray:
    """Launch dates as datetime64[D]; empty cells are unknown (NaT), anything else must parse."""
    import pandas as pd

    raw = column.astype("string").str.strip()
    parsed = pd.to_datetime(raw, errors="coerce")
    bad = parsed.isna() & raw.notna() & (raw != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"launch date {raw.iloc[row]!r} is not a date", path=path, line=row + 2, column="launch",
                        hint="write dates as YYYY-MM-DD, or leave the cell empty when unknown")
    return parsed.to_numpy().astype("datetime64[D]")


def load_catalog(path: str | Path, text_fields: Sequence[str]) -> tuple[AttributeTable, list[str], list[str]]:
    """Item attributes and texts from a CSV/TSV/Parquet file with an ``item_id`` column."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"catalog file {path} does not exist")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".tab") else ",", dtype={"item_id": str})
    if "item_id" not in frame.columns:
        raise DataError("the catalog has no 'item_id' column", path=path,
                        hint=f"columns found: {', '.join(map(str, frame.columns))}")
    ids = frame["item_id"].astype(str).tolist()
    cols = {c: frame[c].to_numpy() for c in AttributeTable.COLUMNS if c in frame.columns}
    if "launch" in cols:
        cols["launch"] = _launch_dates(frame["launch"], path)
    for c in ("tags", "regions"):
        if c in cols:
            cols[c] = ["" if not isinstance(v, str) else v for v in cols[c]]
    for c in ("category", "brand", "campaign"):
        if c in cols:
            cols[c] = np.asarray(["" if not isinstance(v, str) else v for v in cols[c]], dtype=object)
    for c in AttributeTable.FLAGS:
        if c in cols:
            cols[c] = np.asarray(pd.Series(cols[c]).fillna(False).astype(bool))
    table = AttributeTable.from_columns(ids, **cols)
    present = [f for f in text_fields if f in frame.columns]
    texts = (frame[present].fillna("").astype(str).agg(" ".join, axis=1).str.strip().tolist() if present
             else [""] * len(ids))
    return table, ids, texts


def default_pipeline_config(settings: ServeSettings, res: Resources) -> PipelineConfig:
    """The settings' pipeline, or: model candidates (if a model), content candidates (if a content
    index), popular candidates otherwise; the rules when a rule file is set."""
    if settings.pipeline is not None:
        return settings.pipeline
    sources = []
    if res.model is not None:
        sources.append(SourceConfig(kind="model"))
    if res.content_index is not None:
        sources.append(SourceConfig(kind="content"))
    if not sources:
        sources.append(SourceConfig(kind="popular"))
    return PipelineConfig(name="model" if res.model is not None else "catalog", sources=sources,
                          k=settings.default_k)
