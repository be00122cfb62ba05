"""Learned blends of other models, fitted on held-out predictions.

`RatingBlend` ("rating_blend") — the Netflix-prize recipe: carve a seeded per-user holdout out of the
training data, fit every member on the rest, and fit a ridge regression of the held-out ratings on
the members' predictions (optionally with meta-features: log user support, log item support and the
user's rating spread, each also multiplying every member's prediction, so the weights can depend on
how much is known about the user and the item). Then, by default, every member is refitted on all
the training data and the learned weights applied to their predictions.

`RankBlend` ("rank_blend") — the same idea for top-N lists: members' scores are normalised per user
(z-scores over the items each can score) and summed with non-negative weights that maximise NDCG@10
on a per-user validation carve-out (coordinate search), or, optionally, with weights from a pairwise
logistic objective (relevant held-out items against sampled unseen items).

Members are given as ``[{"name": ..., "params": {...}}, ...]`` and created through the registry; a
saved blend holds each member's state arrays under the prefix ``m<j>.`` and its config and metadata
in the manifest, so loading needs no pickle and no training code beyond the members' own classes.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field, field_validator

from tastemaker.config import StrictConfig
from tastemaker.data.interactions import Interactions
from tastemaker.data.splits import validation_split
from tastemaker.errors import ArtifactError, ConfigError
from tastemaker.models.base import ModelConfig, Reason, Recommender
from tastemaker.progress import track

_BASE_ATTRS = ("user_vocab", "item_vocab", "train_matrix", "item_counts", "global_mean", "explicit", "rating_scale",
               "data_info", "item_titles")


class MemberSpec(StrictConfig):
    """One member of a blend: a registered model name and its settings."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


PLAIN_BPMF = {"implicit_users": False, "implicit_items": False, "user_features": {}, "item_features": {},
              "n_factors": 10, "noise_precision": 1.5}
"""Settings that make `bayesian_mf` plain BPMF with biases (no implicit terms, no side features)."""


def _default_rating_members() -> list[MemberSpec]:
    return [MemberSpec(name="bayesian_mf"), MemberSpec(name="autorec"), MemberSpec(name="svdpp"),
            MemberSpec(name="bayesian_mf", params=PLAIN_BPMF)]


def _check_members(members: list[MemberSpec], *, ratings: bool) -> list[MemberSpec]:
    from tastemaker.models.registry import get_model_class

    if not members:
        raise ValueError("a blend needs at least one member")
    for spec in members:
        try:
            cls = get_model_class(spec.name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"member {spec.name!r} cannot be imported here: {exc}") from None
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if ratings and not cls.predicts_ratings:
            raise ValueError(f"member {spec.name!r} does not predict ratings; a rating blend needs rating models")
        if cls.name in ("rating_blend", "rank_blend"):
            raise ValueError("a blend cannot be a member of a blend")
        cls.Config.parse(spec.params, source=f"member {spec.name!r} params")
    return members


class RatingBlendConfig(ModelConfig):
    """Defaults chosen on a validation carve-out of MovieLens 100K's u1.base (never a test fold).

    There (20% of each user's ratings held out; blend weights fitted on a further 15% carve-out of
    the rest, members refitted; bayesian_mf then sampled 100 sweeps after 20): bayesian_mf alone 0.8813;
    the default members (bayesian_mf, autorec, svdpp, plain BPMF) 0.8801; adding a second bayesian_mf
    chain (20 factors) 0.8798 at ~1.5× the time; adding item_knn, biased_mf or time_svdpp: no better;
    without refitting the members 0.887.
    Meta-features: ±0.0002; a gradient-boosted blender (scikit-learn, on predictions + meta-features)
    0.889; ridge λ 0.1–100 within 0.0002.
    """

    members: list[MemberSpec] = Field(default_factory=_default_rating_members)
    """Rating models to blend, each {"name": ..., "params": {...}}."""
    holdout_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    """Share of each user's training ratings held out to fit the blend weights."""
    meta_features: bool = True
    """Let the weights depend on log user support, log item support and the user's rating spread."""
    ridge: float = Field(default=1.0, ge=0.0)
    """L2 penalty of the blend regression (on standardised inputs, intercept not penalised)."""
    refit: bool = True
    """Refit the members on all the training data after learning the weights."""

    @field_validator("members")
    @classmethod
    def _valid_members(cls, members: list[MemberSpec]) -> list[MemberSpec]:
        return _check_members(members, ratings=True)


