"""Reports of an `AnalysisResult`: plain text (what `tastemaker ab analyze` prints) and a
self-contained HTML page with plots (matplotlib, embedded as PNG data URIs; no CDN, no scripts)."""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tastemaker.experiments.analysis import DIMENSION_LABELS, DONT_SHIP, SHIP, AnalysisResult, MetricResult

_VERDICT_COLOURS = {SHIP: "#1a7f37", DONT_SHIP: "#c62828", "investigate": "#b26a00"}
_ROLE_COLOURS = {"primary": "#1f5fbf", "guardrail": "#c62828", "secondary": "#6b6b6b"}


def _pct(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v * 100:+.{digits}f}%"


def _ci(lo: float | None, hi: float | None, digits: int = 2) -> str:
    return "—" if lo is None or hi is None else f"[{lo * 100:+.{digits}f}%, {hi * 100:+.{digits}f}%]"


def _num(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.2f}"


def _p(v: float | None) -> str:
    return "—" if v is None else (f"{v:.3f}" if v >= 0.001 else f"{v:.1e}")


def _date(ts: float | None) -> str:
    return "—" if not ts else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def _metric_rows(result: AnalysisResult, treatment: str) -> list[list[str]]:
    rows = []
    for m in result.metrics:
        if m.treatment != treatment:
            continue
        seq = m.sequential or {}
        width = (m.cuped or {}).get("ci_width_ratio")
        status = m.guardrail["status"] if m.guardrail else ("significant" if m.significant else "n.s.")
        rows.append([m.label, m.role, _num(m.value_c), _num(m.value_t), _pct(m.lift), _ci(m.lift_low, m.lift_high),
                     _p(m.p), _p(m.p_adjusted), _ci(*(m.bootstrap or (None, None))),
                     _p(seq.get("p_always_valid")), _ci(seq.get("lift_low"), seq.get("lift_high")),
                     "—" if width is None else f"{width:.2f}", status])
    return rows


_METRIC_HEADERS = ["metric", "role", "control", "treatment", "lift", "CI", "p", "p adj.", "bootstrap CI (plain)",
                   "always-valid p", "confidence sequence", "CUPED/plain width", "status"]
_SEGMENT_HEADERS = ["metric", "dimension", "segment", "units t/c", "lift", "CI", "p", "share of change",
                    "share of metric"]


def _segment_rows(segments: list[dict[str, Any]], metrics: set[str]) -> list[list[str]]:
    rows = []
    for s in segments:
        if s["metric"] not in metrics:
            continue
        share = "—" if s.get("share_of_change") is None else f"{s['share_of_change']:.0%}"
        base = "—" if s.get("baseline_share") is None else f"{s['baseline_share']:.0%}"
        rows.append([s["metric"], DIMENSION_LABELS.get(s["dimension"], s["dimension"]), str(s["segment"]),
                     f"{s['n_t']:,}/{s['n_c']:,}", _pct(s["lift"]), _ci(s["lift_low"], s["lift_high"]), _p(s["p"]),
                     share, base])
    return rows


def _focus_metrics(result: AnalysisResult, treatment: str) -> set[str]:
    """Metrics whose segments the report shows: the failing ones, else the primary ones."""
    d = result.decision(treatment)
    bad = set(d["failing_guardrails"]) | set(d["primary_worse"])
    if bad:
        return bad
    return {m.metric for m in result.metrics if m.treatment == treatment and m.role == "primary"}


