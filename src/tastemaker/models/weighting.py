"""The user × item matrix that implicit-feedback models learn from: which events count, and how much.

Shared by the top-N models (ALS, BPR, item CF, RP3beta, SLIM) so that `threshold` and `weighting`
mean the same thing in each of them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

Weighting = Literal["binary", "value", "log"]


def interaction_matrix(matrix: sp.spmatrix, *, threshold: float | None = None,
                       weighting: Weighting = "binary") -> sp.csr_matrix:
    """X: the float64 CSR matrix a top-N model learns from.

    - `threshold`: keep only entries with value ≥ threshold (e.g. 4 to keep liked movies); None
      keeps every entry.
    - `weighting`: ``binary`` sets each kept entry to 1; ``value`` uses the value and ``log`` uses
      log(1 + value), both divided by their mean over the kept entries so that the entries
      average 1 whatever the scale (ratings, counts, 0/1). Entries ≤ 0 are dropped under ``value``
      and ``log`` (they carry no positive preference).

    The result has no explicit zeros; users and items with no kept entry have empty rows/columns.
    """
    x = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    x.sum_duplicates()
    if threshold is not None:
        x.data[x.data < threshold] = 0.0
    if weighting == "binary":
        x.data[x.data != 0] = 1.0
    elif weighting in ("value", "log"):
        x.data[x.data < 0] = 0.0
        if weighting == "log":
            x.data = np.log1p(x.data)
    else:
        raise ValueError(f"unknown weighting {weighting!r}; use 'binary', 'value' or 'log'")
    x.eliminate_zeros()
    if weighting != "binary" and x.nnz:
        x.data /= x.data.mean()
    return x


__all__ = ["Weighting", "interaction_matrix"]
