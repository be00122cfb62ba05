"""The simulation harness proves the statistics (fixed seeds, asserted bands): the A/A false-positive
rate, power against theory, the SRM check, CUPED, and peeking with always-valid p-values.

Every check runs thousands of simulated experiments at once through the same vectorised functions
the analysis uses (`stats.compare_arrays` & co. work on (replicates, units) arrays).
"""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.experiments.simulate import Scenario, simulate_units
from tastemaker.experiments.stats import always_valid_p, compare_arrays, power_two_sample, srm_test

METRICS = {"ctr": ("clicks", "impressions"), "aov": ("revenue", "orders"), "conversion": ("converted", None),
           "revenue_per_user": ("revenue", None)}


def _batches(scenario: Scenario, replicates: int, *, seed: int, chunk: int = 250, pre: bool = False):
    for i, start in enumerate(range(0, replicates, chunk)):
        yield simulate_units(scenario, min(chunk, replicates - start), seed=seed * 1000 + i, pre=pre)


def _compare(u: dict, metric: str, *, cuped: bool = False):
    num, den = METRICS[metric]
    x = None if den is None else u[den]
    z = None
    if cuped:
        pz = u["pre_" + num]
        if den is not None:
            pd_ = u["pre_" + den]
            z = pz - pz.sum(-1, keepdims=True) / pd_.sum(-1, keepdims=True) * pd_
        else:
            z = pz
    return compare_arrays(u[num], x, u["treat"], ~u["treat"], z=z)


@pytest.fixture(scope="module")
def aa_pvalues() -> dict[str, np.ndarray]:
    """1,000 A/A tests of 2,000 units each (pre-period data for CUPED)."""
    out: dict[str, list[np.ndarray]] = {}
    for u in _batches(Scenario(users=2000), 1000, seed=11, pre=True):
        for m in METRICS:
            out.setdefault(m, []).append(_compare(u, m).p)
            out.setdefault(m + "+cuped", []).append(_compare(u, m, cuped=True).p)
    return {k: np.concatenate(v) for k, v in out.items()}


@pytest.mark.parametrize("metric", [*METRICS, *(m + "+cuped" for m in METRICS)])
def test_aa_false_positive_rate_is_alpha(aa_pvalues, metric):
    p = aa_pvalues[metric]
    assert p.shape == (1000,) and np.isfinite(p).all()
    fpr = (p < 0.05).mean()
    assert 0.03 <= fpr <= 0.07, f"{metric}: A/A false-positive rate {fpr:.3f} at alpha 0.05"
    # and p is uniform under the null, not just right at 5 %
    assert 0.07 <= (p < 0.10).mean() <= 0.13


def test_power_matches_theory_at_known_effects():
    scn = Scenario(users=2000, ctr_lift=0.08, conversion_lift=0.15)
    # population values of the arms (theory): conversion exactly, the rest from a million units
    big = simulate_units(scn.model_copy(update={"users": 1_000_000}), 1, seed=5, share=0.5)
    t, c = big["treat"][0], ~big["treat"][0]
    theory = {}
    for m in ("ctr", "conversion", "revenue_per_user"):
        cmp = compare_arrays(big[METRICS[m][0]][0], None if METRICS[m][1] is None else big[METRICS[m][1]][0], t, c)
        delta = float(cmp.diff)
        if m == "conversion":
            delta = scn.conversion(True) - scn.conversion(False)
        if m == "ctr":
            delta = scn.ctr * scn.ctr_lift
        theory[m] = float(power_two_sample(delta, float(cmp.s2_t), float(cmp.s2_c), 1000, 1000))
    hits: dict[str, list[np.ndarray]] = {m: [] for m in theory}
    for u in _batches(scn, 1000, seed=12):
        for m in theory:
            hits[m].append(_compare(u, m).p < 0.05)
    for m, th in theory.items():
        emp = float(np.concatenate(hits[m]).mean())
        assert 0.3 < th < 0.95, f"{m}: theory {th:.3f} (pick an effect with informative power)"
        assert abs(emp - th) <= 0.04, f"{m}: empirical power {emp:.3f} vs theory {th:.3f}"


