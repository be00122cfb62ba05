"""Retrieval: candidate sources and their union — the first stage of the ranking pipeline.

Every source takes a `Query` and returns `Candidates` (item indices, scores, a source tag, optional
per-candidate signals); see `tastemaker.retrieval.base` for the contract.

- `AnnSource` over a `VectorIndex` (`FaissIndex` — the default, `UsearchIndex`, `ExactIndex`) of item
  embeddings, with filtered search for hard constraints (`tastemaker.retrieval.ann`);
- `CoPurchase`: items bought together, from baskets (`tastemaker.retrieval.copurchase`);
- `Trending`: time-decayed popularity (`tastemaker.retrieval.trending`);
- `Repurchase`: buy again, with recency decay and a repurchase-interval signal (`tastemaker.retrieval.repurchase`);
- `ContentSource`: text similarity, the path for new SKUs (`tastemaker.retrieval.content`);
- `union` / `UnionRetriever`: per-source quotas, dedup, every source's score kept (`tastemaker.retrieval.union`).
"""

from tastemaker.retrieval.ann import (
    AnnSource,
    ExactIndex,
    FaissIndex,
    UsearchIndex,
    VectorIndex,
    default_index,
    exact_search,
    load_vector_index,
    make_index,
)
from tastemaker.retrieval.base import Candidates, CandidateSource, Histories, Query, select_top
from tastemaker.retrieval.content import ContentSource
from tastemaker.retrieval.copurchase import CoPurchase
from tastemaker.retrieval.repurchase import Repurchase
from tastemaker.retrieval.trending import Trending
from tastemaker.retrieval.union import CandidateSet, UnionRetriever, union

__all__ = [
    "AnnSource",
    "CandidateSet",
    "CandidateSource",
    "Candidates",
    "CoPurchase",
    "ContentSource",
    "ExactIndex",
    "FaissIndex",
    "Histories",
    "Query",
    "Repurchase",
    "Trending",
    "UnionRetriever",
    "UsearchIndex",
    "VectorIndex",
    "default_index",
    "exact_search",
    "load_vector_index",
    "make_index",
    "select_top",
    "union",
]
