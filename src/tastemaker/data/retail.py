"""UCI Online Retail: loader, cleaning (with a report), item/user features, a category proxy, and the
``retail-temporal`` split.

The data (see ``online-retail/PROVENANCE.md``): every invoice line of a UK gift-ware wholesaler,
2010-12-01 to 2011-12-09 — invoice, stock code, description, quantity, time, unit price (GBP),
customer, country. Two layouts are read:

- the per-day CSV export (``by-day/YYYY-MM-DD.csv[.gz]``, a header in every file), or one such CSV;
- the publisher's original workbook ``Online Retail.xlsx`` (needs ``openpyxl``). The column names
  of "Online Retail II" (``Invoice``, ``Price``, ``Customer ID``) are accepted too.

Cleaning (``clean=True``), applied in this order; `CleaningReport` counts the rows each rule drops
(and how many it would match on the raw data alone):

1. ``missing_customer`` — no CustomerID (guest checkouts): an event needs a user;
2. ``cancellation`` — InvoiceNo starts with ``C`` (the cancelling lines, negative quantities);
3. ``nonpositive_quantity`` — Quantity ≤ 0 (returns and stock adjustments not marked as cancellations);
4. ``nonpositive_price`` — UnitPrice ≤ 0 (free items, adjustments);
5. ``non_product`` — stock codes that are not products: every code not starting with a digit
   (POST, DOT, M, C2, D, S, BANK CHARGES, AMAZONFEE, CRUK, …) plus ``23444`` (carriage),
   ``23574`` (packing charge) and ``23702`` (image fee).

On the full data 396,241 rows remain (541,909 read). The cancelled *original* lines stay: a
cancelled order was still chosen, and matching cancellations to their originals is ambiguous.

With ``clean=False`` only rule 1 drops rows (an event needs a user); every other row is kept with
an event type naming the first rule it fails (``"purchase"`` when it fails none), so cancellations
and returns can be used as negative feedback.

What you get (`RetailData`), row-aligned:

- ``interactions``: implicit `Interactions` (value = quantity; duplicates kept — one row per
  invoice line; timestamps = the invoice time in seconds, the naive UK time read as UTC), user ids
  = CustomerID (int), item ids = StockCode (str);
- ``revenue`` = quantity × unit price (GBP) and ``unit_price`` per row — revenue is kept beside
  the interactions, not as their weights, so models that read weights are not silently
  price-weighted; `RetailData.spend` gives the user × item revenue matrix for revenue-weighted metrics;
- ``invoice`` per row (basket = invoice, for co-purchase);
- item features (`SideFeatures`, indexed by stock code): description (the most frequent one),
  ``category`` (the keyword proxy below), price median/mean/min/max, lines, invoices, customers,
  quantity, revenue, first/last sale time; multi-hot ``department``;
- user features: ``country`` (the most frequent), invoices, lines, revenue, first/last purchase;
  one-hot ``country``.

**Category proxy.** The data carry no product category. `derive_category` maps the description
to a two-level path ``department/keyword`` from a hand-written keyword table (`CATEGORY_KEYWORDS`):
seasonal words (Christmas, Easter) win; otherwise the known keyword nearest the end of the
description (its head noun: "JUMBO BAG RED RETROSPOT" → bags/bag), except that container words
(holder, box, cover, tin, …) yield to a more specific keyword before them ("T-LIGHT HOLDER" →
lighting/t-light, "CUSHION COVER" → textiles/cushion). No known keyword: ``other/other``.
It is a proxy, written by reading the 250 most common description words; it is not ground truth.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tastemaker.data.features import SideFeatures
from tastemaker.data.generic import Column, Layout, file_source, read_table, row_error
from tastemaker.data.interactions import Interactions
from tastemaker.data.vocabulary import Vocabulary
from tastemaker.errors import ConfigError, DataError, require

RETAIL_FOLDER = "online-retail"
COLUMNS: tuple[str, ...] = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
                            "CustomerID", "Country")
ALIASES = {"Invoice": "InvoiceNo", "Price": "UnitPrice", "Customer ID": "CustomerID"}
"""Column names of "Online Retail II", mapped to this data set's names."""
NON_PRODUCT_CODES: tuple[str, ...] = ("23444", "23574", "23702")
"""Stock codes starting with a digit that are not products: carriage, packing charge, image fee."""
CLEAN_ROWS = 396_241
"""Rows left by `clean_online_retail` on the complete data set."""
RULES: tuple[tuple[str, str], ...] = (
    ("missing_customer", "no CustomerID (guest checkout): an event needs a user"),
    ("cancellation", "InvoiceNo starts with 'C' (cancellation lines)"),
    ("nonpositive_quantity", "Quantity <= 0 (returns, adjustments)"),
    ("nonpositive_price", "UnitPrice <= 0 (free items, adjustments)"),
    ("non_product", "StockCode not starting with a digit (POST, DOT, M, D, BANK CHARGES, …) or one of "
                    + ", ".join(NON_PRODUCT_CODES) + " (carriage, packing charge, image fee)"),
)
DAY = 86_400


# ------------------------------------------------------------------------------------------------
# cleaning report
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CleaningStep:
    """One cleaning rule: rows it dropped (after the rules before it) and rows it matches on its own."""

    rule: str
    description: str
    dropped: int
    matched_alone: int


