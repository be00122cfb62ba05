"""The Spark training job: job files, bundles written locally or through Hadoop's file system, and the
same job run under spark-submit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tastemaker.errors import ConfigError
from tastemaker.models import Recommender
from tastemaker.spark.train import SparkTrainJob, als_config_from_model, train_spark
from tastemaker.testing.synthetic import synthetic_ratings

ALS_SMALL = {"factors": 3, "iterations": 2, "blocks": 2}


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    synthetic_ratings(n_users=30, n_items=20, per_user=6).to_frame().to_csv(path, index=False)
    return path


def test_job_from_a_file_writes_a_bundle_that_loads_without_spark(spark, ratings_csv, tmp_path):
    job_file = tmp_path / "job.toml"
    job_file.write_text(textwrap.dedent(f"""\
        out = "{tmp_path / 'model'}"
        [data]
        path = "{ratings_csv}"
        value_col = "value"
        [als]
        feedback = "explicit"
        factors = 3
        iterations = 2
        blocks = 2
        """))
    job = SparkTrainJob.from_toml(job_file, spark={"driver_memory": "2g"}, data={"name": "stars", "value_col": None})
    assert job.data.value_col == "value" and job.data.name == "stars" and job.spark.driver_memory == "2g"
    result = train_spark(job, spark=spark)
    assert result.report["feedback"] == "explicit" and result.report["interactions"] == 180
    loaded = Recommender.load(tmp_path / "model")
    assert loaded.name == "nmf" and loaded.predicts_ratings and loaded.data_info["name"] == "stars"
    users, items = result.model.user_vocab.ids[:5], result.model.item_vocab.ids[:5]
    np.testing.assert_allclose(loaded.predict(users, items).values, result.model.predict(users, items).values)


def test_bundle_goes_to_a_hadoop_file_system_uri(spark, ratings_csv, tmp_path):
    target = (tmp_path / "remote" / "model").as_uri()  # file:// through Hadoop's FileSystem, as hdfs:// would
    result = train_spark({"out": target, "data": {"path": str(ratings_csv)}, "als": ALS_SMALL}, spark=spark)
    assert result.out == target
    loaded = Recommender.load(tmp_path / "remote" / "model")
    assert loaded.name == "als" and not loaded.explicit
    assert (loaded.train_matrix != result.model.train_matrix).nnz == 0


def test_interactions_from_the_command_line_train_too(spark, tmp_path):
    data = synthetic_ratings(n_users=20, n_items=15, per_user=5)
    result = train_spark({"out": str(tmp_path / "m"), "als": ALS_SMALL}, data, spark=spark)
    assert result.model.data_info["fingerprint"] == data.fingerprint()
    with pytest.raises(ConfigError, match="no data"):
        train_spark({"out": str(tmp_path / "m")}, spark=spark)


def test_a_tuned_als_config_trains_on_spark_with_the_same_hyperparameters(tmp_path):
    best = tmp_path / "best.toml"
    best.write_text('[model]\nname = "als"\n[model.params]\nfactors = 48\nregularization = 10.0\n'
                    'alpha = 2.0\nnum_threads = 2\n')
    job = SparkTrainJob.from_toml(best, out=str(tmp_path / "m"))
    assert (job.als.factors, job.als.regularization, job.als.alpha, job.als.feedback) == (48, 10.0, 2.0, "implicit")
    with pytest.raises(ConfigError, match="trains the 'als' model, not 'ease'"):
        als_config_from_model({"name": "ease", "params": {}})
    both = tmp_path / "both.toml"
    both.write_text('out = "x"\n[als]\nfactors = 4\n[model]\nname = "als"\n')
    with pytest.raises(ConfigError, match="not both"):
        SparkTrainJob.from_toml(both)


@pytest.mark.slow  # a second JVM: about 15 s on an idle 2-core machine
def test_the_job_runs_under_spark_submit_whose_master_wins(ratings_csv, tmp_path):
    script = tmp_path / "job.py"
    out = tmp_path / "submitted"
    script.write_text(textwrap.dedent(f"""\
        import json, warnings
        from tastemaker.spark.session import under_spark_submit
        from tastemaker.spark.train import train_spark

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = train_spark({{"out": {str(out)!r}, "data": {{"path": {str(ratings_csv)!r}}},
                                  "als": {ALS_SMALL!r}, "spark": {{"master": "local[2]"}}}})
        print("RESULT " + json.dumps({{"under": under_spark_submit(), "master": result.report["master"],
                                      "warnings": [str(w.message) for w in caught]}}))
        """))
    submit = Path(sys.executable).parent / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    done = subprocess.run([str(submit), "--master", "local[1]", "--conf", "spark.ui.enabled=false", str(script)],
                          capture_output=True, text=True, env=env, timeout=300)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    info = json.loads(lines[-1].removeprefix("RESULT "))
    assert info["under"] and info["master"] == "local[1]"
    assert any("'local[2]' ignored" in w for w in info["warnings"])
    assert Recommender.load(out).name == "als"
