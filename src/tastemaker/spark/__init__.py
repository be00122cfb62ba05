"""The Spark engine: ALS (explicit and implicit) on PySpark, producing ordinary tastemaker model bundles.

Optional (`pip install 'tastemaker[spark]'`, Java 17) and never imported by the rest of tastemaker
unless asked for: importing this package does not import pyspark; the functions do, on first use.

- `session.get_spark(settings)` — a SparkSession: the running one (spark-submit, a notebook),
  or a new one on `settings.master` (``local[*]`` by default).
- `als.SparkALS(config).fit(source)` — trains on Spark from Parquet/CSV files or `Interactions`
  and returns a fitted `als` (implicit) or rating model that saves, loads, evaluates and serves
  exactly like one trained on a single machine.
- `train.train_spark(job)` — the job behind `tastemaker train --engine spark` and spark-submit.
"""

from __future__ import annotations

__all__ = ["SparkALS", "SparkALSConfig", "SparkSettings", "SparkTrainJob", "get_spark", "train_spark"]


def __getattr__(name: str):
    if name in ("SparkSettings", "get_spark"):
        from tastemaker.spark import session

        return getattr(session, name)
    if name in ("SparkALS", "SparkALSConfig"):
        from tastemaker.spark import als

        return getattr(als, name)
    if name in ("SparkTrainJob", "train_spark"):
        from tastemaker.spark import train

        return getattr(train, name)
    raise AttributeError(f"module 'tastemaker.spark' has no attribute {name!r}")
