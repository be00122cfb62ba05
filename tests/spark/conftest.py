"""One local SparkSession for every Spark test (starting a JVM takes seconds): two cores, two shuffle
partitions, no web UI."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    from tastemaker.spark.session import SparkSettings, get_spark

    session = get_spark(SparkSettings(master="local[2]", shuffle_partitions=2, driver_memory="1g",
                                      conf={"spark.ui.enabled": "false", "spark.sql.adaptive.enabled": "false"}))
    yield session
    session.stop()
