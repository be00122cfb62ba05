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
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="HTTP server processes [default: one per core, at most 2, with Redis; 1 with memory].")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Write the bench JSON here.")
@click.pass_obj
def serve_latency(obj, skus, store, n_requests, http, rate, wrk_seconds, connections, n_users, ranker, rules,
                  redis_url, workers, output) -> None:
    """Latency of the whole ranking stage: retrieve 500 → features → ranker → rules → top 20."""
    from rich.table import Table

    from tastemaker.bench.serving import run_serve_latency

    with progress(obj):
        doc = run_serve_latency(skus, store=store, n_requests=n_requests, http=http, n_users=n_users, ranker=ranker,
                                rules=rules, rate=rate, wrk_seconds=wrk_seconds, wrk_connections=connections,
                                redis_url=redis_url, workers=workers,
                                log=lambda s: err_console.print(s, highlight=False))
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


def _number(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.4f}" if abs(v) < 10 else f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _rows_table(title: str, doc: dict, columns: list[str], label=lambda r: f"{r['system']}/{r['model']}"):
    """A rich table of bench rows: one line per row, the chosen metric columns."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("row")
    for c in columns:
        table.add_column(c, justify="right")
    for row in doc["rows"]:
        values = [row.get("metrics", {}).get(c, row.get(c)) for c in columns]
        table.add_row(label(row), *(_number(v) for v in values))
    return table


@bench.command("retail-rank")
@click.option("--path", "data_path", type=click.Path(path_type=Path), default=None,
              help="The online-retail folder or the data folder holding it (default: $TASTEMAKER_DATA_DIR).")
@click.option("--quick", is_flag=True, help="One-point grids, a small ranker: a smoke run, not the bench numbers.")
@click.option("--bootstrap", default=1000, show_default=True, type=click.IntRange(min=0),
              help="Bootstrap resamples for the 95% intervals (0: none).")
@click.option("--value-weight", type=float, default=None,
              help="Fix w of the ranker+ev row (score = log P + w·log price); default: chosen on validation.")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Write the bench JSON here.")
@click.option("--markdown", type=click.Path(path_type=Path), default=None,
              help="Update this Markdown file's retail-rank section (e.g. docs/benchmarks.md).")
@click.pass_obj
def retail_rank(obj, data_path, quick, bootstrap, value_weight, output, markdown) -> None:
    """Protocol retail-temporal on UCI Online Retail: every retrieval source alone, ALS, EASE, popularity,
    buy-again, a buy-again+ALS blend and the full ranker (union of 500 → features → LightGBM LambdaMART),
    each tuned on validation only."""
    from tastemaker.bench.retail import run_retail_bench
    from tastemaker.evaluation.retail import HEADLINE

    with progress(obj):
        doc = run_retail_bench(data_path, quick=quick, bootstrap=bootstrap, value_weight=value_weight,
                               log=lambda s: err_console.print(s, highlight=False))
    console.print(_rows_table("retail-rank (retail-temporal)", doc, [*HEADLINE, "fit_seconds"],
                              label=lambda r: r["model"]))
    s = doc["summary"]
    verdict = "holds" if s["ratio_to_best_other"] >= s["target_ratio"] else "missed"
    c = doc["ranker"]["calibration_test"]
    lines = [f"ranker ndcg@10 {s['ranker_ndcg@10']:.4f} = {s['ratio_to_best_other']:.3f} × the best other row "
             f"({s['best_other_row']} {s['best_other_ndcg@10']:.4f}); target ≥ {s['target_ratio']:.2f}×: {verdict}",
             f"revenue-weighted recall@20: ranker {s['ranker_revenue_recall@20']:.4f}, ranker+ev "
             f"{s['ranker_ev_revenue_recall@20']:.4f}, buy-again+als blend {s['blend_revenue_recall@20']:.4f}; "
             f"candidate recall@500 {s['candidate_recall@500']:.4f}",
             f"calibration of P(purchase) on the test window: ECE {c.get('ece')}, Brier {c.get('brier')} "
             f"(base rate {c.get('base_rate')})"]
    for line in lines:
        console.print(line, highlight=False)
    write_json(output, doc)
    if markdown is not None:
        from tastemaker.evaluation.report import bench_markdown, update_markdown_section

        command = "tastemaker bench retail-rank" + (" --quick" if quick else "")
        body = bench_markdown(doc, [*HEADLINE], command) + "\n" + "\n".join(f"- {line}" for line in lines) + "\n"
        update_markdown_section(markdown, "suite:retail-rank", body)
        console.print(f"updated {markdown}")


@bench.command("ann")
@click.option("--vectors", "n_vectors", default=1_000_000, show_default=True, type=click.IntRange(min=1000))
@click.option("--dim", default=64, show_default=True)
@click.option("--queries", "n_queries", default=1000, show_default=True)
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Write the bench JSON here.")
@click.pass_obj
def ann(obj, n_vectors, dim, n_queries, output) -> None:
    """faiss (IVF, HNSW) and usearch (HNSW) against exact search: recall@100, latency, build time, memory."""
    from tastemaker.bench.ann import run_ann_bench

    with progress(obj):
        doc = run_ann_bench(n_vectors, dim, n_queries=n_queries,
                            on_row=lambda r: err_console.print(f"  {r['system']}/{r['model']} done", highlight=False))
    console.print(_rows_table(f"ANN at {n_vectors:,} × {dim}", doc,
                              ["recall@100", "p50_ms", "p95_ms", "p99_ms", "qps", "build_seconds", "memory_mb"]))
    write_json(output, doc)


@bench.command("diversity")
@click.option("--path", "data_path", type=click.Path(path_type=Path), default=None,
              help="Folder holding ml-100k/ and globo-news-clicks/ (default: $TASTEMAKER_DATA_DIR).")
@click.option("--datasets", default="ml-100k,g1", show_default=True)
@click.option("--g1-hours", default=24, show_default=True)
@click.option("--max-requests", default=3000, show_default=True, help="G1 sessions scored.")
@click.option("--png", type=click.Path(path_type=Path), default=None, help="Write the trade-off curves here.")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Write the bench JSON here.")
@click.pass_obj
def diversity(obj, data_path, datasets, g1_hours, max_requests, png, output) -> None:
    """Relevance vs diversity: NDCG@10 against intra-list diversity, coverage and novelty as MMR's and
    calibrated re-ranking's λ move (MovieLens 100K and a G1 prefix)."""
    from tastemaker.bench.diversity import run_diversity_bench

    with progress(obj):
        doc = run_diversity_bench(data_path, datasets=tuple(d.strip() for d in datasets.split(",")),
                                  g1_hours=g1_hours, g1_max_requests=max_requests, png=png,
                                  log=lambda s: err_console.print(s, highlight=False))
    console.print(_rows_table("relevance vs diversity", doc, ["lambda", "ndcg@10", "ild@10", "coverage@10",
                                                               "novelty@10"],
                              label=lambda r: f"{r.get('dataset')}/{r.get('method', r.get('model'))}"))
    if png is not None:
        console.print(f"wrote {png}")
    write_json(output, doc)


