"""interaction_matrix: which events count and how much, against an entry-by-entry reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from tastemaker.models.weighting import interaction_matrix


def reference(dense: np.ndarray, threshold, weighting) -> np.ndarray:
    kept = {}
    for (u, i), v in np.ndenumerate(dense):
        if v == 0 or (threshold is not None and v < threshold):
            continue
        if weighting == "binary":
            kept[u, i] = 1.0
        elif v > 0:
            kept[u, i] = v if weighting == "value" else math.log(1.0 + v)
    out = np.zeros_like(dense, dtype=float)
    mean = sum(kept.values()) / len(kept) if kept and weighting != "binary" else 1.0
    for (u, i), v in kept.items():
        out[u, i] = v / mean
    return out


DENSE = np.array([[5, 0, 3, 1], [0, 4, 0, 0], [2, 0, 0, 4], [0, 0, 0, 0], [0, -1, 5, 0]], dtype=float)


@pytest.mark.parametrize("weighting", ["binary", "value", "log"])
@pytest.mark.parametrize("threshold", [None, 3.0])
def test_matches_reference(weighting, threshold):
    x = interaction_matrix(sp.csr_matrix(DENSE), threshold=threshold, weighting=weighting)
    expected = reference(DENSE, threshold, weighting)
    np.testing.assert_allclose(x.toarray(), expected, atol=1e-12)
    assert x.dtype == np.float64 and np.all(x.data != 0)
    if weighting != "binary":
        assert x.data.mean() == pytest.approx(1.0)


def test_does_not_modify_input_and_sums_duplicates():
    m = sp.csr_matrix((np.array([2.0, 3.0, 1.0]), (np.array([0, 0, 1]), np.array([1, 1, 0]))), shape=(2, 2))
    before = m.toarray().copy()
    x = interaction_matrix(m, weighting="value")
    np.testing.assert_array_equal(m.toarray(), before)
    np.testing.assert_allclose(x.toarray(), np.array([[0.0, 5.0], [1.0, 0.0]]) / 3.0)


def test_unknown_weighting():
    with pytest.raises(ValueError, match="weighting"):
        interaction_matrix(sp.csr_matrix(DENSE), weighting="tf")
