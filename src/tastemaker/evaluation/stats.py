"""Uncertainty for per-user metrics: bootstrap confidence intervals and paired model comparisons.

Inputs are per-user metric arrays as returned by `tastemaker.evaluation.metrics`; NaN marks a
user for whom the metric is undefined (e.g. no relevant items) and is dropped.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.stats

from tastemaker.errors import DataError

__all__ = ["Estimate", "PairedComparison", "bootstrap_ci", "paired_test", "summarize"]

# resampled indices held at once (resamples × users); bounds memory to ~50 MB
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class Estimate:
    """Mean over users with a percentile-bootstrap confidence interval; n users contributed."""

    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class PairedComparison:
    """System a minus system b over the same users: mean difference, its CI and two paired tests."""

    mean_diff: float
    low: float
    high: float
    t_statistic: float
    t_pvalue: float
    wilcoxon_pvalue: float
    n: int

    def __str__(self) -> str:
        return (f"{self.mean_diff:+.4f} [{self.low:+.4f}, {self.high:+.4f}] "
                f"(paired t p={self.t_pvalue:.3g}, Wilcoxon p={self.wilcoxon_pvalue:.3g}, n={self.n})")


def _check_params(n_resamples, confidence) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1 (e.g. 0.95), got {confidence!r}")


def _finite_1d(values, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of per-user values, got shape {x.shape}")
    if np.isinf(x).any():
        raise DataError(f"{name} holds infinite values", hint="per-user metrics must be finite or NaN (undefined)")
    return x


def _bootstrap_means(x: np.ndarray, n_resamples: int, seed) -> np.ndarray:
    """Means of `n_resamples` resamples (with replacement) of x, drawn in chunks of index rows."""
    n = x.size
    rng = np.random.default_rng(seed)
    index_dtype = np.int32 if n < 2**31 else np.int64
    step = max(1, _CHUNK_CELLS // n)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=index_dtype)
        means[start:stop] = x[idx].mean(axis=1)
    return means


def _interval(x: np.ndarray, n_resamples: int, confidence: float, seed) -> tuple[float, float]:
    alpha = 1.0 - float(confidence)
    means = _bootstrap_means(x, n_resamples, seed)
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def bootstrap_ci(values, *, n_resamples: int = 2000, confidence: float = 0.95, seed=0) -> Estimate:
    """Mean of per-user `values` with a percentile-bootstrap confidence interval.

    NaNs are dropped first (n counts the rest). Users are resampled with replacement
    `n_resamples` times; the interval is the (1 ± confidence)/2 quantiles of the resampled means.
    Deterministic for a given seed. With no finite value every field is NaN and n is 0.
    """
    _check_params(n_resamples, confidence)
    x = _finite_1d(values, "values")
    x = x[~np.isnan(x)]
    if x.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    low, high = _interval(x, int(n_resamples), confidence, seed)
    return Estimate(float(x.mean()), low, high, int(x.size))


def paired_test(a, b, *, n_resamples: int = 2000, confidence: float = 0.95, seed=0) -> PairedComparison:
    """Compare two systems on the same users (a − b).

    `a[j]` and `b[j]` must be the same user's metric; pairs where either is NaN are dropped.
    Returns the mean difference with a percentile-bootstrap CI, the paired t-test
    (`scipy.stats.ttest_rel`) and the Wilcoxon signed-rank test (`scipy.stats.wilcoxon`, zero
    differences dropped). When every difference is zero the tests report t = 0 and p = 1 (no
    evidence of a difference); with fewer than 2 pairs the t-test is NaN. With no pair left,
    every field is NaN and n is 0.
    """
    _check_params(n_resamples, confidence)
    x = _finite_1d(a, "a")
    y = _finite_1d(b, "b")
    if x.shape != y.shape:
        raise DataError(f"a has {x.size} users but b has {y.size}",
                        hint="evaluate both systems on the same users, in the same order")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    d = x - y
    n = int(d.size)
    nan = float("nan")
    if n == 0:
        return PairedComparison(nan, nan, nan, nan, nan, nan, 0)
    low, high = _interval(d, int(n_resamples), confidence, seed)
    if not d.any():
        return PairedComparison(0.0, low, high, 0.0, 1.0, 1.0, n)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if n >= 2:
            t = scipy.stats.ttest_rel(x, y)
            t_stat, t_p = float(t.statistic), float(t.pvalue)
        else:
            t_stat, t_p = nan, nan
        w_p = float(scipy.stats.wilcoxon(d).pvalue)
    return PairedComparison(float(d.mean()), low, high, t_stat, t_p, w_p, n)


def summarize(per_user: dict[str, np.ndarray], **bootstrap_kw) -> dict[str, Estimate]:
    """`bootstrap_ci` of every metric in `per_user` (e.g. the output of `ranking_metrics`), same keys."""
    return {name: bootstrap_ci(values, **bootstrap_kw) for name, values in per_user.items()}
