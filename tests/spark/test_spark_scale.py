"""The train-scale bench: runs in fresh processes with their memory sampled, timeouts and failures
recorded, both engines on the same data, the plot and the table."""

from __future__ import annotations

import warnings

import pytest

from tastemaker.bench.scale import _train_spark, dataset_path, markdown_table, measure, plot_scale, run_train_scale

SETTINGS = {"factors": 4, "iterations": 2, "regularization": 22.5, "alpha": 1.25, "weighting": "value", "seed": 0,
            "master": "local[*]", "driver_memory": "1g"}


@pytest.fixture(scope="module")
def small_log(tmp_path_factory):
    return dataset_path(tmp_path_factory.mktemp("scale"), 20_000, 0)


def test_bench_document_table_and_plot(small_log, tmp_path):
    seen = []
    doc = run_train_scale((20_000,), ("implicit",), data_dir=small_log.parent, factors=4, iterations=2,
                          plot=tmp_path / "scale.png", on_result=seen.append)
    (row,) = doc["rows"]
    assert seen == [row]
    assert row["status"] == "ok" and row["engine"] == "implicit" and row["interactions"] == 20_000
    assert row["users"] == 200 and row["total_seconds"] >= row["train_seconds"] > 0
    assert 30 < row["peak_rss_mib"] < 4096 and "python" in row["peak_rss_by_process_mib"]
    assert doc["settings"]["factors"] == 4 and doc["machine"]["cores"]
    assert (tmp_path / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 20,000 | implicit | ok |" in markdown_table(doc)
    failed = {"engine": "spark", "interactions": 20_000, "status": "timeout", "wall_seconds": 5.0,
              "peak_rss_mib": 900.0, "error": "killed after 5 s"}
    doc["rows"].append(failed)
    assert plot_scale(doc, tmp_path / "with-failure.png").stat().st_size > 10_000
    assert "timeout: killed after 5 s" in markdown_table(doc)


def test_a_run_past_its_time_limit_is_killed(small_log):
    row = measure("implicit", small_log, SETTINGS, timeout_s=0.5)
    assert row["status"] == "timeout" and row["error"] == "killed after 0.5 s"
    assert "train_seconds" not in row


def test_a_failing_run_reports_why(tmp_path):
    row = measure("implicit", tmp_path / "no-such-folder", SETTINGS, timeout_s=300)
    assert row["status"] == "failed"
    assert "no-such-folder" in row["error"] or "FileNotFound" in row["error"]


def test_spark_engine_trains_the_same_data(spark, small_log):
    settings = {**SETTINGS, "master": spark.sparkContext.master}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the running session is reused without complaint
        row = _train_spark(str(small_log), settings)
    assert (row["users"], row["items"]) == (200, 1000)
    assert 0 < row["reg_param"] < 22.5 / 100  # λ / rms(events per user); the mean is 100 per user
    assert row["total_seconds"] >= row["train_seconds"] > 0


class _TinyDataset:
    """Stands in for MovieLens in the parity bench: `split(name)` gives (train, test)."""

    def __init__(self):
        from tastemaker.data.splits import random_split
        from tastemaker.testing.synthetic import synthetic_ratings

        self.split_ = random_split(synthetic_ratings(n_users=40, n_items=25, per_user=10), 0.2, seed=0)

    def split(self, name):
        return self.split_


def test_parity_bench_compares_the_engines_on_the_same_split(spark):
    from tastemaker.bench.spark_parity import parity_markdown, run_spark_parity

    settings = [{"factors": 3, "iterations": 2, "reg_param": 0.1}]
    doc = run_spark_parity(_TinyDataset(), seeds=(0,), folds=("u1",), implicit_settings={"factors": 4, "iterations": 3},
                           explicit_settings=settings, spark=spark)
    (imp,) = doc["implicit"]
    assert imp["settings"]["factors"] == 4 and imp["settings"]["regularization"] == 22.5
    assert imp["difference"] == pytest.approx(imp["ndcg@10_spark"] - imp["ndcg@10_als"])
    (exp,) = doc["explicit"]
    assert exp["scored_pairs"] <= exp["test_pairs"] and len(exp["rmse_pyspark_direct_by_seed"]) == 2
    assert 0 < exp["rmse_spark_als_same_way"] < 3 and 0 < exp["rmse_pyspark_direct"] < 3
    assert doc["summary"]["explicit"]["factors=3, iterations=2, reg_param=0.1"]["folds"] == ["u1"]
    assert "| 0 |" in parity_markdown(doc)
