"""Getting a SparkSession: the one already running (spark-submit, a notebook, a test) or a new one.

Precedence, so that the same job runs on a laptop and a cluster unchanged:

- a session or SparkContext already running in this process is reused as it is (only runtime SQL
  settings such as the shuffle partitions are applied to it);
- under ``spark-submit`` (the driver's JVM is already up) spark-submit's ``--master``,
  ``--driver-memory`` etc. decide; `SparkSettings.master` is only checked against them;
- otherwise a new local JVM starts on `SparkSettings.master`, ``local[*]`` by default.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import warnings
from typing import TYPE_CHECKING, Any

from pydantic import Field

from tastemaker.config import StrictConfig
from tastemaker.errors import TastemakerWarning, require

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

LOCAL_MASTER = "local[*]"


class SparkSettings(StrictConfig):
    """Where and how Spark runs. Every field is optional; the defaults run locally on every core."""

    master: str | None = None
    """Master URL: ``local[*]``, ``local[4]``, ``spark://host:7077``, ``yarn``, ``k8s://https://host:6443``.
    None: spark-submit's ``--master`` when run under spark-submit, else ``local[*]``."""
    app_name: str = "tastemaker"
    driver_memory: str | None = None
    """JVM heap of the driver, e.g. ``8g``; in local mode the driver also runs the tasks, so this is the
    memory ALS gets. Only takes effect when this process starts the JVM (not under spark-submit,
    where ``--driver-memory`` decides). None: Spark's default (1g)."""
    executor_memory: str | None = None
    """Heap of each executor on a cluster (``spark.executor.memory``); unused in local mode."""
    executor_cores: int | None = Field(default=None, ge=1)
    """Cores of each executor on a cluster (``spark.executor.cores``)."""
    shuffle_partitions: int | None = Field(default=None, ge=1)
    """``spark.sql.shuffle.partitions``. None: twice the cores in local mode (Spark's 200 is far too
    many for one machine), Spark's own default on a cluster."""
    checkpoint_dir: str | None = None
    """Where ALS checkpoints its factor lineage every `checkpoint_interval` iterations (an HDFS/S3
    path on a cluster). None: a temporary folder in local mode, no checkpointing on a cluster."""
    log_level: str = "WARN"
    """Spark's log level once the session is up (``ERROR``, ``WARN``, ``INFO``, …)."""
    conf: dict[str, str] = Field(default_factory=dict)
    """Any other Spark settings (``spark.*`` keys); they win over the fields above."""


def under_spark_submit() -> bool:
    """True when this Python process was started by spark-submit (its JVM gateway is already up)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def local_cores(master: str) -> int | None:
    """Worker threads of a ``local``/``local[N]``/``local[*]`` master; None for a cluster master."""
    m = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master.strip())
    if m is None:
        return None
    if m.group(1) is None:
        return 1
    return (os.cpu_count() or 1) if m.group(1) == "*" else int(m.group(1))


def _import_pyspark():
    require("pyspark", "spark")
    with warnings.catch_warnings():
        # tastemaker exchanges data with Spark through Arrow, never through pandas
        warnings.filterwarnings("ignore", message=".*PySpark does not yet fully support pandas", category=FutureWarning)
        from pyspark import SparkContext
        from pyspark.sql import SparkSession
    return SparkContext, SparkSession


def running_session() -> SparkSession | None:
    """The SparkSession (or a session over the SparkContext) already running in this process, if any."""
    spark_context, spark_session = _import_pyspark()
    session = spark_session.getActiveSession()
    if session is not None:
        return session
    if getattr(spark_context, "_active_spark_context", None) is not None:
        return spark_session.builder.getOrCreate()
    return None


def get_spark(settings: SparkSettings | dict[str, Any] | None = None) -> SparkSession:
    """A SparkSession following the precedence in the module docstring."""
    if not isinstance(settings, SparkSettings):
        settings = SparkSettings.parse(settings, source="spark settings")
    _, spark_session = _import_pyspark()
    session = running_session()
    started = session is None
    if started:
        builder = spark_session.builder.appName(settings.app_name)
        for key, value in startup_conf(settings).items():
            builder = builder.config(key, value)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*PySpark does not yet fully support pandas",
                                    category=FutureWarning)
            session = builder.getOrCreate()
        session.sparkContext.setLogLevel(settings.log_level)
    master = session.sparkContext.master
    if settings.master is not None and settings.master != master:
        why = "spark-submit's --master decides" if under_spark_submit() else "a session was already running"
        warnings.warn(f"Spark master {settings.master!r} ignored: running on {master!r} ({why})",
                      TastemakerWarning, stacklevel=2)
    if not started:
        for key, value in runtime_conf(settings, master).items():
            session.conf.set(key, value)
    _ensure_checkpoint_dir(session, settings)
    return session


def startup_conf(settings: SparkSettings) -> dict[str, str]:
    """The ``spark.*`` settings a new session starts with (spark-submit's own flags are not repeated)."""
    conf: dict[str, str] = {"spark.ui.showConsoleProgress": "false"}
    master = None
    if not under_spark_submit():
        master = settings.master or LOCAL_MASTER
        conf["spark.master"] = master
        if settings.driver_memory:
            conf["spark.driver.memory"] = settings.driver_memory
    elif settings.driver_memory:
        warnings.warn("driver_memory ignored under spark-submit: pass --driver-memory to spark-submit",
                      TastemakerWarning, stacklevel=3)
    if settings.executor_memory:
        conf["spark.executor.memory"] = settings.executor_memory
    if settings.executor_cores:
        conf["spark.executor.cores"] = str(settings.executor_cores)
    conf.update(runtime_conf(settings, master))
    conf.update(settings.conf)
    return conf


def runtime_conf(settings: SparkSettings, master: str | None) -> dict[str, str]:
    """Settings that may change on a running session (SQL runtime settings)."""
    partitions = settings.shuffle_partitions
    cores = local_cores(master) if master else None
    if partitions is None and cores is not None:
        partitions = 2 * cores
    out = {} if partitions is None else {"spark.sql.shuffle.partitions": str(partitions)}
    return {**out, **{k: v for k, v in settings.conf.items() if k.startswith("spark.sql.")}}


def _ensure_checkpoint_dir(session: SparkSession, settings: SparkSettings) -> None:
    sc = session.sparkContext
    if settings.checkpoint_dir:
        sc.setCheckpointDir(settings.checkpoint_dir)
        return
    if sc.getCheckpointDir() is None and local_cores(sc.master) is not None:
        folder = tempfile.mkdtemp(prefix="tastemaker-spark-checkpoints-")
        atexit.register(shutil.rmtree, folder, True)
        sc.setCheckpointDir(folder)


__all__ = ["LOCAL_MASTER", "SparkSettings", "get_spark", "local_cores", "running_session", "startup_conf",
           "under_spark_submit"]
