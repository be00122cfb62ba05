"""The learned ranker: LightGBM LambdaMART over assembled features, a calibrated P(purchase), and
expected-value scoring that trades conversion for order value on purpose.

Training data is *logged*: for each request (a user at a time), the candidates retrieval gave,
their features (`tastemaker.ranking.features`) and a label — 1 when the user bought the item in
the window after the request (`collect` builds this from a retriever, a feature builder, the
users' histories and a label matrix). `RankingData` holds it as rows grouped by request.

`Ranker.fit(train, valid)` trains ``lightgbm.LGBMRanker`` (``objective="lambdarank"`` by default;
``"rank_xendcg"`` too) with early stopping on `valid` when given, then calibrates:

**P(purchase).** The ranker's score s orders candidates but is no probability. Scores of rows
the model did not see in training are needed to calibrate, so the training groups are split into
`calibration_folds` folds; a model with the same settings is trained on the others and scores
each fold (cross-fitting); a calibration map fitted on those out-of-fold (s, label) pairs turns
the final model's scores into P(purchase): ``"platt"`` (P = σ(a·s + b), strictly increasing, so
the order of s is kept) or ``"isotonic"`` (a monotone step map; ties are broken by s).
`calibration_report` checks it on any labelled data: a reliability table (predicted vs observed
rate per bin of predicted P), expected calibration error (ECE) and the Brier score.

**Expected value.** With a value v per candidate (its price, margin or typical order-line
revenue), the final score is

    score_w = log P(purchase) + w · log v       (ranking by P · v^w)

- w = 0 ranks by P(purchase) alone — the ranker's own order (conversion);
- w = 1 ranks by the expected value P · v of showing the item (expected revenue or margin);
- 0 < w < 1 trades between them; w > 1 pushes value harder than its expectation warrants.

The form is scale-free (multiplying every value by a constant changes nothing) and needs no
per-request normalisation. Unknown or non-positive values count as the request's geometric mean
value (neutral). `value_weight` is the default w; `rank(x, value, w=...)` takes any.

Saved as plain data: LightGBM's own text model format (``booster.model_to_string()``) in
``model.txt`` and everything else (feature names, settings, calibration map) in ``manifest.json``
(`tastemaker.artifacts.save_state`, kind ``ranker``). No pickle.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from scipy.special import expit

from tastemaker.artifacts import MANIFEST, load_state, save_state
from tastemaker.config import StrictConfig
from tastemaker.errors import ArtifactError, ConfigError, DataError, NotFittedError, require

MODEL_FILE = "model.txt"
KIND = "ranker"


class RankerConfig(StrictConfig):
    """Settings of `Ranker` (LightGBM parameters use LightGBM's names)."""

    objective: Literal["lambdarank", "rank_xendcg"] = "lambdarank"
    n_estimators: int = Field(default=400, ge=1)
    """Boosting rounds (an upper bound when early stopping on validation data)."""
    learning_rate: float = Field(default=0.05, gt=0.0)
    num_leaves: int = Field(default=31, ge=2)
    min_child_samples: int = Field(default=50, ge=1)
    colsample_bytree: float = Field(default=0.8, gt=0.0, le=1.0)
    subsample: float = Field(default=0.8, gt=0.0, le=1.0)
    subsample_freq: int = Field(default=1, ge=0)
    reg_lambda: float = Field(default=1.0, ge=0.0)
    truncation_level: int = Field(default=20, ge=1)
    """LambdaMART: pairs are formed with the top `truncation_level` documents of each list."""
    eval_at: int = Field(default=10, ge=1)
    """NDCG cut-off watched for early stopping."""
    early_stopping_rounds: int = Field(default=50, ge=0)
    """Stop when NDCG@eval_at on the validation data has not improved for this many rounds (0: never)."""
    calibration: Literal["platt", "isotonic", "none"] = "platt"
    calibration_folds: int = Field(default=3, ge=2)
    value_weight: float = Field(default=0.0, ge=0.0)
    """w in score = log P + w · log value; 0 ranks by P(purchase) alone, 1 by expected value."""
    seed: int = 0
    n_jobs: int = Field(default=2, ge=1)
    """Threads for training; a request is always scored on the calling thread."""


# ================================================================================================
# logged training data
# ================================================================================================


@dataclass(eq=False)
class RankingData:
    """Rows grouped by request: features `x`, labels `y` (> 0 relevant), group sizes `group` (rows of
    one request are contiguous, in this order), column `names`; optional per-row `value` (for
    expected-value ranking) and `item`, and per-group `user` indices."""

    x: np.ndarray
    y: np.ndarray
    group: np.ndarray
    names: list[str]
    value: np.ndarray | None = None
    item: np.ndarray | None = None
    user: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float32)
        self.y = np.asarray(self.y, dtype=np.float32).reshape(-1)
        self.group = np.asarray(self.group, dtype=np.int64).reshape(-1)
        if self.x.ndim != 2 or self.x.shape[1] != len(self.names):
            raise DataError(f"features have shape {self.x.shape} but {len(self.names)} names")
        if len(self.y) != len(self.x) or int(self.group.sum()) != len(self.x):
            raise DataError(f"{len(self.x)} rows, {len(self.y)} labels and groups summing to {int(self.group.sum())}: "
                            "they must agree")
        for name in ("value", "item"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != len(self.x):
                raise DataError(f"{name} has {len(arr)} entries for {len(self.x)} rows")
        if self.user is not None and len(self.user) != len(self.group):
            raise DataError(f"user has {len(self.user)} entries for {len(self.group)} groups")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def n_groups(self) -> int:
        return len(self.group)

    @property
    def offsets(self) -> np.ndarray:
        out = np.zeros(len(self.group) + 1, dtype=np.int64)
        np.cumsum(self.group, out=out[1:])
        return out

    def group_ids(self) -> np.ndarray:
        """Group number of every row."""
        return np.repeat(np.arange(len(self.group)), self.group)

    def select_groups(self, groups: np.ndarray) -> RankingData:
        """The rows of the given groups (indices or a boolean mask), in that order."""
        g = np.asarray(groups)
        if g.dtype == bool:
            if g.shape != (self.n_groups,):
                raise DataError(f"a group mask needs {self.n_groups} entries, got {len(g)}")
            g = np.flatnonzero(g)
        else:
            g = g.astype(np.int64).reshape(-1)
            if len(g) and (g.min() < 0 or g.max() >= self.n_groups):
                raise DataError(f"group index {int(g[(g < 0) | (g >= self.n_groups)][0])} is outside the "
                                f"{self.n_groups} groups")
        off = self.offsets
        rows = np.concatenate([np.arange(off[i], off[i + 1]) for i in g]) if len(g) else np.zeros(0, np.int64)

        def take(a):
            return None if a is None else a[rows]

        return RankingData(self.x[rows], self.y[rows], self.group[g], list(self.names), take(self.value),
                           take(self.item), None if self.user is None else self.user[g])

    @classmethod
    def concat(cls, parts: Sequence[RankingData]) -> RankingData:
        """Several data sets with the same columns, one after another."""
        if not parts:
            raise DataError("nothing to concatenate")
        names = parts[0].names
        for p in parts[1:]:
            if p.names != names:
                raise DataError("the data sets have different feature columns")

        def cat(attr):
            arrs = [getattr(p, attr) for p in parts]
            return None if any(a is None for a in arrs) else np.concatenate(arrs)

        return cls(np.vstack([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                   np.concatenate([p.group for p in parts]), list(names), cat("value"), cat("item"), cat("user"))


def collect(retriever: Any, builder: Any, histories: Any, users: Sequence[int] | np.ndarray, *,
            labels: sp.spmatrix | None = None, now: float | None = None, allowed: np.ndarray | None = None,
            k: int | None = None, value: str | None = "price", fill_scores: bool = True,
            progress: Callable[[int, int], None] | None = None) -> RankingData:
    """Logged ranking data: for each user index, the candidates `retriever` (a `UnionRetriever`)
    gives at time `now` with hard constraints `allowed`, their features (`assemble` with `builder`),
    and labels ``labels[user, item]`` (> 0: bought afterwards; zeros without `labels`).

    Users with no candidates are skipped. `value` names the builder's value column kept per row
    (None: none)."""
    from tastemaker.ranking.features import assemble

    lab = None if labels is None else sp.csr_matrix(labels)
    xs, ys, groups, vals, items, kept = [], [], [], [], [], []
    names: list[str] | None = None
    users = np.asarray(users, dtype=np.int64)
    for j, u in enumerate(users):
        if progress is not None and j:
            progress(j, len(users))
        q = histories.query(int(u), now=now, allowed=allowed)
        cands = retriever.retrieve(q, k)
        if not len(cands):
            continue
        if fill_scores:
            cands = retriever.fill_scores(q, cands)
        names, x = assemble(cands, q, builder)
        xs.append(x)
        if lab is not None:
            row = lab[int(u)]
            y = np.zeros(len(cands), dtype=np.float32)
            if row.nnz:
                hit = np.isin(cands.items, row.indices[row.data > 0])
                y[hit] = 1.0
        else:
            y = np.zeros(len(cands), dtype=np.float32)
        ys.append(y)
        groups.append(len(cands))
        items.append(cands.items)
        if value is not None:
            vals.append(builder.values(cands.items, value))
        kept.append(u)
    if progress is not None and len(users):
        progress(len(users), len(users))
    if names is None:
        raise DataError("no user had any candidates: nothing to learn from")
    return RankingData(np.vstack(xs), np.concatenate(ys), np.asarray(groups), names,
                       np.concatenate(vals) if value is not None else None, np.concatenate(items),
                       np.asarray(kept, dtype=np.int64))


# ================================================================================================
# calibration
# ================================================================================================


@dataclass
class Calibration:
    """A monotone map from ranker score to P(purchase): Platt (a, b) or isotonic (x, y knots)."""

    kind: Literal["platt", "isotonic", "none"]
    a: float = 1.0
    b: float = 0.0
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray, kind: str) -> Calibration:
        s = np.asarray(scores, dtype=np.float64)
        t = (np.asarray(labels) > 0).astype(np.float64)
        if kind == "none":
            return cls("none")
        if len(s) != len(t):
            raise DataError(f"{len(s)} scores for {len(t)} labels")
        if not len(t) or t.min() == t.max():
            raise DataError("calibration needs both bought and not-bought rows",
                            hint="collect more requests, or a longer label window")
        if kind == "platt":
            a, b = _logistic_1d(s, t)
            return cls("platt", a=a, b=b)
        if kind == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, t)
            return cls("isotonic", x=np.asarray(iso.X_thresholds_, dtype=np.float64),
                       y=np.asarray(iso.y_thresholds_, dtype=np.float64))
        raise ConfigError(f"calibration {kind!r} is unknown; use 'platt', 'isotonic' or 'none'")

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if self.kind == "platt":
            return expit(self.a * s + self.b)
        if self.kind == "isotonic":
            return np.interp(s, self.x, self.y)
        return expit(s)

    def log_probability(self, scores: np.ndarray) -> np.ndarray:
        """log P, computed so that it keeps the order of distinct scores where P itself rounds to 1
        (Platt and ``none``: −log(1 + e^−z)); isotonic P is floored at 1e-12."""
        s = np.asarray(scores, dtype=np.float64)
        if self.kind == "isotonic":
            return np.log(np.maximum(np.interp(s, self.x, self.y), 1e-12))
        z = self.a * s + self.b if self.kind == "platt" else s
        return -np.logaddexp(0.0, -z)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a, "b": self.b, "x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls(d["kind"], float(d.get("a", 1.0)), float(d.get("b", 0.0)),
                   np.asarray(d.get("x", []), dtype=np.float64), np.asarray(d.get("y", []), dtype=np.float64))


