"""Fixtures of the data-layer tests: the real MovieLens 100K folder and tiny files written to tmp."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tastemaker.data import Interactions
from tastemaker.testing.synthetic import synthetic_ratings

TINY_GENRE = "unknown|0\nAction|1\nComedy|2\n\n"
TINY_ITEM = (
    "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|0|0|1\n"
    "2|Mis\xe9rables, Les (1995)|01-Jan-1995||http://x|0|1|0\n"
    "3|unknown||||1|0|0\n"
    "4|Old Movie|01-Jan-1950||http://y|0|1|1\n"
)
TINY_USER = "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|T8H1N\n"
TINY_OCCUPATION = "other\ntechnician\nwriter\n"
TINY_DATA = (
    "1\t1\t5\t881250949\n"
    "1\t2\t3\t881250950\n"
    "2\t1\t4\t881250951\n"
    "2\t3\t1\t881250952\n"
    "3\t2\t2\t881250953\n"
    "3\t4\t5\t881250954\n"
)
TINY_U1_BASE = "1\t1\t5\t881250949\n2\t1\t4\t881250951\n3\t2\t2\t881250953\n3\t4\t5\t881250954\n"
TINY_U1_TEST = "1\t2\t3\t881250950\n2\t3\t1\t881250952\n"


@pytest.fixture
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Empty data and cache folders in tmp, set as $TASTEMAKER_DATA_DIR / $TASTEMAKER_CACHE_DIR."""
    data, cache = tmp_path / "data-dir", tmp_path / "cache-dir"
    data.mkdir()
    cache.mkdir()
    monkeypatch.setenv("TASTEMAKER_DATA_DIR", str(data))
    monkeypatch.setenv("TASTEMAKER_CACHE_DIR", str(cache))
    return data, cache


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[..., Path]:
    """write_file(name, content, encoding="utf-8") -> path under tmp (bytes are written as they are)."""

    def write(name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
        return path

    return write


@pytest.fixture
def tiny_100k(tmp_path: Path) -> Path:
    """A minimal, valid folder in the MovieLens 100K layout (4 items, 3 users, 6 ratings, split u1)."""
    root = tmp_path / "ml-100k"
    root.mkdir()
    (root / "u.genre").write_text(TINY_GENRE)
    (root / "u.item").write_bytes(TINY_ITEM.encode("latin-1"))
    (root / "u.user").write_text(TINY_USER)
    (root / "u.occupation").write_text(TINY_OCCUPATION)
    (root / "u.data").write_text(TINY_DATA)
    (root / "u1.base").write_text(TINY_U1_BASE)
    (root / "u1.test").write_text(TINY_U1_TEST)
    return root


@pytest.fixture
def ratings() -> Interactions:
    """Synthetic explicit ratings with timestamps: 60 users × 12 events, 40 items (+ 2 items without events)."""
    return synthetic_ratings(60, 40, 12, seed=3, extra_items=2)
