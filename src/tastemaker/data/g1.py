"""Loader of the Globo.com (G1) news-portal click logs: the publisher's hourly CSV files.

Layout (dataset version 2, see the data folder's PROVENANCE.md): ``clicks_hour_000.csv`` …
``clicks_hour_384.csv``, each optionally gzip'd (``.csv.gz``), either directly in the given folder
or in its ``clicks/`` subfolder; a header row in every file; all fields integers; timestamps in
**milliseconds** since the epoch. Each file holds the sessions that started in one hour (file 100
is empty: header only), so the file number is the stream's time window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tastemaker.data.generic import Column, Layout, file_source, read_table
from tastemaker.errors import DataError

G1_COLUMNS: tuple[str, ...] = (
    "user_id", "session_id", "session_start", "session_size", "click_article_id", "click_timestamp",
    "click_environment", "click_deviceGroup", "click_os", "click_country", "click_region", "click_referrer_type",
)
G1_CONTEXT_COLUMNS: tuple[str, ...] = G1_COLUMNS[6:]
"""File columns of the click context, in the order of `tastemaker.models.session.CONTEXT_FIELDS`
(environment, device, os, country, region, referrer)."""
G1_FOLDER = "globo-news-clicks"
_FILE_RE = re.compile(r"^clicks_hour_(\d+)\.csv(\.gz)?$")
_MIN_MS = 100_000_000_000  # 1973-03-03 in milliseconds: smaller values are seconds, not milliseconds


@dataclass(frozen=True, eq=False)
class G1Clicks:
    """All clicks of the loaded hourly files, in file order, as columns.

    `window[j]` is the hour file click j came from (0-based position in `files`); timestamps stay
    in milliseconds as published; `context` is (n, 6) in the order of `G1_CONTEXT_COLUMNS`.
    """

    user: np.ndarray  # int64
    session: np.ndarray  # int64
    session_start: np.ndarray  # int64 ms
    session_size: np.ndarray  # int32
    article: np.ndarray  # int64
    timestamp: np.ndarray  # int64 ms
    context: np.ndarray  # int32 (n, 6)
    window: np.ndarray  # int32
    files: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.article)

    @property
    def n_windows(self) -> int:
        return len(self.files)

    def window_counts(self) -> np.ndarray:
        """Clicks per hour file (zeros included)."""
        return np.bincount(self.window, minlength=self.n_windows)

    def describe(self) -> dict[str, int]:
        return {"clicks": len(self), "users": len(np.unique(self.user)),
                "sessions": len(np.unique(self.session)), "articles": len(np.unique(self.article)),
                "windows": self.n_windows, "empty_windows": int(np.sum(self.window_counts() == 0))}


def g1_files(path: str | Path, hours: int | None = None) -> list[Path]:
    """The hourly files under `path` (or `path/clicks`), ordered by hour; the first `hours` of them.

    Raises `DataError` when none are found or an hour in the range is missing.
    """
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root} does not exist", path=root,
                        hint=f"point to the {G1_FOLDER} folder (with clicks/clicks_hour_000.csv.gz …)")
    folders = [root / "clicks", root] if (root / "clicks").is_dir() else [root]
    found: dict[int, Path] = {}
    for folder in folders:
        for p in folder.iterdir():
            m = _FILE_RE.match(p.name)
            if m and int(m.group(1)) not in found:
                found[int(m.group(1))] = p
        if found:
            break
    if not found:
        raise DataError(f"no clicks_hour_NNN.csv[.gz] files in {root}", path=root,
                        hint="download the G1 click logs (news-portal-user-interactions-by-globocom) there")
    last = max(found)
    wanted = range(last + 1) if hours is None else range(int(hours))
    missing = [h for h in wanted if h not in found]
    if missing:
        shown = ", ".join(f"{h:03d}" for h in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise DataError(f"hour file(s) {shown} missing in {found[min(found)].parent} "
                        f"({len(missing)} of {len(wanted)})", path=found[min(found)].parent,
                        hint="the hours must be contiguous from 000; re-download the missing files")
    return [found[h] for h in wanted]


def read_g1_file(path: str | Path) -> dict[str, np.ndarray]:
    """One hourly file as int64 columns named as in the file (empty arrays for a header-only file).

    A bad header, a short line or a non-integer value raises `DataError` with file and line.
    """
    src = file_source(path)
    with src.open() as fh:
        first = fh.readline().decode("utf-8", errors="replace").strip().lstrip("\ufeff")
        if not first:
            raise DataError("the file is empty (no header)", path=src.display, line=1,
                            hint="re-download the file; every hour file starts with the header row")
        header = tuple(h.strip() for h in first.split(","))
        if header != G1_COLUMNS:
            raise DataError(f"unexpected header {','.join(header)!r}", path=src.display, line=1,
                            hint=f"expected the G1 v2 columns {','.join(G1_COLUMNS)}")
        has_rows = any(line.strip() for line in iter(fh.readline, b""))
    if not has_rows:
        return {c: np.empty(0, np.int64) for c in G1_COLUMNS}
    layout = Layout(sep=",", names=G1_COLUMNS, header=True)
    frame = read_table(src, layout, {c: Column("int") for c in G1_COLUMNS},
                       hint="every G1 field is an integer: fix or remove the line")
    cols = {c: frame[c].to_numpy(dtype=np.int64) for c in G1_COLUMNS}
    for name in ("click_timestamp", "session_start"):
        small = cols[name] < _MIN_MS
        if small.any():
            row = int(np.flatnonzero(small)[0])
            raise DataError(f"{name} {cols[name][row]} is not a millisecond timestamp", path=src.display,
                            line=row + 2, column=name,
                            hint="G1 timestamps are milliseconds since the epoch; convert seconds × 1000")
    return cols


def load_g1(path: str | Path | None = None, hours: int | None = None) -> G1Clicks:
    """Load the G1 hourly click files (all of them, or the first `hours`).

    `path` defaults to ``$TASTEMAKER_DATA_DIR/globo-news-clicks``. Files may be plain or gzip'd.
    """
    if path is None:
        from tastemaker.data.download import data_dir

        path = data_dir() / G1_FOLDER
    if hours is not None and (isinstance(hours, bool) or int(hours) < 1):
        raise DataError(f"hours must be a positive number of hourly files, got {hours!r}")
    files = g1_files(path, hours)
    parts = [read_g1_file(f) for f in files]
    sizes = [len(p["click_article_id"]) for p in parts]

    def col(name: str, dtype) -> np.ndarray:
        return np.concatenate([p[name] for p in parts]).astype(dtype, copy=False)

    context = np.stack([col(c, np.int32) for c in G1_CONTEXT_COLUMNS], axis=1) if sum(sizes) else \
        np.empty((0, len(G1_CONTEXT_COLUMNS)), np.int32)
    return G1Clicks(
        user=col("user_id", np.int64), session=col("session_id", np.int64),
        session_start=col("session_start", np.int64), session_size=col("session_size", np.int32),
        article=col("click_article_id", np.int64), timestamp=col("click_timestamp", np.int64),
        context=np.ascontiguousarray(context),
        window=np.repeat(np.arange(len(files), dtype=np.int32), sizes),
        files=tuple(str(f) for f in files),
    )


__all__ = ["G1_COLUMNS", "G1_CONTEXT_COLUMNS", "G1Clicks", "g1_files", "load_g1", "read_g1_file"]
