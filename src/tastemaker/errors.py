"""The exception and warning hierarchy of tastemaker.

Every error names what was wrong and what to do about it. This module imports nothing else
from tastemaker so that every other module can import it.
"""

from __future__ import annotations

from pathlib import Path


class TastemakerError(Exception):
    """Base class of every error tastemaker raises on purpose."""


class DataError(TastemakerError, ValueError):
    """Input data is unusable: the message names the file, line, column and a fix.

    Attributes keep the location so callers (the CLI, the service) can show it in their own way.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: str | int | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}" if isinstance(self.column, str) else f"column {self.column}")
        text = (", ".join(where) + ": " if where else "") + self.problem
        if self.hint:
            text += f" — {self.hint}"
        return text


class ChecksumError(DataError):
    """A downloaded or supplied archive does not match its published checksum."""


class ConfigError(TastemakerError, ValueError):
    """A configuration value or file is invalid; the message names the key and the allowed values."""


class NotFittedError(TastemakerError, RuntimeError):
    """A model was asked to score before `fit` (or `load`)."""


class ArtifactError(TastemakerError):
    """A saved model bundle is missing, incomplete, of another format version or corrupt."""


class NotSupportedError(TastemakerError, TypeError):
    """The model does not offer this operation (e.g. rating prediction on a top-N model)."""


class DependencyError(TastemakerError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class TastemakerWarning(UserWarning):
    """Base class of tastemaker's warnings."""


class DataWarning(TastemakerWarning):
    """Input was accepted but something in it deserves a look (e.g. dropped duplicates)."""


def require(module: str, extra: str):
    """Import an optional dependency or raise a `DependencyError` that names the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DependencyError(
            f"{module!r} is not installed; install it with: pip install 'tastemaker[{extra}]'"
        ) from exc
