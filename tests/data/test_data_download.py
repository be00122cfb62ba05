"""Data/cache folders and checksum-verified downloads (from file:// URLs: no network)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tastemaker.data import cache_dir, data_dir, fetch, md5sum, verify_md5
from tastemaker.errors import ChecksumError, DataError

PAYLOAD = b"user,item\n" + b"1,2\n" * 5000


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_folders_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("TASTEMAKER_CACHE_DIR", str(tmp_path / "c"))
    assert data_dir() == tmp_path / "d"
    assert cache_dir() == tmp_path / "c"


def test_folders_default_under_the_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("TASTEMAKER_DATA_DIR", raising=False)
    monkeypatch.delenv("TASTEMAKER_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "tastemaker"
    assert data_dir() == tmp_path / ".cache" / "tastemaker" / "data"


def test_fetch_downloads_verifies_and_leaves_no_temp_file(write_file, tmp_path):
    src = write_file("remote/file.csv", PAYLOAD)
    dest = tmp_path / "cache" / "file.csv"
    out = fetch(src.as_uri(), dest, _md5(PAYLOAD))
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.csv"]


def test_fetch_with_progress_bars_on(write_file, tmp_path):
    from tastemaker.progress import progress_bars

    src = write_file("remote/file.csv", PAYLOAD)
    with progress_bars():
        out = fetch(src.as_uri(), tmp_path / "x.csv", None)
    assert out.read_bytes() == PAYLOAD


def test_fetch_checksum_mismatch_deletes_and_names_both_md5s(write_file, tmp_path):
    src = write_file("remote/file.csv", PAYLOAD)
    dest = tmp_path / "cache" / "file.csv"
    wrong = "0" * 32
    with pytest.raises(ChecksumError) as info:
        fetch(src.as_uri(), dest, wrong)
    message = str(info.value)
    assert wrong in message and _md5(PAYLOAD) in message and "file.csv" in message
    assert "again" in message  # says what to do
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_fetch_skips_a_file_already_there_with_the_right_md5(write_file, tmp_path):
    dest = write_file("cache/file.csv", PAYLOAD)
    out = fetch((tmp_path / "does-not-exist").as_uri(), dest, _md5(PAYLOAD))
    assert out == dest and dest.read_bytes() == PAYLOAD


def test_fetch_unreachable_url_is_a_data_error_saying_where_to_put_the_file(tmp_path):
    dest = tmp_path / "file.zip"
    with pytest.raises(DataError, match="could not download") as info:
        fetch((tmp_path / "missing.zip").as_uri(), dest, None)
    assert str(dest) in str(info.value)
    assert not dest.exists()


def test_verify_md5(write_file):
    path = write_file("a.zip", PAYLOAD)
    assert md5sum(path) == _md5(PAYLOAD)
    verify_md5(path, _md5(PAYLOAD).upper())  # case does not matter
    with pytest.raises(ChecksumError, match="expected 0{32}, got " + _md5(PAYLOAD)) as info:
        verify_md5(path, "0" * 32)
    assert info.value.path == str(Path(path))
