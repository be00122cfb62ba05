"""Loading interactions from CSV / TSV / Parquet files, and the table reader every loader shares.

Every loader here parses with pandas' C reader (fast path). When the fast path fails or a
vectorised check finds a bad value, a cheap second pass over the file finds the exact line so
the `DataError` can name the file, the line (1-based, the header counts as line 1), the column
and what to do.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pandas as pd

from tastemaker.data.interactions import DUPLICATE_POLICIES, DuplicatePolicy, Interactions
from tastemaker.errors import ConfigError, DataError

Kind = Literal["int", "float", "str", "id", "time"]
FORMATS: tuple[str, ...] = ("csv", "tsv", "parquet")

_INT_RE = re.compile(r"\s*[+-]?\d+\s*")
_CANONICAL_INT = r"-?(?:0|[1-9][0-9]{0,17})"
_INT64_MAX = 2**63 - 1


# --- sources: a file on disk (maybe gzip'd) or a zip member ------------------------------------
@dataclass(frozen=True)
class TextSource:
    """Something that can be opened as a binary stream, and its name for messages."""

    display: str
    opener: Callable[[], IO[bytes]]

    def open(self) -> IO[bytes]:
        return self.opener()

    def read_bytes(self) -> bytes:
        with self.open() as fh:
            return fh.read()


def file_source(path: str | Path) -> TextSource:
    """A file on disk; gzip'd files (by magic bytes) are decompressed transparently."""
    path = Path(path)
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return TextSource(str(path), (lambda: gzip.open(path, "rb")) if gz else (lambda: open(path, "rb")))


def zip_source(archive: str | Path, member: str) -> TextSource:
    """A member of a zip archive, named ``archive:member`` in messages."""
    archive = Path(archive)

    def opener() -> IO[bytes]:
        # the member stream keeps the archive open until the stream is closed
        with zipfile.ZipFile(archive) as zf:
            return zf.open(member)

    return TextSource(f"{archive}:{member}", opener)


# --- the shared table reader -------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """How to parse one column: `kind` and whether empty values are an error."""

    kind: Kind = "str"
    required: bool = True


@dataclass(frozen=True)
class Layout:
    """The shape of a delimited text file.

    `names` are all columns in file order (for a header file: the header's names). `quoting`
    turns on CSV quoting rules ("a, b" in quotes is one field); MovieLens files have none.
    """

    sep: str
    names: tuple[str, ...]
    header: bool = False
    encoding: str = "utf-8"
    quoting: bool = False

    @property
    def first_data_line(self) -> int:
        return 2 if self.header else 1


def read_header(src: TextSource, *, sep: str, encoding: str = "utf-8", quoting: bool = True) -> tuple[str, ...]:
    """Column names from the first non-blank line of a file (`DataError` when the file is empty)."""
    for _line_no, text in _lines(src, encoding, sep):
        if not text.strip():
            continue
        names = next(csv.reader([text], delimiter=sep)) if quoting and len(sep) == 1 else text.split(sep)
        return tuple(n.strip() for n in names)
    raise DataError("the file is empty", path=src.display, line=1, hint="check that the file was fully written")


def count_fields(src: TextSource, *, sep: str, encoding: str = "utf-8", quoting: bool = True) -> int:
    """Number of fields on the first line of a headerless file."""
    return len(read_header(src, sep=sep, encoding=encoding, quoting=quoting))


