"""`Dataset`: a loaded data set with its official splits, and `load_dataset` by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tastemaker.data.interactions import Interactions
from tastemaker.data.splits import Split
from tastemaker.errors import ConfigError, DataError

DATASETS: tuple[str, ...] = ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest", "ml-latest-small")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A data set: all its events (`interactions`) and the official splits it ships with.

    `root` is the folder or archive it was read from (None for data built in memory). `splits`
    names the official train/test splits available (for MovieLens 100K: ``u1`` … ``u5``, ``ua``,
    ``ub``); `split(name)` reads one lazily. Both halves of a split share the data set's
    vocabularies and side features, so indices mean the same thing everywhere.
    """

    name: str
    interactions: Interactions
    root: Path | None = None
    splits: tuple[str, ...] = ()
    split_reader: Callable[[str], Split] | None = field(default=None, repr=False)
    _cache: dict[str, Split] = field(default_factory=dict, repr=False)

    def split(self, name: str) -> Split:
        """The official split `name` as ``Split(train, test)`` (read once, then cached)."""
        if name not in self.splits or self.split_reader is None:
            available = ", ".join(map(repr, self.splits)) if self.splits else "none"
            raise DataError(
                f"{self.name} has no official split {name!r}; available: {available}",
                path=self.root,
                hint="pick one of those, or make your own with tastemaker.data.splits "
                "(random_split, user_holdout, temporal_split, …)",
            )
        if name not in self._cache:
            self._cache[name] = self.split_reader(name)
        return self._cache[name]

    def describe(self) -> dict[str, Any]:
        """Counts, density, rating histogram of all events (see `Interactions.describe`)."""
        return self.interactions.describe()

    def __repr__(self) -> str:
        where = f", root={str(self.root)!r}" if self.root is not None else ""
        return f"Dataset({self.name!r}: {self.interactions!r}, splits={list(self.splits)}{where})"


def load_dataset(name: str, path: str | Path | None = None, **kwargs: Any) -> Dataset:
    """Load a named data set (one of `DATASETS`), from `path` or the data/cache folders.

    Keyword arguments go to the loader (e.g. `load_movielens`'s ``download=``, ``duplicates=``).
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}")
    from tastemaker.data.movielens import load_movielens

    return load_movielens(name.removeprefix("ml-"), path, **kwargs)
