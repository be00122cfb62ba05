"""Tests of tastemaker.evaluation.stats: bootstrap intervals, paired comparisons, summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from tastemaker.errors import DataError
from tastemaker.evaluation import stats as S
from tastemaker.evaluation.stats import Estimate, PairedComparison, bootstrap_ci, paired_test, summarize


def test_estimate_str_and_frozen():
    e = Estimate(0.45123, 0.44012, 0.46234, 10)
    assert str(e) == "0.4512 [0.4401, 0.4623]"
    with pytest.raises(AttributeError):
        e.mean = 1.0  # type: ignore[misc]
    p = PairedComparison(0.01, -0.002, 0.02, 1.5, 0.13, 0.2, 50)
    assert str(p).startswith("+0.0100 [-0.0020, +0.0200]") and "n=50" in str(p)


def test_bootstrap_drops_nan_and_brackets_the_mean():
    values = np.array([0.2, np.nan, 0.4, 0.9, np.nan, 0.5, 0.1, 0.7])
    est = bootstrap_ci(values, n_resamples=500)
    assert est.n == 6
    assert est.mean == pytest.approx(np.mean([0.2, 0.4, 0.9, 0.5, 0.1, 0.7]))
    assert est.low < est.mean < est.high
    assert est.low >= 0.1 and est.high <= 0.9  # means of resamples stay inside the data range


def test_bootstrap_degenerate_inputs():
    const = bootstrap_ci(np.full(20, 0.25), n_resamples=100)
    assert (const.mean, const.low, const.high, const.n) == (0.25, 0.25, 0.25, 20)
    empty = bootstrap_ci(np.array([np.nan, np.nan]))
    assert empty.n == 0 and math.isnan(empty.mean) and math.isnan(empty.low) and math.isnan(empty.high)
    with pytest.raises(DataError, match="infinite"):
        bootstrap_ci(np.array([1.0, np.inf]))
    with pytest.raises(DataError, match="1-D"):
        bootstrap_ci(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(np.ones(3), confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(np.ones(3), n_resamples=0)


def test_bootstrap_is_deterministic_by_seed_and_independent_of_chunking(monkeypatch):
    values = np.random.default_rng(0).exponential(size=300)
    a = bootstrap_ci(values, n_resamples=400, seed=3)
    assert bootstrap_ci(values, n_resamples=400, seed=3) == a
    assert bootstrap_ci(values, n_resamples=400, seed=4) != a
    monkeypatch.setattr(S, "_CHUNK_CELLS", 7 * 300 + 5)  # chunks of 7 resamples, last one partial
    assert bootstrap_ci(values, n_resamples=400, seed=3) == a


def test_bootstrap_matches_scipy_percentile_bootstrap():
    x = np.random.default_rng(1).normal(0.3, 1.0, size=200)
    ours = bootstrap_ci(x, n_resamples=5000, seed=0)
    ref = scipy.stats.bootstrap((x,), np.mean, n_resamples=5000, method="percentile", rng=0).confidence_interval
    se = x.std(ddof=1) / math.sqrt(x.size)
    # both are Monte Carlo estimates of the same quantiles: Monte Carlo error is ~0.05 standard errors
    assert abs(ours.low - ref.low) < 0.25 * se
    assert abs(ours.high - ref.high) < 0.25 * se
    # and a 95% interval spans about ±1.96 standard errors
    assert (ours.high - ours.low) / (2 * 1.96 * se) == pytest.approx(1.0, abs=0.1)


def coverage(confidence: float, n_sims: int, true_mean: float = 0.3) -> float:
    covered = 0
    for sim in range(n_sims):
        x = np.random.default_rng(1000 + sim).normal(true_mean, 1.0, size=80)
        est = bootstrap_ci(x, n_resamples=400, confidence=confidence, seed=sim)
        covered += est.low <= true_mean <= est.high
    return covered / n_sims


def test_bootstrap_ci_coverage_on_simulated_data():
    assert 0.90 <= coverage(0.95, 200) <= 0.99
    # a 50% interval covers far less often: the level is honoured, not just "wide"
    assert 0.35 <= coverage(0.5, 100) <= 0.65


def test_paired_test_detects_a_real_shift():
    rng = np.random.default_rng(2)
    b = rng.uniform(0.2, 0.8, size=300)
    a = b + 0.05 + rng.normal(0.0, 0.05, size=300)
    res = paired_test(a, b, n_resamples=1000)
    assert res.n == 300
    assert res.mean_diff == pytest.approx(np.mean(a - b))
    assert 0 < res.low < res.mean_diff < res.high
    assert res.low < 0.05 < res.high
    assert res.t_statistic > 0 and res.t_pvalue < 1e-6 and res.wilcoxon_pvalue < 1e-6
    flipped = paired_test(b, a, n_resamples=1000)
    assert flipped.mean_diff == pytest.approx(-res.mean_diff) and flipped.t_statistic < 0


def test_paired_test_null_rejection_rate():
    # a and b from the same distribution: each test rejects at 5% in about 5% of simulations
    t_rejects = w_rejects = ci_excludes = 0
    n_sims = 200
    for sim in range(n_sims):
        rng = np.random.default_rng(5000 + sim)
        base = rng.uniform(0, 1, size=40)  # shared user effect, as in a real paired comparison
        res = paired_test(base + rng.normal(0, 0.1, 40), base + rng.normal(0, 0.1, 40), n_resamples=300, seed=sim)
        t_rejects += res.t_pvalue < 0.05
        w_rejects += res.wilcoxon_pvalue < 0.05
        ci_excludes += not (res.low <= 0 <= res.high)
    for count in (t_rejects, w_rejects, ci_excludes):
        assert count / n_sims <= 0.11
    assert t_rejects > 0  # p-values are not stuck at 1


def test_paired_test_drops_nan_pairs_and_checks_shapes():
    a = np.array([1.0, np.nan, 3.0, 4.0, 2.0])
    b = np.array([0.0, 1.0, np.nan, 2.0, 2.5])
    res = paired_test(a, b, n_resamples=200)
    # kept pairs: (1, 0), (4, 2), (2, 2.5) -> differences 1, 2, -0.5
    assert res.n == 3
    assert res.mean_diff == pytest.approx(2.5 / 3)
    ref = scipy.stats.ttest_rel([1.0, 4.0, 2.0], [0.0, 2.0, 2.5])
    assert res.t_statistic == pytest.approx(ref.statistic) and res.t_pvalue == pytest.approx(ref.pvalue)
    assert res.wilcoxon_pvalue == pytest.approx(scipy.stats.wilcoxon([1.0, 2.0, -0.5]).pvalue)
    with pytest.raises(DataError, match="same users"):
        paired_test(np.ones(3), np.ones(4))


def test_paired_test_degenerate_cases():
    same = paired_test(np.array([0.1, 0.5, 0.7]), np.array([0.1, 0.5, 0.7]))
    assert (same.mean_diff, same.low, same.high, same.t_statistic, same.t_pvalue, same.wilcoxon_pvalue) == (
        0.0, 0.0, 0.0, 0.0, 1.0, 1.0)
    nothing = paired_test(np.array([np.nan, 1.0]), np.array([1.0, np.nan]))
    assert nothing.n == 0 and math.isnan(nothing.mean_diff) and math.isnan(nothing.t_pvalue)
    single = paired_test(np.array([0.4]), np.array([0.1]))
    assert single.n == 1 and single.mean_diff == pytest.approx(0.3) and math.isnan(single.t_pvalue)


def test_paired_test_is_deterministic_by_seed():
    rng = np.random.default_rng(9)
    a, b = rng.random(100), rng.random(100)
    assert paired_test(a, b, seed=1) == paired_test(a, b, seed=1)
    assert paired_test(a, b, seed=1).low != paired_test(a, b, seed=2).low


def test_summarize():
    rng = np.random.default_rng(10)
    per_user = {"ndcg@10": rng.random(50), "recall@10": np.r_[rng.random(49), np.nan]}
    out = summarize(per_user, n_resamples=300, seed=5)
    assert list(out) == ["ndcg@10", "recall@10"]
    assert out["recall@10"].n == 49
    assert out["ndcg@10"] == bootstrap_ci(per_user["ndcg@10"], n_resamples=300, seed=5)