def test_srm_check_catches_a_49_51_split_at_100k_users():
    u = simulate_units(Scenario(users=100_000, actual_share=0.51), 1, seed=3)
    n_t = int(u["treat"].sum())
    res = srm_test([100_000 - n_t, n_t], [0.5, 0.5])
    assert res["flagged"] and res["p"] < 1e-6
    assert srm_test([49_000, 51_000], [0.5, 0.5])["flagged"]
    # 1,000 such experiments: every one caught; 1,000 correct 50/50 ones: about 0.1 % false alarms
    rng = np.random.default_rng(4)
    bad = rng.binomial(100_000, 0.51, 1000)
    good = rng.binomial(100_000, 0.50, 1000)
    caught = srm_test(np.column_stack([100_000 - bad, bad]), [0.5, 0.5])["flagged"]
    alarms = srm_test(np.column_stack([100_000 - good, good]), [0.5, 0.5])["flagged"]
    assert caught.mean() == 1.0
    assert alarms.mean() <= 0.005


def test_cuped_shrinks_ci_width_on_correlated_metrics_and_stays_unbiased():
    scn = Scenario(users=4000, activity_shape=0.5, order_rate=2.0, returning_share=1.0, conversion_lift=0.05)
    ratio: dict[str, list[np.ndarray]] = {"revenue_per_user": [], "conversion": [], "aov": []}
    lifts: dict[str, list[np.ndarray]] = {"plain": [], "cuped": []}
    for u in _batches(scn, 400, seed=13, chunk=200, pre=True):
        for m in ratio:
            plain, cuped = _compare(u, m), _compare(u, m, cuped=True)
            ratio[m].append((cuped.high - cuped.low) / (plain.high - plain.low))
            if m == "revenue_per_user":
                lifts["plain"].append(plain.lift)
                lifts["cuped"].append(cuped.lift)
    width = {m: float(np.concatenate(v).mean()) for m, v in ratio.items()}
    assert width["revenue_per_user"] < 0.8  # pre/post correlation ≈ 0.75: width × sqrt(1 − ρ²) ≈ 0.66
    assert width["conversion"] < 0.9
    assert width["aov"] <= 1.0  # AOV barely depends on the user's past: CUPED must not hurt it
    truth = scn.truth()["revenue_per_user"]
    plain, cuped = np.concatenate(lifts["plain"]), np.concatenate(lifts["cuped"])
    assert abs(cuped.mean() - truth) < 3 * cuped.std() / np.sqrt(len(cuped))
    assert cuped.std() < 0.8 * plain.std()  # the narrower CI is real: the estimates vary less


def test_peeking_with_always_valid_p_keeps_the_error_rate_while_naive_peeking_inflates_it():
    looks = np.arange(200, 2001, 200)
    naive, valid, valid_effect = [], [], []
    for scn, seed, sink in ((Scenario(users=2000), 14, "aa"), (Scenario(users=2000, ctr_lift=0.15), 15, "effect")):
        for u in _batches(scn, 1000, seed=seed):
            diffs, variances, ps = [], [], []
            for n in looks:  # units arrive in index order; look after every 200
                c = compare_arrays(u["clicks"][:, :n], u["impressions"][:, :n], u["treat"][:, :n], ~u["treat"][:, :n])
                diffs.append(c.diff)
                variances.append(c.var_t + c.var_c)
                ps.append(c.p)
                tau2 = (0.05 * c.value_c) ** 2
            p_av = always_valid_p(np.column_stack(diffs), np.column_stack(variances), tau2)
            assert (np.diff(p_av, axis=1) <= 0).all()  # a running minimum
            if sink == "aa":
                naive.append((np.column_stack(ps) < 0.05).any(axis=1))
                valid.append(p_av[:, -1] < 0.05)
            else:
                valid_effect.append(p_av[:, -1] < 0.05)
    naive_fpr, valid_fpr = np.concatenate(naive).mean(), np.concatenate(valid).mean()
    assert naive_fpr > 0.12, f"peeking 10 times with fixed-horizon p should inflate the error, got {naive_fpr:.3f}"
    assert valid_fpr <= 0.05, f"always-valid p under peeking: {valid_fpr:.3f}"
    assert np.concatenate(valid_effect).mean() > 0.5  # and it still finds a real effect