def render_text(result: AnalysisResult) -> str:
    """The report as plain text: decision, reasons, where a loss comes from, next test, checks,
    metrics, segments and warnings."""
    s = result.settings
    out: list[str] = []
    for d in result.decisions:
        t = d["treatment"]
        out.append(f"Experiment {result.experiment}: '{t}' vs '{d['control']}'")
        out.append(f"DECISION: {d['verdict'].upper()}")
        out += [f"  - {r}" for r in d["reasons"]]
        if d["drivers"]:
            out.append("Where the loss comes from:")
            out += [f"  - {x['text']}" for x in d["drivers"]]
        out.append("Suggested next test:")
        out.append(f"  {d['next_test']['text']}")
        out.append("")
    srm = result.srm
    shares = s.get("shares", {})
    out.append("Checks:")
    out.append("  units: " + ", ".join(f"{v} {result.counts[v]:,} (expected {shares.get(v, 0):.1%})"
                                        for v in result.variants))
    out.append(f"  sample ratio mismatch: χ² = {srm['chi2']:.2f}, p = {_p(srm['p'])} "
               f"({'MISMATCH' if srm['flagged'] else 'ok'} at p < {srm['threshold']})")
    info = result.data
    out.append(f"  data: {info['units']:,} units, {info['events']:,} events, {_date(info['start'])} to "
               f"{_date(info['end'])} ({info['days']:.1f} days); pre-period (CUPED): "
               f"{'yes' if info['pre_period'] else 'no'}; decision basis: {s.get('decision_basis')}")
    out.append("")
    for d in result.decisions:
        t = d["treatment"]
        method = "CUPED" if any(m.method == "cuped" for m in result.metrics if m.treatment == t) else "plain"
        out.append(f"Metrics ('{t}' vs '{d['control']}'; headline numbers {method}; {1 - s.get('alpha', 0.05):.0%} "
                   f"CIs of the relative lift; p adj. = {s.get('correction')} over the primary family):")
        out.append(_table(_METRIC_HEADERS, _metric_rows(result, t)))
        out.append("")
        focus = _focus_metrics(result, t)
        rows = _segment_rows(result.segments.get(t, []), focus)
        if rows:
            out.append(f"Segments ({', '.join(sorted(focus))}):")
            out.append(_table(_SEGMENT_HEADERS, rows))
            out.append("")
    if result.warnings:
        out.append("Warnings:")
        out += [f"  - {w}" for w in result.warnings]
    return "\n".join(out).rstrip() + "\n"


