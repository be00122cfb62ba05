"""Tables of evaluation and benchmark results (rich for terminals, Markdown for docs)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

LOWER_IS_BETTER = frozenset({"rmse", "mae"})


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def results_table(rows: list[dict[str, Any]], metrics: list[str], *, title: str = "") -> Table:
    """One line per bench/evaluation row: system, model, metrics, fit and predict seconds."""
    table = Table(title=title or None)
    table.add_column("system")
    table.add_column("model")
    for m in metrics:
        table.add_column(m, justify="right")
    table.add_column("fit s", justify="right")
    table.add_column("predict s", justify="right")
    best = {}
    for m in metrics:
        vals = [r["metrics"].get(m) for r in rows if r["metrics"].get(m) is not None]
        if vals:
            best[m] = min(vals) if m in LOWER_IS_BETTER else max(vals)
    for r in rows:
        cells = []
        for m in metrics:
            v = r["metrics"].get(m)
            text = _fmt(v)
            cells.append(f"[bold]{text}[/bold]" if v is not None and v == best.get(m) else text)
        table.add_row(r["system"], r["model"], *cells, _fmt(r["fit_seconds"], 2), _fmt(r["predict_seconds"], 2))
    return table


def comparison_table(comparisons: list[dict[str, Any]], metrics: list[str], *, title: str = "") -> Table:
    """Ours vs counterpart peer: metric ratios (ours / peer) and fit speed-up (peer s / ours s)."""
    table = Table(title=title or None)
    table.add_column("ours")
    table.add_column("peer")
    shown = [m for m in metrics if any(m in c["metric_ratio"] for c in comparisons)]
    for m in shown:
        table.add_column(f"{m} ours/peer", justify="right")
    table.add_column("fit speed-up", justify="right")
    for c in comparisons:
        cells = []
        for m in shown:
            ratio = c["metric_ratio"].get(m)
            if ratio is None:
                cells.append("—")
                continue
            better = ratio < 1 if m in LOWER_IS_BETTER else ratio > 1
            cells.append(f"{ratio:.3f} {'✓' if better else '✗'}")
        speed = c.get("fit_speedup")
        table.add_row(c["ours"], c["peer"], *cells, "—" if speed is None else f"{speed:.1f}×")
    return table


def markdown_table(rows: list[dict[str, Any]], metrics: list[str]) -> str:
    head = ["system", "model", *metrics, "fit s", "predict s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["system"], r["model"], *(_fmt(r["metrics"].get(m)) for m in metrics),
                 _fmt(r["fit_seconds"], 2), _fmt(r["predict_seconds"], 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
