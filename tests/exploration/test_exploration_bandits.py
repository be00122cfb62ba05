"""Bandit policies on problems with known rewards: sublinear regret, beating uniform, context helps."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.exploration import UCB1, BetaThompson, EpsilonGreedy, LinearThompson, LinUCB
from tastemaker.exploration.simulate import BernoulliBandit, LinearBandit, run_bandit

MEANS = [0.1, 0.2, 0.3, 0.4, 0.5]
T = 4000
SEEDS = (0, 1, 2)

NON_CONTEXTUAL = {
    "epsilon_greedy(decay)": lambda s: EpsilonGreedy(1.0, decay=50.0, seed=s),
    "ucb1": lambda s: UCB1(seed=s),
    "beta_thompson": lambda s: BetaThompson(seed=s),
}


def mean_cumulative_regret(make, env, n_rounds, seeds=SEEDS) -> np.ndarray:
    return np.mean([run_bandit(make(s) if make else None, env, n_rounds, seed=s).cumulative_regret
                    for s in seeds], axis=0)


@pytest.fixture(scope="module")
def uniform_regret() -> np.ndarray:
    return mean_cumulative_regret(None, BernoulliBandit(MEANS), T)


@pytest.mark.parametrize("name", list(NON_CONTEXTUAL))
def test_regret_is_sublinear_and_beats_uniform(name, uniform_regret):
    r = mean_cumulative_regret(NON_CONTEXTUAL[name], BernoulliBandit(MEANS), T)
    q = T // 4
    first, last = r[q - 1], r[-1] - r[3 * q - 1]
    # linear regret would make the last quarter cost as much as the first
    assert last < 0.5 * first, (name, first, last)
    assert r[-1] < 0.25 * uniform_regret[-1], (name, r[-1], uniform_regret[-1])
    # uniform's regret is linear: T x mean gap
    assert uniform_regret[-1] == pytest.approx(T * (0.5 - np.mean(MEANS)), rel=0.1)


def test_constant_epsilon_beats_uniform_but_keeps_exploring(uniform_regret):
    r = mean_cumulative_regret(lambda s: EpsilonGreedy(0.1, seed=s), BernoulliBandit(MEANS), T)
    assert r[-1] < 0.3 * uniform_regret[-1]
    # ε = 0.1 of uniform choices cost ε × mean gap per round forever
    per_round_late = (r[-1] - r[T // 2 - 1]) / (T // 2)
    assert per_round_late > 0.5 * 0.1 * (0.5 - np.mean(MEANS))


@pytest.mark.parametrize("shared", [False, True], ids=["disjoint", "shared"])
def test_linear_policies_beat_non_contextual_ones_on_a_linear_problem(shared):
    env = LinearBandit(5, 5, seed=0, shared=shared)
    dim = 25 if shared else 5
    n = 2000
    seeds = (0, 1)
    base = {name: mean_cumulative_regret(make, env, n, seeds)[-1] for name, make in NON_CONTEXTUAL.items()}
    uniform = mean_cumulative_regret(None, env, n, seeds)[-1]
    for make in (lambda s: LinUCB(dim, 1.0, shared=shared, seed=s),
                 lambda s: LinearThompson(dim, 0.5, shared=shared, draws=256, seed=s)):
        r = mean_cumulative_regret(make, env, n, seeds)
        assert r[-1] < 0.4 * min(base.values()), (r[-1], base)
        assert r[-1] - r[n // 2 - 1] < 0.75 * r[n // 2 - 1]  # sublinear: the second half costs less
    # every arm has the same average rate: context-free policies do no better than uniform here
    assert min(base.values()) > 0.8 * uniform


def test_linucb_learns_the_true_parameters():
    env = LinearBandit(3, 4, seed=3)
    pol = LinUCB(4, 0.5, seed=0)
    run_bandit(pol, env, 3000, seed=0)
    for a in range(3):
        est = pol.theta(a)
        # 0.5 + s x·θ: the ridge fit of a Bernoulli reward on x (no intercept) recovers the direction of θ
        cos = est @ env.theta[a] / np.linalg.norm(est)
        assert cos > 0.8
