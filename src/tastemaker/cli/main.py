"""`tastemaker …` — the one command line. It parses argv, calls the library and prints results;
logic lives in the library modules."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from tastemaker.cli.common import (
    console,
    data_options,
    err_console,
    interactions_of,
    load_source,
    progress,
    typed_id,
    write_json,
)
from tastemaker.errors import TastemakerError


class _Group(click.Group):
    """Turns tastemaker's own errors into a one-line message and exit code 2, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TastemakerError as exc:
            err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="tastemaker")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool) -> None:
    """tastemaker: recommendations for content personalisation."""
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet


# --- data -----------------------------------------------------------------------------------------

@cli.group()
def data() -> None:
    """Inspect data sets."""


@data.command("list")
def data_list() -> None:
    """Named data sets the loaders know."""
    from tastemaker.data import DATASETS

    for name in DATASETS:
        console.print(name)


@data.command("info")
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_obj
def data_info(obj, as_json: bool, **source) -> None:
    """Counts, density and the rating histogram of a data set."""
    with progress(obj):
        loaded = load_source(**source)
    info = interactions_of(loaded).describe()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    table = Table(title=f"data set {info['name'] or '(file)'}", show_header=False)
    for key in ("events", "users", "items"):
        table.add_row(key, f"{info[key]:,}")
    table.add_row("density", f"{info['density']:.4%}")
    table.add_row("explicit", str(info["explicit"]))
    for key in ("events_per_user", "events_per_item"):
        s = info[key]
        table.add_row(key.replace("_", " "), f"min {s['min']}, median {s['median']:g}, max {s['max']}")
    if "mean_rating" in info:
        table.add_row("mean rating", f"{info['mean_rating']:.3f}")
    console.print(table)
    if "rating_histogram" in info:
        hist = Table(title="ratings")
        hist.add_column("rating", justify="right")
        hist.add_column("count", justify="right")
        hist.add_column("")
        top = max(info["rating_histogram"].values())
        for value, count in info["rating_histogram"].items():
            hist.add_row(value, f"{count:,}", "█" * max(1, round(40 * count / top)))
        console.print(hist)


# --- models ---------------------------------------------------------------------------------------

@cli.command("models")
def models_cmd() -> None:
    """Models and their settings (with defaults)."""
    from tastemaker.models import get_model_class, model_names

    for name in model_names(available=True):
        cls = get_model_class(name)
        fields = ", ".join(f"{k}={v.default!r}" for k, v in cls.Config.model_fields.items())
        kind = "ratings + ranking" if cls.predicts_ratings is True else "ranking"
        console.print(f"[bold]{name}[/bold] ({kind}): {fields}", highlight=False)


def model_config(name: str | None, config_file: Path | None) -> tuple[str, dict[str, Any]]:
    """Model name and params from --model and/or a TOML file ([model] name=…, [model.params] …)."""
    from tastemaker.config import read_toml
    from tastemaker.errors import ConfigError

    params: dict[str, Any] = {}
    if config_file is not None:
        doc = read_toml(config_file)
        section = doc.get("model", {})
        unknown = set(doc) - {"model"}
        if unknown or set(section) - {"name", "params"}:
            raise ConfigError(f"{config_file}: expected a [model] table with 'name' and [model.params]; "
                              f"found {sorted(unknown | (set(section) - {'name', 'params'}))}")
        if name is not None and section.get("name") not in (None, name):
            raise ConfigError(f"{config_file} configures model {section['name']!r} but --model is {name!r}")
        name = name or section.get("name")
        params = dict(section.get("params", {}))
    if not name:
        raise click.UsageError("name a model with --model or in the config file's [model] table")
    return name, params


@cli.command()
@data_options
@click.option("--model", "model_name", default=None, help="Model name (see `tastemaker models`).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML file: [model] name = …, [model.params] ….")
@click.option("--split", default="full", show_default=True,
              help="Train on the whole data set ('full') or an official split's training part, e.g. u1.")
@click.option("--out", required=True, help="Folder for the model bundle (with --engine spark also hdfs://, s3a://).")
@click.option("--track", is_flag=True, help="Log the run to MLflow.")
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
              help="spark: train ALS on PySpark (same artifact format; see docs/scale-out.md).")
