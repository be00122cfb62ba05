"""Training at scale: single-node ALS (`implicit`) against Spark-local ALS, time and peak memory side by side.

`run_train_scale` writes (once, then reuses) synthetic power-law logs of each size
(`tastemaker.data.synthetic.write_power_law`), then trains the same ALS — same factors,
iterations, λ (converted to Spark's regParam as `tastemaker.spark.als` explains), alpha and value
weighting — with each engine, from the same Parquet folder to a fitted tastemaker model in memory:

- ``implicit``: pyarrow reads the folder → `Interactions` (duplicate check, vocabularies) →
  the `als` model (`implicit`'s conjugate-gradient ALS on every core);
- ``spark``: a local Spark session (``local[*]``) reads the folder → duplicates merged, ids indexed
  → `pyspark.ml` ALS → factors pulled back → the same `als` model.

Every (engine, size) runs in a fresh process, so one run's memory never counts against another;
the parent samples the resident memory of that process and all its children (Spark's JVM is a
child of the Python driver) every `SAMPLE_SECONDS` and keeps the peak of the sum. A run that
exceeds `timeout_s` is killed and recorded as such, as is one that fails (e.g. out of memory),
with the reason. The JVM's start (≈ 8 s) is timed separately and not part of the training time.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tastemaker.bench.suites import machine_info
from tastemaker.errors import ConfigError, require

ENGINES = ("implicit", "spark")
DEFAULT_SIZES = (1_000_000, 5_000_000, 20_000_000)
SAMPLE_SECONDS = 0.2


def default_driver_memory() -> str:
    """Half of the machine's memory for Spark's local driver (which also runs the tasks), in GiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return "4g"
    return f"{max(1, int(total / 2**30 / 2))}g"


def dataset_path(data_dir: str | Path, size: int, seed: int) -> Path:
    """Where the synthetic log of `size` events lives; written by `write_power_law` when missing."""
    from tastemaker.data.synthetic import write_power_law

    folder = Path(data_dir) / f"power-law-{size}-seed{seed}"
    meta = folder / "_generator.json"
    if meta.is_file():
        info = json.loads(meta.read_text())
        if info.get("interactions") == size and info.get("seed") == seed:
            return folder
    return write_power_law(folder, size, seed=seed)


