"""MovieLens loaders: 100K, 1M, 10M, 20M, 25M, latest and latest-small (GroupLens Research).

Each variant is read from its unpacked folder or straight from its official zip. The data are
not shipped with tastemaker (the GroupLens terms forbid redistribution); see `load_movielens`
for where they are looked for and how they are downloaded.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
import pandas as pd

from tastemaker.data.datasets import Dataset
from tastemaker.data.download import CACHE_DIR_ENV, DATA_DIR_ENV, cache_dir, data_dir, fetch, verify_md5
from tastemaker.data.features import SideFeatures
from tastemaker.data.generic import (
    Column,
    Layout,
    TextSource,
    check_duplicates_policy,
    check_rating_scale,
    file_source,
    first_duplicate,
    read_header,
    read_table,
    row_error,
    zip_source,
)
from tastemaker.data.interactions import DuplicatePolicy, Interactions
from tastemaker.data.splits import Split
from tastemaker.data.vocabulary import Vocabulary
from tastemaker.errors import ChecksumError, ConfigError, DataError

BASE_URL = "https://files.grouplens.org/datasets/movielens/"
OFFICIAL_SPLITS_100K: tuple[str, ...] = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
NO_GENRES = "(no genres listed)"

# The occupations of MovieLens 1M's users.dat, by code (from its README).
OCCUPATIONS_1M: tuple[str, ...] = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer", "programmer",
    "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
)


@dataclass(frozen=True)
class Variant:
    """One MovieLens release: where to get it and how its files are laid out."""

    key: str
    folders: tuple[str, ...]
    zip_name: str
    md5: str | None
    layout: Literal["100k", "dat", "csv"]
    rating_scale: tuple[float, float]
    ratings_file: str

    @property
    def name(self) -> str:
        return f"ml-{self.key}"

    @property
    def url(self) -> str:
        return BASE_URL + self.zip_name


# md5s are GroupLens' published ones; the "latest" archives change over time, so they have none.
VARIANTS: dict[str, Variant] = {
    v.key: v
    for v in (
        Variant("100k", ("ml-100k",), "ml-100k.zip", "0e33842e24a9c977be4e0107933c0723", "100k", (1.0, 5.0), "u.data"),
        Variant("1m", ("ml-1m",), "ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906", "dat", (1.0, 5.0), "ratings.dat"),
        Variant("10m", ("ml-10M100K", "ml-10m"), "ml-10m.zip", "ce571fd55effeba0271552578f2648bd", "dat", (0.5, 5.0),
                "ratings.dat"),
        Variant("20m", ("ml-20m",), "ml-20m.zip", "cd245b17a1ae2cc31bb14903e1204af3", "csv", (0.5, 5.0), "ratings.csv"),
        Variant("25m", ("ml-25m",), "ml-25m.zip", "6b51fb2759a8657d3bfcbfc42b592ada", "csv", (0.5, 5.0), "ratings.csv"),
        Variant("latest", ("ml-latest",), "ml-latest.zip", None, "csv", (0.5, 5.0), "ratings.csv"),
        Variant("latest-small", ("ml-latest-small",), "ml-latest-small.zip", None, "csv", (0.5, 5.0), "ratings.csv"),
    )
}

_RATINGS_COLUMNS = {"user": Column("int"), "item": Column("int"), "rating": Column("float"),
                    "timestamp": Column("int")}


def load_movielens(
    variant: str = "100k",
    path: str | Path | None = None,
    *,
    download: bool = True,
    duplicates: DuplicatePolicy = "last",
    md5: str | None = None,
) -> Dataset:
    """Load a MovieLens release as a `Dataset` (ratings with item and user side features).

    `variant` is one of ``"100k"``, ``"1m"``, ``"10m"``, ``"20m"``, ``"25m"``, ``"latest"``,
    ``"latest-small"`` (an ``"ml-"`` prefix is accepted too).

    Where the files come from: `path` may be the unpacked folder (e.g. ``ml-100k/``), the official
    zip, or a folder holding either. Without `path`, the first of these that exists is used:
    ``$TASTEMAKER_DATA_DIR/ml-100k/``, ``$TASTEMAKER_DATA_DIR/ml-100k.zip``,
    ``$TASTEMAKER_CACHE_DIR/ml-100k.zip`` (see `tastemaker.data.download` for the defaults);
    otherwise, with ``download=True``, the zip is downloaded from GroupLens into the cache folder
    and its md5 checked. A zip is checked against the published md5 (or `md5` when given; a
    mismatch raises `ChecksumError`), a folder is read as it is.

    What you get: ratings as explicit `Interactions` (scale 1–5 for 100K and 1M, 0.5–5 for the
    others, timestamps in seconds) named e.g. ``"ml-100k"``. The vocabularies hold every movie of
    the movie file and every user of the user file (100K, 1M; the others: every user with a
    rating), so all splits share them. Item features: ``title``, ``year`` (from the title, else
    the release date), for 100K also ``release_date`` and ``imdb_url``, and multi-hot
    ``genres``. User features (100K, 1M): ``age``, ``gender``, ``occupation``, ``zip`` and a
    one-hot ``occupation``. 100K's official splits (``u1`` … ``u5``, ``ua``, ``ub``) are read
    lazily by ``dataset.split(name)``.

    Duplicate (user, item) ratings follow `duplicates` (see `Interactions.dedupe`): ``"last"``
    (default) keeps the latest rating and warns with a `DataWarning`; ``"error"`` raises a
    `DataError` naming the pair and its line. The official files have none.

    Bad files raise `DataError` naming the file, line, column and a fix.
    """
    v = _variant(variant)
    check_duplicates_policy(duplicates)
    files = _resolve(v, path, download, md5)
    if v.layout == "100k":
        return _load_100k(v, files, duplicates)
    if v.layout == "dat":
        return _load_dat(v, files, duplicates)
    return _load_csv(v, files, duplicates)


def _variant(variant: str) -> Variant:
    key = str(variant).lower().removeprefix("ml-")
    if key == "10m100k":
        key = "10m"
    if key not in VARIANTS:
        raise ConfigError(f"unknown MovieLens variant {variant!r}; use one of {', '.join(VARIANTS)}")
    return VARIANTS[key]


# --- finding the files ---------------------------------------------------------------------------
class _Files:
    """The files of one release, in a folder or a zip archive."""

    def __init__(self, root: Path, variant: Variant) -> None:
        self.root = root
        self.variant = variant
        self.is_zip = root.is_file()
        self._members: dict[str, str] = {}
        if self.is_zip:
            with zipfile.ZipFile(root) as zf:
                names = sorted(zf.namelist(), key=lambda n: (n.count("/"), n))
            for member in names:
                p = PurePosixPath(member)
                if member.endswith("/") or "__MACOSX" in p.parts:
                    continue
                self._members.setdefault(p.name, member)

    def has(self, name: str) -> bool:
        return name in self._members if self.is_zip else (self.root / name).is_file()

    def source(self, name: str) -> TextSource:
        if not self.has(name):
            what = "archive" if self.is_zip else "folder"
            raise DataError(
                f"the {self.variant.name} {what} has no {name}",
                path=self.root,
                hint=f"use the complete, unpacked {self.variant.zip_name} (from {self.variant.url}), "
                "or pass path= pointing at it",
            )
        return zip_source(self.root, self._members[name]) if self.is_zip else file_source(self.root / name)


def _resolve(v: Variant, path: str | Path | None, download: bool, md5: str | None) -> _Files:
    if path is not None:
        root = _from_path(v, Path(path).expanduser())
    else:
        candidates = [data_dir() / f for f in v.folders] + [data_dir() / v.zip_name, cache_dir() / v.zip_name]
        root = next((c for c in candidates if c.exists()), None)
        if root is None:
            if not download:
                looked = ", ".join(str(c) for c in candidates)
                raise DataError(
                    f"{v.name} not found; looked in {looked}",
                    hint=f"set {DATA_DIR_ENV} to the folder holding {v.folders[0]}/ (or {v.zip_name}), pass path=, "
                    f"or allow download=True (it goes to ${CACHE_DIR_ENV}, default ~/.cache/tastemaker)",
                )
            root = fetch(v.url, cache_dir() / v.zip_name, md5 or v.md5)
            return _Files(root, v)
        if root.is_dir() and not (root / v.ratings_file).is_file():
            raise DataError(f"the {v.name} folder has no {v.ratings_file}", path=root,
                            hint=f"unpack {v.zip_name} there again (from {v.url})")
    if root.is_file():
        if not zipfile.is_zipfile(root):
            raise DataError("not a zip archive", path=root,
                            hint=f"pass the unpacked {v.folders[0]}/ folder or the official {v.zip_name}")
        expected = md5 or v.md5
        if expected is not None:
            try:
                verify_md5(root, expected)
            except ChecksumError as exc:
                raise ChecksumError(
                    exc.problem, path=root,
                    hint=f"{exc.hint}; a zip you made yourself: unpack it and pass the folder, or pass md5=<its md5>",
                ) from None
    return _Files(root, v)


def _from_path(v: Variant, p: Path) -> Path:
    if not p.exists():
        raise DataError("no such file or folder", path=p,
                        hint=f"pass the unpacked {v.folders[0]}/ folder, the {v.zip_name} archive, or their parent")
    if p.is_file():
        return p
    if (p / v.ratings_file).is_file():
        return p
    for child in (*[p / f for f in v.folders], p / v.zip_name):
        if child.exists():
            return child
    raise DataError(
        f"the folder has no {v.ratings_file}, {v.folders[0]}/ or {v.zip_name}",
        path=p,
        hint=f"pass the unpacked {v.folders[0]}/ folder (it holds {v.ratings_file}), the {v.zip_name} archive, "
        f"or the folder that holds one of them; get it from {v.url}",
    )


# --- shared pieces ---------------------------------------------------------------------------------
def _sorted_vocab(ids: np.ndarray, src: TextSource, layout: Layout, column: str) -> tuple[Vocabulary, np.ndarray]:
    """Vocabulary of the (distinct) ids listed in an item or user file, and the rows in id order."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    repeat = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    if len(repeat):
        dup_id = sorted_ids[repeat[0]]
        row = int(np.flatnonzero(ids == dup_id)[1])
        raise row_error(src, layout, row, column, f"{column} id {dup_id} is listed twice",
                        "keep one line per id")
    return Vocabulary(sorted_ids), order


