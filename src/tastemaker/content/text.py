"""Item text from side features: the fields a content encoder reads, joined into one string per item."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tastemaker.data.features import SideFeatures
from tastemaker.data.vocabulary import Vocabulary
from tastemaker.errors import DataError


def item_texts(features: SideFeatures | None, vocab: Vocabulary, fields: Sequence[str]) -> list[str]:
    """One text per id of `vocab`: the `fields` of its features joined by ". ".

    A field is a scalar column of `features.frame` (title, year, description, …; whole-number
    floats are written without ".0") or a set-valued attribute of `features.multi_hot` (genres,
    tags; its labels joined by ", "). Missing values are skipped; an id without features gets "".
    Fields the features lack are skipped too, but at least one must exist.
    """
    if features is None:
        raise DataError("content models need item text, but the data has no item features",
                        hint="load a data set with item features (e.g. load_dataset('ml-100k')) or attach "
                             "a SideFeatures table with a text column")
    fields = list(fields)
    present = [f for f in fields if f in features.frame.columns or f in features.multi_hot]
    if not present:
        raise DataError(f"none of the text fields {fields} is an item feature",
                        hint=f"choose among {features.columns}")
    parts: list[np.ndarray] = []
    for name in present:
        if name in features.multi_hot:
            labels, matrix = features.multi_hot_matrix(name, vocab)
            label_arr = np.asarray(labels, dtype=object)
            parts.append(np.array([", ".join(label_arr[row]) for row in matrix], dtype=object))
        else:
            parts.append(np.array([_scalar_text(v) for v in features.column_values(name, vocab, default=None)],
                                  dtype=object))
    return [". ".join(p for p in row if p) for row in zip(*parts, strict=True)]


def _scalar_text(value) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return ""
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, pd.Timestamp | np.datetime64):
        return str(pd.Timestamp(value).date())
    return str(value).strip()


__all__ = ["item_texts"]