def run_train_scale(
    sizes: Sequence[int] = DEFAULT_SIZES,
    engines: Sequence[str] = ENGINES,
    *,
    data_dir: str | Path | None = None,
    factors: int = 32,
    iterations: int = 10,
    regularization: float = 22.5,
    alpha: float = 1.25,
    seed: int = 0,
    master: str = "local[*]",
    driver_memory: str | None = None,
    timeout_s: float = 3600.0,
    plot: str | Path | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train every engine at every size; returns the bench document (rows, settings, machine).

    Rows: engine, interactions, status (``ok``, ``failed``, ``timeout``), ``load_seconds`` (data
    to `Interactions`; for Spark reading, merging, indexing and collecting), ``train_seconds``
    (the ALS itself), ``total_seconds`` (Parquet to fitted model), ``session_seconds`` (Spark's
    start), ``peak_rss_mib`` (the whole process tree), ``peak_rss_by_process_mib`` and ``error``.
    With `plot`, the growth curves are drawn to that PNG file (`plot_scale`).
    """
    require("psutil", "spark")
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise ConfigError(f"unknown engine(s) {unknown}; use {', '.join(ENGINES)}")
    if data_dir is None:
        from tastemaker.data.download import cache_dir

        data_dir = cache_dir() / "scale"
    settings = {"factors": factors, "iterations": iterations, "regularization": regularization, "alpha": alpha,
                "weighting": "value", "seed": seed, "master": master,
                "driver_memory": driver_memory or default_driver_memory(), "timeout_s": timeout_s}
    rows = []
    for size in sizes:
        path = dataset_path(data_dir, int(size), seed)
        for engine in engines:
            row = {"engine": engine, "interactions": int(size), **measure(engine, path, settings, timeout_s)}
            rows.append(row)
            if on_result is not None:
                on_result(row)
    doc = {"bench": "train-scale", "machine": machine_info(), "settings": settings, "data_dir": str(data_dir),
           "rows": rows}
    if plot is not None:
        doc["plot"] = str(plot_scale(doc, plot))
    return doc


def measure(engine: str, path: Path, settings: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one training in a fresh process, sampling its process tree's memory; the run's result row."""
    import psutil

    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(sender, engine, str(path), settings), daemon=False)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc.start()
    sender.close()
    peak = 0.0
    peak_by: dict[str, float] = {}
    result: dict[str, Any] | None = None
    status = "ok"
    root = psutil.Process(proc.pid)
    while True:
        total, by = _tree_rss(root)
        peak = max(peak, total)
        for name, rss in by.items():
            peak_by[name] = max(peak_by.get(name, 0.0), rss)
        if receiver.poll(SAMPLE_SECONDS):
            try:
                result = receiver.recv()
            except EOFError:
                result = None
            break
        if not proc.is_alive():
            break
        if time.perf_counter() - start > timeout_s:
            status = "timeout"
            _kill_tree(root)
            break
    proc.join(timeout=60)
    if proc.is_alive():  # pragma: no cover - a child that ignores SIGTERM
        _kill_tree(root)
        proc.join()
    row: dict[str, Any] = {"status": status, "wall_seconds": time.perf_counter() - start,
                           "peak_rss_mib": peak / 2**20,
                           "peak_rss_by_process_mib": {k: v / 2**20 for k, v in sorted(peak_by.items())},
                           "load_average_before": load_before}
    if status == "timeout":
        row["error"] = f"killed after {timeout_s:g} s"
    elif result is None:
        row["status"] = "failed"
        row["error"] = f"the process died (exit code {proc.exitcode}) without a result — out of memory?"
    else:
        if "error" in result:
            row["status"] = "failed"
        row.update(result)
    return row


def _tree_rss(root) -> tuple[float, dict[str, float]]:
    import psutil

    total, by = 0.0, {}
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0, {}
    for p in procs:
        try:
            rss = float(p.memory_info().rss)
            name = "java" if "java" in p.name() else "python" if "python" in p.name() else p.name()
        except psutil.Error:
            continue
        total += rss
        by[name] = by.get(name, 0.0) + rss
    return total, by


def _kill_tree(root) -> None:
    import psutil

    try:
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=30)


def _child(conn, engine: str, path: str, settings: dict[str, Any]) -> None:
    """The measured process: train once and send back a dict of timings (or the error)."""
    try:
        out = _train_implicit(path, settings) if engine == "implicit" else _train_spark(path, settings)
    except BaseException as exc:  # report every failure, including MemoryError, to the parent
        out = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
               "traceback": traceback.format_exc(limit=5)}
    conn.send(out)
    conn.close()


def _als_config(settings: dict[str, Any]) -> dict[str, Any]:
    return {"factors": settings["factors"], "iterations": settings["iterations"],
            "regularization": settings["regularization"], "alpha": settings["alpha"],
            "weighting": settings["weighting"], "seed": settings["seed"]}