def _encode(ids: np.ndarray, vocab: Vocabulary, src: TextSource, layout: Layout, column: str,
            listed_in: str) -> np.ndarray:
    """Indices of integer ids in a sorted integer vocabulary; an unknown id is a `DataError`."""
    known = vocab.ids
    idx = np.searchsorted(known, ids)
    ok = idx < len(known)
    ok[ok] = known[idx[ok]] == ids[ok]
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise row_error(src, layout, row, column, f"{column} id {ids[row]} is not listed in {listed_in}",
                        "the files come from different releases: use one complete copy of the data set")
    return idx.astype(np.int32)


def _ratings(
    src: TextSource,
    layout: Layout,
    frame: pd.DataFrame,
    cols: dict[str, str],
    v: Variant,
    user_vocab: Vocabulary | None,
    item_vocab: Vocabulary,
    duplicates: DuplicatePolicy,
    *,
    name: str,
    listed_in: tuple[str, str],
    item_features: SideFeatures | None,
    user_features: SideFeatures | None,
) -> Interactions:
    """Ratings from a parsed table (`cols` maps user/item/rating/timestamp to its columns)."""
    users = frame[cols["user"]].to_numpy(dtype=np.int64)
    items = frame[cols["item"]].to_numpy(dtype=np.int64)
    values = frame[cols["rating"]].to_numpy(dtype=np.float64)
    row = check_rating_scale(values, v.rating_scale)
    if row is not None:
        low, high = v.rating_scale
        raise row_error(src, layout, row, cols["rating"], f"rating {values[row]:g} is outside {v.name}'s "
                        f"rating scale {low:g}–{high:g}", "fix or remove the line")
    if user_vocab is None:
        user_vocab = Vocabulary(np.unique(users))
    uidx = _encode(users, user_vocab, src, layout, cols["user"], listed_in[0])
    iidx = _encode(items, item_vocab, src, layout, cols["item"], listed_in[1])
    if duplicates == "error":
        row = first_duplicate(uidx, iidx)
        if row is not None:
            raise row_error(src, layout, row, cols["item"],
                            f"duplicate rating of (user {users[row]}, item {items[row]}): the pair appeared on an "
                            "earlier line", "remove the repeat, or choose duplicates='last', 'first' or 'mean'")
    data = Interactions(
        user_idx=uidx, item_idx=iidx, values=values.astype(np.float32), user_vocab=user_vocab,
        item_vocab=item_vocab, timestamps=frame[cols["timestamp"]].to_numpy(dtype=np.int64), explicit=True,
        rating_scale=v.rating_scale, item_features=item_features, user_features=user_features, name=name,
    )
    return data.dedupe(duplicates)


