"""The statistics of A/B tests, vectorised: every function works on arrays whose last axis is the
units, and leading axes are independent replicates (so 1,000 A/A tests are one call).

A metric is a ratio of per-unit sums, R = Σy / Σx; a per-unit mean is the case x = 1. Its
variance comes from the delta method on the linearised per-unit values L = (y − R·x) / x̄ (for
x = 1 this is the plain sample variance), and two arms are compared by a Welch t-test on the
difference, with Welch–Satterthwaite degrees of freedom. The relative change (lift) gets its
standard error by the delta method too.

- CUPED (Deng et al. 2013): a pre-period covariate z (0 for units without pre-period data) removes
  the part of L that z predicts: R_adj = R − θ (z̄_arm − z̄), θ = pooled cov(L, z) / var(z), with
  variance var(L − θ z) / n. Unbiased (z is fixed before the treatment), narrower when z correlates.
- mSPRT (Johari et al. 2017) with a normal mixture N(0, τ²) over the difference: the mixture
  likelihood ratio Λ gives an always-valid p-value (running min of 1/Λ over looks) and a
  confidence sequence; both stay valid however often one peeks.
- SRM: Pearson χ² of the units per arm against the configured shares.
- Bootstrap: units reweighted with Exp(1) weights (Bayesian bootstrap), percentile intervals of the lift.
- Multiple metrics: Holm (family-wise) or Benjamini–Hochberg (false discovery rate) adjustment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

# ================================================================================================
# moments and estimates
# ================================================================================================


@dataclass
class Moments:
    """Per-arm sums over units (arrays over the leading axes): n, Σy, Σx, Σy², Σx², Σxy and, with a
    covariate z, Σz, Σz², Σyz, Σxz."""

    n: np.ndarray
    sy: np.ndarray
    sx: np.ndarray
    syy: np.ndarray
    sxx: np.ndarray
    sxy: np.ndarray
    sz: np.ndarray | None = None
    szz: np.ndarray | None = None
    syz: np.ndarray | None = None
    sxz: np.ndarray | None = None


def moments(y: np.ndarray, x: np.ndarray | None = None, *, mask: np.ndarray | None = None,
            z: np.ndarray | None = None) -> Moments:
    """Sums over the last axis of y (and x, z), counting only units where `mask` is true."""
    y = np.asarray(y, dtype=np.float64)
    w = np.ones(y.shape, dtype=np.float64) if mask is None else np.broadcast_to(mask, y.shape).astype(np.float64)
    n = w.sum(-1)
    wy = w * y
    sy = wy.sum(-1)
    syy = (wy * y).sum(-1)
    if x is None:
        sx, sxx, sxy = n, n, sy
    else:
        x = np.asarray(x, dtype=np.float64)
        wx = w * x
        sx = wx.sum(-1)
        sxx = (wx * x).sum(-1)
        sxy = (wx * y).sum(-1)
    if z is None:
        return Moments(n, sy, sx, syy, sxx, sxy)
    z = np.asarray(z, dtype=np.float64)
    wz = w * z
    sz = wz.sum(-1)
    sxz = sz if x is None else (wz * x).sum(-1)
    return Moments(n, sy, sx, syy, sxx, sxy, sz, (wz * z).sum(-1), (wz * y).sum(-1), sxz)


@dataclass
class Estimate:
    """One arm's metric: `value` (the ratio, CUPED-adjusted when a covariate was used), `var` (its
    variance), `s2` (the per-unit variance of the linearised values; var = s2 / n) and `n`."""

    value: np.ndarray
    var: np.ndarray
    s2: np.ndarray
    n: np.ndarray


def _cov(sab: np.ndarray, sa: np.ndarray, sb: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sab - sa * sb / n) / (n - 1.0)


def _linearised(m: Moments) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R, x̄, per-unit variance of L = (y − R x)/x̄)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = m.sy / m.sx
        mx = m.sx / m.n
        vyy = _cov(m.syy, m.sy, m.sy, m.n)
        vxx = _cov(m.sxx, m.sx, m.sx, m.n)
        vxy = _cov(m.sxy, m.sx, m.sy, m.n)
        s2 = (vyy - 2.0 * r * vxy + r * r * vxx) / (mx * mx)
    return r, mx, np.maximum(s2, 0.0)


def estimate(m: Moments) -> Estimate:
    """The arm's ratio and its delta-method variance."""
    r, _, s2 = _linearised(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return Estimate(r, s2 / m.n, s2, m.n)


def cuped_estimates(mt: Moments, mc: Moments) -> tuple[Estimate, Estimate, np.ndarray]:
    """Both arms CUPED-adjusted with one pooled θ; returns (treatment, control, θ)."""
    if mt.sz is None or mc.sz is None:
        raise ValueError("CUPED needs moments computed with a covariate z")
    out = []
    parts = []
    for m in (mt, mc):
        r, mx, s2 = _linearised(m)
        with np.errstate(invalid="ignore", divide="ignore"):
            c_lz = (_cov(m.syz, m.sy, m.sz, m.n) - r * _cov(m.sxz, m.sx, m.sz, m.n)) / mx
            v_z = _cov(m.szz, m.sz, m.sz, m.n)
        parts.append((r, s2, c_lz, v_z, m))
    with np.errstate(invalid="ignore", divide="ignore"):
        num = sum((p[4].n - 1.0) * p[2] for p in parts)
        den = sum((p[4].n - 1.0) * p[3] for p in parts)
        theta = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        zbar = (mt.sz + mc.sz) / (mt.n + mc.n)
        for r, s2, c_lz, v_z, m in parts:
            value = r - theta * (m.sz / m.n - zbar)
            s2_adj = np.maximum(s2 - 2.0 * theta * c_lz + theta * theta * v_z, 0.0)
            out.append(Estimate(value, s2_adj / m.n, s2_adj, m.n))
    return out[0], out[1], theta


# ================================================================================================
# the Welch comparison
# ================================================================================================


@dataclass
class Comparison:
    """Treatment vs control on one metric (arrays over the leading axes).

    diff = value_t − value_c with its standard error `se`, Welch `df`, two-sided `p` and the
    (1 − α) interval [low, high]; lift = value_t / value_c − 1 with `lift_se` and [lift_low, lift_high].
    """

    value_t: np.ndarray
    value_c: np.ndarray
    diff: np.ndarray
    se: np.ndarray
    df: np.ndarray
    p: np.ndarray
    low: np.ndarray
    high: np.ndarray
    lift: np.ndarray
    lift_se: np.ndarray
    lift_low: np.ndarray
    lift_high: np.ndarray
    var_t: np.ndarray
    var_c: np.ndarray
    s2_t: np.ndarray
    s2_c: np.ndarray
    n_t: np.ndarray
    n_c: np.ndarray


def welch(t: Estimate, c: Estimate, alpha: float = 0.05) -> Comparison:
    """Welch's t-test of t − c and the CIs of the difference and the relative lift."""
    with np.errstate(invalid="ignore", divide="ignore"):
        v = t.var + c.var
        se = np.sqrt(v)
        diff = t.value - c.value
        df = v * v / (t.var ** 2 / (t.n - 1.0) + c.var ** 2 / (c.n - 1.0))
        df = np.where(np.isfinite(df), df, np.inf)
        stat = diff / se
        p = 2.0 * sps.t.sf(np.abs(stat), df)
        q = sps.t.ppf(1.0 - alpha / 2.0, df)
        lift = t.value / c.value - 1.0
        lift_se = np.sqrt(t.var / c.value ** 2 + t.value ** 2 * c.var / c.value ** 4)
    return Comparison(t.value, c.value, diff, se, df, p, diff - q * se, diff + q * se, lift, lift_se,
                      lift - q * lift_se, lift + q * lift_se, t.var, c.var, t.s2, c.s2, t.n, c.n)


def compare_arrays(y: np.ndarray, x: np.ndarray | None, mask_t: np.ndarray, mask_c: np.ndarray, *,
                   z: np.ndarray | None = None, alpha: float = 0.05) -> Comparison:
    """Compare the arms `mask_t` vs `mask_c` on Σy/Σx (a per-unit mean when x is None); with a
    pre-period covariate `z`, CUPED-adjusted. The last axis is the units."""
    mt = moments(y, x, mask=mask_t, z=z)
    mc = moments(y, x, mask=mask_c, z=z)
    if z is None:
        return welch(estimate(mt), estimate(mc), alpha)
    et, ec, _ = cuped_estimates(mt, mc)
    return welch(et, ec, alpha)


# ================================================================================================
# sequential testing: mSPRT with a normal mixture
# ================================================================================================


def msprt_lr(diff: np.ndarray, var: np.ndarray, tau2: np.ndarray) -> np.ndarray:
    """The mixture likelihood ratio Λ of "difference = 0" for an estimate `diff` with variance `var`
    under the mixture N(0, τ²) of alternatives."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        s = var + tau2
        return np.sqrt(var / s) * np.exp(tau2 * diff * diff / (2.0 * var * s))


def always_valid_p(diffs: np.ndarray, variances: np.ndarray, tau2: np.ndarray | float) -> np.ndarray:
    """Always-valid p-values after each look: the running minimum of min(1, 1/Λ) over the looks
    (the looks are the last axis). Rejecting when it falls below α keeps the type-I error ≤ α
    for any stopping rule."""
    lr = msprt_lr(np.asarray(diffs, float), np.asarray(variances, float), np.asarray(tau2, float)[..., None]
                  if np.ndim(tau2) else tau2)
    with np.errstate(divide="ignore"):
        p = np.minimum(1.0, np.where(np.isfinite(lr) & (lr > 0), 1.0 / lr, np.where(np.isinf(lr), 0.0, 1.0)))
    return np.minimum.accumulate(p, axis=-1)


def cs_radius(var: np.ndarray, tau2: np.ndarray | float, alpha: float = 0.05) -> np.ndarray:
    """Half-width of the mSPRT confidence sequence at one look: every difference d with
    Λ(diff − d) < 1/α, i.e. diff ± sqrt(V (V+τ²)/τ² · (2 log(1/α) + log((V+τ²)/V)))."""
    var = np.asarray(var, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = var + tau2
        return np.sqrt(var * s / tau2 * (2.0 * np.log(1.0 / alpha) + np.log(s / var)))


# ================================================================================================
# sample ratio mismatch, multiplicity, power
# ================================================================================================


def srm_test(counts: Sequence[float] | np.ndarray, shares: Sequence[float] | np.ndarray,
             threshold: float = 0.001) -> dict[str, float | bool | list[float]]:
    """Pearson χ² of observed units per arm against the expected shares (last axis = arms).

    Returns chi2, p, flagged (p < threshold) and the expected counts; vectorised over leading axes
    when `counts` is 2-D (then chi2/p/flagged are arrays).
    """
    counts = np.asarray(counts, dtype=np.float64)
    shares = np.asarray(shares, dtype=np.float64)
    shares = shares / shares.sum()
    total = counts.sum(-1, keepdims=True)
    expected = total * shares
    chi2 = ((counts - expected) ** 2 / expected).sum(-1)
    p = sps.chi2.sf(chi2, counts.shape[-1] - 1)
    if counts.ndim == 1:
        return {"chi2": float(chi2), "p": float(p), "flagged": bool(p < threshold), "threshold": threshold,
                "expected": expected.tolist(), "observed": counts.tolist()}
    return {"chi2": chi2, "p": p, "flagged": p < threshold, "threshold": threshold}


def adjust_pvalues(pvalues: Sequence[float], method: str = "holm") -> np.ndarray:
    """Multiplicity-adjusted p-values: "holm" (family-wise error), "bh" (false discovery rate) or
    "none". NaN p-values stay NaN and are left out of the family."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = p.copy()
    ok = np.isfinite(p)
    if method == "none" or ok.sum() <= 1:
        return out
    from statsmodels.stats.multitest import multipletests

    out[ok] = multipletests(p[ok], method={"holm": "holm", "bh": "fdr_bh"}[method])[1]
    return out


def power_two_sample(delta: float | np.ndarray, s2_t: float | np.ndarray, s2_c: float | np.ndarray,
                     n_t: float | np.ndarray, n_c: float | np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Power of the two-sided z-test for a true difference `delta` (normal approximation)."""
    se = np.sqrt(np.asarray(s2_t) / n_t + np.asarray(s2_c) / n_c)
    z = sps.norm.ppf(1.0 - alpha / 2.0)
    d = np.abs(np.asarray(delta, dtype=np.float64)) / se
    return sps.norm.cdf(d - z) + sps.norm.cdf(-d - z)


def sample_size(delta: float, s2_t: float, s2_c: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm (equal arms) for the two-sided test to detect `delta` with `power`."""
    if not np.isfinite(delta) or delta == 0:
        return 0
    z = sps.norm.ppf(1.0 - alpha / 2.0) + sps.norm.ppf(power)
    return int(np.ceil(z * z * (s2_t + s2_c) / (delta * delta)))


# ================================================================================================
# bootstrap
# ================================================================================================


def bootstrap_lift_ci(cols_t: np.ndarray, cols_c: np.ndarray, pairs: Sequence[tuple[int, int | None]], *,
                      replicates: int = 500, alpha: float = 0.05, seed: int = 0,
                      chunk: int = 50) -> np.ndarray:
    """Percentile bootstrap intervals of each metric's relative lift.

    cols_t / cols_c: (units, columns) per-unit aggregates of each arm; pairs: per metric, the
    (numerator column, denominator column or None for a per-unit mean). Units are reweighted with
    Exp(1) weights (the Bayesian bootstrap; like Poisson(1) weights it needs no index resampling).
    Returns an (n_metrics, 2) array.
    """
    rng = np.random.default_rng(seed)
    lifts = np.empty((replicates, len(pairs)))
    ct = np.column_stack([cols_t, np.ones(len(cols_t))])
    cc = np.column_stack([cols_c, np.ones(len(cols_c))])
    ones = ct.shape[1] - 1
    done = 0
    while done < replicates:
        b = min(chunk, replicates - done)
        st = rng.standard_exponential(size=(b, len(ct))) @ ct
        sc = rng.standard_exponential(size=(b, len(cc))) @ cc
        for j, (num, den) in enumerate(pairs):
            d = ones if den is None else den
            with np.errstate(invalid="ignore", divide="ignore"):
                lifts[done:done + b, j] = (st[:, num] / st[:, d]) / (sc[:, num] / sc[:, d]) - 1.0
        done += b
    with np.errstate(invalid="ignore"):
        return np.column_stack([np.nanquantile(lifts, alpha / 2.0, axis=0),
                                np.nanquantile(lifts, 1.0 - alpha / 2.0, axis=0)])
