"""Which SparkSession tastemaker uses, and with which settings."""

from __future__ import annotations

import os

import pytest

from tastemaker.errors import ConfigError, TastemakerWarning
from tastemaker.spark.session import SparkSettings, get_spark, local_cores, startup_conf


def test_local_cores():
    assert local_cores("local") == 1
    assert local_cores("local[3]") == 3
    assert local_cores("local[4, 2]") == 4
    assert local_cores("local[*]") == (os.cpu_count() or 1)
    assert local_cores("yarn") is None and local_cores("spark://host:7077") is None


def test_a_new_local_session_gets_master_memory_and_few_partitions(monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    conf = startup_conf(SparkSettings(driver_memory="3g", conf={"spark.foo": "bar"}))
    assert conf["spark.master"] == "local[*]" and conf["spark.driver.memory"] == "3g"
    assert conf["spark.sql.shuffle.partitions"] == str(2 * (os.cpu_count() or 1))
    assert conf["spark.foo"] == "bar"
    cluster = startup_conf(SparkSettings(master="yarn", executor_memory="8g", executor_cores=4))
    assert cluster["spark.master"] == "yarn" and cluster["spark.executor.memory"] == "8g"
    assert "spark.sql.shuffle.partitions" not in cluster  # Spark's own default on a cluster


def test_under_spark_submit_its_flags_decide(monkeypatch):
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "12345")
    with pytest.warns(TastemakerWarning, match="--driver-memory"):
        conf = startup_conf(SparkSettings(master="local[2]", driver_memory="3g"))
    assert "spark.master" not in conf and "spark.driver.memory" not in conf


def test_the_running_session_is_reused_with_runtime_settings(spark):
    before = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        assert get_spark(SparkSettings(shuffle_partitions=3)) is spark
        assert spark.conf.get("spark.sql.shuffle.partitions") == "3"
        with pytest.warns(TastemakerWarning, match="'spark://nowhere:7077' ignored: running on 'local\\[2\\]'"):
            assert get_spark({"master": "spark://nowhere:7077"}) is spark
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)
    assert spark.sparkContext.getCheckpointDir() is not None  # ALS can cut its lineage in local mode


def test_settings_are_strict():
    with pytest.raises(ConfigError, match="unknown key 'masterr'"):
        get_spark({"masterr": "local"})
