"""Bad input: every error names the file, the line (1-based, header = line 1), the column and a fix."""

from __future__ import annotations

import zipfile

import pandas as pd
import pytest

from tastemaker.data import load_interactions, load_movielens
from tastemaker.errors import ChecksumError, DataError, DataWarning


def _raises(fn, *parts: str) -> str:
    with pytest.raises(DataError) as info:
        fn()
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    assert " — " in message  # a hint on what to do
    return message


def _set_line(path, line_no: int, text: str, encoding: str = "utf-8") -> None:
    lines = path.read_bytes().decode(encoding).split("\n")
    lines[line_no - 1] = text
    path.write_bytes("\n".join(lines).encode(encoding))


def test_tiny_folder_loads(tiny_100k):
    ds = load_movielens("100k", tiny_100k)
    assert len(ds.interactions) == 6 and ds.interactions.shape == (3, 4)
    assert ds.splits == ("u1",) and len(ds.split("u1").test) == 2
    assert ds.interactions.item_features.value(2, "title") == "Misérables, Les (1995)"
    assert ds.interactions.item_features.value(4, "year") == 1950  # from the release date


# --- MovieLens files -------------------------------------------------------------------------------
def test_short_line(tiny_100k):
    _set_line(tiny_100k / "u.data", 3, "2\t1\t4")
    _raises(lambda: load_movielens("100k", tiny_100k), "u.data", "line 3", "column 'timestamp'",
            "expected 4 fields", "found 3")


def test_extra_fields(tiny_100k):
    _set_line(tiny_100k / "u.data", 2, "1\t2\t3\t881250950\t7")
    _raises(lambda: load_movielens("100k", tiny_100k), "u.data", "line 2", "column 5", "extra fields")


def test_non_numeric_rating(tiny_100k):
    _set_line(tiny_100k / "u.data", 4, "2\t3\tfive\t881250952")
    _raises(lambda: load_movielens("100k", tiny_100k), "u.data", "line 4", "column 'rating'", "'five' is not a number")


def test_non_numeric_id(tiny_100k):
    _set_line(tiny_100k / "u.data", 5, "u3\t2\t2\t881250953")
    _raises(lambda: load_movielens("100k", tiny_100k), "u.data", "line 5", "column 'user'", "'u3' is not an integer")


def test_rating_outside_the_scale(tiny_100k):
    _set_line(tiny_100k / "u.data", 6, "3\t4\t6\t881250954")
    _raises(lambda: load_movielens("100k", tiny_100k), "u.data", "line 6", "column 'rating'",
            "rating 6 is outside ml-100k's rating scale 1–5")


def test_blank_lines_do_not_shift_line_numbers(tiny_100k):
    text = (tiny_100k / "u.data").read_text().split("\n")
    text[1:1] = ["", ""]  # two blank lines after line 1
    text[5] = "2\t3\t0\t881250952"  # was line 4, now line 6
    (tiny_100k / "u.data").write_text("\n".join(text))
    _raises(lambda: load_movielens("100k", tiny_100k), "u.data", "line 6", "column 'rating'", "outside")


def test_item_missing_from_u_item(tiny_100k):
    _set_line(tiny_100k / "u.data", 2, "1\t99\t3\t881250950")
    _raises(lambda: load_movielens("100k", tiny_100k), "u.data", "line 2", "column 'item'",
            "item id 99 is not listed in u.item")


def test_unknown_id_in_an_official_split_file(tiny_100k):
    _set_line(tiny_100k / "u1.test", 2, "9\t3\t1\t881250952")
    ds = load_movielens("100k", tiny_100k)
    _raises(lambda: ds.split("u1"), "u1.test", "line 2", "column 'user'", "user id 9 is not listed in u.user")


def test_bad_genre_flag_in_u_item(tiny_100k):
    _set_line(tiny_100k / "u.item", 3, "3|unknown||||1|0|2", encoding="latin-1")
    _raises(lambda: load_movielens("100k", tiny_100k), "u.item", "line 3", "column 'Comedy'", "not 0 or 1")


def test_short_line_in_u_item(tiny_100k):
    _set_line(tiny_100k / "u.item", 4, "4|Old Movie|01-Jan-1950||http://y|0|1", encoding="latin-1")
    _raises(lambda: load_movielens("100k", tiny_100k), "u.item", "line 4", "column 'Comedy'", "expected 8 fields")


def test_undecodable_bytes(tiny_100k):
    (tiny_100k / "u.user").write_bytes(b"1|24|M|technician|85711\n2|53|F|\xe9tudiant|94043\n")
    message = _raises(lambda: load_movielens("100k", tiny_100k), "u.user", "line 2", "column 'occupation'",
                       "utf-8")
    assert "encoding='latin-1'" in message


def test_undecodable_bytes_in_a_csv_release(write_file, tmp_path):
    write_file("ml-latest-small/movies.csv",
               b"movieId,title,genres\n1,Toy Story (1995),Comedy\n2,Mis\xe9rables,Drama\n")
    write_file("ml-latest-small/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n")
    _raises(lambda: load_movielens("latest-small", tmp_path), "movies.csv", "line 3", "column 'title'",
            "cannot be decoded as utf-8", "latin-1")


def test_missing_column_in_a_csv_release(write_file, tmp_path):
    write_file("ml-25m/movies.csv", "movieId,title,genres\n1,Toy Story (1995),Comedy\n")
    write_file("ml-25m/ratings.csv", "userId,movieId,stars,timestamp\n1,1,4.0,1\n")
    _raises(lambda: load_movielens("25m", tmp_path / "ml-25m"), "ratings.csv", "line 1", "column 'rating'",
            "userId,movieId,rating,timestamp")


