"""MovieLens 1M / 10M / 20M / 25M / latest layouts, on small synthetic files written to tmp."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from tastemaker.data import load_dataset, load_movielens, md5sum

MOVIES_DAT = (
    "1::Toy Story (1995)::Animation|Children's|Comedy\n"
    "2::Misérables, Les (1995)::Drama|Musical\n"
    "5::Fawlty Towers (1975-1979)::Comedy\n"
)
USERS_DAT = "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n"
RATINGS_1M = "1::1::5::978300760\n1::2::3::978302109\n2::5::4::978301968\n3::1::1::978300275\n"
RATINGS_10M = "1::1::5::838985046\n1::2::3.5::838983525\n7::5::0.5::838983392\n"
MOVIES_CSV = (
    "movieId,title,genres\n"
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
    '11,"American President, The (1995)",Comedy|Drama|Romance\n'
    "20,Nothing To Watch (2018),(no genres listed)\n"
)
RATINGS_CSV = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,11,0.5,964981247\n9,20,5.0,964982224\n"


def test_1m_layout(write_file, tmp_path):
    write_file("ml-1m/movies.dat", MOVIES_DAT, encoding="latin-1")
    write_file("ml-1m/users.dat", USERS_DAT)
    write_file("ml-1m/ratings.dat", RATINGS_1M)
    ds = load_movielens("1m", tmp_path / "ml-1m")
    data = ds.interactions
    assert ds.name == data.name == "ml-1m" and ds.splits == ()
    assert len(data) == 4 and data.shape == (3, 3)
    assert data.rating_scale == (1.0, 5.0) and data.explicit
    assert data.timestamps.tolist() == [978300760, 978302109, 978301968, 978300275]
    items = data.item_features
    assert items.value(2, "title") == "Misérables, Les (1995)"  # latin-1 decoded
    assert items.value(5, "year") == 1975
    assert items.labels_of(1, "genres") == ["Animation", "Children's", "Comedy"]
    users = data.user_features
    assert users.value(1, "occupation") == "K-12 student" and users.value(2, "occupation") == "self-employed"
    assert users.value(2, "age") == 56 and users.value(3, "zip") == "55117"


def test_10m_layout_without_users_and_half_stars(write_file, tmp_path):
    write_file("ml-10M100K/movies.dat", MOVIES_DAT)  # UTF-8 in 10M
    write_file("ml-10M100K/ratings.dat", RATINGS_10M)
    ds = load_movielens("10m", tmp_path)  # the parent folder: finds ml-10M100K/
    data = ds.interactions
    assert data.name == "ml-10m" and data.rating_scale == (0.5, 5.0)
    assert data.values.tolist() == [5.0, 3.5, 0.5]
    assert data.user_vocab.ids.tolist() == [1, 7]  # users come from the ratings
    assert data.user_features is None
    assert data.item_features.value(2, "title") == "Misérables, Les (1995)"


@pytest.mark.parametrize("variant", ["20m", "25m", "latest", "latest-small"])
def test_csv_layouts(variant, write_file, tmp_path):
    folder = f"ml-{variant}"
    write_file(f"{folder}/movies.csv", MOVIES_CSV)
    write_file(f"{folder}/ratings.csv", RATINGS_CSV)
    ds = load_dataset(f"ml-{variant}", tmp_path / folder)
    data = ds.interactions
    assert data.name == f"ml-{variant}" and len(data) == 3
    assert data.rating_scale == (0.5, 5.0)
    assert data.item_vocab.ids.tolist() == [1, 11, 20] and data.user_vocab.ids.tolist() == [1, 9]
    items = data.item_features
    assert items.value(11, "title") == "American President, The (1995)"  # quoted comma
    labels, matrix = items.multi_hot["genres"]
    assert "(no genres listed)" not in labels
    assert items.labels_of(20, "genres") == []
    assert items.labels_of(11, "genres") == ["Comedy", "Drama", "Romance"]
    assert matrix.shape == (3, len(labels))


def test_1m_from_a_zip(write_file, tmp_path):
    zpath = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("ml-1m/movies.dat", MOVIES_DAT.encode("latin-1"))
        zf.writestr("ml-1m/users.dat", USERS_DAT)
        zf.writestr("ml-1m/ratings.dat", RATINGS_1M)
        zf.writestr("__MACOSX/ml-1m/._ratings.dat", b"\x00\x01junk")
    ds = load_movielens("ml-1m", zpath, md5=md5sum(zpath))
    assert len(ds.interactions) == 4
    assert np.array_equal(ds.interactions.user_counts, [2, 1, 1])
