"""Charts as inline SVG, drawn on the server: no JavaScript chart library, no external resources.

Every chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that says in words what
it shows (screen readers read those; the numbers are also in a table next to each chart). Colours
come from CSS classes (``bar``, ``bar-ours``, ...) so the stylesheet decides them, and nothing here
uses inline ``style`` attributes (the dashboard's Content-Security-Policy forbids them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

from markupsafe import Markup, escape

_ids = count(1)


def _uid(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def _num(v: float, digits: int = 4) -> str:
    """A compact number for labels: 0.4820, 12.3, 1,234."""
    if v is None or not math.isfinite(v):
        return "n/a"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    if a == 0:
        return "0"
    if a < 1e-3:
        return f"{v:.2e}"
    return f"{v:.{digits}f}"


def _open(width: int, height: int, title: str, desc: str, cls: str) -> tuple[list[str], str]:
    tid, did = _uid("t"), _uid("d")
    head = (f'<svg class="chart {cls}" role="img" aria-labelledby="{tid} {did}" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{tid}">{escape(title)}</title><desc id="{did}">{escape(desc)}</desc>')
    return [head], tid


@dataclass(frozen=True)
class Bar:
    """One bar: `value` with an optional interval [low, high]; `group` picks its CSS class
    (e.g. "ours" / "peer"); `note` is appended to its label."""

    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    group: str = ""
    note: str = ""


def bar_chart(bars: Sequence[Bar], *, title: str, metric: str, lower_is_better: bool = False, width: int = 560,
              row_height: int = 22, label_width: int = 190) -> Markup:
    """Horizontal bars, best first as given, with interval whiskers where `low`/`high` are set."""
    rows = [b for b in bars if b.value is not None and math.isfinite(b.value)]
    height = 34 + row_height * max(len(rows), 1)
    best = "lowest" if lower_is_better else "highest"
    desc = f"{metric} per row, {best} is best: " + "; ".join(
        f"{b.label} {_num(b.value)}" + (f" (95% CI {_num(b.low)} to {_num(b.high)})" if b.low is not None
                                        and b.high is not None else "") for b in rows)
    parts, _ = _open(width, height, title, desc, "bar-chart")
    if not rows:
        parts.append(f'<text x="8" y="24" class="chart-empty">no values of {escape(metric)}</text></svg>')
        return Markup("".join(parts))
    hi = max(max(b.value, b.high if b.high is not None else b.value) for b in rows)
    lo = min(0.0, *(min(b.value, b.low if b.low is not None else b.value) for b in rows))
    span = (hi - lo) or 1.0
    plot_w = width - label_width - 70
    x0 = label_width

    def x(v: float) -> float:
        return x0 + (v - lo) / span * plot_w

    parts.append(f'<line class="axis" x1="{x(0):.1f}" x2="{x(0):.1f}" y1="8" y2="{height - 22}"/>')
    for i, b in enumerate(rows):
        y = 10 + i * row_height
        cls = f"bar bar-{b.group}" if b.group else "bar"
        left, right = sorted((x(0), x(b.value)))
        label = b.label if len(b.label) <= 30 else b.label[:29] + "…"
        parts.append(f'<text class="bar-label" x="{x0 - 6}" y="{y + row_height * 0.62:.1f}" '
                     f'text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect class="{cls}" x="{left:.1f}" y="{y + 2}" width="{max(right - left, 1):.1f}" '
                     f'height="{row_height - 6}"><title>{escape(b.label)}: {_num(b.value)}</title></rect>')
        if b.low is not None and b.high is not None:
            yc = y + row_height / 2 - 1
            parts.append(f'<line class="whisker" x1="{x(b.low):.1f}" x2="{x(b.high):.1f}" y1="{yc:.1f}" '
                         f'y2="{yc:.1f}"/>')
            for v in (b.low, b.high):
                parts.append(f'<line class="whisker" x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{yc - 4:.1f}" '
                             f'y2="{yc + 4:.1f}"/>')
        end = x(max(b.value, b.high if b.high is not None else b.value))
        parts.append(f'<text class="bar-value" x="{end + 5:.1f}" y="{y + row_height * 0.62:.1f}">'
                     f'{escape(_num(b.value))}{escape(b.note)}</text>')
    parts.append(f'<text class="axis-label" x="{x0}" y="{height - 6}">{escape(metric)} '
                 f'({best} is best)</text></svg>')
    return Markup("".join(parts))


@dataclass(frozen=True)
class Interval:
    """One row of a forest plot: an estimate with its interval; `status` picks its CSS class
    ("good", "bad", "flat", "fail", "warn")."""

    label: str
    estimate: float | None
    low: float | None
    high: float | None
    status: str = "flat"


def forest_plot(rows: Sequence[Interval], *, title: str, unit: str = "relative change", percent: bool = True,
                limits: dict[str, float] | None = None, width: int = 460, row_height: int = 26,
                label_width: int = 170) -> Markup:
    """Estimates with intervals around a zero line; `limits` adds labelled vertical lines (e.g. a
    guardrail's allowed drop)."""
    ok = [r for r in rows if r.estimate is not None]
    height = 40 + row_height * max(len(ok), 1)

    def fmt(v: float | None) -> str:
        if v is None:
            return "n/a"
        return f"{v * 100:+.2f}%" if percent else _num(v)

    desc = f"{unit} with 95% intervals: " + "; ".join(f"{r.label} {fmt(r.estimate)} [{fmt(r.low)}, {fmt(r.high)}]"
                                                      for r in ok)
    parts, _ = _open(width, height, title, desc, "forest")
    if not ok:
        parts.append('<text x="8" y="24" class="chart-empty">no estimates</text></svg>')
        return Markup("".join(parts))
    vals = [0.0, *[v for r in ok for v in (r.estimate, r.low, r.high) if v is not None and math.isfinite(v)],
            *(limits or {}).values()]
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.08 or 0.01
    lo, hi = lo - pad, hi + pad
    plot_w = width - label_width - 64

    def x(v: float) -> float:
        return label_width + (v - lo) / (hi - lo) * plot_w

    parts.append(f'<line class="axis" x1="{x(0):.1f}" x2="{x(0):.1f}" y1="6" y2="{height - 26}"/>')
    for name, v in (limits or {}).items():
        parts.append(f'<line class="limit" x1="{x(v):.1f}" x2="{x(v):.1f}" y1="6" y2="{height - 26}"/>'
                     f'<text class="limit-label" x="{x(v) + 3:.1f}" y="{height - 28}">{escape(name)}</text>')
    for i, r in enumerate(ok):
        y = 12 + i * row_height
        yc = y + row_height / 2 - 2
        parts.append(f'<text class="bar-label" x="{label_width - 8}" y="{yc + 4:.1f}" text-anchor="end">'
                     f'{escape(r.label)}</text>')
        if r.low is not None and r.high is not None:
            parts.append(f'<line class="ci ci-{r.status}" x1="{x(r.low):.1f}" x2="{x(r.high):.1f}" y1="{yc:.1f}" '
                         f'y2="{yc:.1f}"/>')
        parts.append(f'<circle class="point point-{r.status}" cx="{x(r.estimate):.1f}" cy="{yc:.1f}" r="4.5">'
                     f'<title>{escape(r.label)}: {fmt(r.estimate)} [{fmt(r.low)}, {fmt(r.high)}]</title></circle>')
        parts.append(f'<text class="bar-value" x="{label_width + plot_w + 8}" y="{yc + 4:.1f}">'
                     f'{escape(fmt(r.estimate))}</text>')
    parts.append(f'<text class="axis-label" x="{x(0):.1f}" y="{height - 8}" text-anchor="middle">0</text>'
                 f'<text class="axis-label" x="{label_width}" y="{height - 8}">{escape(unit)}</text></svg>')
    return Markup("".join(parts))


def sparkline(values: Sequence[float | None], *, title: str, unit: str = "", width: int = 220,
              height: int = 48) -> Markup:
    """A small line over time (oldest first), with the latest value labelled."""
    pts = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    last = pts[-1][1] if pts else None
    desc = (f"{len(pts)} samples, latest {_num(last)} {unit}, max {_num(max(v for _, v in pts))} {unit}" if pts
            else "no samples yet")
    parts, _ = _open(width, height, title, desc, "spark")
    if len(pts) >= 2:
        top = max(v for _, v in pts) or 1.0
        n = max(len(values) - 1, 1)
        coords = " ".join(f"{4 + i / n * (width - 8):.1f},{height - 4 - v / top * (height - 12):.1f}" for i, v in pts)
        parts.append(f'<polyline class="spark-line" points="{coords}" fill="none"/>')
    elif pts:
        parts.append(f'<circle class="point" cx="{width - 4}" cy="{height / 2}" r="2"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def histogram(bins: Sequence[tuple[str, float]], *, title: str, what: str, width: int = 300,
              height: int = 120) -> Markup:
    """Vertical bars of counts per labelled bin (e.g. ratings 1–5)."""
    desc = f"{what}: " + ", ".join(f"{label}: {v:,.0f}" for label, v in bins)
    parts, _ = _open(width, height, title, desc, "histogram")
    top = max((v for _, v in bins), default=0) or 1
    n = max(len(bins), 1)
    bw = (width - 16) / n
    for i, (label, v) in enumerate(bins):
        h = v / top * (height - 40)
        x = 8 + i * bw
        parts.append(f'<rect class="bar bar-ours" x="{x + 3:.1f}" y="{height - 20 - h:.1f}" width="{bw - 6:.1f}" '
                     f'height="{max(h, 0.5):.1f}"><title>{escape(label)}: {v:,.0f}</title></rect>'
                     f'<text class="bar-value" x="{x + bw / 2:.1f}" y="{height - 24 - h:.1f}" '
                     f'text-anchor="middle">{v:,.0f}</text>'
                     f'<text class="axis-label" x="{x + bw / 2:.1f}" y="{height - 6}" '
                     f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def fmt_number(v: Any, digits: int = 4) -> str:
    """The dashboard's number format (templates use it as the ``num`` filter)."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if f.is_integer() and abs(f) < 1e15:
        return f"{int(f):,}"
    return _num(f, digits)
