"""Off-policy evaluation: the value of a target policy estimated from another policy's logged feedback.

Logged bandit feedback (`LoggedFeedback`): for each round i a context x_i, the action a_i the
logging policy took with probability p_i (its logged propensity), and the reward r_i. A target
policy π is given as its action probabilities on the logged contexts, ``target[i, a] = π(a | x_i)``
(`policy_probabilities` builds them from a `tastemaker.exploration.Policy`). With importance
weights w_i = π(a_i | x_i) / p_i:

- **IPS** (inverse propensity scoring): V̂ = (1/n) Σ w_i r_i — unbiased when p_i > 0 wherever π
  acts; its variance grows with the weights.
- **SNIPS** (self-normalised IPS, Swaminathan & Joachims 2015): V̂ = Σ w_i r_i / Σ w_i — slightly
  biased (O(1/n)), usually much less variable.
- **DM** (direct method): V̂ = (1/n) Σ_a π(a | x_i) q̂(x_i, a) with a reward model q̂ — low
  variance, biased by the model's error.
- **DR** (doubly robust, Dudík, Langford & Li 2011): DM plus the IPS-weighted residual of the
  logged action, (1/n) Σ [Σ_a π(a|x_i) q̂(x_i,a) + w_i (r_i − q̂(x_i, a_i))] — unbiased when the
  propensities are right, and lower variance than IPS when q̂ is decent.

Each estimate comes with a confidence interval: asymptotic (normal, from the per-round terms or
SNIPS's linearisation) or percentile bootstrap over rounds. The DM interval ignores the reward
model's error, so it under-covers whenever q̂ is biased; it is reported for comparison only.

`fit_reward_model` cross-fits q̂ (each round predicted by a model that never saw it), as DR's
guarantees assume. `BanditSimulator` generates logged feedback with a known ground truth: a
logistic reward model, a stochastic logging policy and the exact value of any target policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import scipy.stats

from tastemaker.errors import ConfigError, DataError

__all__ = [
    "ESTIMATORS",
    "BanditSimulator",
    "LoggedFeedback",
    "OPEResult",
    "direct_method",
    "doubly_robust",
    "evaluate_policy",
    "fit_reward_model",
    "ips",
    "policy_probabilities",
    "snips",
]

CI = Literal["asymptotic", "bootstrap"]
ESTIMATORS = ("ips", "snips", "dm", "dr")


# --- data -----------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LoggedFeedback:
    """Logged bandit feedback: n rounds of (context, action, reward, propensity).

    `actions` are indices 0..n_actions-1; `propensities[i]` is the logging policy's probability of
    `actions[i]` in round i. Simulated logs also carry the ground truth: `expected_rewards` (n, K),
    q(x_i, a), and `logging_probabilities` (n, K).
    """

    contexts: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    propensities: np.ndarray
    n_actions: int
    expected_rewards: np.ndarray | None = None
    logging_probabilities: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.actions)
        a = np.asarray(self.actions)
        if a.ndim != 1 or (n and a.dtype.kind not in "iu"):
            raise DataError("actions must be a 1-D array of integer action indices")
        if n and (a.min() < 0 or a.max() >= self.n_actions):
            raise DataError(f"actions must lie in [0, {self.n_actions}), found {a.min()}..{a.max()}")
        for name in ("rewards", "propensities"):
            v = np.asarray(getattr(self, name))
            if v.shape != (n,):
                raise DataError(f"{name} has shape {v.shape}, expected ({n},) (one per logged round)")
            if not np.isfinite(v).all():
                raise DataError(f"{name} holds non-finite values")
        p = np.asarray(self.propensities)
        if n and ((p <= 0) | (p > 1)).any():
            bad = int(np.flatnonzero((p <= 0) | (p > 1))[0])
            raise DataError(f"propensities must be in (0, 1]; round {bad} has {p[bad]!r}",
                            hint="log the probability the logging policy gave the action it took (never 0)")
        if len(self.contexts) != n:
            raise DataError(f"{len(self.contexts)} contexts for {n} logged rounds")

    def __len__(self) -> int:
        return len(self.actions)

    def subset(self, rows: np.ndarray) -> LoggedFeedback:
        """The rounds `rows` (indices or a boolean mask)."""
        pick = lambda x: None if x is None else x[rows]  # noqa: E731
        return LoggedFeedback(self.contexts[rows], self.actions[rows], self.rewards[rows], self.propensities[rows],
                              self.n_actions, pick(self.expected_rewards), pick(self.logging_probabilities))

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]], actions: Sequence[Any], *,
                     context_key: str = "context", reward_key: str = "reward") -> LoggedFeedback:
        """Logs from choice-log records (`tastemaker.exploration` logs) joined with their rewards.

        Each record needs ``action``, ``propensity`` and `reward_key`; `context_key` (a list of
        numbers) is optional (missing: an empty context). `actions` fixes the action → index map.
        """
        index = {str(a): j for j, a in enumerate(actions)}
        acts, rewards, props, ctx = [], [], [], []
        for n, rec in enumerate(records):
            missing = [k for k in ("action", "propensity", reward_key) if k not in rec]
            if missing:
                raise DataError(f"record {n} has no {', '.join(missing)}",
                                hint=f"join each logged decision with its observed reward under {reward_key!r}")
            key = str(rec["action"])
            if key not in index:
                raise DataError(f"record {n} took action {rec['action']!r}, which is not in the given actions")
            acts.append(index[key])
            rewards.append(float(rec[reward_key]))
            props.append(float(rec["propensity"]))
            ctx.append(np.asarray(rec.get(context_key, []), dtype=np.float64).ravel())
        dims = {len(c) for c in ctx}
        if len(dims) > 1:
            raise DataError(f"records have contexts of different lengths {sorted(dims)}")
        contexts = np.array(ctx) if ctx else np.empty((0, 0))
        return cls(contexts.reshape(len(acts), -1), np.asarray(acts, dtype=np.int64), np.asarray(rewards),
                   np.asarray(props), len(index))


@dataclass(frozen=True)
class OPEResult:
    """A policy-value estimate with its confidence interval.

    `std_error` is the asymptotic standard error (also given with a bootstrap interval); `ess` the
    effective sample size of the importance weights, (Σw)² / Σw² (n for DM).
    """

    estimator: str
    value: float
    low: float
    high: float
    std_error: float
    n: int
    ess: float
    confidence: float
    ci: str

    def covers(self, truth: float) -> bool:
        return self.low <= truth <= self.high

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.estimator} {self.value:.4f} [{self.low:.4f}, {self.high:.4f}] (ess {self.ess:.0f} of {self.n})"


# --- estimators -------------------------------------------------------------------------------------

def _check_target(logs: LoggedFeedback, target: np.ndarray) -> np.ndarray:
    t = np.asarray(target, dtype=np.float64)
    if t.shape != (len(logs), logs.n_actions):
        raise DataError(f"target probabilities have shape {t.shape}, expected ({len(logs)}, {logs.n_actions}) "
                        "(the target policy's probability of each action on each logged context)")
    if not np.isfinite(t).all() or (t < 0).any() or not np.allclose(t.sum(axis=1), 1.0, atol=1e-6):
        raise DataError("target probabilities must be non-negative and sum to 1 in every row")
    if len(logs) == 0:
        raise DataError("no logged rounds to evaluate on")
    return t


def _weights(logs: LoggedFeedback, target: np.ndarray, clip: float | None) -> np.ndarray:
    w = target[np.arange(len(logs)), logs.actions] / logs.propensities
    if clip is not None:
        if not float(clip) > 0:
            raise ConfigError(f"clip must be a positive maximum weight, got {clip!r}")
        w = np.minimum(w, float(clip))
    return w


def _ess(w: np.ndarray) -> float:
    s2 = float(np.sum(w * w))
    return float(np.sum(w) ** 2 / s2) if s2 > 0 else 0.0


def _check_ci(ci: str, confidence: float, n_resamples: int) -> float:
    if ci not in ("asymptotic", "bootstrap"):
        raise ConfigError(f"ci must be 'asymptotic' or 'bootstrap', got {ci!r}")
    if not 0.0 < float(confidence) < 1.0:
        raise ConfigError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    if int(n_resamples) < 10:
        raise ConfigError(f"n_resamples must be at least 10, got {n_resamples!r}")
    return float(scipy.stats.norm.ppf(0.5 + float(confidence) / 2.0))


_CHUNK_CELLS = 4_000_000


def _bootstrap(num: np.ndarray, den: np.ndarray | None, n_resamples: int, confidence: float, seed: int
               ) -> tuple[float, float]:
    """Percentile interval of mean(num) (or Σnum/Σden) over rounds resampled with replacement."""
    n = len(num)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    step = max(1, _CHUNK_CELLS // n)
    for s in range(0, n_resamples, step):
        idx = rng.integers(0, n, size=(min(step, n_resamples - s), n))
        top = num[idx].sum(axis=1)
        stats[s:s + len(idx)] = top / (den[idx].sum(axis=1) if den is not None else n)
    alpha = 1.0 - confidence
    lo, hi = np.nanquantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def _result(name: str, terms: np.ndarray, value: float, influence: np.ndarray, ess: float, *, ci: str,
            confidence: float, n_resamples: int, seed: int, den: np.ndarray | None = None) -> OPEResult:
    z = _check_ci(ci, confidence, n_resamples)
    n = len(terms)
    se = float(np.std(influence, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    if ci == "asymptotic":
        low, high = value - z * se, value + z * se
    else:
        low, high = _bootstrap(terms, den, int(n_resamples), float(confidence), seed)
    return OPEResult(name, float(value), float(low), float(high), se, n, float(ess), float(confidence), ci)


def ips(logs: LoggedFeedback, target: np.ndarray, *, clip: float | None = None, ci: CI = "asymptotic",
        confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0) -> OPEResult:
    """Inverse propensity scoring: mean of w_i r_i (weights optionally clipped at `clip`, which biases it)."""
    t = _check_target(logs, target)
    w = _weights(logs, t, clip)
    terms = w * logs.rewards
    return _result("ips", terms, float(terms.mean()), terms, _ess(w), ci=ci, confidence=confidence,
                   n_resamples=n_resamples, seed=seed)


def snips(logs: LoggedFeedback, target: np.ndarray, *, clip: float | None = None, ci: CI = "asymptotic",
          confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0) -> OPEResult:
    """Self-normalised IPS: Σ w_i r_i / Σ w_i; the asymptotic CI linearises the ratio (delta method)."""
    t = _check_target(logs, target)
    w = _weights(logs, t, clip)
    if w.sum() <= 0:
        raise DataError("the target policy never takes a logged action: every importance weight is 0",
                        hint="SNIPS is undefined; the logs carry no information about this policy")
    terms = w * logs.rewards
    value = float(terms.sum() / w.sum())
    influence = w * (logs.rewards - value) / w.mean()
    return _result("snips", terms, value, influence, _ess(w), ci=ci, confidence=confidence,
                   n_resamples=n_resamples, seed=seed, den=w)


def _check_q(logs: LoggedFeedback, q_hat: np.ndarray) -> np.ndarray:
    q = np.asarray(q_hat, dtype=np.float64)
    if q.shape != (len(logs), logs.n_actions):
        raise DataError(f"reward predictions have shape {q.shape}, expected ({len(logs)}, {logs.n_actions})",
                        hint="predict every action's reward on every logged context (fit_reward_model does)")
    if not np.isfinite(q).all():
        raise DataError("reward predictions hold non-finite values")
    return q


def direct_method(logs: LoggedFeedback, target: np.ndarray, q_hat: np.ndarray, *, ci: CI = "asymptotic",
                  confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0) -> OPEResult:
    """Direct method: the reward model's value of the target policy (its CI ignores the model's error)."""
    t = _check_target(logs, target)
    terms = np.einsum("na,na->n", t, _check_q(logs, q_hat))
    return _result("dm", terms, float(terms.mean()), terms, float(len(logs)), ci=ci, confidence=confidence,
                   n_resamples=n_resamples, seed=seed)


def doubly_robust(logs: LoggedFeedback, target: np.ndarray, q_hat: np.ndarray, *, clip: float | None = None,
                  ci: CI = "asymptotic", confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
                  ) -> OPEResult:
    """Doubly robust: the direct method plus the importance-weighted residual of the logged action."""
    t = _check_target(logs, target)
    q = _check_q(logs, q_hat)
    w = _weights(logs, t, clip)
    rows = np.arange(len(logs))
    terms = np.einsum("na,na->n", t, q) + w * (logs.rewards - q[rows, logs.actions])
    return _result("dr", terms, float(terms.mean()), terms, _ess(w), ci=ci, confidence=confidence,
                   n_resamples=n_resamples, seed=seed)


def evaluate_policy(logs: LoggedFeedback, target: np.ndarray, q_hat: np.ndarray | None = None, *,
                    clip: float | None = None, ci: CI = "asymptotic", confidence: float = 0.95,
                    n_resamples: int = 1000, seed: int = 0) -> dict[str, OPEResult]:
    """Every estimator on the same logs: IPS and SNIPS, plus DM and DR when `q_hat` is given."""
    kw = {"ci": ci, "confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    out = {"ips": ips(logs, target, clip=clip, **kw), "snips": snips(logs, target, clip=clip, **kw)}
    if q_hat is not None:
        out["dm"] = direct_method(logs, target, q_hat, **kw)
        out["dr"] = doubly_robust(logs, target, q_hat, clip=clip, **kw)
    return out


# --- reward model -------------------------------------------------------------------------------------

def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 50) -> np.ndarray:
    """L2-penalised logistic regression by Newton's method (x includes the intercept column, unpenalised)."""
    d = x.shape[1]
    pen = np.full(d, l2)
    pen[-1] = 0.0
    w = np.zeros(d)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + pen * w
        hess = (x * (p * (1.0 - p))[:, None]).T @ x + np.diag(pen) + 1e-9 * np.eye(d)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _fit_ridge(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    pen = np.full(x.shape[1], l2)
    pen[-1] = 0.0
    return np.linalg.solve(x.T @ x + np.diag(pen) + 1e-9 * np.eye(x.shape[1]), x.T @ y)


def fit_reward_model(logs: LoggedFeedback, *, kind: Literal["auto", "logistic", "ridge"] = "auto",
                     l2: float = 1.0, folds: int = 2, seed: int = 0) -> np.ndarray:
    """Cross-fitted reward predictions q̂ (n, K) on the logged contexts for every action.

    One linear model per action on the context plus an intercept (penalised by `l2`, the intercept
    not): logistic regression for 0/1 rewards (``auto`` picks it when every reward is 0 or 1), ridge
    regression otherwise. An action with no (or only constant) training rewards predicts the
    training mean of its rewards (or of all rewards). Rounds are split at random into `folds` folds;
    each fold is predicted by the models fitted on the others (`folds=1`: fit and predict on all
    rounds, which biases DR towards the direct method).
    """
    if kind not in ("auto", "logistic", "ridge"):
        raise ConfigError(f"kind must be 'auto', 'logistic' or 'ridge', got {kind!r}")
    if isinstance(folds, bool) or int(folds) < 1:
        raise ConfigError(f"folds must be a positive integer, got {folds!r}")
    binary = bool(np.isin(logs.rewards, (0.0, 1.0)).all())
    if kind == "auto":
        kind = "logistic" if binary else "ridge"
    if kind == "logistic" and not binary:
        raise DataError("a logistic reward model needs 0/1 rewards", hint="use kind='ridge' for real-valued rewards")
    n, k = len(logs), logs.n_actions
    x = np.hstack([np.asarray(logs.contexts, dtype=np.float64).reshape(n, -1), np.ones((n, 1))])
    folds = int(folds)
    fold = np.random.default_rng(seed).permutation(n) % folds
    q = np.empty((n, k))
    for f in range(folds):
        test = fold == f
        train = ~test if folds > 1 else test
        overall = float(logs.rewards[train].mean()) if train.any() else 0.0
        for a in range(k):
            rows = train & (logs.actions == a)
            y = logs.rewards[rows]
            if len(y) == 0 or (kind == "logistic" and len(np.unique(y)) < 2):
                q[test, a] = float(y.mean()) if len(y) else overall
                continue
            if kind == "logistic":
                w = _fit_logistic(x[rows], y, l2)
                q[test, a] = 1.0 / (1.0 + np.exp(-(x[test] @ w)))
            else:
                q[test, a] = x[test] @ _fit_ridge(x[rows], y, l2)
    return q


# --- policies as probabilities on logged contexts -------------------------------------------------------

def policy_probabilities(policy: Any, contexts: np.ndarray | Sequence[Any], actions: Sequence[Any]) -> np.ndarray:
    """(n, K) probabilities of a `tastemaker.exploration.Policy` (its current state) on each context."""
    acts = list(actions)
    return np.vstack([policy.probabilities(c, acts) for c in contexts]) if len(contexts) else np.empty((0, len(acts)))


# --- simulation with a known ground truth --------------------------------------------------------------

PolicyFn = Callable[[np.ndarray], np.ndarray]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class BanditSimulator:
    """A contextual Bernoulli bandit with known expected rewards, to validate estimators.

    Contexts x ~ N(0, I_d); q(x, a) = sigmoid(x·θ_a + b_a) with θ_a ~ N(0, I/d)·`signal`, b_a ~ N(−1, 0.5²)
    (click-like rates around 0.25). Policies are functions ``contexts (n, d) -> probabilities (n, K)``;
    `softmax_policy` and `epsilon_greedy_policy` build them from noisy or exact reward scores.
    """

    def __init__(self, n_actions: int = 10, dim: int = 5, *, signal: float = 2.0, seed: int = 0) -> None:
        if n_actions < 2 or dim < 1:
            raise ConfigError("BanditSimulator needs n_actions >= 2 and dim >= 1")
        rng = np.random.default_rng(seed)
        self.n_actions = int(n_actions)
        self.dim = int(dim)
        self.theta = rng.standard_normal((n_actions, dim)) * signal / np.sqrt(dim)
        self.bias = rng.normal(-1.0, 0.5, n_actions)
        self.seed = int(seed)

    def contexts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal((n, self.dim))

    def expected(self, contexts: np.ndarray) -> np.ndarray:
        """q(x, a) for every context row and action."""
        return 1.0 / (1.0 + np.exp(-(contexts @ self.theta.T + self.bias)))

    def softmax_policy(self, temperature: float = 1.0, *, noise: float = 0.0, seed: int = 0) -> PolicyFn:
        """Softmax over the logits x·θ̃_a + b_a / temperature, θ̃ = θ + `noise`·N(0, 1) (a misinformed policy)."""
        rng = np.random.default_rng([self.seed, seed, 1])
        theta = self.theta + noise * rng.standard_normal(self.theta.shape)
        bias = self.bias + noise * rng.standard_normal(self.bias.shape)
        t = float(temperature)
        return lambda x: _softmax((x @ theta.T + bias) / t)

    def epsilon_greedy_policy(self, epsilon: float = 0.1) -> PolicyFn:
        """The best action by the true q with probability 1 − ε, uniform otherwise."""
        eps = float(epsilon)

        def probs(x: np.ndarray) -> np.ndarray:
            q = self.expected(x)
            best = np.zeros_like(q)
            best[np.arange(len(q)), q.argmax(axis=1)] = 1.0
            return eps / self.n_actions + (1.0 - eps) * best

        return probs

    def uniform_policy(self) -> PolicyFn:
        return lambda x: np.full((len(x), self.n_actions), 1.0 / self.n_actions)

    def log(self, n_rounds: int, logging: PolicyFn, *, seed: int = 0) -> LoggedFeedback:
        """`n_rounds` rounds of feedback logged by `logging` (actions drawn from its probabilities)."""
        rng = np.random.default_rng([self.seed, seed, 2])
        x = self.contexts(n_rounds, rng)
        p = logging(x)
        cum = np.cumsum(p, axis=1)
        u = rng.random(n_rounds)[:, None] * cum[:, -1:]
        a = np.minimum((cum <= u).sum(axis=1), self.n_actions - 1)
        q = self.expected(x)
        rows = np.arange(n_rounds)
        r = (rng.random(n_rounds) < q[rows, a]).astype(np.float64)
        return LoggedFeedback(x, a.astype(np.int64), r, p[rows, a], self.n_actions, q, p)

    def value(self, policy: PolicyFn, *, n: int = 200_000, seed: int = 12345) -> float:
        """The policy's true value E_x[Σ_a π(a|x) q(x, a)], averaged over `n` fresh contexts (exact per context)."""
        rng = np.random.default_rng([self.seed, seed, 3])
        total = 0.0
        for s in range(0, n, 50_000):
            x = self.contexts(min(50_000, n - s), rng)
            total += float(np.einsum("na,na->", policy(x), self.expected(x)))
        return total / n
