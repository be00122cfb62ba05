"""The generic loader on CSV, TSV, Parquet and gzip'd files."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from tastemaker.data import load_interactions
from tastemaker.errors import ConfigError, DataError, DataWarning

CSV = "user,item,rating,ts\nu1,i1,4,100\nu1,i2,5,200\nu2,i1,3,300\n"


def _pairs(data) -> list[tuple]:
    frame = data.to_frame()
    return list(zip(frame["user"].tolist(), frame["item"].tolist(), frame["value"].tolist()))


def test_csv_implicit_by_default(write_file):
    data = load_interactions(write_file("events.csv", CSV))
    assert not data.explicit and data.values.tolist() == [1.0, 1.0, 1.0]
    assert data.user_vocab.ids.tolist() == ["u1", "u2"] and data.item_vocab.ids.tolist() == ["i1", "i2"]
    assert data.timestamps is None and data.name == "events"


def test_csv_explicit_with_timestamps(write_file):
    data = load_interactions(write_file("r.csv", CSV), value="rating", timestamp="ts", rating_scale=(1, 5))
    assert data.explicit and data.rating_scale == (1.0, 5.0)
    assert _pairs(data) == [("u1", "i1", 4.0), ("u1", "i2", 5.0), ("u2", "i1", 3.0)]
    assert data.timestamps.tolist() == [100, 200, 300]


def test_tsv_by_extension_and_integer_ids(write_file):
    path = write_file("r.tsv", "user\titem\trating\n10\t7\t2.5\n11\t7\t4\n")
    data = load_interactions(path, value="rating")
    assert data.user_vocab.is_integer and data.user_vocab.ids.tolist() == [10, 11]
    assert data.values.tolist() == [2.5, 4.0]


def test_zero_padded_ids_stay_strings(write_file):
    data = load_interactions(write_file("r.csv", "user,item\n007,1\n7,1\n"))
    assert data.user_vocab.ids.tolist() == ["007", "7"] and data.n_users == 2


def test_gzip_csv(write_file):
    path = write_file("r.csv.gz", gzip.compress(CSV.encode()))
    data = load_interactions(path, value="rating")
    assert len(data) == 3 and data.name == "r"


def test_parquet(tmp_path):
    path = tmp_path / "r.parquet"
    pd.DataFrame({"u": [1, 2, 2], "i": ["a", "b", "a"], "v": [1.0, 2.0, 3.0],
                  "t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"])}).to_parquet(path)
    data = load_interactions(path, user="u", item="i", value="v", timestamp="t")
    assert len(data) == 3 and data.user_vocab.ids.tolist() == [1, 2]
    assert data.timestamps.tolist() == [1704067200, 1704153600, 1704240000]


def test_headerless_columns_by_position(write_file):
    path = write_file("r.txt", "1;5;3\n2;6;4\n")
    data = load_interactions(path, user=0, item="1", value=2, header=False, sep=";")
    assert _pairs(data) == [(1, 5, 3.0), (2, 6, 4.0)]


def test_separator_sniffed_for_other_extensions(write_file):
    data = load_interactions(write_file("r.dat", "user\titem\n1\t2\n"))
    assert len(data) == 1


def test_iso_timestamps_event_types_and_weights(write_file):
    path = write_file("log.csv", "user,item,when,kind,w\n1,2,2024-01-01T00:00:10,click,1.5\n1,3,2024-01-01,buy,2\n")
    data = load_interactions(path, timestamp="when", event_type="kind", weight="w")
    assert data.timestamps.tolist() == [1704067210, 1704067200]
    assert data.event_names == ("buy", "click") and data.event_types.tolist() == [1, 0]
    assert data.weights.tolist() == [1.5, 2.0]


def test_duplicates_last_by_default_with_a_warning(write_file):
    path = write_file("r.csv", "user,item,rating,ts\n1,1,2,100\n1,1,5,200\n2,1,3,50\n")
    with pytest.warns(DataWarning, match="1 duplicate"):
        data = load_interactions(path, value="rating", timestamp="ts")
    assert sorted(_pairs(data)) == [(1, 1, 5.0), (2, 1, 3.0)]


def test_duplicates_keep_and_mean(write_file):
    path = write_file("r.csv", "user,item,rating\n1,1,2\n1,1,5\n")
    assert len(load_interactions(path, value="rating", duplicates="keep")) == 2
    with pytest.warns(DataWarning):
        assert load_interactions(path, value="rating", duplicates="mean").values.tolist() == [3.5]


def test_duplicates_error_names_the_pair_and_line(write_file):
    path = write_file("r.csv", "user,item,rating\n1,1,2\n2,1,3\n1,1,5\n")
    with pytest.raises(DataError) as info:
        load_interactions(path, value="rating", duplicates="error")
    message = str(info.value)
    assert "r.csv" in message and "line 4" in message and "(1, 1)" in message and "column 'item'" in message


def test_unknown_format_and_policy_are_config_errors(write_file):
    path = write_file("r.csv", CSV)
    with pytest.raises(ConfigError, match="parquet"):
        load_interactions(path, format="xlsx")
    with pytest.raises(ConfigError, match="'last'"):
        load_interactions(path, duplicates="newest")


def test_large_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    n = 50_000
    frame = pd.DataFrame({"user": rng.integers(0, 500, n), "item": rng.integers(0, 800, n),
                          "rating": rng.integers(1, 6, n)}).drop_duplicates(["user", "item"])
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    data = load_interactions(path, value="rating", duplicates="error")
    assert len(data) == len(frame)
    assert data.csr().sum() == frame["rating"].sum()