def _news_command(suite_name: str, description: str) -> click.Command:
    @click.command(suite_name, help=description)
    @click.option("--hours", default=None, type=click.IntRange(min=2),
                  help="Only the first N hourly files (e.g. 24 for a one-day smoke run); default: all 385.")
    @click.option("--models", default=None, help="Only these session models (comma-separated).")
    @click.option("--path", "data_path", type=click.Path(path_type=Path), default=None,
                  help="The globo-news-clicks folder (default: $TASTEMAKER_DATA_DIR/globo-news-clicks).")
    @click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
                  help="Models replayed in parallel processes (2 on a 2-core machine halves the wall time).")
    @click.option("--output", type=click.Path(path_type=Path), default=None, help="Write the bench JSON here.")
    @click.pass_obj
    def command(obj, hours, models, data_path, workers, output) -> None:
        from tastemaker.bench.news import HEADLINE, run_news_bench
        from tastemaker.evaluation.report import results_table

        only = [m.strip() for m in models.split(",")] if models else None

        def show(row) -> None:
            metrics = row["metrics"]
            err_console.print(f"  {row['model']}: hr@20 {metrics['hr@20']:.4f}, ndcg@20 {metrics['ndcg@20']:.4f}, "
                              f"{row['clicks_per_second']:,.0f} clicks/s", highlight=False)

        with progress(obj):
            doc = run_news_bench(suite_name, data_path, hours=hours, models=only, progress=not obj.get("quiet"),
                                 on_result=show, workers=workers)
        rows = [{**r, "fit_seconds": r.get("fit_seconds") or r.get("replay_seconds") or 0.0,
                 "predict_seconds": r.get("predict_seconds") or 0.0} for r in doc["rows"]]
        console.print(results_table(rows, list(HEADLINE), title=f"{suite_name}: {doc['protocol']}"))
        perf = _rows_table("replay cost", {"rows": doc["rows"]}, ["clicks_per_second", "clicks_per_cpu_second",
                                                                 "peak_memory_mb", "state_mb"],
                           label=lambda r: r["model"])
        console.print(perf)
        write_json(output, doc)

    return command


