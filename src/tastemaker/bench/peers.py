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


class LightFMConfig(ModelConfig):
    loss: Literal["warp", "bpr", "warp-kos", "logistic"] = "warp"
    features: Literal["none", "genres", "all"] = "none"
    """Item features besides the identity: none (pure CF), genres, or genres + users' demographics
    ("all": occupation, gender and age decade for users)."""
    epochs: int = Field(default=20, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)


class LightFMPeer(_Peer):
    """LightFM (the maintained `lightfm-next` build) with identity + side features, as its
    `Dataset` builds them: each feature row normalised to sum 1."""

    name = "lightfm"
    Config = LightFMConfig

    @property
    def scores_cold_items(self) -> bool:  # type: ignore[override]
        return self.config.features != "none"

    @property
    def scores_cold_users(self) -> bool:  # type: ignore[override]
        return self.config.features == "all"

    @staticmethod
    def _features(n: int, blocks: list[np.ndarray]) -> Any:
        import scipy.sparse as sp

        mats = [sp.identity(n, format="csr", dtype=np.float32)]
        mats += [sp.csr_matrix(b.astype(np.float32)) for b in blocks if b.shape[1]]
        m = sp.hstack(mats, format="csr")
        sums = np.asarray(m.sum(axis=1)).ravel()
        return sp.diags(1.0 / np.maximum(sums, 1e-12)) @ m

    def _fit(self, data: Interactions) -> None:
        require("lightfm", "peers")
        from lightfm import LightFM

        item_blocks: list[np.ndarray] = []
        user_blocks: list[np.ndarray] = []
        if self.config.features != "none" and data.item_features is not None:
            item_blocks.append(data.item_features.feature_matrix(data.item_vocab))
        if self.config.features == "all" and data.user_features is not None:
            user_blocks.append(_user_demographics(data))
        self._item_x = self._features(data.n_items, item_blocks)
        self._user_x = self._features(data.n_users, user_blocks)
        params = {"no_components": 64, "learning_rate": 0.05, **self.config.params}
        self.algo = LightFM(loss=self.config.loss, random_state=self.config.seed, **params)
        x = data.csr(binary=True).tocoo()
        self.algo.fit(x, user_features=self._user_x, item_features=self._item_x, epochs=self.config.epochs,
                      num_threads=1)
        self._item_bias, self._item_emb = self.algo.get_item_representations(self._item_x)
        self._user_bias, self._user_emb = self.algo.get_user_representations(self._user_x)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return (self._user_emb[users] @ self._item_emb.T + self._item_bias[None, :]).astype(np.float64)


def _user_demographics(data: Interactions) -> np.ndarray:
    """One-hot gender, occupation and age decade of MovieLens users (zeros where unknown)."""
    import pandas as pd

    feats = data.user_features
    frame = pd.DataFrame(index=pd.Index(data.user_vocab.ids))
    for col in ("gender", "occupation"):
        if col in feats.frame.columns:
            frame[col] = feats.column_values(col, data.user_vocab)
    if "age" in feats.frame.columns:
        ages = pd.to_numeric(pd.Series(feats.column_values("age", data.user_vocab)), errors="coerce")
        frame["age"] = (ages // 10 * 10).astype("Int64").astype(str).to_numpy()
    return pd.get_dummies(frame.astype(str)).to_numpy(dtype=np.float32)


PEERS = {"surprise": SurprisePeer, "implicit": ImplicitPeer, "lightfm": LightFMPeer}
