"""The one scorer contract every tastemaker model follows.

A model is fitted on `Interactions` and then scores (user, item) pairs. Everything around the
scoring — external ids, unknown users and items, excluding what a user has seen, top-k selection,
candidate lists, reasons, saving and loading — lives here once, so a model implements only:

- `_fit(data)`: learn from the training interactions;
- `_score(users)`: a dense (len(users), n_items) score matrix for known user indices;
- optionally `_score_pairs(users, items)` (faster pair scoring), `_fallback_values(users, items)`
  (rating models: what to predict for unknown users/items), `_explain(user, items)`;
- `_get_state()` / `_set_state(arrays, meta)`: the fitted state as plain arrays + JSON.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tastemaker.artifacts import read_bundle, write_bundle
from tastemaker.config import StrictConfig
from tastemaker.data.interactions import Interactions
from tastemaker.data.vocabulary import UNKNOWN, Vocabulary
from tastemaker.errors import ArtifactError, ConfigError, DataError, NotFittedError, NotSupportedError

# --- results ------------------------------------------------------------------------------------

REASON_KINDS = ("similar_to_history", "personal_taste", "popular", "unknown_user", "no_history",
                "unknown_item", "item_without_data")


@dataclass(frozen=True)
class Reason:
    """Why an item was recommended (or why a fallback was used).

    `anchor` is an item of the user's history that drives the recommendation, with the value the
    user gave it (`anchor_value`); `text()` turns it into one line, given a title lookup.
    """

    kind: str
    anchor: Any = None
    anchor_value: float | None = None
    detail: str = ""

    def text(self, title=None, *, explicit: bool = True) -> str:
        name = (title or str)(self.anchor) if self.anchor is not None else None
        if self.kind == "similar_to_history" and name is not None:
            if explicit and self.anchor_value is not None:
                return f"because you rated {name} {self.anchor_value:g}"
            return f"because you liked {name}"
        messages = {
            "personal_taste": "matches your taste profile",
            "popular": "popular with everyone",
            "unknown_user": "we don't know you yet: popular with everyone",
            "no_history": "no history yet: popular with everyone",
            "unknown_item": "unknown item: global average",
            "item_without_data": "no ratings for this item yet: user's average",
        }
        base = messages.get(self.kind, self.kind)
        return f"{base} ({self.detail})" if self.detail else base


@dataclass
class Prediction:
    """Scores of (user, item) pairs; `fallback[j]` is True where pair j got a fallback value,
    with `reasons[j]` saying why (None where the model scored it)."""

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    fallback: np.ndarray
    reasons: list[str | None]

    def __len__(self) -> int:
        return len(self.values)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"user": self.users, "item": self.items, "value": self.values,
                             "fallback": self.fallback, "reason": self.reasons})


@dataclass
class UserRecommendations:
    """Top items of one user, best first. `fallback` names why a fallback list was served."""

    user: Any
    items: np.ndarray
    scores: np.ndarray
    fallback: str | None = None
    reasons: list[Reason] | None = None

    def __len__(self) -> int:
        return len(self.items)


class Recommendations(list[UserRecommendations]):
    """One `UserRecommendations` per requested user, in request order."""

    def to_frame(self, title=None) -> pd.DataFrame:
        rows = []
        for rec in self:
            for rank, (item, score) in enumerate(zip(rec.items.tolist(), rec.scores.tolist(), strict=True), 1):
                row = {"user": rec.user, "rank": rank, "item": item, "score": score, "fallback": rec.fallback}
                if rec.reasons is not None:
                    row["reason"] = rec.reasons[rank - 1].text(title)
                rows.append(row)
        return pd.DataFrame(rows, columns=["user", "rank", "item", "score", "fallback", "reason"][: 6 if any(
            r.reasons is not None for r in self) else 5])


# --- helpers ------------------------------------------------------------------------------------

def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of each row, best first; ties broken by lower index; -inf/NaN never chosen.

    Returns (indices, scores) of shape (rows, min(k, n_cols)); where a row has fewer than k
    finite scores the remainder is index -1 with score -inf.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError("scores must be 2-D (users × items)")
    n_rows, n_cols = scores.shape
    k = max(0, min(int(k), n_cols))
    if k == 0 or n_rows == 0:
        return np.empty((n_rows, k), dtype=np.int64), np.empty((n_rows, k))
    s = np.where(np.isnan(scores), -np.inf, scores)
    if k == n_cols:
        order = np.lexsort((np.broadcast_to(np.arange(n_cols), s.shape), -s), axis=1)
    else:
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(s, part, axis=1)
        order = np.take_along_axis(part, np.lexsort((part, -vals), axis=1), axis=1)
        # rows where the k-th score is tied with columns left out: resolve ties by lowest index
        kth = vals.min(axis=1)
        tied = np.flatnonzero((np.sum(s >= kth[:, None], axis=1) > k) & np.isfinite(kth))
        for r in tied:
            cand = np.flatnonzero(s[r] >= kth[r])
            order[r] = cand[np.lexsort((cand, -s[r, cand]))[:k]]
    top = np.take_along_axis(s, order, axis=1)
    order = np.where(np.isneginf(top), -1, order)
    return order.astype(np.int64), top


def _as_list(x: Any) -> list[Any]:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (str, bytes)) or not isinstance(x, Iterable):
        return [x]
    return list(x)


# --- the contract -------------------------------------------------------------------------------

class ModelConfig(StrictConfig):
    """Settings common to every model."""

    seed: int = 42


class Recommender(ABC):
    """Base class of every model. See the module docstring for what a subclass implements."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    predicts_ratings: ClassVar[bool] = False
    scores_cold_users: ClassVar[bool] = False
    scores_cold_items: ClassVar[bool] = False
    batch_users: ClassVar[int] = 512

    def __init__(self, config: ModelConfig | dict[str, Any] | None = None, **params: Any) -> None:
        if isinstance(config, StrictConfig):
            data = config.model_dump()
        elif config is None:
            data = {}
        elif isinstance(config, dict):
            data = dict(config)
        else:
            raise ConfigError(f"config must be a {self.Config.__name__} or a dict, not {type(config).__name__}")
        self.config = self.Config.parse(data, source=f"{self.name or type(self).__name__} config", **params)
        self._fitted = False

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"{type(self).__name__}({params})"

    # --- fitting ------------------------------------------------------------------------------
    def fit(self, data: Interactions) -> Self:
        """Learn from `data` (not modified). Returns self."""
        if not isinstance(data, Interactions):
            raise DataError(f"fit() takes Interactions, not {type(data).__name__}",
                            hint="build one with Interactions.from_frame(...) or a loader")
        if len(data) == 0:
            raise DataError("cannot fit on zero interactions", hint="check the split or the filters")
        if self.predicts_ratings and not data.explicit:
            raise DataError(f"{self.name} predicts ratings but the data is implicit",
                            hint="pass explicit ratings, or use a top-N model such as 'ease'")
        self.user_vocab: Vocabulary = data.user_vocab
        self.item_vocab: Vocabulary = data.item_vocab
        self.train_matrix: sp.csr_matrix = data.csr()
        self.item_counts: np.ndarray = data.item_counts.astype(np.int64)
        self.global_mean: float = float(data.values.mean())
        self.explicit: bool = data.explicit
        self.rating_scale: tuple[float, float] | None = data.rating_scale
        self.data_info: dict[str, Any] = {"fingerprint": data.fingerprint(), "name": data.name,
                                          "interactions": len(data)}
        self.item_titles: np.ndarray | None = None
        feats = data.item_features
        if feats is not None and "title" in feats.frame.columns:
            titles = feats.column_values("title", data.item_vocab, default="")
            self.item_titles = np.asarray(["" if pd.isna(t) else str(t) for t in titles], dtype=str)
        self._fit(data)
        self._fitted = True
        return self

    @abstractmethod
    def _fit(self, data: Interactions) -> None: ...

    @abstractmethod
    def _score(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for known user indices: shape (len(users), n_items)."""

    def _score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores of known (user, item) index pairs; override when it can be done without rows."""
        out = np.empty(len(users), dtype=np.float64)
        uniq, inv = np.unique(users, return_inverse=True)
        for start in range(0, len(uniq), self.batch_users):
            block = uniq[start:start + self.batch_users]
            rows = np.asarray(self._score(block))
            sel = (inv >= start) & (inv < start + len(block))
            out[sel] = rows[inv[sel] - start, items[sel]]
        return out

    def _fallback_values(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Values for pairs the model cannot score (user or item index may be -1)."""
        return np.full(len(users), self.global_mean if self.explicit else 0.0)

    # --- state checks -------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(interactions) or load(dir) first")

    @property
    def n_users(self) -> int:
        self._check_fitted()
        return len(self.user_vocab)

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return len(self.item_vocab)

    def title(self, item: Any) -> str:
        """Display title of an item (its id as text when the training data had no titles)."""
        idx = self.item_vocab.index(item) if self._fitted else -1
        if self.item_titles is not None and idx >= 0 and self.item_titles[idx]:
            return str(self.item_titles[idx])
        return str(item)

    def history(self, user: Any) -> tuple[np.ndarray, np.ndarray]:
        """External ids and values of a user's training interactions (empty when unknown)."""
        self._check_fitted()
        u = self.user_vocab.index(user)
        if u < 0:
            return self.item_vocab.ids[:0], np.empty(0, dtype=np.float32)
        row = self.train_matrix[u]
        return self.item_vocab.lookup(row.indices), row.data

    def user_history_counts(self) -> np.ndarray:
        return np.diff(self.train_matrix.indptr)

    def scorable_items(self) -> np.ndarray:
        """Boolean mask of the items this model can rank (by default: items seen in training)."""
        return np.ones(self.n_items, dtype=bool) if self.scores_cold_items else self.item_counts > 0

    def _cold_users(self, users: np.ndarray) -> np.ndarray:
        if self.scores_cold_users:
            return np.zeros(len(users), dtype=bool)
        return self.user_history_counts()[users] == 0

    # --- pairs --------------------------------------------------------------------------------
    def score(self, users: Sequence[Any] | Any, items: Sequence[Any] | Any, *,
              timestamps: Sequence[int] | int | None = None) -> Prediction:
        """Scores of (user, item) pairs given by external ids. A single user, item or timestamp is
        broadcast to every pair; `timestamps` (unix seconds) reach time-aware models."""
        self._check_fitted()
        users_l, items_l = _as_list(users), _as_list(items)
        times = None if timestamps is None else _as_list(timestamps)
        n = max(len(users_l), len(items_l), len(times or ()))
        users_l = users_l * n if len(users_l) == 1 else users_l
        items_l = items_l * n if len(items_l) == 1 else items_l
        if times is not None and len(times) == 1:
            times = times * n
        if len(users_l) != len(items_l) or (times is not None and len(times) != len(users_l)):
            raise ValueError(f"{len(users_l)} users, {len(items_l)} items"
                             f"{'' if times is None else f' and {len(times)} timestamps'}: pass equal lengths "
                             "or one of any")
        u = self.user_vocab.indices(users_l)
        i = self.item_vocab.indices(items_l)
        return self._pairs(u, i, np.asarray(users_l, dtype=object), np.asarray(items_l, dtype=object),
                           None if times is None else np.asarray(times, dtype=np.int64))

    def _score_pairs_at(self, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        """Scores of known pairs at given times (unix seconds); time-aware models override this,
        the others ignore the time."""
        return self._score_pairs(users, items)

    def _pairs(self, u: np.ndarray, i: np.ndarray, users: np.ndarray, items: np.ndarray,
               timestamps: np.ndarray | None = None) -> Prediction:
        n = len(u)
        known_u = u >= 0
        known_i = i >= 0
        cold_u = np.zeros(n, dtype=bool)
        cold_u[known_u] = self._cold_users(u[known_u])
        cold_i = np.zeros(n, dtype=bool)
        cold_i[known_i] = ~self.scorable_items()[i[known_i]]
        ok = known_u & known_i & ~cold_u & ~cold_i
        values = np.empty(n, dtype=np.float64)
        if ok.any():
            uk, ik = u[ok].astype(np.int64), i[ok].astype(np.int64)
            values[ok] = (self._score_pairs(uk, ik) if timestamps is None
                          else self._score_pairs_at(uk, ik, np.asarray(timestamps, dtype=np.int64)[ok]))
        if (~ok).any():
            values[~ok] = self._fallback_values(np.where(known_u & ~cold_u, u, UNKNOWN)[~ok],
                                                np.where(known_i & ~cold_i, i, UNKNOWN)[~ok])
        reasons: list[str | None] = [None] * n
        for j in np.flatnonzero(~ok):
            parts = []
            if not known_u[j]:
                parts.append(f"unknown user {users[j]!r}")
            elif cold_u[j]:
                parts.append(f"user {users[j]!r} has no history")
            if not known_i[j]:
                parts.append(f"unknown item {items[j]!r}")
            elif cold_i[j]:
                parts.append(f"item {items[j]!r} has no training data")
            reasons[j] = "; ".join(parts)
        return Prediction(users=users, items=items, values=values, fallback=~ok, reasons=reasons)

    def predict(self, users: Sequence[Any] | Any, items: Sequence[Any] | Any, *,
                timestamps: Sequence[int] | int | None = None) -> Prediction:
        """Predicted ratings of (user, item) pairs, clipped to the training rating scale."""
        if not self.predicts_ratings:
            raise NotSupportedError(f"{self.name} ranks items but does not predict ratings; use score() or "
                                    "recommend(), or a rating model such as 'biased_mf'")
        out = self.score(users, items, timestamps=timestamps)
        if self.rating_scale is not None:
            out.values = np.clip(out.values, *self.rating_scale)
        return out

    def predict_indices(self, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray | None = None,
                        ) -> np.ndarray:
        """Rating predictions for index pairs (-1 = unknown) — the fast path evaluation uses.

        `timestamps` (unix seconds, one per pair) reach time-aware models; others ignore them."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        pred = self._pairs(users, items, users, items, timestamps).values
        if self.predicts_ratings and self.rating_scale is not None:
            pred = np.clip(pred, *self.rating_scale)
        return pred

    # --- ranking ------------------------------------------------------------------------------
    def popularity_scores(self) -> np.ndarray:
        """Fallback ranking: training counts scaled to [0, 1]."""
        counts = self.item_counts.astype(np.float64)
        return counts / max(counts.max(initial=0.0), 1.0)

    def recommend_indices(
        self,
        users: np.ndarray,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: np.ndarray | None = None,
        exclude: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k item indices for known user indices — the fast path evaluation uses.

        `candidates` is a boolean (n_items,) mask or (len(users), n_items) matrix of allowed
        items; `exclude` a sparse (n_users, n_items) matrix of extra items to drop. Returns
        (items, scores, is_fallback): items padded with -1 where fewer than k are available.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        k = int(k)
        if k < 1:
            raise ValueError("k must be at least 1")
        kk = min(k, self.n_items)
        out_items = np.full((len(users), kk), -1, dtype=np.int64)
        out_scores = np.full((len(users), kk), -np.inf)
        cold = self._cold_users(users)
        for start in range(0, len(users), self.batch_users):
            block = users[start:start + self.batch_users]
            scores = self.score_matrix(block)
            if candidates is not None:
                cand = candidates if candidates.ndim == 1 else candidates[start:start + self.batch_users]
                scores[~np.broadcast_to(cand, scores.shape)] = -np.inf
            if exclude_seen:
                scores[self.train_matrix[block].toarray() != 0] = -np.inf
            if exclude is not None:
                scores[exclude[block].toarray() != 0] = -np.inf
            idx, val = top_k(scores, kk)
            out_items[start:start + len(block)] = idx
            out_scores[start:start + len(block)] = val
        return out_items, out_scores, cold

    def score_matrix(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for known user indices, as a new float64 array.

        Users without history get the popularity fallback (unless the model scores cold users);
        items the model cannot rank (no training data) get -inf.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        cold = self._cold_users(users)
        scores = np.empty((len(users), self.n_items), dtype=np.float64)
        if (~cold).any():
            scores[~cold] = self._score(users[~cold])
        scores[~cold] = np.where(self.scorable_items(), scores[~cold], -np.inf)
        if cold.any():
            scores[cold] = np.where(self.item_counts > 0, self.popularity_scores(), -np.inf)
        return scores

    def recommend(
        self,
        users: Sequence[Any] | Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: Sequence[Any] | dict[Any, Sequence[Any]] | None = None,
        exclude: dict[Any, Sequence[Any]] | None = None,
        explain: bool = False,
    ) -> Recommendations:
        """Top-k items for each user (external ids), best first.

        - Unknown users and users without history get the popularity fallback, with `fallback`
          saying why.
        - `candidates`: rank only these items (one list for everyone, or a dict user → list);
          unknown candidate ids are ignored.
        - `exclude`: dict user → items never to return (on top of seen items when `exclude_seen`).
        - `explain`: attach a `Reason` to every item.
        """
        self._check_fitted()
        users_l = _as_list(users)
        u = self.user_vocab.indices(users_l)
        known = u >= 0
        result = Recommendations()
        cand_rows = exc_rows = None
        if candidates is not None or exclude is not None:
            shared = None if candidates is None or isinstance(candidates, dict) else self._mask(candidates)
            cand_rows = np.ones((len(users_l), self.n_items), dtype=bool) if candidates is not None else None
            exc_rows = np.zeros((len(users_l), self.n_items), dtype=bool)
            for j, user in enumerate(users_l):
                if candidates is not None:
                    cand_rows[j] = shared if shared is not None else self._mask(candidates.get(user, ()))
                if exclude is not None:
                    exc_rows[j] = self._mask(exclude.get(user, ()))
        idx_u = np.where(known, u, 0)
        cand = None if cand_rows is None else cand_rows & ~exc_rows
        if cand is None and exc_rows is not None:
            cand = ~exc_rows
        items, scores, cold = self.recommend_indices(idx_u, k, exclude_seen=exclude_seen, candidates=cand)
        pop = self.popularity_scores()
        for j, user in enumerate(users_l):
            row_items = items[j]
            if not known[j]:
                allowed = self.item_counts > 0
                if cand is not None:
                    allowed &= cand[j]
                row_items, row_scores = (x[0] for x in top_k(np.where(allowed, pop, -np.inf)[None, :], k))
                fallback = "unknown_user"
            else:
                row_scores = scores[j]
                fallback = "no_history" if cold[j] else None
            keep = row_items >= 0
            row_items, row_scores = row_items[keep], row_scores[keep]
            reasons = None
            if explain:
                if fallback is not None:
                    reasons = [Reason(fallback)] * len(row_items)
                else:
                    reasons = self._explain(int(u[j]), row_items)
            result.append(UserRecommendations(user=user, items=self.item_vocab.lookup(row_items),
                                              scores=row_scores, fallback=fallback, reasons=reasons))
        return result

    def _mask(self, item_ids: Sequence[Any]) -> np.ndarray:
        mask = np.zeros(self.n_items, dtype=bool)
        idx = self.item_vocab.indices(_as_list(item_ids))
        mask[idx[idx >= 0]] = True
        return mask

    # --- reasons ------------------------------------------------------------------------------
    def explain(self, user: Any, items: Sequence[Any]) -> list[Reason]:
        """Why each of `items` suits `user` (external ids)."""
        self._check_fitted()
        u = self.user_vocab.index(user)
        if u < 0:
            return [Reason("unknown_user")] * len(_as_list(items))
        if self._cold_users(np.array([u]))[0]:
            return [Reason("no_history")] * len(_as_list(items))
        idx = self.item_vocab.indices(_as_list(items))
        return self._explain(u, idx)

    def _explain(self, user: int, items: np.ndarray) -> list[Reason]:
        """Default reason: the liked history item that co-occurs most with each recommended item."""
        return self._explain_by_similarity(user, items, self._cooccurrence_similarity)

    def _cooccurrence_similarity(self, items: np.ndarray, hist: np.ndarray) -> np.ndarray:
        """Cosine of the items' co-occurrence columns in the training data: (len(items), len(hist))."""
        binary = self.train_matrix.astype(bool).astype(np.float32).tocsc()
        norms = np.sqrt(np.asarray(binary.sum(axis=0)).ravel()) + 1e-9
        co = (binary[:, items].T.tocsr() @ binary[:, hist]).toarray()
        return co / np.outer(norms[items], norms[hist])

    def _explain_by_vectors(self, user: int, items: np.ndarray, vectors: np.ndarray) -> list[Reason]:
        """`_explain_by_similarity` with the cosine of the items' rows of `vectors` (n_items, d) — item factors
        or embeddings — as the similarity."""
        norms = np.linalg.norm(vectors, axis=1) + 1e-12

        def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return (vectors[a] @ vectors[b].T) / np.outer(norms[a], norms[b])

        return self._explain_by_similarity(user, items, cosine)

    def _explain_by_similarity(self, user: int, items: np.ndarray, similarity) -> list[Reason]:
        """For each item, the history item j maximising similarity(item, j) — weighted by the
        user's value of j and restricted to items rated at or above the user's mean on explicit
        data — as a `similar_to_history` reason; `personal_taste` when nothing is similar."""
        row = self.train_matrix[user]
        hist, vals = row.indices, row.data.astype(np.float64)
        if len(hist) == 0:
            return [Reason("personal_taste")] * len(items)
        if self.explicit:
            liked = vals >= vals.mean()
            hist, vals = hist[liked], vals[liked]
        valid = items >= 0
        sims = np.zeros((len(items), len(hist)))
        if valid.any():
            sims[valid] = similarity(items[valid], hist)
        if self.explicit:
            sims *= vals[None, :] / max(vals.max(), 1e-9)
        out = []
        for j in range(len(items)):
            if not valid[j] or sims[j].max(initial=0.0) <= 0:
                out.append(Reason("personal_taste"))
                continue
            best = int(np.argmax(sims[j]))
            out.append(Reason("similar_to_history", anchor=self.item_vocab.lookup([hist[best]])[0].item(),
                              anchor_value=float(vals[best]) if self.explicit else None))
        return out

    # --- persistence --------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Fitted state as (arrays, JSON-able metadata). Override in every model."""
        return {}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:  # noqa: B027
        """Restore what `_get_state` returned (models without state need not override it)."""

    def save(self, directory: str | Path) -> Path:
        """Write the fitted model as arrays + JSON manifest (no pickle)."""
        self._check_fitted()
        arrays, meta = self._get_state()
        m = self.train_matrix
        base_arrays = {"_train_indptr": m.indptr.astype(np.int64), "_train_indices": m.indices.astype(np.int32),
                       "_train_data": m.data.astype(np.float32), "_item_counts": self.item_counts}
        if self.item_titles is not None:
            base_arrays["_item_titles"] = self.item_titles
        clash = set(arrays) & set(base_arrays)
        if clash:
            raise ArtifactError(f"model state uses reserved array names {sorted(clash)}")
        manifest = {
            "model": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "config": self.config.to_dict(),
            "vocabularies": {"users": self.user_vocab.to_json(), "items": self.item_vocab.to_json()},
            "data": {**self.data_info, "explicit": self.explicit, "rating_scale": self.rating_scale,
                     "global_mean": self.global_mean},
            "state": meta,
        }
        return write_bundle(directory, manifest, {**base_arrays, **arrays})

    @classmethod
    def load(cls, directory: str | Path) -> Recommender:
        """Load a saved model. `Recommender.load` works for any model; `EASE.load` checks the kind."""
        manifest, arrays = read_bundle(directory)
        from tastemaker.models.registry import get_model_class

        target = get_model_class(manifest.get("model", ""))
        if cls is not Recommender and not issubclass(target, cls):
            raise ArtifactError(f"{directory} holds a {manifest['model']!r} model, not a {cls.name!r}")
        model = target(manifest.get("config") or {})
        try:
            model.user_vocab = Vocabulary.from_json(manifest["vocabularies"]["users"])
            model.item_vocab = Vocabulary.from_json(manifest["vocabularies"]["items"])
            data = manifest["data"]
            model.explicit = bool(data["explicit"])
            model.rating_scale = tuple(data["rating_scale"]) if data.get("rating_scale") else None
            model.global_mean = float(data["global_mean"])
            model.data_info = {k: data[k] for k in ("fingerprint", "name", "interactions") if k in data}
            shape = (len(model.user_vocab), len(model.item_vocab))
            model.train_matrix = sp.csr_matrix(
                (arrays.pop("_train_data"), arrays.pop("_train_indices"), arrays.pop("_train_indptr")), shape=shape)
            model.item_counts = arrays.pop("_item_counts")
            model.item_titles = arrays.pop("_item_titles", None)
        except KeyError as exc:
            raise ArtifactError(f"{directory}: manifest or arrays lack {exc}") from None
        model._set_state(arrays, manifest.get("state") or {})
        model._fitted = True
        return model


__all__ = ["ModelConfig", "Prediction", "Reason", "Recommendations", "Recommender", "UserRecommendations",
           "top_k"]
