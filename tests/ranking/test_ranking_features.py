"""Ranker features (`tastemaker.ranking.features`) on a hand-built shop whose values are computed by
hand: every feature family, no leakage past the clock, new users and items, the plain-data round
trip and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tastemaker.data.interactions import Interactions
from tastemaker.data.vocabulary import Vocabulary
from tastemaker.errors import ArtifactError, ConfigError, DataError
from tastemaker.ranking.features import NAMES, FeatureBuilder, assemble, feature_names, retrieval_features
from tastemaker.retrieval.base import Histories, Query
from tastemaker.retrieval.union import CandidateSet

DAY = 86_400
NOW = 100 * DAY  # the clock: midnight starting day 100; every event is at noon, so no age sits on a boundary
COL = {name: j for j, name in enumerate(NAMES)}

# (user, item, day, quantity); items 0-3 sold, item 4 never sold (a new product)
BEFORE = [(0, 0, 10, 1), (0, 0, 30, 2), (0, 0, 70, 1), (0, 0, 70, 3), (0, 1, 95, 1),
          (1, 0, 50, 2), (1, 2, 80, 1), (1, 2, 90, 1),
          (2, 3, 5, 1)]
AFTER = [(0, 2, 105, 5), (1, 3, 110, 1), (2, 0, 120, 1), (1, 0, 101, 4)]  # after the clock: must never count
PRICE = np.array([2.0, 10.0, 4.0, 1.0, 8.0])
CATEGORY = np.array([0, 0, 1, 2, 1])
DEPARTMENT = np.array([0, 0, 0, 1, 0])
N_ITEMS, N_USERS = 5, 3

# the item's typical log gap, as `Repurchase.fit` learns it: gaps between distinct days are
# item 0: 20, 40 (user 0) and item 2: 10 (user 1); the global median is log 20; item_shrink 5
GLOBAL = np.log(20.0)
LOG_GAP = np.array([(np.log(20) + np.log(40) + 5 * GLOBAL) / 7, GLOBAL, (np.log(10) + 5 * GLOBAL) / 6, GLOBAL,
                    GLOBAL])


def events(rows) -> Interactions:
    u, i, d, q = (np.array(c) for c in zip(*rows, strict=True))
    return Interactions.from_arrays(u, i, q.astype(float), timestamps=d * DAY + DAY // 2, explicit=False,
                                    duplicates="keep", item_vocab=Vocabulary(np.arange(N_ITEMS)),
                                    user_vocab=Vocabulary(np.arange(N_USERS)))


def fit(rows=BEFORE, **kw) -> FeatureBuilder:
    kw = {"price": PRICE, "category": CATEGORY, "department": DEPARTMENT, "now": NOW, **kw}
    return FeatureBuilder.fit(events(rows), **kw)


@pytest.fixture(scope="module")
def builder() -> FeatureBuilder:
    return fit()


@pytest.fixture(scope="module")
def histories() -> Histories:
    return Histories.from_interactions(events(BEFORE))


def feats(builder: FeatureBuilder, query: Query, items) -> dict[str, np.ndarray]:
    x = builder.transform(query, np.asarray(items))
    assert x.shape == (len(items), len(NAMES)) and x.dtype == np.float32
    return {name: x[:, j].astype(np.float64) for name, j in COL.items()}


def approx(values, rel=1e-6):
    return pytest.approx(values, rel=rel, abs=1e-6, nan_ok=True)


# --- the feature families, by hand ---------------------------------------------------------------
def test_item_popularity_recency_and_price(builder, histories):
    f = feats(builder, histories.query(2, now=NOW), [0, 1, 2, 3, 4])
    nan = np.nan
    assert f["it_users_log"] == approx(np.log1p([2, 1, 1, 1, 0]))
    # ages at noon: days 95 -> 4.5, 90 -> 9.5, 80 -> 19.5, 70 -> 29.5, 50 -> 49.5, 30 -> 69.5, 10 -> 89.5, 5 -> 94.5
    assert f["it_lines7"] == approx(np.log1p([0, 1, 0, 0, 0]))
    assert f["it_lines30"] == approx(np.log1p([2, 1, 2, 0, 0]))
    assert f["it_lines90"] == approx(np.log1p([5, 1, 2, 0, 0]))
    l30, l90 = np.array([2, 1, 2, 0, 0]), np.array([5, 1, 2, 0, 0])
    assert f["it_trend"] == approx(np.log((l30 + 1) / (l90 / 3 + 1)))
    assert f["it_age_days"] == approx([89.5, 4.5, 19.5, 94.5, nan])
    assert f["it_since_sale_days"] == approx([29.5, 4.5, 9.5, 94.5, nan])
    # buyers on two or more distinct days / buyers: item 0 (user 0 yes, user 1 no), item 2 (user 1 yes)
    assert f["it_repeat_rate"] == approx([0.5, 0.0, 1.0, 0.0, nan])
    assert f["it_interval_days"] == approx(np.exp(LOG_GAP))
    assert f["it_price_log"] == approx(np.log(PRICE))
    # median revenue of one line (price × quantity): item 0 lines 2, 4, 2, 6, 4 -> 4; item 4 never sold
    assert f["it_line_value_log"] == approx(np.log([4.0, 10.0, 4.0, 1.0, nan]))


def test_user_item_and_repurchase_interval(builder, histories):
    # user 0 bought item 0 on days 10 (×1), 30 (×2), 70 (×1 and ×3: two lines) and item 1 on day 95
    f = feats(builder, histories.query(0, now=NOW), [0, 1, 2])
    nan = np.nan
    assert f["ui_bought"].tolist() == [1, 1, 0]
    assert f["ui_lines"].tolist() == [4, 1, 0]
    assert f["ui_days"].tolist() == [3, 1, 0]
    assert f["ui_qty_log"] == approx([np.log1p(7), np.log1p(1), 0.0])
    assert f["ui_since_days"] == approx([29.5, 4.5, nan])
    assert f["ui_first_days"] == approx([89.5, 4.5, nan])
    ages0 = np.array([89.5, 69.5, 29.5, 29.5])
    assert f["ui_decay30"] == approx([np.exp2(-ages0 / 30).sum(), 2 ** (-4.5 / 30), 0.0])
    assert f["ui_decay180"] == approx([np.exp2(-ages0 / 180).sum(), 2 ** (-4.5 / 180), 0.0])
    assert f["ui_day_share"] == approx([3 / 4, 1 / 4, 0.0])  # of the user's 4 purchase days
    # own gaps of item 0: 20 and 40 days -> geometric mean √800; shrunk towards the item's gap with weight 2
    assert f["ui_interval_days"] == approx([np.sqrt(800.0), nan, nan])
    log_tau0 = (np.log(20) + np.log(40) + 2 * LOG_GAP[0]) / (2 + 2)
    log_tau1 = LOG_GAP[1]  # no own gap: the item's typical one
    assert f["ui_expected_interval_days"] == approx([np.exp(log_tau0), np.exp(log_tau1), nan])
    assert f["ui_log_due"] == approx([np.log(29.5) - log_tau0, np.log(4.5) - log_tau1, nan])


def test_user_price_and_category_features(builder, histories):
    f = feats(builder, histories.query(0, now=NOW), [0, 1, 2, 3, 4])
    nan = np.nan
    assert f["u_days"].tolist() == [4] * 5 and f["u_items"].tolist() == [2] * 5
    assert f["u_lines_log"] == approx([np.log(6)] * 5)
    assert f["u_since_days"] == approx([4.5] * 5)
    assert f["u_interval_days"] == approx([25.0] * 5)  # gaps 20, 40, 25 between purchase days
    assert f["u_log_due"] == approx([np.log(4.5 / 25)] * 5)
    # the usual basket: prices 2, 2, 2, 2, 10 (median 2); line values 2, 4, 2, 6, 10 (median 4)
    assert f["pr_user"] == approx(np.log(PRICE / 2.0))
    assert f["pr_user_line"] == approx(np.log(np.array([4.0, 10.0, 4.0, 1.0, nan]) / 4.0))
    # every event of user 0 is in category 0 / department 0
    assert f["uc_share"] == approx([1, 1, 0, 0, 0])
    assert f["ud_share"] == approx([1, 1, 1, 0, 1])
    assert f["uc_items"].tolist() == [2, 2, 0, 0, 0]
    assert f["uc_since_days"] == approx([4.5, 4.5, nan, nan, nan])
    # user 1: item 0 (category 0) on day 50, item 2 (category 1) on days 80 and 90; item 4 is in category 1
    g = feats(builder, histories.query(1, now=NOW), [4, 3])
    assert g["uc_share"] == approx([2 / 3, 0]) and g["ud_share"] == approx([1, 0])
    assert g["uc_items"].tolist() == [1, 0] and g["uc_since_days"] == approx([9.5, nan])


# --- leakage --------------------------------------------------------------------------------------
def test_events_after_the_clock_change_no_feature():
    cut = fit(BEFORE)
    leaky = fit(BEFORE + AFTER)  # the same clock, later events present in the data
    a, meta_a = cut.get_state()
    b, meta_b = leaky.get_state()
    assert meta_a == meta_b
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # per request: a history that holds later events, scored at the clock, is the history up to it
    full = Histories.from_interactions(events(BEFORE + AFTER))
    upto = Histories.from_interactions(events(BEFORE))
    items = np.arange(N_ITEMS)
    for u in range(N_USERS):
        np.testing.assert_array_equal(leaky.transform(full.query(u, now=NOW), items),
                                      cut.transform(upto.query(u, now=NOW), items), err_msg=f"user {u}")
    # ... and a later clock does see them (the check above is not vacuous)
    later = leaky.transform(full.query(0, now=NOW + 10 * DAY), items)
    assert later[2, COL["ui_bought"]] == 1.0


def test_default_clock_is_the_latest_event_and_item_counts_need_no_history():
    b = FeatureBuilder.fit(events(BEFORE), price=PRICE)
    assert b.now == 95 * DAY + DAY // 2
    x = b.transform(Query(), np.array([1]))
    assert x[0, COL["it_lines7"]] == pytest.approx(np.log1p(1)) and x[0, COL["it_since_sale_days"]] == 0.0


# --- new users, new items, missing data ---------------------------------------------------------
ALWAYS_KNOWN = ("ui_bought", "ui_lines", "ui_days", "ui_qty_log", "ui_decay30", "ui_decay180", "ui_day_share",
                "uc_share", "ud_share", "uc_items", "u_days", "u_lines_log", "u_items", "it_users_log", "it_lines7",
                "it_lines30", "it_lines90", "it_trend", "it_interval_days")


def test_a_new_user_gets_zeros_and_documented_unknowns(builder, histories):
    items = np.arange(N_ITEMS)
    x = builder.transform(Query(now=NOW), items)
    assert not np.isinf(x).any()
    for name in ("ui_bought", "ui_lines", "ui_days", "ui_qty_log", "ui_decay30", "ui_decay180", "ui_day_share",
                 "uc_share", "ud_share", "uc_items", "u_days", "u_lines_log", "u_items"):
        assert (x[:, COL[name]] == 0).all(), name
    # unknown (NaN, which LightGBM routes on its own): only what needs a history
    nan_cols = {NAMES[j] for j in np.flatnonzero(np.isnan(x).any(axis=0))}
    assert nan_cols <= {"ui_since_days", "ui_first_days", "ui_interval_days", "ui_expected_interval_days",
                        "ui_log_due", "uc_since_days", "u_since_days", "u_interval_days", "u_log_due", "pr_user",
                        "pr_user_line", "it_age_days", "it_since_sale_days", "it_repeat_rate", "it_line_value_log"}
    # an index the histories never saw is a new user too; so is a history with no times (treated as now)
    np.testing.assert_array_equal(builder.transform(histories.query(99, now=NOW), items), x)
    y = builder.transform(Query(history=[3], now=NOW), items)
    assert y[3, COL["ui_bought"]] == 1 and y[3, COL["ui_since_days"]] == 0 and not np.isinf(y).any()
    assert builder.transform(Query(now=NOW), np.array([], dtype=np.int64)).shape == (0, len(NAMES))


def test_a_new_item_and_missing_item_data(builder, histories):
    x = builder.transform(histories.query(1, now=NOW), np.array([4]))
    assert not np.isinf(x).any()
    assert not np.isnan(x[0, [COL[n] for n in ALWAYS_KNOWN]]).any()
    assert x[0, COL["it_users_log"]] == 0 and x[0, COL["it_interval_days"]] == pytest.approx(20.0)
    # a launch date gives a new item its age
    launched = fit(launch_seconds=np.array([np.nan, np.nan, np.nan, np.nan, 98 * DAY]))
    assert launched.transform(Query(now=NOW), np.array([4]))[0, COL["it_age_days"]] == pytest.approx(2.0)
    # no prices at all: price features are unknown (NaN), never -inf; per-event revenue gives line values
    bare = FeatureBuilder.fit(events(BEFORE), now=NOW)
    z = bare.transform(Query(history=[0, 1], history_times=[NOW - DAY, NOW - DAY], now=NOW), np.arange(N_ITEMS))
    assert not np.isinf(z).any()
    assert np.isnan(z[:, COL["it_price_log"]]).all() and np.isnan(z[:, COL["it_line_value_log"]]).all()
    assert np.isnan(z[:, COL["pr_user"]]).all() and np.isnan(z[:, COL["pr_user_line"]]).all()
    rev = FeatureBuilder.fit(events(BEFORE), revenue=np.arange(1.0, len(BEFORE) + 1), now=NOW)
    assert rev.line_value[0] == pytest.approx(3.0)  # lines 1, 2, 3, 4, 6 of item 0 -> median 3
    assert rev.values(np.array([0, 4]), "line_value")[0] == pytest.approx(3.0)


def test_values_for_expected_value_ranking(builder):
    np.testing.assert_allclose(builder.values(np.array([1, 4])), [10.0, 8.0])
    got = builder.values(np.array([0, 4]), "line_value")
    assert got[0] == pytest.approx(4.0) and np.isnan(got[1])


# --- retrieval features and assembly -------------------------------------------------------------
def test_retrieval_features_and_assemble(builder, histories):
    cands = CandidateSet(items=np.array([2, 0, 4]), sources=("a", "b"),
                         scores=np.array([[0.9, np.nan], [0.5, 3.0], [np.nan, 1.0]], dtype=np.float32),
                         ranks=np.array([[0, -1], [1, 0], [-1, 1]], dtype=np.int32), origin=np.zeros(3, np.int8))
    names, x = retrieval_features(cands)
    assert names == ["a.score", "b.score", "a.rank", "b.rank", "n_sources"]
    np.testing.assert_array_equal(x, np.array([[0.9, np.nan, 1, np.nan, 1], [0.5, 3.0, 2, 1, 2],
                                               [np.nan, 1.0, np.nan, 2, 1]], dtype=np.float32))
    q = histories.query(0, now=NOW)
    all_names, full = assemble(cands, q, builder)
    assert all_names == feature_names(("a", "b")) and full.shape == (3, 5 + len(NAMES))
    np.testing.assert_array_equal(full[:, 5:], builder.transform(q, cands.items))


# --- plain-data state ------------------------------------------------------------------------------
def test_save_load_round_trip_is_arrays_and_json(builder, histories, tmp_path):
    path = builder.save(tmp_path / "features")
    assert sorted(p.name for p in path.iterdir()) == ["arrays.npz", "manifest.json"]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["model"] == "ranker-features" and manifest["state"]["names"] == list(NAMES)
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:  # no object arrays inside
        assert all(npz[k].dtype.kind in "fiu" for k in npz.files)
    back = FeatureBuilder.load(path)
    assert back.now == builder.now and back.user_shrink == builder.user_shrink
    items = np.arange(N_ITEMS)
    for q in (histories.query(0, now=NOW), histories.query(1, now=NOW + 3 * DAY), Query(), Query(history=[2])):
        np.testing.assert_array_equal(back.transform(q, items), builder.transform(q, items))
    arrays, meta = builder.get_state()
    again = FeatureBuilder.from_state(arrays, json.loads(json.dumps(meta)))
    np.testing.assert_array_equal(again.transform(histories.query(0), items),
                                  builder.transform(histories.query(0), items))


# --- bad input --------------------------------------------------------------------------------------
def test_bad_input_raises_clear_errors(builder, histories, tmp_path):
    with pytest.raises(DataError, match=r"price has shape \(3,\); expected \(5,\)"):
        fit(price=np.ones(3))
    with pytest.raises(DataError, match="category has shape"):
        fit(category=np.zeros(4, int))
    with pytest.raises(DataError, match="revenue has 2 entries for 9 events"):
        fit(revenue=np.ones(2))
    with pytest.raises(DataError, match=r"price of item 1 is -1\.0"):
        fit(price=np.array([1.0, -1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(DataError, match="positive"):
        fit(price=np.array([1.0, 1.0, 0.0, 1.0, 1.0]))
    untimed = Interactions.from_arrays(np.array([0]), np.array([0]), explicit=False)
    with pytest.raises(ConfigError, match="timestamped"):
        FeatureBuilder.fit(untimed)
    with pytest.raises(DataError, match="item index 5 is outside the item space of 5 items"):
        builder.transform(Query(), np.array([0, 5]))
    with pytest.raises(DataError, match="item index -1"):
        builder.transform(Query(history=[-1]), np.array([0]))
    with pytest.raises(DataError, match="history_times has 1 entries but the history has 2"):
        Query(history=[0, 1], history_times=[0])
    with pytest.raises(ConfigError, match="value kind 'margin'"):
        builder.values(np.array([0]), "margin")
    # state and artifacts
    arrays, meta = builder.get_state()
    with pytest.raises(ArtifactError, match="lacks arrays"):
        FeatureBuilder.from_state({k: v for k, v in arrays.items() if k != "price"}, meta)
    with pytest.raises(ArtifactError, match="feature names differ"):
        FeatureBuilder.from_state(arrays, {**meta, "names": list(NAMES[:-1])})
    with pytest.raises(ArtifactError, match="one entry per item"):
        FeatureBuilder.from_state({**arrays, "users": arrays["users"][:3]}, meta)
    from tastemaker.artifacts import write_bundle

    write_bundle(tmp_path / "other", {"model": "catalog"}, {"a": np.zeros(2)})
    with pytest.raises(ArtifactError, match="not a ranker-features"):
        FeatureBuilder.load(tmp_path / "other")
    with pytest.raises(ArtifactError, match="missing"):
        FeatureBuilder.load(tmp_path / "nothing-here")
