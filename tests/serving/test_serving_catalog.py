"""Catalogue files: unknown launch dates are allowed, malformed ones are named."""

import numpy as np
import pytest

from tastemaker.errors import DataError
from tastemaker.serving.service import load_catalog


def test_empty_launch_cells_are_unknown(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text("item_id,title,launch,price\n1,Toy Story,1995-01-01,9.5\n2,Unknown,,3.0\n")
    table, ids, texts = load_catalog(path, ["title"])
    assert texts[0].startswith("Toy Story")
    assert ids == ["1", "2"]
    launch = table._cols["launch"][: len(ids)]
    assert launch[0] == np.datetime64("1995-01-01") and np.isnat(launch[1])


def test_a_malformed_launch_date_names_file_line_and_column(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text("item_id,title,launch\n1,A,2011-01-01\n2,B,not-a-date\n")
    with pytest.raises(DataError, match=r"catalog\.csv, line 3, column 'launch'.*not-a-date"):
        load_catalog(path, ["title"])
