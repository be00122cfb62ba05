"""Peer libraries wrapped in our scorer contract, so they run through the very same protocol code.

Peers are only for benchmarking: they fit and score like any model but do not save (their state
is not plain data). Each adapter is a thin translation; the algorithms are the peers' own.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from pydantic import Field

from tastemaker.data.interactions import Interactions
from tastemaker.errors import NotSupportedError, require
from tastemaker.models.base import ModelConfig, Recommender


class _Peer(Recommender):
    """Common parts: peers are not saved."""

    def _get_state(self):
        raise NotSupportedError(f"{type(self).__name__} wraps a peer library for benchmarks and cannot be saved")


class SurpriseConfig(ModelConfig):
    algorithm: Literal["BaselineOnly", "SVD", "SVDpp", "KNNBaseline", "SlopeOne", "NMF", "CoClustering"]
    params: dict[str, Any] = Field(default_factory=dict)


class SurprisePeer(_Peer):
    """A scikit-surprise algorithm. Raw ids given to Surprise are our dense indices."""

    name = "surprise"
    Config = SurpriseConfig
    predicts_ratings = True

    def _fit(self, data: Interactions) -> None:
        surprise = require("surprise", "peers")
        import pandas as pd

        frame = pd.DataFrame({"u": data.user_idx.astype(np.int64), "i": data.item_idx.astype(np.int64),
                              "r": data.values.astype(np.float64)})
        reader = surprise.Reader(rating_scale=data.rating_scale or (1, 5))
        trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()
        params = dict(self.config.params)
        if self.config.algorithm in ("SVD", "SVDpp", "NMF", "CoClustering"):
            params.setdefault("random_state", self.config.seed)
        if self.config.algorithm in ("BaselineOnly", "KNNBaseline"):
            params.setdefault("verbose", False)
        self.algo = getattr(surprise, self.config.algorithm)(**params)
        self.algo.fit(trainset)

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        predict = self.algo.predict
        return np.fromiter(
            (predict(int(u) if u >= 0 else "?", int(i) if i >= 0 else "?", clip=False).est
             for u, i in zip(users.tolist(), items.tolist(), strict=True)),
            dtype=np.float64, count=len(users))

    def _score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self._predict(users, items)

    def _fallback_values(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        # Surprise decides itself what to do with ids it has not seen (its `was_impossible` path).
        return self._predict(users, items)

    def _score(self, users: np.ndarray) -> np.ndarray:
        items = np.arange(self.n_items)
        return np.vstack([self._predict(np.full(self.n_items, u), items) for u in users])


class ImplicitConfig(ModelConfig):
    algorithm: Literal["als", "bpr", "cosine", "bm25"]
    params: dict[str, Any] = Field(default_factory=dict)
    alpha: float = Field(default=1.0, gt=0)
    """Confidence scale for ALS: C = 1 + alpha·X on the binary interaction matrix."""


class ImplicitPeer(_Peer):
    """A Ben Frederickson `implicit` model (CPU build) on the binary user × item matrix."""

    name = "implicit"
    Config = ImplicitConfig

    def _fit(self, data: Interactions) -> None:
        require("implicit", "peers")
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
        from threadpoolctl import threadpool_limits

        x = data.csr(binary=True)
        params = dict(self.config.params)
        algo = self.config.algorithm
        # implicit's own advice: its solvers are parallel, so BLAS must not start threads of its own
        with threadpool_limits(1, "blas"):
            if algo in ("als", "bpr"):
                params.setdefault("random_state", self.config.seed)
                cls = AlternatingLeastSquares if algo == "als" else BayesianPersonalizedRanking
                self.algo = cls(**params)
                self.algo.fit((x * self.config.alpha).tocsr() if algo == "als" else x, show_progress=False)
            else:
                self.algo = (CosineRecommender if algo == "cosine" else BM25Recommender)(**params)
                with warnings.catch_warnings():
                    # implicit 0.7 converts its own normalised matrix (coo under scipy ≥ 1.15) and warns
                    warnings.filterwarnings("ignore", message="Method expects CSR input")
                    self.algo.fit(x, show_progress=False)
        self._x = x

    def _score(self, users: np.ndarray) -> np.ndarray:
        if self.config.algorithm in ("als", "bpr"):
            return np.asarray(self.algo.user_factors[users] @ self.algo.item_factors.T, dtype=np.float64)
        return np.asarray((self._x[users] @ self.algo.similarity).todense(), dtype=np.float64)


PEERS = {"surprise": SurprisePeer, "implicit": ImplicitPeer}