@click.option("--master", default=None, help="--engine spark: Spark master URL (default local[*]; spark-submit's own).")
@click.option("--driver-memory", default=None, help="--engine spark: e.g. 8g.")
@click.pass_obj
def train(obj, model_name, config_file, split, out, track, engine, master, driver_memory, **source) -> None:
    """Fit a model and save it as a plain-data bundle."""
    if engine == "spark":
        train_on_spark(obj, model_name, config_file, split, out, master, driver_memory, source)
        return
    from tastemaker.models import create_model
    from tastemaker.tracking import Tracker

    out = Path(out)
    name, params = model_config(model_name, config_file)
    with progress(obj):
        loaded = load_source(**source)
        if split != "full" and not hasattr(loaded, "split"):
            raise click.UsageError("--split needs a named data set with official splits (--dataset)")
        data_set = interactions_of(loaded) if split == "full" else loaded.split(split).train
        model = create_model(name, params)
        tracker = Tracker(track)
        with tracker.run(f"train {name}", params={"model": name, **model.config.to_dict()},
                         tags={"command": "train", "data_fingerprint": data_set.fingerprint(), "split": split}):
            t0 = time.perf_counter()
            model.fit(data_set)
            seconds = time.perf_counter() - t0
            model.save(out)
            tracker.log_metrics({"fit_seconds": seconds})
            tracker.log_artifact(out)
    console.print(f"trained [bold]{name}[/bold] on {data_set!r} in {seconds:.2f} s → {out}", highlight=False)


def train_on_spark(obj, model_name, config_file, split, out, master, driver_memory, source) -> None:
    """`train --engine spark`: ALS on PySpark. With --data the file is read by Spark itself (it may
    live on HDFS/S3); a named data set is loaded here and handed to Spark."""
    from tastemaker.spark.train import SparkTrainJob, train_spark

    if model_name not in (None, "als"):
        raise click.UsageError(f"--engine spark trains ALS only (got --model {model_name})")
    spark = {"master": master, "driver_memory": driver_memory}
    data = None
    if source.get("data_file") is not None:
        data = {"path": str(source["data_file"]), "user_col": source["user_col"], "item_col": source["item_col"],
                "value_col": source["value_col"], "time_col": source["time_col"], "sep": source["sep"]}
    overrides = {"out": str(out), "spark": spark, **({"data": data} if data else {})}
    if config_file is not None:
        job = SparkTrainJob.from_toml(config_file, **overrides)
    else:
        job = SparkTrainJob.parse({k: v for k, v in overrides.items() if v is not None},
                                  spark={k: v for k, v in spark.items() if v is not None})
    interactions = None
    if job.data is None:
        with progress(obj):
            loaded = load_source(**source)
            interactions = interactions_of(loaded) if split == "full" else loaded.split(split).train
    result = train_spark(job, interactions)
    console.print(f"trained ALS on Spark → {result.out}", highlight=False)
    console.print(json.dumps(result.report, indent=1, default=str), highlight=False)


@cli.command()
@click.option("--model-dir", type=click.Path(path_type=Path), required=True)
@click.option("--user", "users", multiple=True, required=True, help="User id (repeat for several).")
@click.option("-k", "k", default=10, show_default=True)
@click.option("--include-seen", is_flag=True, help="Do not exclude what the user already rated.")
@click.option("--json", "as_json", is_flag=True)
def recommend(model_dir: Path, users: tuple[str, ...], k: int, include_seen: bool, as_json: bool) -> None:
    """Top-k items for users, with titles, scores and reasons."""
    from tastemaker.models import Recommender

    model = Recommender.load(model_dir)
    ids = [typed_id(model.user_vocab, u) for u in users]
    recs = model.recommend(ids, k=k, exclude_seen=not include_seen, explain=True)
    if as_json:
        click.echo(json.dumps([{
            "user": r.user, "fallback": r.fallback,
            "items": [{"item": i, "title": model.title(i), "score": s,
                       "reason": why.text(model.title, explicit=model.explicit)}
                      for i, s, why in zip(r.items.tolist(), r.scores.tolist(), r.reasons, strict=True)],
        } for r in recs], indent=2, default=str))
        return
    for rec in recs:
        print_recommendations(model, rec)


