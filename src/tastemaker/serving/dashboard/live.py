"""The Live page's numbers: rates and latency percentiles over a recent window, from the service's
own Prometheus registry (`ServiceMetrics`), plus its health.

`LiveSampler.view()` takes a snapshot of every counter and histogram, keeps the snapshots of the
last few minutes, and compares the newest with the one about `window_s` old: events per second,
requests per second, errors, and latency percentiles interpolated inside the histogram buckets
(as Prometheus' ``histogram_quantile`` does). While the service is younger than a window, the
window is "since start" (a zero baseline at the service's start); when the dashboard has watched
for less than a window, it starts at the first snapshot. The dashboard's own requests (``/dashboard…``)
are left out of the service's numbers.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

Labels = tuple[tuple[str, str], ...]
QUANTILES = (0.5, 0.95, 0.99)


@dataclass
class _Hist:
    buckets: list[tuple[float, float]]  # (upper bound, cumulative count), +inf last
    count: float
    total: float


@dataclass
class Snapshot:
    """Every sample of the registry at one moment."""

    at: float
    counters: dict[tuple[str, Labels], float] = field(default_factory=dict)
    gauges: dict[tuple[str, Labels], float] = field(default_factory=dict)
    hists: dict[tuple[str, Labels], _Hist] = field(default_factory=dict)


def take_snapshot(registry: Any, at: float | None = None) -> Snapshot:
    """Read a prometheus-client registry into plain numbers."""
    snap = Snapshot(time.time() if at is None else at)
    for family in registry.collect():
        if family.type == "counter":
            for s in family.samples:
                if s.name.endswith("_total"):
                    snap.counters[(family.name, tuple(sorted(s.labels.items())))] = float(s.value)
        elif family.type == "gauge":
            for s in family.samples:
                snap.gauges[(family.name, tuple(sorted(s.labels.items())))] = float(s.value)
        elif family.type == "histogram":
            acc: dict[Labels, _Hist] = {}
            for s in family.samples:
                labels = {k: v for k, v in s.labels.items() if k != "le"}
                key = tuple(sorted(labels.items()))
                h = acc.setdefault(key, _Hist([], 0.0, 0.0))
                if s.name.endswith("_bucket"):
                    h.buckets.append((float(s.labels["le"]), float(s.value)))
                elif s.name.endswith("_count"):
                    h.count = float(s.value)
                elif s.name.endswith("_sum"):
                    h.total = float(s.value)
            for key, h in acc.items():
                h.buckets.sort()
                snap.hists[(family.name, key)] = h
    return snap


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile of a histogram given as (upper bound, count) pairs — counts per bucket, not
    cumulative — by linear interpolation inside the bucket (the first bucket starts at 0). None
    when empty; the largest finite bound when the quantile falls in the +Inf bucket."""
    total = sum(c for _, c in buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    lower = 0.0
    for upper, c in buckets:
        if c > 0 and seen + c >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - seen) / c
        seen += c
        if not math.isinf(upper):
            lower = upper
    return lower


def _delta_hist(new: _Hist, old: _Hist | None) -> tuple[list[tuple[float, float]], float, float]:
    """Per-bucket (not cumulative) counts of the window, its count and sum."""
    cum_old = dict(old.buckets) if old is not None else {}
    out, prev = [], 0.0
    for le, cum in new.buckets:
        c = cum - cum_old.get(le, 0.0)
        out.append((le, max(c - prev, 0.0)))
        prev = c
    return out, new.count - (old.count if old else 0.0), new.total - (old.total if old else 0.0)


def _label(labels: Labels, name: str) -> str:
    return dict(labels).get(name, "")