def read_table(
    src: TextSource,
    layout: Layout,
    columns: Mapping[str, Column],
    *,
    hint: str | None = None,
) -> pd.DataFrame:
    """Parse a delimited file into a DataFrame with columns `layout.names`.

    Columns in `columns` are checked: ``int`` / ``float`` must parse (floats must be finite),
    ``required`` ones must not be empty; every line must have ``len(layout.names)`` fields. Other
    columns are read as strings. Any problem raises a `DataError` with file, line and column.
    """
    # "time" columns are left to pandas' inference: numbers parse fast, text stays text (see `time_array`)
    dtypes = {n: {"int": "int64", "float": "float64"}.get(columns[n].kind, "str") if n in columns else "str"
              for n in layout.names if n not in columns or columns[n].kind != "time"}
    sep, data = layout.sep, None
    if len(sep) > 1:
        # pandas' C reader takes one-character separators only: swap the separator for a control
        # character (the line-by-line check below still splits on the real separator).
        data = src.read_bytes().replace(sep.encode(layout.encoding), b"\x1f")
        sep = "\x1f"
    try:
        with io.BytesIO(data) if data is not None else src.open() as stream:
            frame = pd.read_csv(
                stream,
                sep=sep,
                header=0 if layout.header else None,
                names=list(layout.names),
                dtype=dtypes,
                encoding=layout.encoding,
                quoting=csv.QUOTE_MINIMAL if layout.quoting else csv.QUOTE_NONE,
                keep_default_na=False,
                na_values=[""],
                skip_blank_lines=True,
                engine="c",
            )
    except pd.errors.EmptyDataError as exc:
        raise DataError("the file is empty", path=src.display, line=1,
                        hint="check that the file was fully written") from exc
    except (ValueError, OverflowError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise _diagnose(src, layout, columns, hint) or DataError(
            f"could not parse the file: {exc}", path=src.display, hint=hint) from exc
    if frame.empty:
        raise DataError("no data rows" + (" after the header" if layout.header else ""), path=src.display,
                        line=layout.first_data_line, hint="check that the file was fully written")
    for name, spec in columns.items():
        values = frame[name]
        bad = values.isna().to_numpy().copy()
        if spec.kind == "float":
            bad |= ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
        if not spec.required:
            continue
        if spec.kind not in ("int", "float"):
            bad |= (values == "").to_numpy(dtype=bool, na_value=True)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise row_error(src, layout, row, name, "empty value", hint or "fill in the value or remove the line",
                            columns=columns)
    return frame


def row_error(
    src: TextSource,
    layout: Layout,
    row: int,
    column: str | None,
    problem: str,
    hint: str | None = None,
    *,
    columns: Mapping[str, Column] | None = None,
) -> DataError:
    """A `DataError` for data row `row` (0-based, as parsed), located at its line in the file.

    When `columns` is given and the line itself is malformed (wrong field count, unparsable
    value), that problem is reported instead, since it is the cause.
    """
    for i, (line_no, fields) in enumerate(_records(src, layout)):
        if i == row:
            if columns is not None:
                found = _check_record(fields, layout, columns)
                if found is not None:
                    col, prob, default = found
                    return DataError(prob, path=src.display, line=line_no, column=col, hint=hint or default)
            return DataError(problem, path=src.display, line=line_no, column=column, hint=hint)
    return DataError(f"data row {row + 1}: {problem}", path=src.display, column=column, hint=hint)


def line_of_row(src: TextSource, layout: Layout, row: int) -> int | None:
    """1-based line number of data row `row` (0-based), None past the end."""
    for i, (line_no, _fields) in enumerate(_records(src, layout)):
        if i == row:
            return line_no
    return None


def _diagnose(src: TextSource, layout: Layout, columns: Mapping[str, Column], hint: str | None) -> DataError | None:
    for line_no, fields in _records(src, layout):
        found = _check_record(fields, layout, columns)
        if found is not None:
            column, problem, default = found
            return DataError(problem, path=src.display, line=line_no, column=column, hint=hint or default)
    return None


def _check_record(fields: list[str], layout: Layout,
                  columns: Mapping[str, Column]) -> tuple[str | int, str, str] | None:
    """(column, problem, default hint) of the first problem on one line, None when it is fine."""
    n = len(layout.names)
    if len(fields) != n:
        shown = "tab" if layout.sep == "\t" else repr(layout.sep)
        hint = "check the separator" + (" (sep=) and quoting" if layout.quoting else "") + ", or fix the line"
        if len(fields) < n:
            return layout.names[len(fields)], (
                f"expected {n} fields separated by {shown}, found {len(fields)} (the line is cut short)"), hint
        return n + 1, f"expected {n} fields separated by {shown}, found {len(fields)} (extra fields)", hint
    for pos, name in enumerate(layout.names):
        spec = columns.get(name)
        if spec is None:
            continue
        value = fields[pos].strip()
        if not value:
            if spec.required or spec.kind in ("int",):
                return name, "empty value", "fill in the value or remove the line"
            continue
        if spec.kind == "int":
            if not _INT_RE.fullmatch(value):
                return name, f"{value!r} is not an integer", "this column holds whole numbers: fix the line"
            if abs(int(value)) > _INT64_MAX:
                return name, f"{value} is too large for a 64-bit integer", "fix the line"
        elif spec.kind == "float":
            try:
                number = float(value)
            except ValueError:
                return name, f"{value!r} is not a number", "this column holds numbers: fix the line"
            if not math.isfinite(number):
                return name, f"{value!r} is not a finite number", "fix the line"
    return None


def _lines(src: TextSource, encoding: str, sep: str, names: tuple[str, ...] = ()) -> Iterator[tuple[int, str]]:
    """(line number, decoded text without the newline); undecodable bytes raise a `DataError`."""
    with src.open() as fh:
        for line_no, raw in enumerate(fh, start=1):
            raw = raw.rstrip(b"\r\n")
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise _decode_error(src, line_no, raw, exc, encoding, sep, names) from exc
            if line_no == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield line_no, text


def _decode_error(src: TextSource, line_no: int, raw: bytes, exc: UnicodeDecodeError, encoding: str,
                  sep: str, names: tuple[str, ...]) -> DataError:
    position = raw[: exc.start].count(sep.encode("ascii", "replace"))
    column: str | int = names[position] if position < len(names) else position + 1
    bad = raw[exc.start: exc.end + 2]
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig"):
        hint = "the file is probably latin-1 (ISO-8859-1) or cp1252 encoded: pass encoding='latin-1'"
    else:
        try:
            raw.decode("utf-8")
            hint = "the file looks UTF-8 encoded: pass encoding='utf-8'"
        except UnicodeDecodeError:
            hint = "pass the file's real encoding, e.g. encoding='latin-1'"
    return DataError(f"bytes {bad!r} cannot be decoded as {encoding}", path=src.display, line=line_no,
                     column=column, hint=hint)


def _records(src: TextSource, layout: Layout) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of each data record, skipping the header and blank lines."""
    lines = _lines(src, layout.encoding, layout.sep, layout.names)
    skip_header = layout.header
    if layout.quoting and len(layout.sep) == 1:
        state = {"line": 0}

        def texts() -> Iterator[str]:
            for line_no, text in lines:
                state["line"] = line_no
                yield text

        start = 1
        for row in csv.reader(texts(), delimiter=layout.sep):
            if row and not (len(row) == 1 and not row[0].strip()):
                if skip_header:
                    skip_header = False
                else:
                    yield start, row
            start = state["line"] + 1
        return
    for line_no, text in lines:
        if not text.strip():
            continue
        if skip_header:
            skip_header = False
            continue
        yield line_no, text.split(layout.sep)


# --- column conversions shared by the loaders --------------------------------------------------
def id_array(values: pd.Series) -> np.ndarray:
    """Ids as int64 when every id is a plain integer (no leading zeros, so "007" stays a string)."""
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(values.dtype):
        arr = values.to_numpy(dtype=np.float64)
        if np.all(np.mod(arr, 1) == 0):
            return arr.astype(np.int64)
        return values.astype(str).to_numpy(dtype=str)
    text = values.astype("str")
    if len(text) and bool(text.str.fullmatch(_CANONICAL_INT).all()):
        return text.astype("int64").to_numpy(dtype=np.int64)
    return text.to_numpy(dtype=str)


def time_array(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps as int64 seconds since the epoch, and a mask of unparsable rows.

    Numbers are taken as seconds; text as ISO-8601 dates/times (naive ones are taken as UTC).
    The first value decides which of the two the column holds.
    """
    if pd.api.types.is_numeric_dtype(values.dtype):
        arr = values.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(arr)
        return np.where(bad, 0, np.floor(np.nan_to_num(arr))).astype(np.int64), bad
    numbers = pd.to_numeric(values, errors="coerce")
    if len(values) == 0 or not pd.isna(numbers.iloc[0]):
        bad = numbers.isna().to_numpy()
        return np.floor(numbers.fillna(0).to_numpy(dtype=np.float64)).astype(np.int64), bad
    stamps = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    bad = stamps.isna().to_numpy()
    seconds = (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.fillna(0).to_numpy(dtype=np.int64), bad


def check_rating_scale(values: np.ndarray, scale: tuple[float, float] | None) -> int | None:
    """Row of the first value outside `scale` (inclusive), None when all are inside."""
    if scale is None or not len(values):
        return None
    low, high = scale
    outside = (values < low) | (values > high)
    return int(np.flatnonzero(outside)[0]) if outside.any() else None


def first_duplicate(users: np.ndarray, items: np.ndarray) -> int | None:
    """Row of the first (user, item) pair seen before, in row order; None without repeats."""
    if len(users) < 2:
        return None
    dup = pd.DataFrame({"u": users, "i": items}).duplicated(keep="first").to_numpy()
    return int(np.flatnonzero(dup)[0]) if dup.any() else None


def check_duplicates_policy(duplicates: str) -> None:
    if duplicates not in DUPLICATE_POLICIES:
        raise ConfigError(f"duplicates={duplicates!r} is not a duplicate policy; use one of {DUPLICATE_POLICIES}")


# --- the generic loader -----------------------------------------------------------------------
def load_interactions(
    path: str | Path,
    *,
    user: str | int = "user",
    item: str | int = "item",
    value: str | int | None = None,
    timestamp: str | int | None = None,
    event_type: str | int | None = None,
    weight: str | int | None = None,
    sep: str | None = None,
    format: str | None = None,
    header: bool = True,
    explicit: bool | None = None,
    rating_scale: tuple[float, float] | None = None,
    duplicates: DuplicatePolicy = "last",
    name: str | None = None,
    encoding: str = "utf-8",
) -> Interactions:
    """Load user–item events from a CSV, TSV (optionally gzip'd) or Parquet file.

    Columns are picked by name (`user`, `item`, `value`, `timestamp`, `event_type`, `weight`);
    with ``header=False`` columns are named by position, ``"0"``, ``"1"``, … (ints work too).
    `format` is ``"csv"``, ``"tsv"`` or ``"parquet"``; when None it follows the extension
    (``.csv``, ``.tsv``/``.tab``, ``.parquet``/``.pq``, each optionally ``.gz``), otherwise the
    first line decides between tab, semicolon and comma. `sep` overrides the separator.

    Values: with `value` None the events are implicit (value 1); otherwise they are ratings
    (``explicit=True`` unless told otherwise) and, when `rating_scale` is given, every value must
    lie inside it. Ids that are all plain integers become ints, otherwise strings. Timestamps are
    seconds since the epoch, or ISO-8601 text (converted to seconds, UTC when naive).

    Duplicate (user, item) pairs follow `duplicates` (see `Interactions.dedupe`): ``"last"`` (the
    default) keeps the latest event and warns with a `DataWarning` saying how many rows merged;
    ``"first"``, ``"mean"``, ``"sum"`` merge likewise; ``"keep"`` leaves them (event logs);
    ``"error"`` raises a `DataError` naming the pair, the file and the line of the repeat.

    Bad input raises `DataError` naming the file, the line (1-based, the header is line 1), the
    column and what to do.
    """
    path = Path(path)
    check_duplicates_policy(duplicates)
    if not path.is_file():
        raise DataError("no such file", path=path, hint="check the path (relative paths start at the working folder)")
    fmt = _format_of(path, format)
    wanted: dict[str, str] = {}
    for role, col in (("user", user), ("item", item), ("value", value), ("timestamp", timestamp),
                      ("event_type", event_type), ("weight", weight)):
        if col is not None:
            wanted[role] = str(col)
    scale = None if rating_scale is None else (float(rating_scale[0]), float(rating_scale[1]))
    if scale is not None and scale[0] > scale[1]:
        raise ConfigError(f"rating_scale={rating_scale!r}: the low end must not exceed the high end")
    kinds: dict[str, Kind] = {"user": "id", "item": "id", "value": "float", "timestamp": "time",
                              "event_type": "str", "weight": "float"}
    if fmt == "parquet":
        frame, locate = _read_parquet(path, wanted)
    else:
        frame, locate = _read_text(path, fmt, sep, header, encoding, wanted, kinds)

    def fail(row: int, role: str, problem: str, hint: str | None = None) -> DataError:
        return locate(row, wanted[role], problem, hint)

    users = id_array(frame[wanted["user"]])
    items = id_array(frame[wanted["item"]])
    values = None
    if "value" in wanted:
        values = frame[wanted["value"]].to_numpy(dtype=np.float64)
        is_explicit = True if explicit is None else explicit
        if is_explicit:
            row = check_rating_scale(values, scale)
            if row is not None:
                raise fail(row, "value", f"rating {values[row]:g} is outside the rating scale "
                           f"{scale[0]:g}–{scale[1]:g}", "fix the value, or pass the right rating_scale")
    timestamps = None
    if "timestamp" in wanted:
        timestamps, bad = time_array(frame[wanted["timestamp"]])
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raw = frame[wanted["timestamp"]].iloc[row]
            raise fail(row, "timestamp", "empty value" if pd.isna(raw) else f"{raw!r} is not a timestamp",
                       "use seconds since the epoch or ISO-8601 dates such as 2024-05-01T12:00:00")
    weights = None
    if "weight" in wanted:
        weights = frame[wanted["weight"]].to_numpy(dtype=np.float64)
    events = None if "event_type" not in wanted else frame[wanted["event_type"]].astype(str).to_numpy(dtype=str)
    if duplicates == "error":
        row = first_duplicate(users, items)
        if row is not None:
            raise fail(row, "item", f"duplicate (user, item) pair ({users[row].item()!r}, {items[row].item()!r}): "
                       "the pair appeared on an earlier line", "choose duplicates='last', 'first', 'mean', 'sum' "
                       "or 'keep', or remove the repeated rows")
    stem = path.name.removesuffix(".gz")
    return Interactions.from_arrays(
        users, items, values, timestamps=timestamps, event_types=events, weights=weights,
        explicit=explicit, rating_scale=scale, duplicates=duplicates,
        name=name if name is not None else stem.rsplit(".", 1)[0],
    )


def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        if format not in FORMATS:
            raise ConfigError(f"format={format!r} is not supported; use one of {FORMATS}")
        return format
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".tsv", ".tab")):
        return "tsv"
    return "csv"


