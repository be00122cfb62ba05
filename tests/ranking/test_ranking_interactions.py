"""Rules together: precedence between them, diversity and exploration inside the engine, trace completeness."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tastemaker.exploration import ThompsonSlots
from tastemaker.ranking import RequestContext, RuleSet

# --- precedence ----------------------------------------------------------------------------------


def test_pin_beats_cap_and_counts_towards_it(rk):
    c = rk.cands(6, brand=["a", "a", "b", "a", "b", "c"])
    out = rk.rules(caps=[{"by": "brand", "max": 1}], pins=[{"item": "i3", "position": 3}]).rank(c, rk.ctx())
    # the pin fills brand a's quota, so no organic "a" is shown
    assert rk.ids(out) == ["i2", "i5", "i3"]
    pin_entry = out.items[2].trace[-1]
    assert pin_entry.action == "pinned" and "over cap brand_cap" not in pin_entry.effect
    over = rk.rules(caps=[{"by": "brand", "max": 1}], pins=[{"item": "i3", "position": 1},
                                                             {"item": "i1", "position": 2}]).rank(c, rk.ctx())
    assert rk.ids(over)[:2] == ["i3", "i1"]  # two "a" pins, over the cap of 1: pins win
    assert "over cap brand_cap" in over.items[1].trace[-1].effect
    brand_of = dict(zip(c.id_list, ["a", "a", "b", "a", "b", "c"], strict=True))
    assert [brand_of[i] for i in rk.ids(over)[2:]] == ["b", "c"]  # no organic "a" below the pins


def test_filter_beats_pin(rk):
    c = rk.cands(5, stock=[5, 5, 0, 5, 5])
    out = rk.rules(filters={"in_stock": True}, pins=[{"item": "i2", "position": 1}]).rank(c, rk.ctx())
    assert "i2" not in rk.ids(out)
    assert rk.ids(out) == ["i0", "i1", "i3", "i4"]
    assert any("filters win" in n for n in out.notes)
    assert [(e.action, e.rule) for e in out.explain("i2")] == [("filtered", "in_stock"), ("skipped", "pin:i2")]


def test_sponsored_slot_respects_caps_and_counts_towards_them(rk):
    brands = ["a", "b", "c", "a", "a", "d"]
    sponsored = [False, False, False, True, True, True]
    c = rk.cands(6, brand=brands, sponsored=sponsored, campaign=["", "", "", "x", "y", "z"])
    r = rk.rules(caps=[{"by": "brand", "max": 1}], sponsored={"positions": [1]})
    out = r.rank(c, rk.ctx())
    # the best sponsored candidate (i3, brand a) takes slot 1 and brand a's only place: organic i0 is capped
    assert rk.ids(out) == ["i3", "i1", "i2", "i5"]
    assert out.items[0].sponsored and out.items[0].campaign == "x"
    assert out.explain("i0")[-1].action == "capped"
    pinned = rk.rules(caps=[{"by": "brand", "max": 1}], sponsored={"positions": [2]},
                      pins=[{"item": "i0", "position": 1}]).rank(c, rk.ctx())
    # with the pin holding brand a, the sponsored slot skips i3 and i4 (brand a) and takes i5
    assert rk.ids(pinned)[:2] == ["i0", "i5"] and pinned.items[1].sponsored


def test_filters_come_before_boosts(rk):
    c = rk.cands(3, promo=[False, False, True], price=[10.0, 10.0, 999.0])
    out = rk.rules(filters={"price_max": 100}, boosts=[{"kind": "promotion", "factor": 100}]).rank(c, rk.ctx())
    assert rk.ids(out) == ["i0", "i1"]
    assert [e.action for e in out.explain("i2")] == ["filtered"]  # never boosted


def test_positions_taken_twice_are_rejected():
    from tastemaker.ranking import RulesError

    with pytest.raises(RulesError, match="already taken"):
        RuleSet.from_dict({"pins": [{"item": "x", "position": 2}], "exploration": {"positions": [2]}})


# --- diversity inside the engine -----------------------------------------------------------------


def test_mmr_lambda_one_is_the_relevance_order(rk):
    rng = np.random.default_rng(0)
    c = rk.cands(40, scores=rng.random(40), category=[f"c{j % 4}/x" for j in range(40)])
    plain = rk.rules(k=15).rank(c, rk.ctx())
    mmr = rk.rules(k=15, diversity={"method": "mmr", "lambda": 1.0}).rank(c, rk.ctx())
    assert rk.ids(mmr) == rk.ids(plain)
    assert all(e.action != "diversified" for it in mmr.items for e in it.trace)


def test_mmr_lambda_zero_spreads_over_categories(rk):
    cats = ["a/1"] * 6 + ["a/2"] * 2 + ["b/1"] * 2 + ["c/1"]
    c = rk.cands(11, category=cats)
    out = rk.rules(k=4, diversity={"method": "mmr", "lambda": 0.0}).rank(c, rk.ctx())
    tops = [cats[int(i[1:])] for i in rk.ids(out)]
    assert len({t.split("/")[0] for t in tops[:3]}) == 3  # a, b, c before any repeat
    assert rk.ids(out)[:3] == ["i0", "i8", "i10"]  # ties go to the better-scored item
    assert out.items[1].trace[-1].action == "diversified"
    relevance = rk.rules(k=4).rank(c, rk.ctx())
    assert len({cats[int(i[1:])].split("/")[0] for i in rk.ids(relevance)}) == 1


def test_mmr_on_vectors(rk):
    v = np.array([[1, 0], [1, 0.01], [0.99, 0.02], [0, 1]], dtype=float)
    c = rk.cands(4, vectors=v)
    out = rk.rules(k=2, diversity={"method": "mmr", "lambda": 0.3, "similarity": "vectors"}).rank(c, rk.ctx())
    assert rk.ids(out) == ["i0", "i3"]


def test_mmr_and_caps_together(rk):
    brands = ["a", "a", "a", "b", "b", "c", "c", "c"]
    c = rk.cands(8, brand=brands, category=["x/1", "x/1", "x/2", "x/1", "y", "x/1", "x/2", "z"])
    out = rk.rules(k=5, caps=[{"by": "brand", "max": 2}], diversity={"method": "mmr", "lambda": 0.5}).rank(
        c, rk.ctx())
    shown = [brands[int(i[1:])] for i in rk.ids(out)]
    assert len(shown) == 5 and max(shown.count(b) for b in "abc") <= 2
    assert rk.ids(out)[:2] == ["i0", "i4"]  # MMR reaches down for another category ...
    assert rk.ids(out)[2] == "i2"  # ... prefers the other "a" (a new category) to i1 ...
    assert [e.action for e in out.explain("i1")] == ["capped"]  # ... which then stays out under the cap


def test_calibrated_lambda_zero_is_relevance_and_larger_lambda_matches_the_profile(rk):
    cats = ["a"] * 10 + ["b"] * 10
    scores = np.r_[np.linspace(2, 1.5, 10), np.linspace(1, 0.5, 10)]
    c = rk.cands(20, scores=scores, category=cats)
    x = rk.ctx(category_profile={"a": 1.0, "b": 1.0})

    def share_b(lam):
        out = rk.rules(k=10, diversity={"method": "calibrated", "lambda": lam}).rank(c, x)
        return out, sum(cats[int(i[1:])] == "b" for i in rk.ids(out)) / 10

    zero, b0 = share_b(0.0)
    assert rk.ids(zero) == rk.ids(rk.rules(k=10).rank(c, x)) and b0 == 0.0
    _, b_half = share_b(0.5)
    _, b1 = share_b(1.0)
    assert b0 <= b_half <= b1 and b1 == pytest.approx(0.5)
    skipped = rk.rules(diversity={"method": "calibrated"}).rank(c, rk.ctx())
    assert any("category_profile" in n for n in skipped.notes)


# --- exploration ---------------------------------------------------------------------------------


def _explore_cands(rk, n_new: int = 4):
    launch = np.array(["2024-01-01"] * 6 + ["2024-05-25"] * n_new, dtype="datetime64[D]")
    return rk.cands(6 + n_new, launch=launch)


def test_exploration_slot_takes_a_new_item_and_logs_its_propensity(rk):
    r = rk.rules(k=5, exploration={"positions": [3], "new_days": 30, "draws": 2000})
    c = _explore_cands(rk)
    out = r.rank(c, rk.ctx(request_id="req-1"))
    (choice,) = out.exploration
    assert choice.position == 3 and choice.item_id in {"i6", "i7", "i8", "i9"}
    assert choice.pool == ("i6", "i7", "i8", "i9")
    item = out.items[2]
    assert item.explored and item.item_id == choice.item_id and item.propensity == choice.propensity
    assert 0 < choice.propensity <= 1
    assert item.trace[-1].effect.startswith(f"explored with propensity {choice.propensity:.4g}")
    again = r.rank(c, rk.ctx(request_id="req-1"))
    assert again.exploration == out.exploration  # a request id replays the same choice


def test_exploration_propensities_are_valid_and_match_choice_frequencies(rk):
    bandit = ThompsonSlots(draws=2000, seed=3)
    for _ in range(8):
        bandit.update("i7", 1.0)
    for _ in range(8):
        bandit.update("i8", 0.0)
    r = rk.rules(k=5, exploration={"positions": [2], "draws": 2000, "seed": 3})
    c = _explore_cands(rk)
    p = bandit.propensities(["i6", "i7", "i8", "i9"])
    assert p.sum() == pytest.approx(1.0) and (p >= 0).all()
    assert p[1] > p[0] > p[2]  # the rewarded item is chosen most, the failing one least
    picks = [r.rank(c, rk.ctx(request_id=str(j)), bandit=bandit).exploration[0] for j in range(600)]
    for choice in picks[:20]:
        assert choice.propensity == pytest.approx(p[["i6", "i7", "i8", "i9"].index(choice.item_id)])
    freq = np.array([sum(ch.item_id == i for ch in picks) for i in ["i6", "i7", "i8", "i9"]]) / len(picks)
    assert np.abs(freq - p).max() < 4 * np.sqrt(0.25 / len(picks))


def test_exploration_without_new_items_leaves_the_slot_organic(rk):
    c = rk.cands(5, launch=np.array(["2020-01-01"] * 5, dtype="datetime64[D]"))
    out = rk.rules(exploration={"positions": [1]}).rank(c, rk.ctx())
    assert rk.ids(out) == ["i0", "i1", "i2", "i3", "i4"] and not out.exploration
    assert any("exploration slot 1 filled organically" in n for n in out.notes)


# --- trace completeness ----------------------------------------------------------------------------


PLACED = {"pinned", "sponsored", "explored"}


def _check_trace_complete(out, cands) -> None:
    """Every change of order between the input ranking and the output is explained by the trace.

    For each pair where b ends above a although a was above b in the input (or a is not shown):
    a was filtered, capped or placed somewhere by a rule; or b was placed by a rule or chosen by
    the diversity re-ranker; or boosts/buries (recorded on a or b) put b's score above a's.
    """
    rel = dict(zip(cands.ids.tolist(), cands.scores.tolist(), strict=True))
    ids = list(rel)
    in_rank = {i: r for r, i in enumerate(sorted(ids, key=lambda i: (-rel[i], ids.index(i))))}
    out_pos = {it.item_id: it.position for it in out.items}
    trace = {i: out.explain(i) for i in ids}

    def score(i):
        boosts = [e for e in trace[i] if e.kind.startswith("boost.")]
        return boosts[-1].score_after if boosts else rel[i]

    for b, pb in out_pos.items():
        for a in ids:
            if not (in_rank[a] < in_rank[b] and out_pos.get(a, 10**9) > pb):
                continue
            a_actions = {e.action for e in trace[a]}
            b_actions = {e.action for e in trace[b]}
            by_boosts = score(b) > score(a) and any(e.kind.startswith("boost.") for e in trace[a] + trace[b])
            assert (a_actions & ({"filtered", "capped"} | PLACED) or b_actions & (PLACED | {"diversified"})
                    or by_boosts), f"{b} overtook {a} with nothing in the trace to say why"
    for it in out.items:
        entries = it.trace
        boosts = [e for e in entries if e.kind.startswith("boost.")]
        assert it.score == pytest.approx(boosts[-1].score_after if boosts else it.relevance)
        for x, y in itertools.pairwise(boosts):
            assert x.score_after == pytest.approx(y.score_before)
        for e in entries:
            if e.action in PLACED | {"diversified"}:
                assert e.position_after == it.position
        flags = {"pinned": it.pinned, "sponsored": it.sponsored, "explored": it.explored}
        for action, flag in flags.items():
            assert flag == any(e.action == action for e in entries)


@pytest.mark.parametrize("seed", range(6))
def test_trace_explains_every_move(rk, example_rules, seed):
    rng = np.random.default_rng(seed)
    c = rk.random_catalogue(rng, 120)
    spec = example_rules.spec.model_copy(deep=True)
    spec.pins[0].item = f"s{rng.integers(120)}"
    spec.caps[0].max = 4  # 6 brands × 4 leaves enough for 20
    spec.diversity.lam = [0.5, 0.8, 1.0][seed % 3]
    spec.scores.normalize = "none"  # so the checker can compare scores across the trace
    if seed % 2:
        spec.diversity.method = "none"
    rules = RuleSet(spec)
    x = RequestContext(purchased={"s1", "s2", "s3"}, region="GB", now=rk.TODAY, request_id=str(seed))
    out = rules.rank(c, x)
    assert len(out.items) == 20
    _check_trace_complete(out, c)
    assert rules.rank(c, x, trace=False).item_ids == out.item_ids  # the trace does not change the answer
    payload = out.to_dict()
    assert {"items", "removed", "notes", "exploration", "rules_version"} <= set(payload)
    assert all("trace" in it for it in payload["items"])
