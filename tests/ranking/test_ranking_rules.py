"""Business-rule semantics, one rule kind at a time: filters, boosts/buries, caps, pins, sponsored slots."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.ranking import Candidates
from tastemaker.ranking.rules import AttributeTable

# --- filters -------------------------------------------------------------------------------------


def test_no_rules_cuts_at_k_in_score_order(rk):
    scores = np.array([0.2, 0.9, 0.5, 0.9, 0.1])
    out = rk.rules(k=3).rank(rk.cands(5, scores=scores), rk.ctx())
    assert rk.ids(out) == ["i1", "i3", "i2"]  # ties keep the input order
    assert [it.input_position for it in out.items] == [1, 2, 3]
    assert all(it.trace == () for it in out.items)


def test_in_stock_drops_zero_below_min_and_unknown_stock(rk):
    c = rk.cands(5, stock=[0, 1, 2, np.nan, 3])
    assert rk.ids(rk.rules(filters={"in_stock": True}).rank(c, rk.ctx())) == ["i1", "i2", "i4"]
    out = rk.rules(filters={"in_stock": True, "min_stock": 2}).rank(c, rk.ctx())
    assert rk.ids(out) == ["i2", "i4"]
    assert out.removed == {"in_stock": 3}
    assert [e.action for e in out.explain("i1")] == ["filtered"]
    assert out.explain("i1")[0].rule == "in_stock"


@pytest.mark.parametrize(("policy", "kept"), [
    ("allow", ["i0", "i1", "i2", "i3"]),
    ("exclude", ["i2", "i3"]),
    ("exclude_unless_consumable", ["i1", "i2", "i3"]),
])
def test_already_bought(rk, policy, kept):
    c = rk.cands(4, consumable=[False, True, False, True])
    out = rk.rules(filters={"already_bought": policy}).rank(c, rk.ctx(purchased={"i0", "i1"}))
    assert rk.ids(out) == kept


def test_already_bought_through_attribute_table_matches_plain_candidates(rk):
    table = AttributeTable([f"i{j}" for j in range(6)], consumable=[False, True, False, False, True, False],
                           stock=np.full(6, 3.0))
    rows = np.array([5, 3, 1, 0])
    scores = np.array([4.0, 3.0, 2.0, 1.0])
    r = rk.rules(filters={"already_bought": "exclude_unless_consumable"})
    x = rk.ctx(purchased=["i3", "i1", "i0", "not-in-catalogue"])
    via_table = r.rank(table.candidates(rows, scores), x)
    plain = r.rank(Candidates(["i5", "i3", "i1", "i0"], scores, consumable=[False, False, True, False]), x)
    assert rk.ids(via_table) == rk.ids(plain) == ["i5", "i1"]


def test_price_range_is_inclusive_and_unknown_price_fails(rk):
    c = rk.cands(5, price=[5.0, 10.0, 20.0, 30.0, np.nan])
    out = rk.rules(filters={"price_min": 10, "price_max": 20}).rank(c, rk.ctx())
    assert rk.ids(out) == ["i1", "i2"]
    narrower = rk.rules(filters={"price_min": 10, "price_max": 20}).rank(c, rk.ctx(price_max=15))
    assert rk.ids(narrower) == ["i1"]
    assert narrower.removed == {"price_range": 3, "request.price_range": 1}


def test_category_allow_and_deny_match_whole_levels(rk):
    cats = ["home/kitchen", "home/kitchen/mugs", "home/kitchenware", "garden/tools", "", "home"]
    c = rk.cands(6, category=cats)
    allow = rk.rules(filters={"category_allow": ["home/kitchen"]}).rank(c, rk.ctx())
    assert rk.ids(allow) == ["i0", "i1"]
    deny = rk.rules(filters={"category_deny": ["home/kitchen", "garden"]}).rank(c, rk.ctx())
    assert rk.ids(deny) == ["i2", "i4", "i5"]
    req = rk.rules().rank(c, rk.ctx(categories=["home"], exclude_categories=["home/kitchen/mugs"]))
    assert rk.ids(req) == ["i0", "i2", "i5"]
    unknown = rk.rules().rank(c, rk.ctx(categories=["toys/never-seen"]))
    assert rk.ids(unknown) == []


def test_region_filter_keeps_items_sold_everywhere(rk):
    c = rk.cands(4, regions=["FR,DE", "", "*", ["GB", "IE"]])
    r = rk.rules(filters={"region": True})
    assert rk.ids(r.rank(c, rk.ctx(region="GB"))) == ["i1", "i2", "i3"]
    assert rk.ids(r.rank(c, rk.ctx(region="DE"))) == ["i0", "i1", "i2"]
    assert rk.ids(r.rank(c, rk.ctx())) == ["i0", "i1", "i2", "i3"]  # no region in the request: not applied


def test_request_brand_and_item_constraints(rk):
    c = rk.cands(4, brand=["a", "b", "a", "c"])
    out = rk.rules().rank(c, rk.ctx(brands=["a", "c"], exclude_items=["i2"]))
    assert rk.ids(out) == ["i0", "i3"]
    assert out.removed == {"request.brands": 1, "request.exclude_items": 1}


def test_a_filter_whose_column_is_missing_is_skipped_with_a_note(rk):
    c = Candidates(["a", "b"], [2.0, 1.0])
    out = rk.rules(filters={"in_stock": True}).rank(c, rk.ctx())
    assert rk.ids(out) == ["a", "b"]
    assert any("in_stock" in n and "stock" in n for n in out.notes)


# --- boosts and buries ---------------------------------------------------------------------------


def test_margin_boost_multiplicative_and_additive(rk):
    c = rk.cands(3, scores=[1.0, 0.9, 0.8], margin=[0.0, 0.5, np.nan])
    out = rk.rules(boosts=[{"kind": "margin", "weight": 0.4}]).rank(c, rk.ctx())
    assert rk.ids(out) == ["i1", "i0", "i2"]
    by_id = {it.item_id: it for it in out.items}
    assert by_id["i1"].score == pytest.approx(0.9 * 1.2)
    assert by_id["i2"].score == pytest.approx(0.8)  # unknown margin counts as 0
    (entry,) = by_id["i1"].trace
    assert (entry.rule, entry.kind, entry.action) == ("margin", "boost.margin", "boosted")
    assert entry.effect == "boosted ×1.2"
    assert (entry.score_before, entry.position_before, entry.position_after) == (0.9, 2, 1)
    add = rk.rules(boosts=[{"kind": "margin", "weight": 0.4, "mode": "additive"}]).rank(c, rk.ctx())
    assert {it.item_id: it.score for it in add.items}["i1"] == pytest.approx(0.9 + 0.2)


def test_promotion_factor_and_delta(rk):
    c = rk.cands(3, scores=[1.0, 0.9, 0.5], promo=[False, False, True])
    out = rk.rules(boosts=[{"kind": "promotion", "factor": 2.5}]).rank(c, rk.ctx())
    assert rk.ids(out) == ["i2", "i0", "i1"]
    assert out.items[0].trace[0].effect == "boosted ×2.5"
    out = rk.rules(boosts=[{"kind": "promotion", "delta": 0.45}]).rank(c, rk.ctx())
    assert rk.ids(out) == ["i0", "i2", "i1"]
    assert out.items[1].score == pytest.approx(0.95)


def test_new_arrival_counts_days_inclusively_and_ignores_future_and_unknown(rk):
    launch = np.array(["2024-05-02", "2024-05-01", "2024-06-05", "NaT", "2024-06-01"], dtype="datetime64[D]")
    c = rk.cands(5, scores=np.ones(5), launch=launch)
    out = rk.rules(boosts=[{"kind": "new_arrival", "days": 30, "factor": 2}]).rank(c, rk.ctx())
    boosted = {it.item_id for it in out.items if it.trace}
    assert boosted == {"i0", "i4"}  # 30 and 0 days old; 31 days, not launched yet and unknown are not


def test_brand_bury_moves_items_down_and_says_buried(rk):
    c = rk.cands(4, brand=["x", "y", "x", "y"])
    out = rk.rules(boosts=[{"kind": "brand", "brands": ["x"], "factor": 0.1}]).rank(c, rk.ctx())
    assert rk.ids(out) == ["i1", "i3", "i0", "i2"]
    e = out.explain("i0")[0]
    assert (e.action, e.effect, e.position_before, e.position_after) == ("buried", "buried ×0.1", 1, 3)


def test_boosts_apply_in_declared_order(rk):
    c = rk.cands(2, scores=[1.0, 0.9], promo=[False, True], margin=[0.0, 1.0])
    mult_then_add = [{"kind": "promotion", "factor": 2}, {"kind": "margin", "weight": 0.5, "mode": "additive"}]
    add_then_mult = mult_then_add[::-1]
    a = {it.item_id: it.score for it in rk.rules(boosts=mult_then_add).rank(c, rk.ctx()).items}
    b = {it.item_id: it.score for it in rk.rules(boosts=add_then_mult).rank(c, rk.ctx()).items}
    assert a["i1"] == pytest.approx(0.9 * 2 + 0.5)
    assert b["i1"] == pytest.approx((0.9 + 0.5) * 2)
    out = rk.rules(boosts=mult_then_add).rank(c, rk.ctx())
    chain = out.items[0].trace
    assert [e.rule for e in chain] == ["promotion", "margin"]
    assert chain[0].score_after == chain[1].score_before


def test_tag_and_category_boosts(rk):
    c = rk.cands(3, tags=[[], ["eco", "new"], "sale,eco"], category=["a/b", "a/c", "z"])
    out = rk.rules(boosts=[{"kind": "tag", "tags": ["eco"], "factor": 10},
                           {"kind": "category", "categories": ["a"], "delta": 100}]).rank(c, rk.ctx())
    assert rk.ids(out) == ["i1", "i0", "i2"]
    assert [e.rule for e in out.explain("i1")] == ["tag", "category"]
    assert [e.rule for e in out.explain("i2")] == ["tag"]


def test_minmax_normalisation_makes_negative_scores_boostable(rk):
    c = rk.cands(3, scores=[-1.0, -2.0, -3.0], promo=[False, False, True])
    out = rk.rules(scores={"normalize": "minmax"}, boosts=[{"kind": "promotion", "delta": 0.6}]).rank(c, rk.ctx())
    assert rk.ids(out) == ["i0", "i2", "i1"]
    assert [it.score for it in out.items] == pytest.approx([1.0, 0.6, 0.5])
    assert [it.relevance for it in out.items] == [-1.0, -3.0, -2.0]


# --- caps ----------------------------------------------------------------------------------------


def _greedy_cap_reference(brands: list[str], scores: list[float], cap: int, k: int) -> list[int]:
    order = sorted(range(len(scores)), key=lambda j: (-scores[j], j))
    out, counts = [], {}
    for j in order:
        if counts.get(brands[j], 0) < cap:
            out.append(j)
            counts[brands[j]] = counts.get(brands[j], 0) + 1
        if len(out) == k:
            break
    return out


@pytest.mark.parametrize("seed", range(5))
def test_brand_cap_is_greedy_and_keeps_order_otherwise(rk, seed):
    rng = np.random.default_rng(seed)
    n, k, cap = 60, 12, 2
    brands = [f"b{rng.integers(5)}" for _ in range(n)]
    scores = rng.random(n)
    out = rk.rules(k=k, caps=[{"by": "brand", "max": cap}]).rank(rk.cands(n, scores=scores, brand=brands), rk.ctx())
    assert rk.ids(out) == [f"i{j}" for j in _greedy_cap_reference(brands, list(scores), cap, k)]


def test_category_cap_at_depth_and_cap_trace(rk):
    cats = ["a/x/1", "a/x/2", "a/y/1", "a/x/3", "b/x/1"]
    c = rk.cands(5, category=cats)
    out = rk.rules(caps=[{"by": "category", "depth": 2, "max": 2}]).rank(c, rk.ctx())
    assert rk.ids(out) == ["i0", "i1", "i2", "i4"]
    (e,) = out.explain("i3")
    assert (e.rule, e.kind, e.action) == ("category_cap", "cap.category", "capped")
    assert "'a/x'" in e.effect and "2" in e.effect
    assert out.removed == {"category_cap": 1}
    depth1 = rk.rules(caps=[{"by": "category", "max": 2}]).rank(c, rk.ctx())
    assert rk.ids(depth1) == ["i0", "i1", "i4"]


def test_cap_within_a_window_only(rk):
    c = rk.cands(6, brand=["a", "a", "a", "b", "a", "c"])
    out = rk.rules(caps=[{"by": "brand", "max": 1, "within": 3}]).rank(c, rk.ctx())
    # top 3 hold at most one "a"; below position 3 the deferred "a"s come back in score order
    assert rk.ids(out) == ["i0", "i3", "i5", "i1", "i2", "i4"]
    assert out.explain("i1")[-1].action == "capped"
    assert out.explain("i1")[-1].position_after == 4


def test_caps_are_hard_even_when_the_list_comes_out_short(rk):
    c = rk.cands(5, brand=["a"] * 5)
    out = rk.rules(k=4, caps=[{"by": "brand", "max": 2}]).rank(c, rk.ctx())
    assert rk.ids(out) == ["i0", "i1"]
    assert out.removed == {"brand_cap": 3}


# --- pins ----------------------------------------------------------------------------------------


def test_pin_puts_an_item_at_its_position(rk):
    out = rk.rules(pins=[{"item": "i7", "position": 2}]).rank(rk.cands(10), rk.ctx())
    assert rk.ids(out)[:4] == ["i0", "i7", "i1", "i2"]
    pinned = out.items[1]
    assert pinned.pinned and not pinned.sponsored
    assert pinned.trace[-1].effect == "pinned at 2"
    assert (pinned.trace[-1].position_before, pinned.trace[-1].position_after) == (8, 2)


def test_pin_of_a_missing_item_or_past_k_only_notes(rk):
    r = rk.rules(k=5, pins=[{"item": "nope", "position": 1}, {"item": "i9", "position": 7}])
    out = r.rank(rk.cands(10), rk.ctx())
    assert rk.ids(out) == ["i0", "i1", "i2", "i3", "i4"]
    assert any("'nope' is not among the candidates" in n for n in out.notes)
    assert any("past k=5" in n for n in out.notes)
    assert r.required_items == ["nope", "i9"]


def test_pin_lands_higher_when_the_list_is_shorter_than_its_position(rk):
    out = rk.rules(pins=[{"item": "i0", "position": 6}]).rank(rk.cands(3), rk.ctx())
    assert rk.ids(out) == ["i1", "i2", "i0"]
    assert out.items[2].trace[-1].effect == "pinned at 3"


# --- sponsored slots -----------------------------------------------------------------------------


def test_sponsored_slots_are_labelled_with_the_campaign(rk):
    c = rk.cands(8, sponsored=[False, False, False, True, False, True, True, False],
                 campaign=["", "", "", "c3", "", "c5", "c6", ""])
    out = rk.rules(sponsored={"positions": [2, 5]}).rank(c, rk.ctx())
    assert rk.ids(out) == ["i0", "i3", "i1", "i2", "i5", "i4", "i6", "i7"]
    labelled = [(it.position, it.item_id, it.campaign) for it in out.items if it.sponsored]
    assert labelled == [(2, "i3", "c3"), (5, "i5", "c5")]
    assert not out.items[6].sponsored and out.items[6].campaign is None  # i6 ranks organically, unlabelled
    assert out.items[1].trace[-1].effect == "sponsored slot 2, campaign 'c3'"
    assert out.to_dict()["items"][1]["sponsored"] is True


def test_sponsored_relevance_floor_and_empty_slot(rk):
    c = rk.cands(6, sponsored=[False, False, False, False, True, True])
    floor = rk.rules(sponsored={"positions": [1], "min_relevance": 1.5}).rank(c, rk.ctx())
    assert floor.items[0].item_id == "i4" and floor.items[0].sponsored  # scores are 6..1: i4 has 2
    none = rk.rules(sponsored={"positions": [1], "min_relevance_quantile": 0.5}).rank(c, rk.ctx())
    assert rk.ids(none)[0] == "i0" and not any(it.sponsored for it in none.items)
    assert any("sponsored slot 1 filled organically" in n for n in none.notes)


def test_sponsored_without_slot_can_be_kept_out_of_organic_results(rk):
    c = rk.cands(5, sponsored=[True, True, False, False, False])
    out = rk.rules(sponsored={"positions": [3], "organic": False}).rank(c, rk.ctx())
    assert rk.ids(out) == ["i2", "i3", "i0", "i4"]
    assert out.removed == {"sponsored": 1}
    assert out.explain("i1")[0].action == "filtered"


# --- inputs --------------------------------------------------------------------------------------


def test_candidates_from_records_and_attribute_table_agree(rk):
    records = [
        {"item_id": "a", "score": 0.9, "brand": "x", "price": 5.0, "tags": ["eco"], "launch": "2024-05-30"},
        {"item_id": "b", "score": 0.8, "brand": None, "stock": 0},
        {"item_id": "c", "score": 0.7, "brand": "y", "price": None, "regions": "FR, DE"},
    ]
    c = Candidates.from_records(records)
    assert c.brand.tolist() == ["x", "", "y"] and np.isnan(c.price[1:]).all()
    assert c.tags.tolist() == [",eco,", "", ""] and c.regions.tolist() == ["", "", ",FR,DE,"]
    assert np.isnat(c.launch[1]) and c.stock[0] != c.stock[0]
    with pytest.raises(ValueError, match="unknown candidate attributes"):
        Candidates.from_records([{"item_id": "a", "score": 1.0, "colour": "red"}])
    with pytest.raises(ValueError, match="finite"):
        Candidates(["a", "b"], [1.0, np.nan])
    with pytest.raises(ValueError, match="shape"):
        Candidates(["a", "b"], [1.0, 2.0], price=[1.0])
    table = AttributeTable(["a", "b", "c"], brand=["x", "", "y"], price=[5.0, np.nan, np.nan],
                           tags=["eco", "", ""], regions=["", "", "FR,DE"])
    t = table.candidates([0, 1, 2], [0.9, 0.8, 0.7])
    assert t.tags.tolist() == c.tags.tolist() and t.regions.tolist() == c.regions.tolist()
    r = rk.rules(filters={"region": True}, boosts=[{"kind": "tag", "tags": ["eco"], "factor": 0.5}])
    x = rk.ctx(region="GB")
    assert rk.ids(r.rank(t, x)) == rk.ids(r.rank(c, x)) == ["b", "a"]
    assert table.rows(["c", "zz", "a"]).tolist() == [2, 0]
    with pytest.raises(ValueError, match="unique"):
        AttributeTable(["a", "a"])


def test_explain_of_an_unknown_item_is_empty(rk):
    out = rk.rules().rank(rk.cands(3), rk.ctx())
    assert out.explain("nope") == [] and out.explain("i0") == []


def test_empty_and_fully_filtered_requests_return_empty_lists(rk, example_rules):
    x = rk.ctx(region="GB")
    empty = example_rules.rank(Candidates([], []), x)
    assert empty.items == [] and any("pin hero" in n for n in empty.notes)
    gone = example_rules.rank(rk.cands(3, stock=[0, 0, 0]), x)
    assert gone.items == [] and gone.removed == {"in_stock": 3}
    with pytest.raises(ValueError, match="k must be at least 1"):
        example_rules.rank(rk.cands(3), x, k=0)