def _sniff_sep(src: TextSource, encoding: str) -> str:
    for _line_no, text in _lines(src, encoding, ","):
        if text.strip():
            if "\t" in text:
                return "\t"
            if ";" in text and "," not in text:
                return ";"
            return ","
    return ","


Locate = Callable[..., DataError]


def _read_text(path: Path, fmt: str, sep: str | None, header: bool, encoding: str, wanted: dict[str, str],
               kinds: dict[str, Kind]) -> tuple[pd.DataFrame, Locate]:
    src = file_source(path)
    if sep is None:
        sep = "\t" if fmt == "tsv" else (_sniff_sep(src, encoding) if not path.name.lower().removesuffix(".gz")
                                         .endswith(".csv") else ",")
    quoting = len(sep) == 1
    if header:
        names = read_header(src, sep=sep, encoding=encoding, quoting=quoting)
    else:
        names = tuple(str(i) for i in range(count_fields(src, sep=sep, encoding=encoding, quoting=quoting)))
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError("the header names this column twice", path=src.display, line=1, column=dup,
                        hint="rename one of the columns")
    layout = Layout(sep=sep, names=names, header=header, encoding=encoding, quoting=quoting)
    for role, col in wanted.items():
        if col not in names:
            shown = "tab" if sep == "\t" else repr(sep)
            raise DataError(
                f"no {role} column {col!r}; the file has columns {list(names)} (separator {shown})",
                path=src.display, line=1, column=col,
                hint=f"pass {role}=<one of those>" + ("" if header else " (columns are numbered when header=False)"),
            )
    columns = {col: Column(kinds[role]) for role, col in wanted.items()}
    frame = read_table(src, layout, columns)

    def locate(row: int, column: str, problem: str, hint: str | None = None) -> DataError:
        return row_error(src, layout, row, column, problem, hint)

    return frame, locate


