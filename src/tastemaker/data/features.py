"""Side features of items (genres, year, title, …) and users (age, gender, occupation, zip)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tastemaker.data.vocabulary import Vocabulary


@dataclass(frozen=True, eq=False)
class SideFeatures:
    """A table of per-entity attributes, indexed by external id.

    `frame` holds one row per entity with scalar columns (title, year, age, …). `multi_hot` holds
    set-valued attributes (genres, tags) as a boolean matrix with one row per `frame` row and one
    column per label. Use `align(vocabulary)` to line rows up with a model's index space.
    """

    frame: pd.DataFrame
    multi_hot: Mapping[str, tuple[tuple[str, ...], np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, (labels, matrix) in self.multi_hot.items():
            if matrix.shape != (len(self.frame), len(labels)):
                raise ValueError(
                    f"multi-hot feature {name!r} has shape {matrix.shape}, expected {(len(self.frame), len(labels))}"
                )

    @property
    def ids(self) -> Vocabulary:
        return Vocabulary(self.frame.index.to_numpy())

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def columns(self) -> list[str]:
        return [*self.frame.columns, *self.multi_hot]

    def positions(self, vocab: Vocabulary) -> np.ndarray:
        """Row of each vocabulary id in this table (-1 where the id has no features)."""
        return self.ids.indices(vocab.ids)

    def value(self, entity_id, column: str, default=None):
        """One attribute of one entity, `default` when either is unknown."""
        try:
            out = self.frame.at[entity_id, column]
        except KeyError:
            return default
        return default if out is None or (isinstance(out, float) and np.isnan(out)) else out

    def labels_of(self, entity_id, name: str) -> list[str]:
        """Set-valued attribute (e.g. genres) of one entity as a list of labels."""
        labels, matrix = self.multi_hot[name]
        row = self.ids.index(entity_id)
        if row < 0:
            return []
        return [labels[j] for j in np.flatnonzero(matrix[row])]

    def multi_hot_matrix(self, name: str, vocab: Vocabulary) -> tuple[tuple[str, ...], np.ndarray]:
        """The multi-hot matrix of `name` aligned to `vocab` (all-zero rows for unknown ids)."""
        labels, matrix = self.multi_hot[name]
        pos = self.positions(vocab)
        out = np.zeros((len(vocab), len(labels)), dtype=bool)
        ok = pos >= 0
        out[ok] = matrix[pos[ok]]
        return labels, out

    def feature_matrix(self, vocab: Vocabulary, names: list[str] | None = None) -> np.ndarray:
        """Dense float matrix of the multi-hot features (all by default) aligned to `vocab`.

        This is what intra-list diversity and content similarity use.
        """
        names = list(self.multi_hot) if names is None else names
        if not names:
            return np.zeros((len(vocab), 0), dtype=np.float32)
        blocks = [self.multi_hot_matrix(n, vocab)[1] for n in names]
        return np.hstack(blocks).astype(np.float32)

    def column_values(self, column: str, vocab: Vocabulary, default=None) -> np.ndarray:
        """A scalar column aligned to `vocab` as an object array (`default` for unknown ids)."""
        pos = self.positions(vocab)
        values = self.frame[column].to_numpy(dtype=object)
        out = np.full(len(vocab), default, dtype=object)
        ok = pos >= 0
        out[ok] = values[pos[ok]]
        return out
