"""Parity of the Spark engine on MovieLens 100K: does training on Spark give the models we expect?

- Implicit (top-N, ``topn-u1``): NDCG@10 of the single-node `als` model (trained by `implicit`)
  against `SparkALS` at the same hyperparameters — factors, λ (converted to Spark's regParam as
  `tastemaker.spark.als` explains), alpha, value weighting, iterations — over several seeds.
- Explicit (ratings, ``rating-folds`` u1–u5): Spark's documentation shows ALS on MovieLens-format
  ratings (the `als_example.py` shipped with Spark: ``ALS(maxIter=5, regParam=0.01)``, rank 10 by
  default, RMSE from `RegressionEvaluator` with ``coldStartStrategy="drop"``) but documents no
  RMSE value. So Spark's behaviour is measured directly: the same `pyspark.ml` ALS on each fold's
  raw ids, evaluated the way the example does, next to `SparkALS` evaluated (a) the same way —
  unclipped predictions on the test pairs whose user and item were trained — and (b) by
  tastemaker's `rating_scores` (every test pair, predictions clipped to 1–5, fallbacks for unknown
  items). Two settings: the example's and `SparkALS`'s explicit defaults.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tastemaker.bench.suites import machine_info

EXAMPLE_SETTINGS = {"factors": 10, "iterations": 5, "reg_param": 0.01}
"""Spark's ALS example (examples/src/main/python/ml/als_example.py): maxIter 5, regParam 0.01, rank 10."""
FOLDS = ("u1", "u2", "u3", "u4", "u5")


