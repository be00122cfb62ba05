"""`tastemaker tune` — hyperparameter search on a validation carve-out of a training split.

Registered on the main group with ``cli.add_command(tune)``. The logic lives in `tastemaker.tuning`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tastemaker.errors import ConfigError


@click.command("tune")
@click.option("--dataset", default="ml-100k", show_default=True, help="Named data set (see `tastemaker data list`).")
@click.option("--path", "dataset_path", type=click.Path(path_type=Path), default=None,
              help="Where the data set lives (folder or zip); default: $TASTEMAKER_DATA_DIR or download.")
@click.option("--split", default=None,
              help="Training data to tune on: an official split's training half (default u1 when the data set has "
                   "it), a single-split protocol's (topn-u1, rating-holdout, topn-holdout, topn-temporal) or 'full'. "
                   "Its test half is never read.")
@click.option("--model", "model_name", default=None, help="Model name (see `tastemaker models`).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML: [model] name, [model.params] (held fixed) and [tune.space] (replaces the default space), "
                   'e.g. reg = {low = 0.01, high = 0.2, log = true}, loss = {choices = ["warp", "bpr"]}.')
@click.option("--protocol-kind", type=click.Choice(["rating", "topn"]), default=None,
              help="Score rating predictions (RMSE…) or top-k rankings; default: rating for rating models.")
@click.option("--metric", default=None, help="Objective: rmse, mae (rating); ndcg@10, recall@10, auc, … (topn).")
@click.option("--trials", "n_trials", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--timeout", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Stop starting new trials after this many seconds.")
@click.option("--seed", default=0, show_default=True, help="Seed of the TPE sampler.")
@click.option("--validation", "validation_method", default=None,
              help="How the validation part is carved from the training data: random (rating default), "
                   "user_holdout (topn default), temporal, last_n, cold_user, cold_item.")
@click.option("--val-fraction", default=0.2, show_default=True, type=click.FloatRange(0, 1, min_open=True,
                                                                                      max_open=True))
@click.option("--repeats", default=1, show_default=True, type=click.IntRange(min=1),
              help="Score each trial on this many carve-outs (seeds 0, 1, …) and average.")
@click.option("--prune", is_flag=True, help="With --repeats > 1: stop poor trials early (Optuna MedianPruner).")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(min=1), help="Cut-off for topn metrics.")
@click.option("--threshold", default=4.0, show_default=True, help="topn on ratings: relevant when ≥ this.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write the best setting here as TOML for `tastemaker train --config`.")
@click.option("--top", "n_top", default=10, show_default=True, type=click.IntRange(min=1),
              help="Trials shown in the table.")
@click.option("--track", is_flag=True, help="Log the search to MLflow (one step per trial).")
@click.pass_obj
def tune(obj, dataset, dataset_path, split, model_name, config_file, protocol_kind, metric, n_trials, timeout, seed,
         validation_method, val_fraction, repeats, prune, k, threshold, out, n_top, track) -> None:
    """Tune a model's settings with Optuna on validation data carved out of a training split."""
    from tastemaker.data import load_dataset
    from tastemaker.models import get_model_class
    from tastemaker.progress import progress_bars
    from tastemaker.tracking import Tracker
    from tastemaker.tuning import read_tune_file, training_part
    from tastemaker.tuning import tune as run_tune

    fixed: dict[str, Any] = {}
    space = None
    if config_file is not None:
        spec = read_tune_file(config_file)
        if model_name is not None and spec.name not in (None, model_name):
            raise ConfigError(f"{config_file} configures model {spec.name!r} but --model is {model_name!r}")
        model_name = model_name or spec.name
        fixed, space = spec.params, spec.space
    if not model_name:
        raise click.UsageError("name a model with --model or in the config file's [model] table")
    cls = get_model_class(model_name)
    kind = protocol_kind or ("rating" if cls.predicts_ratings else "topn")
    validation: dict[str, Any] = {"repeats": repeats}
    if validation_method is not None:
        validation["method"] = validation_method
    if validation_method == "last_n":
        validation["n"] = 1
    else:
        validation["fraction"] = val_fraction

    quiet = bool((obj or {}).get("quiet", False))
    with progress_bars(not quiet):
        loaded = load_dataset(dataset, dataset_path)
        if split is None:
            split = "u1" if "u1" in loaded.splits else f"{kind}-holdout"
        train = training_part(loaded, split)
        tracker = Tracker(track)
        run_params = {"model": model_name, "protocol_kind": kind, "metric": metric or "", "n_trials": n_trials,
                      "seed": seed, "split": split, "validation": validation, "fixed": fixed}
        with tracker.run(f"tune {model_name}", params=run_params,
                         tags={"command": "tune", "data_fingerprint": train.fingerprint(), "split": split}) as t:

            def log_trial(record) -> None:
                numeric = {f"param.{n}": v for n, v in record.params.items()
                           if isinstance(v, int | float) and not isinstance(v, bool)}
                t.log_metrics({"trial_seconds": record.seconds, **record.metrics, **numeric}, step=record.number)

            result = run_tune(model_name, train, protocol_kind=kind, metric=metric, n_trials=n_trials,
                              timeout=timeout, seed=seed, validation=validation, space=space, params=fixed, k=k,
                              threshold=threshold, pruner=prune, on_trial=log_trial)
            t.log_params({f"best.{n}": v for n, v in _flat(result.best_params).items()})
            t.log_metrics({f"best_{result.metric}": result.best_value})
            t.log_dict(result.to_dict(), "tune.json")
            if out is not None:
                result.to_toml(out)
                t.log_artifact(out)
    _report(result, split, n_top, out)


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def _report(result, split: str, n_top: int, out: Path | None) -> None:
    from rich.table import Table

    from tastemaker.cli.main import console

    rows = result.rows()
    params = list(dict.fromkeys(f"param.{name}" for t in result.trials for name in t.params))
    extra = ["mae"] if result.protocol_kind == "rating" else [
        f"recall@{result.k}", "auc", f"coverage@{result.k}"]
    extra = [m for m in extra if m != result.metric and any(m in row for row in rows)]
    table = Table(title=f"tune {result.model} on {split} — top {min(n_top, len(rows))} of {len(rows)} trials "
                        f"by validation {result.metric} ({result.direction})")
    for name in ("#", "trial", result.metric, *extra, "seconds", *(p.removeprefix("param.") for p in params)):
        table.add_column(name, justify="left" if name in params else "right")
    for rank, row in enumerate(rows[:n_top], 1):
        value = _fmt(row["value"]) if row["state"] == "complete" else row["state"]
        table.add_row(str(rank), str(row["trial"]), value, *(_fmt(row.get(m)) for m in extra),
                      f"{row['seconds']:.2f}", *(_fmt(row.get(p)) for p in params))
    console.print(table)
    best = ", ".join(f"{n}={_fmt(v)}" for n, v in _flat(result.best_params).items())
    console.print(f"best: trial {result.best_trial}, validation {result.metric} = {result.best_value:.4f} "
                  f"({result.validation['method']} carve-out of {result.data_name or split}); {best}",
                  highlight=False)
    if out is not None:
        console.print(f"wrote {out} — use it with: tastemaker train --config {out} --out DIR", highlight=False)
