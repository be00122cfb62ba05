"""`RetrievalSource(allowed=...)`: hard constraints pushed into a retrieval source's (filtered) search."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.data.catalog import Catalog
from tastemaker.data.vocabulary import Vocabulary
from tastemaker.errors import DataError
from tastemaker.pipeline import PipelineRequest, RetrievalSource
from tastemaker.retrieval import AnnSource, ExactIndex, FaissIndex


def _parts(n: int = 400, dim: int = 8):
    rng = np.random.default_rng(0)
    items = rng.normal(size=(n, dim)).astype(np.float32)
    users = rng.normal(size=(3, dim)).astype(np.float32)
    catalog = Catalog.build([f"SKU-{i}" for i in range(n)], stock=rng.integers(0, 3, n), price=rng.uniform(1, 9, n))
    return items, users, catalog


@pytest.mark.parametrize("index", [ExactIndex(exact_below=0), FaissIndex("ivf", nlist=8, nprobe=8, exact_below=0)],
                         ids=["exact", "faiss-ivf"])
def test_a_static_mask_keeps_disallowed_items_out_of_the_candidates(index):
    items, users, catalog = _parts()
    index.build(items)
    ann = AnnSource(index, user_vectors=users, name="ann")
    allowed = catalog.mask(in_stock=True, price_max=6.0)
    free = RetrievalSource(ann, catalog, user_vocab=Vocabulary(["U-0", "U-1", "U-2"]))
    held = RetrievalSource(ann, catalog, user_vocab=Vocabulary(["U-0", "U-1", "U-2"]), allowed=allowed)
    req = PipelineRequest(user_id="U-1")
    unconstrained = free.retrieve(req, 30).ids
    got = held.retrieve(req, 30).ids
    assert not allowed[catalog.indices(unconstrained)].all()  # the mask matters for this user
    assert len(got) == 30 and allowed[catalog.indices(got)].all()
    # exactly the best allowed items, best first (the index is exhaustive here)
    keep = np.flatnonzero(allowed)
    best = keep[np.argsort(-(items[keep] @ users[1]), kind="stable")[:30]]
    assert got.tolist() == catalog.ids[best].tolist()
    per_request = RetrievalSource(ann, catalog, user_vocab=Vocabulary(["U-0", "U-1", "U-2"]),
                                  allowed=lambda r: allowed if r.user_id == "U-1" else None)
    assert per_request.retrieve(req, 30).ids.tolist() == got.tolist()
    assert per_request.retrieve(PipelineRequest(user_id="U-0"), 30).ids.tolist() \
        == free.retrieve(PipelineRequest(user_id="U-0"), 30).ids.tolist()


def test_a_mask_over_another_item_space_is_refused():
    items, users, catalog = _parts()
    ann = AnnSource(ExactIndex().build(items), user_vectors=users)
    with pytest.raises(DataError, match="boolean mask over the catalogue's 400 items"):
        RetrievalSource(ann, catalog, allowed=np.ones(399, dtype=bool))
    with pytest.raises(DataError, match="boolean mask"):
        RetrievalSource(ann, catalog, allowed=np.ones(400, dtype=np.int8))
