"""`Catalog`: item attributes as columns (price, margin, stock, category, brand, launch, tags, text, …),
and a seeded synthetic catalogue, user histories and embeddings for scale tests.

Every attribute is one numpy array with one entry per item, so looking up the attributes of 500
candidates is one fancy-indexing call per column, and a 2M-item catalogue is a few hundred MB of
arrays with no per-item Python objects. Strings that repeat (category paths, brands, tag and region
names) are stored once in a table and referred to by integer codes.

Columns and their "unknown" values:

==============  ===================  ========================================================================
column          dtype                meaning (unknown)
==============  ===================  ========================================================================
ids             int64 or str         external item id, unique
price           float32              unit price (NaN)
margin          float32              margin as a fraction of price, 0–1 (NaN)
stock           int32                units in stock (-1 = unknown; the rules count unknown as out of stock)
category        int32                node of `categories` (a `CategoryTree`), usually a leaf (-1)
brand           int32                position in `brands` (-1)
launch          datetime64[D]        launch date (NaT)
tags            uint64               bit j set = tag `tag_names[j]` (at most 64 tag names)
regions         uint32               bit j set = sold in `region_names[j]`; 0 = everywhere
promo           bool                 on promotion
sponsored       bool                 sponsored (eligible for labelled sponsored slots)
consumable      bool                 bought again and again (the "already bought" filter lets it through)
popularity      float32              share of demand, sums to 1 over the catalogue (NaN when unknown)
text            str array or tokens  the item's text (title + description); see `TokenText`
==============  ===================  ========================================================================

`Catalog.candidate_columns(idx)` turns rows into the keyword arguments of
`tastemaker.ranking.Candidates`; `Catalog.mask(...)` turns hard constraints (in stock, categories,
brands, price range, region) into a boolean mask over all items, which filtered ANN search takes.

Synthetic data (`synthetic_catalog`, `synthetic_users`, `synthetic_embeddings`) is generated with
vectorised numpy from one seed: 2M items take a few seconds. Its distributions are described in
`synthetic_catalog`'s docstring; they are plausible, not fitted to a real shop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tastemaker.artifacts import load_state, save_state
from tastemaker.data.vocabulary import Vocabulary
from tastemaker.errors import ArtifactError, ConfigError, DataError

SEPARATOR = "/"
MAX_TAGS = 64
MAX_REGIONS = 32
_UNKNOWN_DAY = np.datetime64("NaT", "D")


# ------------------------------------------------------------------------------------------------
# category tree
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class CategoryTree:
    """Category nodes as full paths (``home/kitchen/mugs``) with parent links.

    Every prefix of a path is a node of its own, so ``under`` can test membership of any level in
    one vectorised gather. Node codes are positions in `paths`.
    """

    paths: np.ndarray  # str, one per node
    parent: np.ndarray  # int32, -1 for top-level nodes

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.parent):
            raise ValueError("paths and parent must be equally long")

    @classmethod
    def from_paths(cls, paths: Iterable[str]) -> tuple[CategoryTree, np.ndarray]:
        """A tree holding every path (and all their prefixes), and the node code of each given path.

        Empty or None paths get code -1. Paths are normalised (no empty levels, no surrounding spaces).
        """
        given = [_norm_path(p) for p in paths]
        uniq = sorted({p for p in given if p})
        nodes: dict[str, int] = {}
        node_paths: list[str] = []
        parents: list[int] = []
        for p in uniq:
            parts = p.split(SEPARATOR)
            parent = -1
            for depth in range(1, len(parts) + 1):
                prefix = SEPARATOR.join(parts[:depth])
                code = nodes.get(prefix)
                if code is None:
                    code = len(node_paths)
                    nodes[prefix] = code
                    node_paths.append(prefix)
                    parents.append(parent)
                parent = code
        tree = cls(np.asarray(node_paths, dtype=str), np.asarray(parents, dtype=np.int32))
        codes = np.asarray([nodes[p] if p else -1 for p in given], dtype=np.int32)
        return tree, codes

    def __len__(self) -> int:
        return len(self.paths)

    @cached_property
    def depth(self) -> np.ndarray:
        """Depth of each node (1 = top level)."""
        d = np.zeros(len(self), dtype=np.int8)
        for i, p in enumerate(self.parent):  # parents come before children
            d[i] = 1 if p < 0 else d[p] + 1
        return d

    @cached_property
    def ancestors(self) -> np.ndarray:
        """(nodes + 1, max depth) int32: code of each node's ancestor at each level, -1 past its depth.

        The extra last row is all -1, so ``ancestors[codes]`` works with code -1 (unknown).
        """
        depth = int(self.depth.max(initial=0))
        out = np.full((len(self) + 1, max(depth, 1)), -1, dtype=np.int32)
        for i, p in enumerate(self.parent):
            if p >= 0:
                out[i] = out[p]
            out[i, self.depth[i] - 1] = i
        return out

    @cached_property
    def _index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.paths.tolist())}

    def code(self, path: str) -> int:
        """Node code of a path, -1 when the tree does not hold it."""
        return self._index.get(_norm_path(path), -1)

    def leaves(self) -> np.ndarray:
        """Codes of nodes without children."""
        has_child = np.zeros(len(self), dtype=bool)
        has_child[self.parent[self.parent >= 0]] = True
        return np.flatnonzero(~has_child)

    def under(self, codes: np.ndarray, prefixes: Sequence[str]) -> np.ndarray:
        """Mask of `codes` (item category codes, -1 allowed) at or below any of `prefixes`.

        A prefix the tree does not hold matches nothing.
        """
        codes = np.asarray(codes)
        out = np.zeros(codes.shape, dtype=bool)
        anc = self.ancestors
        for prefix in prefixes:
            c = self.code(prefix)
            if c < 0:
                continue
            out |= anc[codes, self.depth[c] - 1] == c
        return out

    def paths_of(self, codes: np.ndarray) -> np.ndarray:
        """Path strings of codes ("" for -1)."""
        return np.append(self.paths, "")[np.asarray(codes)]

    def level(self, codes: np.ndarray, depth: int) -> np.ndarray:
        """Code of each item's ancestor at `depth` (1 = top level), -1 where the path is shallower."""
        anc = self.ancestors
        if depth < 1 or depth > anc.shape[1]:
            return np.full(np.shape(codes), -1, dtype=np.int32)
        return anc[np.asarray(codes), depth - 1]


