"""What the dashboard knows and computes, free of HTTP: the loaded models, item titles, rule sets,
user and item look-ups, recommendations side by side with reasons and rule traces.

Recommendations in the user explorer run through the same pipeline code as the service
(`tastemaker.pipeline.build_pipeline`: the model's candidates → the business rules → top k), one
pipeline per model, with the rule set and the diversity knob the page chose: the knob sets the
rule file's ``[diversity]`` to MMR with that λ (1 = relevance order, 0 = most diverse). MMR
compares items by their catalogue tags (multi-hot vectors, cosine) when the catalogue has tags,
else by their category paths. Each item carries the model's reason (`Recommender.explain`) and
the rules' trace of what moved it.
"""

from __future__ import annotations

import bisect
import importlib.util
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tastemaker.errors import ConfigError, TastemakerError
from tastemaker.pipeline import Pipeline, PipelineConfig, PipelineRequest, Resources, SourceConfig, build_pipeline

log = logging.getLogger(__name__)

NONE_RULES = "none"
SERVICE_RULES = "service"
RULE_SUFFIXES = (".toml", ".json")
TITLE_SCAN_LIMIT = 500_000
_FALLBACK_REASONS = ("unknown_user", "no_history", "anonymous")


@dataclass
class LoadedModel:
    """A model the dashboard shows: the served one (`serving`) or one of `ServeSettings.models`."""

    name: str
    model: Any
    source: str
    serving: bool = False

    def ext(self, value: str) -> Any:
        """An id as the model's vocabulary keys it (integers for MovieLens)."""
        if getattr(self.model.user_vocab, "is_integer", False) or getattr(self.model.item_vocab, "is_integer", False):
            try:
                return int(value)
            except (TypeError, ValueError):
                return value
        return value


