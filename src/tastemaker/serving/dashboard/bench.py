"""The Models page's leaderboards: bench JSON documents (``tastemaker bench … --output``) read from
a folder, grouped by protocol, ranked by their headline metric, drawn as bar charts.

Any document with ``rows`` (each with ``metrics``; ``system``, ``model`` and ``protocol`` when it
has them; ``ci95`` intervals when the protocol gives them) is shown; the suite's headline metrics
come from `tastemaker.bench.suites.SUITES` when the suite is known there, else from the rows.
A file that is not such a document is listed with the reason it was skipped.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from tastemaker.serving.dashboard.svg import Bar, bar_chart

PREFERRED = ("ndcg@10", "rmse", "mae", "recall@20", "recall@10", "hr@10", "precision@10", "map@10", "auc",
             "coverage@10", "p50_ms", "p95_ms", "p99_ms", "rps")
LOWER_IS_BETTER_SUFFIXES = ("_ms", "_s", "seconds", "_mb", "errors")
MAX_CHARTS = 3


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of `metric` is better (error metrics, latencies, sizes)."""
    from tastemaker.evaluation.report import LOWER_IS_BETTER

    return metric in LOWER_IS_BETTER or metric.endswith(LOWER_IS_BETTER_SUFFIXES) or metric.startswith("miscal")


def _headline(doc: dict[str, Any], metrics: list[str]) -> list[str]:
    try:
        from tastemaker.bench.suites import SUITES

        spec = SUITES.get(str(doc.get("suite")))
    except ImportError:  # pragma: no cover - the bench package ships with tastemaker
        spec = None
    if spec is not None:
        found = [m for m in spec.headline if m in metrics]
        if found:
            return found
    pref = [m for m in PREFERRED if m in metrics]
    return pref + [m for m in metrics if m not in pref]


def _label(row: dict[str, Any]) -> str:
    system, model = row.get("system"), row.get("model")
    if system and model:
        return str(model) if system == "tastemaker" else f"{system}/{model}"
    return str(model or system or row.get("name") or row.get("method") or row.get("protocol") or "?")


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def leaderboards(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One leaderboard per protocol of a bench document: rows ranked by the first headline metric,
    the metric columns to show, and up to `MAX_CHARTS` bar charts (inline SVG)."""
    descriptions = {p.get("name"): p.get("description", "") for p in doc.get("protocols") or [] if isinstance(p, dict)}
    by_proto: dict[str, list[dict[str, Any]]] = {}
    for row in doc.get("rows") or []:
        if isinstance(row, dict) and isinstance(row.get("metrics"), dict):
            by_proto.setdefault(str(row.get("protocol") or doc.get("protocol") or ""), []).append(row)
    out = []
    for proto, rows in by_proto.items():
        metrics = list(dict.fromkeys(m for r in rows for m, v in r["metrics"].items() if _number(v) is not None))
        head = _headline(doc, metrics)
        if not head:
            continue
        key = head[0]
        low = lower_is_better(key)
        missing = float("inf") if low else float("-inf")
        ranked = sorted(rows, key=lambda r: _number(r["metrics"].get(key)) if _number(r["metrics"].get(key))
                        is not None else missing, reverse=not low)
        table = []
        for rank, r in enumerate(ranked, 1):
            table.append({"rank": rank, "label": _label(r), "system": r.get("system") or "",
                          "ours": (r.get("system") or "tastemaker") == "tastemaker",
                          "values": {m: _number(r["metrics"].get(m)) for m in head},
                          "ci": {m: r.get("ci95", {}).get(m) for m in head if isinstance(r.get("ci95"), dict)},
                          "fit_seconds": _number(r.get("fit_seconds"))})
        charts = []
        for m in head[:MAX_CHARTS]:
            bars = []
            for r in sorted(ranked, key=lambda r: _number(r["metrics"].get(m)) if _number(r["metrics"].get(m))
                            is not None else missing, reverse=not lower_is_better(m)):
                ci = (r.get("ci95") or {}).get(m) if isinstance(r.get("ci95"), dict) else None
                lo, hi = (ci if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None))
                ours = (r.get("system") or "tastemaker") == "tastemaker"
                bars.append(Bar(_label(r), _number(r["metrics"].get(m)), _number(lo), _number(hi),
                                group="ours" if ours else "peer"))
            charts.append({"metric": m, "svg": bar_chart(bars, title=f"{m} — {proto or doc.get('suite', '')}",
                                                         metric=m, lower_is_better=lower_is_better(m))})
        comparisons = [c for c in doc.get("comparisons") or [] if isinstance(c, dict)
                       and (c.get("protocol") in (proto, None))]
        out.append({"protocol": proto, "description": descriptions.get(proto, ""), "metrics": head,
                    "rank_by": key, "lower_is_better": low, "rows": table, "charts": charts,
                    "comparisons": comparisons})
    return out


class BenchLibrary:
    """Bench documents of a folder, re-read when a file changes (cached by modification time)."""

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder) if folder else None
        self._cache: dict[Path, tuple[tuple[float, int], dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def documents(self) -> list[dict[str, Any]]:
        """Every ``*.json`` of the folder, newest first: a summary with its leaderboards, or the
        reason it was skipped."""
        if self.folder is None or not self.folder.is_dir():
            return []
        files = sorted(self.folder.glob("*.json"), key=lambda p: (-p.stat().st_mtime, p.name))
        return [self._load(p) for p in files]

    def _load(self, path: Path) -> dict[str, Any]:
        st = path.stat()
        key = (st.st_mtime, st.st_size)
        with self._lock:
            hit = self._cache.get(path)
            if hit is not None and hit[0] == key:
                return hit[1]
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
                raise ValueError("it has no 'rows' list (is it a bench JSON from tastemaker bench … --output?)")
            boards = leaderboards(doc)
            if not boards:
                raise ValueError("none of its rows has numeric metrics")
            machine = doc.get("machine") if isinstance(doc.get("machine"), dict) else {}
            out = {"file": path.name, "suite": str(doc.get("suite") or path.stem), "dataset": doc.get("dataset"),
                   "machine": machine, "leaderboards": boards, "error": None, "rows": len(doc["rows"])}
        except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            out = {"file": path.name, "suite": path.stem, "leaderboards": [], "error": str(exc), "machine": {},
                   "dataset": None, "rows": 0}
        with self._lock:
            self._cache[path] = (key, out)
        return out

    def summary(self) -> list[dict[str, Any]]:
        """The documents as JSON-able data (charts left out)."""
        docs = []
        for d in self.documents():
            boards = [{k: v for k, v in b.items() if k != "charts"} for b in d["leaderboards"]]
            docs.append({**d, "leaderboards": boards})
        return docs
