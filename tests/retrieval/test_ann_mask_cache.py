"""Filtered search keeps the count and bitmap of a fixed (read-only) mask; writable masks are not kept."""

import numpy as np

from tastemaker.retrieval import default_index


def test_fixed_mask_is_packed_once_and_gives_the_same_results():
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(3000, 16)).astype(np.float32)
    index = default_index().build(vecs)
    allowed = rng.random(3000) < 0.6
    fixed = allowed.copy()
    fixed.setflags(write=False)
    q = rng.normal(size=(1, 16)).astype(np.float32)
    want = index.search(q, 50, allowed=allowed)
    got = index.search(q, 50, allowed=fixed)
    np.testing.assert_array_equal(got[0], want[0])
    assert allowed[got[0][got[0] >= 0]].all()
    entry = index._mask_entry(fixed)
    assert entry[1] == int(allowed.sum())
    assert index._packed_mask(fixed) is index._packed_mask(fixed)  # the bitmap too
    assert index._mask_entry(fixed) is entry  # kept, not recomputed
    # a writable mask is counted afresh every time: changing it changes the results
    allowed[:] = False
    allowed[:100] = True
    lab = index.search(q, 50, allowed=allowed)[0]
    assert ((lab >= 0) & (lab < 100) | (lab < 0)).all()