def _logistic_1d(s: np.ndarray, t: np.ndarray, *, iterations: int = 50) -> tuple[float, float]:
    """Maximum-likelihood (a, b) of P = σ(a·s + b) by Newton's method (with a tiny ridge)."""
    mu, sd = float(s.mean()), float(s.std()) or 1.0
    z = (s - mu) / sd
    a, b = 1.0, float(np.log((t.mean() + 1e-9) / (1 - t.mean() + 1e-9)))
    for _ in range(iterations):
        p = expit(a * z + b)
        w = p * (1 - p)
        g = np.array([np.dot(z, p - t) + 1e-6 * a, np.sum(p - t)])
        h = np.array([[np.dot(w * z, z) + 1e-6, np.dot(w, z)], [np.dot(w, z), w.sum() + 1e-12]])
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a / sd), float(b - a * mu / sd)


def calibration_report(p: np.ndarray, labels: np.ndarray, *, bins: int = 10) -> dict[str, Any]:
    """Reliability of predicted probabilities `p` against 0/1 `labels`: a table per bin of equal
    width in p (rows, mean predicted, observed rate), the expected calibration error (ECE, the
    row-weighted mean |predicted − observed|), the Brier score and the log loss."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    t = (np.asarray(labels) > 0).astype(np.float64)
    if len(p) != len(t) or not len(p):
        raise DataError(f"{len(p)} probabilities for {len(t)} labels")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.minimum(np.searchsorted(edges, p, side="right") - 1, bins - 1)
    table = []
    ece = 0.0
    for b in range(bins):
        m = which == b
        if not m.any():
            continue
        pred, obs = float(p[m].mean()), float(t[m].mean())
        table.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "rows": int(m.sum()),
                      "mean_predicted": round(pred, 4), "observed": round(obs, 4)})
        ece += m.sum() / len(p) * abs(pred - obs)
    eps = 1e-12
    logloss = float(-np.mean(t * np.log(p + eps) + (1 - t) * np.log(1 - p + eps)))
    return {"rows": len(p), "base_rate": round(float(t.mean()), 5), "mean_predicted": round(float(p.mean()), 5),
            "ece": round(float(ece), 5), "brier": round(float(np.mean((p - t) ** 2)), 5),
            "brier_base_rate": round(float(t.mean() * (1 - t.mean())), 5), "log_loss": round(logloss, 5),
            "reliability": table}


# ================================================================================================
# the ranker
# ================================================================================================


class Ranker:
    """LightGBM LambdaMART with a calibrated P(purchase) and expected-value scoring (module docstring)."""

    def __init__(self, config: RankerConfig | dict[str, Any] | None = None, **params: Any) -> None:
        if isinstance(config, RankerConfig):
            config = config.to_dict()
        self.config = RankerConfig.parse(config, source="ranker config", **params)
        self.booster: Any = None
        self.names: list[str] = []
        self.calibration = Calibration("none")
        self.best_iteration: int | None = None
        self.info: dict[str, Any] = {}

    def __repr__(self) -> str:
        state = f"{len(self.names)} features, {self.n_trees} trees" if self.fitted else "not fitted"
        return f"Ranker({self.config.objective}, {state}, calibration={self.calibration.kind})"

    @property
    def fitted(self) -> bool:
        return self.booster is not None

    @property
    def n_trees(self) -> int:
        return int(self.booster.num_trees()) if self.fitted else 0

    # --- training -----------------------------------------------------------------------------
    def _lgb_ranker(self, n_estimators: int | None = None) -> Any:
        lgb = require("lightgbm", "serve")
        c = self.config
        return lgb.LGBMRanker(
            objective=c.objective, n_estimators=n_estimators or c.n_estimators, learning_rate=c.learning_rate,
            num_leaves=c.num_leaves, min_child_samples=c.min_child_samples, colsample_bytree=c.colsample_bytree,
            subsample=c.subsample, subsample_freq=c.subsample_freq, reg_lambda=c.reg_lambda,
            lambdarank_truncation_level=c.truncation_level, random_state=c.seed, n_jobs=c.n_jobs, verbose=-1)

    def _train(self, data: RankingData, valid: RankingData | None, n_estimators: int | None = None) -> Any:
        lgb = require("lightgbm", "serve")
        model = self._lgb_ranker(n_estimators)
        kwargs: dict[str, Any] = {}
        if valid is not None:
            if "eval_X" in inspect.signature(model.fit).parameters:  # LightGBM ≥ 4.6; eval_set is deprecated
                kwargs = {"eval_X": (valid.x,), "eval_y": (valid.y,)}
            else:  # pragma: no cover - older LightGBM
                kwargs = {"eval_set": [(valid.x, valid.y)]}
            kwargs.update(eval_group=[valid.group], eval_at=[self.config.eval_at], eval_names=["valid"])
            if self.config.early_stopping_rounds:
                kwargs["callbacks"] = [lgb.early_stopping(self.config.early_stopping_rounds, verbose=False)]
        model.fit(data.x, data.y, group=data.group, feature_name=[_lgb_name(n) for n in data.names], **kwargs)
        return model

    def fit(self, data: RankingData, valid: RankingData | None = None) -> Ranker:
        """Train on `data` (early stopping on `valid` when given), then calibrate by cross-fitting."""
        if not (data.y > 0).any():
            raise DataError("the training data has no relevant rows", hint="check the labels and the window")
        if valid is not None and valid.names != data.names:
            raise DataError("validation data has other feature columns than the training data")
        t0 = time.perf_counter()
        model = self._train(data, valid)
        self.booster = model.booster_
        self.names = list(data.names)
        best = getattr(model, "best_iteration_", None)
        self.best_iteration = int(best) if best else None
        if self.best_iteration:
            # keep only the trees up to the best iteration, so scoring never runs the rest
            self.booster = _load_booster(self.booster.model_to_string(num_iteration=self.best_iteration))
        self.info = {"train_rows": len(data), "train_groups": data.n_groups, "fit_seconds": 0.0,
                     "trees": self.n_trees, "best_iteration": self.best_iteration}
        if self.config.calibration != "none":
            oof, scored = self._out_of_fold_scores(data, self.n_trees)
            self.calibration = Calibration.fit(oof[scored], data.y[scored], self.config.calibration)
            self.info["calibration_rows"] = int(scored.sum())
        self.info["fit_seconds"] = round(time.perf_counter() - t0, 2)
        return self

    def _out_of_fold_scores(self, data: RankingData, n_estimators: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, scored): each row's score by a model trained on the other folds' groups; rows of a
        fold whose complement has no relevant row stay unscored (and do not calibrate)."""
        rng = np.random.default_rng(self.config.seed)
        fold = rng.integers(0, self.config.calibration_folds, data.n_groups)
        out = np.zeros(len(data))
        scored = np.zeros(len(data), dtype=bool)
        rows_fold = np.repeat(fold, data.group)
        for f in range(self.config.calibration_folds):
            train = data.select_groups(fold != f)
            if not (train.y > 0).any() or not (fold == f).any():
                continue
            booster = self._train(train, None, n_estimators).booster_
            rows = rows_fold == f
            out[rows] = booster.predict(data.x[rows], num_threads=self.config.n_jobs)
            scored |= rows
        return out, scored

    # --- scoring ------------------------------------------------------------------------------
    def _check(self, x: np.ndarray, names: Sequence[str] | None = None) -> np.ndarray:
        if not self.fitted:
            raise NotFittedError("the ranker is not fitted: call fit(data) or Ranker.load(dir)")
        hint = "assemble them with the same sources and feature builder it was trained on"
        if names is not None and list(names) != self.names:
            names = list(names)
            if len(names) != len(self.names):
                raise DataError(f"the features name {len(names)} columns; the ranker reads {len(self.names)}",
                                hint=hint)
            j = next(i for i, (a, b) in enumerate(zip(names, self.names, strict=True)) if a != b)
            raise DataError(f"feature column {j} is {names[j]!r} but the ranker was trained with {self.names[j]!r} "
                            "there", hint=hint)
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.names):
            raise DataError(f"features have shape {x.shape}; the ranker reads {len(self.names)} columns", hint=hint)
        return x

    def score(self, x: np.ndarray, *, names: Sequence[str] | None = None) -> np.ndarray:
        """The ranker's relevance scores (higher is better), on the calling thread. With `names` (the
        columns of `x`), a column order other than the training one raises."""
        x = self._check(x, names)  # before touching the booster: an unfitted ranker raises NotFittedError
        return self.booster.predict(x, num_threads=1)

    def probability(self, x: np.ndarray, *, scores: np.ndarray | None = None,
                    names: Sequence[str] | None = None) -> np.ndarray:
        """Calibrated P(purchase) of each row."""
        s = self.score(x, names=names) if scores is None else scores
        return self.calibration(s)

    def rank(self, x: np.ndarray, value: np.ndarray | None = None, *, w: float | None = None,
             names: Sequence[str] | None = None) -> np.ndarray:
        """Final scores: log P(purchase) + w · log value (w = `value_weight` by default; see the module
        docstring). Without values or with w = 0: the ranker's own order."""
        s = self.score(x, names=names)
        w = self.config.value_weight if w is None else float(w)
        return expected_value_scores(s, self.calibration, value, w)

    # --- inspection ---------------------------------------------------------------------------
    def feature_importance(self, kind: Literal["gain", "split"] = "gain") -> dict[str, float]:
        if not self.fitted:
            raise NotFittedError("the ranker is not fitted")
        imp = self.booster.feature_importance(importance_type=kind)
        total = float(imp.sum()) or 1.0
        pairs = sorted(zip(self.names, imp.tolist()), key=lambda p: -p[1])
        return {n: round(v / total, 5) for n, v in pairs}

    def calibration_report(self, data: RankingData, *, bins: int = 10) -> dict[str, Any]:
        """`calibration_report` of this ranker's P(purchase) on labelled `data`."""
        return calibration_report(self.probability(data.x, names=data.names), data.y, bins=bins)

    # --- persistence --------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``model.txt`` (LightGBM's text format) and a ``manifest.json`` (config, feature names,
        calibration; `tastemaker.artifacts.save_state`, kind ``ranker``). No pickle."""
        if not self.fitted:
            raise NotFittedError("the ranker is not fitted: nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MODEL_FILE).write_text(self.booster.model_to_string())
        state = {"config": self.config.to_dict(), "features": self.names, "calibration": self.calibration.to_dict(),
                 "best_iteration": self.best_iteration, "info": self.info}
        return save_state(directory, KIND, {}, state)  # the manifest last: a bundle with one is complete

    @classmethod
    def load(cls, directory: str | Path) -> Ranker:
        """Read a ranker written by `save` (no pickle: LightGBM text + JSON)."""
        directory = Path(directory)
        _, meta = load_state(directory, KIND)
        mpath, tpath = directory / MANIFEST, directory / MODEL_FILE
        if not tpath.is_file():
            raise ArtifactError(f"{directory} holds no saved ranker: {tpath.name} is missing")
        out = cls(meta["config"])
        out.booster = _load_booster(tpath.read_text())
        out.names = list(meta["features"])
        if out.booster.num_feature() != len(out.names):
            raise ArtifactError(f"{tpath} reads {out.booster.num_feature()} features but {mpath} names "
                                f"{len(out.names)}")
        wrong = [(a, b) for a, b in zip(out.booster.feature_name(), out.names, strict=True) if a != _lgb_name(b)]
        if wrong:
            raise ArtifactError(f"{tpath} and {mpath} disagree on the features: the model has {wrong[0][0]!r} "
                                f"where the manifest names {wrong[0][1]!r}")
        out.calibration = Calibration.from_dict(meta["calibration"])
        out.best_iteration = meta.get("best_iteration")
        out.info = meta.get("info", {})
        return out


def expected_value_scores(scores: np.ndarray, calibration: Calibration, value: np.ndarray | None,
                          w: float) -> np.ndarray:
    """log P + w · log value for one request (see the module docstring); ties in P broken by the raw score."""
    s = np.asarray(scores, dtype=np.float64)
    out = calibration.log_probability(s)
    if calibration.kind == "isotonic":
        out = out + 1e-9 * (s - s.min(initial=0.0))  # isotonic steps tie: keep the ranker's order within a step
    if value is None or w == 0.0 or not len(s):
        return out if calibration.kind != "none" else s
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    if len(v) != len(s):
        raise DataError(f"{len(v)} values for {len(s)} scores: pass one value per candidate")
    ok = np.isfinite(v) & (v > 0)
    logv = np.log(np.where(ok, v, 1.0))
    neutral = float(logv[ok].mean()) if ok.any() else 0.0
    return out + w * np.where(ok, logv, neutral)


def _lgb_name(name: str) -> str:
    """LightGBM rejects some characters in feature names; ours stay in `Ranker.names`."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def _load_booster(text: str) -> Any:
    lgb = require("lightgbm", "serve")
    return lgb.Booster(model_str=text)


__all__ = ["Calibration", "Ranker", "RankerConfig", "RankingData", "calibration_report", "collect",
           "expected_value_scores"]