def run_spark_parity(dataset=None, *, seeds: Sequence[int] = (0, 1, 2), folds: Sequence[str] = FOLDS,
                     implicit_settings: dict[str, Any] | None = None,
                     explicit_settings: Sequence[dict[str, Any]] | None = None, spark=None,
                     on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run both parity checks; returns {"implicit": rows, "explicit": rows, "summary": …, "machine": …}.

    `implicit_settings` override the `als` defaults for the implicit check (both engines get them)."""
    from tastemaker.data import load_dataset
    from tastemaker.spark.session import SparkSettings, get_spark

    dataset = dataset if dataset is not None else load_dataset("ml-100k")
    spark = spark or get_spark(SparkSettings(driver_memory="2g"))
    emit = on_result or (lambda row: None)
    implicit_rows = implicit_parity(dataset, seeds, spark, emit, implicit_settings or {})
    if explicit_settings is None:
        from tastemaker.spark.als import SparkALSConfig

        defaults = SparkALSConfig(feedback="explicit")
        explicit_settings = [EXAMPLE_SETTINGS, {"factors": defaults.factors, "iterations": defaults.iterations}]
    explicit_rows = [explicit_parity(dataset, fold, settings, spark, emit)
                     for settings in explicit_settings for fold in folds]
    return {"bench": "spark-parity", "machine": machine_info(), "spark_version": spark.version,
            "master": spark.sparkContext.master, "implicit": implicit_rows, "explicit": explicit_rows,
            "summary": summarize(implicit_rows, explicit_rows)}


def implicit_parity(dataset, seeds: Sequence[int], spark, emit, settings: dict[str, Any] | None = None,
                    ) -> list[dict[str, Any]]:
    """topn-u1 NDCG@10 of `als` and `SparkALS` with the same settings (`als` defaults + `settings`), per seed."""
    from tastemaker.evaluation.protocols import topn_scores
    from tastemaker.models.implicit_mf import ALS, ALSConfig
    from tastemaker.spark.als import SparkALS

    train, test = dataset.split("u1")
    rows = []
    for seed in seeds:
        cfg = ALSConfig(**{**(settings or {}), "seed": seed})
        shared = {"factors": cfg.factors, "regularization": cfg.regularization, "alpha": cfg.alpha,
                  "weighting": cfg.weighting, "threshold": cfg.threshold, "iterations": cfg.iterations, "seed": seed}
        t0 = time.perf_counter()
        single = ALS(cfg).fit(train)
        t1 = time.perf_counter()
        trainer = SparkALS(shared)
        on_spark = trainer.fit(train, spark=spark)
        t2 = time.perf_counter()
        row = {"seed": seed, "settings": shared, "reg_param": trainer.report["reg_param"],
               "ndcg@10_als": topn_scores(single, train, test, 10, 4.0)[0]["ndcg@10"],
               "ndcg@10_spark": topn_scores(on_spark, train, test, 10, 4.0)[0]["ndcg@10"],
               "fit_seconds_als": t1 - t0, "fit_seconds_spark": t2 - t1}
        row["difference"] = row["ndcg@10_spark"] - row["ndcg@10_als"]
        rows.append(row)
        emit({"check": "implicit", **row})
    return rows


def explicit_parity(dataset, fold: str, settings: dict[str, Any], spark, emit,
                    direct_seeds: Sequence[int] = (0, 1)) -> dict[str, Any]:
    """One fold: `SparkALS` (two ways of scoring) and `pyspark.ml` ALS used directly, same settings;
    the direct run once per seed in `direct_seeds`, to show how far Spark differs from itself."""
    import pyarrow as pa
    from pyspark.ml.evaluation import RegressionEvaluator
    from pyspark.ml.recommendation import ALS as PySparkALS

    from tastemaker.evaluation.protocols import rating_scores
    from tastemaker.spark.als import SparkALS

    train, test = dataset.split(fold)
    trainer = SparkALS({"feedback": "explicit", "seed": 0, **settings})
    model = trainer.fit(train, spark=spark)
    ours_protocol = rating_scores(model, test)[0]["rmse"]
    trained = test.reindex(model.user_vocab, model.item_vocab)
    known = ~model._cold_users(trained.user_idx) & model.scorable_items()[trained.item_idx]
    raw = np.einsum("ij,ij->i", model.user_factors[trained.user_idx[known]],
                    model.item_factors[trained.item_idx[known]])
    ours_spark_style = float(np.sqrt(np.mean((raw - trained.values[known]) ** 2)))

    def frame(data):
        return spark.createDataFrame(pa.table({
            "userId": data.user_vocab.lookup(data.user_idx).astype(np.int32),
            "movieId": data.item_vocab.lookup(data.item_idx).astype(np.int32),
            "rating": data.values.astype(np.float64)}))

    evaluator = RegressionEvaluator(metricName="rmse", labelCol="rating", predictionCol="prediction")
    direct = []
    for seed in direct_seeds:
        fitted = PySparkALS(rank=settings["factors"], maxIter=settings["iterations"],
                            regParam=trainer.report["reg_param"], seed=seed, userCol="userId", itemCol="movieId",
                            ratingCol="rating", coldStartStrategy="drop").fit(frame(train))
        direct.append(evaluator.evaluate(fitted.transform(frame(test))))
    row = {"fold": fold, "settings": settings, "reg_param": trainer.report["reg_param"],
           "rmse_pyspark_direct": direct[0], "rmse_pyspark_direct_by_seed": direct,
           "rmse_spark_als_same_way": ours_spark_style, "rmse_spark_als_protocol": ours_protocol,
           "scored_pairs": int(known.sum()), "test_pairs": len(test), "difference": ours_spark_style - direct[0],
           "pyspark_seed_spread": max(direct) - min(direct)}
    emit({"check": "explicit", **row})
    return row


def summarize(implicit_rows: list[dict[str, Any]], explicit_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds / folds and the largest absolute differences."""
    out: dict[str, Any] = {}
    if implicit_rows:
        out["implicit"] = {
            "ndcg@10_als": float(np.mean([r["ndcg@10_als"] for r in implicit_rows])),
            "ndcg@10_spark": float(np.mean([r["ndcg@10_spark"] for r in implicit_rows])),
            "max_abs_difference": float(max(abs(r["difference"]) for r in implicit_rows))}
        out["implicit"]["mean_difference"] = out["implicit"]["ndcg@10_spark"] - out["implicit"]["ndcg@10_als"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in explicit_rows:
        groups.setdefault(_label(r["settings"]), []).append(r)
    out["explicit"] = {label: {
        "rmse_pyspark_direct": float(np.mean([r["rmse_pyspark_direct"] for r in rows])),
        "rmse_spark_als_same_way": float(np.mean([r["rmse_spark_als_same_way"] for r in rows])),
        "rmse_spark_als_protocol": float(np.mean([r["rmse_spark_als_protocol"] for r in rows])),
        "max_abs_difference": float(max(abs(r["difference"]) for r in rows)),
        "max_pyspark_seed_spread": float(max(r["pyspark_seed_spread"] for r in rows)),
        "folds": [r["fold"] for r in rows]} for label, rows in groups.items()}
    return out


def _label(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def parity_markdown(doc: dict[str, Any]) -> str:
    """The two parity tables as Markdown."""
    s = doc["summary"]
    lines = ["| seed | NDCG@10 als (implicit) | NDCG@10 SparkALS | difference | Spark regParam |",
             "|---:|---:|---:|---:|---:|"]
    for r in doc["implicit"]:
        lines.append(f"| {r['seed']} | {r['ndcg@10_als']:.4f} | {r['ndcg@10_spark']:.4f} | {r['difference']:+.4f} | "
                     f"{r['reg_param']:.4f} |")
    if "implicit" in s:
        i = s["implicit"]
        lines.append(f"| mean | {i['ndcg@10_als']:.4f} | {i['ndcg@10_spark']:.4f} | {i['mean_difference']:+.4f} | |")
    lines += ["", "| settings (mean of folds) | RMSE pyspark.ml ALS, example's way | RMSE SparkALS, same way "
              "| max fold difference | max pyspark seed-to-seed spread | RMSE SparkALS, rating-folds protocol |",
              "|---|---:|---:|---:|---:|---:|"]
    for label, e in s["explicit"].items():
        lines.append(f"| {label} | {e['rmse_pyspark_direct']:.4f} | {e['rmse_spark_als_same_way']:.4f} | "
                     f"{e['max_abs_difference']:.4f} | {e['max_pyspark_seed_spread']:.4f} | "
                     f"{e['rmse_spark_als_protocol']:.4f} |")
    return "\n".join(lines)


__all__ = ["EXAMPLE_SETTINGS", "FOLDS", "explicit_parity", "implicit_parity", "parity_markdown", "run_spark_parity",
           "summarize"]
