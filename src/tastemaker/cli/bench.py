"""`tastemaker bench …` — benchmark suites that run our models and the peers in the same run.

One subcommand per suite: the MovieLens suites share their options; the serving suite has its own.
"""

from __future__ import annotations

from pathlib import Path

import click

from tastemaker.bench.suites import SUITES
from tastemaker.cli.common import console, err_console, progress, write_json


@click.group()
def bench() -> None:
    """Benchmarks: ours and the peers side by side, with ratios, as tables and JSON."""


def _ml_suite_command(suite_name: str) -> click.Command:
    spec = SUITES[suite_name]

    @click.command(suite_name, help=f"{suite_name}: protocols {', '.join(spec.protocols)} on {spec.dataset}.")
    @click.option("--peers", is_flag=True, help="Run the peer libraries on the same splits in the same run.")
    @click.option("--models", default=None, help="Only these of our models (comma-separated).")
    @click.option("--path", "dataset_path", type=click.Path(path_type=Path), default=None,
                  help="Where the data set lives (default: $TASTEMAKER_DATA_DIR or download).")
    @click.option("--output", type=click.Path(path_type=Path), default=None, help="Write the bench JSON here.")
    @click.option("--markdown", type=click.Path(path_type=Path), default=None,
                  help="Update this suite's section of a Markdown file (e.g. docs/benchmarks.md).")
    @click.option("--track", is_flag=True, help="Log to MLflow.")
    @click.pass_obj
    def command(obj, peers, models, dataset_path, output, markdown, track) -> None:
        run_ml_suite(obj, suite_name, peers, models, dataset_path, output, markdown, track)

    return command


def run_ml_suite(obj, suite, peers, models, dataset_path, output, markdown, track) -> None:
    from tastemaker.bench.suites import get_suite, run_suite
    from tastemaker.data import load_dataset
    from tastemaker.evaluation.report import bench_markdown, comparison_table, results_table, update_markdown_section
    from tastemaker.tracking import Tracker

    spec = get_suite(suite)
    only = [m.strip() for m in models.split(",")] if models else None

    def show(result) -> None:
        bits = ", ".join(f"{m} {result.metrics[m]:.4f}" for m in spec.headline
                         if result.metrics.get(m) is not None)
        err_console.print(f"  {result.system}/{result.model}: {bits} (fit {result.fit_seconds:.2f} s)",
                          highlight=False)

    tracker = Tracker(track)
    with progress(obj):
        dataset = load_dataset(spec.dataset, dataset_path)
        with tracker.run(f"bench {suite}", params={"suite": suite, "peers": peers},
                         tags={"command": "bench", "data_fingerprint": dataset.interactions.fingerprint()}) as t:
            doc = run_suite(suite, dataset, peers=peers, models=only, on_result=show)
            for row in doc["rows"]:
                t.log_metrics(row["metrics"], prefix=f"{row['protocol']}.{row['system']}.{row['model']}.")
            t.log_dict(doc, "bench.json")
    for proto in doc["protocols"]:
        rows = [r for r in doc["rows"] if r["protocol"] == proto["name"]]
        console.print(results_table(rows, list(spec.headline),
                                    title=f"{suite} — {proto['name']}: {proto['description']}"))
        compared = [c for c in doc["comparisons"] if c["protocol"] == proto["name"]]
        if compared:
            console.print(comparison_table(compared, list(spec.headline), title=f"ours vs peer — {proto['name']}"))
    m = doc["machine"]
    console.print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}",
                  highlight=False)
    write_json(output, doc)
    if markdown is not None:
        command = " ".join(["tastemaker bench", suite, *(["--peers"] if peers else []),
                            *([f"--models {models}"] if models else [])])
        update_markdown_section(markdown, f"suite:{suite}", bench_markdown(doc, list(spec.headline), command))
        console.print(f"updated {markdown}")


for _name in SUITES:
    bench.add_command(_ml_suite_command(_name))


@bench.command("serve-latency")
@click.option("--skus", default=2_000_000, show_default=True, type=click.IntRange(min=1000))
@click.option("--store", type=click.Choice(["memory", "redis"]), default="memory", show_default=True)
@click.option("--requests", "n_requests", default=10_000, show_default=True, type=click.IntRange(min=100))
@click.option("--http/--no-http", default=False, show_default=True,
              help="Also measure over HTTP against a real server process on loopback.")
@click.option("--rate", default=200.0, show_default=True, help="Open-loop HTTP request rate (req/s).")
@click.option("--wrk-seconds", default=30, show_default=True)
@click.option("--connections", default=4, show_default=True, help="wrk connections.")
@click.option("--users", "n_users", default=100_000, show_default=True)
@click.option("--ranker", type=click.Choice(["lightgbm", "linear"]), default="lightgbm", show_default=True)
@click.option("--rules", type=click.Path(path_type=Path), default=None, help="Business-rules file (TOML/JSON).")
@click.option("--redis-url", default=None, help="Redis for --store redis (default redis://127.0.0.1:6379/0).")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Write the bench JSON here.")
@click.pass_obj
def serve_latency(obj, skus, store, n_requests, http, rate, wrk_seconds, connections, n_users, ranker, rules,
                  redis_url, output) -> None:
    """Latency of the whole ranking stage: retrieve 500 → features → ranker → rules → top 20."""
    from rich.table import Table

    from tastemaker.bench.serving import run_serve_latency

    with progress(obj):
        doc = run_serve_latency(skus, store=store, n_requests=n_requests, http=http, n_users=n_users, ranker=ranker,
                                rules=rules, rate=rate, wrk_seconds=wrk_seconds, wrk_connections=connections,
                                redis_url=redis_url, log=lambda s: err_console.print(s, highlight=False))
    table = Table(title=f"serve-latency: {skus:,} SKUs, {store} store")
    columns = ["p50_ms", "p95_ms", "p99_ms", "rps", "errors", "memory_mb"]
    table.add_column("mode")
    for c in columns:
        table.add_column(c, justify="right")
    for row in doc["rows"]:
        values = [row["metrics"].get(c) for c in columns]
        table.add_row(row["protocol"], *("—" if v is None else f"{v:,.2f}" if isinstance(v, float) else f"{v:,}"
                                      for v in values))
    console.print(table)
    write_json(output, doc)
