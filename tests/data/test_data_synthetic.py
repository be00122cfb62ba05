"""The power-law generator behind the scale benchmark."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from tastemaker.data.synthetic import allocate, default_shape, write_power_law
from tastemaker.errors import ConfigError


def test_allocate_sums_exactly_within_bounds_and_follows_the_weights():
    w = np.arange(1, 501, dtype=float) ** -0.8
    counts = allocate(20_000, w, 1, 300)
    assert counts.sum() == 20_000 and counts.min() >= 1 and counts.max() <= 300
    assert np.all(np.diff(counts) <= 1)  # decreasing weights, non-increasing counts (up to rounding)
    assert counts[0] == 300 and counts[-1] < counts[100]
    with pytest.raises(ConfigError, match="cannot be spread"):
        allocate(10_000, w, 1, 10)


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    folder = write_power_law(tmp_path_factory.mktemp("pl") / "log", 60_000, n_users=9_000, seed=3, chunk_rows=15_000)
    return folder, pq.read_table(folder)


def test_exact_size_distinct_pairs_and_schema(log):
    folder, table = log
    assert table.num_rows == 60_000
    assert [f.name for f in table.schema] == ["user", "item", "value"]
    assert str(table.schema.field("value").type) == "float"
    u, i = table.column("user").to_numpy(), table.column("item").to_numpy()
    assert len(np.unique(u * 10**6 + i)) == len(u)
    assert table.column("value").to_numpy().min() >= 1
    assert len(list(folder.glob("part-*.parquet"))) > 1
    meta = json.loads((folder / "_generator.json").read_text())
    assert meta["interactions"] == 60_000 and meta["seed"] == 3


def test_activity_and_popularity_are_heavy_tailed(log):
    _, table = log
    _, n_items = default_shape(60_000)
    users = np.sort(np.bincount(table.column("user").to_numpy(), minlength=9_000))[::-1]
    items = np.sort(np.bincount(table.column("item").to_numpy(), minlength=n_items))[::-1]
    assert users.min() >= 1 and users.max() == n_items // 4  # every user active, the busiest at the cap
    assert users[:900].sum() > 0.4 * users.sum()  # top 10 % of users: > 40 % of events
    assert items[: n_items // 100].sum() > 0.2 * items.sum()  # top 1 % of items: > 20 % of events
    assert (items > 0).sum() > 0.9 * n_items


def test_same_seed_same_log_whatever_the_chunking(log, tmp_path):
    _, table = log
    again = pq.read_table(write_power_law(tmp_path / "again", 60_000, n_users=9_000, seed=3, chunk_rows=10**9))
    assert again.equals(table)
    other = pq.read_table(write_power_law(tmp_path / "other", 60_000, n_users=9_000, seed=4))
    assert not other.equals(table)