class _TagVectors:
    """The attributes of candidates for the rules stage, plus ``vectors``: the multi-hot of each
    candidate's tags, so MMR can compare items by tags (cosine)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self._codes: dict[str, int] = {}
        self._parsed: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def attributes(self, ids: list[str]) -> tuple[dict[str, Any], np.ndarray]:
        cols, known = self.table.attributes(ids)
        tags = cols.get("tags")
        if tags is None:
            return cols, known
        with self._lock:
            rows = []
            for t in np.asarray(tags).tolist():
                got = self._parsed.get(t)
                if got is None:
                    got = [self._codes.setdefault(x.strip(), len(self._codes)) for x in str(t).split(",") if x.strip()]
                    self._parsed[t] = got
                rows.append(got)
            width = max(len(self._codes), 1)
        vec = np.zeros((len(rows), width), dtype=np.float64)
        for i, r in enumerate(rows):
            vec[i, r] = 1.0
        return {**cols, "vectors": vec}, known


class _InputRanks:
    """A pass-through stage that notes each candidate's rank in the model's order (1-based) in
    ``request.cache["input_rank"]``, so the page can show how far the rules moved an item."""

    name = "input_ranks"

    def run(self, request: PipelineRequest, candidates: Any) -> Any:
        order = np.argsort(-candidates.scores, kind="stable")
        request.cache["input_rank"] = {str(candidates.ids[j]): r for r, j in enumerate(order.tolist(), 1)}
        return candidates


class DashboardState:
    """See the module docstring. `service` is the running `Service`, `settings` its `ServeSettings`."""

    def __init__(self, service: Any, metrics: Any, settings: Any) -> None:
        from tastemaker.serving.dashboard.ab import ExperimentLibrary
        from tastemaker.serving.dashboard.bench import BenchLibrary
        from tastemaker.serving.dashboard.live import LiveSampler

        self.service = service
        self.metrics = metrics
        self.settings = settings
        self.dash = settings.dashboard
        self.live = LiveSampler(metrics, started=service.started)
        self.bench = BenchLibrary(self.dash.bench_dir)
        self.experiments = ExperimentLibrary(self.dash.experiments_dir, data_dir=settings.data_dir,
                                             config=settings.experiments, catalog=settings.catalog)
        self._lock = threading.RLock()
        self._extra: list[LoadedModel] | None = None
        self.model_errors: dict[str, str] = {}
        self._titles: dict[str, str] | None = None
        self._model_titles: dict[int, dict[str, str]] = {}
        self._rule_files: dict[Path, tuple[tuple[int, int], Any, str | None]] = {}
        self._rulesets: OrderedDict[tuple, Any] = OrderedDict()
        self._pipelines: OrderedDict[tuple, Any] = OrderedDict()
        self._ids: dict[tuple, tuple[list[str], list[str]]] = {}
        self._csc: dict[int, Any] = {}
        self._registry: tuple[float, dict[str, Any]] | None = None
        self._tag_vectors = None
        self._attr_columns: set[str] | None = None
        self._warming: threading.Thread | None = None

    def warm(self) -> None:
        """Load in the background what a first visit of each page would wait for (extra models,
        titles, id lists, bench documents, the registry, experiment analyses); once per process."""
        with self._lock:
            if self._warming is not None:
                return
            self._warming = threading.Thread(target=self._warm, name="dashboard-warm", daemon=True)
        self._warming.start()

    def _warm(self) -> None:
        steps = [self.models, self._catalog_titles, lambda: self._sorted_ids("users"),
                 lambda: self._sorted_ids("items"), self.bench.documents, self.registry]
        steps += [lambda name=s.name: self.experiments.analysis(name) for s in self.experiments.sources()]
        for step in steps:
            try:
                step()
            except Exception as exc:  # warming is an optimisation: the page reports the error itself
                log.debug("dashboard warm-up step failed: %s", exc)

    # --- models ------------------------------------------------------------------------------------
    def models(self) -> list[LoadedModel]:
        """The served model first (when there is one), then `ServeSettings.models` in their order."""
        out = []
        served = self.service.resources.model
        extra = self._load_extra()
        if served is not None:
            name = served.name or "served"
            if any(m.name == name for m in extra):
                name = "served"
            out.append(LoadedModel(name, served, str(self.service.model_id or self.settings.model), serving=True))
        return out + extra

    def model(self, name: str) -> LoadedModel | None:
        return next((m for m in self.models() if m.name == name), None)

    def _load_extra(self) -> list[LoadedModel]:
        with self._lock:
            if self._extra is not None:
                return self._extra
            from tastemaker.models.base import Recommender

            out = []
            for name, where in self.settings.models.items():
                try:
                    if importlib.util.find_spec("tastemaker.registry") is not None:
                        from tastemaker.registry import resolve_model

                        folder, pinned, _ = resolve_model(where, registry_uri=self.settings.registry_uri,
                                                          cache_dir=Path(self.settings.data_dir) / "models")
                    else:
                        folder, pinned = Path(where), str(where)
                    out.append(LoadedModel(name, Recommender.load(folder), pinned))
                except (TastemakerError, OSError) as exc:
                    self.model_errors[name] = f"{where}: {exc}"
                    log.warning("dashboard: model %s (%s) not loaded: %s", name, where, exc)
            self._extra = out
            return out

    # --- titles ------------------------------------------------------------------------------------
    def _catalog_titles(self) -> dict[str, str]:
        with self._lock:
            if self._titles is not None:
                return self._titles
            titles: dict[str, str] = {}
            path = self.settings.catalog
            if path and Path(path).is_file():
                import pandas as pd

                try:
                    if str(path).endswith(".parquet"):
                        frame = pd.read_parquet(path, columns=["item_id", "title"])
                    else:
                        head = pd.read_csv(path, nrows=0, sep="\t" if str(path).endswith((".tsv", ".tab")) else ",")
                        frame = pd.read_csv(path, usecols=[c for c in ("item_id", "title") if c in head.columns],
                                            dtype={"item_id": str}, sep="\t" if str(path).endswith((".tsv", ".tab"))
                                            else ",")
                    if "title" in frame.columns:
                        titles = dict(zip(frame["item_id"].astype(str), frame["title"].fillna("").astype(str)))
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("dashboard: titles not read from %s: %s", path, exc)
            self._titles = titles
            return titles

    def _titles_of(self, lm: LoadedModel) -> dict[str, str]:
        key = id(lm.model)
        got = self._model_titles.get(key)
        if got is None:
            titles = getattr(lm.model, "item_titles", None)
            got = {} if titles is None else {str(i): str(t) for i, t in zip(lm.model.item_vocab.ids.tolist(),
                                                                            np.asarray(titles).tolist()) if t}
            self._model_titles[key] = got
        return got

    def title(self, item_id: Any) -> str:
        """The item's display title: the catalogue's ``title``, else the model's, else its id."""
        key = str(item_id)
        t = self._catalog_titles().get(key)
        if t:
            return t
        for lm in self.models():
            t = self._titles_of(lm).get(key)
            if t:
                return t
        return key

    # --- search ------------------------------------------------------------------------------------
    def _sorted_ids(self, kind: str) -> tuple[list[str], list[str]]:
        """(ids sorted as text, the same set ordered for display) of users or items of every model."""
        models = self.models()
        key = (kind, *(id(m.model) for m in models))
        with self._lock:
            got = self._ids.get(key)
            if got is not None:
                return got
            ids: set[str] = set()
            for lm in models:
                vocab = lm.model.user_vocab if kind == "users" else lm.model.item_vocab
                ids.update(np.asarray(vocab.ids).astype(str).tolist())
            if kind == "items":
                ids.update(self._catalog_titles())
            lex = sorted(ids)
            display = sorted(ids, key=lambda s: (len(s), s))
            self._ids = {k: v for k, v in self._ids.items() if k[0] != kind}
            self._ids[key] = (lex, display)
            return lex, display

    @staticmethod
    def _prefix(lex: list[str], display: list[str], q: str, limit: int) -> list[str]:
        if not q:
            return display[:limit]
        lo = bisect.bisect_left(lex, q)
        hi = bisect.bisect_left(lex, q + "\U0010ffff")
        hits = lex[lo:hi]
        if len(hits) <= 5000:
            hits = sorted(hits, key=lambda s: (len(s), s))
        return hits[:limit]

    def search_users(self, q: str = "", limit: int = 20) -> list[str]:
        """User ids starting with `q` (shortest first), from every model and the live events."""
        q = q.strip()
        lex, display = self._sorted_ids("users")
        out = self._prefix(lex, display, q, limit)
        if q and q not in out and self.service.live.knows(q):
            out.insert(0, q)
        return out[:limit]

    def search_items(self, q: str = "", limit: int = 20) -> list[dict[str, str]]:
        """Items whose id starts with `q`, then items whose title contains it (case-insensitive)."""
        q = q.strip()
        lex, display = self._sorted_ids("items")
        ids = self._prefix(lex, display, q, limit)
        if q and len(ids) < limit:
            needle = q.casefold()
            seen = set(ids)
            titles = {**{k: v for lm in self.models() for k, v in self._titles_of(lm).items()},
                      **self._catalog_titles()}
            for n, (i, t) in enumerate(titles.items()):
                if n >= TITLE_SCAN_LIMIT or len(ids) >= limit:
                    break
                if i not in seen and needle in t.casefold():
                    ids.append(i)
                    seen.add(i)
        return [{"item_id": i, "title": self.title(i)} for i in ids[:limit]]

    # --- rules -------------------------------------------------------------------------------------
    def rule_sets(self) -> list[dict[str, Any]]:
        """The rule sets the user explorer offers: none, the service's, and the rules folder's files."""
        out = [{"key": NONE_RULES, "label": "No rules (model order, cut at k)", "source": None, "error": None,
                "diversity": None}]
        holder = self.service.resources.rules
        if holder is not None:
            current = getattr(holder, "current", holder)
            err = getattr(holder, "last_error", None)
            out.append({"key": SERVICE_RULES, "label": f"Service rules ({Path(str(getattr(holder, 'path', ''))).name})",
                        "source": str(getattr(holder, "path", "")) or None,
                        "error": None if err is None else str(err), "diversity": _diversity_of(current)})
        for path in self._rule_paths():
            rs, err = self._rule_file(path)
            out.append({"key": path.name, "label": path.name, "source": str(path), "error": err,
                        "diversity": None if rs is None else _diversity_of(rs)})
        return out

    def _rule_paths(self) -> list[Path]:
        folder = self.dash.rules_dir
        if not folder or not Path(folder).is_dir():
            return []
        return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix in RULE_SUFFIXES)

    def _rule_file(self, path: Path) -> tuple[Any, str | None]:
        from tastemaker.ranking import RuleSet

        st = path.stat()
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._rule_files.get(path)
            if hit is not None and hit[0] == key:
                return hit[1], hit[2]
        try:
            rs, err = RuleSet.load(path), None
        except ConfigError as exc:
            rs, err = None, str(exc)
        with self._lock:
            self._rule_files[path] = (key, rs, err)
        return rs, err

    def _base_rules(self, key: str) -> tuple[Any, str]:
        """(a RuleSet, its label) for a rule-set key; ConfigError when unknown or invalid."""
        from tastemaker.ranking import RuleFile, RuleSet

        if key == NONE_RULES:
            return RuleSet(RuleFile(), source="<none>"), "No rules"
        if key == SERVICE_RULES:
            holder = self.service.resources.rules
            if holder is None:
                raise ConfigError("the service runs without a rule file (set `rules` in the serve settings)")
            return getattr(holder, "current", holder), f"Service rules ({Path(str(holder.path)).name})"
        for path in self._rule_paths():
            if path.name == key:
                rs, err = self._rule_file(path)
                if rs is None:
                    raise ConfigError(err or f"rule file {path} is invalid")
                return rs, path.name
        raise ConfigError(f"no rule set {key!r}; known: {', '.join(r['key'] for r in self.rule_sets())}")

    def _columns(self) -> set[str]:
        """The attribute columns the service's items have (tags, category, price, ...)."""
        if self._attr_columns is None:
            attrs = self.service.resources.attributes
            cols: set[str] = set()
            if attrs is not None and len(attrs):
                some = attrs.some_ids(1)
                if some:
                    cols = set(attrs.attributes(some)[0])
            self._attr_columns = cols
        return self._attr_columns

    def similarity(self) -> str | None:
        """What MMR compares items by here: "vectors" (catalogue tags), "category", or None."""
        cols = self._columns()
        return "vectors" if "tags" in cols else "category" if "category" in cols else None

    def ruleset(self, key: str, lam: float | None) -> tuple[Any, dict[str, Any]]:
        """The rule set `key` with the diversity knob applied (λ None: the file's own setting)."""
        from tastemaker.ranking import RuleSet
        from tastemaker.ranking.rules import DiversitySpec

        base, label = self._base_rules(key)
        sim = self.similarity()
        info = {"key": key, "label": label, "version": base.version, "lambda": lam, "similarity": sim,
                "diversity": _diversity_of(base), "note": None}
        if lam is None:
            return base, info
        if sim is None:
            info["note"] = ("the diversity knob has no effect here: MMR needs item tags or categories in the catalogue "
                            "(serve settings `catalog` with a tags or category column)")
            return base, info
        ck = (key, base.version, round(float(lam), 4), sim)
        with self._lock:
            rs = self._rulesets.get(ck)
            if rs is None:
                spec = base.spec.model_copy(update={"diversity": DiversitySpec(method="mmr", lam=float(lam),
                                                                              similarity=sim)})
                rs = RuleSet(spec, source=f"{base.source} + MMR λ={lam:g}")
                self._rulesets[ck] = rs
                while len(self._rulesets) > 64:
                    self._rulesets.popitem(last=False)
            else:
                self._rulesets.move_to_end(ck)
        info["version"] = rs.version
        return rs, info

    def _attributes_for(self, ruleset: Any) -> Any:
        attrs = self.service.resources.attributes
        d = ruleset.spec.diversity
        if attrs is not None and d.method == "mmr" and d.similarity == "vectors":
            if self._tag_vectors is None or self._tag_vectors.table is not attrs:
                self._tag_vectors = _TagVectors(attrs)
            return self._tag_vectors
        return attrs

    def _pipeline(self, lm: LoadedModel, ruleset: Any) -> Any:
        key = (lm.name, id(lm.model), ruleset.version, id(ruleset), self.dash.pool)
        with self._lock:
            pipe = self._pipelines.get(key)
            if pipe is not None:
                self._pipelines.move_to_end(key)
                return pipe
        res = Resources(model=lm.model, attributes=self._attributes_for(ruleset), rules=ruleset,
                        popular=self.service.resources.popular)
        config = PipelineConfig(name=f"dashboard:{lm.name}", n=self.dash.pool, sources=[SourceConfig(kind="model")])
        built = build_pipeline(config, res)
        pipe = Pipeline([built.stages[0], _InputRanks(), *built.stages[1:]], name=built.name, k=built.k)
        with self._lock:
            self._pipelines[key] = pipe
            while len(self._pipelines) > 64:
                self._pipelines.popitem(last=False)
        return pipe

    # --- users -------------------------------------------------------------------------------------
    def user(self, user_id: str, *, limit: int = 500) -> dict[str, Any]:
        """Who the user is to each model, and their history (titles, values) from the first model
        that knows them, plus their events since the service started."""
        models = self.models()
        known_by = [m.name for m in models if m.model.user_vocab.index(m.ext(user_id)) >= 0]
        rows: list[dict[str, Any]] = []
        source = None
        explicit = False
        n = 0
        mean = None
        for lm in models:
            if lm.name not in known_by:
                continue
            items, values = lm.model.history(lm.ext(user_id))
            source = lm.name
            explicit = bool(lm.model.explicit)
            n = len(items)
            values = np.asarray(values, dtype=np.float64)
            mean = float(values.mean()) if n else None
            ids = np.asarray(items).astype(str).tolist()
            order = sorted(range(n), key=lambda j: (-values[j], self.title(ids[j])))
            rows = [{"item_id": ids[j], "title": self.title(ids[j]), "value": float(values[j])} for j in order[:limit]]
            break
        live = self.service.live.history(user_id)[::-1][:50]
        return {"user_id": user_id, "known": bool(known_by) or self.service.live.knows(user_id), "known_by": known_by,
                "history_from": source, "explicit": explicit, "interactions": n, "mean_value": mean,
                "history": rows, "live_events": [{"item_id": i, "title": self.title(i)} for i in live]}

    def recommendations(self, user_id: str, *, k: int, lam: float | None, rules: str,
                        models: list[str] | None = None) -> dict[str, Any]:
        """Each chosen model's top k for the user through the rules (see the module docstring)."""
        ruleset, info = self.ruleset(rules, lam)
        chosen = [m for m in self.models() if models is None or m.name in models]
        live_hist = self.service.live.history(user_id)
        exclude_seen = self.settings.exclude_seen
        out = []
        for lm in chosen:
            t0 = time.perf_counter()
            pipe = self._pipeline(lm, ruleset)
            req = PipelineRequest(user_id=user_id, k=k, history=live_hist,
                                  seen=frozenset(live_hist) if exclude_seen else frozenset(),
                                  purchased=frozenset(self.service.live.purchased(user_id)),
                                  request_id=f"dashboard:{user_id}", trace=True, exclude_seen=exclude_seen)
            result = pipe.run(req)
            reasons = self._reasons(lm, user_id, result)
            ranks = req.cache.get("input_rank", {})
            items = []
            for it in result.items:
                ex = it.extras
                trace = [dict(e, text=_trace_text(e)) for e in ex.get("trace", [])]
                items.append({"item_id": it.item_id, "title": self.title(it.item_id), "position": it.position,
                              "score": it.score, "relevance": ex.get("relevance"), "sources": it.sources,
                              "input_position": ranks.get(it.item_id), "reason": reasons.get(it.item_id),
                              "trace": trace, "flags": [f for f in ("sponsored", "pinned", "explored") if ex.get(f)],
                              "also_in": []})
            out.append({"model": lm.name, "model_class": type(lm.model).__name__, "serving": lm.serving,
                        "known_user": lm.model.user_vocab.index(lm.ext(user_id)) >= 0, "fallback": result.fallback,
                        "notes": result.notes, "pipeline": repr(pipe), "rules_version": result.rules_version,
                        "stages": [s.to_dict() for s in result.stages],
                        "ms": (time.perf_counter() - t0) * 1000.0, "items": items})
        lists = {m["model"]: {it["item_id"] for it in m["items"]} for m in out}
        for m in out:
            for it in m["items"]:
                it["also_in"] = [o for o, ids in lists.items() if o != m["model"] and it["item_id"] in ids]
            m["overlap"] = {o: len(lists[m["model"]] & ids) for o, ids in lists.items() if o != m["model"]}
        return {"user_id": user_id, "k": k, "rules": info, "models": out,
                "missing_models": [] if models is None else [n for n in models if n not in lists]}

    def _reasons(self, lm: LoadedModel, user_id: str, result: Any) -> dict[str, str]:
        from tastemaker.models.base import Reason

        explicit = bool(lm.model.explicit)
        fallback = result.fallback
        out: dict[str, str] = {}
        if fallback is not None:
            kind = fallback if fallback in _FALLBACK_REASONS else None
            text = Reason(kind).text(self.title) if kind else f"fallback: {fallback}"
            return {it.item_id: text for it in result.items}
        mine = [it.item_id for it in result.items if "model" in it.sources]
        if mine:
            reasons = lm.model.explain(lm.ext(user_id), [lm.ext(i) for i in mine])
            out.update({i: r.text(self.title, explicit=explicit) for i, r in zip(mine, reasons)})
        for it in result.items:
            if it.item_id not in out:
                out[it.item_id] = Reason("popular").text() if "popular" in it.sources else \
                    f"from {'+'.join(it.sources)}"
        return out

    # --- items -------------------------------------------------------------------------------------
    def _column_matrix(self, lm: LoadedModel) -> Any:
        key = id(lm.model)
        got = self._csc.get(key)
        if got is None:
            m = lm.model.train_matrix
            csc = m.tocsc()
            binary = m.tocsr(copy=True).astype(np.float32)
            binary.data[:] = 1.0
            got = (csc, binary, np.diff(csc.indptr).astype(np.float64))
            with self._lock:
                self._csc[key] = got
        return got

    def item(self, item_id: str, *, k: int = 10, consumers: int = 50) -> dict[str, Any] | None:
        """The item's attributes, who consumed it (per the training data), the items most often
        consumed with it, and what the service's similar-items endpoint answers. None when unknown."""
        from tastemaker.serving.service import NotFound

        models = self.models()
        knowing = [lm for lm in models if lm.model.item_vocab.index(lm.ext(item_id)) >= 0]
        if not knowing and not self.service.knows_item(item_id):
            return None
        try:
            attrs = self.service.item(item_id)
        except NotFound:
            attrs = {}
        stats, similar, done = [], [], {}
        users: list[dict[str, Any]] = []
        n_users = 0
        for lm in knowing:
            col_m, row_m, counts = self._column_matrix(lm)
            j = lm.model.item_vocab.index(lm.ext(item_id))
            start, end = col_m.indptr[j], col_m.indptr[j + 1]
            u_idx, vals = col_m.indices[start:end], col_m.data[start:end].astype(np.float64)
            fp = (lm.model.data_info or {}).get("fingerprint") or id(lm.model)
            if fp in done:
                done[fp]["models"].append(lm.name)
                continue
            entry = {"models": [lm.name], "interactions": int(end - start),
                     "mean_value": float(vals.mean()) if len(vals) else None, "explicit": bool(lm.model.explicit),
                     "histogram": _value_histogram(vals, lm.model) if lm.model.explicit else None}
            done[fp] = entry
            stats.append(entry)
            if not users:
                ids = lm.model.user_vocab.lookup(u_idx).astype(str)
                order = np.lexsort((ids, np.strings.str_len(ids), -vals))[:consumers]
                users = [{"user_id": str(ids[o]), "value": float(vals[o])} for o in order]
                n_users = int(end - start)
            co = np.asarray(row_m[u_idx].sum(axis=0)).ravel() if len(u_idx) else np.zeros(len(counts))
            co[j] = 0.0
            cos = co / (np.sqrt(counts[j] * counts) + 1e-9)
            top = np.argsort(-cos, kind="stable")[:k]
            top = top[co[top] > 0]
            ids = lm.model.item_vocab.lookup(top).astype(str).tolist()
            similar.append({"source": "co-occurrence", "models": entry["models"],
                            "items": [{"item_id": i, "title": self.title(i), "score": float(cos[t]),
                                       "together": int(co[t])} for i, t in zip(ids, top)]})
        service_similar = None
        try:
            _req, result = self.service.similar(item_id, k=k, trace=True)
            service_similar = {"pipeline": result.pipeline, "fallback": result.fallback, "notes": result.notes,
                               "items": [{"item_id": it.item_id, "title": self.title(it.item_id), "score": it.score,
                                          "sources": it.sources,
                                          "trace": [dict(e, text=_trace_text(e)) for e in it.extras.get("trace", [])]}
                                         for it in result.items]}
        except TastemakerError as exc:
            service_similar = {"error": str(exc), "items": []}
        return {"item_id": item_id, "title": self.title(item_id), "attributes": attrs, "known_by":
                [lm.name for lm in knowing], "stats": stats, "consumers": users, "consumers_total": n_users,
                "similar": similar, "service_similar": service_similar}

    # --- models page ------------------------------------------------------------------------------
    def models_info(self) -> list[dict[str, Any]]:
        out = []
        for lm in self.models():
            m = lm.model
            info = m.data_info or {}
            out.append({"name": lm.name, "kind": m.name, "class": type(m).__name__, "serving": lm.serving,
                        "source": lm.source, "users": m.n_users, "items": m.n_items,
                        "interactions": info.get("interactions"), "data": info.get("name"),
                        "fingerprint": info.get("fingerprint"), "explicit": bool(m.explicit),
                        "config": m.config.to_dict()})
        for name, err in self.model_errors.items():
            out.append({"name": name, "error": err})
        return out

    def registry(self, ttl: float = 10.0) -> dict[str, Any]:
        """The registry's models, versions and aliases (when `tastemaker.registry` and a registry
        are available); otherwise why not."""
        now = time.monotonic()
        if self._registry is not None and now - self._registry[0] < ttl:
            return self._registry[1]
        out: dict[str, Any] = {"available": False, "uri": None, "models": [], "reason": None}
        if importlib.util.find_spec("tastemaker.registry") is None:
            out["reason"] = "tastemaker.registry is not part of this installation"
        else:
            reg = self.service.resources.extra.get("registry")
            uri = self.settings.registry_uri or os.environ.get("MLFLOW_TRACKING_URI")
            if reg is None and not uri:
                out["reason"] = ("no registry configured: set registry_uri in the serve settings (or "
                                 "$MLFLOW_TRACKING_URI), or serve a models:/NAME@ALIAS model")
            else:
                try:
                    if reg is None:
                        from tastemaker.registry import ModelRegistry

                        reg = ModelRegistry(uri, cache_dir=Path(self.settings.data_dir) / "models")
                    out["uri"] = reg.uri
                    for name in reg.models():
                        versions = [v.to_dict() for v in reg.versions(name)]
                        out["models"].append({"name": name, "aliases": reg.aliases(name),
                                              "versions": versions[::-1]})
                    out["available"] = True
                except TastemakerError as exc:
                    out["reason"] = str(exc)
        self._registry = (now, out)
        return out

    def caches(self) -> dict[str, int]:
        """Sizes of the dashboard's own caches (for the Live page)."""
        with self._lock:
            return {"pipelines": len(self._pipelines), "rule sets": len(self._rulesets),
                    "experiment analyses": self.experiments.cached(), "bench documents": len(self.bench._cache)}


def _diversity_of(ruleset: Any) -> dict[str, Any] | None:
    d = ruleset.spec.diversity
    return None if d.method == "none" else {"method": d.method, "lambda": d.lam, "similarity": d.similarity}


def _trace_text(entry: dict[str, Any]) -> str:
    from tastemaker.ranking import TraceEntry

    return TraceEntry(**{k: entry.get(k) for k in TraceEntry._fields}).text()


def _value_histogram(values: np.ndarray, model: Any) -> list[tuple[str, float]]:
    scale = getattr(model, "rating_scale", None)
    lo, hi = (int(np.floor(scale[0])), int(np.ceil(scale[1]))) if scale else (int(values.min()), int(values.max()))
    if hi - lo > 20 or not len(values):
        return []
    r = np.clip(np.rint(values), lo, hi).astype(int)
    return [(str(v), float((r == v).sum())) for v in range(lo, hi + 1)]