bench.add_command(_news_command(
    "g1-stream", "G1 news: Transformers4Rec's streaming protocol (hourly windows, last click of each test "
    "session, mean over windows), with slices (fresh articles, first sessions, returning users)."))
bench.add_command(_news_command(
    "g1-live", "G1 news in strict time order: every click before the predicted one is absorbed, as the "
    "service does."))


@bench.command("train-scale")
@click.option("--sizes", default="1000000,5000000,20000000", show_default=True, help="Interactions per data set.")
@click.option("--engines", default="implicit,spark", show_default=True)
@click.option("--factors", default=32, show_default=True)
@click.option("--iterations", default=10, show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Where the synthetic Parquet data sets are written (default: a temporary folder).")
@click.option("--master", default="local[*]", show_default=True)
@click.option("--driver-memory", default=None, help="e.g. 11g")
@click.option("--timeout", "timeout_s", default=3600.0, show_default=True, help="Per engine and size, seconds.")
@click.option("--plot", type=click.Path(path_type=Path), default=None, help="Write the growth curve PNG here.")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Write the bench JSON here.")
@click.pass_obj
def train_scale(obj, sizes, engines, factors, iterations, data_dir, master, driver_memory, timeout_s, plot,
                output) -> None:
    """Single-node (implicit ALS) vs Spark-local ALS training time and peak memory at growing sizes."""
    from tastemaker.bench.scale import markdown_table, run_train_scale

    with progress(obj):
        doc = run_train_scale([int(s) for s in sizes.split(",")], [e.strip() for e in engines.split(",")],
                              data_dir=data_dir, factors=factors, iterations=iterations, master=master,
                              driver_memory=driver_memory, timeout_s=timeout_s, plot=plot,
                              on_result=lambda r: err_console.print(f"  {r}", highlight=False))
    console.print(markdown_table(doc), highlight=False)
    write_json(output, doc)


@bench.command("spark-parity")
@click.option("--path", "dataset_path", type=click.Path(path_type=Path), default=None,
              help="MovieLens 100K (default: $TASTEMAKER_DATA_DIR or download).")
@click.option("--seeds", default="0,1,2", show_default=True)
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Write the bench JSON here.")
@click.pass_obj
def spark_parity(obj, dataset_path, seeds, output) -> None:
    """Spark ALS vs single-node ALS on MovieLens 100K: implicit NDCG@10 (topn-u1), explicit RMSE (rating-folds)."""
    from tastemaker.bench.spark_parity import parity_markdown, run_spark_parity
    from tastemaker.data import load_dataset

    with progress(obj):
        doc = run_spark_parity(load_dataset("ml-100k", dataset_path), seeds=[int(s) for s in seeds.split(",")])
    console.print(parity_markdown(doc), highlight=False)
    write_json(output, doc)