class LiveSampler:
    """Snapshots of a `ServiceMetrics` registry and the window views built from them."""

    def __init__(self, metrics: Any, *, started: float | None = None, window_s: float = 60.0, keep: int = 240,
                 min_interval_s: float = 0.25) -> None:
        self.metrics = metrics
        self.window_s = float(window_s)
        self.min_interval_s = float(min_interval_s)
        self._snaps: deque[Snapshot] = deque(maxlen=keep)
        self._series: deque[dict[str, float | None]] = deque(maxlen=60)
        self._zero = Snapshot(started if started is not None else time.time())
        self._lock = threading.Lock()

    def sample(self) -> tuple[Snapshot, Snapshot]:
        """Take a snapshot (kept when `min_interval_s` has passed since the last kept one); returns
        (the snapshot, the window's start)."""
        with self._lock:
            now = time.time()
            newest = take_snapshot(self.metrics.registry, now)
            older = list(self._snaps)
            if not self._snaps or now - self._snaps[-1].at >= self.min_interval_s:
                self._series.append(self._point(newest, self._snaps[-1] if self._snaps else self._zero))
                self._snaps.append(newest)
            old_enough = [s for s in older if newest.at - s.at >= self.window_s]
            if old_enough:  # the latest snapshot at least a window old
                base = old_enough[-1]
            elif newest.at - self._zero.at <= self.window_s or not older:  # young service: since start
                base = self._zero
            else:  # the dashboard has not been watching for a whole window yet
                base = older[0]
            return newest, base

    @staticmethod
    def _service(labels: Labels) -> bool:
        route = _label(labels, "route")
        return not route.startswith("/dashboard")

    def _point(self, new: Snapshot, old: Snapshot) -> dict[str, float | None]:
        dt = max(new.at - old.at, 1e-9)
        events = sum(v - old.counters.get(k, 0.0) for k, v in new.counters.items() if k[0] == "tastemaker_events")
        reqs = sum(v - old.counters.get(k, 0.0) for k, v in new.counters.items()
                   if k[0] == "tastemaker_http_requests" and self._service(k[1]))
        lat = [_delta_hist(h, old.hists.get(k))[0] for k, h in new.hists.items()
               if k[0] == "tastemaker_http_request_seconds" and _label(k[1], "route") == "/recommendations"]
        merged = _merge(lat)
        p95 = quantile(merged, 0.95) if merged else None
        return {"at": new.at, "events_per_s": events / dt, "requests_per_s": reqs / dt,
                "p95_ms": None if p95 is None else p95 * 1000.0}

    def view(self) -> dict[str, Any]:
        """The window's numbers (see the module docstring) as plain data."""
        new, old = self.sample()
        dt = max(new.at - old.at, 1e-9)
        since_start = old is self._zero

        def delta(name: str, pred=lambda labels: True) -> dict[Labels, float]:
            return {k[1]: v - old.counters.get(k, 0.0) for k, v in new.counters.items() if k[0] == name and pred(k[1])}

        req = delta("tastemaker_http_requests", self._service)
        events = delta("tastemaker_events")
        routes: dict[tuple[str, str], dict[str, Any]] = {}
        for labels, n in req.items():
            key = (_label(labels, "method"), _label(labels, "route"))
            r = routes.setdefault(key, {"method": key[0], "route": key[1], "requests": 0.0, "errors_5xx": 0.0,
                                        "errors_4xx": 0.0})
            r["requests"] += n
            status = _label(labels, "status")
            if status.startswith("5"):
                r["errors_5xx"] += n
            elif status.startswith("4"):
                r["errors_4xx"] += n
        for k, h in new.hists.items():
            if k[0] != "tastemaker_http_request_seconds" or not self._service(k[1]):
                continue
            key = (_label(k[1], "method"), _label(k[1], "route"))
            buckets, _, _ = _delta_hist(h, old.hists.get(k))
            r = routes.setdefault(key, {"method": key[0], "route": key[1], "requests": 0.0, "errors_5xx": 0.0,
                                        "errors_4xx": 0.0})
            for q in QUANTILES:
                v = quantile(buckets, q)
                r[f"p{round(q * 100)}_ms"] = None if v is None else v * 1000.0
        for key in [k for k, r in routes.items() if not r["requests"]]:
            del routes[key]
        for r in routes.values():
            r["per_s"] = r["requests"] / dt
        stages = []
        for k, h in new.hists.items():
            if k[0] != "tastemaker_pipeline_stage_seconds":
                continue
            buckets, n, total = _delta_hist(h, old.hists.get(k))
            stages.append({"stage": _label(k[1], "stage"), "count": n,
                           **{f"p{round(q * 100)}_ms": _ms(quantile(buckets, q)) for q in QUANTILES},
                           "mean_ms": _ms(total / n) if n else None})
        rec_lat = _merge([_delta_hist(h, old.hists.get(k))[0] for k, h in new.hists.items()
                          if k[0] == "tastemaker_http_request_seconds" and _label(k[1], "route") == "/recommendations"])
        all_lat = _merge([_delta_hist(h, old.hists.get(k))[0] for k, h in new.hists.items()
                          if k[0] == "tastemaker_http_request_seconds" and self._service(k[1])])
        commit_buckets = _merge([_delta_hist(h, old.hists.get(k))[0] for k, h in new.hists.items()
                                 if k[0] == "tastemaker_event_log_commit_seconds"])
        total_req = sum(req.values())
        err5 = sum(v for labels, v in req.items() if _label(labels, "status").startswith("5"))
        err4 = sum(v for labels, v in req.items() if _label(labels, "status").startswith("4"))
        fallbacks = {_label(labels, "reason"): v for labels, v in delta("tastemaker_fallback_responses").items() if v}
        by_type: dict[str, float] = {}
        for labels, v in events.items():
            by_type[_label(labels, "type")] = by_type.get(_label(labels, "type"), 0.0) + v
        store_up = next((v for k, v in new.gauges.items() if k[0] == "tastemaker_store_up"), None)
        return {
            "window_s": dt, "since_start": since_start, "at": new.at,
            "events": {"total": sum(events.values()), "per_s": sum(events.values()) / dt, "by_type": by_type,
                       "duplicates": sum(v for labels, v in events.items() if _label(labels, "status") == "duplicate")},
            "requests": {"total": total_req, "per_s": total_req / dt, "errors_5xx": err5, "errors_4xx": err4,
                         "error_rate": err5 / total_req if total_req else 0.0},
            "latency_ms": {"recommendations": {f"p{round(q * 100)}": _ms(quantile(rec_lat, q)) for q in QUANTILES},
                           "all": {f"p{round(q * 100)}": _ms(quantile(all_lat, q)) for q in QUANTILES},
                           "event_log_commit": {f"p{round(q * 100)}": _ms(quantile(commit_buckets, q))
                                                for q in QUANTILES}},
            "routes": sorted(routes.values(), key=lambda r: (-r["requests"], r["route"])),
            "stages": sorted(stages, key=lambda s: s["stage"]),
            "fallbacks": fallbacks,
            "degraded": sum(delta("tastemaker_degraded_responses").values()),
            "store_up": None if store_up is None else bool(store_up),
            "series": list(self._series),
        }


def _ms(v: float | None) -> float | None:
    return None if v is None else v * 1000.0


def _merge(histograms: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Add per-bucket counts of histograms with the same bounds."""
    acc: dict[float, float] = {}
    for h in histograms:
        for le, c in h:
            acc[le] = acc.get(le, 0.0) + c
    return sorted(acc.items())