# ================================================================================================
# HTML
# ================================================================================================


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def plot_lifts(result: AnalysisResult, treatment: str) -> str:
    """Forest plot: each metric's relative lift with its CI (plain, CUPED, bootstrap) and guardrail limits."""
    ms = [m for m in result.metrics if m.treatment == treatment]
    fig = _figure(7.5, 0.55 * len(ms) + 1.2)
    ax = fig.add_subplot()
    for i, m in enumerate(reversed(ms)):
        c = _ROLE_COLOURS.get(m.role, "#333")
        pl = m.plain
        if pl["lift"] is not None and pl["lift_low"] is not None:
            ax.plot([pl["lift_low"] * 100, pl["lift_high"] * 100], [i + 0.18] * 2, color=c, alpha=0.45, lw=2,
                    label="plain CI" if i == 0 else None)
        if m.bootstrap and m.bootstrap[0] is not None:
            ax.plot([m.bootstrap[0] * 100, m.bootstrap[1] * 100], [i - 0.18] * 2, color=c, ls=":", lw=2,
                    label="bootstrap CI" if i == 0 else None)
        if m.lift is not None and m.lift_low is not None:
            ax.errorbar(m.lift * 100, i, xerr=[[(m.lift - m.lift_low) * 100], [(m.lift_high - m.lift) * 100]],
                        fmt="o", color=c, capsize=3, label=f"{m.method} CI" if i == 0 else None)
        if m.guardrail:
            ax.plot([-m.guardrail["max_drop"] * 100] * 2, [i - 0.4, i + 0.4], color="#c62828", lw=1)
    ax.axvline(0, color="#999", lw=1)
    ax.set_yticks(range(len(ms)), [f"{m.label} ({m.role})" for m in reversed(ms)])
    ax.set_xlabel(f"relative change of '{treatment}' vs '{result.control}' (%)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def plot_sequential(result: AnalysisResult, treatment: str, metrics: list[MetricResult]) -> str:
    """Lift over the looks with the always-valid confidence sequence, and p-values (fixed vs always-valid)."""
    fig = _figure(7.5, 5.0)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    t0 = result.data.get("start") or 0.0
    palette = ["#1f5fbf", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f"]
    span = 0.0
    for j, m in enumerate(metrics):
        looks = (m.sequential or {}).get("looks", [])
        days = [(row["at"] - t0) / 86400.0 for row in looks]
        c = palette[j % len(palette)]
        late = [v for r in looks[len(looks) // 2:] for v in (r["cs_low"], r["cs_high"], r["lift"]) if v is not None]
        span = max(span, *(abs(v) * 100 for v in late), 0.0)
        lift = [None if r["lift"] is None else r["lift"] * 100 for r in looks]
        ax1.plot(days, lift, marker="o", ms=3, color=c, label=m.label)
        lo = [None if r["cs_low"] is None else r["cs_low"] * 100 for r in looks]
        hi = [None if r["cs_high"] is None else r["cs_high"] * 100 for r in looks]
        pts = [(d, a, b) for d, a, b in zip(days, lo, hi) if a is not None and b is not None]
        if pts:
            ax1.fill_between([p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts], color=c, alpha=0.15)
        ax2.plot(days, [r["p"] for r in looks], ls=":", color=c)
        ax2.plot(days, [r["p_always_valid"] for r in looks], color=c, label=f"{m.label} always-valid")
    ax1.axhline(0, color="#999", lw=1)
    if span > 0:  # the first looks' intervals are very wide: frame the later ones
        ax1.set_ylim(-1.5 * span, 1.5 * span)
    ax1.set_ylabel("lift (%) and confidence sequence")
    ax1.legend(fontsize=8)
    ax2.axhline(result.settings.get("alpha", 0.05), color="#c62828", lw=1)
    ax2.set_yscale("log")
    ax2.set_ylabel("p (dotted: fixed-horizon)")
    ax2.set_xlabel("days since start")
    ax2.legend(fontsize=8)
    return _png(fig)


def plot_segments(result: AnalysisResult, treatment: str, metric: str) -> str:
    """Per segment: the lift inside it (with CI) and its share of the change against its share of the metric."""
    segs = [s for s in result.segments.get(treatment, []) if s["metric"] == metric]
    fig = _figure(9.0, 0.45 * len(segs) + 1.4)
    ax1, ax2 = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    labels = [f"{DIMENSION_LABELS.get(s['dimension'], s['dimension'])}: {s['segment']}" for s in segs]
    for i, s in enumerate(segs):
        if s["lift"] is None or s["lift_low"] is None:
            continue
        bad = s["p"] is not None and s["p"] < 0.05
        err = [[(s["lift"] - s["lift_low"]) * 100], [(s["lift_high"] - s["lift"]) * 100]]
        ax1.errorbar(s["lift"] * 100, i, xerr=err, fmt="o", capsize=3,
                     color="#c62828" if bad and s["lift"] < 0 else "#1f5fbf")
    ax1.axvline(0, color="#999", lw=1)
    ax1.set_yticks(range(len(segs)), labels)
    ax1.set_xlabel(f"{metric}: lift inside the segment (%)")
    shares = [(s.get("share_of_change") or 0.0) * 100 for s in segs]
    base = [(s.get("baseline_share") or 0.0) * 100 for s in segs]
    y = list(range(len(segs)))
    ax2.barh([v + 0.2 for v in y], shares, height=0.4, color="#c62828", label="share of the change")
    ax2.barh([v - 0.2 for v in y], base, height=0.4, color="#9e9e9e", label="share of the metric")
    ax2.set_xlabel("%")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def plot_counts(result: AnalysisResult) -> str:
    """Units per variant against the configured split."""
    fig = _figure(5.0, 2.4)
    ax = fig.add_subplot()
    v = result.variants
    ax.bar(range(len(v)), [result.counts[x] for x in v], color="#1f5fbf", alpha=0.8, label="observed")
    ax.scatter(range(len(v)), result.srm["expected"], color="#c62828", zorder=3, label="expected")
    ax.set_xticks(range(len(v)), v)
    ax.set_ylabel("units")
    ax.legend(fontsize=8)
    return _png(fig)


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.verdict{display:inline-block;padding:.35rem .8rem;border-radius:4px;color:#fff;font-weight:700;font-size:1.2rem}
table{border-collapse:collapse;font-size:.82rem;margin:.5rem 0}td,th{border:1px solid #ddd;padding:3px 6px;
text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}
.box{background:#f7f7f9;border-left:4px solid #1f5fbf;padding:.6rem 1rem;margin:.6rem 0}
img{max-width:100%}.warn{color:#b26a00}
"""


def render_html(result: AnalysisResult, path: str | Path | None = None) -> str:
    """The HTML report (written to `path` when given); returns the HTML text."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>A/B report: {html.escape(result.experiment)}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>A/B report: {html.escape(result.experiment)}</h1>"]
    for d in result.decisions:
        t = d["treatment"]
        colour = _VERDICT_COLOURS.get(d["verdict"], "#333")
        parts.append(f"<h2>'{html.escape(t)}' vs '{html.escape(d['control'])}'</h2>")
        parts.append(f"<p><span class='verdict' style='background:{colour}'>{html.escape(d['verdict'].upper())}"
                     "</span></p><ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in d["reasons"]) + "</ul>")
        if d["drivers"]:
            parts.append("<h3>Where the loss comes from</h3><ul>" +
                         "".join(f"<li>{html.escape(x['text'])}</li>" for x in d["drivers"]) + "</ul>")
        parts.append(f"<div class='box'><b>Suggested next test.</b> {html.escape(d['next_test']['text'])}</div>")
        parts.append("<h3>Metrics</h3>" + _html_table(_METRIC_HEADERS, _metric_rows(result, t)))
        parts.append(f"<img alt='lifts' src='{plot_lifts(result, t)}'>")
        focus = _focus_metrics(result, t)
        for metric in sorted(focus):
            if any(s["metric"] == metric for s in result.segments.get(t, [])):
                parts.append(f"<h3>Segments: {html.escape(metric)}</h3>")
                parts.append(_html_table(_SEGMENT_HEADERS, _segment_rows(result.segments.get(t, []), {metric})))
                parts.append(f"<img alt='segments {html.escape(metric)}' src='{plot_segments(result, t, metric)}'>")
        seq = [m for m in result.metrics if m.treatment == t and (m.role == "primary" or m.metric in focus)]
        if seq and len(result.looks) > 1:
            parts.append("<h3>Sequential view (safe to peek: always-valid p-values and confidence sequences)</h3>")
            parts.append(f"<img alt='sequential' src='{plot_sequential(result, t, seq)}'>")
    srm = result.srm
    info = result.data
    parts.append("<h2>Checks</h2>")
    parts.append(f"<p>Sample ratio mismatch: χ² = {srm['chi2']:.2f}, p = {_p(srm['p'])} — "
                 f"<b>{'MISMATCH' if srm['flagged'] else 'ok'}</b> (threshold p &lt; {srm['threshold']}).</p>")
    parts.append(f"<img alt='units' src='{plot_counts(result)}'>")
    parts.append(f"<p>{info['units']:,} units, {info['events']:,} events, {_date(info['start'])} to "
                 f"{_date(info['end'])} ({info['days']:.1f} days); pre-period data (CUPED): "
                 f"{'yes' if info['pre_period'] else 'no'}; decision basis: "
                 f"{html.escape(str(result.settings.get('decision_basis')))}.</p>")
    if result.warnings:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li class='warn'>{html.escape(w)}</li>"
                                                      for w in result.warnings) + "</ul>")
    parts.append("</body></html>")
    text = "\n".join(parts)
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return text