@dataclass(frozen=True)
class CleaningReport:
    """What cleaning did: rows read, each rule's counts in order, rows kept."""

    source: str
    rows_read: int
    steps: tuple[CleaningStep, ...]
    rows_kept: int
    clean: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "rows_read": self.rows_read, "rows_kept": self.rows_kept, "clean": self.clean,
                "steps": [vars(s) for s in self.steps]}

    def markdown(self) -> str:
        """The report as a Markdown table."""
        lines = [f"Rows read: {self.rows_read:,} ({self.source})", "",
                 "| # | rule | dropped (in order) | matches alone | what |", "|---|---|---|---|---|"]
        for i, s in enumerate(self.steps, 1):
            lines.append(f"| {i} | {s.rule} | {s.dropped:,} | {s.matched_alone:,} | {s.description} |")
        lines += ["", f"Rows kept: {self.rows_kept:,}"]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# category proxy
# ------------------------------------------------------------------------------------------------
CATEGORY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "seasonal": ("CHRISTMAS", "XMAS", "ADVENT", "SANTA", "REINDEER", "SNOWFLAKE", "BAUBLE", "EASTER", "HALLOWEEN"),
    "jewellery": ("NECKLACE", "BRACELET", "EARRINGS", "EARRING", "RING", "CHARM", "BROOCH", "PENDANT", "BEAD",
                  "BEADS", "HAIRCLIP", "HAIRBAND", "BANGLE", "TIARA", "SLIDE", "SLIDES", "COMB"),
    "lighting": ("CANDLE", "CANDLES", "T-LIGHT", "T-LIGHTS", "TEALIGHT", "LANTERN", "LIGHT", "LIGHTS", "LAMP",
                 "LAMPSHADE", "CANDLEHOLDER", "CANDLESTICK", "INCENSE", "NIGHTLIGHT", "CHANDELIER", "MATCHES"),
    "kitchen": ("MUG", "MUGS", "CUP", "CUPS", "TEACUP", "SAUCER", "BOWL", "BOWLS", "PLATE", "PLATES", "DISH", "JUG",
                "BEAKER", "CUTLERY", "SPOON", "SPOONS", "TEAPOT", "COFFEE", "BAKING", "CAKE", "CAKESTAND", "PAN",
                "APRON", "COASTER", "COASTERS", "PANTRY", "LUNCH", "LUNCHBOX", "JAM", "KITCHEN", "TRAY", "GLASS",
                "GLASSES", "TUMBLER", "NAPKINS", "NAPKIN", "CASES", "MOULD", "TIN", "TINS", "STRAWS", "BOTTLE",
                "CHOPSTICKS", "PLACEMAT", "PLACEMATS", "OVEN", "GLOVE", "TOAST", "EGG", "JELLY", "SCALES",
                "COLANDER", "TEA", "FORK", "BREAD", "CAKETIN"),
    "bags": ("BAG", "BAGS", "HANDBAG", "WASHBAG", "PURSE", "SHOPPER", "TOTE", "UMBRELLA", "WALLET", "BACKPACK",
             "RUCKSACK", "CHARLOTTE", "SATCHEL"),
    "stationery": ("CARD", "CARDS", "NOTEBOOK", "PEN", "PENS", "PENCIL", "PENCILS", "STICKERS", "STICKER", "WRAP",
                   "PAPER", "TAPE", "SKETCHBOOK", "JOURNAL", "ENVELOPE", "ENVELOPES", "TAG", "TAGS", "TISSUES",
                   "RIBBON", "RIBBONS", "BOOK", "CALENDAR", "ERASER", "RUBBER", "NOTEPAD", "NOTES", "RULER",
                   "STAMP", "STAMPS", "DIARY", "LABELS", "POSTCARD", "CRAYONS", "CHALK", "BOOKMARK", "SHARPENER",
                   "CLIPS", "PAD"),
    "toys": ("TOY", "TOYS", "JIGSAW", "GAME", "GAMES", "DOLL", "DOLLY", "PUZZLE", "BALL", "KIT", "FELTCRAFT",
             "SKIPPING", "BUBBLES", "SOLDIER", "SOLDIERS", "DOMINOES", "SNAKES", "LADDERS", "CARDS", "SPINNING",
             "TOP", "MARBLES", "YOYO", "PLAYHOUSE", "TEDDY", "BEAR", "RABBIT", "BUNNY", "MONKEY", "PUPPET",
             "SLATE", "RATTLE", "BLOCKS", "WHISTLE"),
    "party": ("PARTY", "BIRTHDAY", "BALLOON", "BALLOONS", "BUNTING", "GARLAND", "CONFETTI", "PINATA", "CRACKER",
              "CRACKERS", "HAT", "HATS", "CANDY", "SWEETS", "STRAW"),
    "garden": ("GARDEN", "PLANT", "PLANTER", "POT", "POTS", "FEEDER", "BIRDHOUSE", "WATERING", "TROWEL", "SEED",
               "SEEDS", "FLOWERPOT", "GREENHOUSE", "BIRDBATH", "WINDCHIME", "CHIME", "CHIMES", "PARASOL", "HAMMOCK",
               "PEGS", "BUCKET", "THERMOMETER", "WHEELBARROW", "GNOME"),
    "textiles": ("CUSHION", "COVER", "TOWEL", "TOWELS", "BLANKET", "THROW", "QUILT", "CURTAIN", "CURTAINS",
                 "HOT", "DOORMAT", "MAT", "RUG", "SCARF", "GLOVES", "SOCKS", "SLIPPERS", "PYJAMA", "BIB",
                 "HANDKERCHIEF", "HANKY", "DUVET", "PILLOWCASE", "FABRIC", "DOILY", "DOILIES", "LACE", "FELT",
                 "CLOTH", "TEATOWEL", "HOTTIE"),
    "decor": ("SIGN", "FRAME", "MIRROR", "CLOCK", "DECORATION", "DECORATIONS", "WREATH", "HOOK", "HOOKS", "HANGER",
              "HANGERS", "CABINET", "DRAWER", "DRAWERS", "KNOB", "KNOBS", "DOORSTOP", "MOBILE", "VASE", "ORNAMENT",
              "PHOTO", "PICTURE", "PLAQUE", "TILE", "BASKET", "BOX", "BOXES", "STORAGE", "ORGANISER", "CONTAINER",
              "HOLDER", "STAND", "RACK", "SHELF", "MAGNET", "MAGNETS", "LETTERS", "LETTER", "NUMBER", "HEART",
              "HEARTS", "BELL", "BELLS", "STAR", "TREE", "BIRD", "BUTTERFLY", "CHEST", "TRUNK", "SCREEN",
              "DOOR", "WALL", "CANVAS", "CLOCKS", "FLOWER", "FLOWERS", "JAR", "JARS", "STOOL", "CHAIR", "TABLE",
              "SPOTLIGHT", "DOORSIGN", "BIN", "CADDY", "CRATE", "CASE", "WARMER", "BOTTLES"),
    "beauty": ("SOAP", "LIP", "GLOSS", "NAIL", "MIRRORS", "COMPACT", "MAKE", "COSMETIC", "BATH", "BATHROOM",
               "SPONGE", "TOOTHBRUSH", "PERFUME", "SCENT", "SHOWER"),
}
"""Department → keywords (upper case). A word in two departments belongs to the earlier one."""
_SEASONAL = frozenset(CATEGORY_KEYWORDS["seasonal"])
_CHRISTMAS = frozenset({"CHRISTMAS", "XMAS", "ADVENT", "SANTA", "REINDEER", "SNOWFLAKE", "BAUBLE"})
_KEYWORD_DEPT: dict[str, str] = {}
for _dept, _words in CATEGORY_KEYWORDS.items():
    for _w in _words:
        _KEYWORD_DEPT.setdefault(_w, _dept)