def _read_parquet(path: Path, wanted: dict[str, str]) -> tuple[pd.DataFrame, Locate]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise DataError(f"not a readable Parquet file ({exc})", path=path,
                        hint="pass format='csv' or 'tsv' for text files") from exc
    for role, col in wanted.items():
        if col not in schema.names:
            raise DataError(f"no {role} column {col!r}; the file has columns {schema.names}", path=path, column=col,
                            hint=f"pass {role}=<one of those>")
    cols = list(dict.fromkeys(wanted.values()))
    frame = pq.read_table(path, columns=cols).to_pandas()

    def locate(row: int, column: str, problem: str, hint: str | None = None) -> DataError:
        return DataError(f"row {row + 1}: {problem}", path=path, column=column, hint=hint)

    if frame.empty:
        raise DataError("no data rows", path=path, hint="check that the file was fully written")
    for role, col in wanted.items():
        values = frame[col]
        if values.isna().any():
            raise locate(int(np.flatnonzero(values.isna().to_numpy())[0]), col, "empty value")
        if role in ("value", "weight"):
            if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
                converted = pd.to_numeric(values, errors="coerce")
                if converted.isna().any():
                    row = int(np.flatnonzero(converted.isna().to_numpy())[0])
                    raise locate(row, col, f"{values.iloc[row]!r} is not a number",
                                 "store the column as a number type")
                frame[col] = converted
            arr = frame[col].to_numpy(dtype=np.float64)
            if not np.isfinite(arr).all():
                raise locate(int(np.flatnonzero(~np.isfinite(arr))[0]), col, "not a finite number")
        if role == "timestamp" and pd.api.types.is_datetime64_any_dtype(values.dtype):
            stamps = values.dt.tz_localize("UTC") if values.dt.tz is None else values
            frame[col] = (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return frame, locate

