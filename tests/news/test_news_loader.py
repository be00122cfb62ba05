"""The G1 loader on the real hourly files, and bad input located by file and line."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tastemaker.data.download import data_dir
from tastemaker.data.g1 import G1_COLUMNS, g1_files, load_g1, read_g1_file
from tastemaker.errors import DataError


@pytest.fixture(scope="session")
def g1_dir() -> Path:
    path = data_dir() / "globo-news-clicks"
    if not (path / "clicks" / "clicks_hour_000.csv.gz").is_file():
        pytest.fail(f"G1 click logs not found in {path} (set TASTEMAKER_DATA_DIR to the shared data folder)")
    return path


def _manifest_rows(g1_dir: Path) -> dict[str, int]:
    rows = {}
    for line in (g1_dir / "MANIFEST.tsv").read_text().splitlines()[1:]:
        name, lines, *_ = line.split("\t")
        rows[name] = int(lines) - 1
    return rows


def test_first_hours_match_the_manifest(g1_dir):
    expected = _manifest_rows(g1_dir)
    clicks = load_g1(g1_dir, hours=3)
    counts = clicks.window_counts()
    assert counts.tolist() == [expected[f"clicks/clicks_hour_{h:03d}.csv.gz"] for h in range(3)]
    assert counts[0] == 1883
    assert clicks.n_windows == 3 and len(clicks) == counts.sum()
    # first rows of hour 0 as published (user 0, session 1506825423271737, article 157541, ms timestamps)
    assert clicks.user[0] == 0 and clicks.session[0] == 1506825423271737 and clicks.article[0] == 157541
    assert clicks.timestamp[0] == 1506826828020 and clicks.context[0].tolist() == [4, 3, 20, 1, 20, 2]


def test_file_100_is_empty_and_counts_around_it(g1_dir):
    expected = _manifest_rows(g1_dir)
    cols = read_g1_file(g1_dir / "clicks" / "clicks_hour_100.csv.gz")
    assert set(cols) == set(G1_COLUMNS) and all(len(v) == 0 for v in cols.values())
    for h in (99, 101):
        rows = read_g1_file(g1_dir / "clicks" / f"clicks_hour_{h:03d}.csv.gz")["click_article_id"]
        assert len(rows) == expected[f"clicks/clicks_hour_{h:03d}.csv.gz"] > 0


def test_all_385_files_are_found_in_order(g1_dir):
    files = g1_files(g1_dir)
    assert len(files) == 385
    assert [f.name for f in files[:2]] == ["clicks_hour_000.csv.gz", "clicks_hour_001.csv.gz"]
    assert files[-1].name == "clicks_hour_384.csv.gz"


def _copy_hours(g1_dir: Path, tmp_path: Path, hours: int, plain: bool = False) -> Path:
    out = tmp_path / "g1" / "clicks"
    out.mkdir(parents=True)
    for h in range(hours):
        src = g1_dir / "clicks" / f"clicks_hour_{h:03d}.csv.gz"
        if plain:
            with gzip.open(src, "rb") as fh:
                (out / f"clicks_hour_{h:03d}.csv").write_bytes(fh.read())
        else:
            shutil.copy(src, out / src.name)
    return out.parent


def test_plain_and_gzip_files_load_the_same(g1_dir, tmp_path):
    plain = load_g1(_copy_hours(g1_dir, tmp_path, 2, plain=True))
    zipped = load_g1(g1_dir, hours=2)
    for name in ("user", "session", "session_start", "article", "timestamp", "context", "window"):
        assert np.array_equal(getattr(plain, name), getattr(zipped, name)), name


def _write_plain(tmp_path: Path, text: str, hour: int = 0) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir(exist_ok=True)
    (folder / f"clicks_hour_{hour:03d}.csv").write_text(text)
    return folder


HEADER = ",".join(G1_COLUMNS)
ROW = "0,1506825423271737,1506825423000,2,157541,1506826828020,4,3,20,1,20,2"


@pytest.mark.parametrize(("body", "line", "column"), [
    (f"{ROW}\n{ROW}\n0,1,1506825423000,2,x,1506826828020,4,3,20,1,20,2\n", 4, "click_article_id"),
    (f"{ROW}\n0,1,1506825423000,2,157541\n", 3, "click_timestamp"),
    (f"{ROW}\n{ROW.replace('1506826828020', '1506826828')}\n", 3, "click_timestamp"),
])
def test_bad_rows_name_file_line_and_column(tmp_path, body, line, column):
    folder = _write_plain(tmp_path, f"{HEADER}\n{body}")
    with pytest.raises(DataError) as info:
        load_g1(folder)
    err = info.value
    assert err.path.endswith("clicks_hour_000.csv") and err.line == line and err.column == column
    assert " — " in str(err)


def test_bad_header_and_missing_hours(tmp_path):
    folder = _write_plain(tmp_path, "user,session,item\n1,2,3\n")
    with pytest.raises(DataError, match="unexpected header") as info:
        load_g1(folder)
    assert info.value.line == 1
    _write_plain(tmp_path, f"{HEADER}\n{ROW}\n", hour=0)
    _write_plain(tmp_path, f"{HEADER}\n{ROW}\n", hour=2)
    with pytest.raises(DataError, match=r"hour file.* 001 missing"):
        load_g1(folder)
    with pytest.raises(DataError, match="does not exist"):
        load_g1(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no clicks_hour"):
        load_g1(tmp_path)


def test_default_folder_is_under_the_data_dir(g1_dir, monkeypatch):
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(g1_dir.parent))
    assert len(load_g1(hours=1)) == 1883
    assert os.environ["TASTEMAKER_DATA_DIR"] == str(g1_dir.parent)
