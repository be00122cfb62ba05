"""Progress bars for long work, off unless a front end (the CLI) turns them on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_ENABLED = False


@contextlib.contextmanager
def progress_bars(enabled: bool = True) -> Iterator[None]:
    """Show progress bars (on stderr) for work run inside this block."""
    global _ENABLED
    before, _ENABLED = _ENABLED, enabled
    try:
        yield
    finally:
        _ENABLED = before


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterable[T]:
    """Iterate `items`, with a progress bar when bars are enabled."""
    if not _ENABLED:
        yield from items
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        yield from bar.track(items, total=total, description=description)
