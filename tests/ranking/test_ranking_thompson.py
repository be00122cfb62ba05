"""ThompsonSlots: Monte-Carlo propensities that sum to 1, equal the real choice probabilities, learn."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from tastemaker.errors import ConfigError
from tastemaker.exploration import ThompsonSlots


def exact_thompson(params: list[tuple[float, float]]) -> np.ndarray:
    """P(arm i has the largest Beta draw), by numerical integration."""
    out = []
    for i, (a, b) in enumerate(params):
        others = [stats.beta(x, y) for j, (x, y) in enumerate(params) if j != i]

        def f(t, a=a, b=b, others=others):
            return stats.beta(a, b).pdf(t) * np.prod([o.cdf(t) for o in others])

        out.append(integrate.quad(f, 0, 1, limit=200)[0])
    return np.array(out)


def test_propensities_sum_to_one_and_match_exact_thompson():
    ts = ThompsonSlots(draws=20_000, seed=1)
    for item, wins, losses in [("a", 6, 2), ("b", 2, 2), ("c", 0, 5)]:
        for _ in range(wins):
            ts.update(item, 1.0)
        for _ in range(losses):
            ts.update(item, 0.0)
    p = ts.propensities(["a", "b", "c", "d"])
    assert p.sum() == pytest.approx(1.0) and (p >= 0).all()
    exact = exact_thompson([ts.posterior(i) for i in "abcd"])
    assert np.abs(p - exact).max() < 0.015
    assert ts.propensities(["a", "b", "c", "d"]).tolist() == p.tolist()  # seeded: same state, same answer


def test_select_reports_the_probability_it_chose_with():
    ts = ThompsonSlots(draws=500, seed=0)
    ts.update("x", 1.0)
    items = ["w", "x", "y"]
    p = ts.propensities(items)
    rng = np.random.default_rng(7)
    picks = [ts.select(items, rng) for _ in range(3000)]
    for item, prop in picks[:50]:
        assert prop == p[items.index(item)] and prop > 0
    freq = np.array([sum(i == it for i, _ in picks) for it in items]) / len(picks)
    assert np.abs(freq - p).max() < 4 * np.sqrt(0.25 / len(picks))


def test_closed_form_draws_have_the_right_distribution():
    ts = ThompsonSlots((1.0, 1.0), draws=4000, seed=5)
    ts.update("a", 1.0)  # Beta(2, 1): U^(1/2)
    for _ in range(3):
        ts.update("b", 0.0)  # Beta(1, 4): 1 - U^(1/4)
    ts.update("c", 1.0)
    ts.update("c", 0.0)  # Beta(2, 2): the general sampler
    blocks = dict(zip("abc", ts._blocks(["a", "b", "c"]), strict=True))
    for key, (a, b) in [("a", (2, 1)), ("b", (1, 4)), ("c", (2, 2))]:
        assert stats.kstest(blocks[key], stats.beta(a, b).cdf).pvalue > 1e-3


def test_learning_moves_the_choice_towards_the_winner():
    ts = ThompsonSlots(draws=1000, seed=0)
    before = ts.propensities(["p", "q"])
    assert before == pytest.approx([0.5, 0.5], abs=0.05)
    for _ in range(20):
        ts.update("p", 1.0)
        ts.update("q", 0.0)
    after = ts.propensities(["p", "q"])
    assert after[0] > 0.99


def test_state_round_trips_and_inputs_are_checked():
    ts = ThompsonSlots((2.0, 3.0), draws=64, seed=9)
    ts.update("a", 0.25)
    again = ThompsonSlots.from_dict(ts.to_dict())
    assert again.posterior("a") == (2.25, 3.75) and again.prior == (2.0, 3.0) and again.draws == 64
    assert again.propensities(["a", "b"]).tolist() == ts.propensities(["a", "b"]).tolist()
    with pytest.raises(ValueError, match=r"reward must be in \[0, 1\]"):
        ts.update("a", 2.0)
    with pytest.raises(ValueError, match="distinct"):
        ts.propensities(["a", "a"])
    with pytest.raises(ValueError, match="at least one"):
        ts.select([], np.random.default_rng(0))
    with pytest.raises(ConfigError, match="prior"):
        ThompsonSlots((0.0, 1.0))
    with pytest.raises(ConfigError, match="draws"):
        ThompsonSlots(draws=5)


def test_cache_is_bounded():
    ts = ThompsonSlots(draws=16, cache_size=10)
    ts.propensities([f"i{j}" for j in range(25)])
    assert len(ts._samples) == 10