_GENERIC = frozenset({"HOLDER", "STAND", "RACK", "BOX", "BOXES", "CASE", "CASES", "TIN", "TINS", "JAR", "JARS",
                      "COVER", "CONTAINER", "STORAGE", "ORGANISER", "TRAY", "HANGER", "HOOK", "HOOKS"})
"""Nouns that say what holds a thing: "T-LIGHT HOLDER" is lighting, "CUSHION COVER" a cushion."""
_TOKEN = re.compile(r"[A-Z][A-Z0-9'\-]*")


def derive_category(descriptions: Sequence[str] | np.ndarray | pd.Series) -> np.ndarray:
    """Category path ``department/keyword`` of each description (``other/other`` when nothing matches).

    Seasonal words win (``seasonal/christmas``); otherwise the known keyword nearest the end of
    the description (its head noun), container words (`_GENERIC`) yielding to a specific keyword
    before them; a plural falls back to its singular when only that is known.
    """
    cache: dict[str, str] = {}
    out = []
    for text in (descriptions.tolist() if hasattr(descriptions, "tolist") else list(descriptions)):
        key = "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text)
        path = cache.get(key)
        if path is None:
            path = _category_of(key)
            cache[key] = path
        out.append(path)
    return np.asarray(out, dtype=str)


def _category_of(text: str) -> str:
    tokens = _TOKEN.findall(text.upper())
    for t in tokens:
        if t in _SEASONAL:
            return f"seasonal/{'christmas' if t in _CHRISTMAS else t.lower()}"
    generic = None
    for t in reversed(tokens):
        for word in (t, t[:-1] if t.endswith("S") else None):
            if word and word in _KEYWORD_DEPT:
                if word not in _GENERIC:
                    return f"{_KEYWORD_DEPT[word]}/{word.lower()}"
                generic = generic or word
                break
    return f"{_KEYWORD_DEPT[generic]}/{generic.lower()}" if generic else "other/other"


