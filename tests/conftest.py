"""Fixtures shared by every test folder: where the real data sets live.

`$TASTEMAKER_DATA_DIR` decides (CI sets it to ../shared/data). When it is unset, `../shared/data`
beside the checkout is used if present; otherwise MovieLens 100K is downloaded (official zip, md5
checked) into the cache and unpacked for the tests. A missing data set fails the tests, it never
skips them.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_beside = REPO.parent / "shared" / "data"
if not os.environ.get("TASTEMAKER_DATA_DIR") and _beside.is_dir():
    os.environ["TASTEMAKER_DATA_DIR"] = str(_beside)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ml-100k/ with the original GroupLens files."""
    from tastemaker.data import load_movielens
    from tastemaker.data.download import data_dir

    root = data_dir()
    if (root / "ml-100k" / "u.data").is_file():
        return root
    found = load_movielens("100k").root  # downloads and verifies the zip when needed
    if found is not None and found.is_dir():
        return found.parent
    unpacked = tmp_path_factory.mktemp("data")
    with zipfile.ZipFile(found) as archive:
        archive.extractall(unpacked)
    if not (unpacked / "ml-100k" / "u.data").is_file():
        pytest.fail(f"MovieLens 100K could not be found or unpacked (looked in {root}, got {found})")
    return unpacked


@pytest.fixture(scope="session")
def ml100k_dir(data_root: Path) -> Path:
    return data_root / "ml-100k"


@pytest.fixture(scope="session")
def ml100k(ml100k_dir: Path):
    """The real MovieLens 100K, loaded once per test session."""
    from tastemaker.data import load_movielens

    return load_movielens("100k", ml100k_dir, download=False)
