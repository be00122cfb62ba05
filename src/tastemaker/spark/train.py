"""The Spark training job: what `tastemaker train --engine spark` runs, locally or under spark-submit.

A job is a typed config (TOML tables ``[data]``, ``[als]``, ``[spark]``, plus ``out``) or, when the
command line already loaded a named data set, `Interactions`. The job reads the data on Spark,
trains ALS there, pulls the factors back to the driver and writes the ordinary model bundle —
to a local folder, or to any Hadoop file system URI (``hdfs://``, ``s3a://``, ``gs://``, ``abfs://``,
``file://``) through the driver's Hadoop client.

A job file::

    out = "models/als-spark"

    [data]
    path = "hdfs:///events/2024/"      # Parquet folder (or .csv / .tsv files)
    user_col = "user_id"
    item_col = "item_id"
    value_col = "clicks"

    [als]                              # SparkALSConfig; or a [model] table from `tastemaker tune`
    factors = 64
    regularization = 22.5

    [spark]                            # SparkSettings; under spark-submit its flags win
    master = "local[*]"
    driver_memory = "8g"
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from tastemaker.config import StrictConfig, read_toml
from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError
from tastemaker.models.base import Recommender
from tastemaker.spark.als import DataSource, SparkALS, SparkALSConfig
from tastemaker.spark.session import SparkSettings, get_spark

_URI_SCHEMES = ("hdfs://", "s3a://", "s3://", "gs://", "abfs://", "abfss://", "wasb://", "wasbs://", "file://",
                "viewfs://")


class SparkTrainJob(StrictConfig):
    """One Spark training run: data, ALS settings, where Spark runs and where the bundle goes."""

    out: str
    """Folder for the model bundle: a local path on the driver or a Hadoop file system URI."""
    data: DataSource | None = None
    """What to read on Spark; None when the caller passes `Interactions` to `train_spark`."""
    als: SparkALSConfig = Field(default_factory=SparkALSConfig)
    spark: SparkSettings = Field(default_factory=SparkSettings)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> SparkTrainJob:
        """Read a job file (see the module docstring). `overrides` (e.g. from command-line options)
        replace top-level keys; a dict merges into the table of that name (``spark={"master": …}``
        keeps the file's other Spark settings); None values, also inside such dicts, are ignored.

        A ``[model]`` table as `tastemaker tune` writes it (``name = "als"`` + ``[model.params]``)
        is accepted in place of ``[als]``: the same hyperparameters trained on Spark.
        """
        doc = read_toml(path)
        if "model" in doc:
            if "als" in doc:
                raise ConfigError(f"{path}: give [als] or [model], not both")
            doc["als"] = als_config_from_model(doc.pop("model"), source=str(path)).model_dump(exclude_unset=True)
        for key, value in overrides.items():
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if v is not None}
                doc[key] = {**doc[key], **value} if isinstance(doc.get(key), dict) else value
            elif value is not None:
                doc[key] = value
        return cls.parse(doc, source=str(path))


def als_config_from_model(section: dict[str, Any], *, source: str = "config") -> SparkALSConfig:
    """`SparkALSConfig` from a ``[model]`` table of the single-node `als` model (name + params)."""
    name = section.get("name")
    if name != "als":
        raise ConfigError(f"{source}: the Spark engine trains the 'als' model, not {name!r}; use an [als] table "
                          "with feedback = 'explicit' for ratings")
    params = dict(section.get("params", {}))
    params.pop("num_threads", None)  # implicit's thread count has no meaning on Spark
    return SparkALSConfig.parse(params, source=f"{source} [model.params]")


@dataclass
class SparkTrainResult:
    """What `train_spark` produced: the fitted model, where it was written and `SparkALS.report`."""

    model: Recommender
    out: str
    report: dict[str, Any] = field(default_factory=dict)


def train_spark(job: SparkTrainJob | dict[str, Any], data: Interactions | None = None, *,
                spark=None) -> SparkTrainResult:
    """Run `job`: train on Spark from `job.data` (or from `data` when given) and write the bundle to `job.out`."""
    if not isinstance(job, SparkTrainJob):
        job = SparkTrainJob.parse(job, source="spark training job")
    if data is None and job.data is None:
        raise ConfigError("the Spark job has no data: give a [data] table with a path, or pass Interactions")
    if data is not None and job.data is not None:
        raise ConfigError("the Spark job got both a [data] table and Interactions; give one")
    spark = spark or get_spark(job.spark)
    trainer = SparkALS(job.als, settings=job.spark)
    model = trainer.fit(data if data is not None else job.data, spark=spark)
    out = write_bundle_anywhere(model, job.out, spark)
    return SparkTrainResult(model=model, out=out, report=trainer.report)


def write_bundle_anywhere(model: Recommender, out: str, spark=None) -> str:
    """`model.save(out)` for a local folder; for a Hadoop file system URI the bundle is written to a
    temporary folder on the driver and copied there file by file (existing files are replaced)."""
    if not out.startswith(_URI_SCHEMES):
        model.save(out)
        return out
    if spark is None:
        raise ConfigError(f"writing to {out} needs the Spark session (its Hadoop client)")
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path
    target = hadoop_path(out)
    fs = target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    with tempfile.TemporaryDirectory(prefix="tastemaker-bundle-") as tmp:
        local = model.save(tmp)
        fs.mkdirs(target)
        for file in sorted(Path(local).iterdir()):
            fs.copyFromLocalFile(False, True, hadoop_path(file.resolve().as_uri()), hadoop_path(target, file.name))
    return out


__all__ = ["SparkTrainJob", "SparkTrainResult", "als_config_from_model", "train_spark", "write_bundle_anywhere"]