def _train_implicit(path: str, settings: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from tastemaker.data.interactions import Interactions
    from tastemaker.models.implicit_mf import ALS

    t0 = time.perf_counter()
    table = pq.read_table(path)
    data = Interactions.from_arrays(table.column("user").to_numpy(), table.column("item").to_numpy(),
                                    table.column("value").to_numpy(), explicit=False, duplicates="sum")
    del table
    t1 = time.perf_counter()
    model = ALS(_als_config(settings)).fit(data)
    t2 = time.perf_counter()
    return {"load_seconds": t1 - t0, "train_seconds": t2 - t1, "total_seconds": t2 - t0,
            "users": model.n_users, "items": model.n_items}


def _train_spark(path: str, settings: dict[str, Any]) -> dict[str, Any]:
    from tastemaker.spark.als import DataSource, SparkALS
    from tastemaker.spark.session import SparkSettings, get_spark

    t0 = time.perf_counter()
    spark = get_spark(SparkSettings(master=settings["master"], driver_memory=settings["driver_memory"]))
    t1 = time.perf_counter()
    trainer = SparkALS(_als_config(settings))
    model = trainer.fit(DataSource(path=path, value_col="value", explicit=False, duplicates="sum"), spark=spark)
    seconds = trainer.report["seconds"]
    t2 = time.perf_counter()
    return {"session_seconds": t1 - t0, "load_seconds": seconds["read_and_collect"], "train_seconds": seconds["als"],
            "total_seconds": t2 - t1, "users": model.n_users, "items": model.n_items,
            "reg_param": trainer.report["reg_param"]}


def plot_scale(doc: dict[str, Any], path: str | Path) -> Path:
    """Two log-log panels — training time and peak memory against interactions, one line per engine;
    failed or killed runs are marked with an x at the time they failed or were stopped."""
    require("matplotlib", "spark")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2))
    FigureCanvasAgg(fig)
    ax_time, ax_mem = fig.subplots(1, 2)
    engines = sorted({r["engine"] for r in doc["rows"]}, key=lambda e: ENGINES.index(e) if e in ENGINES else 99)
    labels = {"implicit": "single node (implicit)", "spark": f"Spark {doc['settings'].get('master', 'local')}"}
    for engine in engines:
        rows = [r for r in doc["rows"] if r["engine"] == engine]
        ok = [r for r in rows if r["status"] == "ok"]
        bad = [r for r in rows if r["status"] != "ok"]
        line = ax_time.plot([r["interactions"] for r in ok], [r["total_seconds"] for r in ok], "o-",
                            label=labels.get(engine, engine))[0]
        ax_mem.plot([r["interactions"] for r in ok], [r["peak_rss_mib"] / 1024 for r in ok], "o-",
                    color=line.get_color(), label=labels.get(engine, engine))
        if bad:
            ax_time.plot([r["interactions"] for r in bad], [r["wall_seconds"] for r in bad], "x", ms=10,
                         color=line.get_color(), label=f"{labels.get(engine, engine)}: {bad[0]['status']}")
            ax_mem.plot([r["interactions"] for r in bad], [r["peak_rss_mib"] / 1024 for r in bad], "x", ms=10,
                        color=line.get_color())
    s = doc["settings"]
    ax_time.set(xscale="log", yscale="log", xlabel="interactions", ylabel="seconds, Parquet → fitted model",
                title=f"training time ({s['factors']} factors, {s['iterations']} iterations)")
    ax_mem.set(xscale="log", yscale="log", xlabel="interactions", ylabel="GiB",
               title="peak resident memory (process tree, JVM included)")
    for ax in (ax_time, ax_mem):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    m = doc["machine"]
    fig.suptitle(f"{m['cores']} cores, {m['memory_gib']} GiB — {m['cpu']}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def markdown_table(doc: dict[str, Any]) -> str:
    """The rows as a Markdown table (engine × size: seconds and peak memory)."""
    lines = ["| interactions | engine | status | load s | train s | total s | Spark start s | peak RSS GiB "
             "(python / java) |", "|---:|---|---|---:|---:|---:|---:|---|"]

    def num(row: dict[str, Any], key: str) -> str:
        return f"{row[key]:.1f}" if isinstance(row.get(key), (int, float)) else "–"

    for r in doc["rows"]:
        by = r.get("peak_rss_by_process_mib", {})
        split = " / ".join(f"{by[k] / 1024:.2f}" for k in ("python", "java") if k in by)
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('error', '')}"
        lines.append(f"| {r['interactions']:,} | {r['engine']} | {status} | {num(r, 'load_seconds')} | "
                     f"{num(r, 'train_seconds')} | {num(r, 'total_seconds')} | {num(r, 'session_seconds')} | "
                     f"{r['peak_rss_mib'] / 1024:.2f} ({split}) |")
    return "\n".join(lines)


__all__ = ["DEFAULT_SIZES", "ENGINES", "dataset_path", "default_driver_memory", "markdown_table", "measure",
           "plot_scale", "run_train_scale"]
