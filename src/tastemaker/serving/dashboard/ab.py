"""The Experiments page's data: A/B experiments found in a folder (and the service's own exposure
log), analysed with `tastemaker.experiments` and shaped for the page.

A folder holds one subfolder per experiment with its logs — what ``tastemaker ab simulate``
writes: ``exposures.jsonl`` (or ``exposures.log``), ``events.jsonl`` (or ``events.log``), and
optionally ``pre.csv`` (CUPED), ``experiment.toml`` (variants, metrics, guardrails) and
``catalog.csv`` (categories for the segment deep-dive). When the service runs experiments itself
(`ServeSettings.experiments`), its ``exposures.log`` and ``events.log`` in data_dir appear as the
experiment ``live``. Analyses are cached until a file changes; a folder that cannot be analysed
shows why.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from pathlib import Path
from typing import Any

from tastemaker.errors import TastemakerError
from tastemaker.serving.dashboard.svg import Interval, forest_plot

EXPOSURES = ("exposures.jsonl", "exposures.log", "exposures.json")
EVENTS = ("events.jsonl", "events.log", "events.json", "events.csv", "events.parquet")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def available() -> bool:
    """Whether `tastemaker.experiments` (the analysis) is importable here."""
    return importlib.util.find_spec("tastemaker.experiments") is not None


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


class ExperimentSource:
    """One experiment's files."""

    def __init__(self, name: str, folder: Path, exposures: Path, events: Path, *, pre: Path | None = None,
                 config: Path | None = None, catalog: Path | None = None, live: bool = False) -> None:
        self.name, self.folder, self.exposures, self.events = name, folder, exposures, events
        self.pre, self.config, self.catalog, self.live = pre, config, catalog, live

    @property
    def files(self) -> list[Path]:
        return [p for p in (self.exposures, self.events, self.pre, self.config, self.catalog) if p is not None]

    def stamp(self) -> tuple:
        out = []
        for p in self.files:
            st = p.stat()
            out.append((p.name, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "folder": str(self.folder), "live": self.live,
                "files": [p.name for p in self.files],
                "size_bytes": sum(p.stat().st_size for p in self.files)}


class ExperimentLibrary:
    """The experiments the dashboard can show; `analysis(name)` runs (or reuses) the analysis."""

    def __init__(self, folder: str | Path | None, *, data_dir: str | Path | None = None,
                 config: str | Path | None = None, catalog: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder else None
        self.data_dir = Path(data_dir) if data_dir else None
        self.config = Path(config) if config else None
        self.catalog = Path(catalog) if catalog else None
        self._cache: dict[str, tuple[tuple, dict[str, Any]]] = {}
        self._html: dict[str, tuple[tuple, str]] = {}
        self._lock = threading.Lock()
        self._busy: dict[str, threading.Lock] = {}

    def sources(self) -> list[ExperimentSource]:
        out = []
        if self.folder is not None and self.folder.is_dir():
            for sub in sorted(p for p in self.folder.iterdir() if p.is_dir() and _NAME.match(p.name)):
                exp, ev = _first(sub, EXPOSURES), _first(sub, EVENTS)
                if exp is None or ev is None:
                    continue
                out.append(ExperimentSource(sub.name, sub, exp, ev, pre=_first(sub, ("pre.csv", "pre.parquet")),
                                            config=_first(sub, ("experiment.toml", "experiments.toml")),
                                            catalog=_first(sub, ("catalog.csv", "catalog.parquet"))))
        if self.data_dir is not None and self.config is not None:
            exp, ev = self.data_dir / "exposures.log", self.data_dir / "events.log"
            if exp.is_file() and ev.is_file() and exp.stat().st_size > 0 and not any(s.name == "live" for s in out):
                out.append(ExperimentSource("live", self.data_dir, exp, ev, config=self.config, catalog=self.catalog,
                                            live=True))
        return out

    def source(self, name: str) -> ExperimentSource | None:
        return next((s for s in self.sources() if s.name == name), None)

    def analysis(self, name: str) -> dict[str, Any] | None:
        """The page data of experiment `name` (None when there is no such experiment); an
        analysis that fails gives ``{"error": ...}`` with the reason."""
        src = self.source(name)
        if src is None:
            return None
        stamp = src.stamp()
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and hit[0] == stamp:
                return hit[1]
            busy = self._busy.setdefault(name, threading.Lock())
        with busy:  # one analysis per experiment at a time; others wait for it and reuse it
            with self._lock:
                hit = self._cache.get(name)
                if hit is not None and hit[0] == stamp:
                    return hit[1]
            try:
                result = self._analyze(src)
                page = {"source": src.to_dict(), "error": None, **shape(result)}
                page["_result"] = result
            except (TastemakerError, OSError, ValueError, KeyError) as exc:
                page = {"source": src.to_dict(), "error": f"{type(exc).__name__}: {exc}"}
            with self._lock:
                self._cache[name] = (stamp, page)
                self._html.pop(name, None)
            return page

    def report_html(self, name: str) -> str | None:
        """The full HTML report of `tastemaker.experiments.report.render_html` (cached)."""
        page = self.analysis(name)
        if page is None or page.get("error"):
            return None
        stamp = self.source(name).stamp()
        with self._lock:
            hit = self._html.get(name)
            if hit is not None and hit[0] == stamp:
                return hit[1]
        from tastemaker.experiments.report import render_html

        text = render_html(page["_result"])
        with self._lock:
            self._html[name] = (stamp, text)
        return text

    @staticmethod
    def _analyze(src: ExperimentSource):
        from tastemaker.experiments import analyze_logs

        return analyze_logs(src.exposures, src.events, pre=src.pre, config=src.config, catalog=src.catalog)

    def cached(self) -> int:
        with self._lock:
            return len(self._cache)


_STATUS = {"fail": "fail", "warn": "warn", "pass": "good", "unknown": "flat"}


def _status(m: Any) -> str:
    if m.guardrail:
        return _STATUS.get(m.guardrail["status"], "flat")
    if not m.significant or m.better is None:
        return "flat"
    return "good" if m.better else "bad"


def shape(result: Any) -> dict[str, Any]:
    """An `AnalysisResult` as the page shows it: per treatment the decision, the metric table with
    a forest plot of lifts, and the segments of the metrics the decision is about."""
    settings = result.settings or {}
    alpha = float(settings.get("alpha") or 0.05)
    shares = settings.get("shares") or {}
    total = sum(result.counts.values()) or 1
    variants = [{"name": v, "control": v == result.control, "share": shares.get(v), "units": result.counts.get(v, 0),
                 "observed_share": result.counts.get(v, 0) / total} for v in result.variants]
    treatments = []
    for d in result.decisions:
        t = d["treatment"]
        ms = [m for m in result.metrics if m.treatment == t]
        rows = [{"metric": m.metric, "label": m.label, "role": m.role, "control": m.value_c, "treatment": m.value_t,
                 "lift": m.lift, "low": m.lift_low, "high": m.lift_high, "p": m.p, "p_adjusted": m.p_adjusted,
                 "significant": m.significant, "better": m.better, "method": m.method,
                 "guardrail": m.guardrail, "status": _status(m)} for m in ms]
        limits = {}
        for g in settings.get("guardrails") or []:
            if isinstance(g, dict) and g.get("max_drop"):
                limits[f"−{g['max_drop']:.0%} ({g.get('metric')})"] = -float(g["max_drop"])
        plot = forest_plot([Interval(f"{m.label} ({m.role})", m.lift, m.lift_low, m.lift_high, _status(m)) for m in ms],
                           title=f"Relative lift of '{t}' over '{d['control']}' with 95% intervals",
                           limits=limits or None)
        focus = set(d["failing_guardrails"]) | set(d["primary_worse"]) or {m.metric for m in ms if m.role == "primary"}
        segs = [s for s in result.segments.get(t, []) if s["metric"] in focus]
        seg_plots = []
        for metric in sorted(focus):
            sub = [s for s in segs if s["metric"] == metric]
            if sub:
                driver = {(x["dimension"], x["segment"]) for x in d["drivers"] if x["metric"] == metric}
                seg_plots.append({"metric": metric, "svg": forest_plot(
                    [Interval(f"{s['dimension'].replace('_', ' ')} = {s['segment']}", s["lift"], s["lift_low"],
                              s["lift_high"], "fail" if (s["dimension"], s["segment"]) in driver else
                              ("warn" if (s["p"] or 1) < alpha and (s["lift"] or 0) < 0 else "flat"))
                     for s in sub], title=f"{metric}: lift inside each segment", unit="relative change",
                    width=640, label_width=200)})
        treatments.append({"treatment": t, "control": d["control"], "decision": d, "metrics": rows, "plot": plot,
                           "segments": segs, "segment_plots": seg_plots})
    return {"experiment": result.experiment, "control": result.control, "variants": variants, "srm": result.srm,
            "treatments": treatments, "data": result.data, "warnings": result.warnings, "settings": settings}


def public(page: dict[str, Any]) -> dict[str, Any]:
    """The page data without the SVG and the raw result (for the JSON API)."""
    out = {k: v for k, v in page.items() if not k.startswith("_")}
    if "treatments" in out:
        out["treatments"] = [{k: v for k, v in t.items() if k not in ("plot", "segment_plots")}
                             for t in out["treatments"]]
    return out