def print_recommendations(model, rec, title: str | None = None) -> None:
    table = Table(title=title or f"top-{len(rec)} for user {rec.user} ({model.name})"
                  + (f" — fallback: {rec.fallback}" if rec.fallback else ""))
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    table.add_column("why")
    for rank, (item, score, why) in enumerate(zip(rec.items.tolist(), rec.scores.tolist(), rec.reasons,
                                                  strict=True), 1):
        table.add_row(str(rank), model.title(item), f"{score:.3f}", why.text(model.title, explicit=model.explicit))
    console.print(table)


# --- evaluation and benchmarks -------------------------------------------------------------------

@cli.command()
@data_options
@click.option("--protocol", required=True, help="rating-folds, topn-u1, rating-holdout, topn-holdout, topn-temporal.")
@click.option("--models", required=True, help="Comma-separated model names.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML with [model] name/params: overrides the defaults of that model.")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Write the results as JSON.")
@click.option("--track", is_flag=True, help="Log to MLflow.")
@click.pass_obj
def evaluate(obj, protocol, models, config_file, output, track, **source) -> None:
    """Evaluate models on a protocol; prints a table with 95% bootstrap CIs."""
    from tastemaker.bench.suites import machine_info
    from tastemaker.evaluation.protocols import evaluate as run_eval
    from tastemaker.evaluation.protocols import get_protocol
    from tastemaker.evaluation.report import results_table
    from tastemaker.evaluation.stats import paired_test
    from tastemaker.models import create_model, get_model_class
    from tastemaker.tracking import Tracker

    proto = get_protocol(protocol)
    names = [m.strip() for m in models.split(",") if m.strip()]
    overrides: dict[str, dict[str, Any]] = {}
    if config_file is not None:
        cname, cparams = model_config(None, config_file)
        overrides[cname] = cparams
    for n in names:
        get_model_class(n)
    results = []
    with progress(obj):
        loaded = load_source(**source)
        for n in names:
            params = overrides.get(n, {})
            tracker = Tracker(track)
            with tracker.run(f"evaluate {n} {protocol}", params={"model": n, "protocol": protocol, **params},
                             tags={"command": "evaluate",
                                   "data_fingerprint": interactions_of(loaded).fingerprint()}) as t:
                res = run_eval(lambda n=n, p=params: create_model(n, p), proto, loaded, model_name=n)
                t.log_metrics(res.metrics)
                t.log_metrics({"fit_seconds": res.fit_seconds, "predict_seconds": res.predict_seconds})
            results.append(res)
    rows = [r.row() for r in results]
    metrics = ["rmse", "mae"] if proto.kind == "rating" else [
        f"ndcg@{proto.k}", f"precision@{proto.k}", f"recall@{proto.k}", f"map@{proto.k}", f"mrr@{proto.k}",
        f"hr@{proto.k}", "auc", f"coverage@{proto.k}", f"novelty@{proto.k}"]
    console.print(results_table(rows, metrics, title=f"{proto.name}: {proto.description}"))
    if proto.kind == "topn":
        key = f"ndcg@{proto.k}"
        for r in results:
            ci = r.ci.get(key)
            if ci is not None:
                console.print(f"{r.model}: {key} = {ci} (95% bootstrap CI over {ci.n} users)", highlight=False)
        if len(results) >= 2:
            a, b = results[0], results[1]
            cmp = paired_test(a.per_user[key], b.per_user[key])
            console.print(f"paired over users, {a.model} − {b.model}: {key} {cmp.mean_diff:+.4f} "
                          f"[{cmp.low:+.4f}, {cmp.high:+.4f}], t-test p={cmp.t_pvalue:.3g}, "
                          f"Wilcoxon p={cmp.wilcoxon_pvalue:.3g}", highlight=False)
    write_json(output, {"protocol": proto.name, "machine": machine_info(), "rows": rows})


# --- the main job ---------------------------------------------------------------------------------

@cli.command()
@click.option("--path", "dataset_path", type=click.Path(path_type=Path), default=None,
              help="MovieLens 100K folder or zip (default: $TASTEMAKER_DATA_DIR, else download).")