def _years(titles: pd.Series, fallback: pd.Series | None = None) -> pd.Series:
    """The year in a title's trailing "(1995)" (or "(1994-1998)"), else the fallback's."""
    found = titles.str.extract(r".*\((\d{4})(?:[-–]\d{0,4})?\)", expand=False)
    years = pd.to_numeric(found, errors="coerce").astype("Int64")
    if fallback is not None:
        years = years.fillna(fallback.astype("Int64"))
    return years


def _text(series: pd.Series) -> pd.Series:
    """Strings with empty ones as missing."""
    series = series.astype("str")
    return series.mask(series == "")


def _genres_from_lists(genres: pd.Series) -> tuple[tuple[str, ...], np.ndarray]:
    dummies = genres.fillna("").astype(str).str.get_dummies(sep="|")
    labels = [c for c in dummies.columns if c not in (NO_GENRES, "")]
    return tuple(labels), dummies[labels].to_numpy(dtype=bool).reshape(len(genres), len(labels))


def _with_splits(v: Variant, files: _Files, data: Interactions, splits: tuple[str, ...],
                 reader: Callable[[str], Split] | None) -> Dataset:
    return Dataset(name=v.name, interactions=data, root=files.root, splits=splits, split_reader=reader)


# --- MovieLens 100K --------------------------------------------------------------------------------
def _load_100k(v: Variant, files: _Files, duplicates: DuplicatePolicy) -> Dataset:
    genre_labels = _read_genre_labels(files.source("u.genre"))
    item_features, item_vocab = _read_u_item(files.source("u.item"), genre_labels)
    occupations = _read_occupations(files.source("u.occupation")) if files.has("u.occupation") else None
    user_features, user_vocab = _read_u_user(files.source("u.user"), occupations)

    def ratings(file: str, name: str) -> Interactions:
        src = files.source(file)
        layout = Layout(sep="\t", names=tuple(_RATINGS_COLUMNS))
        frame = read_table(src, layout, _RATINGS_COLUMNS, hint="u.data lines are: user <tab> item <tab> rating "
                           "<tab> unix time")
        return _ratings(src, layout, frame, {c: c for c in _RATINGS_COLUMNS}, v, user_vocab, item_vocab,
                        duplicates, name=name, listed_in=("u.user", "u.item"), item_features=item_features,
                        user_features=user_features)

    data = ratings("u.data", v.name)
    available = tuple(s for s in OFFICIAL_SPLITS_100K if files.has(f"{s}.base") and files.has(f"{s}.test"))

    def read_split(split: str) -> Split:
        return Split(ratings(f"{split}.base", f"{v.name}:{split}.base"),
                     ratings(f"{split}.test", f"{v.name}:{split}.test"))

    return _with_splits(v, files, data, available, read_split)


