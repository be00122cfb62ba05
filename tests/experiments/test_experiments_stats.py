"""The statistical core against references: scipy's Welch test, OLS for CUPED's θ, brute-force
variance for the delta method, hand-computed Holm/BH, the mSPRT boundary, power and sample size."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from tastemaker.experiments.stats import (
    adjust_pvalues,
    always_valid_p,
    bootstrap_lift_ci,
    compare_arrays,
    cs_radius,
    cuped_estimates,
    moments,
    msprt_lr,
    power_two_sample,
    sample_size,
    srm_test,
)


def test_per_unit_mean_is_scipys_welch_test():
    rng = np.random.default_rng(0)
    a = rng.lognormal(0.0, 1.0, 300)
    b = rng.lognormal(0.2, 1.3, 450)
    y = np.concatenate([a, b])
    t = np.r_[np.ones(300, bool), np.zeros(450, bool)]
    c = compare_arrays(y, None, t, ~t)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert float(c.diff / c.se) == pytest.approx(ref.statistic, rel=1e-10)
    assert float(c.p) == pytest.approx(ref.pvalue, rel=1e-8)
    assert float(c.df) == pytest.approx(ref.df, rel=1e-10)
    lo, hi = ref.confidence_interval(0.95)
    assert (float(c.low), float(c.high)) == pytest.approx((lo, hi), rel=1e-8)
    assert float(c.lift) == pytest.approx(a.mean() / b.mean() - 1)


def test_delta_method_variance_of_a_ratio_matches_brute_force():
    rng = np.random.default_rng(1)
    reps, n = 4000, 500
    x = rng.poisson(rng.gamma(2.0, 5.0, (reps, n))) + 1.0  # impressions
    y = rng.binomial(x.astype(int), np.clip(rng.beta(2, 20, (reps, n)), 0, 1))  # clicks, clustered by unit
    m = moments(y, x)
    r = m.sy / m.sx
    from tastemaker.experiments.stats import estimate

    est = estimate(m)
    assert np.allclose(est.value, r)
    assert float(est.var.mean()) == pytest.approx(float(r.var()), rel=0.08)
    # the naive binomial variance (ignoring that clicks cluster by unit) would be far too small
    naive = (r * (1 - r) / m.sx).mean()
    assert naive < 0.6 * r.var()


def test_cuped_theta_is_the_ols_slope_and_the_variance_shrinks_by_the_correlation():
    rng = np.random.default_rng(2)
    n = 20_000
    z = rng.gamma(2.0, 1.0, n)
    y = 3.0 + 2.0 * z + rng.normal(0, 1.0, n)
    t = rng.random(n) < 0.5
    y = y + 0.1 * t
    mt, mc = moments(y, None, mask=t, z=z), moments(y, None, mask=~t, z=z)
    _, _, theta = cuped_estimates(mt, mc)
    within = np.concatenate([z[t] - z[t].mean(), z[~t] - z[~t].mean()])
    ywithin = np.concatenate([y[t] - y[t].mean(), y[~t] - y[~t].mean()])
    assert float(theta) == pytest.approx(float((within * ywithin).sum() / (within * within).sum()), rel=1e-9)
    plain = compare_arrays(y, None, t, ~t)
    cuped = compare_arrays(y, None, t, ~t, z=z)
    rho2 = np.corrcoef(y, z)[0, 1] ** 2
    assert float(cuped.se / plain.se) == pytest.approx(np.sqrt(1 - rho2), rel=0.02)
    assert abs(float(cuped.diff) - 0.1) < 3 * float(cuped.se)
    # a covariate that says nothing leaves the estimate's variance alone
    noise = compare_arrays(y, None, t, ~t, z=rng.normal(size=n))
    assert float(noise.se / plain.se) == pytest.approx(1.0, abs=0.01)


def test_holm_and_benjamini_hochberg_adjustments():
    p = [0.01, 0.04, 0.03, np.nan]
    holm = adjust_pvalues(p, "holm")
    bh = adjust_pvalues(p, "bh")
    assert holm[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert bh[:3] == pytest.approx([0.03, 0.04, 0.04])
    assert np.isnan(holm[3]) and np.isnan(bh[3])
    assert adjust_pvalues(p, "none")[:3] == pytest.approx(p[:3])


def test_confidence_sequence_boundary_is_where_the_mixture_ratio_reaches_one_over_alpha():
    var, tau2, alpha = 0.04, 0.25, 0.05
    r = float(cs_radius(var, tau2, alpha))
    assert float(msprt_lr(r, var, tau2)) == pytest.approx(1 / alpha, rel=1e-9)
    assert float(msprt_lr(0.9 * r, var, tau2)) < 1 / alpha < float(msprt_lr(1.1 * r, var, tau2))
    # always-valid p: 1/Λ, never above 1, never rising
    p = always_valid_p(np.array([[0.0, r, 0.0]]), np.array([[var, var, var]]), tau2)
    assert p[0, 0] == 1.0 and p[0, 1] == pytest.approx(alpha) and p[0, 2] == pytest.approx(alpha)
    # wider than the fixed-horizon interval: that is the price of peeking
    assert r > 1.96 * np.sqrt(var)


def test_sample_size_reaches_the_asked_power():
    n = sample_size(0.02, 0.25, 0.25, alpha=0.05, power=0.8)
    assert float(power_two_sample(0.02, 0.25, 0.25, n, n)) == pytest.approx(0.8, abs=0.002)
    assert float(power_two_sample(0.02, 0.25, 0.25, n // 2, n // 2)) < 0.6
    assert sample_size(0.0, 1.0, 1.0) == 0


def test_srm_test_values():
    res = srm_test([49_000, 51_000], [0.5, 0.5])
    assert res["chi2"] == pytest.approx(40.0)
    assert res["p"] == pytest.approx(sps.chi2.sf(40.0, 1))
    assert res["flagged"] and res["expected"] == [50_000, 50_000]
    three = srm_test([1000, 1010, 2005], [0.25, 0.25, 0.5])
    assert not three["flagged"] and three["p"] > 0.5


def test_bootstrap_interval_agrees_with_the_delta_method_on_a_large_sample():
    rng = np.random.default_rng(3)
    n = 6000
    orders = rng.poisson(1.2, n).astype(float)
    revenue = np.array([rng.lognormal(3.5, 0.8, int(k)).sum() for k in orders])
    t = rng.random(n) < 0.5
    delta = compare_arrays(revenue, orders, t, ~t)
    cols = np.column_stack([revenue, orders])
    ci = bootstrap_lift_ci(cols[t], cols[~t], [(0, 1), (0, None)], replicates=400, seed=1)
    assert ci.shape == (2, 2)
    lo, hi = ci[0]
    assert lo < float(delta.lift) < hi
    assert (hi - lo) == pytest.approx(float(delta.lift_high - delta.lift_low), rel=0.15)
    mean = compare_arrays(revenue, None, t, ~t)
    assert (ci[1, 1] - ci[1, 0]) == pytest.approx(float(mean.lift_high - mean.lift_low), rel=0.15)