@click.option("--user", "user_id", default="196", show_default=True, help="Sample user for the top-10.")
@click.pass_obj
def demo(obj, dataset_path, user_id) -> None:
    """The main job: MovieLens 100K end to end — train, evaluate, recommend with reasons."""
    from tastemaker.data import load_dataset
    from tastemaker.evaluation.protocols import get_protocol, rating_scores, topn_scores
    from tastemaker.evaluation.report import results_table
    from tastemaker.models import create_model

    started = time.perf_counter()
    with progress(obj):
        dataset = load_dataset("ml-100k", dataset_path)
    info = dataset.interactions.describe()
    console.print(f"MovieLens 100K from {dataset.root}: {info['events']:,} ratings, {info['users']:,} users, "
                  f"{info['items']:,} movies", highlight=False)
    train_set, test_set = dataset.split("u1")
    topn = get_protocol("topn-u1")
    rows = []
    for name in ("popularity", "biased_mf", "item_knn", "ease"):
        model = create_model(name)
        t0 = time.perf_counter()
        with progress(obj):
            model.fit(train_set)
        fit_seconds = time.perf_counter() - t0
        metrics: dict[str, float] = {}
        if model.predicts_ratings:
            metrics.update(rating_scores(model, test_set)[0])
        means, _, _, seconds = topn_scores(model, train_set, test_set, topn.k, topn.relevance_threshold)
        metrics.update(means)
        rows.append({"system": "tastemaker", "model": name, "metrics": metrics, "fit_seconds": fit_seconds,
                     "predict_seconds": seconds})
    console.print(results_table(rows, ["rmse", "ndcg@10", "precision@10", "recall@10", "map@10", "coverage@10"],
                                title="u1 split: RMSE on u1.test; top-10 ranking (u1.test ratings ≥ 4 relevant)"))
    best = create_model("ease")
    with progress(obj):
        best.fit(dataset.interactions)
    user = typed_id(best.user_vocab, user_id)
    rec = best.recommend([user], k=10, explain=True)[0]
    print_recommendations(best, rec, title=f"top-10 for user {user} (EASE trained on all ratings)")
    console.print(f"done in {time.perf_counter() - started:.1f} s")


@cli.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML settings ([serve] table); options below override it.")
@click.option("--model", "model", default=None, help="Model bundle folder (or models:/NAME@alias with MLflow).")
@click.option("--catalog", default=None, help="Item catalogue (CSV/Parquet: item_id + attributes + text).")
@click.option("--content-index", default=None, help="A saved ContentIndex folder.")
@click.option("--rules", default=None, help="Business-rules file (TOML/JSON), hot-reloaded.")
@click.option("--store", default=None, help="memory:// (default) or redis://host:port/db.")
@click.option("--namespace", "store_namespace", default=None, help="Store key namespace.")
@click.option("--host", default=None)
@click.option("--port", default=None, type=int)
@click.option("--data-dir", default=None, help="Where the durable event log lives.")
@click.option("--api-key", "api_keys", multiple=True, help="Accepted X-API-Key for writes (repeatable; also "
              "$TASTEMAKER_API_KEYS).")
@click.option("--max-body-bytes", default=None, type=int)
@click.option("--log-level", default=None)
@click.option("--model-poll-s", "model_poll_s", default=None, type=float,
              help="How often a models:/NAME@ALIAS model checks its alias (0: never).")
@click.option("--registry-uri", default=None,
              help="MLflow registry for models:/ URIs (default $MLFLOW_TRACKING_URI, else ./mlflow.db).")
def serve(config_file, **options) -> None:
    """Start the recommendation service (FastAPI + uvicorn)."""
    from tastemaker.serving import ServeSettings
    from tastemaker.serving import serve as run

    options["api_keys"] = list(options["api_keys"]) or None
    overrides = {k: v for k, v in options.items() if v is not None}
    settings = ServeSettings.from_file(config_file, **overrides) if config_file else ServeSettings.parse(overrides)
    console.print(f"serving on http://{settings.host}:{settings.port} (docs at /docs)")
    run(settings)


def _register_subcommands() -> None:
    from tastemaker.cli.ab import ab
    from tastemaker.cli.bench import bench
    from tastemaker.cli.registry import publish, registry
    from tastemaker.cli.tune import tune

    cli.add_command(tune)
    cli.add_command(bench)
    cli.add_command(registry)  # tastemaker registry register|promote|demote|list|resolve|variants
    cli.add_command(publish)  # tastemaker publish --model … --store redis://… --namespace …
    cli.add_command(ab)  # tastemaker ab analyze|simulate|assign


_register_subcommands()


def main() -> None:
    cli(obj={})


if __name__ == "__main__":  # pragma: no cover
    main()