def _read_genre_labels(src: TextSource) -> tuple[str, ...]:
    layout = Layout(sep="|", names=("genre", "code"))
    frame = read_table(src, layout, {"genre": Column("str"), "code": Column("int")},
                       hint="u.genre lines are: name|code")
    codes = frame["code"].to_numpy(dtype=np.int64)
    if not np.array_equal(np.sort(codes), np.arange(len(codes))):
        row = int(np.flatnonzero(np.sort(codes) != np.arange(len(codes)))[0])
        raise row_error(src, layout, int(np.argsort(codes, kind="stable")[row]), "code",
                        f"genre codes must be 0 … {len(codes) - 1}, each once", "fix u.genre")
    labels = frame["genre"].astype(str).to_numpy()[np.argsort(codes)]
    return tuple(labels.tolist())


def _read_u_item(src: TextSource, genre_labels: tuple[str, ...]) -> tuple[SideFeatures, Vocabulary]:
    fixed = ("item", "title", "release date", "video release date", "IMDb URL")
    clash = set(fixed) & set(genre_labels)
    if clash or len(set(genre_labels)) != len(genre_labels):
        raise DataError(f"u.genre names a genre twice or like a u.item column: {sorted(clash) or genre_labels}",
                        path=src.display, hint="fix u.genre")
    layout = Layout(sep="|", names=(*fixed, *genre_labels), encoding="latin-1")
    columns = {"item": Column("int"), "title": Column("str"), "release date": Column("str", required=False),
               "IMDb URL": Column("str", required=False), **{g: Column("int") for g in genre_labels}}
    frame = read_table(src, layout, columns, hint=f"u.item lines are: id|title|release date|video date|IMDb URL|"
                       f"{len(genre_labels)} genre flags (0/1), latin-1 encoded")
    flags = frame[list(genre_labels)].to_numpy(dtype=np.int64)
    bad = (flags != 0) & (flags != 1)
    if bad.any():
        row, col = (int(x[0]) for x in np.nonzero(bad))
        raise row_error(src, layout, row, genre_labels[col], f"genre flag {flags[row, col]} is not 0 or 1",
                        "each genre column holds 0 or 1")
    dates = _text(frame["release date"])
    parsed = pd.to_datetime(dates, format="%d-%b-%Y", errors="coerce")
    bad_date = (parsed.isna() & dates.notna()).to_numpy()
    if bad_date.any():
        row = int(np.flatnonzero(bad_date)[0])
        raise row_error(src, layout, row, "release date", f"{dates.iloc[row]!r} is not a date like 01-Jan-1995",
                        "write release dates as DD-Mon-YYYY or leave them empty")
    ids = frame["item"].to_numpy(dtype=np.int64)
    vocab, order = _sorted_vocab(ids, src, layout, "item")
    titles = frame["title"].astype("str")
    table = pd.DataFrame(
        {
            "title": titles,
            "year": _years(titles, parsed.dt.year),
            "release_date": parsed,
            "imdb_url": _text(frame["IMDb URL"]),
        }
    ).iloc[order]
    table.index = pd.Index(vocab.ids, name="item")
    return SideFeatures(table, {"genres": (genre_labels, flags[order].astype(bool))}), vocab


