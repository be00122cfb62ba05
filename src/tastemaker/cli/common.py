"""What the CLI's commands share: consoles, progress bars, data-source options."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

# Wide tables stay readable in logs and pipes, where rich would otherwise assume 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)



def progress(ctx_obj: dict[str, Any] | None):
    """Progress bars on unless --quiet."""
    from tastemaker.progress import progress_bars

    return progress_bars(not (ctx_obj or {}).get("quiet", False))


def write_json(path: Path | None, doc: dict[str, Any]) -> None:
    """Write a result document (bench/evaluation JSON) when a path was given."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=float))
    console.print(f"wrote {path}")


def typed_id(vocab, raw: str):
    """A command-line id as the vocabulary's type (ints for integer vocabularies)."""
    return int(raw) if vocab.is_integer and raw.lstrip("-").isdigit() else raw


def data_options(fn):
    """--dataset/--path for named data sets, or --data with column options for the generic loader."""
    options = [
        click.option("--dataset", default=None, help="Named data set, e.g. ml-100k (see `tastemaker data list`)."),
        click.option("--path", "dataset_path", type=click.Path(path_type=Path), default=None,
                     help="Where the named data set lives (folder or zip); default: $TASTEMAKER_DATA_DIR or download."),
        click.option("--data", "data_file", type=click.Path(path_type=Path), default=None,
                     help="Any CSV/TSV/Parquet file of interactions (use the column options)."),
        click.option("--user-col", default="user", show_default=True),
        click.option("--item-col", default="item", show_default=True),
        click.option("--value-col", default=None, help="Rating/value column; omit for implicit data."),
        click.option("--time-col", default=None, help="Timestamp column (seconds)."),
        click.option("--sep", default=None, help="Field separator (default: from the extension)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def load_source(dataset: str | None, dataset_path: Path | None, data_file: Path | None, user_col: str,
                item_col: str, value_col: str | None, time_col: str | None, sep: str | None):
    """A named `Dataset` or, with --data, `Interactions` from the generic loader."""
    from tastemaker.data import load_dataset, load_interactions

    if data_file is not None:
        if dataset is not None:
            raise click.UsageError("give either --dataset or --data, not both")
        return load_interactions(data_file, user=user_col, item=item_col, value=value_col, timestamp=time_col,
                                 sep=sep)
    return load_dataset(dataset or "ml-100k", dataset_path)


def interactions_of(source):
    from tastemaker.data import Dataset

    return source.interactions if isinstance(source, Dataset) else source