def _norm_path(path: Any) -> str:
    if path is None or (isinstance(path, float) and np.isnan(path)):
        return ""
    return SEPARATOR.join(p.strip() for p in str(path).split(SEPARATOR) if p.strip())


# ------------------------------------------------------------------------------------------------
# text
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TokenText:
    """Item texts as word codes: ``tokens[i]`` are positions in `words`, -1 pads.

    Synthetic catalogues store text this way (2 bytes per word instead of a Python string per item);
    `strings(idx)` makes the strings of the rows asked for.
    """

    tokens: np.ndarray  # int16 or int32, (n, max words)
    words: np.ndarray  # str

    def __len__(self) -> int:
        return len(self.tokens)

    def strings(self, idx: np.ndarray | None = None) -> list[str]:
        rows = self.tokens if idx is None else self.tokens[np.asarray(idx)]
        words = self.words.tolist()
        return [" ".join(words[t] for t in row if t >= 0) for row in rows.tolist()]


# ------------------------------------------------------------------------------------------------
# the catalogue
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Catalog:
    """Item attributes as columns, one entry per item; see the module docstring for each column.

    Build one with `Catalog.build` (from attribute values: category paths, brand names, tag lists…),
    `synthetic_catalog`, or `tastemaker.data.retail.RetailData.catalog`. Index ``i`` means item
    ``ids[i]`` everywhere (retrieval, the store, the ranker).
    """

    ids: np.ndarray
    price: np.ndarray
    margin: np.ndarray
    stock: np.ndarray
    category: np.ndarray
    brand: np.ndarray
    launch: np.ndarray
    tags: np.ndarray
    regions: np.ndarray
    promo: np.ndarray
    sponsored: np.ndarray
    consumable: np.ndarray
    popularity: np.ndarray
    text: np.ndarray | TokenText
    categories: CategoryTree = field(default_factory=lambda: CategoryTree(np.empty(0, str), np.empty(0, np.int32)))
    brands: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=str))
    tag_names: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=str))
    region_names: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=str))
    name: str = ""

    _COLUMNS: ClassVar[tuple[str, ...]] = (
        "price", "margin", "stock", "category", "brand", "launch", "tags", "regions", "promo", "sponsored",
        "consumable", "popularity")
    _DTYPES: ClassVar[dict[str, Any]] = {
        "price": np.float32, "margin": np.float32, "stock": np.int32, "category": np.int32, "brand": np.int32,
        "launch": "datetime64[D]", "tags": np.uint64, "regions": np.uint32, "promo": np.bool_,
        "sponsored": np.bool_, "consumable": np.bool_, "popularity": np.float32}

    def __post_init__(self) -> None:
        n = len(self.ids)
        for col in self._COLUMNS:
            arr = getattr(self, col)
            if arr.shape != (n,):
                raise DataError(f"catalog column {col!r} has shape {arr.shape}, expected ({n},)")
            want = np.dtype(self._DTYPES[col])
            if arr.dtype != want:
                object.__setattr__(self, col, arr.astype(want))
        if len(self.text) != n:
            raise DataError(f"catalog text has {len(self.text)} rows, expected {n}")
        for col, table in (("category", self.categories.paths), ("brand", self.brands)):
            codes = getattr(self, col)
            if n and (codes.min() < -1 or codes.max() >= len(table)):
                raise DataError(f"catalog column {col!r} has codes outside its table of {len(table)} names")
        if len(self.tag_names) > MAX_TAGS:
            raise DataError(f"{len(self.tag_names)} tag names; a catalogue holds at most {MAX_TAGS}",
                            hint="keep the most used tags, move the rest into the text")
        if len(self.region_names) > MAX_REGIONS:
            raise DataError(f"{len(self.region_names)} regions; a catalogue holds at most {MAX_REGIONS}")

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        ids: Sequence[Any] | np.ndarray,
        *,
        price: Any = None,
        margin: Any = None,
        stock: Any = None,
        category: Sequence[str] | np.ndarray | None = None,
        brand: Sequence[str] | np.ndarray | None = None,
        launch: Any = None,
        tags: Sequence[Iterable[str] | str | None] | None = None,
        regions: Sequence[Iterable[str] | str | None] | None = None,
        promo: Any = None,
        sponsored: Any = None,
        consumable: Any = None,
        popularity: Any = None,
        text: Sequence[str] | np.ndarray | None = None,
        name: str = "",
    ) -> Catalog:
        """A catalogue from attribute values; omitted columns are unknown.

        `category` holds paths such as ``"home/kitchen/mugs"``; `brand` names; `tags` and
        `regions` a list of names or one comma-separated string per item (empty regions = sold
        everywhere); `launch` anything numpy turns into ``datetime64[D]``. Ids must be unique.
        """
        ids = _unique_ids(ids)
        n = len(ids)

        def num(x, dtype, unknown):
            if x is None:
                return np.full(n, unknown, dtype=dtype)
            arr = np.asarray(x, dtype=np.float64)
            if arr.shape != (n,):
                raise DataError(f"a catalog column has shape {arr.shape}, expected ({n},)")
            arr = np.where(np.isnan(arr), unknown, arr)
            return arr.astype(dtype)

        def flag(x):
            return np.zeros(n, dtype=bool) if x is None else np.asarray(x, dtype=bool).reshape(n)

        tree, cat = CategoryTree.from_paths(category) if category is not None else (
            CategoryTree(np.empty(0, str), np.empty(0, np.int32)), np.full(n, -1, np.int32))
        if brand is not None:
            names = np.asarray(["" if b is None else str(b).strip() for b in brand], dtype=str)
            brands, codes = np.unique(names, return_inverse=True)
            has_blank = len(brands) and brands[0] == ""
            brand_codes = (codes - 1 if has_blank else codes).astype(np.int32)
            brands = brands[1:] if has_blank else brands
        else:
            brands, brand_codes = np.empty(0, str), np.full(n, -1, np.int32)
        tag_names, tag_bits = _bitsets(tags, n, MAX_TAGS, "tags", np.uint64)
        region_names, region_bits = _bitsets(regions, n, MAX_REGIONS, "regions", np.uint32)
        launch_days = np.full(n, _UNKNOWN_DAY) if launch is None else np.asarray(launch, dtype="datetime64[D]")
        texts = np.full(n, "", dtype=str) if text is None else np.asarray(
            ["" if t is None else str(t) for t in text], dtype=str)
        return cls(
            ids=ids, price=num(price, np.float32, np.nan), margin=num(margin, np.float32, np.nan),
            stock=num(stock, np.int32, -1), category=cat, brand=brand_codes, launch=launch_days,
            tags=tag_bits, regions=region_bits, promo=flag(promo), sponsored=flag(sponsored),
            consumable=flag(consumable), popularity=num(popularity, np.float32, np.nan), text=texts,
            categories=tree, brands=brands, tag_names=tag_names, region_names=region_names, name=name,
        )

    # --- basics -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"Catalog({self.name or 'unnamed'}: {len(self):,} items, {len(self.categories):,} category nodes, "
                f"{len(self.brands):,} brands)")

    @cached_property
    def _dense(self) -> bool:
        return self.ids.dtype.kind == "i" and bool(np.array_equal(self.ids, np.arange(len(self.ids))))

    @cached_property
    def _sorter(self) -> np.ndarray:
        return np.argsort(self.ids, kind="stable")

    def indices(self, ids: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Index of each id (int64), -1 where unknown. Binary search: no per-item dict is built."""
        q = np.asarray(ids)
        if q.ndim == 0:
            q = q.reshape(1)
        if self.ids.dtype.kind == "i":
            if q.dtype.kind not in "iu":
                try:
                    q = q.astype(np.int64)
                except (ValueError, TypeError):
                    return np.full(len(q), -1, dtype=np.int64)
            if self._dense:
                q = q.astype(np.int64)
                return np.where((q >= 0) & (q < len(self)), q, -1)
        else:
            q = q.astype(str)
        if not len(self):
            return np.full(len(q), -1, dtype=np.int64)
        sorted_ids = self.ids[self._sorter]
        pos = np.clip(np.searchsorted(sorted_ids, q), 0, len(self) - 1)
        found = sorted_ids[pos] == q
        return np.where(found, self._sorter[pos], -1).astype(np.int64)

    def index(self, item_id: Any) -> int:
        """Index of one id, -1 when unknown."""
        return int(self.indices([item_id])[0])

    @cached_property
    def vocabulary(self) -> Vocabulary:
        """The ids as a `Vocabulary` (built on first use: a dict of every id, so mind it at 2M items)."""
        return Vocabulary(self.ids)

    # --- reading rows -------------------------------------------------------------------------
    def texts(self, idx: Sequence[int] | np.ndarray | None = None) -> list[str]:
        """Texts of rows `idx` (all rows when None)."""
        if isinstance(self.text, TokenText):
            return self.text.strings(idx)
        rows = self.text if idx is None else self.text[np.asarray(idx)]
        return rows.tolist()

    def category_paths(self, idx: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Category path of rows `idx` ("" where unknown)."""
        codes = self.category if idx is None else self.category[np.asarray(idx)]
        return self.categories.paths_of(codes)

    def brand_names(self, idx: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Brand name of rows `idx` ("" where unknown)."""
        codes = self.brand if idx is None else self.brand[np.asarray(idx)]
        return np.append(self.brands, "")[codes]

    def tag_lists(self, idx: Sequence[int] | np.ndarray | None = None) -> list[str]:
        """Tags of rows `idx`, one comma-separated string per row."""
        bits = self.tags if idx is None else self.tags[np.asarray(idx)]
        return _decode_bits(bits, self.tag_names)

    def region_lists(self, idx: Sequence[int] | np.ndarray | None = None) -> list[str]:
        """Regions of rows `idx`, comma-separated ("" = everywhere)."""
        bits = self.regions if idx is None else self.regions[np.asarray(idx)]
        return _decode_bits(bits, self.region_names)

    def candidate_columns(self, idx: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """Keyword arguments of `tastemaker.ranking.Candidates` for rows `idx`:
        ``Candidates(catalog.ids[idx], scores, **catalog.candidate_columns(idx))``."""
        idx = np.asarray(idx, dtype=np.int64)
        stock = self.stock[idx].astype(np.float64)
        stock[stock < 0] = np.nan
        return {
            "price": self.price[idx], "margin": self.margin[idx], "stock": stock,
            "category": self.category_paths(idx), "brand": self.brand_names(idx), "launch": self.launch[idx],
            "tags": self.tag_lists(idx), "regions": self.region_lists(idx), "promo": self.promo[idx],
            "sponsored": self.sponsored[idx], "consumable": self.consumable[idx],
        }

    def row(self, i: int) -> dict[str, Any]:
        """All attributes of one item as plain Python values (for display and debugging)."""
        cols = self.candidate_columns([i])
        out: dict[str, Any] = {"id": self.ids[i].item(), "text": self.texts([i])[0]}
        for key, val in cols.items():
            v = val[0]
            out[key] = v.item() if isinstance(v, np.generic) else v
        out["popularity"] = float(self.popularity[i])
        return out

    # --- hard constraints ---------------------------------------------------------------------
    def mask(
        self,
        *,
        in_stock: bool = False,
        min_stock: int = 1,
        categories: Sequence[str] | None = None,
        exclude_categories: Sequence[str] = (),
        brands: Sequence[str] | None = None,
        price_min: float | None = None,
        price_max: float | None = None,
        region: str | None = None,
        tags_any: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Boolean mask over all items of those meeting every given constraint.

        Unknown stock fails `in_stock`; unknown price fails a price bound; categories match at or
        below a path; a region matches items sold everywhere or in that region (an unknown region
        name matches only the sold-everywhere items).
        """
        ok = np.ones(len(self), dtype=bool)
        if in_stock:
            ok &= self.stock >= min_stock
        if categories is not None:
            ok &= self.categories.under(self.category, categories)
        if exclude_categories:
            ok &= ~self.categories.under(self.category, exclude_categories)
        if brands is not None:
            codes = np.flatnonzero(np.isin(self.brands, np.asarray(list(brands), dtype=str)))
            ok &= np.isin(self.brand, codes)
        if price_min is not None:
            ok &= self.price >= price_min
        if price_max is not None:
            ok &= self.price <= price_max
        if region is not None:
            where = np.flatnonzero(self.region_names == region)
            everywhere = self.regions == 0
            ok &= everywhere | ((self.regions & np.uint32(1 << int(where[0]))) != 0) if len(where) else everywhere
        if tags_any is not None:
            bits = np.uint64(0)
            for t in tags_any:
                pos = np.flatnonzero(self.tag_names == t)
                if len(pos):
                    bits |= np.uint64(1) << np.uint64(int(pos[0]))
            ok &= (self.tags & bits) != 0
        return ok

    # --- transformations ----------------------------------------------------------------------
    def select(self, idx: np.ndarray) -> Catalog:
        """The catalogue restricted to rows `idx` (index array or boolean mask), tables kept."""
        idx = np.asarray(idx)
        text = (TokenText(self.text.tokens[idx], self.text.words) if isinstance(self.text, TokenText)
                else self.text[idx])
        cols = {c: getattr(self, c)[idx] for c in self._COLUMNS}
        return replace(self, ids=self.ids[idx], text=text, **cols)

    # --- plain-data round trip ----------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, JSON-able meta): every column and table as numpy arrays."""
        arrays: dict[str, np.ndarray] = {"ids": self.ids}
        for c in self._COLUMNS:
            arr = getattr(self, c)
            arrays[c] = arr.astype(np.int64) if c == "launch" else arr
        if isinstance(self.text, TokenText):
            arrays["text_tokens"] = self.text.tokens
            arrays["text_words"] = self.text.words
        else:
            arrays["text"] = self.text
        arrays.update(category_paths=self.categories.paths, category_parent=self.categories.parent,
                      brands=self.brands, tag_names=self.tag_names, region_names=self.region_names)
        return arrays, {"name": self.name, "items": len(self)}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Catalog:
        try:
            cols = {c: arrays[c] for c in cls._COLUMNS}
            cols["launch"] = arrays["launch"].astype("datetime64[D]")
            text = (TokenText(arrays["text_tokens"], arrays["text_words"]) if "text_tokens" in arrays
                    else arrays["text"])
            return cls(ids=arrays["ids"], text=text,
                       categories=CategoryTree(arrays["category_paths"], arrays["category_parent"]),
                       brands=arrays["brands"], tag_names=arrays["tag_names"], region_names=arrays["region_names"],
                       name=str(meta.get("name", "")), **cols)
        except KeyError as exc:
            raise ArtifactError(f"catalog state lacks the array {exc}") from None

    def save(self, directory: str | Path) -> Path:
        """Write the catalogue as ``arrays.npz`` + ``manifest.json`` (no pickle)."""
        return save_state(directory, "catalog", *self.get_state())

    @classmethod
    def load(cls, directory: str | Path) -> Catalog:
        """Read a catalogue written by `save`."""
        return cls.from_state(*load_state(directory, "catalog"))

    def nbytes(self) -> int:
        """Bytes held by the columns and tables (the text too)."""
        total = sum(getattr(self, f.name).nbytes for f in fields(self)
                    if isinstance(getattr(self, f.name), np.ndarray))
        text = self.text
        total += (text.tokens.nbytes + text.words.nbytes) if isinstance(text, TokenText) else 0
        return int(total + self.categories.paths.nbytes + self.categories.parent.nbytes)


def _unique_ids(ids: Any) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise DataError("catalog ids must be one-dimensional")
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "f":
        if not np.all(np.mod(arr, 1) == 0):
            raise DataError("float catalog ids must be whole numbers; pass them as int or str")
        arr = arr.astype(np.int64)
    else:
        arr = arr.astype(str)
    uniq, counts = np.unique(arr, return_counts=True)
    if len(uniq) != len(arr):
        raise DataError(f"duplicate catalog ids, e.g. {uniq[counts > 1][:3].tolist()}",
                        hint="each item appears once in a catalogue")
    return arr


def _bitsets(values: Any, n: int, limit: int, what: str, dtype) -> tuple[np.ndarray, np.ndarray]:
    bits = np.zeros(n, dtype=dtype)
    if values is None:
        return np.empty(0, dtype=str), bits
    if len(values) != n:
        raise DataError(f"catalog column {what!r} has {len(values)} rows, expected {n}")
    lists = [[] if v is None else [t.strip() for t in (v.split(",") if isinstance(v, str) else v) if t.strip()]
             for v in values]
    names = sorted({t for row in lists for t in row if t != "*"})
    if len(names) > limit:
        raise DataError(f"{len(names)} distinct {what}; a catalogue holds at most {limit}")
    pos = {t: j for j, t in enumerate(names)}
    for i, row in enumerate(lists):
        b = 0
        for t in row:
            if t != "*":
                b |= 1 << pos[t]
        bits[i] = b
    return np.asarray(names, dtype=str), bits


def _decode_bits(bits: np.ndarray, names: np.ndarray) -> list[str]:
    """Comma-joined names of each bitset, decoding each distinct bitset once."""
    uniq, inverse = np.unique(bits, return_inverse=True)
    name_list = names.tolist()
    decoded = []
    for b in uniq.tolist():
        decoded.append(",".join(name_list[j] for j in range(len(name_list)) if (b >> j) & 1))
    return [decoded[j] for j in inverse.ravel().tolist()]


# ------------------------------------------------------------------------------------------------
# synthetic catalogue
# ------------------------------------------------------------------------------------------------
_DEPARTMENTS = ("home", "kitchen", "garden", "toys", "fashion", "beauty", "grocery", "electronics", "sports",
                "books", "pets", "office", "baby", "health", "auto", "crafts")
_CONSUMABLE_DEPARTMENTS = frozenset({"grocery", "beauty", "pets", "health", "baby"})
_NOUNS = ("mug", "lamp", "bag", "candle", "frame", "cushion", "bowl", "plate", "jar", "box", "basket", "clock",
          "mirror", "tray", "vase", "rug", "towel", "blanket", "bottle", "cup", "kettle", "pan", "knife", "board",
          "chair", "table", "shelf", "hook", "sign", "card", "notebook", "pen", "puzzle", "doll", "ball", "kite",
          "shirt", "scarf", "hat", "sock", "glove", "boot", "ring", "necklace", "soap", "cream", "shampoo",
          "brush", "tea", "coffee", "biscuit", "chocolate", "pasta", "sauce", "charger", "cable", "speaker",
          "headphones", "mouse", "keyboard", "lead", "collar", "toy", "treat", "seed", "pot", "glove", "hose")
_ADJECTIVES = ("classic", "vintage", "modern", "large", "small", "mini", "deluxe", "organic", "eco", "soft",
               "hand-made", "retro", "premium", "family", "travel", "folding", "scented", "wooden", "ceramic",
               "glass", "metal", "cotton", "wool", "leather", "bamboo", "recycled", "set-of-3", "party")
_COLOURS = ("red", "blue", "green", "pink", "white", "black", "ivory", "grey", "gold", "silver", "natural",
            "pastel", "striped", "spotty", "floral", "heart")
_TAGS = ("bestseller", "gift", "eco", "handmade", "limited", "bundle", "organic", "vegan", "new", "clearance",
         "exclusive", "fair-trade", "local", "recyclable", "award-winning", "staff-pick")
_REGIONS = ("GB", "IE", "FR", "DE", "NL", "BE", "ES", "IT", "PT", "SE", "DK", "US")


def synthetic_catalog(
    n_items: int,
    seed: int = 0,
    *,
    n_brands: int | None = None,
    zipf: float = 1.0,
    today: str = "2026-01-01",
    string_ids: bool = False,
) -> Catalog:
    """A seeded synthetic catalogue of `n_items` SKUs (2M items in a few seconds, ~40 bytes a row).

    Distributions (each drawn once, vectorised):

    - category tree: 16 departments × subcategories × leaves, about one leaf per 1,500 items
      (16–4,096 leaves); leaf sizes are uneven (Dirichlet, α = 0.5);
    - popularity: Zipf-like long tail, ``(rank + 1) ** -zipf`` over a random order of the items,
      times a per-leaf factor; items launched in the last 30 days get a tenth of their demand;
    - price: log-normal per leaf (median £5–£60) × log-normal per item (σ 0.5), rounded to .99;
    - margin: Beta(2, 5) scaled to 5–65 % of price, a per-brand shift of ±5 points;
    - stock: 7 % out of stock, else geometric with mean 60 units;
    - brand: Zipf over `n_brands` (default n_items / 200, 50–20,000), each brand mostly in one department;
    - launch: exponential ages (mean 400 days) before `today`; about 7 % launched in the last 30 days;
    - tags: 16 tags, each item carries each with probability 1–8 %; regions: 70 % sold everywhere,
      the rest in 1–6 of 12 countries; promo 5 %; sponsored 1 %; consumable 85 % in grocery, beauty,
      pets, health and baby, 3 % elsewhere;
    - text: "<adjective> <colour> <noun> <brand>" from small word lists, the noun tied to the leaf.

    Ids are 0 … n-1 (``"sku0"`` … with `string_ids`), so an id is its index.
    """
    if n_items < 1:
        raise ConfigError(f"n_items must be positive (got {n_items})")
    rng = np.random.default_rng(seed)
    n = int(n_items)
    # category tree: departments / subcategories / leaves
    n_leaves = int(np.clip(n // 1500, 16, 4096))
    n_dep = len(_DEPARTMENTS)
    subs_per_dep = max(2, round(float(np.sqrt(n_leaves / n_dep))))
    leaves_per_sub = max(1, int(np.ceil(n_leaves / (n_dep * subs_per_dep))))
    paths, parents, leaf_codes, leaf_dep, leaf_noun = [], [], [], [], []
    noun_of_leaf = rng.integers(0, len(_NOUNS), n_dep * subs_per_dep * leaves_per_sub)
    for d, dep in enumerate(_DEPARTMENTS):
        d_code = len(paths)
        paths.append(dep)
        parents.append(-1)
        for s in range(subs_per_dep):
            s_code = len(paths)
            sub = f"{dep}/{dep}-{s:02d}"
            paths.append(sub)
            parents.append(d_code)
            for leaf in range(leaves_per_sub):
                j = len(leaf_codes)
                noun = _NOUNS[noun_of_leaf[j]]
                leaf_codes.append(len(paths))
                leaf_dep.append(d)
                leaf_noun.append(noun_of_leaf[j])
                paths.append(f"{sub}/{noun}s-{leaf:02d}")
                parents.append(s_code)
    tree = CategoryTree(np.asarray(paths, dtype=str), np.asarray(parents, dtype=np.int32))
    leaf_codes_a = np.asarray(leaf_codes, dtype=np.int32)
    leaf_dep_a = np.asarray(leaf_dep, dtype=np.int16)
    n_leaf = len(leaf_codes_a)
    leaf_share = rng.dirichlet(np.full(n_leaf, 0.5))
    leaf = _sample(rng, leaf_share, n).astype(np.int32)
    dep = leaf_dep_a[leaf]

    # brands, mostly within one department
    nb = int(np.clip(n // 200, 50, 20_000)) if n_brands is None else int(n_brands)
    brand_dep = rng.integers(0, n_dep, nb)
    brand_weight = 1.0 / np.arange(1, nb + 1) ** 0.8
    order_by_dep = np.argsort(brand_dep, kind="stable")
    dep_start = np.searchsorted(brand_dep[order_by_dep], np.arange(n_dep + 1))
    brand = np.empty(n, dtype=np.int32)
    same_dep = rng.random(n) < 0.8
    brand[~same_dep] = _sample(rng, brand_weight / brand_weight.sum(), int((~same_dep).sum()))
    for d in range(n_dep):
        rows = np.flatnonzero(same_dep & (dep == d))
        members = order_by_dep[dep_start[d]:dep_start[d + 1]]
        if not len(members):
            brand[rows] = _sample(rng, brand_weight / brand_weight.sum(), len(rows))
            continue
        w = brand_weight[members]
        brand[rows] = members[_sample(rng, w / w.sum(), len(rows))]
    brand_names = np.asarray([f"brand{b:05d}" for b in range(nb)], dtype=str)

    # dates
    today_d = np.datetime64(today, "D")
    age = np.minimum(rng.exponential(400.0, n), 3650).astype(np.int64)
    launch = today_d - age.astype("timedelta64[D]")

    # popularity: long tail over a random order, shaped by leaf and newness
    rank = rng.permutation(n).astype(np.float64)
    pop = (rank + 1.0) ** -zipf
    pop *= rng.lognormal(0.0, 0.5, n_leaf)[leaf]
    pop[age < 30] *= 0.1
    pop /= pop.sum()

    # price and margin
    leaf_median = np.exp(rng.uniform(np.log(5.0), np.log(60.0), n_leaf))
    price = leaf_median[leaf] * rng.lognormal(0.0, 0.5, n)
    price = np.maximum(np.round(price) - 0.01, 0.99).astype(np.float32)
    margin = 0.05 + 0.6 * rng.beta(2.0, 5.0, n) + rng.uniform(-0.05, 0.05, nb)[brand]
    margin = np.clip(margin, 0.01, 0.9).astype(np.float32)

    stock = rng.geometric(1.0 / 60.0, n).astype(np.int32)
    stock[rng.random(n) < 0.07] = 0

    # tags and regions as bitsets
    tag_p = rng.uniform(0.01, 0.08, len(_TAGS))
    tags = np.zeros(n, dtype=np.uint64)
    for j, p in enumerate(tag_p):
        tags[rng.random(n) < p] |= np.uint64(1) << np.uint64(j)
    regions = np.zeros(n, dtype=np.uint32)
    limited = np.flatnonzero(rng.random(n) >= 0.7)
    k_regions = rng.integers(1, 7, len(limited))
    for r in range(len(_REGIONS)):
        take = rng.random(len(limited)) < k_regions / len(_REGIONS)
        regions[limited[take]] |= np.uint32(1 << r)
    regions[limited[regions[limited] == 0]] = np.uint32(1)

    consumable_dep = np.asarray([d in _CONSUMABLE_DEPARTMENTS for d in _DEPARTMENTS])
    consumable = rng.random(n) < np.where(consumable_dep[dep], 0.85, 0.03)

    # text: adjective colour noun brand
    n_adj, n_col, n_noun = len(_ADJECTIVES), len(_COLOURS), len(_NOUNS)
    words = np.asarray([*_ADJECTIVES, *_COLOURS, *_NOUNS, *brand_names.tolist()], dtype=str)
    tokens = np.empty((n, 4), dtype=np.int32 if len(words) > 32_000 else np.int16)
    tokens[:, 0] = rng.integers(0, n_adj, n)
    tokens[:, 1] = n_adj + rng.integers(0, n_col, n)
    tokens[:, 2] = n_adj + n_col + np.asarray(leaf_noun, dtype=np.int32)[leaf]
    tokens[:, 3] = n_adj + n_col + n_noun + brand

    ids: np.ndarray = np.arange(n, dtype=np.int64)
    if string_ids:
        ids = np.char.add("sku", ids.astype(str))
    return Catalog(
        ids=ids, price=price, margin=margin, stock=stock, category=leaf_codes_a[leaf], brand=brand, launch=launch,
        tags=tags, regions=regions, promo=rng.random(n) < 0.05, sponsored=rng.random(n) < 0.01,
        consumable=consumable, popularity=pop.astype(np.float32), text=TokenText(tokens, words),
        categories=tree, brands=brand_names, tag_names=np.asarray(_TAGS, dtype=str),
        region_names=np.asarray(_REGIONS, dtype=str), name=f"synthetic-{n}-s{seed}",
    )


def _sample(rng: np.random.Generator, p: np.ndarray, size: int) -> np.ndarray:
    """`size` draws from the discrete distribution `p` (inverse CDF; faster than rng.choice at 1M+)."""
    cdf = np.cumsum(p, dtype=np.float64)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(p) - 1)


# ------------------------------------------------------------------------------------------------
# synthetic embeddings and users
# ------------------------------------------------------------------------------------------------
def synthetic_embeddings(catalog: Catalog, dim: int = 64, seed: int = 0, *, noise: float = 0.6,
                         dtype: Any = np.float32, chunk: int = 1 << 18) -> np.ndarray:
    """Unit-length item vectors (n, dim) with the catalogue's structure: department + subcategory +
    leaf + brand directions plus item noise (`noise` scales it), so items of one leaf and brand
    cluster as learned embeddings do. Generated in chunks: memory is the output plus a chunk."""
    if dim < 2:
        raise ConfigError(f"dim must be at least 2 (got {dim})")
    rng = np.random.default_rng(seed)
    tree = catalog.categories
    node_vec = rng.standard_normal((len(tree) + 1, dim)).astype(np.float32)
    node_vec[-1] = 0.0
    scale = np.asarray([1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2][: tree.ancestors.shape[1]], dtype=np.float32)
    brand_vec = rng.standard_normal((len(catalog.brands) + 1, dim)).astype(np.float32) * 0.5
    brand_vec[-1] = 0.0
    n = len(catalog)
    out = np.empty((n, dim), dtype=dtype)
    anc = tree.ancestors
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        codes = anc[catalog.category[sl]]
        v = rng.standard_normal((sl.stop - sl.start, dim), dtype=np.float32) * noise
        for level in range(codes.shape[1]):
            v += scale[level] * node_vec[codes[:, level]]
        v += brand_vec[catalog.brand[sl]]
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[sl] = v
    return out


@dataclass(frozen=True, eq=False)
class SyntheticUsers:
    """Purchase histories of synthetic users over a catalogue, as flat arrays sorted by user then time.

    `indptr` delimits each user's rows (CSR-style); `interactions()` builds an `Interactions`
    over the catalogue's ids (this builds a `Vocabulary` of every item id: mind it at 2M items).
    """

    user: np.ndarray  # int32, user index per row
    item: np.ndarray  # int64 catalogue index per row
    timestamp: np.ndarray  # int64 seconds
    indptr: np.ndarray  # int64 (n_users + 1)
    favourite_leaf: np.ndarray  # int32 (n_users, n_favourites) category codes

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def history(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        """(items, timestamps) of user `u`, oldest first."""
        sl = slice(self.indptr[u], self.indptr[u + 1])
        return self.item[sl], self.timestamp[sl]

    def interactions(self, catalog: Catalog, *, name: str = "synthetic-users"):
        from tastemaker.data.interactions import Interactions

        users = Vocabulary(np.arange(self.n_users))
        return Interactions(user_idx=self.user.astype(np.int32), item_idx=self.item.astype(np.int32),
                            values=np.ones(len(self.user), dtype=np.float32), user_vocab=users,
                            item_vocab=catalog.vocabulary, timestamps=self.timestamp, explicit=False, name=name)

    def user_embeddings(self, item_vectors: np.ndarray, *, half_life_days: float = 60.0, seed: int = 0,
                        noise: float = 0.1) -> np.ndarray:
        """Unit-length user vectors: the recency-weighted mean of their items' vectors plus noise."""
        rng = np.random.default_rng(seed)
        now = self.timestamp.max(initial=0)
        w = np.exp2(-(now - self.timestamp) / (half_life_days * 86400.0)).astype(np.float32)
        dim = item_vectors.shape[1]
        out = np.zeros((self.n_users, dim), dtype=np.float32)
        np.add.at(out, self.user, item_vectors[self.item] * w[:, None])
        out += rng.standard_normal(out.shape, dtype=np.float32) * noise * np.linalg.norm(out, axis=1, keepdims=True)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def synthetic_users(
    catalog: Catalog,
    n_users: int,
    seed: int = 0,
    *,
    mean_history: float = 20.0,
    n_favourites: int = 3,
    affinity: float = 0.7,
    days: int = 365,
    end: str = "2026-01-01",
) -> SyntheticUsers:
    """Seeded purchase histories: each user has `n_favourites` favourite leaf categories (drawn by
    demand); a share `affinity` of their purchases comes from those leaves, the rest from the whole
    catalogue, always weighted by item popularity. History lengths are geometric with mean
    `mean_history` (at least 1); timestamps are uniform over the `days` before `end`, sorted per user.
    Items launched after a purchase time may appear (the generator does not model launch dates)."""
    if n_users < 1:
        raise ConfigError(f"n_users must be positive (got {n_users})")
    rng = np.random.default_rng(seed)
    pop = np.nan_to_num(catalog.popularity.astype(np.float64), nan=0.0)
    if pop.sum() <= 0:
        pop = np.ones(len(catalog))
    pop /= pop.sum()
    cat = catalog.category.astype(np.int64)
    order = np.lexsort((np.arange(len(catalog)), cat))
    cat_sorted = cat[order]
    cum = np.cumsum(pop[order])
    cum /= cum[-1]
    uniq_cat, start = np.unique(cat_sorted, return_index=True)
    stop = np.append(start[1:], len(cat_sorted))
    cat_mass = cum[stop - 1] - np.where(start > 0, cum[np.maximum(start - 1, 0)], 0.0)
    lengths = rng.geometric(1.0 / max(mean_history, 1.0), n_users).astype(np.int64)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    total = int(indptr[-1])
    user = np.repeat(np.arange(n_users, dtype=np.int32), lengths)
    fav = _sample(rng, cat_mass / cat_mass.sum(), n_users * n_favourites).reshape(n_users, n_favourites)
    pick_fav = rng.random(total) < affinity
    which = fav[user, rng.integers(0, n_favourites, total)]
    lo = np.where(start[which] > 0, cum[np.maximum(start[which] - 1, 0)], 0.0)
    hi = cum[stop[which] - 1]
    u = rng.random(total)
    target = np.where(pick_fav, lo + u * (hi - lo), u)
    pos = np.minimum(np.searchsorted(cum, target, side="right"), len(order) - 1)
    item = order[pos].astype(np.int64)
    end_s = int(np.datetime64(end, "s").astype(np.int64))
    ts = end_s - rng.integers(0, days * 86400, total)
    ts_order = np.lexsort((ts, user))
    return SyntheticUsers(user=user, item=item[ts_order], timestamp=ts[ts_order].astype(np.int64), indptr=indptr,
                          favourite_leaf=uniq_cat[fav].astype(np.int32))


__all__ = ["Catalog", "CategoryTree", "SyntheticUsers", "TokenText", "synthetic_catalog", "synthetic_embeddings",
           "synthetic_users"]