def _read_occupations(src: TextSource) -> list[str]:
    frame = read_table(src, Layout(sep="|", names=("occupation",)), {"occupation": Column("str")})
    return frame["occupation"].astype(str).str.strip().tolist()


def _read_u_user(src: TextSource, occupations: list[str] | None) -> tuple[SideFeatures, Vocabulary]:
    layout = Layout(sep="|", names=("user", "age", "gender", "occupation", "zip"))
    columns = {"user": Column("int"), "age": Column("int"), "gender": Column("str"), "occupation": Column("str"),
               "zip": Column("str", required=False)}
    frame = read_table(src, layout, columns, hint="u.user lines are: id|age|gender|occupation|zip code")
    ids = frame["user"].to_numpy(dtype=np.int64)
    vocab, order = _sorted_vocab(ids, src, layout, "user")
    table = pd.DataFrame({
        "age": frame["age"].to_numpy(dtype=np.int64),
        "gender": frame["gender"].astype("str"),
        "occupation": frame["occupation"].astype("str"),
        "zip": _text(frame["zip"]),
    }).iloc[order]
    table.index = pd.Index(vocab.ids, name="user")
    return _user_features(table, occupations), vocab


def _user_features(table: pd.DataFrame, occupations: list[str] | None) -> SideFeatures:
    seen = table["occupation"].astype(str).to_numpy()
    labels = list(occupations or [])
    labels += sorted(set(seen.tolist()) - set(labels))
    onehot = seen[:, None] == np.asarray(labels, dtype=str)[None, :]
    return SideFeatures(table, {"occupation": (tuple(labels), onehot)})


# --- MovieLens 1M and 10M ("::"-separated .dat files) ------------------------------------------------
def _load_dat(v: Variant, files: _Files, duplicates: DuplicatePolicy) -> Dataset:
    movies = files.source("movies.dat")
    encoding = _utf8_or_latin1(movies)
    layout = Layout(sep="::", names=("item", "title", "genres"), encoding=encoding)
    frame = read_table(movies, layout, {"item": Column("int"), "title": Column("str"),
                                        "genres": Column("str", required=False)},
                       hint="movies.dat lines are: id::title::genre|genre|…")
    item_features, item_vocab = _movie_features(frame, "item", movies, layout)
    user_features, user_vocab = None, None
    if v.key == "1m":
        user_features, user_vocab = _read_users_dat(files.source("users.dat"))
    src = files.source("ratings.dat")
    rlayout = Layout(sep="::", names=tuple(_RATINGS_COLUMNS))
    rframe = read_table(src, rlayout, _RATINGS_COLUMNS, hint="ratings.dat lines are: user::item::rating::unix time")
    data = _ratings(src, rlayout, rframe, {c: c for c in _RATINGS_COLUMNS}, v, user_vocab, item_vocab, duplicates,
                    name=v.name, listed_in=("users.dat", "movies.dat"), item_features=item_features,
                    user_features=user_features)
    return _with_splits(v, files, data, (), None)


