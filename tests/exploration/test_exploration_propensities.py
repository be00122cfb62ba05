"""Every policy: propensities are probabilities that match how often it really picks each action;
decisions reach the choice log; state round-trips through plain JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tastemaker.errors import ConfigError, DataError
from tastemaker.exploration import (
    UCB1,
    BetaThompson,
    EpsilonGreedy,
    JsonlLog,
    LinearThompson,
    LinUCB,
    ListLog,
    Policy,
    read_jsonl,
)

ACTIONS = ["a", "b", "c", "d"]
RATES = {"a": 0.2, "b": 0.5, "c": 0.45, "d": 0.1}
CONTEXT = np.array([0.6, -0.8, 0.0])


def trained(make, n: int = 60, seed: int = 0) -> Policy:
    """A policy after `n` rounds on a small problem (so that its distribution is not trivial)."""
    pol = make()
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x = rng.standard_normal(3) if pol.contextual else None
        d = pol.select(x, ACTIONS, rng=rng)
        pol.update(x, d.action, float(rng.random() < RATES[d.action]))
    return pol


MAKERS = {
    "epsilon_greedy": lambda: EpsilonGreedy(0.3, seed=1),
    "epsilon_greedy(decay)": lambda: EpsilonGreedy(1.0, decay=20.0, seed=1),
    "ucb1": lambda: UCB1(seed=1),
    "beta_thompson": lambda: BetaThompson(draws=400, seed=1),
    "linucb": lambda: LinUCB(3, 1.0, seed=1),
    "linear_thompson": lambda: LinearThompson(3, 1.0, draws=400, seed=1),
}


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("n_trained", [0, 60])
def test_propensities_are_probabilities_that_match_selection_frequencies(name, n_trained):
    pol = trained(MAKERS[name], n_trained)
    ctx = CONTEXT if pol.contextual else None
    p = pol.probabilities(ctx, ACTIONS)
    assert p.shape == (4,) and (p >= 0).all() and (p <= 1).all() and p.sum() == pytest.approx(1.0)
    assert pol.probabilities(ctx, ACTIONS).tolist() == p.tolist()  # a pure function of the state
    rng = np.random.default_rng(123)
    n = 4000
    decisions = [pol.select(ctx, ACTIONS, rng=rng) for _ in range(n)]
    for d in decisions[:100]:
        assert d.propensity == p[d.index] > 0 and d.action == ACTIONS[d.index]
        assert d.probabilities.tolist() == p.tolist()
    freq = np.array([sum(d.action == a for d in decisions) for a in ACTIONS]) / n
    assert np.abs(freq - p).max() < 4.5 * np.sqrt(0.25 / n), (freq, p)


def test_exact_propensities_of_the_simple_policies():
    eg = EpsilonGreedy(0.2, seed=0)
    for a, r in [("a", 1.0), ("b", 0.0), ("c", 1.0), ("d", 0.0)]:
        eg.update(None, a, r)
    # a and c tie for the best mean: (1 − ε)/2 + ε/4 each
    assert eg.probabilities(None, ACTIONS) == pytest.approx([0.45, 0.05, 0.45, 0.05])
    assert eg.probabilities(None, ["e", "a"]) == pytest.approx([0.9, 0.1])  # untried: mean +inf
    decayed = EpsilonGreedy(1.0, decay=2.0)
    for _ in range(8):
        decayed.update(None, "a", 1.0)
    assert decayed.current_epsilon() == pytest.approx(0.25)
    ucb = UCB1()
    assert ucb.probabilities(None, ACTIONS) == pytest.approx([0.25] * 4)  # all untried: a uniform tie
    ucb.update(None, "a", 1.0)
    assert ucb.probabilities(None, ACTIONS) == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3])


def test_every_decision_is_logged_with_its_propensity(tmp_path):
    log = ListLog()
    path = tmp_path / "logs" / "choices.jsonl"
    with JsonlLog(path) as jl:
        pols = [BetaThompson(seed=0, logger=log), LinUCB(3, seed=0, logger=jl)]
        decisions = []
        for step in range(5):
            for pol in pols:
                ctx = CONTEXT if pol.contextual else None
                decisions.append(pol.select(ctx, ACTIONS, record={"request": f"r{step}"}))
                pol.update(ctx, decisions[-1].action, 1.0)
    assert len(log) == 5
    on_disk = read_jsonl(path)
    assert len(on_disk) == 5
    for rec, d in zip(log.records + on_disk, decisions[0::2] + decisions[1::2], strict=True):
        assert rec["action"] == d.action and rec["propensity"] == d.propensity and rec["n_actions"] == 4
    assert [r["request"] for r in on_disk] == [f"r{i}" for i in range(5)]
    assert [r["policy"] for r in log.records] == ["beta_thompson"] * 5 and on_disk[0]["policy"] == "linucb"
    assert [r["step"] for r in on_disk] == [1, 2, 3, 4, 5]
    (tmp_path / "bad.jsonl").write_text('{"action": 1}\nnot json\n')
    with pytest.raises(DataError, match="line 2"):
        read_jsonl(tmp_path / "bad.jsonl")


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_round_trips_through_json(name):
    pol = trained(MAKERS[name])
    again = Policy.from_dict(json.loads(json.dumps(pol.to_dict())))
    assert type(again) is type(pol) and again.t == pol.t == 60
    ctx = CONTEXT if pol.contextual else None
    # Thompson's Monte-Carlo blocks depend on the cache's history: equal up to Monte-Carlo error there
    tol = 4 * np.sqrt(0.25 / 400) if name == "beta_thompson" else 1e-9
    assert again.probabilities(ctx, ACTIONS) == pytest.approx(pol.probabilities(ctx, ACTIONS), abs=tol)
    assert again.scores(ctx, ACTIONS) == pytest.approx(pol.scores(ctx, ACTIONS))
    with pytest.raises(ConfigError, match="cannot load"):
        UCB1.from_dict({**pol.to_dict(), "policy": "nope"})


def test_shared_linear_policies_take_one_row_per_action():
    rows = np.eye(4, 3)
    pol = LinUCB(3, 1.0, shared=True)
    for _ in range(20):
        pol.update(rows[1], "b", 1.0)
        pol.update(rows[0], "a", 0.0)
    assert pol.select(rows, ACTIONS).action == "b"
    # a new action with known features is scored by the shared model (no per-action history needed)
    assert pol.scores(rows[[1, 0]], ["new", "a"])[0] > pol.scores(rows[[1, 0]], ["new", "a"])[1]
    with pytest.raises(DataError, match="one feature row per action"):
        pol.select(np.ones(3), ACTIONS)
    with pytest.raises(DataError, match="shape"):
        LinUCB(3).select(np.ones(4), ACTIONS)


def test_inputs_are_checked():
    with pytest.raises(ConfigError):
        EpsilonGreedy(1.5)
    with pytest.raises(ConfigError):
        LinearThompson(0)
    with pytest.raises(ValueError, match="distinct"):
        UCB1().select(None, ["a", "a"])
    with pytest.raises(ValueError, match="at least one"):
        UCB1().select(None, [])
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        BetaThompson().update(None, "a", 2.0)
    with pytest.raises(ValueError, match="finite"):
        EpsilonGreedy().update(None, "a", float("nan"))
