"""`FeatureEncoder`: side features (`SideFeatures`) → a sparse feature matrix aligned to a `Vocabulary`.

One column block per feature, in a fixed order: first the identity block (one column per id known at
fit time, as LightFM's identity features), then one block per column spec:

- ``"multi_hot"``: a set-valued attribute (genres, tags) — one column per label;
- ``"categorical"``: one-hot, values seen fewer than `min_count` times go to an ``<other>`` column
  (as do values never seen at fit time);
- ``"bucket:W"`` (a width, e.g. ``bucket:10`` turns years into decades), ``"bucket:E1,E2,…"`` (edges,
  e.g. age groups) or ``"quantile:N"`` (N equal-count buckets fitted on the data): numbers to
  bucket labels, then one-hot as a categorical;
- ``"prefix:N"``: the first N characters (a zip code's region), then one-hot as a categorical;
- ``"text"``: TF-IDF of the words (letters only, English stop words dropped, words in at least
  `text_min_df` rows), L2-normalised per row: `tastemaker.content.TfidfEncoder` in float64;
- ``"cross"`` under a name ``"a*b"``: the combinations of the values of blocks ``a`` and ``b``
  (categorical, bucket, quantile or prefix blocks listed before it), one-hot as a categorical —
  e.g. ``{"gender": "categorical", "age": "bucket:18,25,35", "gender*age": "cross"}``.

Rows of ids that have no features, and values missing in a row, give all-zero blocks. Ids never
seen at fit time get no identity column but are encoded from their features like any other. The
fitted state (`to_state()`) is plain JSON data — category lists, text vocabulary and idf weights —
so a model can save it in its manifest and `from_state()` rebuilds the same encoder.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tastemaker.data.features import SideFeatures
from tastemaker.data.vocabulary import Vocabulary
from tastemaker.errors import ArtifactError, ConfigError

if TYPE_CHECKING:
    from tastemaker.content.encoders import TfidfEncoder

OTHER = "<other>"
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"
"""Words of at least two letters: years, numbers and one-letter tokens are not title words."""

AGE_EDGES = (18, 25, 35, 45, 50, 56)
"""The age groups MovieLens 1M publishes (under 18, 18–24, …, 56+)."""

_SPEC = re.compile(r"^(multi_hot|categorical|text|cross|bucket:[^:]+|quantile:\d+|prefix:\d+)$")
_STATE_VERSION = 1


def infer_columns(features: SideFeatures | None) -> dict[str, str]:
    """A column → spec mapping for `features` that suits MovieLens-like tables.

    Multi-hot sets are used as they are; ``year`` becomes 20 equal-count buckets (on MovieLens one
    per year for the 1990s, wider before: items nobody rated rank better on validation data with
    years than with decades), ``age`` the MovieLens age groups, other numbers quintiles; a zip or
    postal code its first two characters; ``title`` / ``name`` TF-IDF words; other text columns
    with few distinct values one-hot categoricals. Columns that are (nearly) unique per row (urls,
    ids), dates, and scalar columns repeating a multi-hot set of the same name are left out.
    """
    if features is None:
        return {}
    spec: dict[str, str] = {name: "multi_hot" for name in features.multi_hot}
    frame = features.frame
    n = max(len(frame), 1)
    for column in frame.columns:
        name = str(column)
        lower = name.lower()
        series = frame[column]
        if name in spec:
            continue
        if pd.api.types.is_datetime64_any_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
            continue
        if pd.api.types.is_numeric_dtype(series.dtype):
            if lower == "year":
                spec[name] = "quantile:20"
            elif lower == "age":
                spec[name] = "bucket:" + ",".join(map(str, AGE_EDGES))
            elif series.nunique() > 1:
                spec[name] = "quantile:5"
            continue
        if lower in ("title", "name"):
            spec[name] = "text"
        elif "zip" in lower or "postal" in lower or "postcode" in lower:
            spec[name] = "prefix:2"
        elif series.nunique() <= max(50, 0.05 * n):
            spec[name] = "categorical"
    return spec


class FeatureEncoder:
    """Side features → sparse (ids × features) matrix; see the module docstring for the specs.

    `columns` maps column (or multi-hot set) names to specs; None infers them with
    `infer_columns` at `fit`. `identity` adds one column per id known at fit time.
    `normalize` scales each encoded row to unit ``"l1"`` or ``"l2"`` norm (None: raw values,
    which is 1 per active one-hot/multi-hot column).
    """

    def __init__(
        self,
        columns: Mapping[str, str] | None = None,
        *,
        identity: bool = True,
        min_count: int = 5,
        text_min_df: int = 2,
        text_max_features: int = 5000,
        normalize: str | None = None,
    ) -> None:
        if columns is not None:
            for name, spec in columns.items():
                _check_spec(name, spec)
        if normalize not in (None, "l1", "l2"):
            raise ConfigError(f"normalize={normalize!r} must be None, 'l1' or 'l2'")
        if min_count < 1 or text_min_df < 1 or text_max_features < 1:
            raise ConfigError("min_count, text_min_df and text_max_features must be at least 1")
        self.columns = None if columns is None else dict(columns)
        self.identity = bool(identity)
        self.min_count = int(min_count)
        self.text_min_df = int(text_min_df)
        self.text_max_features = int(text_max_features)
        self.normalize = normalize
        self._fitted = False
        self._text_encoders: dict[str, TfidfEncoder] = {}  # text block name → its fitted encoder

    def __repr__(self) -> str:
        size = f", {self.n_features} features" if self._fitted else ""
        return f"FeatureEncoder(columns={self.columns!r}, identity={self.identity}{size})"

    # --- fitting ------------------------------------------------------------------------------
    def fit(self, features: SideFeatures | None, vocab: Vocabulary, *, identity_ids: Any = None) -> FeatureEncoder:
        """Learn categories, buckets and the text vocabulary from the rows of `vocab`'s ids.

        `identity_ids` (default: every id of `vocab`) are the ids that get an identity column —
        a model passes the ids it has training data for, so that ids without data are
        represented by their features alone.
        """
        columns = infer_columns(features) if self.columns is None else dict(self.columns)
        if features is None and columns:
            raise ConfigError(f"feature columns {sorted(columns)} were asked for but there are no side features: "
                              "load the data with its item/user features, or pass columns={}")
        blocks: list[dict[str, Any]] = []
        self._blocks = blocks  # crosses look up the blocks fitted before them
        self._text_encoders = {}
        for name, spec in columns.items():
            blocks.append(self._fit_block(features, vocab, name, spec))
        ids = vocab.ids if identity_ids is None else np.asarray(identity_ids)
        self._identity_vocab = Vocabulary(ids if self.identity else ids[:0])
        self._blocks = blocks
        self.columns = columns
        self._fitted = True
        return self

    def _fit_block(self, features: SideFeatures, vocab: Vocabulary, name: str, spec: str) -> dict[str, Any]:
        if spec == "multi_hot":
            if name not in features.multi_hot:
                raise ConfigError(f"no multi-hot feature {name!r}; the side features have "
                                  f"{sorted(features.multi_hot) or 'none'}")
            labels, _ = features.multi_hot[name]
            return {"name": name, "spec": spec, "labels": [str(x) for x in labels]}
        if spec == "cross":
            parts = name.split("*")
            known = {b["name"]: b["spec"] for b in self._blocks}
            bad = [p for p in parts if known.get(p) in (None, "multi_hot", "text", "cross")]
            if len(parts) < 2 or bad:
                raise ConfigError(f"cross feature {name!r} must name two or more categorical, bucket, quantile or "
                                  f"prefix blocks listed before it, joined by '*' (not {bad or parts})")
        elif name not in features.frame.columns:
            raise ConfigError(f"no feature column {name!r}; the side features have {features.columns}: "
                              "fix the name in the model's feature columns")
        if spec == "text":
            tfidf = self._tfidf()
            try:
                tfidf.fit([t for t in _texts(features, vocab, name) if t])
            except ConfigError:  # no text, or no word survives min_df / stop words: an empty block
                return {"name": name, "spec": spec, "labels": [], "idf": []}
            arrays, _ = tfidf.get_state()
            return {"name": name, "spec": spec, "labels": arrays["terms"].tolist(), "idf": arrays["idf"].tolist()}
        block: dict[str, Any] = {"name": name, "spec": spec}
        if spec.startswith("quantile:"):
            values = _numbers(features, vocab, name)
            values = values[np.isfinite(values)]
            q = int(spec.split(":")[1])
            edges = np.unique(np.quantile(values, np.linspace(0, 1, q + 1)[1:-1])) if len(values) else []
            block["edges"] = [float(e) for e in edges]
        keys = self._keys(block, features, vocab)
        present = keys[keys != None]  # noqa: E711 - elementwise on an object array
        labels, counts = np.unique(present.astype(str), return_counts=True) if len(present) else ([], [])
        kept = sorted(str(v) for v, c in zip(labels, counts, strict=True) if c >= self.min_count)
        block["labels"] = [*_order_labels(kept, block), OTHER]
        return block

    def _keys(self, block: dict[str, Any], features: SideFeatures, vocab: Vocabulary) -> np.ndarray:
        """The category key of each row of `vocab` (None where missing), before the rare-value cut."""
        name, spec = block["name"], block["spec"]
        if spec == "cross":
            by_name = {b["name"]: b for b in self._blocks}
            parts = [self._keys(by_name[p], features, vocab) for p in name.split("*")]
            return np.array([None if any(k is None for k in ks) else "&".join(map(str, ks)) for ks in zip(*parts)],
                            dtype=object)
        if spec == "categorical":
            return _strings(features, vocab, name)
        if spec.startswith("prefix:"):
            n = int(spec.split(":")[1])
            return np.array([None if s is None else s[:n] for s in _strings(features, vocab, name)], dtype=object)
        values = _numbers(features, vocab, name)
        if spec.startswith("bucket:") and "," not in spec:
            width = float(spec.split(":")[1])
            return np.array([None if not math.isfinite(v) else _fmt(math.floor(v / width) * width) + "+"
                             for v in values], dtype=object)
        edges = _edges(block)
        return np.array([None if not math.isfinite(v) else _interval(edges, v) for v in values], dtype=object)

    # --- encoding -----------------------------------------------------------------------------
    def transform(self, features: SideFeatures | None, vocab: Vocabulary) -> sp.csr_matrix:
        """The (len(vocab), n_features) float64 CSR matrix of `vocab`'s ids."""
        self._check_fitted()
        n = len(vocab)
        mats = []
        if self.identity:
            cols = self._identity_vocab.indices(vocab.ids)
            ok = cols >= 0
            mats.append(sp.csr_matrix((np.ones(ok.sum()), (np.flatnonzero(ok), cols[ok])),
                                      shape=(n, len(self._identity_vocab))))
        for block in self._blocks:
            mats.append(self._transform_block(block, features, vocab))
        out = sp.hstack(mats, format="csr", dtype=np.float64) if mats else sp.csr_matrix((n, 0))
        out.sum_duplicates()
        out.sort_indices()
        if self.normalize is not None and out.nnz:
            from sklearn.preprocessing import normalize

            out = normalize(out, norm=self.normalize, copy=False)
        return out.tocsr()

    def _transform_block(self, block: dict[str, Any], features: SideFeatures | None, vocab: Vocabulary):
        n, labels, spec = len(vocab), block["labels"], block["spec"]
        if features is None:
            return sp.csr_matrix((n, len(labels)))
        if spec == "multi_hot":
            if block["name"] not in features.multi_hot:
                return sp.csr_matrix((n, len(labels)))
            have, matrix = features.multi_hot_matrix(block["name"], vocab)
            col = {label: j for j, label in enumerate(labels)}
            src = [j for j, label in enumerate(have) if str(label) in col]
            dst = [col[str(have[j])] for j in src]
            rows, hits = np.nonzero(matrix[:, src]) if src else (np.empty(0, int), np.empty(0, int))
            return sp.csr_matrix((np.ones(len(rows)), (rows, np.asarray(dst, dtype=np.int64)[hits])),
                                 shape=(n, len(labels)))
        if any(part not in features.frame.columns for part in block["name"].split("*")):
            return sp.csr_matrix((n, len(labels)))
        if spec == "text":
            if not labels:
                return sp.csr_matrix((n, 0))
            return self._text_encoder(block).encode(_texts(features, vocab, block["name"]))
        keys = self._keys(block, features, vocab)
        col = {label: j for j, label in enumerate(labels)}
        other = col[OTHER]
        rows = np.flatnonzero(keys != None)  # noqa: E711
        cols = np.array([col.get(str(keys[r]), other) for r in rows], dtype=np.int64)
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(labels)))

    def _tfidf(self) -> TfidfEncoder:
        """An unfitted `TfidfEncoder` with the settings of the ``"text"`` blocks."""
        from tastemaker.content.encoders import TfidfEncoder  # here: content imports models, data must not

        return TfidfEncoder(min_df=self.text_min_df, max_features=self.text_max_features, sublinear_tf=False,
                            stop_words="english", token_pattern=TOKEN_PATTERN, strip_accents=None, dtype="float64")

    def _text_encoder(self, block: dict[str, Any]) -> TfidfEncoder:
        """The fitted `TfidfEncoder` of a ``"text"`` block, rebuilt from its terms and idf weights (cached)."""
        name = block["name"]
        if name not in self._text_encoders:
            settings = self._tfidf()
            arrays = {"terms": np.asarray(block["labels"], dtype=str), "idf": np.asarray(block["idf"], dtype=float)}
            self._text_encoders[name] = settings.from_state(arrays, {"kind": settings.kind,
                                                                     "settings": settings.settings})
        return self._text_encoders[name]

    def fit_transform(self, features: SideFeatures | None, vocab: Vocabulary, *,
                      identity_ids: Any = None) -> sp.csr_matrix:
        """`fit` then `transform` on the same ids."""
        return self.fit(features, vocab, identity_ids=identity_ids).transform(features, vocab)

    # --- description --------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not self._fitted:
            from tastemaker.errors import NotFittedError

            raise NotFittedError("FeatureEncoder is not fitted: call fit(features, vocab) or from_state(state)")

    @property
    def identity_size(self) -> int:
        """Number of identity columns (they come first)."""
        self._check_fitted()
        return len(self._identity_vocab)

    @property
    def identity_ids(self) -> np.ndarray:
        """Ids with an identity column, in column order."""
        self._check_fitted()
        return self._identity_vocab.ids

    @property
    def blocks(self) -> list[tuple[str, str, int, int]]:
        """(name, spec, first column, end column) of every block, identity first."""
        self._check_fitted()
        out, start = [], 0
        if self.identity:
            out.append(("identity", "identity", 0, self.identity_size))
            start = self.identity_size
        for block in self._blocks:
            out.append((block["name"], block["spec"], start, start + len(block["labels"])))
            start += len(block["labels"])
        return out

    @property
    def n_features(self) -> int:
        self._check_fitted()
        return self.blocks[-1][3] if self.blocks else 0

    @property
    def feature_names(self) -> list[str]:
        """One readable name per column: ``identity=42``, ``genres=Drama``, ``year=1990+``, ``title:star``."""
        self._check_fitted()
        names = [f"identity={x}" for x in self._identity_vocab.ids.tolist()]
        for block in self._blocks:
            sep = ":" if block["spec"] == "text" else "="
            names += [f"{block['name']}{sep}{label}" for label in block["labels"]]
        return names

    # --- plain-data round trip ----------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """The fitted encoder as JSON-able data (lists, strings, numbers)."""
        self._check_fitted()
        return {
            "version": _STATE_VERSION,
            "columns": dict(self.columns),
            "identity": self.identity,
            "identity_ids": self._identity_vocab.to_json(),
            "min_count": self.min_count,
            "text_min_df": self.text_min_df,
            "text_max_features": self.text_max_features,
            "normalize": self.normalize,
            "blocks": [dict(b) for b in self._blocks],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FeatureEncoder:
        """Rebuild a fitted encoder from `to_state()` output."""
        try:
            if state["version"] != _STATE_VERSION:
                raise ArtifactError(f"feature encoder state version {state['version']!r} is not "
                                    f"{_STATE_VERSION}; retrain the model with this tastemaker version")
            enc = cls(state["columns"], identity=state["identity"], min_count=state["min_count"],
                      text_min_df=state["text_min_df"], text_max_features=state["text_max_features"],
                      normalize=state["normalize"])
            enc._identity_vocab = Vocabulary.from_json(state["identity_ids"])
            enc._blocks = [dict(b) for b in state["blocks"]]
        except (KeyError, TypeError) as exc:
            raise ArtifactError(f"feature encoder state lacks or mangles {exc}") from None
        enc._fitted = True
        return enc


# --- helpers -------------------------------------------------------------------------------------

def _check_spec(name: str, spec: str) -> None:
    if not isinstance(spec, str) or not _SPEC.match(spec):
        raise ConfigError(f"feature column {name!r}: unknown spec {spec!r}; use 'multi_hot', 'categorical', "
                          "'text', 'bucket:<width>', 'bucket:<e1>,<e2>,…', 'quantile:<n>', 'prefix:<n>' or "
                          "(under a name 'a*b') 'cross'")
    if spec.startswith("bucket:"):
        try:
            parts = [float(x) for x in spec.split(":")[1].split(",")]
        except ValueError:
            raise ConfigError(f"feature column {name!r}: {spec!r} needs numbers after 'bucket:'") from None
        if len(parts) == 1 and parts[0] <= 0:
            raise ConfigError(f"feature column {name!r}: bucket width must be positive")
        if len(parts) > 1 and any(b <= a for a, b in itertools.pairwise(parts)):
            raise ConfigError(f"feature column {name!r}: bucket edges must increase")


def _rows(features: SideFeatures, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    pos = features.positions(vocab)
    return pos, pos >= 0


def _strings(features: SideFeatures, vocab: Vocabulary, name: str) -> np.ndarray:
    pos, ok = _rows(features, vocab)
    col = features.frame[name]
    values = col.astype("string").to_numpy(dtype=object, na_value=None)
    out = np.full(len(vocab), None, dtype=object)
    out[ok] = values[pos[ok]]
    out[np.array([v is not None and not str(v).strip() for v in out], dtype=bool)] = None
    return np.array([None if v is None else str(v).strip() for v in out], dtype=object)


def _texts(features: SideFeatures, vocab: Vocabulary, name: str) -> list[str]:
    return ["" if s is None else s for s in _strings(features, vocab, name)]


def _numbers(features: SideFeatures, vocab: Vocabulary, name: str) -> np.ndarray:
    pos, ok = _rows(features, vocab)
    values = pd.to_numeric(features.frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    out = np.full(len(vocab), np.nan)
    out[ok] = values[pos[ok]]
    return out


def _edges(block: dict[str, Any]) -> list[float]:
    if "edges" in block:
        return list(block["edges"])
    return [float(x) for x in block["spec"].split(":")[1].split(",")]


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _interval(edges: Sequence[float], v: float) -> str:
    j = int(np.searchsorted(edges, v, side="right"))
    if not edges:
        return "all"
    if j == 0:
        return f"<{_fmt(edges[0])}"
    if j == len(edges):
        return f">={_fmt(edges[-1])}"
    return f"{_fmt(edges[j - 1])}-{_fmt(edges[j])}"


def _order_labels(labels: list[str], block: dict[str, Any]) -> list[str]:
    """Numeric buckets in numeric order (the rest alphabetically)."""
    spec = block["spec"]
    if spec.startswith("bucket:") and "," not in spec:
        return sorted(labels, key=lambda s: float(s[:-1]))
    if spec.startswith(("bucket:", "quantile:")):
        edges = _edges(block)
        order = {_interval(edges, v): j for j, v in enumerate([-math.inf, *edges])}
        return sorted(labels, key=lambda s: order.get(s, len(order)))
    return labels


__all__ = ["AGE_EDGES", "OTHER", "FeatureEncoder", "infer_columns"]
