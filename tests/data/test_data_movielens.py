"""The real MovieLens 100K: counts, official splits, features, zip and folder resolution."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tastemaker.data import DATASETS, Dataset, load_dataset, load_movielens, md5sum, official_split
from tastemaker.data import movielens as ml
from tastemaker.errors import ChecksumError, ConfigError, DataError


def _rows(data) -> set[tuple[int, int, float, int]]:
    frame = data.to_frame()
    return set(zip(frame["user"].tolist(), frame["item"].tolist(), frame["value"].tolist(),
                   frame["timestamp"].tolist()))


def test_counts_and_kind(ml100k):
    data = ml100k.interactions
    assert isinstance(ml100k, Dataset) and ml100k.name == "ml-100k"
    assert len(data) == 100_000
    assert data.n_users == 943 and data.n_items == 1682
    assert data.explicit and data.rating_scale == (1.0, 5.0) and data.name == "ml-100k"
    assert data.timestamps.dtype == np.int64 and data.timestamps.min() > 8e8
    assert data.values.min() == 1.0 and data.values.max() == 5.0
    assert ml100k.describe()["events"] == 100_000


def test_official_splits(ml100k):
    assert ml100k.splits == ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
    train, test = ml100k.split("u1")
    assert (len(train), len(test)) == (80_000, 20_000)
    assert official_split(ml100k, "u1") is ml100k.split("u1")  # read once
    for half in (train, test):
        assert half.user_vocab is ml100k.interactions.user_vocab
        assert half.item_vocab is ml100k.interactions.item_vocab
        assert half.item_features is ml100k.interactions.item_features
    assert _rows(train) | _rows(test) == _rows(ml100k.interactions)
    assert not _rows(train) & _rows(test)


def test_ua_test_holds_exactly_ten_ratings_per_user(ml100k):
    train, test = ml100k.split("ua")
    counts = test.user_counts
    assert len(test) == 9430 and (counts == 10).all()
    assert len(train) == 90_570


def test_five_folds_cover_every_rating_once(ml100k):
    tests = [ml100k.split(f"u{k}").test for k in range(1, 6)]
    assert sum(len(t) for t in tests) == 100_000
    assert set().union(*(_rows(t) for t in tests)) == _rows(ml100k.interactions)


def test_unknown_split_lists_the_available_ones(ml100k):
    with pytest.raises(DataError, match=r"'u1', 'u2'.*'ub'"):
        ml100k.split("u9")


def test_titles_are_decoded_from_latin1_and_years_parsed(ml100k):
    feats = ml100k.interactions.item_features
    assert feats.value(1, "title") == "Toy Story (1995)"
    assert feats.value(543, "title") == "Misérables, Les (1995)"
    assert feats.value(1633, "title") == "Á köldum klaka (Cold Fever) (1994)"
    assert feats.frame["year"].dtype == "Int64"
    assert feats.value(1, "year") == 1995
    assert pd.isna(feats.frame.loc[267, "year"])  # title "unknown", no date
    assert feats.frame.loc[1, "release_date"] == pd.Timestamp("1995-01-01")
    assert feats.value(1, "imdb_url").startswith("http://us.imdb.com/")
    assert len(feats) == 1682


def test_genres(ml100k):
    feats = ml100k.interactions.item_features
    labels, matrix = feats.multi_hot["genres"]
    assert len(labels) == 19 and labels[0] == "unknown" and labels[1] == "Action"
    assert matrix.shape == (1682, 19) and matrix.dtype == bool
    assert feats.labels_of(1, "genres") == ["Animation", "Children's", "Comedy"]
    assert feats.labels_of(2, "genres") == ["Action", "Adventure", "Thriller"]


def test_user_features(ml100k):
    feats = ml100k.interactions.user_features
    assert len(feats) == 943
    row = feats.frame.loc[1]
    assert (row["age"], row["gender"], row["occupation"], row["zip"]) == (24, "M", "technician", "85711")
    labels, onehot = feats.multi_hot["occupation"]
    assert len(labels) == 21 and (onehot.sum(axis=1) == 1).all()
    assert feats.labels_of(1, "occupation") == ["technician"]


def test_found_through_the_data_dir_environment(data_root, monkeypatch, tmp_path):
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(data_root))
    monkeypatch.setenv("TASTEMAKER_CACHE_DIR", str(tmp_path))
    ds = load_movielens(download=False)
    assert ds.root == data_root / "ml-100k" and len(ds.interactions) == 100_000


def test_path_may_be_the_parent_folder(data_root, ml100k):
    ds = load_dataset("ml-100k", data_root, download=False)
    assert ds.interactions.fingerprint() == ml100k.interactions.fingerprint()


def test_not_found_says_where_it_looked(isolated_dirs):
    data, cache = isolated_dirs
    with pytest.raises(DataError) as info:
        load_movielens("100k", download=False)
    message = str(info.value)
    assert str(data / "ml-100k") in message and str(cache / "ml-100k.zip") in message
    assert "TASTEMAKER_DATA_DIR" in message and "path=" in message


def _zip_of(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            if f.is_file() and (f.name.startswith("u") or f.name == "README"):
                zf.write(f, f"ml-100k/{f.name}")
    return dest


@pytest.fixture(scope="module")
def ml100k_zip(ml100k_dir, tmp_path_factory) -> Path:
    return _zip_of(ml100k_dir, tmp_path_factory.mktemp("zip") / "ml-100k.zip")


def test_zip_with_its_md5_loads_like_the_folder(ml100k_zip, ml100k):
    ds = load_movielens("100k", ml100k_zip, md5=md5sum(ml100k_zip))
    assert ds.root == ml100k_zip
    assert ds.interactions.fingerprint() == ml100k.interactions.fingerprint()
    assert ds.splits == ml100k.splits
    assert len(ds.split("ub").test) == 9430
    assert ds.interactions.item_features.value(543, "title") == "Misérables, Les (1995)"


def test_zip_checked_against_the_published_md5(ml100k_zip, monkeypatch):
    # a self-made zip is not the official one: refused by default
    with pytest.raises(ChecksumError) as info:
        load_movielens("100k", ml100k_zip)
    message = str(info.value)
    assert "0e33842e24a9c977be4e0107933c0723" in message and md5sum(ml100k_zip) in message
    assert "ml-100k.zip" in message and "download it again" in message
    # with the table's md5 set to this zip's, it is accepted
    patched = dataclasses.replace(ml.VARIANTS["100k"], md5=md5sum(ml100k_zip))
    monkeypatch.setitem(ml.VARIANTS, "100k", patched)
    assert len(load_movielens("100k", ml100k_zip).interactions) == 100_000


def test_zip_with_a_wrong_md5_is_refused(ml100k_zip):
    with pytest.raises(ChecksumError, match=r"expected f{32}"):
        load_movielens("100k", ml100k_zip, md5="f" * 32)


def test_zip_found_in_the_data_dir(ml100k_zip, isolated_dirs, monkeypatch):
    data, _cache = isolated_dirs
    (data / "ml-100k.zip").write_bytes(ml100k_zip.read_bytes())
    ds = load_movielens(download=False, md5=md5sum(ml100k_zip))
    assert ds.root == data / "ml-100k.zip" and len(ds.interactions) == 100_000


def test_download_into_the_cache_dir(ml100k_zip, isolated_dirs, monkeypatch):
    _data, cache = isolated_dirs
    monkeypatch.setattr(ml, "BASE_URL", ml100k_zip.parent.as_uri() + "/")
    patched = dataclasses.replace(ml.VARIANTS["100k"], md5=md5sum(ml100k_zip))
    monkeypatch.setitem(ml.VARIANTS, "100k", patched)
    ds = load_movielens()
    assert ds.root == cache / "ml-100k.zip" and (cache / "ml-100k.zip").is_file()
    assert len(ds.interactions) == 100_000


def test_load_dataset_names():
    assert DATASETS == ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest", "ml-latest-small")
    with pytest.raises(ConfigError, match="ml-100k, ml-1m"):
        load_dataset("netflix")
    with pytest.raises(ConfigError, match="unknown MovieLens variant"):
        load_movielens("3m")