def _utf8_or_latin1(src: TextSource) -> str:
    """MovieLens 1M's movies.dat is latin-1, later releases UTF-8: UTF-8 when it decodes, else latin-1."""
    try:
        src.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def _movie_features(frame: pd.DataFrame, id_col: str, src: TextSource,
                    layout: Layout) -> tuple[SideFeatures, Vocabulary]:
    ids = frame[id_col].to_numpy(dtype=np.int64)
    vocab, order = _sorted_vocab(ids, src, layout, id_col)
    titles = frame["title"].astype("str")
    labels, genres = _genres_from_lists(frame["genres"])
    table = pd.DataFrame({"title": titles, "year": _years(titles)}).iloc[order]
    table.index = pd.Index(vocab.ids, name="item")
    return SideFeatures(table, {"genres": (labels, genres[order])}), vocab


def _read_users_dat(src: TextSource) -> tuple[SideFeatures, Vocabulary]:
    layout = Layout(sep="::", names=("user", "gender", "age", "occupation", "zip"))
    columns = {"user": Column("int"), "gender": Column("str"), "age": Column("int"), "occupation": Column("int"),
               "zip": Column("str", required=False)}
    frame = read_table(src, layout, columns, hint="users.dat lines are: user::gender::age::occupation code::zip")
    codes = frame["occupation"].to_numpy(dtype=np.int64)
    bad = (codes < 0) | (codes >= len(OCCUPATIONS_1M))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise row_error(src, layout, row, "occupation", f"occupation code {codes[row]} is not 0 … "
                        f"{len(OCCUPATIONS_1M) - 1}", "use the codes listed in the MovieLens 1M README")
    ids = frame["user"].to_numpy(dtype=np.int64)
    vocab, order = _sorted_vocab(ids, src, layout, "user")
    table = pd.DataFrame({
        "age": frame["age"].to_numpy(dtype=np.int64),
        "gender": frame["gender"].astype("str"),
        "occupation": np.asarray(OCCUPATIONS_1M, dtype=object)[codes],
        "zip": _text(frame["zip"]),
    }).iloc[order]
    table["occupation"] = table["occupation"].astype("str")
    table.index = pd.Index(vocab.ids, name="user")
    return _user_features(table, list(OCCUPATIONS_1M)), vocab


# --- MovieLens 20M, 25M, latest, latest-small (CSV with a header) --------------------------------------
def _csv_table(src: TextSource, needed: dict[str, Column], hint: str) -> tuple[pd.DataFrame, Layout]:
    names = read_header(src, sep=",", quoting=True)
    for col in needed:
        if col not in names:
            raise DataError(f"the header has no {col!r} column (it has {list(names)})", path=src.display, line=1,
                            column=col, hint=hint)
    layout = Layout(sep=",", names=names, header=True, quoting=True)
    return read_table(src, layout, needed, hint=hint), layout


def _load_csv(v: Variant, files: _Files, duplicates: DuplicatePolicy) -> Dataset:
    movies = files.source("movies.csv")
    frame, layout = _csv_table(movies, {"movieId": Column("int"), "title": Column("str"),
                                        "genres": Column("str", required=False)},
                               "movies.csv has the header movieId,title,genres")
    item_features, item_vocab = _movie_features(frame, "movieId", movies, layout)
    src = files.source("ratings.csv")
    cols = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}
    rframe, rlayout = _csv_table(src, {"userId": Column("int"), "movieId": Column("int"), "rating": Column("float"),
                                       "timestamp": Column("int")},
                                 "ratings.csv has the header userId,movieId,rating,timestamp")
    data = _ratings(src, rlayout, rframe, cols, v, None, item_vocab, duplicates, name=v.name,
                    listed_in=("ratings.csv", "movies.csv"), item_features=item_features, user_features=None)
    return _with_splits(v, files, data, (), None)