# --- shared member handling -----------------------------------------------------------------------

def _fit_members(specs: list[MemberSpec], data: Interactions, what: str) -> list[Recommender]:
    from tastemaker.models.registry import create_model

    members = []
    for spec in track(specs, f"blend: fitting members on {what}", total=len(specs)):
        members.append(create_model(spec.name, spec.params).fit(data))
    return members


def _pack_members(members: list[Recommender], own_data: bool) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Members' state arrays under "m<j>." and their name/config/meta; with `own_data` (members fitted
    on other data than the blend: no refit) each also keeps its own training matrix."""
    arrays: dict[str, np.ndarray] = {}
    metas = []
    for j, member in enumerate(members):
        sub, meta = member._get_state()
        for key, value in sub.items():
            arrays[f"m{j}.{key}"] = value
        if own_data:
            m = member.train_matrix
            arrays[f"m{j}._train_indptr"] = m.indptr.astype(np.int64)
            arrays[f"m{j}._train_indices"] = m.indices.astype(np.int32)
            arrays[f"m{j}._train_data"] = m.data.astype(np.float32)
            arrays[f"m{j}._item_counts"] = member.item_counts
        metas.append({"name": member.name, "config": member.config.to_dict(), "state": meta, "own_data": bool(own_data),
                      "global_mean": member.global_mean})
    return arrays, metas


def _unpack_members(arrays: dict[str, np.ndarray], metas: list[dict], base: Recommender) -> list[Recommender]:
    from tastemaker.models.registry import get_model_class

    members = []
    for j, meta in enumerate(metas):
        prefix = f"m{j}."
        sub = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        member = get_model_class(meta["name"])(meta["config"])
        for attr in _BASE_ATTRS:
            setattr(member, attr, getattr(base, attr))
        if meta.get("own_data"):
            try:
                member.train_matrix = sp.csr_matrix(
                    (sub.pop("_train_data"), sub.pop("_train_indices"), sub.pop("_train_indptr")),
                    shape=base.train_matrix.shape)
                member.item_counts = sub.pop("_item_counts")
            except KeyError as exc:
                raise ArtifactError(f"blend member {j} ({meta['name']}) lacks its training matrix array {exc}"
                                    ) from None
        member.global_mean = float(meta.get("global_mean", base.global_mean))
        member._set_state(sub, meta.get("state") or {})
        member._fitted = True
        members.append(member)
    return members


# --- rating blend -------------------------------------------------------------------------------------

def _support_stats(matrix: sp.csr_matrix, item_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log(1 + ratings) per user and per item, and each user's rating standard deviation."""
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    total = np.bincount(rows, weights=matrix.data, minlength=matrix.shape[0])
    total_sq = np.bincount(rows, weights=matrix.data.astype(np.float64) ** 2, minlength=matrix.shape[0])
    mean = total / np.maximum(counts, 1)
    var = np.maximum(total_sq / np.maximum(counts, 1) - mean**2, 0.0)
    return np.log1p(counts).astype(np.float64), np.log1p(item_counts).astype(np.float64), np.sqrt(var)


def blend_design(preds: np.ndarray, meta: np.ndarray | None) -> np.ndarray:
    """Inputs of the blend regression: member predictions, then (with meta-features) the meta-features
    and every prediction × meta-feature product."""
    if meta is None:
        return preds
    products = (preds[:, :, None] * meta[:, None, :]).reshape(len(preds), -1)
    return np.hstack([preds, meta, products])