def test_bad_value_in_a_dat_release(write_file, tmp_path):
    write_file("ml-1m/movies.dat", "1::Toy Story (1995)::Comedy\n")
    write_file("ml-1m/users.dat", "1::F::1::10::48067\n")
    write_file("ml-1m/ratings.dat", "1::1::5::978300760\n1::1::4:978300761\n")
    _raises(lambda: load_movielens("1m", tmp_path / "ml-1m"), "ratings.dat", "line 2", "column 'timestamp'",
            "expected 4 fields separated by '::', found 3")


def test_empty_file(tiny_100k):
    (tiny_100k / "u.data").write_text("")
    _raises(lambda: load_movielens("100k", tiny_100k), "u.data", "line 1", "empty")


def test_folder_lacking_a_required_file(tiny_100k):
    (tiny_100k / "u.item").unlink()
    _raises(lambda: load_movielens("100k", tiny_100k), str(tiny_100k), "has no u.item", "ml-100k.zip")


def test_folder_without_the_ratings_file(tmp_path):
    _raises(lambda: load_movielens("100k", tmp_path), str(tmp_path), "u.data")


def test_zip_with_a_wrong_md5(tiny_100k, tmp_path):
    zpath = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in tiny_100k.iterdir():
            zf.write(f, f"ml-100k/{f.name}")
    with pytest.raises(ChecksumError) as info:
        load_movielens("100k", zpath, md5="1" * 32)
    assert str(zpath) in str(info.value) and "expected " + "1" * 32 in str(info.value)


def test_duplicate_ratings(tiny_100k):
    with open(tiny_100k / "u.data", "a") as fh:
        fh.write("2\t3\t5\t881250999\n")
    with pytest.warns(DataWarning, match="1 duplicate"):
        ds = load_movielens("100k", tiny_100k)
    assert len(ds.interactions) == 6
    frame = ds.interactions.to_frame()
    assert frame.loc[(frame["user"] == 2) & (frame["item"] == 3), "value"].tolist() == [5.0]  # the later one
    _raises(lambda: load_movielens("100k", tiny_100k, duplicates="error"), "u.data", "line 7", "column 'item'",
            "(user 2, item 3)")


# --- the generic loader ----------------------------------------------------------------------------
def test_generic_missing_column(write_file):
    path = write_file("events.csv", "user,item,score\n1,2,3\n")
    _raises(lambda: load_interactions(path, value="rating"), "events.csv", "line 1", "column 'rating'",
            "['user', 'item', 'score']")


def test_generic_short_line(write_file):
    path = write_file("events.csv", "user,item,rating\n1,2,3\n1,3\n")
    _raises(lambda: load_interactions(path, value="rating"), "events.csv", "line 3", "column 'rating'",
            "expected 3 fields")


def test_generic_non_numeric_value_after_a_quoted_multiline_field(write_file):
    path = write_file("events.csv", 'user,item,rating,note\n1,2,3,"two\nlines"\n1,3,bad,ok\n')
    _raises(lambda: load_interactions(path, value="rating"), "events.csv", "line 4", "column 'rating'",
            "'bad' is not a number")


def test_generic_empty_id(write_file):
    path = write_file("events.tsv", "user\titem\n1\t2\n\t3\n")
    _raises(lambda: load_interactions(path), "events.tsv", "line 3", "column 'user'", "empty value")


def test_generic_rating_outside_scale(write_file):
    path = write_file("events.csv.gz", b"")
    import gzip

    path.write_bytes(gzip.compress(b"user,item,rating\n1,2,3\n1,3,11\n"))
    _raises(lambda: load_interactions(path, value="rating", rating_scale=(1, 10)), "events.csv.gz", "line 3",
            "column 'rating'", "outside the rating scale 1–10")


def test_generic_bad_timestamp(write_file):
    path = write_file("events.csv", "user,item,t\n1,2,2024-01-01\n1,3,yesterday\n")
    _raises(lambda: load_interactions(path, timestamp="t"), "events.csv", "line 3", "column 't'", "'yesterday'")


def test_generic_undecodable(write_file):
    path = write_file("events.csv", b"user,item\n1,2\ncaf\xe9,3\n")
    _raises(lambda: load_interactions(path), "events.csv", "line 3", "column 'user'", "latin-1")
    assert load_interactions(path, encoding="latin-1").user_vocab.ids.tolist() == ["1", "café"]


def test_generic_empty_and_header_only(write_file):
    _raises(lambda: load_interactions(write_file("a.csv", "")), "a.csv", "line 1", "empty")
    _raises(lambda: load_interactions(write_file("b.csv", "user,item\n")), "b.csv", "line 2", "no data rows")


def test_generic_missing_file(tmp_path):
    _raises(lambda: load_interactions(tmp_path / "nope.csv"), "nope.csv", "no such file")


def test_generic_parquet_bad_value(tmp_path):
    path = tmp_path / "e.parquet"
    pd.DataFrame({"user": [1, 2], "item": [1, 2], "rating": ["4", "x"]}).to_parquet(path)
    _raises(lambda: load_interactions(path, value="rating"), "e.parquet", "row 2", "column 'rating'", "'x'")


def test_generic_empty_timestamp(write_file):
    path = write_file("events.csv", "user,item,t\n1,2,100\n1,3,\n")
    _raises(lambda: load_interactions(path, timestamp="t"), "events.csv", "line 3", "column 't'", "empty value")