# ------------------------------------------------------------------------------------------------
# the loaded data
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RetailData:
    """Cleaned (or flagged) Online Retail rows: `interactions` and row-aligned arrays.

    `select(rows)` keeps every array aligned; the features stay those of the rows they were
    computed from (`with_features()` recomputes them from this object's rows only — what a
    training half should use, so no feature sees the test window).
    """

    interactions: Interactions
    revenue: np.ndarray  # float64 GBP per row
    unit_price: np.ndarray  # float64 GBP per row
    invoice_code: np.ndarray  # int32 per row, position in `invoices` (the basket)
    description_code: np.ndarray  # int32 per row, position in `descriptions`
    country_code: np.ndarray  # int32 per row, position in `countries`
    invoices: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=str), repr=False)
    descriptions: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=str), repr=False)
    countries: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=str), repr=False)
    report: CleaningReport | None = None
    item_features: SideFeatures | None = field(default=None, repr=False)
    user_features: SideFeatures | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.interactions)

    def __repr__(self) -> str:
        return f"RetailData({self.interactions!r})"

    @property
    def timestamps(self) -> np.ndarray:
        return self.interactions.timestamps

    def select(self, rows: np.ndarray) -> RetailData:
        """Rows by boolean mask or index array, every array kept aligned."""
        rows = np.asarray(rows)
        return replace(self, interactions=self.interactions.select(rows), revenue=self.revenue[rows],
                       unit_price=self.unit_price[rows], invoice_code=self.invoice_code[rows],
                       description_code=self.description_code[rows], country_code=self.country_code[rows])

    @property
    def invoice(self) -> np.ndarray:
        """Invoice number per row (str)."""
        return self.invoices[self.invoice_code]

    def baskets(self) -> np.ndarray:
        """Basket (invoice) code per row, int32 (codes of the whole loaded data, not renumbered)."""
        return self.invoice_code

    def spend(self) -> sp.csr_matrix:
        """User × item revenue (GBP) matrix over these rows."""
        x = self.interactions
        m = sp.csr_matrix((self.revenue, (x.user_idx, x.item_idx)), shape=x.shape, dtype=np.float64)
        m.sum_duplicates()
        return m

    def with_features(self) -> RetailData:
        """A copy whose item and user features are computed from its own rows only."""
        items, users = _features(self)
        inter = replace(self.interactions, item_features=items, user_features=users)
        return replace(self, interactions=inter, item_features=items, user_features=users)

    def catalog(self):
        """A `Catalog` whose row i is item index i (price = median unit price, category = the proxy,
        text = the description, launch = first sale date, popularity = share of invoice lines).
        Margin, stock, brand, tags and regions are unknown in this data set."""
        from tastemaker.data.catalog import Catalog

        vocab = self.interactions.item_vocab
        feats = self.item_features if self.item_features is not None else _features(self)[0]
        frame = feats.frame.reindex(pd.Index(vocab.ids))
        first = frame["first_seen"].to_numpy(dtype=np.float64)
        launch = np.where(np.isnan(first), np.datetime64("NaT"),
                          (np.nan_to_num(first) // DAY).astype("int64").astype("datetime64[D]"))
        lines = frame["lines"].to_numpy(dtype=np.float64)
        pop = np.nan_to_num(lines) / max(np.nansum(lines), 1.0)
        return Catalog.build(vocab.ids, price=frame["price_median"].to_numpy(dtype=np.float64),
                             category=frame["category"].fillna("").to_numpy(dtype=str),
                             text=frame["description"].fillna("").to_numpy(dtype=str), launch=launch,
                             popularity=pop, name=self.interactions.name)


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------
def retail_files(path: str | Path) -> list[Path]:
    """The data files under `path`: a folder with ``by-day/`` or CSV(.gz) files, one CSV(.gz) or one .xlsx."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.exists():
        raise DataError("no such file or folder", path=p,
                        hint="point to the online-retail folder (with by-day/*.csv.gz) or to 'Online Retail.xlsx'")
    folder = p / "by-day" if (p / "by-day").is_dir() else p
    files = sorted(f for f in folder.iterdir() if f.name.endswith((".csv", ".csv.gz")))
    if not files:
        xlsx = sorted(p.glob("*.xlsx"))
        if xlsx:
            return xlsx[:1]
        raise DataError(f"no .csv, .csv.gz or .xlsx files in {folder}", path=folder,
                        hint="download the UCI Online Retail data set there")
    return files


def read_online_retail(path: str | Path | None = None) -> tuple[pd.DataFrame, list[tuple[str, int]]]:
    """The raw rows as a typed DataFrame, and (file, data rows) per file read.

    Columns: InvoiceNo, StockCode, Description (str), Quantity (int64), InvoiceDate (int64 seconds,
    UTC-naive), UnitPrice (float64), CustomerID (float64, NaN when empty), Country (str).
    Malformed input raises `DataError` naming the file, line and column.
    """
    if path is None:
        from tastemaker.data.download import data_dir

        path = data_dir() / RETAIL_FOLDER
    files = retail_files(path)
    if len(files) == 1 and files[0].name.lower().endswith((".xlsx", ".xlsm")):
        frame = _read_xlsx(files[0])
        return _categorize(frame), [(str(files[0]), len(frame))]
    fast = _read_csvs_fast(files)
    if fast is not None:
        return fast
    parts = [_read_csv(f) for f in files]  # the careful path: finds the file, line and column of a problem
    frame = pd.concat([p for p, _ in parts], ignore_index=True) if len(parts) > 1 else parts[0][0]
    return _categorize(frame), [(str(f), len(p)) for f, (p, _) in zip(files, parts)]


_HEADER = ",".join(COLUMNS).encode()
_FAST_DTYPES = {"InvoiceNo": "category", "StockCode": "category", "Description": "category", "Quantity": "int64",
                "InvoiceDate": "category", "UnitPrice": "float64", "CustomerID": "float64", "Country": "category"}


def _read_csvs_fast(files: list[Path]) -> tuple[pd.DataFrame, list[tuple[str, int]]] | None:
    """All CSV files in one parse when every file has the standard header and parses cleanly;
    None otherwise (the caller then reads file by file to name the problem)."""
    chunks, counts = [], []
    for f in files:
        data = file_source(f).read_bytes()
        head, _, body = data.partition(b"\n")
        if head.rstrip(b"\r").lstrip(b"\xef\xbb\xbf") != _HEADER:
            return None
        if body and not body.endswith(b"\n"):
            body += b"\n"
        if b"\n\n" in body or body.startswith(b"\n"):
            return None  # blank lines: row counts per file would be off
        chunks.append(body)
        counts.append(body.count(b"\n"))
    if sum(counts) == 0:
        return None
    try:
        frame = pd.read_csv(io.BytesIO(b"".join(chunks)), header=None, names=list(COLUMNS), dtype=_FAST_DTYPES,
                            keep_default_na=False, na_values={"CustomerID": [""], "UnitPrice": [""]}, engine="c")
    except (ValueError, OverflowError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    if len(frame) != sum(counts) or frame[["InvoiceNo", "StockCode"]].eq("").any().any():
        return None
    if not np.isfinite(frame["UnitPrice"].to_numpy(dtype=np.float64)).all():
        return None
    seconds, bad = _parse_times(frame["InvoiceDate"])
    if bad.any():
        return None
    out = _typed(frame, seconds)
    try:
        _check_values(out, lambda row, col, problem, hint: DataError(problem))
    except DataError:
        return None
    return _categorize(out), [(str(f), c) for f, c in zip(files, counts)]


_CSV_COLUMNS = {"InvoiceNo": Column("str"), "StockCode": Column("str"), "Quantity": Column("int"),
                "InvoiceDate": Column("str"), "UnitPrice": Column("float"), "CustomerID": Column("float", False)}
_HINT = "each line is InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def _read_csv(path: Path) -> tuple[pd.DataFrame, Layout]:
    from tastemaker.data.generic import read_header

    src = file_source(path)
    header = tuple(ALIASES.get(h, h) for h in read_header(src, sep=","))
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(f"the header lacks column(s) {missing}; found {list(header)}", path=src.display, line=1,
                        hint=f"an Online Retail CSV has the header {','.join(COLUMNS)}")
    layout = Layout(sep=",", names=header, header=True, quoting=True)
    frame = read_table(src, layout, _CSV_COLUMNS, hint=_HINT)
    seconds, bad = _parse_times(frame["InvoiceDate"])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise row_error(src, layout, row, "InvoiceDate", f"{frame['InvoiceDate'].iloc[row]!r} is not a date and time",
                        "write it as YYYY-MM-DD HH:MM:SS")
    out = _typed(frame, seconds)
    _check_values(out, lambda row, col, problem, hint: row_error(src, layout, row, col, problem, hint))
    return out, layout


def _read_xlsx(path: Path) -> pd.DataFrame:
    require("openpyxl", "retail")
    try:
        raw = pd.read_excel(path, sheet_name=0, dtype=object, engine="openpyxl")
    except (ValueError, OSError, KeyError) as exc:
        raise DataError(f"cannot read the workbook: {exc}", path=path,
                        hint="pass the publisher's 'Online Retail.xlsx' (first sheet, header row first)") from exc
    raw = raw.rename(columns={c: ALIASES.get(str(c).strip(), str(c).strip()) for c in raw.columns})
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"the first sheet lacks column(s) {missing}; found {list(raw.columns)}", path=path, line=1,
                        hint=f"the header row must name {', '.join(COLUMNS)}")

    def fail(row: int, col: str, problem: str, hint: str | None = None) -> DataError:
        return DataError(problem, path=path, line=row + 2, column=col, hint=hint)  # row 1 is the header

    text = {}
    for col in ("InvoiceNo", "StockCode", "Description", "Country"):
        text[col] = raw[col].map(_cell_text)
        if col in ("InvoiceNo", "StockCode"):
            empty = (text[col] == "").to_numpy()
            if empty.any():
                raise fail(int(np.flatnonzero(empty)[0]), col, "empty value", "fill in the value or remove the row")
    numbers = {}
    for col, integral in (("Quantity", True), ("UnitPrice", False), ("CustomerID", False)):
        values = pd.to_numeric(raw[col], errors="coerce")
        bad = values.isna().to_numpy() & (raw[col].notna().to_numpy() if col == "CustomerID" else True)
        if integral:
            bad |= ~np.isnan(values.to_numpy(dtype=np.float64)) & (np.mod(values.to_numpy(np.float64), 1) != 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            kind = "a whole number" if integral else "a number"
            raise fail(row, col, f"{raw[col].iloc[row]!r} is not {kind}" if pd.notna(raw[col].iloc[row]) else
                       "empty value", "fix the cell")
        numbers[col] = values.to_numpy(dtype=np.float64)
    stamps = pd.to_datetime(raw["InvoiceDate"], errors="coerce")
    bad = stamps.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise fail(row, "InvoiceDate", f"{raw['InvoiceDate'].iloc[row]!r} is not a date and time",
                   "use an Excel date-time cell or YYYY-MM-DD HH:MM:SS")
    seconds = ((stamps - pd.Timestamp(0)) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)
    frame = pd.DataFrame({"InvoiceNo": text["InvoiceNo"], "StockCode": text["StockCode"],
                          "Description": text["Description"], "Quantity": numbers["Quantity"].astype(np.int64),
                          "InvoiceDate": seconds, "UnitPrice": numbers["UnitPrice"],
                          "CustomerID": numbers["CustomerID"], "Country": text["Country"]})
    if frame.empty:
        raise DataError("the workbook has no data rows", path=path, line=2)
    _check_values(frame, fail)
    return frame


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _parse_times(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(values.dtype, pd.CategoricalDtype):  # parse each distinct text once
        seconds, bad = _parse_times(pd.Series(np.asarray(values.cat.categories, dtype=object)))
        codes = values.cat.codes.to_numpy()
        missing = codes < 0
        codes = np.maximum(codes, 0)
        return seconds[codes], bad[codes] | missing
    stamps = pd.to_datetime(values, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    if stamps.isna().any():  # other spellings (ISO 'T', no seconds, …)
        retry = pd.to_datetime(values[stamps.isna()], format="mixed", errors="coerce")
        stamps = stamps.where(stamps.notna(), retry)
    bad = stamps.isna().to_numpy()
    seconds = ((stamps - pd.Timestamp(0)) // pd.Timedelta(seconds=1)).fillna(0).to_numpy(dtype=np.int64)
    return seconds, bad


def _typed(frame: pd.DataFrame, seconds: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "InvoiceNo": frame["InvoiceNo"], "StockCode": frame["StockCode"], "Description": frame["Description"],
        "Quantity": frame["Quantity"].to_numpy(dtype=np.int64), "InvoiceDate": seconds,
        "UnitPrice": frame["UnitPrice"].to_numpy(dtype=np.float64),
        "CustomerID": frame["CustomerID"].to_numpy(dtype=np.float64), "Country": frame["Country"],
    })


def _categorize(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as categoricals with stripped, sorted categories (hash-factorised: fast on 500k rows)."""
    out = frame.copy()
    for col in ("InvoiceNo", "StockCode", "Description", "Country"):
        values = frame[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes, uniques = values.cat.codes.to_numpy(), values.cat.categories.to_numpy()
            if (codes < 0).any():
                uniques = np.append(uniques.astype(object), "")
                codes = np.where(codes < 0, len(uniques) - 1, codes)
        else:
            codes, uniques = pd.factorize(values.fillna(""), sort=False)
        stripped = np.asarray([_cell_text(u) for u in uniques], dtype=str)
        table, remap = np.unique(stripped, return_inverse=True)
        out[col] = pd.Categorical.from_codes(remap[codes].astype(np.int32), categories=pd.Index(table, dtype=object))
    return out


def _check_values(frame: pd.DataFrame, fail) -> None:
    cid = frame["CustomerID"].to_numpy(dtype=np.float64)
    bad = ~np.isnan(cid) & ((np.mod(cid, 1) != 0) | (cid < 0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise fail(row, "CustomerID", f"{cid[row]!r} is not a customer number", "CustomerID is a whole number or empty")
    price = frame["UnitPrice"].to_numpy(dtype=np.float64)
    if not np.isfinite(price).all():
        row = int(np.flatnonzero(~np.isfinite(price))[0])
        raise fail(row, "UnitPrice", f"{price[row]!r} is not a finite price", "fix the value")


# ------------------------------------------------------------------------------------------------
# cleaning and loading
# ------------------------------------------------------------------------------------------------
def rule_masks(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per cleaning rule, the rows it matches (on its own)."""
    def on_table(col: str, test) -> np.ndarray:
        values = frame[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            table = np.asarray(values.cat.categories, dtype=str)
            return np.asarray([test(t) for t in table.tolist()], dtype=bool)[values.cat.codes.to_numpy()]
        return np.asarray([test(t) for t in values.astype(str).tolist()], dtype=bool)

    non_product = set(NON_PRODUCT_CODES)
    return {
        "missing_customer": np.isnan(frame["CustomerID"].to_numpy(dtype=np.float64)),
        "cancellation": on_table("InvoiceNo", lambda t: t.startswith("C")),
        "nonpositive_quantity": frame["Quantity"].to_numpy() <= 0,
        "nonpositive_price": frame["UnitPrice"].to_numpy() <= 0,
        "non_product": on_table("StockCode", lambda t: not t[:1].isdigit() or not t[:1].isascii() or t in non_product),
    }


def clean_online_retail(frame: pd.DataFrame, *, source: str = "") -> tuple[np.ndarray, np.ndarray, CleaningReport]:
    """(keep mask, first failed rule per row as an index into `RULES` or -1, report)."""
    masks = rule_masks(frame)
    n = len(frame)
    alive = np.ones(n, dtype=bool)
    first = np.full(n, -1, dtype=np.int8)
    steps = []
    for j, (rule, description) in enumerate(RULES):
        m = masks[rule]
        hit = alive & m
        first[hit] = j
        steps.append(CleaningStep(rule, description, int(hit.sum()), int(m.sum())))
        alive &= ~m
    return alive, first, CleaningReport(source, n, tuple(steps), int(alive.sum()))


def load_online_retail(
    path: str | Path | None = None,
    *,
    clean: bool = True,
    value: Literal["quantity", "one"] = "quantity",
) -> RetailData:
    """Load UCI Online Retail (see the module docstring for layouts, cleaning and what you get).

    `path`: the ``online-retail`` folder (its ``by-day/`` files), one CSV(.gz), or the publisher's
    ``Online Retail.xlsx``; default ``$TASTEMAKER_DATA_DIR/online-retail``. `value`: interaction
    values are the quantity (default) or 1 per invoice line.
    """
    if value not in ("quantity", "one"):
        raise ConfigError(f"value={value!r}; use 'quantity' or 'one'")
    frame, files = read_online_retail(path)
    source = files[0][0] if len(files) == 1 else f"{Path(files[0][0]).parent} ({len(files)} files)"
    keep, first, report = clean_online_retail(frame, source=source)
    if not clean:
        has_user = ~np.isnan(frame["CustomerID"].to_numpy(dtype=np.float64))
        steps = (report.steps[0], *(replace(s, dropped=0) for s in report.steps[1:]))
        report = replace(report, steps=steps, rows_kept=int(has_user.sum()), clean=False)
        keep = has_user
    rows = frame.loc[keep]
    if rows.empty:
        raise DataError("no rows left after cleaning", path=source, hint="check that the file holds Online Retail data")
    quantity = rows["Quantity"].to_numpy(dtype=np.float64)
    price = rows["UnitPrice"].to_numpy(dtype=np.float64)
    events, event_names = None, ()
    if not clean:
        names = np.asarray(["purchase", *(r for r, _ in RULES)])
        used, events = np.unique(first[keep] + 1, return_inverse=True)
        event_names = tuple(names[used].tolist())
        events = events.astype(np.int8)
    user_vocab, user_idx = Vocabulary.encode(rows["CustomerID"].to_numpy(dtype=np.float64).astype(np.int64))
    item_vocab, item_idx = _encode_categorical(rows["StockCode"])
    inter = Interactions(
        user_idx=user_idx.astype(np.int32), item_idx=item_idx, user_vocab=user_vocab, item_vocab=item_vocab,
        values=(quantity if value == "quantity" else np.ones(len(rows))).astype(np.float32),
        timestamps=rows["InvoiceDate"].to_numpy(dtype=np.int64), event_types=events, event_names=event_names,
        explicit=False, name="online-retail",
    )
    tables = {col: (rows[col].cat.codes.to_numpy().astype(np.int32), np.asarray(rows[col].cat.categories, dtype=str))
              for col in ("InvoiceNo", "Description", "Country")}
    data = RetailData(interactions=inter, revenue=quantity * price, unit_price=price,
                      invoice_code=tables["InvoiceNo"][0], invoices=tables["InvoiceNo"][1],
                      description_code=tables["Description"][0], descriptions=tables["Description"][1],
                      country_code=tables["Country"][0], countries=tables["Country"][1], report=report)
    return data.with_features()


# ------------------------------------------------------------------------------------------------
# features
# ------------------------------------------------------------------------------------------------
def _features(data: RetailData) -> tuple[SideFeatures, SideFeatures]:
    x = data.interactions
    frame = pd.DataFrame({
        "item": x.item_idx, "user": x.user_idx, "price": data.unit_price, "quantity": x.values,
        "revenue": data.revenue, "time": x.timestamps, "invoice": data.invoice_code,
        "description": data.description_code, "country": data.country_code,
    })
    g = frame.groupby("item", sort=True)
    items = pd.DataFrame({
        "description": data.descriptions[_mode_codes(frame["item"], frame["description"], g.ngroups)],
        "price_median": g["price"].median(), "price_mean": g["price"].mean(),
        "price_min": g["price"].min(), "price_max": g["price"].max(),
        "lines": g.size(), "invoices": g["invoice"].nunique(), "customers": g["user"].nunique(),
        "quantity": g["quantity"].sum(), "revenue": g["revenue"].sum(),
        "first_seen": g["time"].min(), "last_seen": g["time"].max(),
    })
    items["category"] = derive_category(items["description"].to_numpy(dtype=str))
    items.index = pd.Index(x.item_vocab.ids[items.index.to_numpy()], name="item")
    dept = np.asarray([c.split("/", 1)[0] for c in items["category"].tolist()], dtype=str)
    labels = tuple(sorted(set(dept.tolist())))
    onehot = dept[:, None] == np.asarray(labels, dtype=str)[None, :]
    gu = frame.groupby("user", sort=True)
    users = pd.DataFrame({
        "country": data.countries[_mode_codes(frame["user"], frame["country"], gu.ngroups)],
        "invoices": gu["invoice"].nunique(), "lines": gu.size(),
        "revenue": gu["revenue"].sum(), "first_seen": gu["time"].min(), "last_seen": gu["time"].max(),
    })
    users.index = pd.Index(x.user_vocab.ids[users.index.to_numpy()], name="user")
    c_labels = tuple(sorted(set(users["country"].tolist())))
    c_onehot = users["country"].to_numpy(dtype=str)[:, None] == np.asarray(c_labels, dtype=str)[None, :]
    return (SideFeatures(items, {"department": (labels, onehot)}),
            SideFeatures(users, {"country": (c_labels, c_onehot)}))


def _encode_categorical(values: pd.Series) -> tuple[Vocabulary, np.ndarray]:
    """A vocabulary of the categories present (sorted) and each row's index in it."""
    codes = values.cat.codes.to_numpy().astype(np.int64)
    present = np.unique(codes)
    lookup = np.full(len(values.cat.categories), -1, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    return Vocabulary(np.asarray(values.cat.categories, dtype=str)[present]), lookup[codes].astype(np.int32)


def _mode_codes(keys: pd.Series, codes: pd.Series, n_groups: int) -> np.ndarray:
    """Per group (sorted keys, as groupby numbers them), its most frequent code; ties: the lowest code."""
    k = keys.to_numpy()
    c = codes.to_numpy()
    _, group = np.unique(k, return_inverse=True)
    pairs = pd.DataFrame({"g": group, "c": c}).value_counts().reset_index(name="n")
    pairs = pairs.sort_values(["g", "n", "c"], ascending=[True, False, True], kind="stable")
    first = pairs.drop_duplicates("g")
    out = np.zeros(n_groups, dtype=np.int64)
    out[first["g"].to_numpy()] = first["c"].to_numpy()
    return out


# ------------------------------------------------------------------------------------------------
# the retail-temporal split
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RetailSplit:
    """``retail-temporal``: training = everything before `cut`; test = the `window_days` from `cut`.

    Evaluation users (`users`) have at least one purchase in both halves; their relevant items
    (`relevant`) are the distinct products they bought in the window — products never seen in
    training included (they count in the denominator); `spend` is their window revenue per item,
    for revenue-weighted recall. Candidates are the products seen in training (`candidate_items`).
    `validation()` makes the same split inside the training half.
    """

    train: RetailData
    test: RetailData
    cut: int
    end: int
    window_days: int

    @property
    def users(self) -> np.ndarray:
        """User indices with ≥ 1 purchase in training and ≥ 1 in the window, ascending."""
        both = (self.train.interactions.user_counts > 0) & (self.test.interactions.user_counts > 0)
        return np.flatnonzero(both)

    @property
    def candidate_items(self) -> np.ndarray:
        """Boolean mask of the items seen in training."""
        return self.train.interactions.item_counts > 0

    def relevant(self) -> sp.csr_matrix:
        """Binary user × item matrix: distinct products each evaluation user bought in the window."""
        m = self.test.interactions.csr(binary=True)
        keep = np.zeros(m.shape[0], dtype=np.float32)
        keep[self.users] = 1.0
        out = sp.csr_matrix(sp.diags(keep) @ m)
        out.eliminate_zeros()
        return out

    def spend(self) -> sp.csr_matrix:
        """User × item revenue in the window, evaluation users only."""
        m = self.test.spend()
        keep = np.zeros(m.shape[0])
        keep[self.users] = 1.0
        out = sp.csr_matrix(sp.diags(keep) @ m)
        out.eliminate_zeros()
        return out

    def validation(self) -> RetailSplit:
        """The same split made inside the training half (window = its last `window_days` days)."""
        return retail_temporal_split(self.train, window_days=self.window_days)

    def describe(self) -> dict[str, Any]:
        rel = self.relevant()
        seen = self.candidate_items
        per_user = np.diff(rel.indptr)[self.users]
        unseen = rel[:, ~seen].nnz
        return {"cut": str(np.datetime64(self.cut, "s")), "end": str(np.datetime64(self.end, "s")),
                "train_rows": len(self.train), "test_rows": len(self.test), "users": len(self.users),
                "relevant_pairs": int(rel.nnz),
                "relevant_per_user_mean": float(per_user.mean()) if len(per_user) else 0.0,
                "relevant_unseen_in_training": int(unseen), "candidate_items": int(seen.sum())}


def retail_temporal_split(data: RetailData, *, window_days: int = 30, cut: Any = None) -> RetailSplit:
    """Split at `cut` (default: midnight starting the last `window_days` calendar days of the data —
    2011-11-10 00:00 on the full data set); the test window is [cut, cut + window_days days).

    The training half's features are recomputed from training rows only.
    """
    if window_days < 1:
        raise ConfigError(f"window_days must be at least 1 (got {window_days})")
    ts = data.timestamps
    if ts is None or not len(ts):
        raise DataError("the data has no timestamped rows to split")
    if cut is None:
        last_day = int(ts.max()) // DAY
        cut_s = (last_day + 1 - window_days) * DAY
    else:
        from tastemaker.data.splits import _to_seconds

        cut_s = _to_seconds(cut)
    end_s = cut_s + window_days * DAY
    train_mask = ts < cut_s
    test_mask = (ts >= cut_s) & (ts < end_s)
    if not train_mask.any() or not test_mask.any():
        half = "training" if not train_mask.any() else "test"
        first, last = np.datetime64(int(ts.min()), "s"), np.datetime64(int(ts.max()), "s")
        raise DataError(f"the cut at {np.datetime64(cut_s, 's')} leaves the {half} half empty; "
                        f"the data run from {first} to {last}", hint="choose a cut inside that range")
    train = data.select(train_mask).with_features()
    test = data.select(test_mask)
    test = replace(test, item_features=train.item_features, user_features=train.user_features,
                   interactions=replace(test.interactions, item_features=train.item_features,
                                        user_features=train.user_features))
    return RetailSplit(train=train, test=test, cut=int(cut_s), end=int(end_s), window_days=int(window_days))



__all__ = ["ALIASES", "CATEGORY_KEYWORDS", "CLEAN_ROWS", "COLUMNS", "NON_PRODUCT_CODES", "RETAIL_FOLDER", "RULES",
           "CleaningReport", "CleaningStep", "RetailData", "RetailSplit", "clean_online_retail", "derive_category",
           "load_online_retail", "read_online_retail", "retail_files", "retail_temporal_split", "rule_masks"]