def fit_ridge(X: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Ridge regression on standardised columns with an unpenalised intercept.

    Returns (coef, intercept, column means, column scales) with ŷ = intercept + ((X − mean)/scale)·coef.
    """
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-12] = 1.0
    Z = (X - mean) / scale
    intercept = float(y.mean())
    coef = np.linalg.solve(Z.T @ Z + penalty * np.eye(Z.shape[1]), Z.T @ (y - intercept))
    return coef, intercept, mean, scale


class RatingBlend(Recommender):
    """A ridge blend of rating models fitted on a held-out carve-out (see the module docstring).

    Pairs a member cannot score get that member's own fallback value, and are blended like any other.
    """

    name = "rating_blend"
    Config = RatingBlendConfig
    predicts_ratings = True
    batch_users = 64

    def _fit(self, data: Interactions) -> None:
        cfg: RatingBlendConfig = self.config
        fit_part, holdout = validation_split(data, method="user_holdout", fraction=cfg.holdout_fraction,
                                             seed=cfg.seed)
        if len(holdout) == 0:
            raise ConfigError(f"{self.name}: holdout_fraction={cfg.holdout_fraction:g} holds out no ratings of "
                              f"this data ({len(data)} ratings); raise it or use more data")
        members = _fit_members(cfg.members, fit_part, "the fit part")
        preds = np.column_stack([m.predict_indices(holdout.user_idx, holdout.item_idx, holdout.timestamps)
                                 for m in members])
        stats = None
        if cfg.meta_features:
            stats = _support_stats(fit_part.csr(), fit_part.item_counts)
        X = blend_design(preds, self._meta(stats, holdout.user_idx, holdout.item_idx))
        self.coef, self.intercept, self.x_mean, self.x_scale = fit_ridge(X, holdout.values.astype(np.float64),
                                                                        cfg.ridge)
        self.holdout_rmse = {m.name + (f"#{j}" if [x.name for x in members].count(m.name) > 1 else ""):
                             float(np.sqrt(np.mean((preds[:, j] - holdout.values) ** 2)))
                             for j, m in enumerate(members)}
        blended = self._apply(X)
        self.holdout_rmse["blend"] = float(np.sqrt(np.mean((np.clip(blended, *self.rating_scale) - holdout.values)
                                                           ** 2)))
        self.members = _fit_members(cfg.members, data, "all the data") if cfg.refit else members
        if cfg.meta_features:
            self.user_support, self.item_support, self.user_spread = _support_stats(self.train_matrix,
                                                                                    self.item_counts)

    @staticmethod
    def _meta(stats, users: np.ndarray, items: np.ndarray) -> np.ndarray | None:
        if stats is None:
            return None
        user_support, item_support, user_spread = stats
        known_u, known_i = users >= 0, items >= 0
        u, i = np.maximum(users, 0), np.maximum(items, 0)
        return np.column_stack([np.where(known_u, user_support[u], 0.0), np.where(known_i, item_support[i], 0.0),
                                np.where(known_u, user_spread[u], 0.0)])

    def _apply(self, X: np.ndarray) -> np.ndarray:
        return self.intercept + ((X - self.x_mean) / self.x_scale) @ self.coef

    def member_predictions(self, users: np.ndarray, items: np.ndarray,
                           timestamps: np.ndarray | None = None) -> np.ndarray:
        """(pairs × members) predictions of the members for index pairs (-1 = unknown), at
        `timestamps` (unix seconds) for time-aware members when given."""
        return np.column_stack([m.predict_indices(users, items, timestamps) for m in self.members])

    def _blend(self, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray | None = None) -> np.ndarray:
        stats = (self.user_support, self.item_support, self.user_spread) if self.config.meta_features else None
        preds = self.member_predictions(users, items, timestamps)
        return self._apply(blend_design(preds, self._meta(stats, users, items)))

    def _score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self._blend(users, items)

    def _score_pairs_at(self, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        return self._blend(users, items, timestamps)

    def _score(self, users: np.ndarray) -> np.ndarray:
        n_items = self.n_items
        grid_u = np.repeat(users, n_items)
        grid_i = np.tile(np.arange(n_items), len(users))
        return self._blend(grid_u, grid_i).reshape(len(users), n_items)

    def _fallback_values(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self._blend(users, items)

    def _explain(self, user: int, items: np.ndarray) -> list[Reason]:
        """The reasons of the member with the largest blend weight on its prediction."""
        n = len(self.members)
        return self.members[int(np.argmax(np.abs(self.coef[:n])))]._explain(user, items)

    @property
    def weights(self) -> dict[str, float]:
        """Weight of each member's prediction (in rating units, before meta-feature terms)."""
        n = len(self.members)
        w = self.coef[:n] / self.x_scale[:n]
        return {f"m{j}:{m.name}": float(w[j]) for j, m in enumerate(self.members)}

    def _get_state(self):
        arrays, metas = _pack_members(self.members, own_data=not self.config.refit)
        arrays.update({"coef": self.coef, "x_mean": self.x_mean, "x_scale": self.x_scale})
        if self.config.meta_features:
            arrays.update({"user_support": self.user_support, "item_support": self.item_support,
                           "user_spread": self.user_spread})
        return arrays, {"intercept": self.intercept, "members": metas, "holdout_rmse": self.holdout_rmse}

    def _set_state(self, arrays, meta):
        self.coef, self.x_mean, self.x_scale = arrays["coef"], arrays["x_mean"], arrays["x_scale"]
        if self.config.meta_features:
            self.user_support, self.item_support = arrays["user_support"], arrays["item_support"]
            self.user_spread = arrays["user_spread"]
        self.intercept = float(meta["intercept"])
        self.holdout_rmse = dict(meta.get("holdout_rmse", {}))
        self.members = _unpack_members(arrays, meta["members"], self)


# --- rank blend -----------------------------------------------------------------------------------------

def _default_rank_members() -> list[MemberSpec]:
    return [MemberSpec(name="ease"), MemberSpec(name="rp3beta")]


class RankBlendConfig(ModelConfig):
    """Defaults chosen on a validation carve-out of MovieLens 100K's u1.base (never a test fold).

    NDCG@10 there (20% of each user's ratings held out, ratings ≥ 4 relevant): ease 0.2811, rp3beta
    0.2607, item_cf 0.2638, als 0.2749; the default blend (ease + rp3beta, NDCG search) 0.2825; adding
    item_cf 0.2815; the pairwise objective: ease + rp3beta 0.2806, + item_cf 0.2771.
    """

    members: list[MemberSpec] = Field(default_factory=_default_rank_members)
    """Models to blend, each {"name": ..., "params": {...}}; any scorer (top-N or rating)."""
    holdout_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    """Share of each user's training events held out to learn the weights."""
    relevance_threshold: float | None = 4.0
    """On explicit data a held-out event is relevant when its value ≥ this (None: every held-out event)."""
    objective: Literal["ndcg", "pairwise"] = "ndcg"
    """``ndcg``: coordinate search over non-negative weights for the best NDCG@`k` on the holdout;
    ``pairwise``: logistic regression on (relevant − sampled unseen item) score differences."""
    k: int = Field(default=10, ge=1)
    """Cut-off of the NDCG the ``ndcg`` objective maximises."""
    n_negatives: int = Field(default=20, ge=1)
    """``pairwise``: sampled unseen items paired with each relevant held-out item."""
    l2: float = Field(default=0.01, ge=0.0)
    """``pairwise``: L2 penalty of the logistic regression."""
    refit: bool = True
    """Refit the members on all the training data after learning the weights."""
    weights: list[float] | None = None
    """Fixed member weights (one per member): no holdout, no search — the members are fitted once
    on all the data. For settings where the holdout cannot mimic the target, e.g. cold-start users."""

    @field_validator("members")
    @classmethod
    def _valid_members(cls, members: list[MemberSpec]) -> list[MemberSpec]:
        return _check_members(members, ratings=False)


def normalized_scores(model: Recommender, users: np.ndarray) -> np.ndarray:
    """A member's scores of every item for `users`, as per-user z-scores over the items it can score
    (items it cannot score get −10, far below any scored item)."""
    scores = model.score_matrix(users)
    finite = np.isfinite(scores)
    count = np.maximum(finite.sum(axis=1, keepdims=True), 1)
    safe = np.where(finite, scores, 0.0)
    mean = safe.sum(axis=1, keepdims=True) / count
    std = np.sqrt(np.where(finite, (safe - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / count)
    z = (safe - mean) / np.where(std > 1e-12, std, 1.0)
    return np.where(finite, z, -10.0)


def fit_pairwise_logistic(diffs: np.ndarray, l2: float) -> np.ndarray:
    """Weights w minimising mean log(1 + exp(−w·Δ)) + l2/2·‖w‖² over the rows Δ = x_pos − x_neg."""
    from scipy.optimize import minimize

    def objective(w):
        margin = diffs @ w
        loss = np.mean(np.logaddexp(0.0, -margin)) + l2 / 2 * w @ w
        grad = -(diffs.T @ (1.0 / (1.0 + np.exp(margin)))) / len(diffs) + l2 * w
        return loss, grad

    start = np.full(diffs.shape[1], 1.0 / diffs.shape[1])
    return minimize(objective, start, jac=True, method="L-BFGS-B").x


def search_ndcg_weights(z: list[np.ndarray], seen: np.ndarray, relevant: sp.csr_matrix, k: int,
                        rounds: int = 3) -> tuple[np.ndarray, float]:
    """Non-negative weights (summing to 1) of the score matrices `z` whose weighted sum has the best
    mean NDCG@k against `relevant`, items where `seen` is True excluded: start from the best single
    member, then coordinate search over a grid of relative weights for a few rounds."""
    from tastemaker.evaluation.metrics import ranking_metrics

    def ndcg(w: np.ndarray) -> float:
        scores = sum(wj * zj for wj, zj in zip(w, z, strict=True) if wj > 0)
        scores = np.where(seen, -np.inf, scores)
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1)
        return float(np.mean(ranking_metrics(order, relevant, k, ["ndcg"])[f"ndcg@{k}"]))

    m = len(z)
    singles = [ndcg(np.eye(m)[j]) for j in range(m)]
    w = np.eye(m)[int(np.argmax(singles))]
    best = max(singles)
    grid = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
    for _ in range(rounds):
        improved = False
        for j in range(m):
            for g in grid:
                trial = w.copy()
                trial[j] = g * trial.max()
                if trial.sum() <= 0:
                    continue
                trial /= trial.sum()
                value = ndcg(trial)
                if value > best + 1e-9:
                    best, w, improved = value, trial, True
        if not improved:
            break
    return w, best


class RankBlend(Recommender):
    """A weighted sum of members' per-user z-scored rankings, the weights learned on a held-out
    carve-out (see the module docstring). Top-N only."""

    name = "rank_blend"
    Config = RankBlendConfig
    batch_users = 256

    @property
    def scores_cold_users(self) -> bool:  # type: ignore[override]
        """A blend ranks users without history when every member with weight does."""
        members = getattr(self, "members", None)
        return bool(members) and all(m.scores_cold_users for w, m in zip(self.coef, members, strict=True) if w)

    @property
    def scores_cold_items(self) -> bool:  # type: ignore[override]
        members = getattr(self, "members", None)
        return bool(members) and all(m.scores_cold_items for w, m in zip(self.coef, members, strict=True) if w)

    def _fit(self, data: Interactions) -> None:
        cfg: RankBlendConfig = self.config
        if cfg.weights is not None:
            if len(cfg.weights) != len(cfg.members):
                raise ConfigError(f"{self.name}: {len(cfg.weights)} weights for {len(cfg.members)} members")
            self.coef = np.asarray(cfg.weights, dtype=np.float64)
            self.holdout_ndcg = None
            self.members = _fit_members(cfg.members, data, "all the data")
            return
        rng = np.random.default_rng(cfg.seed)
        fit_part, holdout = validation_split(data, method="user_holdout", fraction=cfg.holdout_fraction,
                                             seed=cfg.seed)
        relevant = holdout
        if data.explicit and cfg.relevance_threshold is not None:
            relevant = holdout.select(holdout.values >= cfg.relevance_threshold)
        if len(relevant) == 0:
            raise ConfigError(f"{self.name}: the holdout has no relevant events (holdout_fraction="
                              f"{cfg.holdout_fraction:g}, relevance_threshold={cfg.relevance_threshold}); "
                              "raise holdout_fraction or lower relevance_threshold")
        members = _fit_members(cfg.members, fit_part, "the fit part")
        users = np.unique(relevant.user_idx).astype(np.int64)
        z = [np.vstack([normalized_scores(m, users[s:s + self.batch_users])
                        for s in range(0, len(users), self.batch_users)]) for m in members]
        seen = fit_part.csr(binary=True)[users].toarray() > 0
        row_of = np.full(data.n_users, -1)
        row_of[users] = np.arange(len(users))
        rel_rows, rel_items = row_of[relevant.user_idx], relevant.item_idx.astype(np.int64)
        rel = sp.csr_matrix((np.ones(len(rel_rows)), (rel_rows, rel_items)), shape=(len(users), data.n_items))
        rel.data[:] = 1.0
        if cfg.objective == "ndcg":
            self.coef, self.holdout_ndcg = search_ndcg_weights(z, seen, rel, min(cfg.k, data.n_items - 1))
        else:
            allowed = ~(seen | (holdout.csr(binary=True)[users].toarray() > 0)) & (fit_part.item_counts > 0)
            pairs = []
            for r in range(len(users)):
                candidates, mine = np.flatnonzero(allowed[r]), rel_items[rel_rows == r]
                if len(candidates) and len(mine):
                    draws = rng.choice(candidates, size=(len(mine), cfg.n_negatives))
                    pairs.append((np.full(draws.size, r), np.repeat(mine, cfg.n_negatives), draws.ravel()))
            rows, pos, neg = (np.concatenate(x) for x in zip(*pairs, strict=True))
            self.coef = fit_pairwise_logistic(np.column_stack([zm[rows, pos] - zm[rows, neg] for zm in z]), cfg.l2)
            self.holdout_ndcg = None
        self.members = _fit_members(cfg.members, data, "all the data") if cfg.refit else members

    def _score(self, users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), self.n_items))
        for w, member in zip(self.coef, self.members, strict=True):
            if w != 0:
                out += w * normalized_scores(member, users)
        return out

    def _explain(self, user: int, items: np.ndarray) -> list[Reason]:
        """The reasons of the member with the largest weight."""
        return self.members[int(np.argmax(self.coef))]._explain(user, items)

    @property
    def weights(self) -> dict[str, float]:
        """Weight of each member's per-user z-scores."""
        return {f"m{j}:{m.name}": float(w) for j, (w, m) in enumerate(zip(self.coef, self.members, strict=True))}

    def _get_state(self):
        arrays, metas = _pack_members(self.members, own_data=not self.config.refit)
        arrays["coef"] = self.coef
        return arrays, {"members": metas, "holdout_ndcg": self.holdout_ndcg}

    def _set_state(self, arrays, meta):
        self.coef = arrays["coef"]
        self.holdout_ndcg = meta.get("holdout_ndcg")
        self.members = _unpack_members(arrays, meta["members"], self)


__all__ = ["PLAIN_BPMF", "MemberSpec", "RankBlend", "RankBlendConfig", "RatingBlend", "RatingBlendConfig",
           "blend_design", "fit_pairwise_logistic", "fit_ridge", "normalized_scores", "search_ndcg_weights"]
